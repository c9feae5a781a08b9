//! Raw bindings of the Knot DNS query-module API (`knot/module.h`),
//! generated at build time; the build fails unless the installed header has
//! a supported `KNOTD_MOD_ABI_VERSION` (400: Knot 3.2; 600: 3.4 and 3.5).
//! Nothing here is safe to call: the module's
//! adapter wraps what it uses.
//!
//! What differs between the supported ABIs beyond the generated items is
//! exposed as plain constants, so that users need no `cfg`:
//! [`QUERY_PROTO_TLS`] is `Some` where knotd reports DNS over TLS as its own
//! transport (ABI 600). Build scripts of direct dependents read the same
//! facts as `DEP_KNOTD_MODULE_ABI` (400 or 600) and
//! `DEP_KNOTD_MODULE_QUERY_PROTO_TLS` (`yes` or `no`).
//!
//! The symbols resolve from the knotd process that loads the module; this
//! crate links no library.

#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    unreachable_pub,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
include!(concat!(env!("OUT_DIR"), "/transports.rs"));
