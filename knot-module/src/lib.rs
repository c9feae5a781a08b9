//! mod-querystats: a Knot DNS 3.2 query module that counts queries by zone,
//! type, rcode and transport, times them, tracks heavy hitters and UPDATE
//! arrivals, mirrors the main counters into `knotc stats`, and serves
//! everything as Prometheus metrics on an optional HTTP endpoint.
//!
//! Folders by responsibility; dependencies point one way, boundary ->
//! engine (README.md, "Layout"):
//! - `ffi`: the boundary with knotd (exports, panic guard, adapter, log
//!   bridge);
//! - `stats` and `http`: safe Rust that never sees knotd (counters, heavy
//!   hitters, clock; the Prometheus exposition and its endpoint);
//! - `config`: the module's settings.
//!
//! The compiler holds the `unsafe` line: it is denied crate-wide and
//! allowed only on `ffi::{exports, host, log_bridge}` and
//! `stats::clock_source` (and the test-only `ffi::knotd_doubles`). See
//! SAFETY.md.
#![deny(unsafe_code)]

mod config;
mod ffi;
mod http;
mod stats;
