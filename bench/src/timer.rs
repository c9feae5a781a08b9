//! The exported symbols Kea looks up, forwarding to the real hook.
//!
//! Host guarantees relied on (Kea 2.2, `LibraryManager`): `version` is
//! called first, right after dlopen; `multi_threading_compatible`, then
//! `load`, then callouts, then `unload`, all with Kea's live handle
//! pointers that are passed through unchanged. Callouts may run
//! concurrently on packet threads (multi-threading on), hence the atomics.

use crate::histogram::{AtomicHistogram, dump};
use crate::{CALLOUTS, CPU_SUFFIX, TIMED_LIB_ENV, TIMING_DIR_ENV, dump_path};
use std::ffi::{CString, c_int, c_void};
use std::sync::OnceLock;
use std::time::Instant;

type VersionFn = unsafe extern "C" fn() -> c_int;
type HandleFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// The real hook's entry points, resolved once.
struct Inner {
    version: VersionFn,
    multi_threading_compatible: Option<VersionFn>,
    load: HandleFn,
    unload: Option<VersionFn>,
    callouts: [Option<HandleFn>; CALLOUTS.len()],
}

static INNER: OnceLock<Option<Inner>> = OnceLock::new();
/// Wall-clock time per callout.
static HISTOGRAMS: [AtomicHistogram; CALLOUTS.len()] =
    [const { AtomicHistogram::new() }; CALLOUTS.len()];
/// On-CPU time of the calling thread per callout: the callout's own work,
/// without the time it was preempted or blocked.
static CPU_HISTOGRAMS: [AtomicHistogram; CALLOUTS.len()] =
    [const { AtomicHistogram::new() }; CALLOUTS.len()];

/// The calling thread's CPU time in nanoseconds (a system call, ~0.2 us).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a timespec on our stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

fn inner() -> Option<&'static Inner> {
    INNER.get_or_init(open_inner).as_ref()
}

fn open_inner() -> Option<Inner> {
    let Some(path) = std::env::var_os(TIMED_LIB_ENV) else {
        eprintln!("callout timer: {TIMED_LIB_ENV} is not set");
        return None;
    };
    let path = CString::new(path.into_encoded_bytes()).ok()?;
    // SAFETY: a NUL-terminated path; the library (the leasedns hook) has no
    // constructors beyond what Rust and the C++ runtime run safely, and it
    // is never closed, so resolved pointers stay valid for the process.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        eprintln!("callout timer: cannot dlopen {}", path.to_string_lossy());
        return None;
    }
    let symbol = |name: &str| -> *mut c_void {
        let Ok(name) = CString::new(name) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a live handle from dlopen and a NUL-terminated name.
        unsafe { libc::dlsym(handle, name.as_ptr()) }
    };
    let handle_fn = |name: &str| -> Option<HandleFn> {
        let ptr = symbol(name);
        // SAFETY: the hook exports these names with exactly this C
        // signature (`int f(CalloutHandle&)` / `int load(LibraryHandle&)`).
        (!ptr.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, HandleFn>(ptr) })
    };
    let version_fn = |name: &str| -> Option<VersionFn> {
        let ptr = symbol(name);
        // SAFETY: `int version()`, `int multi_threading_compatible()`,
        // `int unload()` take no arguments and return int.
        (!ptr.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, VersionFn>(ptr) })
    };
    Some(Inner {
        version: version_fn("version")?,
        multi_threading_compatible: version_fn("multi_threading_compatible"),
        load: handle_fn("load")?,
        unload: version_fn("unload"),
        callouts: CALLOUTS.map(handle_fn),
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn version() -> c_int {
    match inner() {
        // SAFETY: the real hook's `version`, no arguments.
        Some(inner) => unsafe { (inner.version)() },
        // No Kea accepts version 0: the load fails with Kea's own message.
        None => 0,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn multi_threading_compatible() -> c_int {
    match inner().and_then(|i| i.multi_threading_compatible) {
        // SAFETY: the real hook's function, no arguments.
        Some(f) => unsafe { f() },
        None => 0,
    }
}

/// # Safety
/// Kea's live `LibraryHandle&`, passed through unchanged.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn load(handle: *mut c_void) -> c_int {
    match inner() {
        // SAFETY: the real hook's `load` with Kea's handle (see above).
        Some(inner) => unsafe { (inner.load)(handle) },
        None => 1,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn unload() -> c_int {
    let status = match inner().and_then(|i| i.unload) {
        // SAFETY: the real hook's `unload`, no arguments.
        Some(f) => unsafe { f() },
        None => 0,
    };
    write_dump();
    status
}

fn write_dump() {
    let Some(dir) = std::env::var_os(TIMING_DIR_ENV) else {
        return;
    };
    let cpu_names: Vec<String> = CALLOUTS
        .iter()
        .map(|n| format!("{n}{CPU_SUFFIX}"))
        .collect();
    let snapshots: Vec<(&str, _)> = CALLOUTS
        .iter()
        .zip(&HISTOGRAMS)
        .map(|(name, h)| (*name, h.snapshot()))
        .chain(
            cpu_names
                .iter()
                .zip(&CPU_HISTOGRAMS)
                .map(|(name, h)| (name.as_str(), h.snapshot())),
        )
        .collect();
    let path = dump_path(std::path::Path::new(&dir), std::process::id());
    if let Err(e) = std::fs::write(&path, dump(&snapshots)) {
        eprintln!("callout timer: writing {}: {e}", path.display());
    }
}

/// Calls callout `index` of the real hook and records how long it took.
fn timed(index: usize, handle: *mut c_void) -> c_int {
    let Some(f) = inner().and_then(|i| i.callouts[index]) else {
        return 0;
    };
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    // SAFETY: the real hook's callout with Kea's live `CalloutHandle&`.
    let status = unsafe { f(handle) };
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu_start);
    HISTOGRAMS[index].record(ns);
    CPU_HISTOGRAMS[index].record(cpu_ns);
    status
}

macro_rules! forward {
    ($($index:literal => $name:ident),* $(,)?) => {$(
        /// # Safety
        /// Kea's live `CalloutHandle&`, passed through unchanged.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(handle: *mut c_void) -> c_int {
            timed($index, handle)
        }
    )*};
}

forward! {
    0 => dhcp4_srv_configured,
    1 => ddns4_update,
    2 => lease4_select,
    3 => lease4_renew,
    4 => pkt4_send,
    5 => leases4_committed,
    6 => lease4_decline,
    7 => lease4_expire,
    8 => lease4_recover,
}
