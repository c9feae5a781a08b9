//! A private kea-dhcp-ddns (D2), the stock path from kea-dhcp4 to DNS: Kea
//! sends it NameChangeRequests (NCRs) over UDP and it talks RFC 2136 to the
//! DNS server. The differential tests use it as the oracle for the hook.
//!
//! Whether D2 has finished is read from the two daemons' logs, the only
//! place either reports every NCR (Kea 2.2, 2.6 and 3.0 alike):
//! - kea-dhcp4 logs `DHCPSRV_QUEUE_NCR` (debug level 55) while it handles
//!   the packet, before it answers or, for a release, right after logging
//!   `DHCP4_RELEASE`; then `DHCPSRV_DHCP_DDNS_NCR_SENT` (debug level 50) or
//!   `DHCPSRV_DHCP_DDNS_NCR_REJECTED` once the UDP send completes;
//! - D2 logs `DHCP_DDNS_QUEUE_MGR_QUEUE_RECEIVE` (debug level 55) per NCR
//!   queued, and ends each with exactly one of `DHCP_DDNS_ADD_SUCCEEDED`,
//!   `DHCP_DDNS_ADD_FAILED`, `DHCP_DDNS_REMOVE_SUCCEEDED`,
//!   `DHCP_DDNS_REMOVE_FAILED` (the transaction's outcome),
//!   `DHCP_DDNS_NO_FWD_MATCH_ERROR`, `DHCP_DDNS_NO_REV_MATCH_ERROR` or
//!   `DHCP_DDNS_REQUEST_DROPPED` (no transaction started).
//!
//! So both daemons must log at DEBUG with debuglevel 55 or more
//! ([`D2::ncr_logging`] sets it for kea-dhcp4).

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::kea::{Kea, KeaOptions, private_dirs};
use crate::process::Place;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lowest debuglevel at which both daemons log every NCR message above.
const NCR_DEBUGLEVEL: u32 = 55;

/// kea-dhcp4's messages: an NCR queued, sent, refused by the sender.
const KEA_QUEUED: &str = "DHCPSRV_QUEUE_NCR";
const KEA_SENT: &str = "DHCPSRV_DHCP_DDNS_NCR_SENT";
const KEA_REJECTED: &str = "DHCPSRV_DHCP_DDNS_NCR_REJECTED";
/// D2's message for an NCR received and queued.
const D2_RECEIVED: &str = "DHCP_DDNS_QUEUE_MGR_QUEUE_RECEIVE";
/// D2's messages that end an NCR which reached DNS, successfully or not.
const D2_SUCCEEDED: [&str; 2] = ["DHCP_DDNS_ADD_SUCCEEDED", "DHCP_DDNS_REMOVE_SUCCEEDED"];
const D2_FAILED: [&str; 2] = ["DHCP_DDNS_ADD_FAILED", "DHCP_DDNS_REMOVE_FAILED"];
/// D2's messages that end an NCR before any DNS traffic.
const D2_DISCARDED: [&str; 3] = [
    "DHCP_DDNS_NO_FWD_MATCH_ERROR",
    "DHCP_DDNS_NO_REV_MATCH_ERROR",
    "DHCP_DDNS_REQUEST_DROPPED",
];

/// What to run D2 with.
#[derive(Clone, Debug)]
pub struct D2Options {
    /// The DNS side of the configuration: an object holding `tsig-keys`,
    /// `forward-ddns` and `reverse-ddns` (the same objects the leasedns
    /// hook takes as parameters), merged into `DhcpDdns` as they are.
    pub ddns: Value,
    /// UDP port D2 listens on for NCRs, on 127.0.0.1.
    pub port: u16,
    /// `dns-server-timeout` in milliseconds (Kea's default is 100 in 2.2,
    /// 500 later; a loaded test machine wants more).
    pub dns_server_timeout_ms: u32,
}

impl D2Options {
    pub fn new(ddns: Value) -> Self {
        Self {
            ddns,
            port: 53001,
            dns_server_timeout_ms: 1000,
        }
    }

    /// The full configuration for an instance living in `dir`.
    pub fn config_json(&self, dir: &Path) -> Value {
        let mut d2 = json!({
            "ip-address": "127.0.0.1",
            "port": self.port,
            "dns-server-timeout": self.dns_server_timeout_ms,
            "ncr-protocol": "UDP",
            "ncr-format": "JSON",
            "loggers": [{
                "name": "kea-dhcp-ddns",
                "output_options": [{ "output": path_str(&dir.join(LOG_FILE)), "flush": true }],
                "severity": "DEBUG",
                "debuglevel": NCR_DEBUGLEVEL,
            }],
        });
        if let (Value::Object(map), Value::Object(ddns)) = (&mut d2, &self.ddns) {
            for (key, value) in ddns {
                map.insert(key.clone(), value.clone());
            }
        }
        json!({ "DhcpDdns": d2 })
    }
}

const LOG_FILE: &str = "kea-dhcp-ddns.log";

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// NCR counts from both logs; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NcrProgress {
    /// NCRs kea-dhcp4 queued for D2.
    pub queued: usize,
    /// NCRs kea-dhcp4 sent.
    pub sent: usize,
    /// NCRs kea-dhcp4's sender refused.
    pub rejected: usize,
    /// NCRs D2 received.
    pub received: usize,
    /// NCRs D2 applied to DNS.
    pub succeeded: usize,
    /// NCRs D2 gave up on after talking to DNS (e.g. a name owned by
    /// another client).
    pub failed: usize,
    /// NCRs D2 dropped before any DNS traffic (no matching domain, nothing
    /// to do).
    pub discarded: usize,
}

impl NcrProgress {
    /// Reads the counts from kea-dhcp4's and D2's log texts.
    pub fn from_logs(kea_log: &str, d2_log: &str) -> Self {
        Self {
            queued: count_messages(kea_log, &[KEA_QUEUED]),
            sent: count_messages(kea_log, &[KEA_SENT]),
            rejected: count_messages(kea_log, &[KEA_REJECTED]),
            received: count_messages(d2_log, &[D2_RECEIVED]),
            succeeded: count_messages(d2_log, &D2_SUCCEEDED),
            failed: count_messages(d2_log, &D2_FAILED),
            discarded: count_messages(d2_log, &D2_DISCARDED),
        }
    }

    /// Every NCR kea-dhcp4 queued has left it, reached D2 and been ended.
    pub fn done(&self) -> bool {
        self.queued == self.sent + self.rejected
            && self.received == self.sent
            && self.succeeded + self.failed + self.discarded == self.received
    }
}

/// Lines whose message id (a whole word) is one of `ids`.
fn count_messages(log: &str, ids: &[&str]) -> usize {
    log.lines()
        .filter(|line| line.split_whitespace().any(|word| ids.contains(&word)))
        .count()
}

/// A running kea-dhcp-ddns with its own directory (config, log, pid file).
/// Stopped and removed on drop.
#[derive(Debug)]
pub struct D2 {
    // Field order: the guard drops (and stops D2) before the directory.
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    port: u16,
}

impl D2 {
    /// Writes the configuration, starts kea-dhcp-ddns at `place` (where
    /// kea-dhcp4 will run: it listens on 127.0.0.1) and waits until it logs
    /// that its queue manager listens for NCRs.
    pub fn start(place: &Place, opts: &D2Options) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-d2-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating kea-dhcp-ddns temp dir", e))?;
        let conf = dir.path().join("kea-dhcp-ddns.conf");
        let text = serde_json::to_string_pretty(&opts.config_json(dir.path()))
            .map_err(|e| HarnessError::parse("kea-dhcp-ddns config", e.to_string()))?;
        std::fs::write(&conf, text)
            .map_err(|e| HarnessError::io(format!("writing {}", conf.display()), e))?;
        let mut cmd = place.command("kea-dhcp-ddns")?;
        cmd.arg("-c").arg(&conf);
        private_dirs(&mut cmd, dir.path());
        let mut guard =
            ChildGuard::spawn("kea-dhcp-ddns", cmd, &dir.path().join("kea-dhcp-ddns.out"))?;
        guard.watch_log(&dir.path().join(LOG_FILE));
        let mut d2 = Self {
            guard: Some(guard),
            dir,
            port: opts.port,
        };
        d2.wait_ready()?;
        Ok(d2)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let log_path = self.log_path();
        let Some(guard) = self.guard.as_mut() else {
            return Err(HarnessError::Missing("kea-dhcp-ddns is not running".into()));
        };
        let mut failure = None;
        let ready = crate::wait_until(READY_TIMEOUT, "kea-dhcp-ddns to listen", || {
            if let Err(e) = guard.check_running() {
                failure = Some(e);
                return true;
            }
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            log.contains("DHCP_DDNS_STARTED") && log.contains("DHCP_DDNS_QUEUE_MGR_STARTED")
        });
        match (ready, failure) {
            (_, Some(exited)) => Err(exited),
            (Err(timeout), None) => Err(HarnessError::Missing(format!(
                "{timeout}\n{}",
                guard.log_tails()
            ))),
            (Ok(()), None) => Ok(()),
        }
    }

    /// kea-dhcp4's `dhcp-ddns` map that sends NCRs here.
    pub fn dhcp_ddns(&self) -> Value {
        json!({
            "enable-updates": true,
            "server-ip": "127.0.0.1",
            "server-port": self.port,
        })
    }

    /// Makes kea-dhcp4 log every NCR it queues and sends (DEBUG, level 55),
    /// which [`wait_done`](Self::wait_done) counts.
    pub fn ncr_logging(opts: &mut KeaOptions) {
        opts.severity = "DEBUG".to_owned();
        opts.debuglevel = opts.debuglevel.max(NCR_DEBUGLEVEL);
    }

    /// The NCR counts so far.
    pub fn progress(&self, kea: &Kea) -> NcrProgress {
        NcrProgress::from_logs(&kea.log(), &self.log())
    }

    /// Waits until D2 has ended every NCR `kea` queued (see
    /// [`NcrProgress::done`]). Call it after Kea has handled the last
    /// packet: answered it, or logged the release.
    pub fn wait_done(&self, kea: &Kea, timeout: Duration) -> Result<NcrProgress> {
        let mut last = NcrProgress::default();
        let result = crate::wait_for(timeout, "kea-dhcp-ddns to end every NCR", || {
            last = self.progress(kea);
            last.done().then_some(last)
        });
        result.map_err(|e| {
            HarnessError::Missing(format!(
                "{e}: last counts {last:?}\n{}",
                self.guard
                    .as_ref()
                    .map(ChildGuard::log_tails)
                    .unwrap_or_default()
            ))
        })
    }

    /// Ok while D2 runs, else its exit status and log tails.
    pub fn check_running(&mut self) -> Result<()> {
        match self.guard.as_mut() {
            Some(guard) => guard.check_running(),
            None => Err(HarnessError::Missing("kea-dhcp-ddns was stopped".into())),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// D2's log so far.
    pub fn log(&self) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The `tsig-keys`, `forward-ddns` and `reverse-ddns` of a D2
/// configuration for one server: `key` signs updates of `forward_zone` and
/// of `reverse_zone` at `server:port`. The leasedns hook takes the same
/// objects as parameters.
pub fn ddns_domains(
    key: &crate::TsigKeyInfo,
    server: std::net::IpAddr,
    port: u16,
    forward_zone: &str,
    reverse_zone: &str,
) -> Value {
    ddns_domains_multi(key, server, port, forward_zone, &[reverse_zone])
}

/// Like [`ddns_domains`] with several reverse zones, e.g. an in-addr.arpa
/// and an ip6.arpa one: one D2 serves kea-dhcp4 and kea-dhcp6 alike and
/// picks the reverse domain by the longest match of the PTR owner.
pub fn ddns_domains_multi(
    key: &crate::TsigKeyInfo,
    server: std::net::IpAddr,
    port: u16,
    forward_zone: &str,
    reverse_zones: &[&str],
) -> Value {
    let servers = json!([{ "ip-address": server.to_string(), "port": port }]);
    let mut map = Map::new();
    map.insert(
        "tsig-keys".into(),
        json!([{ "name": key.name, "algorithm": key.algorithm, "secret": key.secret }]),
    );
    map.insert(
        "forward-ddns".into(),
        json!({ "ddns-domains": [{ "name": forward_zone, "key-name": key.name, "dns-servers": servers }] }),
    );
    let reverse: Vec<Value> = reverse_zones
        .iter()
        .map(|zone| json!({ "name": zone, "key-name": key.name, "dns-servers": servers }))
        .collect();
    map.insert("reverse-ddns".into(), json!({ "ddns-domains": reverse }));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_message_ids_only() {
        let kea = "2025-01-01 DEBUG [kea-dhcp4.dhcpsrv/1.2] DHCPSRV_QUEUE_NCR [hwtype=1 x]: name change request to add DNS entry queued: ...\n\
                   2025-01-01 DEBUG [kea-dhcp4.dhcpsrv/1.2] DHCPSRV_QUEUE_NCR_SKIP [hwtype=1 y]: skip\n\
                   2025-01-01 DEBUG [kea-dhcp4.dhcpsrv/1.2] DHCPSRV_DHCP_DDNS_NCR_SENT NameChangeRequest sent to kea-dhcp-ddns: ...\n";
        let d2 = "2025-01-01 DEBUG [kea-dhcp-ddns.dhcp-to-d2/1.2] DHCP_DDNS_QUEUE_MGR_QUEUE_RECEIVE Request ID 0001: received and queued a request.\n";
        let progress = NcrProgress::from_logs(kea, d2);
        assert_eq!(
            (progress.queued, progress.sent, progress.received),
            (1, 1, 1)
        );
        assert!(!progress.done());
        let d2 = format!(
            "{d2}2025-01-01 ERROR [kea-dhcp-ddns.d2-to-dns/1.2] DHCP_DDNS_ADD_FAILED DHCP_DDNS Request ID 0001: Transaction outcome Status: Failed\n"
        );
        let progress = NcrProgress::from_logs(kea, &d2);
        assert_eq!(progress.failed, 1);
        assert!(progress.done());
    }

    #[test]
    fn dns_objects_are_merged_as_they_are() {
        let ddns = json!({ "tsig-keys": [], "forward-ddns": { "ddns-domains": [] } });
        let config = D2Options::new(ddns).config_json(Path::new("/d"));
        let d2 = &config["DhcpDdns"];
        assert_eq!(d2["tsig-keys"], json!([]));
        assert_eq!(d2["forward-ddns"]["ddns-domains"], json!([]));
        assert_eq!(d2["ip-address"], "127.0.0.1");
        assert_eq!(
            d2["loggers"][0]["output_options"][0]["output"],
            "/d/kea-dhcp-ddns.log"
        );
    }
}
