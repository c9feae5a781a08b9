//! leasedns Kea hook: lease events become TSIG-signed RFC 2136 updates.
//!
//! This crate is the boundary with kea-dhcp4: `exports` (the symbols Kea
//! looks up, each under the panic guard) and `host` (the adapter that copies
//! Kea's objects into the engine's types) are the only modules with
//! `unsafe`, and the compiler holds that line (`unsafe` is denied crate-wide
//! and allowed on those two). `callouts` and `lifecycle` say what each hook
//! point does, `logging` bridges tracing into Kea's log. Everything else is
//! the `ddns_engine` crate, which needs no Kea header.
#![deny(unsafe_code)]

mod callouts;
#[allow(unsafe_code)]
mod exports;
mod ha;
#[allow(unsafe_code)]
mod host;
mod lifecycle;
mod logging;

use ddns_engine::{change, config, engine, naming, stats};
