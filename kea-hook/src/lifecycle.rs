//! The process-wide state behind the exports: at most one engine, replaced on
//! every `load`/`unload` pair (Kea reloads hook libraries on every
//! reconfiguration, in the same process, and Rust statics survive that).

use std::sync::{Arc, LazyLock};

use parking_lot::RwLock;

use crate::config::{Config, ConfigError, Family, KeaRelease, KeaSubnetDdns, Scopes};
use crate::engine::{Engine, EngineError, ReconcileRefused, Replay};
use crate::ha::{self, HaAction, HaWatch};
use crate::stats::Stats;
use crate::{host, logging};

pub(crate) type EngineRef = Arc<Engine>;

/// Period of the main-thread timer that publishes statistics and writes
/// background log lines.
pub(crate) const TICK_MS: i64 = 1000;

static ENGINE: RwLock<Option<EngineRef>> = RwLock::new(None);
/// Kea HA, when its library is loaded beside this one (set in
/// dhcp4_srv_configured, read by the timer and by reclamation callouts).
static HA: parking_lot::Mutex<Option<HaWatch>> = parking_lot::Mutex::new(None);
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
    #[error(
        "loaded into {0}: leasedns runs in kea-dhcp4 and kea-dhcp6 only; remove it from this daemon's hooks-libraries"
    )]
    WrongDaemon(String),
    #[error("cannot tell which Kea daemon loaded the library: {0}")]
    UnknownDaemon(String),
}

/// The address family of the Kea daemon the library is loaded into.
pub(crate) fn daemon_family() -> Result<Family, LoadError> {
    let daemon = host::daemon_name().map_err(LoadError::UnknownDaemon)?;
    match daemon.as_str() {
        "kea-dhcp4" => Ok(Family::V4),
        "kea-dhcp6" => Ok(Family::V6),
        _ => Err(LoadError::WrongDaemon(daemon)),
    }
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
    let family = daemon_family()?;
    let mut cfg = Config::from_json_for(params.ok_or(LoadError::NoParameters)?, kea)?;
    cfg.family = family;
    let zones = cfg.forward.len() + cfg.reverse.len();
    let dir = cfg.journal_dir.display().to_string();
    // The journal's old changes wait for dhcp4_srv_configured, which
    // knows whether an HA partner's database must be synced first.
    let engine = Engine::start_with(cfg, Arc::clone(&STATS), Replay::Hold)?;
    *ENGINE.write() = Some(Arc::new(engine));
    tracing::info!(zones, journal = %dir, daemon = family.daemon(), "leasedns loaded");
    publish_stats();
    Ok(())
}

fn unload_engine() {
    *HA.lock() = None;
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

/// Main-thread housekeeping, once per second (the timer).
pub(crate) fn tick() {
    housekeeping(true);
}

/// `with_ha`: also asks Kea HA for its state, which must not happen inside
/// a callout (the handler would run nested in Kea's callout manager).
fn housekeeping(with_ha: bool) {
    logging::refresh_level();
    logging::drain(1024);
    if let Some(engine) = engine() {
        if with_ha {
            watch_ha(&engine);
        }
        if engine.reconcile_due() {
            let _ = reconcile(&engine);
        }
    }
    publish_stats();
}

/// True when Kea HA is loaded and this server serves no client now: the
/// DNS side of reclaiming a lease is the serving peer's.
pub(crate) fn ha_passive() -> bool {
    HA.lock().as_ref().is_some_and(HaWatch::passive)
}

/// `leasedns-status`'s `high-availability` part; `None` without Kea HA.
pub(crate) fn ha_status() -> Option<serde_json::Value> {
    let ha = HA.lock();
    let ha = ha.as_ref()?;
    Some(serde_json::json!({
        "state": ha.status.as_ref().map(|s| s.state.clone()),
        "scopes": ha.status.as_ref().map(|s| s.scopes.clone()).unwrap_or_default(),
        "waiting-for-sync": ha.startup_pending,
    }))
}

/// One heartbeat of Kea HA's state machine, and what it asks of the hook.
fn watch_ha(engine: &Engine) {
    let mut guard = HA.lock();
    let Some(watch) = guard.as_mut() else {
        return;
    };
    let heartbeat = host::ha_heartbeat().and_then(|answer| ha::parse(&answer));
    if let Err(err) = &heartbeat
        && watch.failures == 0
    {
        tracing::warn!(%err, "cannot read Kea HA's state (ha-heartbeat)");
    }
    let (changed, action) = watch.observe(heartbeat);
    if let (Some(from), Some(to)) = (changed, watch.status.as_ref()) {
        tracing::info!(from = from.as_deref().unwrap_or("unknown"), to = %to.state, scopes = ?to.scopes, "Kea HA state");
    }
    match action {
        HaAction::None => {}
        HaAction::Startup => {
            if watch.failures > 0 {
                tracing::error!(
                    "Kea HA has not answered for {} s; replaying the journal against this server's own lease database",
                    ha::GIVE_UP_AFTER
                );
            } else {
                tracing::info!(
                    held = engine.held_replay(),
                    "Kea HA: lease database synced; checking the journal against it and reconciling"
                );
            }
            // Not under the lock: reconcile() reads every lease.
            drop(guard);
            if reconcile(engine).is_ok()
                && let Some(watch) = HA.lock().as_mut()
            {
                watch.startup_pending = false;
            }
        }
        HaAction::Failover => {
            drop(guard);
            tracing::warn!(
                "Kea HA: partner down; reconciling with the leases it sent, which covers changes left in its journal"
            );
            if reconcile(engine).is_err() {
                engine.request_reconcile();
            }
        }
    }
}

/// Reads every lease from Kea's lease manager (main thread) and starts a
/// reconciliation against it. Returns the number of leases, or why not.
pub(crate) fn reconcile(engine: &Engine) -> Result<usize, ReconcileRefused> {
    let family = engine.config().family;
    match engine.start_reconcile(|| host::all_leases(family)) {
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

/// dhcp4_srv_configured / dhcp6_srv_configured: Kea's configuration is final and the lease
/// database open (neither is during `load`), so the hook takes Kea's own
/// DDNS settings per subnet (`kea_ddns` reads them) and the
/// start-up reconciliation begins here. `Err`: Kea's settings cannot be
/// used, and the configuration must be refused.
pub(crate) fn server_configured(
    kea_ddns: impl FnOnce(Family) -> Result<(KeaSubnetDdns, Vec<KeaSubnetDdns>), String>,
) -> Result<(), String> {
    let Some(engine) = engine() else {
        return Ok(());
    };
    let (global, subnets) = kea_ddns(engine.config().family)?;
    let scopes = Scopes::from_kea(engine.config(), &global, &subnets)?;
    tracing::info!(
        kea = engine.config().kea.name(),
        subnets = scopes.subnets(),
        "DDNS settings from Kea's configuration, per subnet"
    );
    engine.set_scopes(scopes);
    if host::ha_present() {
        tracing::info!(
            held = engine.held_replay(),
            "Kea High Availability is loaded: the journal replay and the start-up reconciliation wait until the lease database is synced with the partner"
        );
        *HA.lock() = Some(HaWatch::new());
    } else {
        *HA.lock() = None;
        engine.release_replay();
        if engine.config().reconcile.on_start {
            let _ = reconcile(&engine);
        }
    }
    housekeeping(false);
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
