//! Bridges `tracing` events into Kea's logger (`kea-dhcp4.leasedns`), so
//! operators set the hook's verbosity in Kea's `loggers` configuration.
//!
//! Kea's API is only called from Kea's own threads (STYLE boundary rule 6):
//! an event raised on a host thread (callout, load, unload, timer) goes to
//! Kea at once; one raised on our background threads is queued on a bounded
//! channel and written by the next host-thread drain (the one-second timer on
//! Kea's main thread, every callout and unload). A full queue drops the event
//! and counts it.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::host;

const QUEUE_CAPACITY: usize = 4096;
/// `tracing` target prefixes of our own events: this crate (the library's
/// name) and the engine crate, which logs most of the hook's lines.
const OWN_TARGETS: [&str; 2] = [env!("CARGO_CRATE_NAME"), ddns_engine::TRACING_TARGET];
/// Kea debug levels for tracing's DEBUG and TRACE (Kea's scale is 0..99).
const DEBUG_LEVEL_DEBUG: i32 = 40;
const DEBUG_LEVEL_TRACE: i32 = 55;

thread_local! {
    static HOST_THREAD: Cell<bool> = const { Cell::new(false) };
}

struct Record {
    severity: i32,
    debuglevel: i32,
    text: String,
}

struct Bridge {
    tx: Sender<Record>,
    rx: Receiver<Record>,
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();
/// The most verbose tracing level Kea's logger currently accepts (0 error ..
/// 4 trace), refreshed on host threads; filters background events cheaply.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(2);
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn level_rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

fn kea_severity(level: &Level) -> (i32, i32) {
    match *level {
        Level::ERROR => (3, 0),
        Level::WARN => (2, 0),
        Level::INFO => (1, 0),
        Level::DEBUG => (0, DEBUG_LEVEL_DEBUG),
        Level::TRACE => (0, DEBUG_LEVEL_TRACE),
    }
}

/// Marks the current thread as one of Kea's for the guard's duration.
pub(crate) struct HostThreadGuard {
    was: bool,
}

impl HostThreadGuard {
    pub(crate) fn enter() -> HostThreadGuard {
        let was = HOST_THREAD.with(|c| c.replace(true));
        HostThreadGuard { was }
    }
}

impl Drop for HostThreadGuard {
    fn drop(&mut self) {
        let was = self.was;
        HOST_THREAD.with(|c| c.set(was));
    }
}

fn on_host_thread() -> bool {
    HOST_THREAD.with(|c| c.get())
}

struct KeaLayer;

impl<S: Subscriber> Layer<S> for KeaLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        let rank = level_rank(level);
        if rank > MAX_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        // Libraries (hickory-proto) speak at debug level about every message
        // they parse: only their warnings and errors are worth Kea's log.
        let target = event.metadata().target();
        if rank > 1 && !OWN_TARGETS.iter().any(|own| target.starts_with(own)) {
            return;
        }
        let text = tracing_line::line(event);
        let (severity, debuglevel) = kea_severity(level);
        if on_host_thread() {
            if host::log_enabled(severity, debuglevel) {
                host::log(severity, debuglevel, &text);
            }
            return;
        }
        let Some(bridge) = BRIDGE.get() else { return };
        match bridge.tx.try_send(Record {
            severity,
            debuglevel,
            text,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Installs the bridge once per process. Rust statics survive Kea's
/// unload/reload of the library, so a second call is a no-op.
pub(crate) fn install() {
    BRIDGE.get_or_init(|| {
        let (tx, rx) = bounded(QUEUE_CAPACITY);
        let subscriber = tracing_subscriber::registry().with(KeaLayer);
        // Another Rust library in the process may have set its own default;
        // then our events are not bridged, which we cannot fix from here.
        let _ = tracing::subscriber::set_global_default(subscriber);
        Bridge { tx, rx }
    });
    refresh_level();
}

/// Re-reads the logger's level from Kea. Host threads only.
pub(crate) fn refresh_level() {
    let rank = if host::log_enabled(0, DEBUG_LEVEL_TRACE) {
        4
    } else if host::log_enabled(0, DEBUG_LEVEL_DEBUG) {
        3
    } else if host::log_enabled(1, 0) {
        2
    } else if host::log_enabled(2, 0) {
        1
    } else {
        0
    };
    MAX_LEVEL.store(rank, Ordering::Relaxed);
}

/// Writes queued background events into Kea's log. Host threads only.
pub(crate) fn drain(max: usize) {
    let Some(bridge) = BRIDGE.get() else { return };
    for record in bridge.rx.try_iter().take(max) {
        if host::log_enabled(record.severity, record.debuglevel) {
            host::log(record.severity, record.debuglevel, &record.text);
        }
    }
}

/// Background log events dropped because the queue was full.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}
