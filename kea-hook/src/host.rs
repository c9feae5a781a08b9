//! The adapter between Kea's callout arguments and owned Rust values.
//!
//! This file and `exports.rs` are the only places of the hook that touch raw
//! pointers. Everything returned here is copied out of Kea's objects during
//! the call; no host pointer is kept after it returns (STYLE boundary rule 5).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;

use kea_sys as sys;

use crate::change::Lease;

/// Options 81 and 12 as the client sent them.
#[derive(Clone, Debug)]
pub(crate) struct PacketNames {
    /// (flags, raw domain-name field); `None` if absent or longer than the shim's buffer.
    pub fqdn: Option<(u8, Vec<u8>)>,
    pub hostname: Option<Vec<u8>>,
    pub msg_type: u8,
    /// The client sent a name longer than the shim accepts (always invalid: > 255 octets).
    pub oversized: bool,
}

pub(crate) const DHCPDISCOVER: u8 = 1;
pub(crate) const DHCPINFORM: u8 = 8;

/// A borrowed `isc::hooks::CalloutHandle&`, valid for the duration of one callout.
pub(crate) struct Callout {
    handle: *mut c_void,
}

/// `text` as a C string; interior NULs (never in names we built) are dropped.
fn cstr(text: &str) -> CString {
    CString::new(text).unwrap_or_else(|_| CString::new(text.replace('\0', "")).unwrap_or_default())
}

fn lease_from_raw(raw: &sys::ldns_lease4_t) -> Lease {
    let hw_len = usize::from(raw.hwaddr_len).min(raw.hwaddr.len());
    let cid_len = usize::from(raw.client_id_len).min(raw.client_id.len());
    let hn_len = usize::from(raw.hostname_len).min(raw.hostname.len());
    let hostname_bytes: Vec<u8> = raw.hostname[..hn_len].iter().map(|&c| c as u8).collect();
    let hostname = if raw.hostname_truncated != 0 || hostname_bytes.is_empty() {
        None
    } else {
        String::from_utf8(hostname_bytes).ok()
    };
    Lease {
        addr: Ipv4Addr::from(raw.addr),
        valid_lft: raw.valid_lft,
        cltt: raw.cltt,
        subnet_id: raw.subnet_id,
        state: raw.state,
        htype: u8::try_from(raw.htype).unwrap_or(u8::MAX),
        hwaddr: raw.hwaddr[..hw_len].to_vec(),
        client_id: (cid_len > 0).then(|| raw.client_id[..cid_len].to_vec()),
        hostname,
        fqdn_fwd: raw.fqdn_fwd != 0,
        fqdn_rev: raw.fqdn_rev != 0,
    }
}

impl Callout {
    /// # Safety
    /// `handle` must be the `CalloutHandle&` Kea passed to the running callout
    /// (or null), and the returned value must not outlive that callout.
    pub(crate) unsafe fn from_raw(handle: *mut c_void) -> Option<Callout> {
        (!handle.is_null()).then_some(Callout { handle })
    }

    pub(crate) fn lease(&self, arg: &CStr) -> Option<Lease> {
        let name = arg;
        let mut raw = MaybeUninit::<sys::ldns_lease4_t>::zeroed();
        // SAFETY: the handle is live for this callout (Callout::from_raw); the
        // shim fills `raw` completely on LDNS_OK and catches every exception.
        let rc = unsafe { sys::ldns_arg_lease4(self.handle, name.as_ptr(), raw.as_mut_ptr()) };
        if rc != sys::LDNS_OK {
            return None;
        }
        // SAFETY: zero-initialised and then written by the shim; all fields are plain data.
        let raw = unsafe { raw.assume_init() };
        Some(lease_from_raw(&raw))
    }

    pub(crate) fn leases(&self, arg: &CStr) -> Vec<Lease> {
        let name = arg;
        let mut count = 0usize;
        // SAFETY: live handle; `count` is a valid out pointer.
        let rc = unsafe { sys::ldns_arg_leases4_count(self.handle, name.as_ptr(), &mut count) };
        if rc != sys::LDNS_OK {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(count);
        for idx in 0..count {
            let mut raw = MaybeUninit::<sys::ldns_lease4_t>::zeroed();
            // SAFETY: live handle; the shim bounds-checks `idx` and fills `raw` on LDNS_OK.
            let rc = unsafe {
                sys::ldns_arg_leases4_at(self.handle, name.as_ptr(), idx, raw.as_mut_ptr())
            };
            if rc == sys::LDNS_OK {
                // SAFETY: zero-initialised plain data written by the shim.
                out.push(lease_from_raw(&unsafe { raw.assume_init() }));
            }
        }
        out
    }

    pub(crate) fn bool_arg(&self, arg: &CStr) -> Option<bool> {
        let name = arg;
        let mut value: c_int = 0;
        // SAFETY: live handle, valid out pointer; a type mismatch is reported as LDNS_ERR.
        let rc = unsafe { sys::ldns_arg_bool(self.handle, name.as_ptr(), &mut value) };
        (rc == sys::LDNS_OK).then_some(value != 0)
    }

    pub(crate) fn packet_names(&self, arg: &CStr) -> Option<PacketNames> {
        let name = arg;
        let mut raw = MaybeUninit::<sys::ldns_client_names_t>::zeroed();
        // SAFETY: live handle; the shim fills `raw` on LDNS_OK.
        let rc = unsafe { sys::ldns_arg_pkt4_names(self.handle, name.as_ptr(), raw.as_mut_ptr()) };
        if rc != sys::LDNS_OK {
            return None;
        }
        // SAFETY: zero-initialised plain data written by the shim.
        let raw = unsafe { raw.assume_init() };
        let fqdn_len = usize::from(raw.fqdn_len).min(raw.fqdn.len());
        let hn_len = usize::from(raw.hostname_len).min(raw.hostname.len());
        Some(PacketNames {
            fqdn: (raw.has_fqdn != 0).then(|| (raw.fqdn_flags, raw.fqdn[..fqdn_len].to_vec())),
            hostname: (raw.has_hostname != 0).then(|| raw.hostname[..hn_len].to_vec()),
            msg_type: raw.msg_type,
            oversized: raw.fqdn_truncated != 0 || raw.hostname_truncated != 0,
        })
    }

    /// Message type and `yiaddr` of the packet argument `arg`, without
    /// its options.
    pub(crate) fn packet_header(&self, arg: &CStr) -> Option<(u8, Ipv4Addr)> {
        let mut msg_type: u8 = 0;
        let mut yiaddr: u32 = 0;
        // SAFETY: live handle, valid out pointers; the shim catches every exception.
        let rc = unsafe {
            sys::ldns_arg_pkt4_header(self.handle, arg.as_ptr(), &mut msg_type, &mut yiaddr)
        };
        (rc == sys::LDNS_OK).then(|| (msg_type, Ipv4Addr::from(yiaddr)))
    }

    /// Stores the final FQDN in the lease argument, so Kea's lease database records it.
    pub(crate) fn set_lease_hostname(&self, arg: &CStr, fqdn: &str, fwd: bool, rev: bool) -> bool {
        let name = arg;
        let value = cstr(fqdn);
        // SAFETY: live handle; both strings are NUL-terminated and outlive the call.
        let rc = unsafe {
            sys::ldns_set_lease4_hostname(
                self.handle,
                name.as_ptr(),
                value.as_ptr(),
                c_int::from(fwd),
                c_int::from(rev),
            )
        };
        rc == sys::LDNS_OK
    }

    /// Replaces option 81 of the packet argument `arg` (the response).
    pub(crate) fn set_packet_fqdn(&self, arg: &CStr, flags: u8, fqdn: &str) -> bool {
        let name = arg;
        let value = cstr(fqdn);
        // SAFETY: live handle; both strings are NUL-terminated and outlive the call.
        let rc =
            unsafe { sys::ldns_pkt4_set_fqdn(self.handle, name.as_ptr(), flags, value.as_ptr()) };
        rc == sys::LDNS_OK
    }

    /// Starts the repeating main-thread timer from `dhcp4_srv_configured`'s io_context.
    pub(crate) fn start_timer(&self, interval_ms: i64, f: sys::ldns_timer_fn) -> bool {
        // SAFETY: live handle; `f` is a plain extern "C" function of this library,
        // and the timer is stopped in `unload` before the library can go away.
        let rc = unsafe { sys::ldns_timer_start(self.handle, interval_ms as std::ffi::c_long, f) };
        rc == sys::LDNS_OK
    }
}

pub(crate) fn stop_timer() {
    // SAFETY: no arguments; called on Kea's main thread (unload).
    unsafe {
        sys::ldns_timer_stop();
    }
}

unsafe extern "C" fn collect_string(ctx: *mut c_void, data: *const c_char, len: usize) {
    if ctx.is_null() || data.is_null() {
        return;
    }
    // SAFETY: `ctx` is the `&mut Vec<u8>` passed by `library_params_json`, and
    // the shim passes `len` readable bytes at `data` for the duration of the call.
    unsafe {
        let out = &mut *(ctx as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len));
    }
}

/// The library's `parameters` map as JSON text; `None` when absent.
///
/// # Safety
/// `library` must be the `LibraryHandle&` Kea passed to `load`.
pub(crate) unsafe fn library_params_json(library: *mut c_void) -> Option<String> {
    if library.is_null() {
        return None;
    }
    let mut buf: Vec<u8> = Vec::new();
    // SAFETY: `library` is live for the duration of load(); `collect_string`
    // only writes to `buf`, which outlives the call.
    let rc = unsafe {
        sys::ldns_library_params_json(library, collect_string, (&mut buf as *mut Vec<u8>).cast())
    };
    if rc != sys::LDNS_OK {
        return None;
    }
    String::from_utf8(buf).ok()
}

pub(crate) fn stat_set(name: &str, value: i64) {
    let name = cstr(name);
    // SAFETY: NUL-terminated name; StatsMgr is thread safe, and this is called
    // from Kea's threads only (timer, callouts, load/unload).
    unsafe {
        sys::ldns_stat_set(name.as_ptr(), value);
    }
}

/// Severity as the shim expects it: 0 debug, 1 info, 2 warn, 3 error.
pub(crate) fn log(severity: i32, debuglevel: i32, text: &str) {
    let text = cstr(text);
    // SAFETY: NUL-terminated text passed as a message argument (never as a
    // format string); Kea's logging is thread safe and this runs on Kea's threads.
    unsafe {
        sys::ldns_log(severity, debuglevel, text.as_ptr());
    }
}

pub(crate) fn log_enabled(severity: i32, debuglevel: i32) -> bool {
    // SAFETY: plain integers; reads the logger's configured level.
    unsafe { sys::ldns_log_enabled(severity, debuglevel) != 0 }
}

/// A control-socket command handler Kea calls with the command's `CalloutHandle&`.
pub(crate) type CommandHandler = kea_sys::ldns_callout_fn;

/// Registers `handler` for control-socket command `name`.
///
/// # Safety
/// `library` must be the `LibraryHandle&` Kea passed to `load`; `handler`
/// must be a function of this library that runs under the panic guard.
pub(crate) unsafe fn register_command(
    library: *mut c_void,
    name: &str,
    handler: CommandHandler,
) -> bool {
    if library.is_null() {
        return false;
    }
    let name = cstr(name);
    // SAFETY: live library handle during load(); the name is copied by Kea.
    unsafe { sys::ldns_register_command(library, name.as_ptr(), handler) == sys::LDNS_OK }
}

impl Callout {
    /// Sets the command's answer: `result` 0 success, 1 error; `args` JSON text.
    pub(crate) fn respond(&self, result: i32, text: &str, args: Option<&str>) -> bool {
        let text = cstr(text);
        let args = args.map(cstr);
        let args_ptr = args.as_ref().map_or(std::ptr::null(), |a| a.as_ptr());
        // SAFETY: live handle; NUL-terminated strings that outlive the call.
        unsafe {
            sys::ldns_command_respond(self.handle, result, text.as_ptr(), args_ptr) == sys::LDNS_OK
        }
    }
}

unsafe extern "C" fn collect_lease(ctx: *mut c_void, lease: *const sys::ldns_lease4_t) {
    if ctx.is_null() || lease.is_null() {
        return;
    }
    // SAFETY: `ctx` is the `&mut Vec<Lease>` of `all_leases`; `lease`
    // points to a filled struct valid for this call.
    unsafe {
        let out = &mut *(ctx as *mut Vec<Lease>);
        out.push(lease_from_raw(&*lease));
    }
}

/// Every IPv4 lease in Kea's lease database. Main thread only (command
/// handlers, dhcp4_srv_configured, the timer).
pub(crate) fn all_leases() -> Option<Vec<Lease>> {
    let mut out: Vec<Lease> = Vec::new();
    // SAFETY: called on Kea's main thread; `collect_lease` only pushes to `out`.
    let rc = unsafe { sys::ldns_leases4_all(collect_lease, (&mut out as *mut Vec<Lease>).cast()) };
    (rc == sys::LDNS_OK).then_some(out)
}
