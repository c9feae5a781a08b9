//! The pipeline behind the callouts: callouts hand changes to the journal
//! thread through a bounded channel; the journal thread appends them to the
//! on-disk journal (one fsync per batch: group commit) and dispatches them to
//! sender threads, chosen by a hash of the FQDN so that changes of one name
//! stay in order; each sender applies its changes one by one, retrying
//! retryable failures with backoff until they succeed or the engine stops,
//! then reports them done to the journal thread.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, Sender, TrySendError, bounded, select, unbounded,
};
use parking_lot::Mutex;
use rand::Rng;

use crate::change::{Change, ChangeKind};
use crate::config::Config;
use crate::journal::{Journal, JournalOptions};
use crate::stats::Stats;
use crate::update::{ApplyOutcome, UpdateExecutor};

const PUBLISHED_SHARDS: usize = 64;
/// Most changes written to the journal per group commit.
const MAX_BATCH: usize = 1024;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long `stop` waits for each thread before leaving it to finish alone.
const JOIN_DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("parameter 'journal-dir': {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("cannot start thread {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

/// What the hook last asked DNS to hold for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedName {
    pub fqdn: String,
    pub dhcid: Vec<u8>,
    pub ttl: u32,
    pub forward: bool,
    pub reverse: bool,
}

/// Address -> published name, sharded so packet threads rarely contend.
struct Published {
    shards: Vec<Mutex<HashMap<Ipv4Addr, PublishedName>>>,
}

impl Published {
    fn new() -> Published {
        Published {
            shards: (0..PUBLISHED_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn shard(&self, addr: Ipv4Addr) -> &Mutex<HashMap<Ipv4Addr, PublishedName>> {
        &self.shards[u32::from(addr) as usize % PUBLISHED_SHARDS]
    }
}

type Work = (Option<u64>, Change);

pub struct Engine {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    published: Published,
    submit_tx: Mutex<Option<Sender<Change>>>,
    /// Dropped on stop: every thread selecting on its receiver wakes up.
    shutdown_tx: Mutex<Option<Sender<()>>>,
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
}

impl Engine {
    /// Opens the journal, starts the threads and queues the journal's pending
    /// changes ahead of any new one.
    pub fn start(cfg: Config, stats: Arc<Stats>) -> Result<Engine, EngineError> {
        let cfg = Arc::new(cfg);
        let (journal, recovery) = Journal::open(&cfg.journal_dir, JournalOptions::default())?;
        let replay: Vec<(u64, Change)> = recovery
            .pending
            .into_iter()
            .filter_map(
                |(seq, payload)| match postcard::from_bytes::<Change>(&payload) {
                    Ok(change) => Some((seq, change)),
                    Err(err) => {
                        tracing::error!(seq, %err, "journal entry does not decode; skipped");
                        None
                    }
                },
            )
            .collect();
        if !replay.is_empty() {
            tracing::info!(
                pending = replay.len(),
                "replaying journal entries queued before the restart"
            );
        }

        let (submit_tx, submit_rx) = bounded::<Change>(cfg.queue_capacity);
        let (done_tx, done_rx) = unbounded::<u64>();
        let (shutdown_tx, shutdown_rx) = bounded::<()>(0);
        let workers = cfg.sender_threads.max(1);
        let per_worker = (cfg.queue_capacity / workers).max(16);

        let mut threads = Vec::new();
        let mut worker_txs = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = bounded::<Work>(per_worker);
            worker_txs.push(tx);
            let sender = Sender_ {
                cfg: Arc::clone(&cfg),
                stats: Arc::clone(&stats),
                rx,
                done_tx: done_tx.clone(),
                shutdown_rx: shutdown_rx.clone(),
            };
            let name = format!("leasedns-send-{i}");
            threads.push(spawn(&name, move || sender.run())?);
        }
        drop(done_tx);

        stats
            .journal_entries
            .store(journal.pending() as i64, Ordering::Relaxed);
        let journal_thread = JournalThread {
            journal,
            stats: Arc::clone(&stats),
            submit_rx,
            done_rx,
            workers: worker_txs,
        };
        threads.push(spawn("leasedns-journal", move || {
            journal_thread.run(replay)
        })?);

        Ok(Engine {
            cfg,
            stats,
            published: Published::new(),
            submit_tx: Mutex::new(Some(submit_tx)),
            shutdown_tx: Mutex::new(Some(shutdown_tx)),
            threads: Mutex::new(threads),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues a change without blocking. A full queue drops it, logged and
    /// counted: Kea must keep answering clients whatever DNS does.
    pub fn submit(&self, change: Change) {
        Stats::bump(&self.stats.changes_submitted);
        let guard = self.submit_tx.lock();
        let Some(tx) = guard.as_ref() else {
            return;
        };
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(change) {
            Ok(()) => {}
            Err(TrySendError::Full(change)) | Err(TrySendError::Disconnected(change)) => {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Stats::bump(&self.stats.changes_dropped);
                tracing::error!(fqdn = %change.fqdn, addr = %change.addr, "change queue full; DNS change dropped");
            }
        }
    }

    /// Records what `addr` should publish now. Returns the previous entry and
    /// whether anything changed (a renewal with the same name, address and
    /// TTL needs no DNS traffic).
    pub fn publish(&self, addr: Ipv4Addr, name: PublishedName) -> (Option<PublishedName>, bool) {
        let mut shard = self.published.shard(addr).lock();
        let previous = shard.insert(addr, name.clone());
        let changed = previous.as_ref() != Some(&name);
        (previous, changed)
    }

    /// Forgets what `addr` published, returning it.
    pub fn unpublish(&self, addr: Ipv4Addr) -> Option<PublishedName> {
        self.published.shard(addr).lock().remove(&addr)
    }

    /// Stops the threads: the journal thread writes what is queued and syncs;
    /// senders finish their current exchange. Unsent changes stay pending in
    /// the journal and are replayed by the next `start`.
    pub fn stop(&self) {
        drop(self.submit_tx.lock().take());
        drop(self.shutdown_tx.lock().take());
        let threads = std::mem::take(&mut *self.threads.lock());
        let deadline = Instant::now() + JOIN_DEADLINE;
        for (name, handle) in threads {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!(thread = %name, "thread still busy at unload; it exits after its current exchange");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<(String, JoinHandle<()>), EngineError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map(|h| (name.to_string(), h))
        .map_err(|source| EngineError::Spawn {
            name: name.to_string(),
            source,
        })
}

fn worker_for(fqdn: &str, workers: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    fqdn.hash(&mut hasher);
    (hasher.finish() % workers as u64) as usize
}

struct JournalThread {
    journal: Journal,
    stats: Arc<Stats>,
    submit_rx: Receiver<Change>,
    done_rx: Receiver<u64>,
    workers: Vec<Sender<Work>>,
}

impl JournalThread {
    fn run(mut self, replay: Vec<(u64, Change)>) {
        for (seq, change) in replay {
            self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
            if !self.dispatch(Some(seq), change) {
                return;
            }
        }
        loop {
            select! {
                recv(self.submit_rx) -> msg => match msg {
                    Ok(first) => {
                        let mut batch = vec![first];
                        batch.extend(self.submit_rx.try_iter().take(MAX_BATCH - 1));
                        if !self.commit(batch) {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                recv(self.done_rx) -> msg => {
                    if let Ok(seq) = msg {
                        self.mark_done(seq);
                    }
                }
            }
        }
        // Shutdown: keep what is still queued on disk, then sync.
        let rest: Vec<Change> = self.submit_rx.try_iter().collect();
        if !rest.is_empty() {
            self.append(&rest);
        }
        while let Ok(seq) = self.done_rx.try_recv() {
            self.mark_done(seq);
        }
        if let Err(err) = self.journal.sync() {
            tracing::error!(%err, "journal sync at unload failed");
        }
    }

    fn mark_done(&mut self, first: u64) {
        let mut seqs = vec![first];
        seqs.extend(self.done_rx.try_iter());
        // sync() also compacts segments whose entries are all done.
        if let Err(err) = self
            .journal
            .mark_done(&seqs)
            .and_then(|()| self.journal.sync())
        {
            Stats::bump(&self.stats.journal_errors);
            tracing::error!(%err, "journal: cannot record {} changes as done", seqs.len());
        }
        self.stats
            .journal_entries
            .store(self.journal.pending() as i64, Ordering::Relaxed);
    }

    /// Appends and syncs the batch; returns one sequence number per change,
    /// or `None`s when the journal cannot take it (the change is still sent).
    fn append(&mut self, batch: &[Change]) -> Vec<Option<u64>> {
        let encoded: Vec<Vec<u8>> = batch
            .iter()
            .filter_map(|c| postcard::to_stdvec(c).ok())
            .collect();
        if encoded.len() != batch.len() {
            tracing::error!("journal: a change failed to encode");
            return vec![None; batch.len()];
        }
        let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let result = self
            .journal
            .append(&payloads)
            .and_then(|seqs| self.journal.sync().map(|()| seqs));
        self.stats
            .journal_entries
            .store(self.journal.pending() as i64, Ordering::Relaxed);
        match result {
            Ok(seqs) => seqs.into_iter().map(Some).collect(),
            Err(err) => {
                Stats::bump(&self.stats.journal_errors);
                tracing::error!(%err, changes = batch.len(), "journal write failed; changes are sent from memory only");
                vec![None; batch.len()]
            }
        }
    }

    fn commit(&mut self, batch: Vec<Change>) -> bool {
        let seqs = self.append(&batch);
        for (seq, change) in seqs.into_iter().zip(batch) {
            if !self.dispatch(seq, change) {
                return false;
            }
        }
        true
    }

    /// Blocks while the sender's queue is full (back-pressure reaches the
    /// callouts' queue, never Kea). False once the senders are gone.
    fn dispatch(&mut self, seq: Option<u64>, change: Change) -> bool {
        let idx = worker_for(&change.fqdn, self.workers.len());
        self.workers[idx].send((seq, change)).is_ok()
    }
}

// Named with a trailing underscore to keep `Sender` free for crossbeam's type.
struct Sender_ {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    rx: Receiver<Work>,
    done_tx: Sender<u64>,
    shutdown_rx: Receiver<()>,
}

impl Sender_ {
    fn run(self) {
        let executor = UpdateExecutor::new(&self.cfg);
        loop {
            let work = select! {
                recv(self.rx) -> msg => match msg { Ok(w) => w, Err(_) => return },
                recv(self.shutdown_rx) -> _ => return,
            };
            if !self.apply(&executor, work) {
                return;
            }
        }
    }

    /// Applies one change until it is done; false when stopped meanwhile.
    fn apply(&self, executor: &UpdateExecutor<'_>, (seq, change): Work) -> bool {
        let mut backoff = BACKOFF_START;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let applied = executor.apply(&change);
            self.stats
                .updates_sent
                .fetch_add(u64::from(applied.stats.sent), Ordering::Relaxed);
            match applied.outcome {
                ApplyOutcome::Done(done) => {
                    self.record_done(&change, &done);
                    self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    if let Some(seq) = seq {
                        let _ = self.done_tx.send(seq);
                    }
                    return true;
                }
                ApplyOutcome::Retry {
                    direction,
                    server,
                    cause,
                    detail,
                } => {
                    Stats::bump(&self.stats.updates_failed);
                    let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
                    let wait = backoff + Duration::from_millis(jitter);
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(fqdn = %change.fqdn, addr = %change.addr, attempt, ?direction, %server, ?cause, %detail, retry_in_ms = wait.as_millis() as u64, "DNS update failed; will retry");
                    }
                    match self.shutdown_rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return false,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn record_done(&self, change: &Change, done: &crate::update::DoneKind) {
        use crate::update::DoneKind;
        match done {
            DoneKind::Published | DoneKind::Removed => {
                Stats::bump(&self.stats.updates_succeeded);
                tracing::debug!(fqdn = %change.fqdn, addr = %change.addr, kind = ?change.kind, "DNS updated");
            }
            DoneKind::Conflict { reason } => {
                Stats::bump(&self.stats.updates_conflict);
                let verb = if change.kind == ChangeKind::Add {
                    "not published"
                } else {
                    "not removed"
                };
                tracing::warn!(fqdn = %change.fqdn, addr = %change.addr, %reason, "name owned by another client or a static record; {verb}");
            }
            other => {
                Stats::bump(&self.stats.updates_refused);
                tracing::error!(fqdn = %change.fqdn, addr = %change.addr, outcome = ?other, "DNS update refused; not retried");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_always_goes_to_the_same_sender() {
        for workers in [1, 2, 7, 64] {
            let a = worker_for("laptop.lan.example.", workers);
            assert!(a < workers);
            assert_eq!(a, worker_for("laptop.lan.example.", workers));
        }
    }
}
