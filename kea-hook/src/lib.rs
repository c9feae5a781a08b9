//! leasedns Kea hook: lease events become TSIG-signed RFC 2136 updates.
//!
//! `exports` and `host` are the boundary with kea-dhcp4 (the only files with
//! `unsafe`); everything else is the DDNS engine in safe Rust: `config`,
//! `naming`, `dhcid`, `update` and `dns` (what to send), `journal` and
//! `engine` (how it gets there without blocking Kea or losing a change).
//! The compiler holds that line: `unsafe` is denied crate-wide and allowed
//! only on the two boundary modules.
#![deny(unsafe_code)]

pub mod callout_timing;
pub mod callouts;
pub mod change;
pub mod config;
pub mod dhcid;
pub mod dns;
pub mod engine;
#[allow(unsafe_code)]
pub mod exports;
#[allow(unsafe_code)]
pub mod host;
pub mod journal;
pub mod lifecycle;
pub mod logging;
pub mod naming;
pub mod reconcile;
pub mod stats;
pub mod update;
