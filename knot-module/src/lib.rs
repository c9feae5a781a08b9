//! mod-querystats: a Knot DNS 3.2 query module that counts queries by zone,
//! type, rcode and transport, times them, tracks heavy hitters and UPDATE
//! arrivals, mirrors the main counters into `knotc stats`, and serves
//! everything as Prometheus metrics on an optional HTTP endpoint.
//!
//! Dependencies point one way, boundary -> engine (README.md, "Layout"):
//! - boundary: `exports` (the `knotd_mod_api` symbol and callbacks),
//!   `panic_guard` (the guard every callback runs under), `host` (the
//!   adapter reading knotd's structures into engine types) and
//!   `log_bridge` (`tracing` -> `knotd_mod_log`);
//! - engine, safe Rust that never sees knotd: `config`, `dims`, `instance`,
//!   `heavy`, `metrics`, `endpoint`, `clock` and `panics`;
//! - `clock_source`: the RDTSC/CPUID/CLOCK_MONOTONIC reads under `clock`,
//!   a leaf that imports nothing from the crate and never calls knotd.
//!
//! The compiler holds the `unsafe` line: it is denied crate-wide and
//! allowed only on `exports`, `host`, `log_bridge` and `clock_source` (and
//! the test-only `knotd_doubles`). See SAFETY.md.
#![deny(unsafe_code)]

// Boundary.
#[allow(unsafe_code)]
mod exports;
#[allow(unsafe_code)]
mod host;
#[allow(unsafe_code)]
mod log_bridge;
mod panic_guard;

// Engine.
mod clock;
mod config;
mod dims;
mod endpoint;
mod heavy;
mod instance;
mod metrics;
mod panics;

// Platform: the clock's raw reads.
#[allow(unsafe_code)]
mod clock_source;

#[cfg(test)]
#[allow(unsafe_code)]
mod knotd_doubles;
