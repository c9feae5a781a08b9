//! The hook's counters. Bumped lock-free from any thread; published to Kea's
//! StatsMgr (`statistic-get-all`) from Kea's main thread by the timer.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $field:ident => $stat:literal ),* $(,)?) => {
        #[derive(Default)]
        pub struct Stats {
            $( $(#[$doc])* pub $field: AtomicU64, )*
            /// Changes waiting in memory (queued or being sent), a gauge.
            pub queue_depth: AtomicI64,
            /// Pending entries in the on-disk journal, a gauge.
            pub journal_entries: AtomicI64,
            /// 1 while the journal cannot be written (changes in memory only).
            pub journal_degraded: AtomicI64,
            /// Time spent inside packet callouts (ns).
            pub callouts: latency_histogram::AtomicHistogram,
        }

        impl Stats {
            /// (Kea statistic name, value) for every counter and gauge.
            pub fn snapshot(&self) -> Vec<(&'static str, i64)> {
                let mut out = vec![
                    $( ($stat, i64::try_from(self.$field.load(Ordering::Relaxed)).unwrap_or(i64::MAX)), )*
                ];
                out.push(("leasedns.queue-depth", self.queue_depth.load(Ordering::Relaxed)));
                out.push(("leasedns.journal-entries", self.journal_entries.load(Ordering::Relaxed)));
                out.push(("leasedns.journal-degraded", self.journal_degraded.load(Ordering::Relaxed)));
                let ns = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let callouts = self.callouts.snapshot();
                out.push(("leasedns.callout-count", ns(callouts.count)));
                out.push(("leasedns.callout-p50-ns", ns(callouts.quantile(0.50))));
                out.push(("leasedns.callout-p99-ns", ns(callouts.quantile(0.99))));
                out.push(("leasedns.callout-max-ns", ns(callouts.max)));
                out
            }
        }
    };
}

counters! {
    /// Lease changes handed to the engine by callouts.
    changes_submitted => "leasedns.changes-submitted",
    /// Renewals that needed no DNS traffic (same name, address and TTL).
    changes_unchanged => "leasedns.changes-unchanged",
    /// Changes not sent because a later change for the same name and
    /// address replaced them while they waited (e.g. during an outage).
    changes_superseded => "leasedns.changes-superseded",
    /// Changes that could not be queued because the queue was full (each
    /// asks for a reconciliation, which repairs DNS once drops stop).
    changes_dropped => "leasedns.changes-dropped",
    /// Reconciliations finished (at start-up, on request, after drops or a
    /// degraded journal).
    reconcile_runs => "leasedns.reconcile-runs",
    /// Changes queued by reconciliations to repair DNS.
    reconcile_changes => "leasedns.reconcile-changes",
    /// DNS UPDATE messages sent (each attempt, each step).
    updates_sent => "leasedns.updates-sent",
    /// Changes fully applied (records published or removed).
    updates_succeeded => "leasedns.updates-succeeded",
    /// Attempts that failed and will be retried (timeouts, SERVFAIL, network).
    updates_failed => "leasedns.updates-failed",
    /// Changes given up as non-retryable (REFUSED, NOTAUTH/BADSIG, NOTZONE, ...).
    updates_refused => "leasedns.updates-refused",
    /// Adds not applied because another client or a static record owns the name.
    updates_conflict => "leasedns.updates-conflict",
    /// Leases reclaimed on a Kea HA peer that served no client then: their
    /// records are the serving peer's to remove.
    reclaims_left_to_partner => "leasedns.reclaims-left-to-partner",
    /// Client names refused (invalid, outside every zone).
    names_rejected => "leasedns.names-rejected",
    /// Journal write or sync errors (the change stays in memory).
    journal_errors => "leasedns.journal-errors",
    /// Background log lines dropped because the log queue was full.
    log_dropped => "leasedns.log-dropped",
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_every_counter_once() {
        let stats = Stats::default();
        Stats::bump(&stats.updates_sent);
        stats.queue_depth.store(3, Ordering::Relaxed);
        let snap = stats.snapshot();
        let mut names: Vec<_> = snap.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), snap.len());
        assert!(snap.contains(&("leasedns.updates-sent", 1)));
        assert!(snap.contains(&("leasedns.queue-depth", 3)));
        assert!(names.iter().all(|n| n.starts_with("leasedns.")));
    }
}
