//! Panics caught at the knotd boundary, counted once for the process.
//!
//! `panic_guard` catches them; the count lives here, in the engine, so
//! that `/metrics` can show it without importing the boundary. It is
//! process-wide rather than per instance: a panic in `config_check` or in a
//! failing `load` has no instance, and knotd keeps the library (and so this
//! static) loaded across `knotc reload`, so the count is not reset by one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Const-initialised: loading the library runs no code.
static CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Counts one caught panic; returns the new total.
pub(crate) fn record() -> u64 {
    CAUGHT.fetch_add(1, Relaxed).wrapping_add(1)
}

/// Panics caught so far in this process.
pub(crate) fn total() -> u64 {
    CAUGHT.load(Relaxed)
}
