//! Byte layout of a segment: the file header and the records after it.
//! See the parent module's documentation for the format itself.

use std::fmt;

pub(super) const MAGIC: [u8; 8] = *b"LDNSJRNL";
/// The version new segments are written in: 2 since `LeaseRecords` carries
/// its conflict-resolution mode, 3 since its address may be IPv6.
pub(super) const VERSION: u32 = 3;
/// The oldest version still read: segments of any version from here to
/// [`VERSION`] are replayed, each entry decoded by its segment's version.
pub(super) const OLDEST_VERSION: u32 = 1;
pub(super) const HEADER_LEN: usize = 12;
/// `len` (4) + `crc` (4) + `kind` (1) + `seq` (8).
pub(super) const RECORD_HEADER_LEN: usize = 17;
/// Largest payload a record may carry; a longer `len` field is corruption.
pub const MAX_PAYLOAD: usize = 1 << 20;
pub(super) const KIND_ENTRY: u8 = 1;
pub(super) const KIND_DONE: u8 = 2;
/// One `(first, last)` range in a done record's payload.
const RANGE_LEN: usize = 16;
const MAX_RANGES_PER_RECORD: usize = MAX_PAYLOAD / RANGE_LEN;

/// The header of a new segment.
pub(super) fn header() -> [u8; HEADER_LEN] {
    header_of(VERSION)
}

fn header_of(version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..].copy_from_slice(&version.to_le_bytes());
    h
}

fn checksum(len: [u8; 4], kind: u8, seq: [u8; 8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(&[kind]);
    hasher.update(&seq);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends one record. The caller has checked `payload.len() <= MAX_PAYLOAD`,
/// so the length always fits the `u32` field.
pub(super) fn encode_record(buf: &mut Vec<u8>, kind: u8, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let seq = seq.to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&checksum(len, kind, seq, payload).to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(&seq);
    buf.extend_from_slice(payload);
}

/// Appends done records for `ranges`, split so that no payload exceeds
/// [`MAX_PAYLOAD`]. `high_water` is the journal's next unassigned sequence
/// number, stored in the record's `seq` field.
pub(super) fn encode_done(buf: &mut Vec<u8>, high_water: u64, ranges: &[(u64, u64)]) {
    for chunk in ranges.chunks(MAX_RANGES_PER_RECORD) {
        encode_done_record(buf, high_water, chunk);
    }
}

/// One done record; `ranges` must not exceed `MAX_RANGES_PER_RECORD`.
fn encode_done_record(buf: &mut Vec<u8>, high_water: u64, ranges: &[(u64, u64)]) {
    let mut payload = Vec::with_capacity(ranges.len() * RANGE_LEN);
    for &(first, last) in ranges {
        payload.extend_from_slice(&first.to_le_bytes());
        payload.extend_from_slice(&last.to_le_bytes());
    }
    encode_record(buf, KIND_DONE, high_water, &payload);
}

/// Sorted, merged inclusive ranges covering exactly `seqs`.
pub(super) fn ranges_from_seqs(mut seqs: Vec<u64>) -> Vec<(u64, u64)> {
    seqs.sort_unstable();
    seqs.dedup();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for seq in seqs {
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(seq) => *last = seq,
            _ => ranges.push((seq, seq)),
        }
    }
    ranges
}

/// Inclusive ranges covering every sequence number below `below` that is not in
/// `pending` (which must be ascending).
pub(super) fn complement(pending: impl Iterator<Item = u64>, below: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut start = 0u64;
    for seq in pending {
        if seq >= below {
            break;
        }
        if seq > start {
            ranges.push((start, seq - 1));
        }
        start = seq + 1;
    }
    if start < below {
        ranges.push((start, below - 1));
    }
    ranges
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    Entry {
        seq: u64,
        payload: &'a [u8],
    },
    /// `high_water` is the writer's next unassigned sequence number.
    Done {
        high_water: u64,
        ranges: Vec<(u64, u64)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderProblem {
    Empty,
    /// Shorter than a header: a crash while the segment was being created.
    Partial,
    BadMagic,
    UnsupportedVersion(u32),
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty file"),
            Self::Partial => f.write_str("partial header"),
            Self::BadMagic => f.write_str("not a leasedns journal segment (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported segment version {v}"),
        }
    }
}

/// Why parsing stopped before the end of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Damage {
    ShortRecordHeader,
    ShortRecord,
    AbsurdLength(u32),
    Checksum,
    UnknownKind(u8),
    MalformedDone,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortRecordHeader => f.write_str("truncated record header"),
            Self::ShortRecord => f.write_str("record extends past the end of the file"),
            Self::AbsurdLength(len) => write!(f, "record length {len} exceeds {MAX_PAYLOAD}"),
            Self::Checksum => f.write_str("record checksum mismatch"),
            Self::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            Self::MalformedDone => f.write_str("done record payload is not a list of ranges"),
        }
    }
}

#[derive(Debug)]
pub(super) struct ParsedSegment<'a> {
    /// The segment's format version.
    pub(super) header: Result<u32, HeaderProblem>,
    pub(super) records: Vec<Record<'a>>,
    /// Offset just past the last good record (0 when the header is bad).
    pub(super) good_len: usize,
    pub(super) damage: Option<Damage>,
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The segment's version, if it is one this build reads.
pub(super) fn parse_header(bytes: &[u8]) -> Result<u32, HeaderProblem> {
    if bytes.is_empty() {
        return Err(HeaderProblem::Empty);
    }
    if bytes.len() < HEADER_LEN {
        return Err(HeaderProblem::Partial);
    }
    if bytes[..8] != MAGIC {
        return Err(HeaderProblem::BadMagic);
    }
    match le_u32(bytes, 8) {
        version @ OLDEST_VERSION..=VERSION => Ok(version),
        other => Err(HeaderProblem::UnsupportedVersion(other)),
    }
}

/// Parses one record at the start of `rest`: the record and its total length.
fn parse_record(rest: &[u8]) -> Result<(Record<'_>, usize), Damage> {
    if rest.len() < RECORD_HEADER_LEN {
        return Err(Damage::ShortRecordHeader);
    }
    let len = le_u32(rest, 0);
    let payload_len = len as usize;
    if payload_len > MAX_PAYLOAD {
        return Err(Damage::AbsurdLength(len));
    }
    let total = RECORD_HEADER_LEN + payload_len;
    if rest.len() < total {
        return Err(Damage::ShortRecord);
    }
    let kind = rest[8];
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&rest[9..17]);
    let payload = &rest[RECORD_HEADER_LEN..total];
    if checksum(len.to_le_bytes(), kind, seq_bytes, payload) != le_u32(rest, 4) {
        return Err(Damage::Checksum);
    }
    let seq = u64::from_le_bytes(seq_bytes);
    let record = match kind {
        KIND_ENTRY => Record::Entry { seq, payload },
        KIND_DONE => {
            if !payload.len().is_multiple_of(RANGE_LEN) {
                return Err(Damage::MalformedDone);
            }
            let ranges = payload
                .chunks_exact(RANGE_LEN)
                .map(|r| (le_u64(r, 0), le_u64(r, 8)))
                .collect();
            Record::Done {
                high_water: seq,
                ranges,
            }
        }
        other => return Err(Damage::UnknownKind(other)),
    };
    Ok((record, total))
}

/// Parses a whole segment, stopping at the first damaged record.
pub(super) fn parse_segment(bytes: &[u8]) -> ParsedSegment<'_> {
    let version = match parse_header(bytes) {
        Ok(version) => version,
        Err(problem) => {
            return ParsedSegment {
                header: Err(problem),
                records: Vec::new(),
                good_len: 0,
                damage: None,
            };
        }
    };
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    let mut damage = None;
    while at < bytes.len() {
        match parse_record(&bytes[at..]) {
            Ok((record, len)) => {
                records.push(record);
                at += len;
            }
            Err(d) => {
                damage = Some(d);
                break;
            }
        }
    }
    ParsedSegment {
        header: Ok(version),
        records,
        good_len: at,
        damage,
    }
}

/// Fuzzing entry point: parses arbitrary bytes as a segment. It must never
/// panic, and what it accepts must re-encode to the same bytes.
pub fn fuzz_read_segment(bytes: &[u8]) {
    let parsed = parse_segment(bytes);
    assert!(parsed.good_len <= bytes.len());
    let Ok(version) = parsed.header else {
        assert!(parsed.records.is_empty());
        return;
    };
    let mut reencoded = header_of(version).to_vec();
    for record in &parsed.records {
        match record {
            Record::Entry { seq, payload } => {
                encode_record(&mut reencoded, KIND_ENTRY, *seq, payload)
            }
            Record::Done { high_water, ranges } => {
                encode_done_record(&mut reencoded, *high_water, ranges)
            }
        }
    }
    assert_eq!(&reencoded[..], &bytes[..parsed.good_len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_layout() {
        let mut buf = header().to_vec();
        encode_record(&mut buf, KIND_ENTRY, 7, b"hello");
        encode_done(&mut buf, 9, &[(1, 3), (7, 7)]);
        assert_eq!(&buf[..8], b"LDNSJRNL");
        assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 4], &5u32.to_le_bytes());
        assert_eq!(buf[HEADER_LEN + 8], KIND_ENTRY);
        let parsed = parse_segment(&buf);
        assert_eq!(parsed.header, Ok(VERSION));
        assert_eq!(parsed.damage, None);
        assert_eq!(parsed.good_len, buf.len());
        assert_eq!(
            parsed.records,
            vec![
                Record::Entry {
                    seq: 7,
                    payload: b"hello"
                },
                Record::Done {
                    high_water: 9,
                    ranges: vec![(1, 3), (7, 7)]
                },
            ]
        );
        fuzz_read_segment(&buf);
    }

    #[test]
    fn damage_kinds() {
        let mut buf = header().to_vec();
        encode_record(&mut buf, KIND_ENTRY, 1, b"abc");
        let good = buf.len();

        let mut absurd = buf.clone();
        absurd.extend_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        absurd.extend_from_slice(&[0u8; 13]);
        let p = parse_segment(&absurd);
        assert_eq!(
            (p.good_len, p.damage),
            (good, Some(Damage::AbsurdLength(MAX_PAYLOAD as u32 + 1)))
        );

        let mut unknown = buf.clone();
        encode_record(&mut unknown, 9, 2, b"");
        assert_eq!(parse_segment(&unknown).damage, Some(Damage::UnknownKind(9)));

        let mut bad_done = buf.clone();
        encode_record(&mut bad_done, KIND_DONE, 2, &[0u8; 15]);
        assert_eq!(parse_segment(&bad_done).damage, Some(Damage::MalformedDone));

        let mut flipped = buf.clone();
        flipped[good - 1] ^= 1;
        let p = parse_segment(&flipped);
        assert_eq!((p.good_len, p.damage), (HEADER_LEN, Some(Damage::Checksum)));

        // A corrupted length must not pass as a shorter valid record.
        let mut len_flip = buf.clone();
        len_flip[HEADER_LEN] = 2;
        assert_eq!(parse_segment(&len_flip).damage, Some(Damage::Checksum));

        assert_eq!(
            parse_segment(&buf[..good - 1]).damage,
            Some(Damage::ShortRecord)
        );
        assert_eq!(
            parse_segment(&buf[..HEADER_LEN + 3]).damage,
            Some(Damage::ShortRecordHeader)
        );
        assert_eq!(parse_segment(&[]).header, Err(HeaderProblem::Empty));
        assert_eq!(parse_segment(&buf[..5]).header, Err(HeaderProblem::Partial));
        let mut newer = buf.clone();
        newer[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert_eq!(
            parse_segment(&newer).header,
            Err(HeaderProblem::UnsupportedVersion(VERSION + 1))
        );
        let mut older = buf.clone();
        older[8..12].copy_from_slice(&(OLDEST_VERSION - 1).to_le_bytes());
        assert_eq!(
            parse_segment(&older).header,
            Err(HeaderProblem::UnsupportedVersion(OLDEST_VERSION - 1))
        );
        newer[0] = b'X';
        assert_eq!(parse_segment(&newer).header, Err(HeaderProblem::BadMagic));
    }

    #[test]
    fn every_version_read_parses_and_reencodes_in_its_own() {
        for version in OLDEST_VERSION..=VERSION {
            let mut buf = header_of(version).to_vec();
            encode_record(&mut buf, KIND_ENTRY, 1, b"x");
            let parsed = parse_segment(&buf);
            assert_eq!((parsed.header, parsed.damage), (Ok(version), None));
            fuzz_read_segment(&buf);
        }
    }

    #[test]
    fn ranges_and_complement() {
        assert_eq!(
            ranges_from_seqs(vec![5, 1, 2, 3, 9, 3, u64::MAX]),
            vec![(1, 3), (5, 5), (9, 9), (u64::MAX, u64::MAX)]
        );
        assert_eq!(
            complement([2u64, 3, 7].into_iter(), 10),
            vec![(0, 1), (4, 6), (8, 9)]
        );
        assert_eq!(complement([0u64, 9].into_iter(), 10), vec![(1, 8)]);
        assert_eq!(complement(std::iter::empty(), 0), vec![]);
        assert_eq!(complement([12u64].into_iter(), 10), vec![(0, 9)]);
    }

    #[test]
    fn done_records_split_at_the_payload_limit() {
        let ranges: Vec<(u64, u64)> = (0..MAX_RANGES_PER_RECORD as u64 + 3)
            .map(|i| (i * 2, i * 2))
            .collect();
        let mut buf = header().to_vec();
        encode_done(&mut buf, 1, &ranges);
        let p = parse_segment(&buf);
        assert_eq!(p.damage, None);
        assert_eq!(p.records.len(), 2);
        let total: usize = p
            .records
            .iter()
            .map(|r| match r {
                Record::Done { ranges, .. } => ranges.len(),
                Record::Entry { .. } => 0,
            })
            .sum();
        assert_eq!(total, ranges.len());
    }

    #[test]
    fn empty_done_record_is_accepted() {
        let mut buf = header().to_vec();
        encode_record(&mut buf, KIND_DONE, 3, &[]);
        let p = parse_segment(&buf);
        assert_eq!(
            p.records,
            vec![Record::Done {
                high_water: 3,
                ranges: vec![]
            }]
        );
        fuzz_read_segment(&buf);
    }

    #[derive(Clone, Debug)]
    enum Gen {
        Entry(u64, Vec<u8>),
        Done(u64, Vec<(u64, u64)>),
    }

    fn gen_record() -> impl proptest::strategy::Strategy<Value = Gen> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..50))
                .prop_map(|(s, p)| Gen::Entry(s, p)),
            (
                any::<u64>(),
                proptest::collection::vec((any::<u64>(), any::<u64>()), 0..4)
            )
                .prop_map(|(s, r)| Gen::Done(s, r)),
        ]
    }

    proptest::proptest! {
        /// Valid segments, then cut and damaged: what parses is always a
        /// prefix of what was written.
        #[test]
        fn damaged_segments_parse_to_a_prefix(
            records in proptest::collection::vec(gen_record(), 0..8),
            cut in proptest::num::usize::ANY,
            flips in proptest::collection::vec((proptest::num::usize::ANY, 0u8..8), 0..3),
        ) {
            let mut buf = header().to_vec();
            let mut ends = vec![buf.len()];
            for r in &records {
                match r {
                    Gen::Entry(s, p) => encode_record(&mut buf, KIND_ENTRY, *s, p),
                    Gen::Done(s, r) => encode_done_record(&mut buf, *s, r),
                }
                ends.push(buf.len());
            }
            let full = buf.len();
            buf.truncate(cut % (full + 1));
            let mut first_flip = buf.len();
            for (at, bit) in &flips {
                if !buf.is_empty() {
                    let at = at % buf.len();
                    buf[at] ^= 1 << bit;
                    first_flip = first_flip.min(at);
                }
            }
            fuzz_read_segment(&buf);
            let parsed = parse_segment(&buf);
            if parsed.header.is_ok() {
                // Everything before the first damaged byte that forms whole
                // records must be read back.
                let intact = ends.iter().filter(|&&e| e <= first_flip.min(buf.len())).count().saturating_sub(1);
                proptest::prop_assert!(parsed.records.len() >= intact);
                proptest::prop_assert!(parsed.records.len() <= records.len());
                for (got, want) in parsed.records.iter().zip(&records).take(intact) {
                    match (got, want) {
                        (Record::Entry { seq, payload }, Gen::Entry(s, p)) => {
                            proptest::prop_assert_eq!((*seq, *payload), (*s, p.as_slice()));
                        }
                        (Record::Done { high_water, ranges }, Gen::Done(s, r)) => {
                            proptest::prop_assert_eq!((*high_water, ranges), (*s, r));
                        }
                        _ => proptest::prop_assert!(false, "record kind changed"),
                    }
                }
            }
        }

        #[test]
        fn fuzz_entry_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            fuzz_read_segment(&bytes);
            let mut with_header = header().to_vec();
            with_header.extend_from_slice(&bytes);
            fuzz_read_segment(&with_header);
        }
    }
}
