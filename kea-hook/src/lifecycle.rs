//! The process-wide state behind the exports: at most one engine, replaced on
//! every `load`/`unload` pair (Kea reloads hook libraries on every
//! reconfiguration, in the same process, and Rust statics survive that).

use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use crate::config::{Config, ConfigError, KeaRelease, KeaSubnetDdns, Scopes};
use crate::engine::{Engine, EngineError, ReconcileRefused};
use crate::stats::Stats;
use crate::{host, logging};

pub(crate) type EngineRef = Arc<Engine>;

/// Period of the main-thread timer that publishes statistics and writes
/// background log lines.
pub(crate) const TICK_MS: i64 = 1000;

static ENGINE: RwLock<Option<EngineRef>> = RwLock::new(None);
/// Counters outlive reloads, as Kea's own statistics do.
static STATS: LazyLock<Arc<Stats>> = LazyLock::new(|| Arc::new(Stats::default()));

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error(
        "the hook needs a 'parameters' map (journal-dir, tsig-keys, forward-ddns, reverse-ddns)"
    )]
    NoParameters,
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("built against Kea hooks version {0}, which names no Kea release leasedns knows")]
    UnknownKea(i32),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

pub(crate) fn engine() -> Option<EngineRef> {
    ENGINE.read().clone()
}

pub(crate) fn load(params: Option<&str>) -> Result<(), LoadError> {
    logging::install();
    // A load without an unload (should not happen) must not leave threads behind.
    unload_engine();
    let kea = KeaRelease::from_hooks_version(kea_sys::KEA_HOOKS_VERSION)
        .ok_or(LoadError::UnknownKea(kea_sys::KEA_HOOKS_VERSION))?;
    let cfg = Config::from_json_for(params.ok_or(LoadError::NoParameters)?, kea)?;
    let zones = cfg.forward.len() + cfg.reverse.len();
    let dir = cfg.journal_dir.display().to_string();
    let engine = Engine::start(cfg, Arc::clone(&STATS))?;
    *ENGINE.write() = Some(Arc::new(engine));
    tracing::info!(zones, journal = %dir, "leasedns loaded");
    publish_stats();
    Ok(())
}

fn unload_engine() {
    let engine = ENGINE.write().take();
    if let Some(engine) = engine {
        engine.stop();
    }
}

pub(crate) fn unload() {
    host::stop_timer();
    unload_engine();
    publish_stats();
    logging::drain(usize::MAX);
    tracing::info!("leasedns unloaded");
}

/// Main-thread housekeeping, once per second.
pub(crate) fn tick() {
    logging::refresh_level();
    logging::drain(1024);
    if let Some(engine) = engine()
        && engine.reconcile_due()
    {
        let _ = reconcile(&engine);
    }
    publish_stats();
}

/// Reads every lease from Kea's lease manager (main thread) and starts a
/// reconciliation against it. Returns the number of leases, or why not.
pub(crate) fn reconcile(engine: &Engine) -> Result<usize, ReconcileRefused> {
    match engine.start_reconcile(host::all_leases) {
        Ok(n) => {
            tracing::info!(leases = n, "reconciliation started");
            Ok(n)
        }
        Err(err) => {
            tracing::warn!(%err, "reconciliation not started");
            Err(err)
        }
    }
}

/// dhcp4_srv_configured: Kea's configuration is final and the lease
/// database open (neither is during `load`), so the hook takes Kea's own
/// DDNS settings per subnet (`kea_ddns` reads them) and the
/// start-up reconciliation begins here. `Err`: Kea's settings cannot be
/// used, and the configuration must be refused.
pub(crate) fn server_configured(
    kea_ddns: impl FnOnce() -> Result<(KeaSubnetDdns, Vec<KeaSubnetDdns>), String>,
) -> Result<(), String> {
    let Some(engine) = engine() else {
        return Ok(());
    };
    let (global, subnets) = kea_ddns()?;
    let scopes = Scopes::from_kea(engine.config(), &global, &subnets)?;
    tracing::info!(
        kea = engine.config().kea.name(),
        subnets = scopes.subnets(),
        "DDNS settings from Kea's configuration, per subnet"
    );
    engine.set_scopes(scopes);
    if engine.config().reconcile.on_start {
        let _ = reconcile(&engine);
    }
    tick();
    Ok(())
}

fn publish_stats() {
    STATS
        .log_dropped
        .store(logging::dropped(), std::sync::atomic::Ordering::Relaxed);
    for (name, value) in STATS.snapshot() {
        host::stat_set(name, value);
    }
}
