//! Test-only definitions of the knotd functions the module calls (cfg(test)
//! in lib.rs; never part of `libquerystats.so`). Unit tests run without
//! knotd, whose symbols the callbacks reference: these make the test binary
//! link whatever the optimiser keeps. They behave like a knotd with no
//! module state: the callback tests pass NULL, which the callbacks reject
//! before calling any of them. `knotd_mod_log` records what it is given, so
//! the panic guard's tests can check the log line.

use knot_sys as sys;
use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr::{null, null_mut};

/// One `knotd_mod_log` call.
#[derive(Clone, Debug)]
pub(crate) struct Logged {
    pub(crate) priority: c_int,
    pub(crate) format: String,
    pub(crate) message: String,
}

static LOGGED: parking_lot::Mutex<Vec<(usize, Logged)>> = parking_lot::Mutex::new(Vec::new());

/// The lines logged for the module handle at `module_addr`.
pub(crate) fn logged(module_addr: usize) -> Vec<Logged> {
    LOGGED
        .lock()
        .iter()
        .filter(|(addr, _)| *addr == module_addr)
        .map(|(_, line)| line.clone())
        .collect()
}

fn no_conf() -> sys::knotd_conf_t {
    sys::knotd_conf_t {
        single: sys::knotd_conf_val_t { integer: 0 },
        multi: null_mut(),
        count: 0,
    }
}

fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: the adapter passes NUL-terminated strings only (the "%s"
    // literal and a CString).
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Declared variadic by knotd (`fmt, ...`); the adapter always calls it as
/// `(mod, priority, "%s", message)`. Rust cannot define a variadic
/// function, and it needs none here: on x86_64 System V (and AArch64 Linux)
/// a variadic call passes its integer and pointer arguments in the same
/// registers as a plain call, so the one `%s` argument arrives as
/// `message`.
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_log(
    module: *mut sys::knotd_mod_t,
    priority: c_int,
    format: *const c_char,
    message: *const c_char,
) {
    let line = Logged {
        priority,
        format: text(format),
        message: text(message),
    };
    LOGGED.lock().push((module as usize, line));
}

#[unsafe(no_mangle)]
extern "C" fn knotd_mod_ctx(_: *mut sys::knotd_mod_t) -> *mut c_void {
    null_mut()
}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_ctx_set(_: *mut sys::knotd_mod_t, _: *mut c_void) {}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_zone(_: *mut sys::knotd_mod_t) -> *const u8 {
    null()
}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_threads(_: *mut sys::knotd_mod_t) -> c_uint {
    0
}
#[unsafe(no_mangle)]
extern "C" fn knotd_qdata_zone_name(_: *mut sys::knotd_qdata_t) -> *const u8 {
    null()
}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_stats_add(
    _: *mut sys::knotd_mod_t,
    _: *const c_char,
    _: u32,
    _: sys::knotd_mod_idx_to_str_f,
) -> c_int {
    sys::knot_error_KNOT_EINVAL
}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_stats_incr(_: *mut sys::knotd_mod_t, _: c_uint, _: u32, _: u32, _: u64) {}
#[unsafe(no_mangle)]
extern "C" fn knotd_mod_hook(
    _: *mut sys::knotd_mod_t,
    _: sys::knotd_stage_t,
    _: sys::knotd_mod_hook_f,
) -> c_int {
    sys::knot_error_KNOT_EINVAL
}
#[unsafe(no_mangle)]
extern "C" fn knotd_conf_mod(_: *mut sys::knotd_mod_t, _: *const u8) -> sys::knotd_conf_t {
    no_conf()
}
#[unsafe(no_mangle)]
extern "C" fn knotd_conf_check_item(
    _: *mut sys::knotd_conf_check_args_t,
    _: *const u8,
) -> sys::knotd_conf_t {
    no_conf()
}
#[unsafe(no_mangle)]
extern "C" fn knotd_conf_free(_: *mut sys::knotd_conf_t) {}
