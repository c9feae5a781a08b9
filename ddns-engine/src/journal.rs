//! Crash-safe on-disk log of intended DNS changes.
//!
//! The journal stores opaque payloads (the hook stores postcard-encoded
//! [`Change`]s) so that changes accepted from Kea survive a crash or restart of
//! `kea-dhcp4` or `kea-dhcp6` and are replayed on the next start.
//!
//! # Directory
//!
//! `journal-dir` holds the segment files `journal-<16 lower-case hex digits>.log`
//! and a `LOCK` file. The directory is created with mode 0700 if it is missing,
//! files are created 0600. [`Journal::open`] takes an exclusive `flock` on
//! `LOCK` (held until the [`Journal`] is dropped), so two Kea processes cannot
//! share a journal. Other file names are ignored; a segment whose header is not
//! recognised is renamed to `<name>.corrupt` and left for the operator.
//!
//! # Segment format (version 3)
//!
//! All integers are little-endian.
//!
//! ```text
//! header:  magic "LDNSJRNL" (8 bytes) | version: u32 = 3
//! record:  len: u32 | crc: u32 | kind: u8 | seq: u64 | payload: len bytes
//! ```
//!
//! The version says how entry payloads encode a [`Change`] (see `payload.rs`);
//! header and records are laid out the same in every version. Version 1
//! (release 0.1.0) lacks the change's conflict-resolution mode, version 2
//! has IPv4 addresses only; their segments are still replayed, new entries
//! always go to a segment of the current version. Done records apply
//! across versions.
//!
//! * `len` is the payload length; more than 1 MiB ([`MAX_PAYLOAD`]) is corruption.
//! * `crc` is CRC-32 (IEEE, as computed by `crc32fast`) over the `len` bytes,
//!   `kind`, `seq` and the payload, so a damaged length cannot pass as a
//!   shorter record.
//! * kind 1, *entry*: `seq` is the entry's sequence number, the payload is the
//!   caller's bytes.
//! * kind 2, *done*: the payload is a list of inclusive ranges
//!   `first: u64 | last: u64` (16 bytes each) of sequence numbers that are
//!   finished; `seq` holds the writer's next unassigned sequence number. A range
//!   may cover numbers that have no entry (or whose segment is gone); they are
//!   ignored.
//!
//! The number in a segment's name is the first sequence number assigned while
//! it was the active segment; names are unique and ascend in creation order.
//! Sequence numbers ascend across segments and restarts: on open the next one is
//! above every name, entry and done record seen, and the newest segment is
//! never deleted, so the mark survives even when everything is done.
//!
//! # Writing and durability
//!
//! [`Journal::append`] and [`Journal::mark_done`] write without syncing;
//! [`Journal::sync`] makes everything written so far durable (fdatasync of the
//! segments written since the last sync, fsync of the directory after a segment
//! was created or deleted). The active segment is rotated once it exceeds
//! `segment_size`.
//!
//! A failed write is truncated back to the last good record. If even that fails,
//! or a sync fails, the active segment is abandoned: the next write opens a new
//! segment and first rewrites every entry and done range written since the last
//! successful sync (the journal keeps those in memory until a sync succeeds), and
//! entries whose write could not be undone are covered by a done record.
//!
//! # Compaction
//!
//! After a successful sync, every segment other than the active and the newest
//! one whose entries are all done is deleted, oldest first. Deleting a segment
//! whose done records may still be needed (because an older segment stays) is
//! preceded by a synced *checkpoint*: done records covering every sequence number
//! below the next one that is not pending.
//!
//! # Recovery
//!
//! [`Journal::open`] reads every segment in name order. Damage in the last
//! segment (a torn write: short record, bad length, checksum mismatch) is logged
//! and the file truncated at the last good record; damage in an older segment
//! skips the rest of that segment. Opening never fails because of damaged
//! contents, only because of the directory itself.

mod format;
mod payload;

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use format::{MAX_PAYLOAD, fuzz_read_segment};

use crate::change::Change;
use format::{HeaderProblem, KIND_ENTRY, Record};

const LOCK_FILE: &str = "LOCK";
const PROBE_FILE: &str = "LOCK.probe";
const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// Rotate the active segment once it is larger than this many bytes.
    pub segment_size: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal directory {path}: {source}")]
    Directory { path: PathBuf, source: io::Error },
    #[error("journal directory {path} is not writable: {source}")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("journal directory {path} is in use by another process (lock held on {path}/LOCK)")]
    Locked { path: PathBuf },
    #[error("journal {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("journal payload of {len} bytes exceeds the limit of {MAX_PAYLOAD} bytes")]
    PayloadTooLarge { len: usize },
    /// Only reachable with a forged journal whose sequence numbers are near `u64::MAX`.
    #[error("journal sequence numbers exhausted")]
    SequenceExhausted,
    #[error("journal payload encoding: {0}")]
    Encode(#[source] postcard::Error),
    #[error("journal payload decoding: {0}")]
    Decode(#[source] postcard::Error),
}

impl JournalError {
    /// The underlying I/O error kind, if any (e.g. `StorageFull` for ENOSPC).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Self::Directory { source, .. }
            | Self::NotWritable { source, .. }
            | Self::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// What [`Journal::open`] found.
#[derive(Debug)]
pub struct Recovery {
    /// Entries not yet marked done, in ascending sequence order.
    pub pending: Vec<PendingEntry>,
    pub report: RecoveryReport,
}

/// An entry not yet marked done, as recovery read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    pub seq: u64,
    /// The format version of the segment holding the entry: the payload is
    /// in that version's encoding ([`decode_change`] reads every one).
    pub version: u32,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose header was valid and whose records were read.
    pub segments_read: usize,
    /// Entry records read (an entry rewritten after a failed sync counts twice).
    pub entries: usize,
    /// Distinct entries found marked done.
    pub done: usize,
    /// Entries still pending (`Recovery::pending.len()`).
    pub pending: usize,
    /// The last segment's damaged tail, truncated away.
    pub torn_tail: Option<Damaged>,
    /// Damage in older segments (rest of the segment skipped) and unrecognised
    /// segment files set aside.
    pub corrupt: Vec<Damaged>,
    /// Bytes not read: truncated tails, skipped segment rests, set-aside files.
    pub bytes_dropped: u64,
    /// Segments deleted by the compaction at open.
    pub segments_deleted: usize,
    /// The sequence number the next appended entry gets.
    pub next_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub file: PathBuf,
    /// Offset of the first byte not read.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub bytes: u64,
    pub reason: String,
}

struct Segment {
    path: PathBuf,
    len: u64,
    /// Pending entries whose newest copy is in this segment.
    undone: usize,
    /// Holds done records, which may be the only record that entries of other
    /// segments are finished.
    has_done: bool,
}

struct Active {
    id: u64,
    file: File,
}

/// Failure of a write to the active segment; `rolled_back` tells whether the
/// file was truncated back so nothing of the write remains.
struct WriteFailure {
    error: JournalError,
    rolled_back: bool,
}

impl From<JournalError> for WriteFailure {
    fn from(error: JournalError) -> Self {
        Self {
            error,
            rolled_back: true,
        }
    }
}

pub struct Journal {
    dir: PathBuf,
    segment_size: u64,
    /// Holds the `flock`; released when the journal is dropped.
    _lock: File,
    segments: BTreeMap<u64, Segment>,
    /// Highest segment name ever seen in the directory, so new names are unique.
    highest_name: Option<u64>,
    active: Option<Active>,
    /// Pending sequence number -> segment holding its newest copy.
    pending: BTreeMap<u64, u64>,
    next_seq: u64,
    /// Entries written since the last successful sync, for rewriting when
    /// their segment has to be abandoned.
    unsynced_entries: Vec<(u64, Vec<u8>)>,
    /// Done ranges written since the last successful sync.
    unsynced_done: Vec<(u64, u64)>,
    /// Done ranges applied in memory but not (or no longer reliably) written.
    owed_done: Vec<(u64, u64)>,
    /// The entries in `unsynced_entries` must be rewritten into a new segment.
    carry: bool,
    /// Rotated-away segments written since the last sync.
    dirty_files: Vec<(PathBuf, File)>,
    active_dirty: bool,
    dir_dirty: bool,
    files: FileOps,
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and recovers its pending
    /// entries. Fails only if the directory cannot be used: missing permissions,
    /// not a directory, or locked by another process.
    pub fn open(dir: &Path, opts: JournalOptions) -> Result<(Journal, Recovery), JournalError> {
        let lock = prepare_dir(dir)?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            segment_size: opts.segment_size.max(1),
            _lock: lock,
            segments: BTreeMap::new(),
            highest_name: None,
            active: None,
            pending: BTreeMap::new(),
            next_seq: 1,
            unsynced_entries: Vec::new(),
            unsynced_done: Vec::new(),
            owed_done: Vec::new(),
            carry: false,
            dirty_files: Vec::new(),
            active_dirty: false,
            dir_dirty: false,
            files: FileOps::default(),
        };
        let recovery = journal.recover()?;
        Ok((journal, recovery))
    }

    /// Appends entries and returns their sequence numbers. Not durable until
    /// [`Journal::sync`] succeeds. On error nothing was appended.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<Vec<u64>, JournalError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_PAYLOAD) {
            return Err(JournalError::PayloadTooLarge { len: p.len() });
        }
        self.ensure_active()?;
        let first = self.next_seq;
        if first.checked_add(payloads.len() as u64).is_none() {
            return Err(JournalError::SequenceExhausted);
        }
        let seqs: Vec<u64> = (first..).take(payloads.len()).collect();
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + 17).sum());
        for (&seq, payload) in seqs.iter().zip(payloads) {
            format::encode_record(&mut buf, KIND_ENTRY, seq, payload);
        }
        let last = first + payloads.len() as u64 - 1;
        match self.write_records(&buf) {
            Ok(id) => {
                self.next_seq = last + 1;
                if let Some(seg) = self.segments.get_mut(&id) {
                    seg.undone += payloads.len();
                }
                for (&seq, payload) in seqs.iter().zip(payloads) {
                    self.pending.insert(seq, id);
                    self.unsynced_entries.push((seq, payload.to_vec()));
                }
                Ok(seqs)
            }
            Err(failure) => {
                if !failure.rolled_back {
                    // Some of these records may sit in the abandoned segment
                    // with valid checksums: never reuse the numbers, and mark
                    // them done so they are not replayed.
                    self.next_seq = last + 1;
                    self.owed_done.push((first, last));
                }
                Err(failure.error)
            }
        }
    }

    /// Encodes `changes` ([`encode_change`]) and appends them.
    pub fn append_changes(&mut self, changes: &[Change]) -> Result<Vec<u64>, JournalError> {
        let encoded = changes
            .iter()
            .map(encode_change)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        self.append(&refs)
    }

    /// Marks entries finished. Unknown or already finished numbers are ignored,
    /// so calling it again is harmless. The entries leave the pending set at
    /// once even if writing the done record fails: the record is then retried on
    /// the next write or sync (until then a crash would replay them).
    pub fn mark_done(&mut self, seqs: &[u64]) -> Result<(), JournalError> {
        let mut finished = Vec::new();
        for seq in seqs {
            if let Some(id) = self.pending.remove(seq) {
                if let Some(seg) = self.segments.get_mut(&id) {
                    seg.undone = seg.undone.saturating_sub(1);
                }
                finished.push(*seq);
            }
        }
        if finished.is_empty() {
            return Ok(());
        }
        self.owed_done.extend(format::ranges_from_seqs(finished));
        self.write_records(&[]).map(|_| ()).map_err(|f| f.error)
    }

    /// Makes everything appended and marked done so far durable, then deletes
    /// segments whose entries are all done. After an error, call it again later:
    /// nothing is lost from memory.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.carry || !self.owed_done.is_empty() {
            self.write_records(&[]).map_err(|f| f.error)?;
        }
        self.sync_files()?;
        self.unsynced_entries.clear();
        self.unsynced_done.clear();
        self.compact();
        Ok(())
    }

    /// Number of entries not yet marked done.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes in all live segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.len).sum()
    }

    /// Number of live segment files.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes sure there is an active segment with room, rotating or replacing
    /// an abandoned one; a replacement first receives the carried entries.
    fn ensure_active(&mut self) -> Result<(), JournalError> {
        if let Some(active) = &self.active {
            let len = self.segments.get(&active.id).map_or(0, |s| s.len);
            if len < self.segment_size {
                return Ok(());
            }
        }
        let id = match self.highest_name.map(|h| h.checked_add(1)) {
            Some(Some(above)) => self.next_seq.max(above),
            Some(None) => return Err(JournalError::SequenceExhausted),
            None => self.next_seq,
        };
        let path = self.dir.join(segment_name(id));
        let mut buf = format::header().to_vec();
        let mut carried = Vec::new();
        if self.carry {
            for (seq, payload) in &self.unsynced_entries {
                if self.pending.contains_key(seq) {
                    format::encode_record(&mut buf, KIND_ENTRY, *seq, payload);
                    carried.push(*seq);
                }
            }
        }
        let mut file = self
            .files
            .create(&path)
            .map_err(io_err(&path, "create segment"))?;
        if let Err(e) = self.files.write_all(&mut file, &buf) {
            drop(file);
            if let Err(re) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %re, "cannot remove failed new journal segment");
            }
            return Err(JournalError::Io {
                path,
                op: "write segment header",
                source: e,
            });
        }
        tracing::debug!(path = %path.display(), carried = carried.len(), "journal segment created");
        if let Some(old) = self.active.take()
            && self.active_dirty
            && let Some(seg) = self.segments.get(&old.id)
        {
            self.dirty_files.push((seg.path.clone(), old.file));
        }
        for seq in &carried {
            if let Some(owner) = self.pending.insert(*seq, id)
                && let Some(seg) = self.segments.get_mut(&owner)
            {
                seg.undone = seg.undone.saturating_sub(1);
            }
        }
        self.segments.insert(
            id,
            Segment {
                path,
                len: buf.len() as u64,
                undone: carried.len(),
                has_done: false,
            },
        );
        self.highest_name = Some(id);
        self.next_seq = id.max(self.next_seq);
        self.active = Some(Active { id, file });
        self.carry = false;
        self.active_dirty = true;
        self.dir_dirty = true;
        Ok(())
    }

    /// Writes the owed done ranges followed by `records` to the active
    /// segment; returns the segment's id.
    fn write_records(&mut self, records: &[u8]) -> Result<u64, WriteFailure> {
        self.ensure_active()?;
        let mut buf = Vec::new();
        format::encode_done(&mut buf, self.next_seq, &self.owed_done);
        buf.extend_from_slice(records);
        let Some(active) = self.active.as_mut() else {
            return Err(WriteFailure::from(JournalError::Io {
                path: self.dir.clone(),
                op: "write",
                source: io::Error::other("no active segment"),
            }));
        };
        let Some(seg) = self.segments.get_mut(&active.id) else {
            return Err(WriteFailure::from(JournalError::Io {
                path: self.dir.clone(),
                op: "write",
                source: io::Error::other("active segment not tracked"),
            }));
        };
        if buf.is_empty() {
            return Ok(active.id);
        }
        let start = seg.len;
        match self.files.write_all(&mut active.file, &buf) {
            Ok(()) => {
                seg.len += buf.len() as u64;
                if !self.owed_done.is_empty() {
                    seg.has_done = true;
                }
                self.active_dirty = true;
                self.unsynced_done.append(&mut self.owed_done);
                Ok(active.id)
            }
            Err(source) => {
                let error = JournalError::Io {
                    path: seg.path.clone(),
                    op: "write",
                    source,
                };
                match self.files.set_len(&active.file, start) {
                    Ok(()) => Err(WriteFailure {
                        error,
                        rolled_back: true,
                    }),
                    Err(e) => {
                        tracing::warn!(
                            path = %seg.path.display(), error = %e,
                            "cannot truncate journal segment after a failed write; abandoning it"
                        );
                        self.abandon_active();
                        Err(WriteFailure {
                            error,
                            rolled_back: false,
                        })
                    }
                }
            }
        }
    }

    /// Stops writing to the active segment because its contents since the last
    /// sync are unknown; everything written since then is rewritten elsewhere.
    fn abandon_active(&mut self) {
        self.active = None;
        self.active_dirty = false;
        self.dirty_files.clear();
        self.carry = true;
        self.owed_done.append(&mut self.unsynced_done);
    }

    fn sync_files(&mut self) -> Result<(), JournalError> {
        for i in 0..self.dirty_files.len() {
            let (path, file) = &self.dirty_files[i];
            if let Err(e) = self.files.sync_data(file) {
                let error = JournalError::Io {
                    path: path.clone(),
                    op: "fdatasync",
                    source: e,
                };
                self.abandon_active();
                return Err(error);
            }
        }
        self.dirty_files.clear();
        if self.active_dirty
            && let Some(active) = &self.active
        {
            if let Err(e) = self.files.sync_data(&active.file) {
                let path = self
                    .segments
                    .get(&active.id)
                    .map_or_else(|| self.dir.clone(), |s| s.path.clone());
                self.abandon_active();
                return Err(JournalError::Io {
                    path,
                    op: "fdatasync",
                    source: e,
                });
            }
            self.active_dirty = false;
        }
        self.sync_dir()
    }

    fn sync_dir(&mut self) -> Result<(), JournalError> {
        if !self.dir_dirty {
            return Ok(());
        }
        let dir = File::open(&self.dir).map_err(io_err(&self.dir, "open directory"))?;
        self.files
            .sync_dir(&dir)
            .map_err(io_err(&self.dir, "fsync directory"))?;
        self.dir_dirty = false;
        Ok(())
    }

    /// Deletes segments whose entries are all done, except the active and the
    /// newest. Failures only leave files behind, so they are logged, not returned.
    fn compact(&mut self) -> usize {
        let keep_active = self.active.as_ref().map(|a| a.id);
        let newest = self.segments.keys().next_back().copied();
        let is_candidate = |id: u64, seg: &Segment| {
            seg.undone == 0 && Some(id) != keep_active && Some(id) != newest
        };
        let mut survivor_seen = false;
        let mut needs_checkpoint = false;
        for (&id, seg) in &self.segments {
            if !is_candidate(id, seg) {
                survivor_seen = true;
            } else if seg.has_done && survivor_seen {
                needs_checkpoint = true;
            }
        }
        let candidates: Vec<u64> = self
            .segments
            .iter()
            .filter(|(id, seg)| is_candidate(**id, seg))
            .map(|(id, _)| *id)
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let checkpointed = needs_checkpoint
            && {
                match self.write_checkpoint() {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot write journal checkpoint; keeping done segments");
                        false
                    }
                }
            };
        let mut deleted = 0;
        let mut survivor_seen = false;
        let ids: Vec<u64> = self.segments.keys().copied().collect();
        for id in ids {
            let Some(seg) = self.segments.get(&id) else {
                continue;
            };
            if !candidates.contains(&id) || (seg.has_done && survivor_seen && !checkpointed) {
                survivor_seen = true;
                continue;
            }
            match fs::remove_file(&seg.path) {
                Ok(()) => {
                    tracing::debug!(path = %seg.path.display(), "journal segment compacted");
                    self.segments.remove(&id);
                    deleted += 1;
                    // Deletions must become durable oldest first, or a crash
                    // could keep an old entry while losing its done record.
                    self.dir_dirty = true;
                    if let Err(e) = self.sync_dir() {
                        tracing::warn!(error = %e, "journal compaction stopped");
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.segments.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "cannot delete journal segment");
                    survivor_seen = true;
                }
            }
        }
        deleted
    }

    /// Records every finished sequence number in the active segment and syncs
    /// it, so that older done records become redundant.
    fn write_checkpoint(&mut self) -> Result<(), JournalError> {
        let ranges = format::complement(self.pending.keys().copied(), self.next_seq);
        self.owed_done.extend(ranges);
        self.write_records(&[]).map_err(|f| f.error)?;
        self.sync_files()?;
        self.unsynced_entries.clear();
        self.unsynced_done.clear();
        Ok(())
    }

    fn recover(&mut self) -> Result<Recovery, JournalError> {
        let mut report = RecoveryReport::default();
        let names = list_segments(&self.dir)?;
        self.highest_name = names.last().map(|(id, _)| *id);
        if let Some((id, _)) = names.last() {
            self.next_seq = self.next_seq.max(*id);
        }
        // seq -> (segment, its version, payload); a later copy replaces an
        // earlier one.
        let mut entries: BTreeMap<u64, (u64, u32, Vec<u8>)> = BTreeMap::new();
        let mut done: Vec<(u64, u64)> = Vec::new();
        let mut reusable_last = None;
        for (i, (id, path)) in names.iter().enumerate() {
            let is_last = i + 1 == names.len();
            let bytes = match fs::read(path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read journal segment; skipping it");
                    continue;
                }
            };
            let parsed = format::parse_segment(&bytes);
            let version = match parsed.header {
                Ok(version) => version,
                Err(problem) => {
                    self.handle_bad_header(path, problem, bytes.len() as u64, &mut report);
                    continue;
                }
            };
            report.segments_read += 1;
            let mut len = bytes.len() as u64;
            let mut truncated_ok = true;
            if let Some(damage) = parsed.damage {
                let damaged = Damaged {
                    file: path.clone(),
                    offset: parsed.good_len as u64,
                    bytes: len - parsed.good_len as u64,
                    reason: damage.to_string(),
                };
                report.bytes_dropped += damaged.bytes;
                if is_last {
                    tracing::warn!(
                        path = %path.display(), offset = damaged.offset, dropped = damaged.bytes, reason = %damage,
                        "journal tail damaged (interrupted write?); truncating at the last good record"
                    );
                    truncated_ok = match truncate_file(path, damaged.offset) {
                        Ok(()) => {
                            len = damaged.offset;
                            true
                        }
                        Err(e) => {
                            tracing::error!(path = %path.display(), error = %e, "cannot truncate journal tail");
                            false
                        }
                    };
                    report.torn_tail = Some(damaged);
                } else {
                    tracing::error!(
                        path = %path.display(), offset = damaged.offset, skipped = damaged.bytes, reason = %damage,
                        "journal segment corrupt; skipping the rest of it, entries there are lost"
                    );
                    report.corrupt.push(damaged);
                }
            }
            let mut has_done = false;
            for record in parsed.records {
                match record {
                    Record::Entry { seq, payload } => {
                        report.entries += 1;
                        self.next_seq = self.next_seq.max(seq.saturating_add(1));
                        entries.insert(seq, (*id, version, payload.to_vec()));
                    }
                    Record::Done { high_water, ranges } => {
                        has_done = true;
                        self.next_seq = self.next_seq.max(high_water);
                        done.extend(ranges.into_iter().filter(|(a, b)| a <= b));
                    }
                }
            }
            self.segments.insert(
                *id,
                Segment {
                    path: path.clone(),
                    len,
                    undone: 0,
                    has_done,
                },
            );
            // Appending to an older version's segment would mix two payload
            // encodings in one file: a new segment is started instead.
            if is_last && truncated_ok && version == format::VERSION {
                reusable_last = Some(*id);
            }
        }
        done.sort_unstable();
        for (first, last) in done {
            let finished: Vec<u64> = entries.range(first..=last).map(|(seq, _)| *seq).collect();
            report.done += finished.len();
            for seq in finished {
                entries.remove(&seq);
            }
        }
        let mut pending = Vec::with_capacity(entries.len());
        for (seq, (id, version, payload)) in entries {
            if let Some(seg) = self.segments.get_mut(&id) {
                seg.undone += 1;
            }
            self.pending.insert(seq, id);
            pending.push(PendingEntry {
                seq,
                version,
                payload,
            });
        }
        if let Some(id) = reusable_last
            && let Some(seg) = self.segments.get(&id)
        {
            match self.files.open_append(&seg.path) {
                Ok(file) => {
                    self.active = Some(Active { id, file });
                    // Covers a tail truncation whose new size is not yet durable.
                    self.active_dirty = report.torn_tail.is_some();
                }
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "cannot reopen journal segment; starting a new one");
                }
            }
        }
        if self.dir_dirty {
            self.sync_dir()?;
        }
        report.segments_deleted = self.compact();
        report.pending = pending.len();
        report.next_seq = self.next_seq;
        tracing::info!(
            segments = report.segments_read,
            entries = report.entries,
            done = report.done,
            pending = report.pending,
            dropped = report.bytes_dropped,
            "journal recovered"
        );
        Ok(Recovery { pending, report })
    }

    fn handle_bad_header(
        &mut self,
        path: &Path,
        problem: HeaderProblem,
        len: u64,
        report: &mut RecoveryReport,
    ) {
        match problem {
            // A crash while creating the segment: it never held anything.
            HeaderProblem::Empty | HeaderProblem::Partial => {
                tracing::warn!(path = %path.display(), reason = %problem, "removing journal segment without a header");
                report.bytes_dropped += len;
                match fs::remove_file(path) {
                    Ok(()) => self.dir_dirty = true,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove journal segment")
                    }
                }
            }
            HeaderProblem::BadMagic | HeaderProblem::UnsupportedVersion(_) => {
                let mut aside = path.as_os_str().to_owned();
                aside.push(".corrupt");
                let aside = PathBuf::from(aside);
                tracing::error!(
                    path = %path.display(), reason = %problem, moved_to = %aside.display(),
                    "unrecognised journal segment; setting it aside, its entries are not replayed"
                );
                match fs::rename(path, &aside) {
                    Ok(()) => self.dir_dirty = true,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot rename journal segment")
                    }
                }
                report.bytes_dropped += len;
                report.corrupt.push(Damaged {
                    file: path.to_path_buf(),
                    offset: 0,
                    bytes: len,
                    reason: problem.to_string(),
                });
            }
        }
    }
}

/// A change as the payload of an entry [`Journal::append`] writes now.
pub fn encode_change(change: &Change) -> Result<Vec<u8>, JournalError> {
    payload::encode(change)
}

/// Decodes an entry written by [`Journal::append_changes`] or with
/// [`encode_change`], of this or an older release.
pub fn decode_change(entry: &PendingEntry) -> Result<Change, JournalError> {
    payload::decode(entry.version, &entry.payload)
}

fn segment_name(id: u64) -> String {
    format!("journal-{id:016x}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Creates the directory if needed, checks that it is usable, and takes the lock.
fn prepare_dir(dir: &Path) -> Result<File, JournalError> {
    let dir_err = |source| JournalError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(dir_err)?;
    let meta = fs::metadata(dir).map_err(dir_err)?;
    if !meta.is_dir() {
        return Err(dir_err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %dir.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "journal directory is accessible to other users; 0700 is recommended"
        );
    }
    let not_writable = |source| JournalError::NotWritable {
        path: dir.to_path_buf(),
        source,
    };
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))
        .map_err(not_writable)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(JournalError::Locked {
                path: dir.to_path_buf(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&dir.join(LOCK_FILE), "flock")(e)),
    }
    // An existing LOCK file opens for writing even in a read-only directory,
    // so prove that files can be created here.
    let probe = dir.join(PROBE_FILE);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe)
        .map_err(not_writable)?;
    fs::remove_file(&probe).map_err(not_writable)?;
    Ok(lock)
}

/// Segment files in ascending name order; other entries are ignored.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir, "list directory"))? {
        let entry = entry.map_err(io_err(dir, "list directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(id) = parse_segment_name(name) else {
            if name != LOCK_FILE && !name.ends_with(".corrupt") {
                tracing::debug!(name, "ignoring unknown file in the journal directory");
            }
            continue;
        };
        // Never follow a symlink or read a device as a segment.
        match entry.file_type() {
            Ok(t) if t.is_file() => found.push((id, entry.path())),
            _ => tracing::warn!(name, "ignoring journal segment that is not a regular file"),
        }
    }
    found.sort_unstable_by_key(|(id, _)| *id);
    Ok(found)
}

fn truncate_file(path: &Path, len: u64) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.set_len(len)
}

/// The file operations whose failures matter, with failure injection in tests.
#[derive(Default)]
struct FileOps {
    #[cfg(test)]
    inject: tests::Inject,
}

impl FileOps {
    fn create(&mut self, path: &Path) -> io::Result<File> {
        #[cfg(test)]
        self.inject.check_create()?;
        // Replacing is safe: a new name is above every tracked segment, so an
        // existing file can only be the remains of a failed creation.
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    }

    fn open_append(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new().append(true).open(path)
    }

    fn write_all(&mut self, file: &mut File, buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.inject.write_prefix() {
            file.write_all(&buf[..n.min(buf.len())])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "injected ENOSPC",
            ));
        }
        file.write_all(buf)
    }

    fn set_len(&mut self, file: &File, len: u64) -> io::Result<()> {
        #[cfg(test)]
        self.inject.check_truncate()?;
        file.set_len(len)
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        #[cfg(test)]
        self.inject.check_sync()?;
        file.sync_data()
    }

    fn sync_dir(&mut self, dir: &File) -> io::Result<()> {
        dir.sync_all()
    }
}

#[cfg(test)]
mod tests;
