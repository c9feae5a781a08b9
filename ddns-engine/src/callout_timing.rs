//! How long callouts take inside Kea: a lock-free histogram of nanoseconds
//! (log-linear buckets: four per power of two, about 19% wide), bumped by
//! every packet callout and read as p50/p99/max statistics.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
/// Buckets up to 2^40 ns (18 minutes): far beyond any callout.
const BUCKETS: usize = 41 * SUB;

pub struct CalloutTiming {
    buckets: [AtomicU64; BUCKETS],
    max_ns: AtomicU64,
}

fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    let sub = ((ns >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    (((exp - SUB_BITS + 1) as usize) * SUB + sub).min(BUCKETS - 1)
}

/// Upper bound (ns) of a bucket, the value reported for a quantile in it.
fn bucket_upper(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let exp = (index / SUB) as u32 + SUB_BITS - 1;
    let sub = (index % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS)).saturating_sub(1)
}

impl Default for CalloutTiming {
    fn default() -> Self {
        CalloutTiming {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl CalloutTiming {
    pub fn record(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0..=1) in ns, as its bucket's upper bound; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_upper(i).min(self.max_ns.load(Ordering::Relaxed));
            }
        }
        self.max_ns.load(Ordering::Relaxed)
    }

    pub fn max_ns(&self) -> u64 {
        self.max_ns.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_value_falls_in_a_bucket_that_bounds_it(ns in 0u64..(1 << 40)) {
            let b = bucket_of(ns);
            prop_assert!(bucket_upper(b) >= ns);
            if b > 0 {
                prop_assert!(bucket_upper(b - 1) < ns);
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_mix() {
        let t = CalloutTiming::default();
        for _ in 0..99 {
            t.record(Duration::from_nanos(1_000));
        }
        t.record(Duration::from_micros(50));
        assert_eq!(t.count(), 100);
        let p50 = t.quantile_ns(0.5);
        assert!((1_000..1_200).contains(&p50), "{p50}");
        assert!(t.quantile_ns(0.99) < 1_200);
        assert_eq!(t.quantile_ns(1.0), 50_000);
        assert_eq!(t.max_ns(), 50_000);
        assert_eq!(CalloutTiming::default().quantile_ns(0.99), 0);
    }
}
