//! ISC `dhclient -6` as a real DHCPv6 client in the client namespace.

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::process::{Place, run_ok};
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const RELEASE_TIMEOUT: Duration = Duration::from_secs(20);

/// Numbers the default DUIDs of the clients of one test binary.
static NEXT_DUID: AtomicU32 = AtomicU32::new(1);

/// The client FQDN option (39, RFC 4704) `dhclient -6` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fqdn6 {
    /// `laptop6` (partial: the server appends its suffix) or
    /// `laptop6.lan.example.` (absolute, with the root label on the wire).
    pub name: String,
    /// S flag: the client asks the server to do the AAAA update.
    pub server_update: bool,
    /// N flag: the client asks that no one updates (then S must be off).
    pub no_update: bool,
}

impl Fqdn6 {
    /// A partial name with S=1, the usual laptop.
    pub fn partial(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            server_update: true,
            no_update: false,
        }
    }

    /// The option's payload: flags, then the name in wire format, ending
    /// with the root label only when the name is absolute. dhclient's own
    /// `fqdn.fqdn` always sends the root label, so the raw option is the
    /// only way to send a partial name (see docs/notes on DHCPv6).
    pub fn payload(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.server_update {
            flags |= 0x01;
        }
        if self.no_update {
            flags |= 0x04;
        }
        let mut wire = vec![flags];
        let absolute = self.name.ends_with('.');
        for label in self
            .name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            wire.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
            wire.extend_from_slice(label.as_bytes());
        }
        if absolute {
            wire.push(0);
        }
        wire
    }
}

/// What one `dhclient -6` instance sends.
#[derive(Clone, Debug, Default)]
pub struct Dhclient6Options {
    /// Option 39; None sends none.
    pub fqdn: Option<Fqdn6>,
    /// The client's DUID; None gives a DUID-LL (type 3, Ethernet) with a
    /// made-up, per-process unique link-layer address. Written into the
    /// lease file as `default-duid`, which dhclient uses as its identity,
    /// so tests know it (and can compute the DHCID).
    pub duid: Option<Vec<u8>>,
    /// Raw dhclient.conf lines.
    pub extra: Vec<String>,
}

/// The lease `dhclient -6` was bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease6 {
    pub address: Ipv6Addr,
    /// Valid lifetime in seconds.
    pub valid_lifetime: Option<u32>,
    /// Preferred lifetime in seconds.
    pub preferred_lifetime: Option<u32>,
}

/// One `dhclient -6` with a private config, lease file, pid file and
/// script. The script only adds/removes the leased address (as a /128,
/// without DAD) and never touches resolv.conf or routes.
#[derive(Debug)]
pub struct Dhclient6 {
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    place: Place,
    iface: String,
    duid: Vec<u8>,
}

impl Dhclient6 {
    /// Prepares (does not start) a client on `iface` at `place`.
    pub fn new(place: Place, iface: &str, opts: &Dhclient6Options) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-dhclient6-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating dhclient -6 temp dir", e))?;
        let duid = opts.duid.clone().unwrap_or_else(default_duid);
        let client = Self {
            guard: None,
            dir,
            place,
            iface: iface.to_owned(),
            duid,
        };
        write(&client.path("dhclient6.conf"), &config_text(opts))?;
        write(
            &client.script_path(),
            &script_text(&client.path("script.log")),
        )?;
        set_executable(&client.script_path())?;
        write(&client.lease_file(), &duid_line(&client.duid))?;
        Ok(client)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn script_path(&self) -> PathBuf {
        self.path("dhclient-script")
    }

    pub fn lease_file(&self) -> PathBuf {
        self.path("dhclient6.leases")
    }

    /// The DUID the client identifies itself with.
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// dhclient's own output (-v) across runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("dhclient6.log")).unwrap_or_default()
    }

    fn base_args(&self) -> Vec<String> {
        let p = |name: &str| self.path(name).to_string_lossy().into_owned();
        vec![
            "-6".into(),
            "-v".into(),
            "-cf".into(),
            p("dhclient6.conf"),
            "-lf".into(),
            p("dhclient6.leases"),
            "-pf".into(),
            p("dhclient6.pid"),
            "-sf".into(),
            p("dhclient-script"),
        ]
    }

    /// Runs Solicit/Advertise/Request/Reply and waits until the script
    /// reports the address. dhclient keeps running in the foreground (-d)
    /// to renew, under a kill-on-drop guard.
    pub fn obtain(&mut self, timeout: Duration) -> Result<Lease6> {
        self.stop()?;
        let script_log = self.path("script.log");
        let seen = std::fs::metadata(&script_log).map_or(0, |m| m.len());
        let mut cmd = self.place.command("dhclient")?;
        cmd.arg("-1")
            .arg("-d")
            .args(self.base_args())
            .arg(&self.iface);
        let mut guard = ChildGuard::spawn("dhclient -6", cmd, &self.path("dhclient6.log"))?;
        guard.watch_log(&script_log);
        let mut failure = None;
        let lease = crate::wait_for(timeout, "dhclient -6 to get a lease", || {
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
                "dhclient -6 stopped without a lease".into(),
            )),
            (Err(timeout), None) => Err(HarnessError::Missing(format!("{timeout}\n{tails}"))),
        }
    }

    /// The most recent address the client was bound to, from the script's
    /// log.
    pub fn lease(&self) -> Option<Lease6> {
        last_bound(&std::fs::read_to_string(self.path("script.log")).unwrap_or_default())
    }

    /// The addresses (`iaaddr`) of the last lease in dhclient's lease file.
    pub fn lease_file_addresses(&self) -> Vec<Ipv6Addr> {
        lease_file_addresses(&std::fs::read_to_string(self.lease_file()).unwrap_or_default())
    }

    /// `dhclient -6 -r`: stops the running client and sends a Release.
    pub fn release(&mut self) -> Result<()> {
        let mut cmd = self.place.command("dhclient")?;
        cmd.arg("-r").args(self.base_args()).arg(&self.iface);
        run_ok(cmd, None, RELEASE_TIMEOUT)?;
        // `dhclient -r` killed the foreground client through its pid file;
        // reap it.
        self.stop()
    }

    /// Kills the client with SIGKILL: it sends nothing more, as a laptop
    /// that is switched off, and the server keeps the lease until it
    /// expires.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut guard) = self.guard.take() {
            guard.signal(libc::SIGKILL)?;
            guard.stop()?;
        }
        Ok(())
    }

    /// Stops the client without releasing (the client just vanishes; the
    /// server keeps the lease until it expires).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut guard) = self.guard.take() {
            guard.stop()?;
        }
        Ok(())
    }
}

/// DUID-LL, hardware type 1, link-layer address `02:6c:64:<pid>:<n>`.
fn default_duid() -> Vec<u8> {
    let n = NEXT_DUID.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id().to_be_bytes();
    let n = n.to_be_bytes();
    vec![0, 3, 0, 1, 0x02, 0x6c, pid[2], pid[3], n[2], n[3]]
}

/// The lease file line that makes dhclient use `duid` (octal escapes: the
/// lease file's string syntax).
fn duid_line(duid: &[u8]) -> String {
    let mut text = String::from("default-duid \"");
    for byte in duid {
        let _ = write!(text, "\\{byte:03o}");
    }
    text.push_str("\";\n");
    text
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

/// dhclient6.conf: fast retries so a lost packet costs a second.
fn config_text(opts: &Dhclient6Options) -> String {
    let mut text = String::from(
        "timeout 30;\nretry 1;\ninitial-interval 1;\nbackoff-cutoff 2;\nselect-timeout 0;\n",
    );
    if let Some(fqdn) = &opts.fqdn {
        let hex: Vec<String> = fqdn.payload().iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(text, "send dhcp6.fqdn {};", hex.join(":"));
    }
    for line in &opts.extra {
        let _ = writeln!(text, "{line}");
    }
    text
}

fn script_text(log: &Path) -> String {
    format!(
        r#"#!/bin/sh
# dhclient-script for tests: log, and manage the leased address only.
echo "reason=$reason ip6=$new_ip6_address valid=$new_max_life preferred=$new_preferred_life old=$old_ip6_address" >> "{log}"
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    if [ -n "$new_ip6_address" ]; then
      ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad
    fi
    ;;
  EXPIRE6|RELEASE6|STOP6)
    if [ -n "$old_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#,
        log = log.display()
    )
}

/// The last BOUND6/RENEW6/REBIND6/REBOOT6 line of the script log.
fn last_bound(log: &str) -> Option<Lease6> {
    log.lines().rev().find_map(|line| {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|word| word.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .filter(|v| !v.is_empty())
        };
        if !matches!(
            field("reason")?,
            "BOUND6" | "RENEW6" | "REBIND6" | "REBOOT6"
        ) {
            return None;
        }
        Some(Lease6 {
            address: field("ip6")?.parse().ok()?,
            valid_lifetime: field("valid").and_then(|s| s.parse().ok()),
            preferred_lifetime: field("preferred").and_then(|s| s.parse().ok()),
        })
    })
}

/// `iaaddr <address> {` lines of the last `lease6` block.
fn lease_file_addresses(text: &str) -> Vec<Ipv6Addr> {
    let last = text.rsplit("lease6 {").next().unwrap_or("");
    if !text.contains("lease6 {") {
        return Vec::new();
    }
    last.lines()
        .filter_map(|line| line.trim().strip_prefix("iaaddr "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_absolute_names_on_the_wire() {
        assert_eq!(
            Fqdn6::partial("laptop6").payload(),
            [1, 7, b'l', b'a', b'p', b't', b'o', b'p', b'6']
        );
        let absolute = Fqdn6 {
            name: "a.b.".into(),
            server_update: false,
            no_update: true,
        };
        assert_eq!(absolute.payload(), [4, 1, b'a', 1, b'b', 0]);
        let text = config_text(&Dhclient6Options {
            fqdn: Some(Fqdn6::partial("laptop6")),
            ..Dhclient6Options::default()
        });
        assert!(text.contains("send dhcp6.fqdn 01:07:6c:61:70:74:6f:70:36;"));
        assert!(!config_text(&Dhclient6Options::default()).contains("send "));
    }

    #[test]
    fn duid_is_octal_escaped() {
        assert_eq!(
            duid_line(&[0, 3, 0, 1, 0xff]),
            "default-duid \"\\000\\003\\000\\001\\377\";\n"
        );
    }

    #[test]
    fn script_log_and_lease_file_give_the_address() {
        let log = "reason=PREINIT6 ip6= valid= preferred= old=\n\
                   reason=BOUND6 ip6=fd77:42::1:0 valid=600 preferred=600 old=\n\
                   reason=RELEASE6 ip6= valid= preferred= old=fd77:42::1:0\n";
        let lease = last_bound(log).unwrap();
        assert_eq!(lease.address, "fd77:42::1:0".parse::<Ipv6Addr>().unwrap());
        assert_eq!(lease.valid_lifetime, Some(600));
        let file = "default-duid \"\\000\";\nlease6 {\n  interface \"x\";\n  ia-na 1a:2b:3c:4d {\n    starts 1;\n    iaaddr fd77:42::1:5 {\n      starts 1;\n    }\n  }\n}\n";
        assert_eq!(
            lease_file_addresses(file),
            vec!["fd77:42::1:5".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(lease_file_addresses("default-duid \"\\000\";\n").is_empty());
    }
}
