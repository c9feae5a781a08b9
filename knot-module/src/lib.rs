//! mod-querystats: a Knot DNS 3.2 query module that counts queries by zone,
//! type, rcode and transport, times them, tracks heavy hitters and UPDATE
//! arrivals, mirrors the main counters into `knotc stats`, and serves
//! everything as Prometheus metrics on an optional HTTP endpoint.
//!
//! Layout: `exports` (the `knotd_mod_api` symbol and callbacks) and `host`
//! (the adapter reading knotd's structures) are the only modules with
//! `unsafe`; `config`, `dims`, `instance`, `heavy`, `metrics` and `endpoint`
//! are safe Rust; `clock` reads the CPU's time-stamp counter through
//! `host`. See README.md and SAFETY.md. The compiler holds that line:
//! `unsafe` is denied crate-wide and allowed only on `exports` and `host`.
#![deny(unsafe_code)]

pub mod clock;
pub mod config;
pub mod dims;
pub mod endpoint;
#[allow(unsafe_code)]
pub mod exports;
pub mod heavy;
#[allow(unsafe_code)]
mod host;
pub mod instance;
pub mod metrics;
