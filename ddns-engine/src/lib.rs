//! The leasedns DDNS engine, in safe Rust and without any Kea header, so it
//! builds, tests and fuzzes anywhere. Folders by responsibility: what to
//! publish is `change` (the lease's DNS state and the one lease -> DNS
//! rule), `naming` (the client's FQDN; `naming::dhcid`) and `config`; how
//! it gets there is `dns` (UDP/TCP/AXFR with TSIG; `dns::update`, the RFC
//! 4703 messages and their outcomes), `journal` and `engine` (journal
//! thread and senders, without blocking the host or losing a change;
//! `engine::reconcile` repairs the zones from the lease database). `stats`
//! is what the host shows.
//! The Kea boundary (exports, adapter, callouts) lives in the kea-hook crate.
#![forbid(unsafe_code)]

pub mod change;
pub mod config;
pub mod dns;
pub mod engine;
pub mod journal;
pub mod naming;
pub mod stats;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

/// The `tracing` target prefix of every event this crate emits: a host's
/// log bridge that keeps only its own INFO/DEBUG lines must keep these too.
pub const TRACING_TARGET: &str = module_path!();
