//! kea-dhcp-ddns (D2), the stock DDNS path's updater, configured for the
//! same zones, Knot and TSIG key as the hook.

use crate::BenchError;
use harness::{ChildGuard, Knot, Place, wait_until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Kea sends its name change requests (inside the server namespace).
pub(crate) const NCR_PORT: u16 = 53001;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running D2 in its own directory; stopped and removed on drop.
pub(crate) struct D2 {
    // Field order: the guard stops D2 before the directory goes.
    guard: ChildGuard,
    dir: tempfile::TempDir,
}

impl D2 {
    /// Starts D2 at `place` updating `knot`'s zones with its key; waits
    /// until the control socket answers.
    pub(crate) fn start(place: &Place, knot: &Knot) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-bench-d2-")
            .tempdir()
            .map_err(|e| BenchError::io("creating the D2 directory", e))?;
        let conf = dir.path().join("kea-dhcp-ddns.conf");
        let config = config(dir.path(), knot);
        std::fs::write(&conf, config.to_string()).map_err(|e| BenchError::io(conf.display(), e))?;
        let mut cmd = place.command("kea-dhcp-ddns")?;
        cmd.arg("-c").arg(&conf);
        harness::private_dirs(&mut cmd, dir.path());
        let mut guard = ChildGuard::spawn("kea-dhcp-ddns", cmd, &dir.path().join("d2.out"))?;
        guard.watch_log(&dir.path().join("d2.log"));
        let socket = socket_path(dir.path());
        let mut exited = None;
        let ready = wait_until(READY_TIMEOUT, "kea-dhcp-ddns to answer", || {
            if let Err(e) = guard.check_running() {
                exited = Some(e);
                return true;
            }
            command(&socket, "list-commands").is_ok()
        });
        if let Some(e) = exited {
            return Err(e.into());
        }
        ready?;
        Ok(Self { guard, dir })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.guard.pid()
    }

    /// D2's statistics (`statistic-get-all`): name to latest value.
    pub(crate) fn statistics(&self) -> Vec<(String, i64)> {
        let Ok(reply) = command(&socket_path(self.dir.path()), "statistic-get-all") else {
            return Vec::new();
        };
        let Some(Value::Object(stats)) = reply.get("arguments") else {
            return Vec::new();
        };
        stats
            .iter()
            .filter_map(|(name, samples)| Some((name.clone(), samples.get(0)?.get(0)?.as_i64()?)))
            .collect()
    }

    /// D2's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("d2.log")).unwrap_or_default()
    }
}

fn socket_path(dir: &Path) -> PathBuf {
    dir.join("d2.sock")
}

/// The D2 configuration: Kea 2.2 defaults (100 ms DNS timeout, UDP/JSON
/// requests) except where the benchmark must match the hook: zones, server
/// and key.
fn config(dir: &Path, knot: &Knot) -> Value {
    let key = knot.key();
    let servers = json!([{ "ip-address": knot.addr().to_string(), "port": knot.port() }]);
    json!({ "DhcpDdns": {
        "ip-address": "127.0.0.1",
        "port": NCR_PORT,
        "ncr-protocol": "UDP",
        "ncr-format": "JSON",
        "control-socket": { "socket-type": "unix", "socket-name": socket_path(dir).to_string_lossy() },
        "tsig-keys": [{ "name": key.name, "algorithm": key.algorithm.to_uppercase(), "secret": key.secret }],
        "forward-ddns": { "ddns-domains": [{ "name": knot.forward_zone(), "key-name": key.name, "dns-servers": servers }] },
        "reverse-ddns": { "ddns-domains": [{ "name": knot.reverse_zone().unwrap_or_default(), "key-name": key.name, "dns-servers": servers }] },
        "loggers": [{
            "name": "kea-dhcp-ddns",
            "output_options": [{ "output": dir.join("d2.log").to_string_lossy() }],
            "severity": "WARN"
        }]
    }})
}

/// One command over D2's control socket, with the harness's client.
fn command(socket: &Path, name: &str) -> Result<Value, BenchError> {
    check(
        harness::send_command(socket, &json!({ "command": name }))?,
        name,
    )
}

fn check(value: Value, name: &str) -> Result<Value, BenchError> {
    if value.get("result") == Some(&json!(0)) {
        return Ok(value);
    }
    Err(BenchError::Failed(format!("D2 {name}: {value}")))
}
