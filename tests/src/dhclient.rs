//! ISC dhclient as a real DHCP client in the client namespace.

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::process::{Place, run_ok};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const RELEASE_TIMEOUT: Duration = Duration::from_secs(20);

/// The client FQDN option (81) dhclient sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fqdn {
    /// The name, e.g. `alpha.lan.example.` (absolute) or `alpha` (partial).
    pub name: String,
    /// S flag: the client asks the server to do the forward update.
    pub server_update: bool,
    /// N flag: the client asks that no one updates (then S must be off).
    pub no_client_update: bool,
}

/// What one dhclient instance sends.
#[derive(Clone, Debug, Default)]
pub struct DhclientOptions {
    /// Host name option (12); None sends none.
    pub hostname: Option<String>,
    /// FQDN option (81); None sends none.
    pub fqdn: Option<Fqdn>,
    /// Client identifier option (61) bytes; None lets Kea use the MAC.
    /// Distinct ids make several dhclients on one interface distinct
    /// clients.
    pub client_id: Option<Vec<u8>>,
    /// Raw dhclient.conf lines.
    pub extra: Vec<String>,
}

/// The lease dhclient recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// dhcp-server-identifier.
    pub server: Option<Ipv4Addr>,
    /// dhcp-lease-time in seconds.
    pub lifetime: Option<u32>,
    /// The host-name option the server returned, if any.
    pub hostname: Option<String>,
}

/// One dhclient with a private config, lease file, pid file and script.
/// The script only adds/removes the leased address on the interface (so
/// unicast RELEASE and RENEW work) and never touches resolv.conf or routes.
#[derive(Debug)]
pub struct Dhclient {
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    place: Place,
    iface: String,
}

impl Dhclient {
    /// Prepares (does not start) a client on `iface` at `place`.
    pub fn new(place: Place, iface: &str, opts: &DhclientOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-dhclient-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating dhclient temp dir", e))?;
        let client = Self {
            guard: None,
            dir,
            place,
            iface: iface.to_owned(),
        };
        write(&client.path("dhclient.conf"), &config_text(opts))?;
        write(
            &client.script_path(),
            &script_text(&client.path("script.log")),
        )?;
        set_executable(&client.script_path())?;
        // dhclient refuses to start when the lease file does not exist.
        write(&client.lease_file(), "")?;
        Ok(client)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn script_path(&self) -> PathBuf {
        self.path("dhclient-script")
    }

    pub fn lease_file(&self) -> PathBuf {
        self.path("dhclient.leases")
    }

    /// dhclient's own output (-v) across runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("dhclient.log")).unwrap_or_default()
    }

    fn base_args(&self) -> Vec<String> {
        let p = |name: &str| self.path(name).to_string_lossy().into_owned();
        vec![
            "-v".into(),
            "-cf".into(),
            p("dhclient.conf"),
            "-lf".into(),
            p("dhclient.leases"),
            "-pf".into(),
            p("dhclient.pid"),
            "-sf".into(),
            p("dhclient-script"),
        ]
    }

    /// Runs DORA (or INIT-REBOOT when a lease is on file) and waits until a
    /// new lease is written. dhclient keeps running in the foreground (-d)
    /// to renew, under a kill-on-drop guard.
    pub fn obtain(&mut self, timeout: Duration) -> Result<Lease> {
        self.stop()?;
        // The script log is ours and append-only (dhclient rewrites its
        // lease file at start), so "bound since we started" is a new line
        // there.
        let script_log = self.path("script.log");
        let seen = std::fs::metadata(&script_log).map_or(0, |m| m.len());
        let mut cmd = self.place.command("dhclient")?;
        cmd.arg("-1")
            .arg("-d")
            .args(self.base_args())
            .arg(&self.iface);
        let mut guard = ChildGuard::spawn("dhclient", cmd, &self.path("dhclient.log"))?;
        guard.watch_log(&script_log);
        let mut failure = None;
        let lease = crate::wait_for(timeout, "dhclient to get a lease", || {
            if let Err(e) = guard.check_running() {
                failure = Some(e);
                return Some(None);
            }
            let log = std::fs::read(&script_log).ok()?;
            let start = usize::try_from(seen).unwrap_or(0).min(log.len());
            last_bound(&String::from_utf8_lossy(&log[start..])).map(Some)
        });
        let tails = guard.log_tails();
        self.guard = Some(guard);
        match (lease, failure) {
            (_, Some(exited)) => Err(exited),
            (Ok(Some(lease)), None) => Ok(lease),
            (Ok(None), None) => Err(HarnessError::Missing(
                "dhclient stopped without a lease".into(),
            )),
            (Err(timeout), None) => Err(HarnessError::Missing(format!("{timeout}\n{tails}"))),
        }
    }

    /// The most recent lease the client was bound to (from the script's
    /// log: dhclient runs the script before it rewrites its lease file, and
    /// skips that rewrite within 15 s of the last one).
    pub fn lease(&self) -> Option<Lease> {
        last_bound(&std::fs::read_to_string(self.path("script.log")).unwrap_or_default())
    }

    /// `dhclient -r`: stops the running client and sends DHCPRELEASE.
    pub fn release(&mut self) -> Result<()> {
        let mut cmd = self.place.command("dhclient")?;
        cmd.arg("-r").args(self.base_args()).arg(&self.iface);
        run_ok(cmd, None, RELEASE_TIMEOUT)?;
        // `dhclient -r` killed the foreground client through its pid file;
        // reap it.
        self.stop()
    }

    /// Stops the client without releasing (the client just vanishes).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut guard) = self.guard.take() {
            guard.stop()?;
        }
        Ok(())
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| HarnessError::io(format!("chmod {}", path.display()), e))
}

/// dhclient.conf: fast retries so a lost packet costs a second, not ten.
fn config_text(opts: &DhclientOptions) -> String {
    let mut text = String::from(
        "timeout 30;\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\nselect-timeout 0;\n\
         request subnet-mask, broadcast-address, routers, host-name, domain-name;\n",
    );
    if let Some(hostname) = &opts.hostname {
        let _ = writeln!(text, "send host-name \"{}\";", escape(hostname));
    }
    if let Some(fqdn) = &opts.fqdn {
        let on_off = |flag: bool| if flag { "on" } else { "off" };
        let _ = writeln!(text, "send fqdn.fqdn \"{}\";", escape(&fqdn.name));
        let _ = writeln!(text, "send fqdn.encoded on;");
        let _ = writeln!(
            text,
            "send fqdn.server-update {};",
            on_off(fqdn.server_update)
        );
        let _ = writeln!(
            text,
            "send fqdn.no-client-update {};",
            on_off(fqdn.no_client_update)
        );
    }
    if let Some(id) = &opts.client_id {
        let hex: Vec<String> = id.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(text, "send dhcp-client-identifier {};", hex.join(":"));
    }
    for line in &opts.extra {
        let _ = writeln!(text, "{line}");
    }
    text
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn script_text(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
# dhclient-script for tests: log, and manage the leased address only.
echo "reason=$reason ip=$new_ip_address mask=$new_subnet_mask lifetime=$new_dhcp_lease_time server=$new_dhcp_server_identifier hostname=$new_host_name old=$old_ip_address" >> "{log}"
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
      ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    ;;
  EXPIRE|FAIL|RELEASE|STOP)
    if [ -n "$old_ip_address" ]; then
      ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#,
        log = log.display()
    )
}

/// The last BOUND/RENEW/REBIND/REBOOT line of the script log.
fn last_bound(log: &str) -> Option<Lease> {
    log.lines().rev().find_map(|line| {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|word| word.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .filter(|v| !v.is_empty())
        };
        if !matches!(field("reason")?, "BOUND" | "RENEW" | "REBIND" | "REBOOT") {
            return None;
        }
        Some(Lease {
            address: field("ip")?.parse().ok()?,
            server: field("server").and_then(|s| s.parse().ok()),
            lifetime: field("lifetime").and_then(|s| s.parse().ok()),
            hostname: field("hostname").map(String::from),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "reason=PREINIT ip= mask= lifetime= server= hostname= old=\n\
        reason=BOUND ip=10.78.1.0 mask=255.255.0.0 lifetime=600 server=10.78.0.1 hostname= old=\n\
        reason=RENEW ip=10.78.1.7 mask=255.255.0.0 lifetime=900 server=10.78.0.1 hostname=alpha old=10.78.1.0\n\
        reason=RELEASE ip= mask= lifetime= server= hostname= old=10.78.1.7\n";

    #[test]
    fn last_bound_line_wins() {
        let lease = last_bound(LOG).unwrap();
        assert_eq!(lease.address, Ipv4Addr::new(10, 78, 1, 7));
        assert_eq!(lease.server, Some(Ipv4Addr::new(10, 78, 0, 1)));
        assert_eq!(lease.lifetime, Some(900));
        assert_eq!(lease.hostname.as_deref(), Some("alpha"));
    }

    #[test]
    fn no_bound_line_is_no_lease() {
        assert_eq!(last_bound("reason=PREINIT ip= mask= old=\n"), None);
        assert_eq!(last_bound(""), None);
        let first = last_bound(
            "reason=BOUND ip=10.1.1.1 mask=255.0.0.0 lifetime= server= hostname= old=\n",
        )
        .unwrap();
        assert_eq!(first.hostname, None);
        assert_eq!(first.lifetime, None);
    }
    #[test]
    fn config_sends_requested_options() {
        let opts = DhclientOptions {
            hostname: Some("al\"pha".into()),
            fqdn: Some(Fqdn {
                name: "alpha.lan.example.".into(),
                server_update: true,
                no_client_update: false,
            }),
            client_id: Some(vec![1, 0xab]),
            extra: vec![],
        };
        let text = config_text(&opts);
        assert!(text.contains("send host-name \"al\\\"pha\";"));
        assert!(text.contains("send fqdn.fqdn \"alpha.lan.example.\";"));
        assert!(text.contains("send fqdn.server-update on;"));
        assert!(text.contains("send fqdn.no-client-update off;"));
        assert!(text.contains("send dhcp-client-identifier 01:ab;"));
        assert!(!config_text(&DhclientOptions::default()).contains("send "));
    }
}
