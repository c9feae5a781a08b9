use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::format::{self, HEADER_LEN, RECORD_HEADER_LEN};
use super::*;

/// Failure injection for the journal's file operations.
#[derive(Default)]
pub(super) struct Inject {
    /// Every write stores this many bytes, then fails with ENOSPC.
    pub(super) write_prefix: Option<usize>,
    pub(super) fail_truncate: bool,
    pub(super) fail_sync: bool,
    pub(super) fail_create: bool,
}

fn injected(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!("injected {what} failure"),
    )
}

impl Inject {
    pub(super) fn write_prefix(&self) -> Option<usize> {
        self.write_prefix
    }
    pub(super) fn check_create(&self) -> io::Result<()> {
        if self.fail_create {
            Err(injected("create"))
        } else {
            Ok(())
        }
    }
    pub(super) fn check_truncate(&self) -> io::Result<()> {
        if self.fail_truncate {
            Err(io::Error::other("injected EIO on truncate"))
        } else {
            Ok(())
        }
    }
    pub(super) fn check_sync(&self) -> io::Result<()> {
        if self.fail_sync {
            Err(io::Error::other("injected EIO on fdatasync"))
        } else {
            Ok(())
        }
    }
}

fn small(size: u64) -> JournalOptions {
    JournalOptions { segment_size: size }
}

fn open(dir: &Path, opts: JournalOptions) -> (Journal, Recovery) {
    match Journal::open(dir, opts) {
        Ok(r) => r,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("change number {i}").into_bytes()
}

fn append_n(j: &mut Journal, from: u64, n: u64) -> Vec<u64> {
    let payloads: Vec<Vec<u8>> = (from..from + n).map(payload).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    j.append(&refs).unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(parse_segment_name)
                .is_some()
        })
        .collect();
    files.sort();
    files
}

fn seqs(r: &Recovery) -> Vec<u64> {
    r.pending.iter().map(|e| e.seq).collect()
}

/// The pending entries as `(seq, payload)`, each checked to come from a
/// segment of the current version.
fn payloads(r: &Recovery) -> Vec<(u64, Vec<u8>)> {
    r.pending
        .iter()
        .map(|e| {
            assert_eq!(e.version, format::VERSION, "entry {}", e.seq);
            (e.seq, e.payload.clone())
        })
        .collect()
}

#[test]
fn append_mark_done_reopen_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut j, rec) = open(&dir, JournalOptions::default());
    assert!(rec.pending.is_empty());
    assert_eq!(rec.report.next_seq, 1);
    let s = append_n(&mut j, 0, 5);
    assert_eq!(s, vec![1, 2, 3, 4, 5]);
    j.mark_done(&[2, 4, 99]).unwrap();
    j.mark_done(&[2]).unwrap();
    assert_eq!(j.pending(), 3);
    j.sync().unwrap();
    drop(j);

    let (mut j, rec) = open(&dir, JournalOptions::default());
    assert_eq!(seqs(&rec), vec![1, 3, 5]);
    assert_eq!(payloads(&rec)[1].1, payload(2));
    assert_eq!(rec.report.entries, 5);
    assert_eq!(rec.report.done, 2);
    assert_eq!(rec.report.torn_tail, None);
    assert_eq!(j.append(&[b"next"]).unwrap(), vec![6]);
    assert_eq!(j.pending(), 4);
    assert_eq!(j.segments(), 1);
    assert!(j.size_bytes() > HEADER_LEN as u64);
}

#[test]
fn unsynced_writes_survive_a_process_crash() {
    // Dropping without sync models a crashed process: the page cache keeps the data.
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    append_n(&mut j, 0, 3);
    j.mark_done(&[1]).unwrap();
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(seqs(&rec), vec![2, 3]);
}

#[test]
fn pending_is_in_sequence_order_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(100));
    let mut all = Vec::new();
    for i in 0..20 {
        all.extend(append_n(&mut j, i * 3, 3));
    }
    assert!(j.segments() > 3);
    // Mark done out of order and in scattered batches.
    j.mark_done(&[40, 3, 17, 18, 19, 60]).unwrap();
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(tmp.path(), small(100));
    let expect: Vec<u64> = all
        .into_iter()
        .filter(|s| ![40, 3, 17, 18, 19, 60].contains(s))
        .collect();
    assert_eq!(seqs(&rec), expect);
    for (seq, p) in &payloads(&rec) {
        assert_eq!(p, &payload(seq - 1));
    }
}

#[test]
fn sequence_numbers_survive_full_compaction() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(64));
    for round in 0..10 {
        let s = append_n(&mut j, round, 2);
        j.mark_done(&s).unwrap();
        j.sync().unwrap();
    }
    assert!(j.segments() <= 2, "segments left: {}", j.segments());
    drop(j);
    let (mut j, rec) = open(tmp.path(), small(64));
    assert!(rec.pending.is_empty());
    let next = j.append(&[b"x"]).unwrap()[0];
    assert!(next > 20, "sequence restarted at {next}");
}

#[test]
fn compaction_deletes_fully_done_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(200));
    let mut all = Vec::new();
    for i in 0..30 {
        all.extend(append_n(&mut j, i * 4, 4));
    }
    j.sync().unwrap();
    let before = segment_files(tmp.path()).len();
    assert!(before >= 10, "only {before} segments");
    assert_eq!(j.segments(), before);
    j.mark_done(&all[..all.len() - 4]).unwrap();
    j.sync().unwrap();
    let after = segment_files(tmp.path());
    assert!(after.len() <= 2, "left {after:?}");
    assert_eq!(j.segments(), after.len());
    let on_disk: u64 = after.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(j.size_bytes(), on_disk);
    drop(j);
    let (_, rec) = open(tmp.path(), small(200));
    assert_eq!(seqs(&rec), all[all.len() - 4..].to_vec());
}

#[test]
fn active_segment_of_only_done_records_rotates_and_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(120));
    let keep = append_n(&mut j, 0, 1);
    // Many done records and no pending entry in the following segments.
    for i in 0..20 {
        let s = append_n(&mut j, i, 1);
        j.mark_done(&s).unwrap();
        j.sync().unwrap();
    }
    assert!(j.segments() <= 3, "segments: {}", j.segments());
    drop(j);
    let (_, rec) = open(tmp.path(), small(120));
    assert_eq!(seqs(&rec), keep);
}

#[test]
fn deleting_a_segment_keeps_done_marks_for_older_live_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(150));
    // Segment A: entries 1..=3, entry 1 stays pending.
    let a = append_n(&mut j, 0, 3);
    j.sync().unwrap();
    // Segment B: entries, plus the done record for A's 2 and 3.
    let b = append_n(&mut j, 3, 3);
    j.mark_done(&a[1..]).unwrap();
    j.mark_done(&b).unwrap();
    // Segment C onward: rotate so B is neither active nor newest.
    let c = append_n(&mut j, 6, 3);
    let d = append_n(&mut j, 9, 3);
    j.sync().unwrap();
    let segs: Vec<u64> = j.segments.keys().copied().collect();
    assert!(segs.len() >= 3, "{segs:?}");
    let b_id = *j.pending.get(&a[0]).unwrap();
    assert!(
        !j.segments
            .keys()
            .any(|id| *id > b_id && j.segments[id].undone == 0 && j.segments[id].has_done)
    );
    drop(j);
    let (_, rec) = open(tmp.path(), small(150));
    let mut expect = vec![a[0]];
    expect.extend(&c);
    expect.extend(&d);
    assert_eq!(seqs(&rec), expect);
}

#[test]
fn checkpoint_preserves_done_marks_when_middle_segment_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(100));
    let a = append_n(&mut j, 0, 3); // segment A, rotates after this batch
    let b = append_n(&mut j, 3, 2); // segment B
    j.mark_done(&[a[1], a[2]]).unwrap(); // done record in B about A
    let c = append_n(&mut j, 5, 2); // segment C
    let a_id = j.pending[&a[0]];
    let b_id = j.pending[&b[0]];
    let c_id = j.pending[&c[0]];
    assert!(a_id < b_id && b_id < c_id);
    assert!(j.segments[&b_id].has_done);
    j.mark_done(&b).unwrap();
    j.sync().unwrap();
    // B was fully done, not newest, with an older survivor: deleted after a checkpoint.
    assert!(!j.segments.contains_key(&b_id));
    assert!(j.segments.contains_key(&a_id));
    drop(j);
    let (_, rec) = open(tmp.path(), small(100));
    let mut expect = vec![a[0]];
    expect.extend(&c);
    assert_eq!(seqs(&rec), expect);
}

/// Builds a journal with `n` synced entries in one segment and returns the
/// segment's bytes and the offset where the last record starts.
fn one_segment(dir: &Path, n: u64) -> (PathBuf, Vec<u8>, usize) {
    let (mut j, _) = open(dir, JournalOptions::default());
    append_n(&mut j, 0, n - 1);
    j.sync().unwrap();
    let path = segment_files(dir).remove(0);
    let last_start = fs::metadata(&path).unwrap().len() as usize;
    append_n(&mut j, n - 1, 1);
    j.sync().unwrap();
    drop(j);
    let bytes = fs::read(&path).unwrap();
    (path, bytes, last_start)
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes, last_start) = one_segment(tmp.path(), 4);
    for cut in last_start..bytes.len() {
        fs::write(&path, &bytes[..cut]).unwrap();
        let (mut j, rec) = open(tmp.path(), JournalOptions::default());
        assert_eq!(seqs(&rec), vec![1, 2, 3], "cut at {cut}");
        if cut == last_start {
            assert_eq!(rec.report.torn_tail, None);
        } else {
            let torn = rec.report.torn_tail.clone().unwrap();
            assert_eq!(
                (torn.offset, torn.bytes),
                (last_start as u64, (cut - last_start) as u64)
            );
            assert_eq!(torn.file, path);
            assert_eq!(rec.report.bytes_dropped, (cut - last_start) as u64);
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            last_start as u64,
            "truncated at {cut}"
        );
        // The journal is usable after recovery: the next entry reuses seq 4.
        assert_eq!(j.append(&[b"again"]).unwrap(), vec![4]);
        j.sync().unwrap();
        drop(j);
        let (_, rec) = open(tmp.path(), JournalOptions::default());
        assert_eq!(seqs(&rec), vec![1, 2, 3, 4]);
        assert_eq!(payloads(&rec)[3].1, b"again");
        assert_eq!(rec.report.torn_tail, None);
    }
}

#[test]
fn bit_flips_in_the_last_record_drop_only_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, bytes, last_start) = one_segment(tmp.path(), 3);
    for at in last_start..bytes.len() {
        for bit in [0u8, 3, 7] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            fs::write(&path, &damaged).unwrap();
            let (j, rec) = open(tmp.path(), JournalOptions::default());
            assert_eq!(seqs(&rec), vec![1, 2], "flip at {at} bit {bit}");
            assert!(rec.report.torn_tail.is_some());
            drop(j);
        }
    }
}

#[test]
fn garbage_appended_after_good_records_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, mut bytes, _) = one_segment(tmp.path(), 2);
    let good = bytes.len();
    bytes.extend_from_slice(&[0xff; 40]);
    fs::write(&path, &bytes).unwrap();
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(seqs(&rec), vec![1, 2]);
    let torn = rec.report.torn_tail.unwrap();
    assert_eq!((torn.offset, torn.bytes), (good as u64, 40));
    assert!(torn.reason.contains("exceeds"), "{}", torn.reason);
}

#[test]
fn corrupt_middle_segment_skips_its_rest_and_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(100));
    let mut all = Vec::new();
    for i in 0..4 {
        all.push(append_n(&mut j, i * 4, 4));
    }
    j.sync().unwrap();
    drop(j);
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 4);
    // Damage the second record of the second segment.
    let mut bytes = fs::read(&files[1]).unwrap();
    let rec_len = RECORD_HEADER_LEN + payload(4).len();
    let second = HEADER_LEN + rec_len;
    bytes[second + RECORD_HEADER_LEN] ^= 0x40;
    fs::write(&files[1], &bytes).unwrap();

    let (mut j, rec) = open(tmp.path(), small(100));
    let mut expect = all[0].clone();
    expect.push(all[1][0]);
    expect.extend(&all[2]);
    expect.extend(&all[3]);
    assert_eq!(seqs(&rec), expect);
    assert_eq!(rec.report.torn_tail, None);
    assert_eq!(rec.report.corrupt.len(), 1);
    assert_eq!(rec.report.corrupt[0].file, files[1]);
    assert_eq!(rec.report.corrupt[0].offset, second as u64);
    // The damaged file is not truncated: it is not the one being written.
    assert_eq!(fs::read(&files[1]).unwrap(), bytes);
    let next = j.append(&[b"after"]).unwrap()[0];
    assert_eq!(next, all[3][3] + 1);
}

#[test]
fn empty_partial_unknown_and_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut j, _) = open(dir, JournalOptions::default());
    append_n(&mut j, 0, 2);
    j.sync().unwrap();
    drop(j);
    let real = segment_files(dir).remove(0);
    fs::write(
        dir.join("journal-0000000000000000.log"),
        b"NOT A JOURNAL SEGMENT AT ALL",
    )
    .unwrap();
    fs::write(dir.join("journal-00000000000000ff.log"), b"LDNS").unwrap();
    fs::write(dir.join("journal-0000000000000100.log"), b"").unwrap();
    fs::write(dir.join("journal-123.log"), b"junk").unwrap();
    fs::write(dir.join("notes.txt"), b"junk").unwrap();
    fs::create_dir(dir.join("journal-0000000000000050.log")).unwrap();

    let (mut j, rec) = open(dir, JournalOptions::default());
    assert_eq!(seqs(&rec), vec![1, 2]);
    assert_eq!(rec.report.segments_read, 1);
    assert_eq!(rec.report.corrupt.len(), 1);
    assert!(rec.report.corrupt[0].reason.contains("magic"));
    assert!(dir.join("journal-0000000000000000.log.corrupt").exists());
    assert!(!dir.join("journal-00000000000000ff.log").exists());
    assert!(!dir.join("journal-0000000000000100.log").exists());
    assert!(dir.join("journal-123.log").exists() && dir.join("notes.txt").exists());
    assert!(real.exists());
    // Names already used stay used: the next segment is named above 0x100.
    assert!(rec.report.next_seq >= 0x100);
    let s = j.append(&[b"x"]).unwrap()[0];
    assert!(s >= 0x100);
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(dir, JournalOptions::default());
    assert_eq!(seqs(&rec), vec![1, 2, s]);
}

#[test]
fn unsupported_version_is_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = format::header().to_vec();
    bytes[8] = 9;
    format::encode_record(&mut bytes, KIND_ENTRY, 5, b"from the future");
    fs::write(tmp.path().join("journal-0000000000000005.log"), &bytes).unwrap();
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert!(rec.pending.is_empty());
    assert!(rec.report.corrupt[0].reason.contains("version 9"));
    assert!(rec.report.next_seq >= 5);
}

#[test]
fn permissions_are_0700_and_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let (mut j, _) = open(&dir, JournalOptions::default());
    append_n(&mut j, 0, 1);
    j.sync().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(LOCK_FILE)), 0o600);
    let files = segment_files(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600);
    assert!(!dir.join(PROBE_FILE).exists());
}

#[test]
fn second_open_fails_on_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (j, _) = open(tmp.path(), JournalOptions::default());
    match Journal::open(tmp.path(), JournalOptions::default()) {
        Err(JournalError::Locked { path }) => assert_eq!(path, tmp.path()),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
    drop(j);
    let (_j, _) = open(tmp.path(), JournalOptions::default());
}

#[test]
fn unusable_directory_is_refused_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    let err = Journal::open(&file, JournalOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, JournalError::Directory { .. }), "{err:?}");
    assert!(err.to_string().contains("plain-file"), "{err}");

    let under = file.join("journal");
    let err = Journal::open(&under, JournalOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("plain-file/journal"), "{err}");
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn read_only_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ro");
    drop(open(&dir, JournalOptions::default()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    let result = Journal::open(&dir, JournalOptions::default());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    if running_as_root() {
        // Root bypasses mode bits; the check below cannot be exercised.
        assert!(result.is_ok());
        return;
    }
    let err = result.err().unwrap();
    assert!(matches!(err, JournalError::NotWritable { .. }), "{err:?}");
    assert!(err.to_string().contains("ro"));
}

#[test]
fn failed_append_is_rolled_back_and_journal_stays_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    append_n(&mut j, 0, 2);
    let size = j.size_bytes();
    j.files.inject.write_prefix = Some(10);
    let err = j.append(&[b"lost", b"lost too"]).err().unwrap();
    assert_eq!(err.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(j.pending(), 2);
    assert_eq!(j.size_bytes(), size);
    let file = segment_files(tmp.path()).remove(0);
    assert_eq!(fs::metadata(&file).unwrap().len(), size);
    // mark_done fails to write but the entry is done in memory; retried later.
    assert!(j.mark_done(&[1]).is_err());
    assert_eq!(j.pending(), 1);
    assert!(j.sync().is_err());
    j.files.inject.write_prefix = None;
    assert_eq!(j.append(&[b"after"]).unwrap(), vec![3]);
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(seqs(&rec), vec![2, 3]);
    assert_eq!(rec.report.torn_tail, None);
}

#[test]
fn failed_append_with_failed_truncate_abandons_the_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    append_n(&mut j, 0, 2);
    j.sync().unwrap();
    append_n(&mut j, 2, 1); // seq 3, not synced yet
    // Two whole records reach the file before the failure and cannot be removed.
    let whole = 2 * (RECORD_HEADER_LEN + 5);
    j.files.inject.write_prefix = Some(whole + 3);
    j.files.inject.fail_truncate = true;
    assert!(j.append(&[b"ghost", b"ghost", b"ghost"]).is_err());
    j.files.inject = Inject::default();
    let next = j.append(&[b"real"]).unwrap();
    assert_eq!(next, vec![7], "ghost numbers must not be reused");
    assert_eq!(j.segments(), 2);
    j.sync().unwrap();
    // The abandoned segment still holds pending entries 1 and 2.
    assert_eq!(j.segments(), 2);
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(seqs(&rec), vec![1, 2, 3, 7]);
    assert_eq!(payloads(&rec)[2].1, payload(2));
}

#[test]
fn failed_sync_rewrites_unsynced_entries_into_a_new_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    append_n(&mut j, 0, 2);
    j.sync().unwrap();
    append_n(&mut j, 2, 3); // 3, 4, 5 unsynced
    j.mark_done(&[1, 4]).unwrap();
    j.files.inject.fail_sync = true;
    assert!(j.sync().is_err());
    assert_eq!(j.pending(), 3);
    j.files.inject.fail_sync = false;
    j.sync().unwrap();
    assert_eq!(j.segments(), 2);
    // Entries appended after the failure keep working.
    append_n(&mut j, 5, 1);
    j.sync().unwrap();
    j.mark_done(&[2]).unwrap();
    j.sync().unwrap();
    // The old segment only held copies of the rewritten entries and done 1, 2.
    assert_eq!(j.segments(), 1);
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(seqs(&rec), vec![3, 5, 6]);
    assert_eq!(payloads(&rec)[0].1, payload(2));
}

#[test]
fn failed_segment_creation_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), small(50));
    append_n(&mut j, 0, 3);
    j.files.inject.fail_create = true;
    assert!(j.append(&[b"x"]).is_err());
    assert_eq!(j.segments(), 1);
    j.files.inject.fail_create = false;
    j.files.inject.write_prefix = Some(5);
    assert!(j.append(&[b"x"]).is_err());
    assert_eq!(j.segments(), 1);
    j.files.inject.write_prefix = None;
    assert_eq!(j.append(&[b"x"]).unwrap(), vec![4]);
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(tmp.path(), small(50));
    assert_eq!(seqs(&rec), vec![1, 2, 3, 4]);
    assert_eq!(rec.report.torn_tail, None);
}

#[test]
fn oversized_payload_is_rejected_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert!(matches!(
        j.append(&[b"ok", &big]),
        Err(JournalError::PayloadTooLarge { .. })
    ));
    assert_eq!(j.pending(), 0);
    let max = vec![7u8; MAX_PAYLOAD];
    assert_eq!(j.append(&[&max]).unwrap(), vec![1]);
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(rec.pending[0].payload.len(), MAX_PAYLOAD);
}

#[test]
fn changes_roundtrip_through_postcard() {
    use crate::change::{Change, ChangeKind};
    let tmp = tempfile::tempdir().unwrap();
    let change = Change {
        kind: ChangeKind::Add,
        records: crate::change::LeaseRecords {
            fqdn: "laptop.lan.example.".into(),
            addr: "192.0.2.7".parse().unwrap(),
            dhcid: vec![0, 1, 2],
            ttl: 300,
            forward: true,
            reverse: false,
            mode: crate::config::ConflictMode::CheckExistsWithDhcid,
        },
    };
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    j.append_changes(std::slice::from_ref(&change)).unwrap();
    drop(j);
    let (_, rec) = open(tmp.path(), JournalOptions::default());
    assert_eq!(decode_change(&rec.pending[0]).unwrap(), change);
    let garbage = PendingEntry {
        payload: vec![0xff],
        ..rec.pending[0].clone()
    };
    assert!(decode_change(&garbage).is_err());
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<Vec<u8>>),
    /// Marks done the pending entries at these positions (modulo the count).
    MarkDone(Vec<usize>),
    Sync,
    /// Clean restart: sync, drop, open.
    Reopen,
    /// Process crash: drop without sync.
    Crash,
    /// The next operation runs with this failure injected.
    Fault {
        write_prefix: Option<usize>,
        fail_truncate: bool,
        fail_sync: bool,
        fail_create: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5).prop_map(Op::Append),
        3 => prop::collection::vec(any::<usize>(), 1..6).prop_map(Op::MarkDone),
        2 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => (prop::option::of(0usize..80), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(write_prefix, fail_truncate, fail_sync, fail_create)| Op::Fault {
                write_prefix,
                fail_truncate,
                fail_sync,
                fail_create
            }
        ),
    ]
}

fn check_recovered(
    rec: &Recovery,
    model: &BTreeMap<u64, Vec<u8>>,
    exact: bool,
) -> Result<(), TestCaseError> {
    let got: BTreeMap<u64, Vec<u8>> = payloads(rec).into_iter().collect();
    prop_assert_eq!(got.len(), rec.pending.len(), "duplicate seqs");
    prop_assert!(
        rec.pending.windows(2).all(|w| w[0].seq < w[1].seq),
        "pending not in order"
    );
    if exact {
        prop_assert_eq!(&got, model);
    } else {
        for (seq, p) in model {
            prop_assert_eq!(got.get(seq), Some(p), "seq {} lost", seq);
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES raises the count for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn random_operations_match_a_model(
        ops in prop::collection::vec(op_strategy(), 1..60),
        segment_size in prop_oneof![Just(64u64), Just(200), Just(1 << 20)],
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let opts = small(segment_size);
        let (mut j, _) = open(tmp.path(), opts.clone());
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut last_seq = 0u64;
        for op in ops {
            match op {
                Op::Fault { write_prefix, fail_truncate, fail_sync, fail_create } => {
                    j.files.inject = Inject { write_prefix, fail_truncate, fail_sync, fail_create };
                    continue;
                }
                Op::Append(payloads) => {
                    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    if let Ok(seqs) = j.append(&refs) {
                        prop_assert_eq!(seqs.len(), payloads.len());
                        for (s, p) in seqs.into_iter().zip(payloads) {
                            prop_assert!(s > last_seq, "seq {} not above {}", s, last_seq);
                            last_seq = s;
                            model.insert(s, p);
                        }
                    }
                }
                Op::MarkDone(picks) => {
                    if !model.is_empty() {
                        let keys: Vec<u64> = model.keys().copied().collect();
                        let chosen: Vec<u64> = picks.iter().map(|i| keys[i % keys.len()]).collect();
                        // Done in memory whether or not the record was written.
                        let _ = j.mark_done(&chosen);
                        for s in chosen {
                            model.remove(&s);
                        }
                    }
                }
                Op::Sync => {
                    let _ = j.sync();
                }
                Op::Reopen => {
                    j.files.inject = Inject::default();
                    j.sync().unwrap();
                    drop(j);
                    let (nj, rec) = open(tmp.path(), opts.clone());
                    check_recovered(&rec, &model, true)?;
                    j = nj;
                }
                Op::Crash => {
                    let exact = j.owed_done.is_empty() && !j.carry;
                    drop(j);
                    let (nj, rec) = open(tmp.path(), opts.clone());
                    check_recovered(&rec, &model, exact)?;
                    // Resurfaced entries (done marks that never reached the
                    // disk, or failed appends) are pending again.
                    for (s, p) in payloads(&rec) {
                        model.entry(s).or_insert(p);
                        last_seq = last_seq.max(s);
                    }
                    j = nj;
                }
            }
            j.files.inject = Inject::default();
            prop_assert_eq!(j.pending(), model.len());
            prop_assert_eq!(j.pending.keys().copied().collect::<Vec<_>>(), model.keys().copied().collect::<Vec<_>>());
            let on_disk: u64 = segment_files(tmp.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
            prop_assert!(j.size_bytes() <= on_disk, "size accounting");
        }
        j.files.inject = Inject::default();
        j.sync().unwrap();
        drop(j);
        let (_, rec) = open(tmp.path(), opts);
        check_recovered(&rec, &model, true)?;
    }
}

#[test]
fn newest_segment_is_kept_when_no_segment_is_active() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    let s = append_n(&mut j, 0, 3);
    j.mark_done(&s).unwrap();
    j.sync().unwrap();
    drop(j);
    // A crash while creating a newer segment leaves a partial header behind.
    fs::write(tmp.path().join("journal-000000000000ffff.log"), b"LDN").unwrap();
    let (j, rec) = open(tmp.path(), JournalOptions::default());
    assert!(rec.pending.is_empty());
    assert!(j.active.is_none());
    assert_eq!(
        j.segments(),
        1,
        "the only segment holds the sequence high-water mark"
    );
    drop(j);
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    assert_eq!(j.append(&[b"x"]).unwrap(), vec![4]);
}

/// Real ENOSPC: needs `LEASEDNS_SMALL_FS` naming a directory on a tiny
/// filesystem, e.g. as root:
/// `unshare -m sh -c 'mount -t tmpfs -o size=256k tmpfs /mnt/x &&
///  LEASEDNS_SMALL_FS=/mnt/x cargo test -- --ignored real_enospc'`
#[test]
#[ignore = "needs a small filesystem in LEASEDNS_SMALL_FS"]
fn real_enospc_leaves_the_journal_usable() {
    let root =
        PathBuf::from(std::env::var("LEASEDNS_SMALL_FS").expect("LEASEDNS_SMALL_FS not set"));
    let dir = root.join("journal");
    let filler = root.join("filler");
    fs::write(&filler, vec![0u8; 64 * 1024]).unwrap();
    let opts = small(16 * 1024);
    let (mut j, _) = open(&dir, opts.clone());
    let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut full = 0;
    for i in 0u64..100_000 {
        let p = format!("{i:0>1000}").into_bytes();
        match j.append(&[&p]) {
            Ok(s) => {
                model.insert(s[0], p);
            }
            Err(e) => {
                assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
                full += 1;
                if full == 5 {
                    break;
                }
            }
        }
        if i % 7 == 0 {
            let _ = j.sync();
        }
    }
    assert_eq!(full, 5, "the filesystem never filled up");
    assert_eq!(j.pending(), model.len());
    // Done marks while the disk is full stay in memory and are retried.
    let done: Vec<u64> = model.keys().copied().step_by(2).collect();
    let _ = j.mark_done(&done);
    for s in &done {
        model.remove(s);
    }
    assert_eq!(j.pending(), model.len());
    fs::remove_file(&filler).unwrap();
    let more = j.append(&[b"after space returned"]).unwrap();
    model.insert(more[0], b"after space returned".to_vec());
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(&dir, opts);
    let got: BTreeMap<u64, Vec<u8>> = payloads(&rec).into_iter().collect();
    assert_eq!(got, model);
    assert_eq!(rec.report.torn_tail, None);
}

/// The changes in the version 1 golden journal, in the order they were
/// appended, as they replay now: release 0.1.0 wrote no mode, it is
/// inferred from the DHCID (see `payload.rs`).
fn golden_v1_changes() -> Vec<Change> {
    use crate::change::ChangeKind;
    use crate::config::ConflictMode;
    use std::net::Ipv4Addr;
    vec![
        Change {
            kind: ChangeKind::Add,
            records: crate::change::LeaseRecords {
                fqdn: "laptop.lan.example.".into(),
                addr: Ipv4Addr::new(10, 1, 2, 3).into(),
                dhcid: vec![0, 1, 1, 0xde, 0xad, 0xbe, 0xef],
                ttl: 600,
                forward: true,
                reverse: true,
                mode: ConflictMode::CheckWithDhcid,
            },
        },
        Change {
            kind: ChangeKind::Remove,
            records: crate::change::LeaseRecords {
                fqdn: "old-host.lan.example.".into(),
                addr: Ipv4Addr::new(10, 1, 2, 4).into(),
                dhcid: vec![0, 2, 1, 0x01, 0x02],
                ttl: 0,
                forward: true,
                reverse: false,
                mode: ConflictMode::CheckWithDhcid,
            },
        },
        Change {
            kind: ChangeKind::Add,
            records: crate::change::LeaseRecords {
                fqdn: "printer-2.lan.example.".into(),
                addr: Ipv4Addr::new(10, 1, 250, 9).into(),
                dhcid: Vec::new(),
                ttl: 3600,
                forward: false,
                reverse: true,
                mode: ConflictMode::NoCheckWithoutDhcid,
            },
        },
    ]
}

/// A journal written by the 0.1.0 release (three changes appended, the
/// second marked done, synced) must replay the same way forever: the
/// on-disk format and the postcard encoding of `Change` (field order,
/// types) are a promise to every operator with pending entries. If this
/// fails, the change broke that promise: keep the old encoding readable.
#[test]
fn a_journal_written_by_release_0_1_0_still_replays() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/golden");
    let tmp = tempfile::tempdir().unwrap();
    let segment = "journal-0000000000000001.log";
    fs::copy(golden.join(segment), tmp.path().join(segment)).unwrap();
    let (j, recovery) = open(tmp.path(), JournalOptions::default());
    assert_eq!(recovery.report.torn_tail, None);
    assert!(recovery.report.corrupt.is_empty());
    assert_eq!(recovery.report.entries, 3);
    assert_eq!(recovery.report.done, 1);
    assert_eq!(recovery.report.next_seq, 4);
    let replayed: Vec<(u64, Change)> = recovery
        .pending
        .iter()
        .map(|entry| (entry.seq, decode_change(entry).unwrap()))
        .collect();
    assert!(recovery.pending.iter().all(|e| e.version == 1));
    let expected = golden_v1_changes();
    assert_eq!(
        replayed,
        vec![(1, expected[0].clone()), (3, expected[2].clone())]
    );
    assert_eq!(j.pending(), 2);
}

/// Upgrading with entries pending: the version 1 segment is read but not
/// appended to; new entries go to a current-version segment after it, done
/// records there also finish version 1 entries, and everything replays in
/// sequence order, each entry in its own segment's encoding.
#[test]
fn version_1_segments_then_current_segments_replay_in_order() {
    use crate::config::ConflictMode;
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/golden");
    let tmp = tempfile::tempdir().unwrap();
    let v1_name = "journal-0000000000000001.log";
    let v1_bytes = fs::read(golden.join(v1_name)).unwrap();
    fs::write(tmp.path().join(v1_name), &v1_bytes).unwrap();
    let (mut j, _) = open(tmp.path(), JournalOptions::default());
    let new = vec![
        crate::testing::in_mode(
            ConflictMode::NoCheckWithDhcid,
            crate::testing::change(
                crate::change::ChangeKind::Add,
                "new.lan.example.",
                [10, 1, 2, 5],
                crate::testing::DHCID_A,
            ),
        ),
        crate::testing::in_mode(
            ConflictMode::CheckExistsWithDhcid,
            crate::testing::change(
                crate::change::ChangeKind::Remove,
                "gone.lan.example.",
                [10, 1, 2, 6],
                crate::testing::DHCID_B,
            ),
        ),
    ];
    assert_eq!(j.append_changes(&new).unwrap(), vec![4, 5]);
    j.mark_done(&[3]).unwrap();
    j.sync().unwrap();
    drop(j);
    assert_eq!(fs::read(tmp.path().join(v1_name)).unwrap(), v1_bytes);
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let v2_bytes = fs::read(&files[1]).unwrap();
    assert_eq!(format::parse_segment(&v2_bytes).header, Ok(format::VERSION));

    let (_, rec) = open(tmp.path(), JournalOptions::default());
    let versions: Vec<(u64, u32)> = rec.pending.iter().map(|e| (e.seq, e.version)).collect();
    let now = format::VERSION;
    assert_eq!(versions, vec![(1, 1), (4, now), (5, now)]);
    let replayed: Vec<Change> = rec
        .pending
        .iter()
        .map(|e| decode_change(e).unwrap())
        .collect();
    let v1 = golden_v1_changes();
    assert_eq!(
        replayed,
        vec![v1[0].clone(), new[0].clone(), new[1].clone()]
    );
}

/// The changes appended to the version 2 golden segment (seq 4..=7).
fn golden_v2_changes() -> Vec<Change> {
    use crate::change::{ChangeKind, LeaseRecords};
    use crate::config::ConflictMode;
    use std::net::Ipv4Addr;
    let records =
        |fqdn: &str, addr: Ipv4Addr, dhcid: &[u8], ttl, forward, reverse, mode| LeaseRecords {
            fqdn: fqdn.into(),
            addr: addr.into(),
            dhcid: dhcid.to_vec(),
            ttl,
            forward,
            reverse,
            mode,
        };
    vec![
        Change {
            kind: ChangeKind::Add,
            records: records(
                "tablet.lan.example.",
                Ipv4Addr::new(10, 1, 2, 5),
                &[0, 1, 1, 0xca, 0xfe],
                900,
                true,
                true,
                ConflictMode::CheckExistsWithDhcid,
            ),
        },
        Change {
            kind: ChangeKind::Remove,
            records: records(
                "old-phone.lan.example.",
                Ipv4Addr::new(10, 1, 2, 6),
                &[0, 2, 1, 0x03, 0x04],
                0,
                true,
                false,
                ConflictMode::NoCheckWithDhcid,
            ),
        },
        Change {
            kind: ChangeKind::Add,
            records: records(
                "camera.lan.example.",
                Ipv4Addr::new(10, 1, 250, 10),
                &[],
                1800,
                false,
                true,
                ConflictMode::NoCheckWithoutDhcid,
            ),
        },
        Change {
            kind: ChangeKind::Add,
            records: records(
                "desk.lan.example.",
                Ipv4Addr::new(10, 1, 2, 7),
                &[0, 1, 1, 0x01, 0x02, 0x03],
                600,
                true,
                true,
                ConflictMode::CheckWithDhcid,
            ),
        },
    ]
}

/// A version 2 segment, as the release that introduced the version wrote
/// it: `journal-0000000000000004.log` was made by opening a copy of the
/// version 1 golden directory, appending [`golden_v2_changes`] (seq 4..=7),
/// marking 3 and 5 done and syncing. It pins the version 2 payload (the
/// mode's variant index included) as the version 1 test pins 0.1.0's.
#[test]
fn a_version_2_journal_still_replays() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/golden");
    let tmp = tempfile::tempdir().unwrap();
    let segment = "journal-0000000000000004.log";
    fs::copy(golden.join(segment), tmp.path().join(segment)).unwrap();
    let (j, recovery) = open(tmp.path(), JournalOptions::default());
    assert_eq!(recovery.report.torn_tail, None);
    assert!(recovery.report.corrupt.is_empty());
    assert_eq!(recovery.report.entries, 4);
    // Seq 3 is done too, but its entry is in the version 1 segment.
    assert_eq!(recovery.report.done, 1);
    assert_eq!(recovery.report.next_seq, 8);
    assert!(recovery.pending.iter().all(|e| e.version == 2));
    let replayed: Vec<(u64, Change)> = recovery
        .pending
        .iter()
        .map(|entry| (entry.seq, decode_change(entry).unwrap()))
        .collect();
    let expected = golden_v2_changes();
    assert_eq!(
        replayed,
        vec![
            (4, expected[0].clone()),
            (6, expected[2].clone()),
            (7, expected[3].clone())
        ]
    );
    assert_eq!(j.pending(), 3);
}

/// The golden directory whole, as an upgraded server leaves it: the
/// version 1 segment, the version 2 one whose done record also finishes a
/// version 1 entry, the version 3 one whose done record finishes a version
/// 2 entry; replayed in sequence order, each entry in its own encoding.
#[test]
fn the_golden_directory_replays_across_versions() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/golden");
    let tmp = tempfile::tempdir().unwrap();
    for segment in [
        "journal-0000000000000001.log",
        "journal-0000000000000004.log",
        "journal-0000000000000008.log",
    ] {
        fs::copy(golden.join(segment), tmp.path().join(segment)).unwrap();
    }
    let (_, recovery) = open(tmp.path(), JournalOptions::default());
    assert_eq!(recovery.report.segments_read, 3);
    // Done: 2 (in the version 1 segment), 3 and 5, 6 and 9.
    assert_eq!((recovery.report.entries, recovery.report.done), (10, 5));
    let replayed: Vec<(u64, u32, Change)> = recovery
        .pending
        .iter()
        .map(|entry| (entry.seq, entry.version, decode_change(entry).unwrap()))
        .collect();
    let (v1, v2, v3) = (
        golden_v1_changes(),
        golden_v2_changes(),
        golden_v3_changes(),
    );
    assert_eq!(
        replayed,
        vec![
            (1, 1, v1[0].clone()),
            (4, 2, v2[0].clone()),
            (7, 2, v2[3].clone()),
            (8, 3, v3[0].clone()),
            (10, 3, v3[2].clone()),
        ]
    );
}

/// A version 3 segment, as the release that introduced the version wrote
/// it: `journal-0000000000000008.log` was made by opening a copy of the
/// version 1 and 2 golden segments, appending [`golden_v3_changes`] (seq
/// 8..=10, two of them DHCPv6), marking 6 and 9 done and syncing. It pins
/// the version 3 payload (the address's `IpAddr` variant included).
#[test]
fn a_version_3_journal_still_replays() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/golden");
    let tmp = tempfile::tempdir().unwrap();
    let segment = "journal-0000000000000008.log";
    fs::copy(golden.join(segment), tmp.path().join(segment)).unwrap();
    let (j, recovery) = open(tmp.path(), JournalOptions::default());
    assert_eq!(recovery.report.torn_tail, None);
    assert!(recovery.report.corrupt.is_empty());
    assert_eq!(recovery.report.entries, 3);
    // Seq 6 is done too, but its entry is in the version 2 segment.
    assert_eq!(recovery.report.done, 1);
    assert_eq!(recovery.report.next_seq, 11);
    assert!(recovery.pending.iter().all(|e| e.version == 3));
    let replayed: Vec<(u64, Change)> = recovery
        .pending
        .iter()
        .map(|entry| (entry.seq, decode_change(entry).unwrap()))
        .collect();
    let expected = golden_v3_changes();
    assert_eq!(
        replayed,
        vec![(8, expected[0].clone()), (10, expected[2].clone())]
    );
    assert!(replayed[0].1.records.addr.is_ipv6());
    assert_eq!(j.pending(), 2);
}

/// The changes appended to the version 3 golden segment (seq 8..=10): the
/// first DHCPv6 changes, and a DHCPv4 one in the new encoding.
fn golden_v3_changes() -> Vec<Change> {
    use crate::change::{ChangeKind, LeaseRecords};
    use crate::config::ConflictMode;
    use std::net::IpAddr;
    let records =
        |fqdn: &str, addr: &str, dhcid: &[u8], ttl, forward, reverse, mode| LeaseRecords {
            fqdn: fqdn.into(),
            addr: addr.parse::<IpAddr>().unwrap(),
            dhcid: dhcid.to_vec(),
            ttl,
            forward,
            reverse,
            mode,
        };
    vec![
        Change {
            kind: ChangeKind::Add,
            records: records(
                "phone6.lan.example.",
                "fd77::a:5",
                &[0, 2, 1, 0x66, 0x06],
                1200,
                true,
                true,
                ConflictMode::CheckWithDhcid,
            ),
        },
        Change {
            kind: ChangeKind::Remove,
            records: records(
                "laptop.lan.example.",
                "10.1.2.3",
                &[0, 1, 1, 0xde, 0xad, 0xbe, 0xef],
                0,
                true,
                true,
                ConflictMode::CheckWithDhcid,
            ),
        },
        Change {
            kind: ChangeKind::Add,
            records: records(
                "printer6.lan.example.",
                "fd77:0:0:1::9",
                &[],
                600,
                false,
                true,
                ConflictMode::NoCheckWithoutDhcid,
            ),
        },
    ]
}
