//! The callout timer: a Kea 2.2 hook library that stands in for
//! libdhcp_leasedns.so, loads the real hook (`LEASEDNS_TIMED_LIB`) and
//! forwards every entry point and callout to it, timing each callout with
//! the monotonic clock into a lock-free histogram. At `unload` it writes the
//! histograms to `$LEASEDNS_CALLOUT_TIMING_DIR/callouts-<pid>.txt`, which
//! the benchmark reads back for the p50/p99 it reports.
//!
//! It measures the time Kea spends inside each leasedns callout (argument
//! extraction in the C++ shim included) twice: wall-clock, and on-CPU time
//! of the calling thread, so preemption by other processes (or the hook's
//! own threads) on a busy machine can be told apart from the callout's own
//! work. It adds two vDSO clock reads, two CPU-clock system calls and eight
//! relaxed atomics per callout (well under 1 us).

/// The histogram the timer records into, shared with the hook's own callout statistics.
pub use latency_histogram as histogram;

/// The exported symbols (public so the lint sees them as the API they are).
pub mod timer;

/// Names of the callouts the timer forwards, in dump order.
pub const CALLOUTS: [&str; 9] = [
    "dhcp4_srv_configured",
    "ddns4_update",
    "lease4_select",
    "lease4_renew",
    "pkt4_send",
    "leases4_committed",
    "lease4_decline",
    "lease4_expire",
    "lease4_recover",
];

/// Suffix of the histograms of on-CPU time (the plain name is wall time).
pub const CPU_SUFFIX: &str = ".cpu";

/// Environment variable naming the real hook library the timer loads.
pub const TIMED_LIB_ENV: &str = "LEASEDNS_TIMED_LIB";
/// Environment variable naming the directory the dump is written to.
pub const TIMING_DIR_ENV: &str = "LEASEDNS_CALLOUT_TIMING_DIR";

/// The dump file of the Kea process `pid` in `dir`.
pub fn dump_path(dir: &std::path::Path, pid: u32) -> std::path::PathBuf {
    dir.join(format!("callouts-{pid}.txt"))
}
