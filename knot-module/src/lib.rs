//! mod-querystats: a Knot DNS 3.2 query module that counts queries by zone,
//! type, rcode and transport, times them, tracks heavy hitters and UPDATE
//! arrivals, mirrors the main counters into `knotc stats`, and serves
//! everything as Prometheus metrics on an optional HTTP endpoint.
//!
//! Layout, dependencies pointing one way (boundary -> engine):
//! - boundary: `exports` (the `knotd_mod_api` symbol and callbacks), `host`
//!   (the adapter reading knotd's structures into engine types) and
//!   `log_bridge` (`tracing` -> `knotd_mod_log`);
//! - engine, safe Rust, no knotd: `config`, `dims`, `instance`, `heavy`,
//!   `metrics`, `endpoint` and `clock`;
//! - `clock_source`: the raw RDTSC/CPUID/CLOCK_MONOTONIC reads under
//!   `clock`, a leaf that depends on nothing in the crate.
//!
//! See README.md and SAFETY.md. The compiler holds that line: `unsafe` is
//! denied crate-wide and allowed only on `exports`, `host`, `log_bridge`
//! and `clock_source`.
#![deny(unsafe_code)]

mod clock;
#[allow(unsafe_code)]
mod clock_source;
mod config;
mod dims;
mod endpoint;
#[allow(unsafe_code)]
mod exports;
mod heavy;
#[allow(unsafe_code)]
mod host;
mod instance;
#[allow(unsafe_code)]
mod log_bridge;
mod metrics;
