//! The pipeline behind the callouts: callouts hand changes to the journal
//! thread through a bounded channel; the journal thread appends them to the
//! on-disk journal (one fdatasync per batch: group commit) and dispatches them
//! to sender threads, chosen by a hash of the FQDN so that changes of one name
//! stay in order; each sender applies its changes one by one, retrying
//! retryable failures with backoff until they succeed or the engine stops,
//! then reports them done to the journal thread. A change superseded by a
//! later one for the same name and address while it waited is not sent.

/// Reconciliation of the zones against Kea's lease database.
pub mod reconcile;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, Sender, TrySendError, bounded, select, unbounded,
};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};

use self::reconcile::{ReconcileReport, ZoneView};
use crate::change::{Change, ChangeKind, Lease, LeaseRecords};
use crate::config::{Config, DdnsScope, Family, JournalSync, Scopes};
use crate::dns::TsigSigner;
use crate::dns::update::{ApplyOutcome, DoneKind, RetryCause, StepResult, UpdateExecutor};
use crate::journal::{Journal, JournalOptions};
use crate::stats::Stats;

const PUBLISHED_SHARDS: usize = 64;
const PUBLISHED_SHARD_CAPACITY: usize = 256;
/// Most changes written to the journal per group commit.
const MAX_BATCH: usize = 1024;
/// How long the journal thread gathers changes before one fdatasync: at
/// 1,000 changes/s this shares each sync among ~2 changes instead of one,
/// and under a burst among hundreds. It delays a change by at most this.
const GROUP_COMMIT_LINGER: Duration = Duration::from_millis(2);
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Short enough that a sender notices a returning server within seconds
/// even when no other sender gets through first (one batch per sender per
/// ~5-7 s is no load on a server that is down).
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a sender in backoff looks whether others got through.
const BACKOFF_SLICE: Duration = Duration::from_millis(100);
/// How often, and how patiently, a sender in backoff asks the failed
/// server whether it is back (one small query; no load on a dead server).
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

enum Backoff {
    Elapsed,
    /// Another sender got through, or the failed server answers again.
    OthersSucceed,
    Stop,
}
/// How long `stop` waits for each thread before leaving it to finish alone.
const JOIN_DEADLINE: Duration = Duration::from_secs(3);
/// Done marks are synced at most this often: losing them in a crash only
/// means resending changes that are idempotent.
const DONE_SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// A reconciliation asked for by dropped changes waits until none has been
/// dropped for this long: repairing in the middle of an overload would only
/// add to it.
const RECONCILE_QUIET: Duration = Duration::from_secs(1);
/// At most one "queue full" log line per this interval (with the count).
const DROP_LOG_INTERVAL_MS: u64 = 1000;
/// How long a reconciliation waits for room in the full queue before trying
/// again (it never drops what it repairs).
const RECONCILE_QUEUE_WAIT: Duration = Duration::from_millis(20);

/// What [`Engine::publish`] found for an address.
#[derive(Debug, PartialEq, Eq)]
pub enum Publication {
    /// It already published exactly these records.
    Unchanged,
    /// It published `previous` (or nothing) before.
    Changed { previous: Option<LeaseRecords> },
}

/// When [`Engine::start_with`] sends the journal's pending changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// At once, ahead of any new change (a server alone with its database).
    Now,
    /// Not before [`Engine::release_replay`] or the next reconciliation,
    /// which checks each against the lease database it reads. In a Kea HA
    /// pair a returning server's database is behind its partner's until the
    /// HA sync: an add replayed before then could resurrect a lease the
    /// partner has since released or given to another client.
    Hold,
}

/// Why a reconciliation did not start.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileRefused {
    #[error("a reconciliation is already running")]
    Running,
    #[error("the hook is stopping")]
    Stopping,
    #[error("Kea's lease database is not available")]
    NoLeaseDatabase,
}

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

/// Address -> published name, sharded so packet threads rarely contend.
struct Published {
    shards: Vec<Mutex<HashMap<IpAddr, LeaseRecords>>>,
}

impl Published {
    fn new() -> Published {
        Published {
            // Sized for 16,384 addresses up front: growing a shard rehashes
            // it inside a callout (the p99 tail of leases4_committed).
            shards: (0..PUBLISHED_SHARDS)
                .map(|_| Mutex::new(HashMap::with_capacity(PUBLISHED_SHARD_CAPACITY)))
                .collect(),
        }
    }

    fn shard(&self, addr: IpAddr) -> &Mutex<HashMap<IpAddr, LeaseRecords>> {
        // The low bits vary most between leases of one pool in both
        // families (a V6 pool's interface identifiers).
        let low = match addr {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) as u64,
        };
        &self.shards[(low % PUBLISHED_SHARDS as u64) as usize]
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Work {
    seq: Option<u64>,
    change: Change,
    /// When the change entered the engine (Unix ms), for the oldest-pending age.
    queued_ms: u64,
}

/// Changes with the same key replace one another: same records (name,
/// address) in the same directions. A forward-only and a reverse-only change
/// of one name touch different records, so both must run.
type CollapseKey = (String, IpAddr, bool, bool);

fn collapse_key(change: &Change) -> CollapseKey {
    (
        change.records.fqdn.clone(),
        change.records.addr,
        change.records.forward,
        change.records.reverse,
    )
}

#[derive(Clone, Debug, Default)]
struct ServerState {
    succeeded: u64,
    failed: u64,
    consecutive_failures: u32,
    last_success_ms: u64,
    last_error: Option<String>,
}

/// What `leasedns-status` shows, written by the engine's threads.
struct Shared {
    /// Bumped on every successfully applied change: a sender waiting out its
    /// backoff retries at once when another one just got through, so the
    /// zones converge as soon as the DNS server is back.
    successes: AtomicU64,
    servers: Mutex<HashMap<SocketAddr, ServerState>>,
    last_error: Mutex<Option<(u64, String)>>,
    /// Per sender: queue time of the change being worked on (0: idle).
    heads: Vec<AtomicU64>,
    journal_bytes: AtomicU64,
    journal_degraded: AtomicBool,
    reconcile_wanted: AtomicBool,
    reconcile_running: AtomicBool,
    last_reconcile: Mutex<Option<(u64, ReconcileReport)>>,
    /// When a change was last dropped (Unix ms; 0: never).
    last_drop_ms: AtomicU64,
    /// When the last "queue full" line was logged (Unix ms).
    last_drop_log_ms: AtomicU64,
    /// True while a reconciliation runs: callouts then record what they
    /// touch in `touched`, under its lock, so the reconciliation leaves
    /// those names and addresses to the callouts' own (newer) changes.
    tracking: AtomicBool,
    touched: Mutex<Option<Touched>>,
}

/// Names and addresses that callouts changed since a reconciliation took
/// its snapshot of Kea's leases.
#[derive(Default)]
struct Touched {
    addrs: HashSet<IpAddr>,
    names: HashSet<String>,
}

impl Touched {
    fn note(&mut self, change: &Change) {
        self.addrs.insert(change.records.addr);
        self.names.insert(change.records.fqdn.clone());
    }

    fn covers(&self, change: &Change) -> bool {
        self.addrs.contains(&change.records.addr) || self.names.contains(&change.records.fqdn)
    }
}

impl Shared {
    fn error(&self, text: String) {
        *self.last_error.lock() = Some((unix_ms(), text));
    }

    fn end_reconcile(&self) {
        self.tracking.store(false, Ordering::Release);
        *self.touched.lock() = None;
        self.reconcile_running.store(false, Ordering::Release);
    }
}

pub struct Engine {
    cfg: Arc<Config>,
    /// Conflict resolution and TTL per subnet: the hook's parameters until
    /// the adapter hands over Kea's own settings ([`Engine::set_scopes`]).
    scopes: parking_lot::RwLock<Arc<Scopes>>,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
    published: Arc<Published>,
    submit_tx: Sender<Work>,
    /// Dropped on stop: every thread selecting on its receiver wakes up.
    shutdown_tx: Mutex<Option<Sender<()>>>,
    shutdown_rx: Receiver<()>,
    stopped: AtomicBool,
    threads: Mutex<Vec<(String, JoinHandle<()>)>>,
    /// Journal changes from before the restart, held by [`Replay::Hold`].
    held: Mutex<Vec<Work>>,
    /// Already journaled changes for the journal thread to dispatch.
    replay_tx: Sender<Work>,
    /// Done marks for held changes that a reconciliation superseded.
    done_tx: Sender<u64>,
}

impl Engine {
    /// Opens the journal, starts the threads and queues the journal's pending
    /// changes ahead of any new one.
    pub fn start(cfg: Config, stats: Arc<Stats>) -> Result<Engine, EngineError> {
        Engine::start_with(cfg, stats, Replay::Now)
    }

    /// [`Engine::start`], with the journal's pending changes sent as `replay` says.
    pub fn start_with(
        cfg: Config,
        stats: Arc<Stats>,
        replay_policy: Replay,
    ) -> Result<Engine, EngineError> {
        let cfg = Arc::new(cfg);
        let (journal, recovery) = Journal::open(&cfg.journal_dir, JournalOptions::default())?;
        let damaged = recovery.report.torn_tail.is_some() || !recovery.report.corrupt.is_empty();
        let now = unix_ms();
        let mut replay: Vec<Work> = recovery
            .pending
            .into_iter()
            .filter_map(|entry| match crate::journal::decode_change(&entry) {
                Ok(change) => Some(Work {
                    seq: Some(entry.seq),
                    change,
                    queued_ms: now,
                }),
                Err(err) => {
                    tracing::error!(seq = entry.seq, %err, "journal entry does not decode; skipped");
                    None
                }
            })
            .collect();
        let held = if replay_policy == Replay::Hold {
            std::mem::take(&mut replay)
        } else {
            Vec::new()
        };
        if !replay.is_empty() {
            tracing::info!(
                pending = replay.len(),
                "replaying journal entries queued before the restart"
            );
        }

        let workers = cfg.sender_threads.max(1);
        let shared = Arc::new(Shared {
            successes: AtomicU64::new(0),
            servers: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            heads: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            journal_bytes: AtomicU64::new(journal.size_bytes()),
            journal_degraded: AtomicBool::new(false),
            // A damaged journal may have lost changes: reconciliation finds them.
            reconcile_wanted: AtomicBool::new(damaged),
            reconcile_running: AtomicBool::new(false),
            last_reconcile: Mutex::new(None),
            last_drop_ms: AtomicU64::new(0),
            last_drop_log_ms: AtomicU64::new(0),
            tracking: AtomicBool::new(false),
            touched: Mutex::new(None),
        });
        let (submit_tx, submit_rx) = bounded::<Work>(cfg.queue_capacity);
        let (done_tx, done_rx) = unbounded::<u64>();
        let (replay_tx, replay_rx) = unbounded::<Work>();
        let (shutdown_tx, shutdown_rx) = bounded::<()>(0);

        let mut threads = Vec::new();
        let mut worker_txs = Vec::with_capacity(workers);
        for index in 0..workers {
            // Unbounded: while DNS is down, changes wait here (and on disk);
            // the callouts' queue in front stays bounded.
            let (tx, rx) = unbounded::<Work>();
            worker_txs.push(tx);
            let sender = SenderThread {
                index,
                cfg: Arc::clone(&cfg),
                stats: Arc::clone(&stats),
                shared: Arc::clone(&shared),
                rx,
                done_tx: done_tx.clone(),
                shutdown_rx: shutdown_rx.clone(),
            };
            threads.push(spawn(&format!("leasedns-send-{index}"), move || {
                sender.run()
            })?);
        }

        stats
            .journal_entries
            .store(journal.pending() as i64, Ordering::Relaxed);
        stats
            .queue_depth
            .fetch_add(replay.len() as i64, Ordering::Relaxed);
        let journal_thread = JournalThread {
            journal,
            sync: cfg.journal_sync,
            stats: Arc::clone(&stats),
            shared: Arc::clone(&shared),
            submit_rx,
            done_rx,
            replay_rx,
            shutdown_rx: shutdown_rx.clone(),
            workers: worker_txs,
            done_dirty: false,
            last_done_sync: Instant::now(),
        };
        threads.push(spawn("leasedns-journal", move || {
            journal_thread.run(replay)
        })?);

        Ok(Engine {
            scopes: parking_lot::RwLock::new(Arc::new(Scopes::from_hook(&cfg))),
            cfg,
            stats,
            shared,
            published: Arc::new(Published::new()),
            submit_tx,
            shutdown_tx: Mutex::new(Some(shutdown_tx)),
            shutdown_rx,
            stopped: AtomicBool::new(false),
            threads: Mutex::new(threads),
            held: Mutex::new(held),
            replay_tx,
            done_tx,
        })
    }

    /// How many journal changes wait for [`Engine::release_replay`] or a
    /// reconciliation ([`Replay::Hold`]).
    pub fn held_replay(&self) -> usize {
        self.held.lock().len()
    }

    /// Sends every held journal change as it is (the lease database is
    /// known to be current: no HA partner to catch up with).
    pub fn release_replay(&self) {
        let held = std::mem::take(&mut *self.held.lock());
        if held.is_empty() {
            return;
        }
        tracing::info!(
            pending = held.len(),
            "replaying journal entries queued before the restart"
        );
        self.stats
            .queue_depth
            .fetch_add(held.len() as i64, Ordering::Relaxed);
        for work in held {
            let _ = self.replay_tx.send(work);
        }
    }

    /// Asks for a reconciliation as soon as none is running (see
    /// [`Engine::reconcile_due`]).
    pub fn request_reconcile(&self) {
        self.shared.reconcile_wanted.store(true, Ordering::Release);
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How a lease of `subnet_id` is written (conflict resolution, TTL).
    pub fn scope(&self, subnet_id: u32) -> DdnsScope {
        self.scopes.read().for_subnet(subnet_id)
    }

    /// Kea's own DDNS settings per subnet, read from its configuration,
    /// for every change and reconciliation from now on.
    pub fn set_scopes(&self, scopes: Scopes) {
        *self.scopes.write() = Arc::new(scopes);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues a change without blocking; false when the queue is full and
    /// the change was dropped. Kea must keep answering clients whatever DNS
    /// does, so a drop is counted, logged (at most once a second) and asks
    /// for a reconciliation, which repairs DNS once drops have stopped. The
    /// caller must not record a dropped change as published.
    pub fn submit(&self, change: Change) -> bool {
        Stats::bump(&self.stats.changes_submitted);
        let result = if self.shared.tracking.load(Ordering::Acquire) {
            // Under the lock, so that a reconciliation either sees this
            // change as touched or queues its own repair before it.
            let mut touched = self.shared.touched.lock();
            if let Some(touched) = touched.as_mut() {
                touched.note(&change);
            }
            try_queue(&self.submit_tx, &self.stats, change)
        } else {
            try_queue(&self.submit_tx, &self.stats, change)
        };
        let Err(change) = result else {
            return true;
        };
        Stats::bump(&self.stats.changes_dropped);
        let now = unix_ms();
        self.shared.last_drop_ms.store(now, Ordering::Release);
        self.shared.reconcile_wanted.store(true, Ordering::Release);
        let last_log = self.shared.last_drop_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last_log) >= DROP_LOG_INTERVAL_MS
            && self
                .shared
                .last_drop_log_ms
                .compare_exchange(last_log, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let dropped = self.stats.changes_dropped.load(Ordering::Relaxed);
            tracing::error!(fqdn = %change.records.fqdn, addr = %change.records.addr, dropped_so_far = dropped, "change queue full; DNS change dropped (a reconciliation repairs it once the overload ends)");
        }
        false
    }

    /// Records what `records.addr` should publish now. A renewal with the
    /// same name, address and TTL needs no DNS traffic and, as it is the
    /// common case in a callout, costs no copy.
    pub fn publish(&self, records: &LeaseRecords) -> Publication {
        let mut shard = self.published.shard(records.addr).lock();
        if shard.get(&records.addr) == Some(records) {
            return Publication::Unchanged;
        }
        Publication::Changed {
            previous: shard.insert(records.addr, records.clone()),
        }
    }

    /// Forgets what `addr` published, returning it.
    pub fn unpublish(&self, addr: IpAddr) -> Option<LeaseRecords> {
        self.published.shard(addr).lock().remove(&addr)
    }

    /// Forgets `records` if they are still what their address publishes:
    /// their change was dropped, so the next renewal must send it again.
    pub fn unpublish_if(&self, records: &LeaseRecords) {
        let mut shard = self.published.shard(records.addr).lock();
        if shard.get(&records.addr) == Some(records) {
            shard.remove(&records.addr);
        }
    }

    /// True when a reconciliation was asked for (dropped changes, a damaged
    /// or degraded journal) and may start now: none is running and no change
    /// has been dropped for [`RECONCILE_QUIET`].
    pub fn reconcile_due(&self) -> bool {
        let quiet_since = self.shared.last_drop_ms.load(Ordering::Acquire);
        self.shared.reconcile_wanted.load(Ordering::Acquire)
            && !self.shared.reconcile_running.load(Ordering::Acquire)
            && unix_ms().saturating_sub(quiet_since) >= RECONCILE_QUIET.as_millis() as u64
    }

    /// Starts a reconciliation on a background thread against the leases
    /// that `leases` reads (on the caller's thread, Kea's main thread).
    /// Callouts record what they touch from before that snapshot on, so the
    /// reconciliation never undoes a newer change. Returns the lease count.
    pub fn start_reconcile(
        &self,
        leases: impl FnOnce() -> Option<Vec<Lease>>,
    ) -> Result<usize, ReconcileRefused> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(ReconcileRefused::Stopping);
        }
        if self.shared.reconcile_running.swap(true, Ordering::AcqRel) {
            return Err(ReconcileRefused::Running);
        }
        // This run answers every request made so far.
        self.shared.reconcile_wanted.store(false, Ordering::Release);
        *self.shared.touched.lock() = Some(Touched::default());
        self.shared.tracking.store(true, Ordering::Release);
        let Some(leases) = leases() else {
            self.shared.end_reconcile();
            return Err(ReconcileRefused::NoLeaseDatabase);
        };
        let n = leases.len();
        let held = std::mem::take(&mut *self.held.lock());
        let run = ReconcileRun {
            held,
            replay_tx: self.replay_tx.clone(),
            done_tx: self.done_tx.clone(),
            cfg: Arc::clone(&self.cfg),
            scopes: Arc::clone(&self.scopes.read()),
            stats: Arc::clone(&self.stats),
            shared: Arc::clone(&self.shared),
            published: Arc::clone(&self.published),
            submit_tx: self.submit_tx.clone(),
            shutdown_rx: self.shutdown_rx.clone(),
        };
        match spawn("leasedns-reconcile", move || run.run(leases)) {
            Ok(handle) => {
                let mut threads = self.threads.lock();
                threads.retain(|(_, h)| !h.is_finished());
                threads.push(handle);
                Ok(n)
            }
            Err(err) => {
                self.shared.end_reconcile();
                tracing::error!(%err, "cannot start reconciliation");
                Err(ReconcileRefused::Stopping)
            }
        }
    }

    /// The `leasedns-status` answer.
    pub fn status(&self) -> Value {
        let now = unix_ms();
        let oldest = self
            .shared
            .heads
            .iter()
            .map(|h| h.load(Ordering::Relaxed))
            .filter(|&t| t > 0)
            .min();
        let servers = self.shared.servers.lock().clone();
        let zone_json = |zones: &[crate::config::DdnsDomain], direction: &str| -> Vec<Value> {
            zones
                .iter()
                .map(|z| {
                    let list: Vec<Value> = z
                        .servers
                        .iter()
                        .map(|s| {
                            let st = servers.get(s).cloned().unwrap_or_default();
                            let state = match (st.succeeded + st.failed, st.consecutive_failures) {
                                (0, _) => "unused",
                                (_, 0) => "ok",
                                _ => "failing",
                            };
                            json!({
                                "address": s.to_string(),
                                "state": state,
                                "succeeded": st.succeeded,
                                "failed": st.failed,
                                "consecutive-failures": st.consecutive_failures,
                                "last-success-age": (st.last_success_ms > 0).then(|| (now.saturating_sub(st.last_success_ms)) as f64 / 1000.0),
                                "last-error": st.last_error,
                            })
                        })
                        .collect();
                    json!({"zone": z.name.to_ascii(), "direction": direction, "servers": list})
                })
                .collect()
        };
        let mut zones = zone_json(&self.cfg.forward, "forward");
        zones.extend(zone_json(&self.cfg.reverse, "reverse"));
        let last_error = self.shared.last_error.lock().clone();
        let last_reconcile = self.shared.last_reconcile.lock().clone();
        let stats: serde_json::Map<String, Value> = self
            .stats
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let family = match self.cfg.family {
            Family::V4 => "v4",
            Family::V6 => "v6",
        };
        json!({
            "family": family,
            "pending-changes": self.stats.queue_depth.load(Ordering::Relaxed),
            "oldest-pending-age": oldest.map(|t| now.saturating_sub(t) as f64 / 1000.0),
            "journal": {
                "dir": self.cfg.journal_dir.display().to_string(),
                "entries": self.stats.journal_entries.load(Ordering::Relaxed),
                "size-bytes": self.shared.journal_bytes.load(Ordering::Relaxed),
                "degraded": self.shared.journal_degraded.load(Ordering::Relaxed),
            },
            "zones": zones,
            "last-error": last_error.map(|(t, e)| json!({"age": now.saturating_sub(t) as f64 / 1000.0, "error": e})),
            "reconcile": {
                "running": self.shared.reconcile_running.load(Ordering::Relaxed),
                "last": last_reconcile.map(|(t, r)| json!({"age": now.saturating_sub(t) as f64 / 1000.0, "report": r})),
            },
            "statistics": stats,
        })
    }

    /// Stops the threads: the journal thread writes what is queued and syncs;
    /// senders finish their current exchange. Unsent changes stay pending in
    /// the journal and are replayed by the next `start`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
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

/// Puts a change on the journal thread's queue without blocking; gives it
/// back when the queue is full (or the engine stopped).
fn try_queue(tx: &Sender<Work>, stats: &Stats, change: Change) -> Result<(), Change> {
    stats.queue_depth.fetch_add(1, Ordering::Relaxed);
    match tx.try_send(Work {
        seq: None,
        change,
        queued_ms: unix_ms(),
    }) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(work)) | Err(TrySendError::Disconnected(work)) => {
            stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            Err(work.change)
        }
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
    sync: JournalSync,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
    submit_rx: Receiver<Work>,
    done_rx: Receiver<u64>,
    /// Journal changes released after the start ([`Replay::Hold`]).
    replay_rx: Receiver<Work>,
    shutdown_rx: Receiver<()>,
    workers: Vec<Sender<Work>>,
    done_dirty: bool,
    last_done_sync: Instant,
}

impl JournalThread {
    fn run(mut self, replay: Vec<Work>) {
        for work in replay {
            if !self.dispatch(work) {
                return;
            }
        }
        loop {
            select! {
                recv(self.submit_rx) -> msg => match msg {
                    Ok(first) => {
                        let batch = self.gather(first);
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
                recv(self.replay_rx) -> msg => {
                    if let Ok(work) = msg
                        && !self.dispatch(work)
                    {
                        break;
                    }
                }
                recv(self.shutdown_rx) -> _ => break,
                default(DONE_SYNC_INTERVAL) => self.sync_done_marks(),
            }
        }
        // Shutdown: keep what is still queued on disk, then sync.
        let mut rest: Vec<Work> = self.submit_rx.try_iter().collect();
        if !rest.is_empty() {
            self.append(&mut rest);
        }
        while let Ok(seq) = self.done_rx.try_recv() {
            self.mark_done(seq);
        }
        if let Err(err) = self.journal.sync() {
            tracing::error!(%err, "journal sync at unload failed");
        }
    }

    /// Group commit: after the first change, waits up to `GROUP_COMMIT_LINGER`
    /// for more (at most `MAX_BATCH`), so one fdatasync covers them all.
    /// Callouts never wait for this: they only enqueue.
    fn gather(&self, first: Work) -> Vec<Work> {
        let mut batch = vec![first];
        batch.extend(self.submit_rx.try_iter().take(MAX_BATCH - 1));
        if self.sync == JournalSync::None {
            return batch;
        }
        let deadline = Instant::now() + GROUP_COMMIT_LINGER;
        while batch.len() < MAX_BATCH {
            match self.submit_rx.recv_deadline(deadline) {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        batch
    }

    fn mark_done(&mut self, first: u64) {
        let mut seqs = vec![first];
        seqs.extend(self.done_rx.try_iter());
        if let Err(err) = self.journal.mark_done(&seqs) {
            Stats::bump(&self.stats.journal_errors);
            tracing::error!(%err, "journal: cannot record {} changes as done", seqs.len());
        }
        self.done_dirty = true;
        self.stats
            .journal_entries
            .store(self.journal.pending() as i64, Ordering::Relaxed);
        if self.last_done_sync.elapsed() >= DONE_SYNC_INTERVAL {
            self.sync_done_marks();
        }
    }

    /// sync() also compacts segments whose entries are all done.
    fn sync_done_marks(&mut self) {
        if !self.done_dirty {
            return;
        }
        self.last_done_sync = Instant::now();
        match self.journal.sync() {
            Ok(()) => self.done_dirty = false,
            Err(err) => {
                Stats::bump(&self.stats.journal_errors);
                tracing::warn!(%err, "journal: sync of done marks failed; retried later");
            }
        }
        self.shared
            .journal_bytes
            .store(self.journal.size_bytes(), Ordering::Relaxed);
    }

    /// Appends (and with `journal-sync: batch`, syncs) the batch, giving each
    /// change its sequence number. When the journal cannot take it (disk
    /// full, I/O error) the changes are still sent, from memory only; the
    /// journal is flagged degraded until a write succeeds again, and then a
    /// reconciliation repairs whatever a crash in between could have lost.
    fn append(&mut self, batch: &mut [Work]) {
        let encoded: Result<Vec<Vec<u8>>, _> = batch
            .iter()
            .map(|w| crate::journal::encode_change(&w.change))
            .collect();
        let result = match encoded {
            Ok(encoded) => {
                let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
                self.journal
                    .append(&payloads)
                    .and_then(|seqs| match self.sync {
                        JournalSync::Batch => self.journal.sync().map(|()| seqs),
                        JournalSync::None => Ok(seqs),
                    })
            }
            Err(err) => {
                tracing::error!(%err, "journal: a change failed to encode");
                return;
            }
        };
        self.stats
            .journal_entries
            .store(self.journal.pending() as i64, Ordering::Relaxed);
        self.shared
            .journal_bytes
            .store(self.journal.size_bytes(), Ordering::Relaxed);
        match result {
            Ok(seqs) => {
                for (work, seq) in batch.iter_mut().zip(seqs) {
                    work.seq = Some(seq);
                }
                if self.shared.journal_degraded.swap(false, Ordering::AcqRel) {
                    self.stats.journal_degraded.store(0, Ordering::Relaxed);
                    self.shared.reconcile_wanted.store(true, Ordering::Release);
                    tracing::warn!("journal writable again; reconciling to close any gap");
                }
            }
            Err(err) => {
                Stats::bump(&self.stats.journal_errors);
                self.shared.error(format!("journal: {err}"));
                if !self.shared.journal_degraded.swap(true, Ordering::AcqRel) {
                    self.stats.journal_degraded.store(1, Ordering::Relaxed);
                    tracing::error!(%err, dir = %self.journal.dir().display(), "JOURNAL DEGRADED: changes are kept in memory only until the journal can be written again; Kea keeps serving");
                }
            }
        }
    }

    fn commit(&mut self, mut batch: Vec<Work>) -> bool {
        self.append(&mut batch);
        batch.into_iter().all(|work| self.dispatch(work))
    }

    /// False once the senders are gone.
    fn dispatch(&mut self, work: Work) -> bool {
        let idx = worker_for(&work.change.records.fqdn, self.workers.len());
        self.workers[idx].send(work).is_ok()
    }
}

struct SenderThread {
    index: usize,
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
    rx: Receiver<Work>,
    done_tx: Sender<u64>,
    shutdown_rx: Receiver<()>,
}

/// A sender's own queue: FIFO, plus how many queued changes share each
/// (name, address), so a superseded change is recognised in O(1).
#[derive(Default)]
struct LocalQueue {
    items: VecDeque<Work>,
    keys: HashMap<CollapseKey, u32>,
}

impl LocalQueue {
    fn push(&mut self, work: Work) {
        *self.keys.entry(collapse_key(&work.change)).or_default() += 1;
        self.items.push_back(work);
    }

    fn pop(&mut self) -> Option<Work> {
        let work = self.items.pop_front()?;
        let key = collapse_key(&work.change);
        if let Some(n) = self.keys.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.keys.remove(&key);
            }
        }
        Some(work)
    }

    /// A later change for the same name and address is queued.
    fn supersedes(&self, change: &Change) -> bool {
        self.keys.contains_key(&collapse_key(change))
    }
}

impl SenderThread {
    fn run(self) {
        let executor = UpdateExecutor::new(&self.cfg);
        let mut local = LocalQueue::default();
        loop {
            if local.items.is_empty() {
                select! {
                    recv(self.rx) -> msg => match msg { Ok(w) => local.push(w), Err(_) => return },
                    recv(self.shutdown_rx) -> _ => return,
                }
            }
            for w in self.rx.try_iter() {
                local.push(w);
            }
            let batch = self.take_batch(&mut local);
            if batch.is_empty() {
                continue;
            }
            let oldest = batch.iter().map(|w| w.queued_ms).min().unwrap_or(0);
            self.shared.heads[self.index].store(oldest, Ordering::Relaxed);
            let keep_going = self.apply(&executor, batch, &mut local);
            self.shared.heads[self.index].store(0, Ordering::Relaxed);
            if !keep_going {
                return;
            }
        }
    }

    /// The changes at the head of the queue that can share messages: up to
    /// `max-changes-per-update`, stopping before a second change of a name
    /// or address already taken (it must wait for the first one's result).
    /// Superseded changes are finished on the way. Under load the queue
    /// fills while a batch is in flight, so batches grow with the load and
    /// no change waits for a batch to fill.
    fn take_batch(&self, local: &mut LocalQueue) -> Vec<Work> {
        let max = self.cfg.max_changes_per_update.max(1);
        let mut batch: Vec<Work> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let mut addrs: HashSet<IpAddr> = HashSet::new();
        while batch.len() < max {
            let Some(front) = local.items.front() else {
                break;
            };
            if names.contains(&front.change.records.fqdn)
                || addrs.contains(&front.change.records.addr)
            {
                break;
            }
            let Some(work) = local.pop() else { break };
            if local.supersedes(&work.change) {
                self.finish(&work, None);
                continue;
            }
            names.insert(work.change.records.fqdn.clone());
            addrs.insert(work.change.records.addr);
            batch.push(work);
        }
        batch
    }

    fn finish(&self, work: &Work, done: Option<&DoneKind>) {
        match done {
            Some(done) => self.record_done(&work.change, done),
            None => {
                Stats::bump(&self.stats.changes_superseded);
                tracing::debug!(fqdn = %work.change.records.fqdn, addr = %work.change.records.addr, "change superseded by a later one; not sent");
            }
        }
        self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        if let Some(seq) = work.seq {
            let _ = self.done_tx.send(seq);
        }
    }

    fn note_servers(&self, steps: &[crate::dns::update::StepRecord]) {
        let now = unix_ms();
        let mut servers = self.shared.servers.lock();
        for step in steps {
            let st = servers.entry(step.server).or_default();
            let ok = match &step.result {
                StepResult::Answer(rcode) => !rcode.is_retryable(),
                StepResult::Failed(err) => !err.is_retryable(),
            };
            if ok {
                st.succeeded += 1;
                st.consecutive_failures = 0;
                st.last_success_ms = now;
            } else {
                st.failed += 1;
                st.consecutive_failures += 1;
                st.last_error = Some(format!("{:?}", step.result));
            }
        }
    }

    /// Applies a batch until every change in it is done or superseded;
    /// false when stopped meanwhile (what is left stays pending in the
    /// journal). Changes that must be retried are retried together, after
    /// the backoff, in their order.
    fn apply(
        &self,
        executor: &UpdateExecutor<'_>,
        mut pending: Vec<Work>,
        local: &mut LocalQueue,
    ) -> bool {
        let mut backoff = BACKOFF_START;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let changes: Vec<&Change> = pending.iter().map(|w| &w.change).collect();
            let applied = executor.apply_batch(&changes);
            self.stats
                .updates_sent
                .fetch_add(u64::from(applied.stats.sent), Ordering::Relaxed);
            self.note_servers(&applied.steps);
            let mut retry = Vec::new();
            // The first change to retry leads the log line and last-error.
            let mut failure = None;
            for (work, outcome) in pending.into_iter().zip(applied.outcomes) {
                match outcome {
                    ApplyOutcome::Done(done) => {
                        self.shared.successes.fetch_add(1, Ordering::Relaxed);
                        self.finish(&work, Some(&done));
                    }
                    ApplyOutcome::Retry {
                        direction,
                        server,
                        cause,
                        detail,
                    } => {
                        failure.get_or_insert((direction, server, cause, detail));
                        retry.push(work);
                    }
                }
            }
            let (Some((direction, server, cause, detail)), Some(first)) = (failure, retry.first())
            else {
                return true;
            };
            let (fqdn, addr) = (&first.change.records.fqdn, first.change.records.addr);
            self.stats
                .updates_failed
                .fetch_add(retry.len() as u64, Ordering::Relaxed);
            let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 2);
            let wait = backoff + Duration::from_millis(jitter);
            if attempt == 1 || attempt.is_power_of_two() {
                tracing::warn!(%fqdn, %addr, changes = retry.len(), attempt, ?direction, %server, ?cause, %detail, retry_in_ms = wait.as_millis() as u64, "DNS update failed; will retry");
            }
            self.shared
                .error(format!("{fqdn} {addr}: {cause:?} from {server}: {detail}"));
            // Only a server that did not answer at all is probed: one that
            // answers SERVFAIL would pass the probe and defeat the backoff.
            let probe = matches!(
                cause,
                RetryCause::Timeout
                    | RetryCause::ConnectionRefused
                    | RetryCause::Unreachable
                    | RetryCause::Io
            )
            .then_some(server);
            let server_back = match self.wait_backoff(wait, probe) {
                Backoff::Stop => return false,
                Backoff::OthersSucceed => true,
                Backoff::Elapsed => false,
            };
            for w in self.rx.try_iter() {
                local.push(w);
            }
            pending = Vec::with_capacity(retry.len());
            for work in retry {
                if local.supersedes(&work.change) {
                    self.finish(&work, None);
                } else {
                    pending.push(work);
                }
            }
            if pending.is_empty() {
                return true;
            }
            backoff = if server_back {
                BACKOFF_START
            } else {
                (backoff * 2).min(BACKOFF_MAX)
            };
        }
    }

    /// Sleeps `wait`, in slices, unless the engine stops, another sender
    /// applies a change meanwhile, or `probe` (the server that did not
    /// answer last) answers a probe query: the server is back, retry now.
    /// Without the probe, senders that all failed would sleep out their
    /// backoff after the server returned.
    fn wait_backoff(&self, wait: Duration, probe: Option<SocketAddr>) -> Backoff {
        let seen = self.shared.successes.load(Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + wait;
        let mut next_probe = started + PROBE_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Backoff::Elapsed;
            }
            match self
                .shutdown_rx
                .recv_timeout((deadline - now).min(BACKOFF_SLICE))
            {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return Backoff::Stop,
            }
            if self.shared.successes.load(Ordering::Relaxed) != seen {
                return Backoff::OthersSucceed;
            }
            if let Some(server) = probe
                && Instant::now() >= next_probe
            {
                if crate::dns::responds(server, PROBE_TIMEOUT) {
                    return Backoff::OthersSucceed;
                }
                next_probe = Instant::now() + PROBE_INTERVAL;
            }
        }
    }

    fn record_done(&self, change: &Change, done: &DoneKind) {
        match done {
            DoneKind::Published | DoneKind::Removed => {
                Stats::bump(&self.stats.updates_succeeded);
                tracing::debug!(fqdn = %change.records.fqdn, addr = %change.records.addr, kind = ?change.kind, "DNS updated");
            }
            DoneKind::Conflict { reason } => {
                Stats::bump(&self.stats.updates_conflict);
                let verb = if change.kind == ChangeKind::Add {
                    "not published"
                } else {
                    "not removed"
                };
                tracing::warn!(fqdn = %change.records.fqdn, addr = %change.records.addr, %reason, "name owned by another client or a static record; {verb}");
            }
            // The name Kea gave the lease (the client's, mostly) lies in no
            // zone of ours: kea-dhcp-ddns drops such a request too.
            DoneKind::NoZone { .. } => {
                Stats::bump(&self.stats.names_rejected);
                tracing::warn!(fqdn = %change.records.fqdn, addr = %change.records.addr, outcome = ?done, "name outside every configured zone; not published");
            }
            other => {
                Stats::bump(&self.stats.updates_refused);
                self.shared.error(format!(
                    "{} {}: {other:?}",
                    change.records.fqdn, change.records.addr
                ));
                tracing::error!(fqdn = %change.records.fqdn, addr = %change.records.addr, outcome = ?other, "DNS update refused; not retried");
            }
        }
    }
}

struct ReconcileRun {
    /// Journal changes held since the start, checked against the leases.
    held: Vec<Work>,
    replay_tx: Sender<Work>,
    done_tx: Sender<u64>,
    cfg: Arc<Config>,
    scopes: Arc<Scopes>,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
    published: Arc<Published>,
    submit_tx: Sender<Work>,
    shutdown_rx: Receiver<()>,
}

impl ReconcileRun {
    fn run(self, leases: Vec<Lease>) {
        let report = self.reconcile(&leases);
        tracing::info!(
            leases = report.leases,
            names = report.names_read,
            missing = report.missing,
            stale = report.stale,
            queued = report.queued,
            errors = report.errors.len(),
            seconds = report.seconds,
            "reconciliation finished"
        );
        Stats::bump(&self.stats.reconcile_runs);
        *self.shared.last_reconcile.lock() = Some((unix_ms(), report));
        self.shared.end_reconcile();
    }

    /// Queues one repair unless a callout touched its name or address since
    /// the snapshot (the callout's own change is newer). Waits for room in
    /// a full queue instead of dropping. None: the engine is stopping.
    fn queue_repair(&self, mut change: Change) -> Option<bool> {
        loop {
            {
                let touched = self.shared.touched.lock();
                if touched.as_ref().is_some_and(|t| t.covers(&change)) {
                    return Some(false);
                }
                match try_queue(&self.submit_tx, &self.stats, change) {
                    Ok(()) => {
                        Stats::bump(&self.stats.changes_submitted);
                        Stats::bump(&self.stats.reconcile_changes);
                        return Some(true);
                    }
                    Err(back) => change = back,
                }
            }
            match self.shutdown_rx.recv_timeout(RECONCILE_QUEUE_WAIT) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return None,
            }
        }
    }

    /// The journal's changes from before the restart, against the lease
    /// database as it is now. An add is superseded: this run adds whatever
    /// an active lease lacks, and a lease released or given to another
    /// client meanwhile (by an HA partner) must not come back. A removal
    /// still runs unless an active lease has that name and address again
    /// (this run cannot find names without a DHCID), or a callout has
    /// touched them since the snapshot.
    fn resolve_held(&self, desired: &[LeaseRecords], report: &mut ReconcileReport) {
        if self.held.is_empty() {
            return;
        }
        let active = reconcile::ActiveLeases::of(desired);
        for work in &self.held {
            let keep = active.still_wants(&work.change)
                && !self
                    .shared
                    .touched
                    .lock()
                    .as_ref()
                    .is_some_and(|t| t.covers(&work.change));
            if keep {
                report.replayed += 1;
                self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
                let _ = self.replay_tx.send(Work {
                    seq: work.seq,
                    change: work.change.clone(),
                    queued_ms: work.queued_ms,
                });
            } else {
                report.replay_superseded += 1;
                Stats::bump(&self.stats.changes_superseded);
                if let Some(seq) = work.seq {
                    let _ = self.done_tx.send(seq);
                }
            }
        }
        tracing::info!(
            replayed = report.replayed,
            superseded = report.replay_superseded,
            "journal entries from before the restart checked against the lease database"
        );
    }

    fn reconcile(&self, leases: &[Lease]) -> ReconcileReport {
        let started = Instant::now();
        let cfg = &self.cfg;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let desired = reconcile::desired_state(leases, &self.scopes, now);
        let mut report = ReconcileReport {
            leases: desired.len(),
            ..ReconcileReport::default()
        };
        self.resolve_held(&desired, &mut report);
        let signers: Vec<TsigSigner> = cfg.tsig_keys.iter().map(TsigSigner::new).collect();
        let mut view = ZoneView::new();
        // The other family's reverse zones are its server's: not read.
        let reverse = reconcile::reverse_zones_of(&cfg.reverse, cfg.family);
        for zone in cfg.forward.iter().chain(&reverse) {
            match reconcile::read_zone(zone, &signers, cfg.dns_server_timeout, &mut view) {
                Ok(n) => report.names_read += n,
                Err(err) => report.errors.push(err.to_string()),
            }
        }
        if !report.errors.is_empty() {
            // A zone we could not read would look empty: adding everything is
            // harmless, but removing "stale" names would be wrong.
            tracing::warn!(errors = ?report.errors, "reconciliation could not read every zone; nothing is removed this time");
        }
        for d in &desired {
            // A callout's entry made after the snapshot is newer: keep it.
            let touched = self.shared.touched.lock();
            if touched.as_ref().is_some_and(|t| t.addrs.contains(&d.addr)) {
                continue;
            }
            self.published
                .shard(d.addr)
                .lock()
                .insert(d.addr, d.clone());
        }
        let remove_stale = cfg.reconcile.remove_stale && report.errors.is_empty();
        let (changes, missing, stale) = reconcile::plan(
            &desired,
            &view,
            &cfg.forward,
            &reverse,
            cfg.family,
            remove_stale,
        );
        report.missing = missing;
        report.stale = stale;
        // Rate limit: at most `reconcile-rate` changes per second, in slices of 100 ms.
        let per_slice = (cfg.reconcile.rate / 10).max(1) as usize;
        'slices: for chunk in changes.chunks(per_slice) {
            for change in chunk {
                match self.queue_repair(change.clone()) {
                    Some(true) => {
                        tracing::info!(fqdn = %change.records.fqdn, addr = %change.records.addr, kind = ?change.kind, forward = change.records.forward, reverse = change.records.reverse, "reconciliation repairs DNS");
                        report.queued += 1;
                    }
                    Some(false) => report.left_to_callouts += 1,
                    None => break 'slices,
                }
            }
            match self.shutdown_rx.recv_timeout(Duration::from_millis(100)) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(fqdn: &str, last: u8, kind: ChangeKind) -> Change {
        Change {
            kind,
            records: LeaseRecords {
                fqdn: fqdn.into(),
                addr: IpAddr::from([10, 0, 0, last]),
                dhcid: vec![1],
                ttl: 600,
                forward: true,
                reverse: true,
                mode: crate::config::ConflictMode::CheckWithDhcid,
            },
        }
    }

    fn work(change: Change) -> Work {
        Work {
            seq: None,
            change,
            queued_ms: 0,
        }
    }

    #[test]
    fn same_name_always_goes_to_the_same_sender() {
        for workers in [1, 2, 7, 64] {
            let a = worker_for("laptop.lan.example.", workers);
            assert!(a < workers);
            assert_eq!(a, worker_for("laptop.lan.example.", workers));
        }
    }

    #[test]
    fn a_later_change_for_the_same_name_and_address_supersedes() {
        let mut q = LocalQueue::default();
        q.push(work(change("a.", 1, ChangeKind::Add)));
        q.push(work(change("a.", 2, ChangeKind::Add)));
        q.push(work(change("a.", 1, ChangeKind::Remove)));
        let first = q.pop().unwrap();
        assert!(
            q.supersedes(&first.change),
            "the removal of .1 supersedes its add"
        );
        let second = q.pop().unwrap();
        assert!(
            !q.supersedes(&second.change),
            "another address is another record"
        );
        let third = q.pop().unwrap();
        assert_eq!(third.change.kind, ChangeKind::Remove);
        assert!(!q.supersedes(&third.change));
        assert!(q.pop().is_none());
        assert!(q.keys.is_empty());
    }

    #[test]
    fn changes_of_other_directions_do_not_supersede() {
        let mut q = LocalQueue::default();
        let mut reverse_only = change("a.", 1, ChangeKind::Remove);
        reverse_only.records.forward = false;
        let mut forward_only = change("a.", 1, ChangeKind::Remove);
        forward_only.records.reverse = false;
        q.push(work(reverse_only));
        q.push(work(forward_only));
        let first = q.pop().unwrap();
        assert!(
            !q.supersedes(&first.change),
            "the reverse removal must still run"
        );
    }
}
