//! The leasedns DDNS engine, in safe Rust and without any Kea header, so it
//! builds, tests and fuzzes anywhere. What to publish: `change` (the lease's
//! DNS state and the one lease -> DNS rule), `naming` (the client's FQDN),
//! `dhcid`, `config`. How it gets there: `update` (RFC 4703 messages and
//! their outcomes) over `dns` (UDP/TCP with TSIG), through `journal` and
//! `engine` (without blocking the host or losing a change), repaired by
//! `reconcile`. `stats` is what the host shows.
//! The Kea boundary (exports, adapter, callouts) lives in the kea-hook crate.
#![forbid(unsafe_code)]

pub mod change;
pub mod config;
pub mod dhcid;
pub mod dns;
pub mod engine;
pub mod journal;
pub mod naming;
pub mod reconcile;
pub mod stats;
pub mod update;

/// The `tracing` target prefix of every event this crate emits: a host's
/// log bridge that keeps only its own INFO/DEBUG lines must keep these too.
pub const TRACING_TARGET: &str = module_path!();
