//! Riding a Kea High Availability pair (`libdhcp_ha.so`).
//!
//! Each peer runs the hook; a peer's callouts see only the clients it
//! serves, and leases copied from the partner (lease updates, the bulk sync
//! of a returning server) reach its database without any callout. So:
//!
//! - a change is sent by the server that served the lease, once;
//! - a returning server's journal replay and start-up reconciliation wait
//!   until HA says its database has caught up with the partner's (the
//!   state has left `waiting` and `syncing`): against the outdated
//!   database the reconciliation would remove everything the survivor
//!   published alone, and a replayed add could bring back a lease the
//!   partner has since released. The reconciliation then checks the held
//!   journal changes against the synced database;
//! - on the move to `partner-down`, the survivor reconciles: what the dead
//!   server had committed to Kea (and so sent to this one) but not yet to
//!   DNS lives only in the dead server's journal;
//! - a peer serving no scope (the standby in hot-standby, a peer still
//!   waiting or syncing, a backup) leaves the DNS side of lease reclamation
//!   to the peer that serves: its removals would race the active server's
//!   renewals.
//!
//! The state comes from HA's own `ha-heartbeat`, run in process from the
//! main-thread timer once a second.

use serde::Deserialize;

/// Consecutive failed heartbeats after which the start-up work proceeds
/// anyway (about this many seconds): holding the journal forever would
/// leave DNS behind for good.
pub(crate) const GIVE_UP_AFTER: u32 = 30;

/// The part of `ha-heartbeat`'s answer the hook uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HaStatus {
    pub state: String,
    /// HA scopes this server serves now (empty: it answers no client).
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Answer {
    result: i64,
    #[serde(default)]
    text: String,
    arguments: Option<Arguments>,
}

#[derive(Deserialize)]
struct Arguments {
    state: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Parses Kea's answer to `ha-heartbeat`.
pub(crate) fn parse(answer: &str) -> Result<HaStatus, String> {
    let answer: Answer = serde_json::from_str(answer).map_err(|e| e.to_string())?;
    if answer.result != 0 {
        return Err(format!("result {}: {}", answer.result, answer.text));
    }
    let args = answer.arguments.ok_or("no arguments")?;
    Ok(HaStatus {
        state: args.state,
        scopes: args.scopes,
    })
}

/// Whether this server's lease database is as current as the pair's: not
/// while it waits for its partner or copies the partner's leases.
pub(crate) fn database_current(state: &str) -> bool {
    !matches!(state, "waiting" | "syncing")
}

/// What the timer must do after a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HaAction {
    None,
    /// The database is current: check the held journal against it and
    /// reconcile.
    Startup,
    /// The partner is down: reconcile, which covers its journal.
    Failover,
}

/// What the hook knows of its HA pair.
#[derive(Debug)]
pub(crate) struct HaWatch {
    pub status: Option<HaStatus>,
    /// The start-up work (replay, reconciliation) still waits for the sync.
    pub startup_pending: bool,
    pub failures: u32,
}

impl HaWatch {
    pub(crate) fn new() -> HaWatch {
        HaWatch {
            status: None,
            startup_pending: true,
            failures: 0,
        }
    }

    /// True while this server serves no client (or its state is unknown):
    /// reclamation's DNS removals are the serving peer's.
    pub(crate) fn passive(&self) -> bool {
        self.status.as_ref().is_none_or(|s| s.scopes.is_empty())
    }

    /// Takes one heartbeat's outcome. Returns the previous state when the
    /// state changed (for the log) and what to do.
    pub(crate) fn observe(
        &mut self,
        heartbeat: Result<HaStatus, String>,
    ) -> (Option<Option<String>>, HaAction) {
        let status = match heartbeat {
            Ok(status) => status,
            Err(_) => {
                self.failures = self.failures.saturating_add(1);
                let action = if self.startup_pending && self.failures >= GIVE_UP_AFTER {
                    HaAction::Startup
                } else {
                    HaAction::None
                };
                return (None, action);
            }
        };
        self.failures = 0;
        let previous = self.status.replace(status.clone()).map(|s| s.state);
        let changed = previous.as_deref() != Some(status.state.as_str());
        let action = if self.startup_pending {
            if database_current(&status.state) {
                HaAction::Startup
            } else {
                HaAction::None
            }
        } else if changed && status.state == "partner-down" {
            HaAction::Failover
        } else {
            HaAction::None
        };
        (changed.then_some(previous), action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, scopes: &[&str]) -> Result<HaStatus, String> {
        Ok(HaStatus {
            state: state.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn heartbeat_answers_parse() {
        let answer = r#"{ "arguments": { "date-time": "Tue, 01 Dec 2026 10:00:00 GMT", "scopes": [ "server1" ], "state": "hot-standby", "unsent-update-count": 0 }, "result": 0, "text": "HA peer status returned." }"#;
        assert_eq!(parse(answer), status("hot-standby", &["server1"]));
        let error = r#"{ "result": 1, "text": "server2 matches no configured 'server-name'" }"#;
        assert!(parse(error).unwrap_err().contains("server-name"));
        assert!(parse("not json").is_err());
    }

    #[test]
    fn a_returning_server_waits_for_the_sync_then_starts_once() {
        let mut ha = HaWatch::new();
        assert!(ha.passive(), "state unknown: reclamation is the partner's");
        assert_eq!(ha.observe(status("waiting", &[])).1, HaAction::None);
        assert_eq!(ha.observe(status("syncing", &[])).1, HaAction::None);
        let (changed, action) = ha.observe(status("ready", &[]));
        assert_eq!(changed, Some(Some("syncing".into())));
        assert_eq!(action, HaAction::Startup);
        ha.startup_pending = false;
        assert_eq!(ha.observe(status("hot-standby", &[])).1, HaAction::None);
        assert!(ha.passive(), "the standby serves no scope");
        assert_eq!(
            ha.observe(status("hot-standby", &["server1"])).0,
            None,
            "same state: nothing to log"
        );
        assert!(!ha.passive());
    }

    #[test]
    fn the_survivor_reconciles_once_on_partner_down() {
        let mut ha = HaWatch::new();
        ha.observe(status("hot-standby", &[]));
        ha.startup_pending = false;
        let (changed, action) = ha.observe(status("partner-down", &["server1"]));
        assert_eq!(changed, Some(Some("hot-standby".into())));
        assert_eq!(action, HaAction::Failover);
        assert_eq!(
            ha.observe(status("partner-down", &["server1"])).1,
            HaAction::None
        );
        assert!(!ha.passive(), "the survivor serves every scope");
    }

    #[test]
    fn a_silent_ha_library_does_not_hold_the_journal_forever() {
        let mut ha = HaWatch::new();
        for _ in 1..GIVE_UP_AFTER {
            assert_eq!(ha.observe(Err("no".into())).1, HaAction::None);
        }
        assert_eq!(ha.observe(Err("no".into())).1, HaAction::Startup);
    }
}
