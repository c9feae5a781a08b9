//! Raw declarations of the leasedns Kea shim (`shim/leasedns_shim.h`).
//!
//! The shim is the only code that touches `isc::` types; every function is
//! `noexcept` and returns [`LDNS_OK`], [`LDNS_ABSENT`] or [`LDNS_ERR`].
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_long, c_void};

pub const LDNS_OK: c_int = 0;
pub const LDNS_ABSENT: c_int = 1;
pub const LDNS_ERR: c_int = -1;

pub const LDNS_MAX_HWADDR: usize = 20;
pub const LDNS_MAX_CLIENT_ID: usize = 256;
pub const LDNS_MAX_NAME: usize = 512;

/// Kea's `KEA_HOOKS_VERSION` of the headers this crate was built against.
pub const KEA_HOOKS_VERSION: c_int = {
    let bytes = env!("LEASEDNS_KEA_HOOKS_VERSION").as_bytes();
    let mut value: c_int = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as c_int;
        i += 1;
    }
    value
};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ldns_lease4_t {
    pub addr: u32,
    pub valid_lft: u32,
    pub cltt: i64,
    pub subnet_id: u32,
    pub state: u32,
    pub htype: u16,
    pub hwaddr_len: u16,
    pub hwaddr: [u8; LDNS_MAX_HWADDR],
    pub client_id_len: u16,
    pub client_id: [u8; LDNS_MAX_CLIENT_ID],
    pub hostname_len: u16,
    pub hostname_truncated: u8,
    pub fqdn_fwd: u8,
    pub fqdn_rev: u8,
    pub hostname: [c_char; LDNS_MAX_NAME],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ldns_client_names_t {
    pub has_fqdn: u8,
    pub fqdn_flags: u8,
    pub fqdn_truncated: u8,
    pub fqdn_len: u16,
    pub fqdn: [u8; LDNS_MAX_NAME],
    pub has_hostname: u8,
    pub hostname_truncated: u8,
    pub hostname_len: u16,
    pub hostname: [u8; LDNS_MAX_NAME],
    pub msg_type: u8,
}

pub type ldns_sink_fn = unsafe extern "C" fn(ctx: *mut c_void, data: *const c_char, len: usize);
pub type ldns_timer_fn = extern "C" fn();
pub type ldns_lease_fn = unsafe extern "C" fn(ctx: *mut c_void, lease: *const ldns_lease4_t);
pub type ldns_callout_fn = unsafe extern "C" fn(handle: *mut c_void) -> c_int;

unsafe extern "C" {
    pub fn ldns_arg_lease4(
        handle: *mut c_void,
        name: *const c_char,
        out: *mut ldns_lease4_t,
    ) -> c_int;
    pub fn ldns_arg_leases4_count(
        handle: *mut c_void,
        name: *const c_char,
        out: *mut usize,
    ) -> c_int;
    pub fn ldns_arg_leases4_at(
        handle: *mut c_void,
        name: *const c_char,
        idx: usize,
        out: *mut ldns_lease4_t,
    ) -> c_int;
    pub fn ldns_arg_bool(handle: *mut c_void, name: *const c_char, out: *mut c_int) -> c_int;
    pub fn ldns_set_lease4_hostname(
        handle: *mut c_void,
        name: *const c_char,
        hostname: *const c_char,
        fwd: c_int,
        rev: c_int,
    ) -> c_int;
    pub fn ldns_arg_pkt4_names(
        handle: *mut c_void,
        name: *const c_char,
        out: *mut ldns_client_names_t,
    ) -> c_int;
    pub fn ldns_arg_pkt4_header(
        handle: *mut c_void,
        name: *const c_char,
        msg_type: *mut u8,
        yiaddr: *mut u32,
    ) -> c_int;
    pub fn ldns_pkt4_set_fqdn(
        handle: *mut c_void,
        name: *const c_char,
        flags: u8,
        fqdn: *const c_char,
    ) -> c_int;
    pub fn ldns_library_params_json(
        library: *mut c_void,
        sink: ldns_sink_fn,
        ctx: *mut c_void,
    ) -> c_int;
    pub fn ldns_register_command(
        library: *mut c_void,
        name: *const c_char,
        f: ldns_callout_fn,
    ) -> c_int;
    pub fn ldns_command_respond(
        handle: *mut c_void,
        result: c_int,
        text: *const c_char,
        args_json: *const c_char,
    ) -> c_int;
    pub fn ldns_leases4_all(f: ldns_lease_fn, ctx: *mut c_void) -> c_int;
    pub fn ldns_stat_set(name: *const c_char, value: i64) -> c_int;
    pub fn ldns_log(severity: c_int, debuglevel: c_int, text: *const c_char) -> c_int;
    pub fn ldns_log_enabled(severity: c_int, debuglevel: c_int) -> c_int;
    pub fn ldns_timer_start(handle: *mut c_void, interval_ms: c_long, f: ldns_timer_fn) -> c_int;
    pub fn ldns_timer_stop() -> c_int;
}
