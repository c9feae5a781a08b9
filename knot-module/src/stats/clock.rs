//! The clock of the latency histogram.
//!
//! Every request reads it twice (BEGIN and END). `clock_gettime` through
//! the vDSO costs about 30 ns here; the time-stamp counter about 12 ns and
//! a handful of instructions. The TSC is used only when it is invariant
//! (constant rate, never stops) and the kernel itself keeps
//! CLOCK_MONOTONIC with it (current clocksource `tsc`, i.e. the kernel
//! verified it is synchronised across CPUs); its rate is measured against
//! CLOCK_MONOTONIC once per process. Otherwise the clock is
//! CLOCK_MONOTONIC in nanoseconds. Intervals are kept in clock ticks on
//! the query path and converted to nanoseconds only when a scrape reads
//! them; the histogram bounds are converted to ticks once at load.

use crate::stats::clock_source;
use std::sync::OnceLock;
use std::time::Duration;

/// Where the kernel names the clocksource behind CLOCK_MONOTONIC.
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
/// How long the TSC rate is measured against CLOCK_MONOTONIC. The two
/// readings at either end are bracketed to within ~100 ns, so the rate is
/// off by about 1e-5: a 10 us bucket bound moves by 0.1 ns.
const CALIBRATION: Duration = Duration::from_millis(10);
const NS_PER_SEC: u128 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clock {
    /// Read the TSC (true) or CLOCK_MONOTONIC in ns (false).
    tsc: bool,
    ticks_per_sec: u64,
}

impl Clock {
    /// CLOCK_MONOTONIC in nanoseconds.
    pub(crate) const MONOTONIC: Clock = Clock {
        tsc: false,
        ticks_per_sec: 1_000_000_000,
    };

    /// The TSC if it is usable (decided and calibrated once per process,
    /// at the first module load), otherwise [`Clock::MONOTONIC`].
    pub(crate) fn detect() -> Clock {
        static DETECTED: OnceLock<Clock> = OnceLock::new();
        *DETECTED.get_or_init(|| calibrated_tsc().unwrap_or(Clock::MONOTONIC))
    }

    pub(crate) fn is_tsc(self) -> bool {
        self.tsc
    }

    pub(crate) fn ticks_per_sec(self) -> u64 {
        self.ticks_per_sec
    }

    /// The current reading; never 0 (0 means "no reading" to callers).
    #[inline(always)]
    pub(crate) fn now(self) -> u64 {
        let ticks = if self.tsc {
            clock_source::tsc()
        } else {
            clock_source::monotonic_ns()
        };
        ticks.max(1)
    }

    /// `ns` in ticks, rounded to the nearest tick.
    pub(crate) fn ticks_from_ns(self, ns: u64) -> u64 {
        let ticks = (u128::from(ns) * u128::from(self.ticks_per_sec) + NS_PER_SEC / 2) / NS_PER_SEC;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// `ticks` in nanoseconds, rounded to the nearest nanosecond.
    pub(crate) fn ns_from_ticks(self, ticks: u64) -> u64 {
        let hz = u128::from(self.ticks_per_sec.max(1));
        let ns = (u128::from(ticks) * NS_PER_SEC + hz / 2) / hz;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

fn calibrated_tsc() -> Option<Clock> {
    let kernel_uses_tsc = std::fs::read_to_string(CLOCKSOURCE).is_ok_and(|s| s.trim() == "tsc");
    if !kernel_uses_tsc || !clock_source::tsc_is_invariant() {
        return None;
    }
    let (tsc0, ns0) = reading_pair();
    std::thread::sleep(CALIBRATION);
    let (tsc1, ns1) = reading_pair();
    let ticks = u128::from(tsc1.checked_sub(tsc0)?);
    let ns = u128::from(ns1.checked_sub(ns0)?);
    if ns == 0 {
        return None;
    }
    let hz = u64::try_from(ticks * NS_PER_SEC / ns).ok()?;
    // Anything outside 100 MHz..20 GHz is not a TSC rate we trust.
    (100_000_000..=20_000_000_000)
        .contains(&hz)
        .then_some(Clock {
            tsc: true,
            ticks_per_sec: hz,
        })
}

/// A TSC and a CLOCK_MONOTONIC reading taken as close together as
/// possible: the monotonic read is bracketed by two TSC reads, and of a
/// few tries the tightest bracket wins (a preempted try is discarded).
fn reading_pair() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..8 {
        let before = clock_source::tsc();
        let ns = clock_source::monotonic_ns();
        let after = clock_source::tsc();
        let width = after.wrapping_sub(before);
        if width < best.0 {
            best = (width, before + width / 2, ns);
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_converts_one_to_one() {
        let clock = Clock::MONOTONIC;
        assert_eq!(clock.ticks_from_ns(12_345), 12_345);
        assert_eq!(clock.ns_from_ticks(12_345), 12_345);
        assert_eq!(clock.ticks_from_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn conversions_round_to_nearest() {
        let clock = Clock {
            tsc: true,
            ticks_per_sec: 2_445_434_000,
        };
        assert_eq!(clock.ticks_from_ns(10_000), 24_454);
        assert_eq!(clock.ns_from_ticks(24_454), 10_000);
        assert_eq!(clock.ns_from_ticks(2_445_434_000), 1_000_000_000);
        assert_eq!(clock.ticks_from_ns(u64::MAX), u64::MAX);
    }

    /// On a machine where the TSC is chosen, it must measure a sleep as
    /// CLOCK_MONOTONIC does; elsewhere the monotonic clock is used.
    #[test]
    fn detected_clock_agrees_with_monotonic() {
        let clock = Clock::detect();
        assert_eq!(clock, Clock::detect(), "detected once per process");
        if !clock.is_tsc() {
            assert_eq!(clock, Clock::MONOTONIC);
            return;
        }
        let ns0 = clock_source::monotonic_ns();
        let t0 = clock.now();
        std::thread::sleep(Duration::from_millis(50));
        let t1 = clock.now();
        let ns1 = clock_source::monotonic_ns();
        let by_tsc = clock.ns_from_ticks(t1 - t0) as f64;
        let by_monotonic = (ns1 - ns0) as f64;
        assert!(
            (by_tsc / by_monotonic - 1.0).abs() < 0.01,
            "tsc {by_tsc} ns, monotonic {by_monotonic} ns at {} Hz",
            clock.ticks_per_sec()
        );
    }
}
