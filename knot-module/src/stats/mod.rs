//! The statistics, in safe Rust that never sees knotd: per-thread counters
//! and the per-zone instance (`instance`), their dimensions (`dims`), heavy
//! hitters (`heavy`), caught panics (`panics`) and the request clock
//! (`clock`, over `clock_source`: the RDTSC/CPUID/CLOCK_MONOTONIC reads, a
//! leaf that imports nothing from the crate and never calls knotd).

pub(crate) mod clock;
#[allow(unsafe_code)]
pub(crate) mod clock_source;
pub(crate) mod dims;
pub(crate) mod heavy;
pub(crate) mod instance;
pub(crate) mod panics;
