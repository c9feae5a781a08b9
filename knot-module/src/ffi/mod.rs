//! The boundary with knotd: everything that touches its API or its raw
//! structures. `exports` (the `knotd_mod_api` symbol and callbacks),
//! `panic_guard` (the guard every callback runs under), `host` (the adapter
//! reading knotd's structures into engine types) and `log_bridge`
//! (`tracing` -> `knotd_mod_log`).

#[allow(unsafe_code)]
pub(crate) mod exports;
#[allow(unsafe_code)]
pub(crate) mod host;
#[allow(unsafe_code)]
pub(crate) mod log_bridge;
pub(crate) mod panic_guard;

#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod knotd_doubles;
