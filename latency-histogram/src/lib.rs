//! A lock-free log-linear latency histogram (nanoseconds), cheap enough to
//! record from Kea's packet threads inside a callout, and its text dump.
//!
//! Values are grouped by their power of two and split into 16 linear
//! sub-buckets per group, so a percentile read back is within 1/16 (6.25 %)
//! of the true value, from 1 ns to about 70 s. One histogram for the
//! project: the hook's callout statistics (p50/p99/max in Kea's
//! statistics) and the benchmark's callout timer both record into it.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Linear sub-buckets per power of two.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// Groups cover values below 2^GROUPS ns (about 73 s); larger values land
/// in the last bucket.
const GROUPS: u32 = 36;
/// Values below SUB ns get one bucket each; every later group adds SUB.
pub const BUCKETS: usize = (SUB as usize) * (GROUPS as usize - SUB_BITS as usize + 1);

/// Bucket index of `ns`.
pub fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let group = msb - SUB_BITS + 1;
    let sub = (ns >> (msb - SUB_BITS)) & (SUB - 1);
    let index = (u64::from(group) * SUB + sub) as usize;
    index.min(BUCKETS - 1)
}

/// The smallest value that falls in bucket `index`.
pub fn bucket_low(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let group = index / SUB;
    let sub = index % SUB;
    let shift = group - 1;
    (SUB + sub) << shift
}

/// The largest value that falls in bucket `index`.
pub fn bucket_high(index: usize) -> u64 {
    if index + 1 >= BUCKETS {
        return u64::MAX;
    }
    bucket_low(index + 1) - 1
}

/// Counts per bucket, plus exact count, sum and maximum.
#[derive(Debug)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicHistogram {
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value. Relaxed ordering: the dump happens after Kea's
    /// threads stopped calling, so only atomicity matters.
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// A plain copy of the counters.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// A histogram read back from a dump or copied from an [`AtomicHistogram`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// The value at quantile `q` (0..=1): the upper edge of the bucket that
    /// holds it, capped at the exact maximum, so it never understates.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(index).min(self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> u64 {
        self.sum.checked_div(self.count).unwrap_or(0)
    }

    /// Adds another histogram's counts (e.g. all callouts of one packet).
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }
}

/// One line per histogram: `name count sum max index:n index:n ...`
/// (non-empty buckets only).
pub fn dump(histograms: &[(&str, Histogram)]) -> String {
    let mut text = String::new();
    for (name, h) in histograms {
        let _ = write!(text, "{name} {} {} {}", h.count, h.sum, h.max);
        for (index, n) in h.buckets.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(text, " {index}:{n}");
        }
        text.push('\n');
    }
    text
}

/// Parses [`dump`]'s output; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<(String, Histogram)> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, Histogram)> {
    let mut fields = line.split_whitespace();
    let name = fields.next()?.to_owned();
    let mut h = Histogram {
        count: fields.next()?.parse().ok()?,
        sum: fields.next()?.parse().ok()?,
        max: fields.next()?.parse().ok()?,
        ..Histogram::default()
    };
    for field in fields {
        let (index, n) = field.split_once(':')?;
        let index: usize = index.parse().ok()?;
        *h.buckets.get_mut(index)? = n.parse().ok()?;
    }
    Some((name, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_known_mix_never_understate_and_stop_at_the_maximum() {
        let h = AtomicHistogram::new();
        for _ in 0..99 {
            h.record(1_000);
        }
        h.record(50_000);
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        let p50 = s.quantile(0.5);
        assert!((1_000..1_070).contains(&p50), "{p50}");
        assert!(s.quantile(0.99) < 1_070);
        assert_eq!(s.quantile(1.0), 50_000);
        assert_eq!(s.max, 50_000);
        assert_eq!(AtomicHistogram::new().snapshot().quantile(0.99), 0);
    }

    #[test]
    fn every_value_lies_inside_its_bucket() {
        for ns in (0..5000).chain([65_535, 65_536, 1 << 20, (1 << 20) + 12_345, 1 << 34]) {
            let index = bucket_of(ns);
            assert!(bucket_low(index) <= ns, "{ns} below bucket {index}");
            assert!(ns <= bucket_high(index), "{ns} above bucket {index}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        for index in 1..BUCKETS - 1 {
            assert_eq!(bucket_low(index), bucket_high(index - 1) + 1, "{index}");
            let low = bucket_low(index);
            let width = bucket_high(index) - low + 1;
            assert!(
                width * SUB <= low.max(SUB),
                "bucket {index} too wide: {width} at {low}"
            );
        }
    }

    #[test]
    fn quantiles_bound_the_true_values_within_the_bucket_error() {
        let h = AtomicHistogram::new();
        for ns in 1..=10_000u64 {
            h.record(ns * 10);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10_000);
        assert_eq!(s.max, 100_000);
        let p50 = s.quantile(0.5);
        assert!((50_000..=50_000 + 50_000 / 16).contains(&p50), "p50 {p50}");
        let p99 = s.quantile(0.99);
        assert!((99_000..=99_000 + 99_000 / 16).contains(&p99), "p99 {p99}");
        assert_eq!(s.quantile(1.0), 100_000);
        assert_eq!(s.mean(), 50_005);
    }

    #[test]
    fn dump_round_trips_and_merges() {
        let a = AtomicHistogram::new();
        a.record(3);
        a.record(12_345);
        let b = AtomicHistogram::new();
        b.record(7_000_000);
        let text = dump(&[("lease4_select", a.snapshot()), ("pkt4_send", b.snapshot())]);
        let parsed = parse(&text);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0, "lease4_select");
        assert_eq!(parsed[0].1, a.snapshot());
        let mut all = parsed[0].1.clone();
        all.merge(&parsed[1].1);
        assert_eq!(all.count, 3);
        assert_eq!(all.max, 7_000_000);
        assert!(parse("garbage line\nx 1 2").is_empty());
    }
}
