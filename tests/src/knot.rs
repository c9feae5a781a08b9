//! A private knotd with a forward and a reverse zone that accepts
//! TSIG-signed updates.

use crate::child::ChildGuard;
use crate::dns::{Dns, ZoneRecord};
use crate::error::{HarnessError, Result};
use crate::process::{Output, Place, program, run, run_ok};
use base64::Engine as _;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// What to serve. `KnotOptions::new("lan.example.")` gives a forward zone
/// only; set `reverse_zone` (e.g. from [`Netns::reverse_zone`]) for PTRs.
///
/// [`Netns::reverse_zone`]: crate::Netns::reverse_zone
#[derive(Clone, Debug)]
pub struct KnotOptions {
    /// Absolute forward zone name, e.g. `lan.example.`.
    pub forward_zone: String,
    /// Absolute reverse zone name, e.g. `77.10.in-addr.arpa.`.
    pub reverse_zone: Option<String>,
    /// Extra zone-file lines for the forward zone, relative to its origin,
    /// e.g. `printer A 10.77.0.250`.
    pub forward_records: Vec<String>,
    /// Extra zone-file lines for the reverse zone, e.g. `250.0 PTR printer.lan.example.`.
    pub reverse_records: Vec<String>,
    /// More reverse zones after `reverse_zone`, each starting empty (SOA
    /// and NS only): a dual-stack lab serves an in-addr.arpa and an
    /// ip6.arpa zone from one knotd.
    pub more_reverse_zones: Vec<String>,
    /// TSIG key name (absolute); the secret is random per instance.
    pub key_name: String,
    /// Default TTL of the static records.
    pub ttl: u32,
    /// Addresses to listen on; 127.0.0.1 by default. Transfers (AXFR) are
    /// allowed from these addresses.
    pub listen: Vec<IpAddr>,
    /// Port; None means 53 inside a namespace, a free port on the host.
    pub port: Option<u16>,
    /// Knot log severity for `any` (`info`, `debug`, ...).
    pub log_level: String,
    /// Raw lines added to the `server` section, e.g. `listen-tls: 127.0.0.1@8853`.
    pub server_extra: Vec<String>,
    /// Raw configuration inserted before the `template` section, e.g. a
    /// `module:` or `mod-...:` section.
    pub conf_extra: String,
    /// Raw lines added to the default template, e.g. `global-module: mod-x/default`.
    pub template_extra: Vec<String>,
    /// More keys allowed to update and transfer, beside the random
    /// hmac-sha256 one (e.g. one per TSIG algorithm).
    pub extra_keys: Vec<TsigKeyInfo>,
    /// The TSIG key to use instead of a random one: a primary and its
    /// secondaries share one, so that the hook's signed updates verify on
    /// either and a secondary can forward them unchanged.
    pub key: Option<TsigKeyInfo>,
    /// Makes this a secondary of the knotd at this address (`master:` on
    /// every zone): no zone files, the zones come by AXFR/IXFR, NOTIFY
    /// signed with the key is accepted, and updates are forwarded there.
    pub primary: Option<SocketAddr>,
    /// Secondaries this primary sends NOTIFY to (`notify:` on every zone),
    /// signed with the key; transfers to them are allowed by the key.
    pub notify: Vec<SocketAddr>,
}

impl KnotOptions {
    pub fn new(forward_zone: &str) -> Self {
        Self {
            forward_zone: absolute(forward_zone),
            reverse_zone: None,
            forward_records: Vec::new(),
            reverse_records: Vec::new(),
            more_reverse_zones: Vec::new(),
            key_name: "leasedns-test.".to_owned(),
            ttl: 300,
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: None,
            log_level: "info".to_owned(),
            server_extra: Vec::new(),
            conf_extra: String::new(),
            template_extra: Vec::new(),
            extra_keys: Vec::new(),
            key: None,
            primary: None,
            notify: Vec::new(),
        }
    }

    /// A secondary of `primary` listening on `listen` (port 53 in a
    /// namespace): the same zones and key, each zone following `primary`.
    pub fn secondary_of(primary: &Knot, listen: IpAddr) -> Self {
        let mut opts = Self::new(primary.forward_zone());
        opts.reverse_zone = primary.reverse_zone().map(str::to_owned);
        opts.key_name = primary.key().name.clone();
        opts.key = Some(primary.key().clone());
        opts.listen = vec![listen];
        opts.primary = Some(SocketAddr::new(primary.addr(), primary.port()));
        opts
    }
}

/// The TSIG key Knot accepts updates with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsigKeyInfo {
    /// Absolute key name, e.g. `leasedns-test.`.
    pub name: String,
    /// Knot/Kea algorithm name: `hmac-sha256`.
    pub algorithm: String,
    /// Base64 secret (32 random bytes).
    pub secret: String,
}

impl TsigKeyInfo {
    /// `alg:name:secret`, the form `knsupdate -y` and `kdig -y` take.
    pub fn tool_arg(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }

    /// The decoded secret.
    pub fn secret_bytes(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.secret)
            .unwrap_or_default()
    }
}

/// A running knotd in a temporary directory. Stopped and removed on drop.
#[derive(Debug)]
pub struct Knot {
    // Field order: the guard drops (and stops knotd) before the directory.
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    conf: PathBuf,
    place: Place,
    addr: IpAddr,
    port: u16,
    key: TsigKeyInfo,
    zones: Vec<String>,
}

impl Knot {
    /// Writes the configuration and zones, starts knotd at `place` and
    /// waits until every zone answers an SOA query.
    pub fn start(place: Place, opts: &KnotOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-knot-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating knot temp dir", e))?;
        let addr = opts
            .listen
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = match (opts.port, &place) {
            (Some(port), _) => port,
            // A private namespace has every port free (and its addresses do
            // not exist out here to probe).
            (None, Place::Netns(_)) => 53,
            (None, Place::Host) => free_port(addr)?,
        };
        let key = opts.key.clone().unwrap_or_else(|| TsigKeyInfo {
            name: absolute(&opts.key_name),
            algorithm: "hmac-sha256".to_owned(),
            secret: base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
        });
        let mut zones = vec![absolute(&opts.forward_zone)];
        zones.extend(opts.reverse_zone.as_deref().map(absolute));
        zones.extend(opts.more_reverse_zones.iter().map(|zone| absolute(zone)));
        for sub in ["db", "run", "zones"] {
            create_dir(&dir.path().join(sub))?;
        }
        // A secondary has no zone files: its zones come from the primary.
        let is_primary = opts.primary.is_none();
        if is_primary {
            write_zone(
                dir.path(),
                &zones[0],
                &zones[0],
                opts.ttl,
                &opts.forward_records,
                true,
            )?;
        }
        for (i, reverse) in zones.iter().enumerate().skip(1).filter(|_| is_primary) {
            let records = if i == 1 {
                &opts.reverse_records[..]
            } else {
                &[]
            };
            write_zone(dir.path(), reverse, &zones[0], opts.ttl, records, false)?;
        }
        let conf = dir.path().join("knot.conf");
        write_file(&conf, &config_text(dir.path(), opts, port, &key, &zones))?;
        let mut knot = Self {
            guard: None,
            dir,
            conf,
            place,
            addr,
            port,
            key,
            zones,
        };
        knot.check_conf()?;
        knot.start_again()?;
        Ok(knot)
    }

    /// Starts knotd again after [`stop`](Self::stop), same config, port,
    /// journal and key; waits until it answers.
    pub fn start_again(&mut self) -> Result<()> {
        if self.guard.is_some() {
            return Ok(());
        }
        let mut cmd = self.place.command("knotd")?;
        cmd.arg("-c").arg(&self.conf);
        let log = self.dir.path().join("knotd.log");
        self.guard = Some(ChildGuard::spawn("knotd", cmd, &log)?);
        let ready = self.wait_ready();
        if ready.is_err() {
            // Leave no half-started daemon behind; start_again may retry.
            self.guard = None;
        }
        ready
    }

    fn wait_ready(&mut self) -> Result<()> {
        let dns = self.dns();
        let zones = self.zones.clone();
        let mut last_error = None;
        let ready = crate::wait_until(READY_TIMEOUT, "knotd to answer SOA queries", || {
            if let Some(guard) = self.guard.as_mut()
                && let Err(e) = guard.check_running()
            {
                last_error = Some(e);
                return true;
            }
            zones
                .iter()
                .all(|zone| dns.query(zone, "SOA").is_ok_and(|soa| !soa.is_empty()))
        });
        match (ready, last_error) {
            (_, Some(exited)) => Err(exited),
            (Err(timeout), None) => {
                let tails = self
                    .guard
                    .as_ref()
                    .map(ChildGuard::log_tails)
                    .unwrap_or_default();
                Err(HarnessError::Missing(format!("{timeout}\n{tails}")))
            }
            (Ok(()), None) => Ok(()),
        }
    }

    /// Stops knotd (SIGTERM, then SIGKILL after a grace period). The
    /// directory, journal and port stay for [`start_again`](Self::start_again).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut guard) = self.guard.take() {
            guard.stop()?;
        }
        Ok(())
    }

    /// Sends `signal` to knotd (e.g. `libc::SIGSTOP` to freeze it so that
    /// updates time out instead of being refused).
    pub fn signal(&self, signal: i32) -> Result<()> {
        match self.guard.as_ref() {
            Some(guard) => guard.signal(signal),
            None => Err(HarnessError::Missing("knotd was stopped".into())),
        }
    }

    /// knotd's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().and_then(ChildGuard::pid)
    }

    /// Kills knotd with SIGKILL (no shutdown, no journal flush: a crash) and
    /// reaps it. Directory, journal and port stay for
    /// [`start_again`](Self::start_again).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut guard) = self.guard.take() {
            guard.signal(libc::SIGKILL)?;
            guard.stop()?;
        }
        Ok(())
    }

    /// Ok while knotd runs, else its exit status and log tail.
    pub fn check_running(&mut self) -> Result<()> {
        match self.guard.as_mut() {
            Some(guard) => guard.check_running(),
            None => Err(HarnessError::Missing("knotd was stopped".into())),
        }
    }

    /// A resolver pointed at this server, run from the server's namespace.
    pub fn dns(&self) -> Dns {
        Dns::new(self.place.clone(), self.addr, self.port)
    }

    /// The address Kea (or a test) should send updates to.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn key(&self) -> &TsigKeyInfo {
        &self.key
    }

    pub fn forward_zone(&self) -> &str {
        &self.zones[0]
    }

    pub fn reverse_zone(&self) -> Option<&str> {
        self.zones.get(1).map(String::as_str)
    }

    /// The leasedns hook's parameters for this server, written once for the
    /// tests, the demo and the bench: its TSIG key, its forward and reverse
    /// zones, generated names `host-...` under the forward zone; conflict
    /// resolution is Kea's default, RFC 4703 `check-with-dhcid` (Kea 2.6 and
    /// 3.0 refuse it as a hook parameter: it is their own setting). Callers
    /// change single fields by indexing the JSON.
    pub fn hook_parameters(&self, journal: &Path) -> serde_json::Value {
        let key = self.key();
        let servers =
            serde_json::json!([{ "ip-address": self.addr().to_string(), "port": self.port() }]);
        let reverse: Vec<serde_json::Value> = self
            .reverse_zone()
            .map(|zone| serde_json::json!({ "name": zone, "key-name": key.name, "dns-servers": servers }))
            .into_iter()
            .collect();
        serde_json::json!({
            "journal-dir": journal.to_string_lossy(),
            "tsig-keys": [{ "name": key.name, "algorithm": key.algorithm, "secret": key.secret }],
            "forward-ddns": { "ddns-domains": [
                { "name": self.forward_zone(), "key-name": key.name, "dns-servers": servers }
            ] },
            "reverse-ddns": { "ddns-domains": reverse }
        })
    }

    pub fn conf_path(&self) -> &Path {
        &self.conf
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// knotd's stdout/stderr log (it logs to stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("knotd.log")
    }

    /// The log's text so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `knotc -c <conf> args...` (talks to the control socket); fails on a
    /// non-zero exit.
    pub fn knotc(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(program("knotc")?);
        cmd.arg("-c").arg(&self.conf).arg("-t").arg("10").args(args);
        Ok(run_ok(cmd, None, TOOL_TIMEOUT)?.stdout)
    }

    fn check_conf(&self) -> Result<()> {
        self.knotc(&["conf-check"]).map(|_| ())
    }

    /// The zone's records as knotd holds them in memory (`knotc zone-read`).
    pub fn zone_read(&self, zone: &str) -> Result<Vec<ZoneRecord>> {
        let zone = absolute(zone);
        let out = self.knotc(&["zone-read", &zone])?;
        let mut records = Vec::new();
        // Records are `[zone] ...` lines; knotc 3.4+ may print configuration
        // notices ("notice: config, ...") before them.
        for line in out.lines().filter(|l| {
            !l.trim().is_empty() && !l.starts_with("notice:") && !l.starts_with("warning:")
        }) {
            // `[zone] name ttl type rdata...`: no class column.
            let body = line.split_once("] ").map_or(line, |(_, rest)| rest);
            let fields: Vec<&str> = body.split_whitespace().collect();
            let [name, ttl, rtype, rdata @ ..] = fields.as_slice() else {
                return Err(HarnessError::parse("knotc zone-read", line));
            };
            records.push(ZoneRecord {
                name: name.to_ascii_lowercase(),
                ttl: ttl
                    .parse()
                    .map_err(|_| HarnessError::parse("knotc zone-read", line))?,
                rtype: (*rtype).to_owned(),
                rdata: rdata.join(" "),
            });
        }
        Ok(records)
    }

    /// Runs a `knsupdate` script signed with the instance's key; `server`,
    /// `zone` and the final `send` are added. Returns the tool's output
    /// whatever its exit code, so tests can check refusals too.
    pub fn nsupdate(&self, zone: &str, commands: &[&str]) -> Result<Output> {
        self.nsupdate_as(Some(&self.key), zone, commands)
    }

    /// Like [`nsupdate`](Self::nsupdate) with another key, or unsigned.
    pub fn nsupdate_as(
        &self,
        key: Option<&TsigKeyInfo>,
        zone: &str,
        commands: &[&str],
    ) -> Result<Output> {
        let mut script = format!(
            "server {} {}\nzone {}\n",
            self.addr,
            self.port,
            absolute(zone)
        );
        for line in commands {
            let _ = writeln!(script, "{line}");
        }
        script.push_str("send\nanswer\n");
        let mut cmd = self.place.command("knsupdate")?;
        if let Some(key) = key {
            cmd.arg("-y").arg(key.tool_arg());
        }
        cmd.arg("-t").arg("5");
        run(cmd, Some(script.as_bytes()), TOOL_TIMEOUT)
    }
}

/// An absolute (dot-terminated) lower-case name.
fn absolute(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| HarnessError::io(format!("creating {}", path.display()), e))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
}

/// Binds port 0 for UDP and TCP and returns a port that was free for both.
fn free_port(addr: IpAddr) -> Result<u16> {
    for _ in 0..20 {
        let udp = UdpSocket::bind((addr, 0))
            .map_err(|e| HarnessError::io("binding a UDP probe socket", e))?;
        let port = udp
            .local_addr()
            .map_err(|e| HarnessError::io("reading probe port", e))?
            .port();
        if TcpListener::bind((addr, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(HarnessError::Missing(format!(
        "no free UDP+TCP port on {addr}"
    )))
}

fn write_zone(
    dir: &Path,
    zone: &str,
    forward: &str,
    ttl: u32,
    extra: &[String],
    is_forward: bool,
) -> Result<()> {
    let mut text = format!(
        "$ORIGIN {zone}\n$TTL {ttl}\n@ SOA ns.{forward} hostmaster.{forward} 1 3600 600 86400 {ttl}\n@ NS ns.{forward}\n"
    );
    if is_forward {
        text.push_str("ns A 127.0.0.1\n");
    }
    for line in extra {
        let _ = writeln!(text, "{line}");
    }
    write_file(&dir.join("zones").join(format!("{zone}zone")), &text)
}

fn config_text(
    dir: &Path,
    opts: &KnotOptions,
    port: u16,
    key: &TsigKeyInfo,
    zones: &[String],
) -> String {
    let dir = dir.display();
    let listen: Vec<String> = opts.listen.iter().map(|a| format!("{a}@{port}")).collect();
    let mut xfr: Vec<String> = opts.listen.iter().map(ToString::to_string).collect();
    if !xfr.contains(&"127.0.0.1".to_owned()) {
        xfr.push("127.0.0.1".to_owned());
    }
    let mut extra_keys = String::new();
    let mut acl_keys = vec![key.name.clone()];
    for extra in &opts.extra_keys {
        let _ = writeln!(
            extra_keys,
            "  - id: {}\n    algorithm: {}\n    secret: {}",
            extra.name, extra.algorithm, extra.secret
        );
        acl_keys.push(extra.name.clone());
    }
    let mut text = format!(
        r#"# Generated by the leasedns test harness.
server:
    rundir: "{dir}/run"
    listen: [ {listen} ]
    udp-workers: 2
    tcp-workers: 2
    background-workers: 1
{server_extra}
log:
  - target: stderr
    any: {log}

database:
    storage: "{dir}/db"

control:
    listen: "{dir}/run/knot.sock"

key:
  - id: {key_name}
    algorithm: {alg}
    secret: {secret}
{extra_keys}
{remotes}
acl:
  # The hook's key may update and transfer: reconciliation reads the
  # zones by a signed AXFR (and a secondary's IXFR is signed with it).
  - id: leasedns-update
    key: [ {acl_keys} ]
    action: [update, transfer]
  - id: local-transfer
    address: [ {xfr} ]
    action: transfer
{notify_acl}
{extra}
template:
  - id: default
    storage: "{dir}/zones"
    file: "%s.zone"
    # Updates live in the journal only; the zone files stay as written so
    # tests can tell static from dynamic records. On restart knotd parses
    # the zone file (serial 1) and replays the journal on top, so dynamic
    # records survive a restart ("difference-no-serial" would drop them).
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: all
    # Knot's default depth (20 changesets) merges older updates into a
    # snapshot that `zonefile-load: whole` discards on restart: dynamic
    # records would vanish after more than 20 updates.
    journal-max-depth: 1000000
    semantic-checks: off
    acl: [ leasedns-update, local-transfer{notify_acl_ref} ]
"#,
        listen = listen.join(", "),
        server_extra = opts
            .server_extra
            .iter()
            .map(|line| format!("    {line}\n"))
            .collect::<String>(),
        log = opts.log_level,
        key_name = key.name,
        alg = key.algorithm,
        secret = key.secret,
        xfr = xfr.join(", "),
        extra = opts.conf_extra,
        extra_keys = extra_keys,
        acl_keys = acl_keys.join(", "),
        remotes = remotes_text(opts, &key.name),
        notify_acl = if opts.primary.is_some() {
            format!(
                "  # NOTIFY from the primary, signed with the shared key.\n  - id: primary-notify\n    key: [ {} ]\n    action: notify\n",
                key.name
            )
        } else {
            String::new()
        },
        notify_acl_ref = if opts.primary.is_some() {
            ", primary-notify"
        } else {
            ""
        },
    );
    for line in &opts.template_extra {
        let _ = writeln!(text, "    {line}");
    }
    text.push_str("\nzone:\n");
    let notify: Vec<String> = (0..opts.notify.len())
        .map(|i| format!("secondary-{i}"))
        .collect();
    for zone in zones {
        let _ = writeln!(text, "  - domain: {zone}");
        // `master` is the option's name in Knot 3.2 through 3.5 (3.5 has no
        // `primary` spelling); a secondary forwards updates to it too.
        if opts.primary.is_some() {
            let _ = writeln!(text, "    master: primary");
        }
        if !notify.is_empty() {
            let _ = writeln!(text, "    notify: [ {} ]", notify.join(", "));
        }
    }
    text
}

/// The `remote` section: the primary of a secondary, the secondaries of a
/// primary; every request to them (SOA, IXFR, NOTIFY, forwarded updates)
/// is signed with `key`. Empty for a lone server.
fn remotes_text(opts: &KnotOptions, key: &str) -> String {
    let named = opts
        .primary
        .iter()
        .map(|addr| ("primary".to_owned(), addr))
        .chain(
            opts.notify
                .iter()
                .enumerate()
                .map(|(i, addr)| (format!("secondary-{i}"), addr)),
        );
    let mut text = String::new();
    for (id, addr) in named {
        if text.is_empty() {
            text.push_str("remote:\n");
        }
        let _ = writeln!(
            text,
            "  - id: {id}\n    address: {}@{}\n    key: {key}",
            addr.ip(),
            addr.port()
        );
    }
    text
}
