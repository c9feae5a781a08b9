//! The guard every callback knotd calls runs under (STYLE, boundary rule
//! 2): a panic is caught, counted ([`panics`]), logged through knotd when
//! the callback has a module handle, and turned into the value knotd
//! expects on failure. No unwind ever reaches knotd's C frames (from an
//! `extern "C" fn` it would abort knotd). `panic = "unwind"` in every
//! profile keeps `catch_unwind` working.
//!
//! Safe code: it uses the adapter's `Module::log`, which passes the message
//! as the argument of a `"%s"` format, never as the format.

use crate::ffi::host::Module;
use crate::stats::panics;
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `body(module)`; if it panics, records the panic and returns
/// `on_panic` instead. `callback` names the callback in the log line.
///
/// Inlined into each callback: the query hooks pay only for
/// `catch_unwind`'s landing pad, the report is out of line.
#[inline(always)]
pub(crate) fn guard<R>(
    callback: &'static str,
    module: Option<Module>,
    on_panic: R,
    body: impl FnOnce(Option<Module>) -> R,
) -> R {
    match catch_unwind(AssertUnwindSafe(|| body(module))) {
        Ok(value) => value,
        Err(payload) => {
            report(callback, module, payload);
            on_panic
        }
    }
}

/// Panics logged one by one; after that only the 32nd, 64th, 128th, ...
/// are, so that a panic on every query cannot flood knotd's log. Every
/// panic is counted.
const LOGGED_IN_FULL: u64 = 16;

/// Counts the panic and, with a module handle, logs it through knotd (on
/// the knotd thread that called the callback, which owns that handle).
#[cold]
#[inline(never)]
fn report(callback: &'static str, module: Option<Module>, payload: Box<dyn Any + Send>) {
    let count = panics::record();
    if let Some(module) = module
        && is_logged(count)
    {
        module.log(libc::LOG_ERR, &log_line(callback, count, &*payload));
    }
    // A payload's Drop can itself panic; that unwind must not escape
    // either. A second payload is leaked rather than dropped.
    if let Err(again) = catch_unwind(AssertUnwindSafe(|| drop(payload))) {
        std::mem::forget(again);
    }
}

fn is_logged(count: u64) -> bool {
    count <= LOGGED_IN_FULL || count.is_power_of_two()
}

fn log_line(callback: &str, count: u64, payload: &(dyn Any + Send)) -> String {
    let mut line = format!(
        "panic in {callback}, caught at the module boundary (panic {count} in this process): {}",
        panic_message(payload)
    );
    if count == LOGGED_IN_FULL {
        line.push_str(
            "; further panics are logged only at powers of two, all are counted in knot_querystats_panics_total",
        );
    }
    line
}

/// The text of `panic!("...")` (a `&str` or `String` payload).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        return text;
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text;
    }
    "(panic payload is not a string)"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::knotd_doubles;
    use std::ffi::c_int;
    use std::ptr::NonNull;

    /// knotd's generic error value, as `load` returns it.
    const KNOT_ERROR: c_int = knot_sys::knot_error_KNOT_ERROR;

    /// The panic counter is process-wide and tests run in parallel: every
    /// test that panics under the guard or reads the counter takes this.
    static COUNTER: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    /// A module handle the link doubles accept (never dereferenced), and
    /// its address, under which they record log lines.
    fn fake_module(tag: usize) -> (Module, usize) {
        let ptr = NonNull::<u8>::dangling().as_ptr().wrapping_add(tag);
        (Module::new(ptr.cast()).expect("non-null"), ptr as usize)
    }

    /// Called as knotd calls it: if the guard let the panic through, the
    /// unwind would hit this `extern "C"` frame and abort the test binary.
    extern "C" fn panicking_callback() -> c_int {
        guard("panicking_callback", None, KNOT_ERROR, |_| -> c_int {
            panic!("boom")
        })
    }

    #[test]
    fn a_panic_returns_the_error_value_counts_and_does_not_unwind() {
        let _serial = COUNTER.lock();
        let before = panics::total();
        assert_eq!(panicking_callback(), KNOT_ERROR);
        assert_eq!(panics::total(), before + 1);
        let state = guard("end_hook", None, 7u32, |_| -> u32 {
            panic!("index {} out of range", 9)
        });
        assert_eq!(state, 7, "a hook's state is returned unchanged");
        assert_eq!(panics::total(), before + 2);
    }

    #[test]
    fn without_a_panic_the_body_value_is_returned_and_nothing_counted() {
        let _serial = COUNTER.lock();
        let before = panics::total();
        let (module, addr) = fake_module(1);
        let got = guard("load", Some(module), KNOT_ERROR, |m| {
            assert!(m.is_some(), "the body gets the module handle");
            0
        });
        assert_eq!(got, 0);
        assert_eq!(panics::total(), before);
        assert!(knotd_doubles::logged(addr).is_empty());
    }

    #[test]
    fn a_panic_is_logged_through_knotd_with_the_callback_name() {
        let _serial = COUNTER.lock();
        let before = panics::total();
        let (module, addr) = fake_module(2);
        guard("unload", Some(module), (), |_| panic!("50% of %s"));
        assert_eq!(panics::total(), before + 1);
        let logged = knotd_doubles::logged(addr);
        assert_eq!(logged.len(), 1, "{logged:?}");
        let line = &logged[0];
        assert_eq!(line.priority, libc::LOG_ERR);
        assert_eq!(line.format, "%s", "the message is never the format");
        assert_eq!(
            line.message,
            format!(
                "panic in unload, caught at the module boundary (panic {} in this process): 50% of %s",
                before + 1
            )
        );
    }

    #[test]
    fn non_string_payloads_are_named_not_printed() {
        let result = catch_unwind(|| std::panic::panic_any(42u8));
        let payload = result.expect_err("panicked");
        assert_eq!(
            log_line("begin_hook", 3, &*payload),
            "panic in begin_hook, caught at the module boundary (panic 3 in this process): (panic payload is not a string)"
        );
        let owned = catch_unwind(|| panic!("{}", String::from("owned"))).expect_err("panicked");
        assert_eq!(panic_message(&*owned), "owned");
    }

    #[test]
    fn after_the_first_panics_only_powers_of_two_are_logged() {
        let logged: Vec<u64> = (1..=200).filter(|&n| is_logged(n)).collect();
        let mut expected: Vec<u64> = (1..=16).collect();
        expected.extend([32, 64, 128]);
        assert_eq!(logged, expected);
        let payload = catch_unwind(|| panic!("x")).expect_err("panicked");
        assert!(log_line("end_hook", 16, &*payload).ends_with("knot_querystats_panics_total"));
        assert!(log_line("end_hook", 32, &*payload).ends_with(": x"));
    }
}
