//! The one symbol knotd looks up (`knotd_mod_api`) and the callbacks it
//! points to. The body of every `extern "C" fn` here is one call to
//! [`guard`]: a panic is counted and logged, and becomes knotd's error
//! value (or leaves the query state untouched), never an unwind into C.
//! Nothing runs at library load: `knotc conf-check` opens the library
//! too, so threads and sockets start in `load`.

use crate::config::Settings;
use crate::ffi::host::{self, Module, names};
use crate::ffi::log_bridge;
use crate::ffi::panic_guard::guard;
use crate::http::endpoint;
use crate::stats::clock::Clock;
use crate::stats::dims;
use crate::stats::instance::{Counted, Instance};
use knot_sys as sys;
use std::ffi::{CStr, c_char, c_int, c_uint};
use std::ptr::{NonNull, null, null_mut};
use std::sync::Arc;

/// knotd's error codes (libknot/errcode.h).
const KNOT_EOK: c_int = sys::knot_error_KNOT_EOK;
const KNOT_EINVAL: c_int = sys::knot_error_KNOT_EINVAL;
const KNOT_ERROR: c_int = sys::knot_error_KNOT_ERROR;

/// knotd's API struct holds raw pointers, so it is not `Sync` by itself.
#[repr(transparent)]
struct ModuleApi(sys::knotd_mod_api_t);

// SAFETY: the struct is immutable and points only to 'static data (the
// name literal, the schema static) and to functions.
unsafe impl Sync for ModuleApi {}

#[repr(transparent)]
struct Schema([sys::yp_item_t; 8]);

// SAFETY: immutable; knotd copies the schema into its own and never writes
// through these pointers, which all point to 'static literals.
unsafe impl Sync for Schema {}

const fn item(
    name: &'static [u8],
    kind: sys::yp_type_t,
    var: sys::yp_var_t,
    flags: sys::yp_flag_t,
) -> sys::yp_item_t {
    sys::yp_item_t {
        name: name.as_ptr().cast(),
        type_: kind,
        var,
        flags,
        misc: [null(); 4],
        parent: null_mut(),
        sub_items: null_mut(),
    }
}

/// An integer item whose range knotd does not restrict: `config_check`
/// reports out-of-range values with the item name and the allowed range.
const fn int(default: i64) -> sys::yp_var_t {
    int_var(i64::MIN, i64::MAX, default)
}

/// The integer variant of `yp_var_t`. Built from zero so that it fits every
/// supported ABI: Knot 3.4 added `dflt_alt` (an alternative default, used
/// only by items flagged for it), which stays 0.
const fn int_var(min: i64, max: i64, dflt: i64) -> sys::yp_var_t {
    // SAFETY: the struct holds only integers, for which all-zero bytes
    // are a valid value.
    let mut i: sys::yp_var_t__bindgen_ty_1 = unsafe { std::mem::zeroed() };
    i.min = min;
    i.max = max;
    i.dflt = dflt;
    i.unit = 0;
    sys::yp_var_t { i }
}

const NONE_STR: sys::yp_var_t = sys::yp_var_t {
    s: sys::yp_var_t__bindgen_ty_4 { dflt: null() },
};

static SCHEMA: Schema = Schema([
    item(names::METRICS_LISTEN, sys::yp_type_t_YP_TSTR, NONE_STR, 0),
    item(
        names::TOP_N,
        sys::yp_type_t_YP_TINT,
        int(crate::config::DEFAULT_TOP_N),
        0,
    ),
    item(
        names::TOP_SAMPLE,
        sys::yp_type_t_YP_TINT,
        int(crate::config::DEFAULT_TOP_SAMPLE),
        0,
    ),
    item(
        names::TOP_HALF_LIFE,
        sys::yp_type_t_YP_TINT,
        int(crate::config::DEFAULT_TOP_HALF_LIFE),
        0,
    ),
    item(
        names::LATENCY_BUCKETS,
        sys::yp_type_t_YP_TINT,
        int(0),
        sys::yp_flag_t_YP_FMULTI,
    ),
    item(
        names::MAX_ZONES,
        sys::yp_type_t_YP_TINT,
        int(crate::config::DEFAULT_MAX_ZONES),
        0,
    ),
    item(
        names::KNOTC_STATS,
        sys::yp_type_t_YP_TBOOL,
        sys::yp_var_t {
            b: sys::yp_var_t__bindgen_ty_2 { dflt: true },
        },
        0,
    ),
    // Terminator: knotd stops at the first NULL name.
    sys::yp_item_t {
        name: null(),
        type_: 0,
        var: int_var(0, 0, 0),
        flags: 0,
        misc: [null(); 4],
        parent: null_mut(),
        sub_items: null_mut(),
    },
]);

/// The module's only exported symbol: `#[unsafe(no_mangle)]` exports it from
/// the cdylib whatever its Rust visibility (nothing in Rust names it; the
/// end-to-end tests check the `nm -D` list).
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
static knotd_mod_api: ModuleApi = ModuleApi(sys::knotd_mod_api_t {
    version: sys::KNOTD_MOD_ABI_VERSION,
    name: c"mod-querystats".as_ptr(),
    flags: sys::knotd_mod_flag_t_KNOTD_MOD_FLAG_OPT_CONF
        | sys::knotd_mod_flag_t_KNOTD_MOD_FLAG_SCOPE_ANY,
    load: Some(load),
    unload: Some(unload),
    config: SCHEMA.0.as_ptr(),
    config_check: Some(config_check),
});

/// knotc counter ids, in registration order.
const CTR_TYPE: u32 = 0;
const CTR_RCODE: u32 = 1;
const CTR_PROTO: u32 = 2;
const CTR_OP: u32 = 3;
const CTR_FLAG: u32 = 4;

/// What `knotd_mod_ctx` points to.
struct Context {
    instance: Arc<Instance>,
    zone: Option<Vec<u8>>,
    knotc_stats: bool,
    listen: Option<std::net::SocketAddr>,
}

/// config_check gets no module handle (knotc conf-check runs it too): a
/// panic is counted, not logged, and the section is reported as failed.
unsafe extern "C" fn config_check(args: *mut sys::knotd_conf_check_args_t) -> c_int {
    guard("config_check", None, KNOT_ERROR, |_| {
        let Some(args) = NonNull::new(args) else {
            return KNOT_EINVAL;
        };
        // SAFETY: args is knotd's live check context for this call.
        let raw = unsafe { host::check_settings(args) };
        match raw.check() {
            Ok(_) => KNOT_EOK,
            Err(e) => {
                // SAFETY: as above; the message is kept alive by host.
                unsafe { host::set_check_error(args, &e.to_string()) };
                KNOT_EINVAL
            }
        }
    })
}

unsafe extern "C" fn load(module: *mut sys::knotd_mod_t) -> c_int {
    guard("load", Module::new(module), KNOT_ERROR, |module| {
        let Some(module) = module else {
            return KNOT_EINVAL;
        };
        log_bridge::with_log(module, || match load_instance(module) {
            Ok(()) => KNOT_EOK,
            Err(message) => {
                tracing::error!("{message}");
                KNOT_EINVAL
            }
        })
    })
}

fn load_instance(module: Module) -> Result<(), String> {
    let settings: Settings = module.settings().check().map_err(|e| e.to_string())?;
    let zone = module.zone();
    // Heavy hitters are only visible on /metrics; without it they would
    // cost the query path for nothing.
    let settings = if settings.metrics_listen.is_none() {
        Settings {
            top_n: 0,
            ..settings
        }
    } else {
        settings
    };
    let clock = Clock::detect();
    let instance = Arc::new(
        Instance::new(settings.clone(), module.threads(), zone.as_deref(), clock)
            .map_err(|e| e.to_string())?,
    );
    if settings.knotc_stats {
        register_knotc_counters(module)?;
    }
    if let Some(addr) = settings.metrics_listen {
        endpoint::attach(addr, Arc::clone(&instance)).map_err(|e| e.to_string())?;
    }
    let context = Box::new(Context {
        instance,
        zone,
        knotc_stats: settings.knotc_stats,
        listen: settings.metrics_listen,
    });
    module.set_ctx(Box::into_raw(context).cast());
    let begin = module.hook(sys::knotd_stage_t_KNOTD_STAGE_BEGIN, Some(begin_hook));
    let end = module.hook(sys::knotd_stage_t_KNOTD_STAGE_END, Some(end_hook));
    if begin != KNOT_EOK || end != KNOT_EOK {
        // knotd calls unload after a failed load only if load succeeded, so
        // release what was set up here.
        release(module);
        return Err(format!("cannot register query hooks ({begin}, {end})"));
    }
    tracing::info!(
        "loaded, {} worker threads, latency clock {}, metrics {}",
        module.threads(),
        if clock.is_tsc() {
            format!("TSC at {} Hz", clock.ticks_per_sec())
        } else {
            "CLOCK_MONOTONIC".to_owned()
        },
        settings
            .metrics_listen
            .map_or_else(|| "off".to_owned(), |a| format!("on http://{a}/metrics"))
    );
    Ok(())
}

fn register_knotc_counters(module: Module) -> Result<(), String> {
    let counters: [(&'static CStr, usize, sys::knotd_mod_idx_to_str_f); 5] = [
        (c"query-type", dims::TYPE_COUNT, Some(type_to_str)),
        (c"response-code", dims::RCODE_COUNT, Some(rcode_to_str)),
        (c"protocol", dims::PROTO_COUNT, Some(proto_to_str)),
        (c"operation", dims::OP_COUNT, Some(op_to_str)),
        (c"flag", dims::FLAGS.len(), Some(flag_to_str)),
    ];
    for (name, count, to_str) in counters {
        let ret = module.stats_add(name, count, to_str);
        if ret != KNOT_EOK {
            return Err(format!(
                "cannot register knotc counter {} ({ret})",
                name.to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// Takes the context back from knotd and detaches from the endpoint.
fn release(module: Module) {
    let ctx = module.ctx();
    if ctx.is_null() {
        return;
    }
    module.set_ctx(null_mut());
    // SAFETY: ctx came from Box::into_raw in load_instance and is taken
    // back exactly once (the pointer is cleared above).
    let context = unsafe { Box::from_raw(ctx.cast::<Context>()) };
    if let Some(addr) = context.listen
        && !endpoint::detach(addr, &context.instance)
    {
        tracing::warn!("the /metrics thread on {addr} did not stop in time; left running");
    }
}

unsafe extern "C" fn unload(module: *mut sys::knotd_mod_t) {
    guard("unload", Module::new(module), (), |module| {
        let Some(module) = module else {
            return;
        };
        log_bridge::with_log(module, || release(module));
    })
}

/// The instance of a hook's module, borrowed for the hook's duration.
///
/// # Safety
/// `module` is the live module of the current hook; the borrow must not
/// outlive the hook.
unsafe fn context<'a>(module: Module) -> Option<&'a Context> {
    // SAFETY: ctx is NULL or our Context, alive until unload, which knotd
    // runs only after no hook of this module can run any more.
    unsafe { module.ctx().cast::<Context>().as_ref() }
}

unsafe extern "C" fn begin_hook(
    state: sys::knotd_state_t,
    _pkt: *mut sys::knot_pkt_t,
    qdata: *mut sys::knotd_qdata_t,
    module: *mut sys::knotd_mod_t,
) -> sys::knotd_state_t {
    guard("begin_hook", Module::new(module), state, |module| {
        let Some(module) = module else {
            return state;
        };
        // SAFETY: the hook's live module.
        let Some(context) = (unsafe { context(module) }) else {
            return state;
        };
        // SAFETY: qdata is this hook's live query data (or NULL).
        if let Some(thread) = unsafe { host::thread_id(qdata) } {
            context.instance.on_begin(thread);
        }
        state
    })
}

unsafe extern "C" fn end_hook(
    state: sys::knotd_state_t,
    pkt: *mut sys::knot_pkt_t,
    qdata: *mut sys::knotd_qdata_t,
    module: *mut sys::knotd_mod_t,
) -> sys::knotd_state_t {
    guard("end_hook", Module::new(module), state, |module| {
        let Some(module) = module else {
            return state;
        };
        // SAFETY: the hook's live module.
        let Some(context) = (unsafe { context(module) }) else {
            return state;
        };
        let now = context.instance.now();
        // SAFETY: live END hook arguments; the event is dropped before we
        // return.
        let Some(event) = (unsafe { host::end_event(state, pkt, qdata, context.zone.is_some()) })
        else {
            return state;
        };
        let thread = event.thread;
        let counted = context.instance.on_end(&event, now);
        let Some(counted) = counted else {
            return state;
        };
        if counted.sample {
            // SAFETY: live qdata of this hook; the name is dropped before
            // we return.
            let (qname, client) = unsafe { host::sample_inputs(qdata) };
            context.instance.observe_heavy(thread, qname, client);
        }
        if counted.op == dims::OP_UPDATE {
            // SAFETY: live qdata of this hook.
            let (zone, key) = unsafe { host::update_names(qdata, context.zone.as_deref()) };
            context
                .instance
                .on_update(zone.as_deref(), key.as_deref(), event.rcode);
        }
        if context.knotc_stats {
            mirror_to_knotc(module, thread, &counted);
        }
        state
    })
}

/// Bumps knotd's own counters (`knotc stats`) for one counted request.
/// knotd reads them only when asked, so they cannot be batched without
/// making `knotc stats` lag; each call is a few instructions in knotd.
fn mirror_to_knotc(module: Module, thread: usize, counted: &Counted) {
    let Ok(thread) = u32::try_from(thread) else {
        return;
    };
    // Every index is below its dimension's count (at most 23): the casts
    // cannot truncate.
    module.stats_incr(thread, CTR_OP, counted.op as u32);
    module.stats_incr(thread, CTR_PROTO, counted.proto as u32);
    if counted.op != dims::OP_UPDATE {
        module.stats_incr(thread, CTR_TYPE, counted.type_index as u32);
        module.stats_incr(thread, CTR_RCODE, counted.rcode_index as u32);
    }
    if counted.edns {
        module.stats_incr(thread, CTR_FLAG, dims::FLAG_EDNS as u32);
    }
    if counted.dnssec_ok {
        module.stats_incr(thread, CTR_FLAG, dims::FLAG_DO as u32);
    }
    if counted.truncated {
        module.stats_incr(thread, CTR_FLAG, dims::FLAG_TC as u32);
    }
}

/// A knotc counter index's name in malloc'ed memory (NULL if knotd asks
/// for an index beyond u32, which it cannot).
fn index_name(idx: c_uint, names: impl Fn(usize) -> &'static str) -> *mut c_char {
    usize::try_from(idx).map_or(null_mut(), |i| host::malloc_str(names(i)))
}

// The `idx_to_str` callbacks get no module handle: a panic is counted, not
// logged, and knotd prints the counter without a name.

unsafe extern "C" fn type_to_str(idx: u32, _count: u32) -> *mut c_char {
    guard("type_to_str", None, null_mut(), |_| {
        index_name(idx, dims::type_name)
    })
}

unsafe extern "C" fn rcode_to_str(idx: u32, _count: u32) -> *mut c_char {
    guard("rcode_to_str", None, null_mut(), |_| {
        index_name(idx, dims::rcode_name)
    })
}

unsafe extern "C" fn proto_to_str(idx: u32, _count: u32) -> *mut c_char {
    guard("proto_to_str", None, null_mut(), |_| {
        index_name(idx, |i| dims::PROTOS.get(i).copied().unwrap_or("other"))
    })
}

unsafe extern "C" fn op_to_str(idx: u32, _count: u32) -> *mut c_char {
    guard("op_to_str", None, null_mut(), |_| {
        index_name(idx, |i| dims::OPERATIONS.get(i).copied().unwrap_or("other"))
    })
}

unsafe extern "C" fn flag_to_str(idx: u32, _count: u32) -> *mut c_char {
    guard("flag_to_str", None, null_mut(), |_| {
        index_name(idx, |i| dims::FLAGS.get(i).copied().unwrap_or("other"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_void;

    #[test]
    fn api_symbol_matches_the_header() {
        assert_eq!(knotd_mod_api.0.version, sys::KNOTD_MOD_ABI_VERSION);
        assert!([400, 600].contains(&knotd_mod_api.0.version));
        // SAFETY: the name is a 'static C literal.
        let name = unsafe { CStr::from_ptr(knotd_mod_api.0.name) };
        assert_eq!(name.to_str().unwrap(), "mod-querystats");
        assert!(knotd_mod_api.0.load.is_some() && knotd_mod_api.0.unload.is_some());
    }

    #[test]
    fn schema_is_null_terminated_with_prefixed_names() {
        let items = &SCHEMA.0;
        assert!(items[items.len() - 1].name.is_null());
        for item in &items[..items.len() - 1] {
            // SAFETY: every name is a 'static NUL-terminated literal.
            let raw = unsafe { CStr::from_ptr(item.name) }.to_bytes();
            assert_eq!(usize::from(raw[0]), raw.len() - 1);
        }
    }

    #[test]
    fn callbacks_survive_null_arguments() {
        // SAFETY: NULL is what we test: every callback must reject it.
        unsafe {
            assert_eq!(config_check(null_mut()), KNOT_EINVAL);
            assert_eq!(load(null_mut()), KNOT_EINVAL);
            unload(null_mut());
            assert_eq!(begin_hook(2, null_mut(), null_mut(), null_mut()), 2);
            assert_eq!(end_hook(7, null_mut(), null_mut(), null_mut()), 7);
        }
    }

    #[test]
    fn index_names_are_malloced_copies() {
        // SAFETY: the callback returns malloc'ed memory that we free.
        unsafe {
            let ptr = type_to_str(0, 0);
            assert_eq!(CStr::from_ptr(ptr).to_str().unwrap(), "A");
            libc::free(ptr.cast::<c_void>());
            let ptr = rcode_to_str(3, 0);
            assert_eq!(CStr::from_ptr(ptr).to_str().unwrap(), "NXDOMAIN");
            libc::free(ptr.cast::<c_void>());
        }
    }
}
