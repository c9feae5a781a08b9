//! The log bridge: `tracing` events from inside a knotd callback go to
//! knotd's own log (`knotd_mod_log` with `"%s"`), so operators set the
//! module's verbosity where they set knotd's.

use crate::ffi::host::Module;

/// Forwards `tracing` events to knotd's log for the module of the current
/// callback. Installed only around knotd callbacks (never on our own
/// threads), so the handle is always used on the knotd thread that gave it.
struct KnotdLog {
    module: Module,
}

// SAFETY: a KnotdLog lives only inside `with_log` on the calling knotd
// thread (a thread-local default dispatcher); it is never sent to or used
// from another thread, and knotd_mod_log itself is thread-safe.
unsafe impl Send for KnotdLog {}
// SAFETY: as above.
unsafe impl Sync for KnotdLog {}

/// Runs `f` with `tracing` events going to knotd's log through `module`.
pub(crate) fn with_log<R>(module: Module, f: impl FnOnce() -> R) -> R {
    tracing::subscriber::with_default(KnotdLog { module }, f)
}

impl tracing::Subscriber for KnotdLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        // knotd filters by its own configured severity.
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let text = tracing_line::line(event);
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => libc::LOG_ERR,
            tracing::Level::WARN => libc::LOG_WARNING,
            tracing::Level::INFO => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        self.module.log(priority, &text);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
