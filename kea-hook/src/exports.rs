//! Every symbol kea-dhcp4 and kea-dhcp6 look up in `libdhcp_leasedns.so`
//! (each daemon registers the callouts of its own hook points only).
//!
//! Each export runs its body under `guard!`: marks the thread as Kea's (see
//! `logging`), catches any panic and turns it into Kea's error value, so no
//! unwind ever crosses into C++. Callouts whose names equal hook point names
//! are registered by Kea itself (dlsym), so no registration code is needed.

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::time::Instant;

use crate::host::{self, Callout, Library};
use crate::{callouts, lifecycle, logging};

/// Kea's "error" return for load/unload/callouts.
const FAILED: c_int = 1;

macro_rules! guard {
    ($what:literal, $body:block) => {{
        let _host = logging::HostThreadGuard::enter();
        match catch_unwind(AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                host::log(
                    3,
                    0,
                    &format!("leasedns: internal error (panic) in {}: {msg}", $what),
                );
                FAILED
            }
        }
    }};
}

/// Runs `f` with the engine and the callout handle, if both are there.
fn with_engine(handle: *mut c_void, f: impl FnOnce(&lifecycle::EngineRef, &mut Callout)) -> c_int {
    // SAFETY: Kea passes its `CalloutHandle&` (a pointer at the ABI level),
    // live for the duration of this callout; `Callout` does not escape `f`.
    let Some(mut co) = (unsafe { Callout::from_raw(handle) }) else {
        return FAILED;
    };
    let Some(engine) = lifecycle::engine() else {
        return 0;
    };
    // Two vDSO clock reads: the callout-p50/p99/max-ns statistics.
    let started = Instant::now();
    f(&engine, &mut co);
    let elapsed = started.elapsed().as_nanos();
    engine
        .stats()
        .callouts
        .record(u64::try_from(elapsed).unwrap_or(u64::MAX));
    0
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn version() -> c_int {
    kea_sys::KEA_HOOKS_VERSION
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn multi_threading_compatible() -> c_int {
    // Callouts share no unsynchronised state: the engine's queue is a
    // crossbeam channel and the published-name map is sharded behind mutexes.
    1
}

/// `int load(LibraryHandle&)`: 0 accepts the library, anything else refuses it.
///
/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn load(library: *mut c_void) -> c_int {
    guard!("load", {
        // SAFETY: Kea passes its `LibraryHandle&`, live during load(); `lib`
        // does not outlive this call.
        let mut lib = unsafe { Library::from_raw(library) };
        let params = lib.as_mut().and_then(Library::params_json);
        match lifecycle::load(params.as_deref()) {
            Ok(()) => {
                // The handlers run their bodies under `guard!`.
                let registered = lib.as_mut().is_some_and(|lib| {
                    lib.register_command("leasedns-status", status_command)
                        && lib.register_command("leasedns-reconcile", reconcile_command)
                });
                if !registered {
                    host::log(
                        2,
                        0,
                        "leasedns: cannot register the control commands leasedns-status and leasedns-reconcile",
                    );
                }
                0
            }
            Err(err) => {
                host::log(3, 0, &format!("leasedns: configuration refused: {err}"));
                FAILED
            }
        }
    })
}

#[unsafe(no_mangle)]
pub(crate) extern "C" fn unload() -> c_int {
    guard!("unload", {
        lifecycle::unload();
        0
    })
}

fn on_timer() {
    let _ = guard!("timer", {
        lifecycle::tick();
        0
    });
}

/// dhcp4_srv_configured and dhcp6_srv_configured.
fn srv_configured(handle: *mut c_void) -> c_int {
    // SAFETY: Kea's live `CalloutHandle&` for this callout.
    let Some(mut co) = (unsafe { Callout::from_raw(handle) }) else {
        return FAILED;
    };
    if !co.start_timer(lifecycle::TICK_MS, on_timer) {
        host::log(
            2,
            0,
            "leasedns: cannot start the statistics timer; statistics update on traffic only",
        );
    }
    match lifecycle::server_configured(|family| co.server_ddns(family)) {
        Ok(()) => 0,
        Err(reason) => {
            let error = format!("leasedns: cannot use Kea's DDNS settings: {reason}");
            host::log(3, 0, &error);
            co.refuse_configuration(&error);
            FAILED
        }
    }
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dhcp4_srv_configured(handle: *mut c_void) -> c_int {
    guard!("dhcp4_srv_configured", { srv_configured(handle) })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn dhcp6_srv_configured(handle: *mut c_void) -> c_int {
    guard!("dhcp6_srv_configured", { srv_configured(handle) })
}

/// `leasedns-status`: pending changes, per-server state, journal, last error.
///
/// Called through the bridge's typed trampoline with the command's handle.
fn status_command(handle: Pin<&mut kea_sys::CalloutHandle>) -> i32 {
    guard!("leasedns-status", {
        let mut co = Callout::from_bridge(handle);
        match lifecycle::engine() {
            Some(engine) => {
                let mut status = engine.status();
                if let (Some(ha), Some(map)) = (lifecycle::ha_status(), status.as_object_mut()) {
                    map.insert("high-availability".into(), ha);
                }
                co.respond(0, "leasedns status", Some(&status.to_string()))
            }
            None => co.respond(1, "leasedns is not loaded", None),
        };
        0
    })
}

/// `leasedns-reconcile`: compare the lease database with the zones and repair.
///
/// Called through the bridge's typed trampoline with the command's handle.
fn reconcile_command(handle: Pin<&mut kea_sys::CalloutHandle>) -> i32 {
    guard!("leasedns-reconcile", {
        let mut co = Callout::from_bridge(handle);
        match lifecycle::engine().map(|e| lifecycle::reconcile(&e)) {
            Some(Ok(n)) => co.respond(
                0,
                &format!("reconciliation started against {n} leases"),
                Some(&format!("{{\"leases\": {n}}}")),
            ),
            Some(Err(why)) => co.respond(1, &why.to_string(), None),
            None => co.respond(1, "leasedns is not loaded", None),
        };
        0
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn ddns4_update(handle: *mut c_void) -> c_int {
    guard!("ddns4_update", {
        with_engine(handle, |engine, co| callouts::ddns4_update(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease4_select(handle: *mut c_void) -> c_int {
    guard!("lease4_select", {
        // Also for DHCPDISCOVER's fake allocation: the offer's option 81
        // says what the server will do.
        with_engine(handle, |engine, co| callouts::decide(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease4_renew(handle: *mut c_void) -> c_int {
    guard!("lease4_renew", {
        with_engine(handle, |engine, co| callouts::decide(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn pkt4_send(handle: *mut c_void) -> c_int {
    guard!("pkt4_send", {
        with_engine(handle, |engine, co| callouts::answer_fqdn(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn leases4_committed(handle: *mut c_void) -> c_int {
    guard!("leases4_committed", {
        with_engine(handle, |engine, co| callouts::committed(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease4_decline(handle: *mut c_void) -> c_int {
    guard!("lease4_decline", {
        with_engine(handle, |engine, co| callouts::lease_gone(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease4_expire(handle: *mut c_void) -> c_int {
    guard!("lease4_expire", {
        with_engine(handle, |engine, co| callouts::lease_expired(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease4_recover(handle: *mut c_void) -> c_int {
    guard!("lease4_recover", {
        with_engine(handle, |engine, co| callouts::lease_gone(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn subnet6_select(handle: *mut c_void) -> c_int {
    guard!("subnet6_select", {
        with_engine(handle, |engine, co| callouts::subnet6_select(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn ddns6_update(handle: *mut c_void) -> c_int {
    guard!("ddns6_update", {
        with_engine(handle, |engine, co| callouts::ddns6_update(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_select(handle: *mut c_void) -> c_int {
    guard!("lease6_select", {
        with_engine(handle, |engine, co| callouts::decide6(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_renew(handle: *mut c_void) -> c_int {
    guard!("lease6_renew", {
        with_engine(handle, |engine, co| callouts::decide6(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_rebind(handle: *mut c_void) -> c_int {
    guard!("lease6_rebind", {
        with_engine(handle, |engine, co| callouts::decide6(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn leases6_committed(handle: *mut c_void) -> c_int {
    guard!("leases6_committed", {
        with_engine(handle, |engine, co| callouts::committed6(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_decline(handle: *mut c_void) -> c_int {
    guard!("lease6_decline", {
        with_engine(handle, |engine, co| callouts::lease6_gone(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_expire(handle: *mut c_void) -> c_int {
    guard!("lease6_expire", {
        with_engine(handle, |engine, co| callouts::lease6_expired(engine, co))
    })
}

/// # Safety
/// Called by Kea with its live `CalloutHandle&` (or `LibraryHandle&` for
/// `load`) as a pointer; see SAFETY.md.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn lease6_recover(handle: *mut c_void) -> c_int {
    guard!("lease6_recover", {
        with_engine(handle, |engine, co| callouts::lease6_gone(engine, co))
    })
}
