//! A private kea-dhcp4 or kea-dhcp6 serving the test subnet on the
//! server-side veth.

use crate::child::ChildGuard;
use crate::error::{HarnessError, Result};
use crate::netns::{Lan, Netns};
use crate::process::{Place, run};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server: kea-dhcp4 (`Dhcp4`, `subnet4`, `leases4.csv`) or
/// kea-dhcp6 (`Dhcp6`, `subnet6`, `leases6.csv`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    /// The server program.
    pub fn program(self) -> &'static str {
        match self {
            Family::V4 => "kea-dhcp4",
            Family::V6 => "kea-dhcp6",
        }
    }

    /// The configuration's top-level key.
    pub fn config_key(self) -> &'static str {
        match self {
            Family::V4 => "Dhcp4",
            Family::V6 => "Dhcp6",
        }
    }

    /// The message the server logs once it serves.
    fn started(self) -> &'static str {
        match self {
            Family::V4 => "DHCP4_STARTED",
            Family::V6 => "DHCP6_STARTED",
        }
    }

    fn lease_file(self) -> &'static str {
        match self {
            Family::V4 => "leases4.csv",
            Family::V6 => "leases6.csv",
        }
    }
}

/// Everything the harness varies in a kea-dhcp4 or kea-dhcp6
/// configuration. Start from [`KeaOptions::for_netns`] or
/// [`KeaOptions::v6`]; anything else goes into `dhcp4_extra` or
/// `subnet_extra`, which are merged last and win.
#[derive(Clone, Debug)]
pub struct KeaOptions {
    /// kea-dhcp4 or kea-dhcp6.
    pub family: Family,
    /// Interface Kea listens on with raw sockets.
    pub interface: String,
    /// `10.N.0.0/16` (v6: `fd77:N::/64`).
    pub subnet: String,
    /// `10.N.1.1 - 10.N.250.254` (v6: `fd77:N::1:0 - fd77:N::1:ffff`).
    pub pool: String,
    pub subnet_id: u32,
    /// Seconds. kea-dhcp6 gets it as the preferred lifetime too.
    pub valid_lifetime: u32,
    /// Memfile `persist`; the lease file is private to the instance.
    pub persist: bool,
    /// Logger severity: `DEBUG`, `INFO`, `WARN`, ...
    pub severity: String,
    /// 0..99, used when `severity` is `DEBUG`.
    pub debuglevel: u32,
    /// Some(threads) turns multi-threading on with that pool size.
    pub multi_threading: Option<u32>,
    /// `hooks-libraries` entries: library path and its `parameters`.
    pub hooks: Vec<(PathBuf, Value)>,
    /// Replaces `expired-leases-processing` when set.
    pub expired_leases_processing: Option<Value>,
    /// Extra top-level keys of `Dhcp4` (or `Dhcp6`), e.g. `ddns-*`,
    /// merged last.
    pub dhcp4_extra: Map<String, Value>,
    /// Extra keys of the one subnet (e.g. `reservations`), merged last.
    pub subnet_extra: Map<String, Value>,
    /// Extra environment of the Kea process (e.g. `LD_PRELOAD` for a
    /// fault-injection library).
    pub environment: Vec<(String, String)>,
}

impl KeaOptions {
    /// Serves the namespace pair's /16 on its server-side veth.
    pub fn for_netns(net: &Netns) -> Self {
        Self::serving(net.server_iface(), net.octet())
    }

    /// `10.N.0.0/16` on `interface`, pool `10.N.1.1 - 10.N.250.254`.
    fn serving(interface: &str, n: u8) -> Self {
        Self {
            family: Family::V4,
            interface: interface.to_owned(),
            subnet: format!("10.{n}.0.0/16"),
            pool: format!("10.{n}.1.1 - 10.{n}.250.254"),
            subnet_id: 1,
            valid_lifetime: 3600,
            persist: true,
            severity: "INFO".to_owned(),
            debuglevel: 0,
            multi_threading: None,
            hooks: Vec::new(),
            expired_leases_processing: None,
            dhcp4_extra: Map::new(),
            subnet_extra: Map::new(),
            environment: Vec::new(),
        }
    }

    /// kea-dhcp6 serving the namespace pair's `fd77:N::/64` (see
    /// [`Netns::new_v6`]) on its server-side veth, the subnet bound to that
    /// interface (the clients are not relayed), pool
    /// `fd77:N::1:0 - fd77:N::1:ffff`.
    pub fn v6(net: &Netns) -> Self {
        Self::serving6(
            Self::for_netns(net),
            net.subnet6(),
            net.addr6(0x1_0000),
            net.addr6(0x1_ffff),
        )
    }

    /// Serves a [`Lan`]'s /16 from server `i`'s interface.
    pub fn for_lan(lan: &Lan, i: usize) -> Self {
        Self::serving(lan.server_iface(i), lan.octet())
    }

    /// kea-dhcp6 serving a [`Lan::new_v6`]'s `fd77:N::/64` from server
    /// `i`'s interface, pool `fd77:N::1:0 - fd77:N::1:ffff`, as
    /// [`v6`](Self::v6).
    pub fn v6_for_lan(lan: &Lan, i: usize) -> Self {
        Self::serving6(
            Self::for_lan(lan, i),
            lan.subnet6(),
            lan.addr6(0x1_0000),
            lan.addr6(0x1_ffff),
        )
    }

    fn serving6(v4: Self, subnet: String, first: Ipv6Addr, last: Ipv6Addr) -> Self {
        Self {
            family: Family::V6,
            subnet,
            pool: format!("{first} - {last}"),
            ..v4
        }
    }

    /// Kea's naming settings the end-to-end tests share: names qualified
    /// with `zone`, `host-a-b-c-d` (v6: `host-fd77-N--1-5`) for clients
    /// that send none.
    pub fn with_ddns_naming(mut self, zone: &str) -> Self {
        for (key, value) in [
            ("ddns-qualifying-suffix", json!(zone)),
            ("ddns-replace-client-name", json!("when-not-present")),
            ("ddns-generated-prefix", json!("host")),
        ] {
            self.dhcp4_extra.insert(key.into(), value);
        }
        self
    }

    /// Adds a hook library with its parameters.
    pub fn with_hook(mut self, library: &Path, parameters: Value) -> Self {
        self.hooks.push((library.to_owned(), parameters));
        self
    }

    /// The full configuration for an instance living in `dir`.
    pub fn config_json(&self, dir: &Path) -> Value {
        let mut subnet = json!({
            "id": self.subnet_id,
            "subnet": self.subnet,
            "pools": [{ "pool": self.pool }],
        });
        let mut interfaces = json!({ "interfaces": [self.interface] });
        if self.family == Family::V4 {
            interfaces["dhcp-socket-type"] = json!("raw");
        } else {
            // Clients on the link itself (not relayed) are matched to a
            // subnet by its interface.
            subnet["interface"] = json!(self.interface);
        }
        merge(&mut subnet, &self.subnet_extra);
        let subnets = match self.family {
            Family::V4 => "subnet4",
            Family::V6 => "subnet6",
        };
        let mut dhcp4 = json!({
            "interfaces-config": interfaces,
            "control-socket": { "socket-type": "unix", "socket-name": path_str(&dir.join("kea.sock")) },
            "lease-database": {
                "type": "memfile",
                "persist": self.persist,
                "name": path_str(&dir.join(self.family.lease_file())),
                // No kea-lfc runs: the file keeps every lease change, which
                // tests may read.
                "lfc-interval": 0,
            },
            "valid-lifetime": self.valid_lifetime,
            subnets: [subnet],
            "loggers": [{
                "name": self.family.program(),
                "output_options": [{ "output": path_str(&dir.join("kea.log")), "flush": true }],
                "severity": self.severity,
                "debuglevel": self.debuglevel,
            }],
        });
        let mut extra = Map::new();
        if self.family == Family::V6 {
            extra.insert("preferred-lifetime".into(), json!(self.valid_lifetime));
            // Kea keeps its server DUID in a file under its compile-time
            // data directory (/var/lib/kea), which is not ours to write.
            extra.insert(
                "server-id".into(),
                json!({ "type": "LLT", "persist": false }),
            );
        }
        if let Some(threads) = self.multi_threading {
            extra.insert(
                "multi-threading".into(),
                json!({ "enable-multi-threading": true, "thread-pool-size": threads, "packet-queue-size": 64 }),
            );
        }
        if !self.hooks.is_empty() {
            let hooks: Vec<Value> = self
                .hooks
                .iter()
                .map(|(library, parameters)| json!({ "library": path_str(library), "parameters": parameters }))
                .collect();
            extra.insert("hooks-libraries".into(), Value::Array(hooks));
        }
        if let Some(processing) = &self.expired_leases_processing {
            extra.insert("expired-leases-processing".into(), processing.clone());
        }
        merge(&mut dhcp4, &extra);
        merge(&mut dhcp4, &self.dhcp4_extra);
        let mut config = Map::new();
        config.insert(self.family.config_key().into(), dhcp4);
        Value::Object(config)
    }
}

fn merge(target: &mut Value, extra: &Map<String, Value>) {
    if let Value::Object(map) = target {
        for (key, value) in extra {
            map.insert(key.clone(), value.clone());
        }
    }
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The installed kea-dhcp4's release, (major, minor), from `kea-dhcp4 -v`:
/// tests whose expectations differ by release (settings Kea 2.6 and 3.0
/// have natively) ask it.
pub fn kea_release() -> Result<(u32, u32)> {
    let mut cmd = Place::Host.command("kea-dhcp4")?;
    cmd.arg("-v");
    let out = run(cmd, None, COMMAND_TIMEOUT)?;
    let text = out.stdout.trim().to_owned();
    let mut parts = text.split('.').map(|p| p.trim().parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => Ok((major, minor)),
        _ => Err(HarnessError::parse("kea-dhcp4 -v", text)),
    }
}

/// Kea 2.6.3+ and 3.0 (CVE-2025-32801, -32802, -32803) write lease files,
/// logs, control sockets, pid and lock files only below compile-time
/// directories, each movable by an environment variable: the harness moves
/// them all into the instance's private directory, where its configuration
/// puts them, and gives that directory the mode 2.6.3+ demands of a socket
/// directory (0750). Kea 2.2 ignores the variables it does not know.
pub fn private_dirs(cmd: &mut Command, dir: &Path) {
    // Kea 2.6.3+ refuses a control-socket directory whose mode is not
    // exactly 0750 (a temporary directory is 0700). Kea 2.2 does not care.
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
    for var in [
        "KEA_DHCP_DATA_DIR",
        "KEA_LOG_FILE_DIR",
        "KEA_CONTROL_SOCKET_DIR",
        "KEA_LEGAL_LOG_DIR",
        "KEA_PIDFILE_DIR",
        "KEA_LOCKFILE_DIR",
    ] {
        cmd.env(var, dir);
    }
    cmd.env("KEA_HOOKS_PATH", dir.join(HOOKS_DIR));
}

/// The instance's hooks directory (`KEA_HOOKS_PATH`), below its directory.
const HOOKS_DIR: &str = "hooks";

/// Kea 2.6.3+ and 3.0 load hook libraries only from the hooks directory:
/// every `hooks-libraries` entry of `config` is linked into `dir/hooks/` by
/// its file name and the entry rewritten to the link, as an operator installs
/// libraries into Kea's hooks directory. Kea 2.2 loads them the same way.
/// Whichever daemon's configuration it is (`Dhcp4`, `Dhcp6`, `DhcpDdns`,
/// `Control-agent`): the first top-level object with `hooks-libraries`.
pub fn link_hooks(config: &mut Value, dir: &Path) -> Result<()> {
    let Some(libraries) = config
        .as_object_mut()
        .and_then(|top| {
            top.values_mut()
                .find_map(|daemon| daemon.get_mut("hooks-libraries"))
        })
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    let hooks = dir.join(HOOKS_DIR);
    std::fs::create_dir_all(&hooks)
        .map_err(|e| HarnessError::io(format!("creating {}", hooks.display()), e))?;
    for entry in libraries {
        let Some(library) = entry
            .get("library")
            .and_then(Value::as_str)
            .map(PathBuf::from)
        else {
            continue;
        };
        if library.parent() == Some(hooks.as_path()) {
            continue;
        }
        let Some(name) = library.file_name() else {
            continue;
        };
        let link = hooks.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&library, &link).map_err(|e| {
            HarnessError::io(
                format!("linking {} to {}", link.display(), library.display()),
                e,
            )
        })?;
        entry["library"] = Value::String(path_str(&link));
    }
    Ok(())
}

/// A running kea-dhcp4 or kea-dhcp6 ([`KeaOptions::family`]) with its own
/// directory (config, lease file, control socket, log, pid and lock files).
/// Stopped and removed on drop.
#[derive(Debug)]
pub struct Kea {
    // Field order: the guard drops (and stops Kea) before the directory.
    guard: Option<ChildGuard>,
    dir: tempfile::TempDir,
    place: Place,
    opts: KeaOptions,
}

impl Kea {
    /// Writes the configuration, starts kea-dhcp4 (or kea-dhcp6) at `place`
    /// and waits until it logs `DHCP4_STARTED` (`DHCP6_STARTED`) and
    /// answers on its control socket.
    pub fn start(place: Place, opts: KeaOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-kea-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating kea temp dir", e))?;
        let mut kea = Self {
            guard: None,
            dir,
            place,
            opts,
        };
        kea.write_config()?;
        kea.start_again()?;
        Ok(kea)
    }

    fn write_config(&self) -> Result<()> {
        let mut config = self.opts.config_json(self.dir.path());
        link_hooks(&mut config, self.dir.path())?;
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| HarnessError::parse("kea config", e.to_string()))?;
        let path = self.conf_path();
        std::fs::write(&path, text)
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
    }

    /// Starts kea-dhcp4 again after [`stop`](Self::stop) with the same
    /// directory, so the lease file (and anything a hook keeps there) stays.
    pub fn start_again(&mut self) -> Result<()> {
        if self.guard.is_some() {
            return Ok(());
        }
        // The log is appended to across restarts; readiness must look only
        // at what this run writes.
        let log_offset = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let program = self.opts.family.program();
        let mut cmd = self.place.command(program)?;
        cmd.arg("-c").arg(self.conf_path());
        private_dirs(&mut cmd, self.dir.path());
        cmd.envs(self.opts.environment.iter().map(|(k, v)| (k, v)));
        let mut guard = ChildGuard::spawn(program, cmd, &self.dir.path().join("kea.out"))?;
        guard.watch_log(&self.log_path());
        self.guard = Some(guard);
        let ready = self.wait_ready(log_offset);
        if ready.is_err() {
            // Leave no half-started daemon behind; start_again may retry.
            self.guard = None;
        }
        ready
    }

    fn wait_ready(&mut self, log_offset: u64) -> Result<()> {
        let log_path = self.log_path();
        let socket = self.socket_path();
        let mut failure = None;
        let family = self.opts.family;
        let guard = self.guard.as_mut();
        let Some(guard) = guard else {
            return Err(HarnessError::Missing(format!(
                "{} is not running",
                family.program()
            )));
        };
        let what = format!("{} to start", family.program());
        let ready = crate::wait_until(READY_TIMEOUT, &what, || {
            if let Err(e) = guard.check_running() {
                failure = Some(e);
                return true;
            }
            log_since(&log_path, log_offset).contains(family.started())
                && send_command(&socket, &json!({ "command": "list-commands" }))
                    .is_ok_and(|reply| reply.get("result") == Some(&json!(0)))
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

    /// Stops kea-dhcp4 (SIGTERM, so hooks get `unload`; SIGKILL after a
    /// grace period) and returns its exit status.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
        match self.guard.take() {
            Some(mut guard) => guard.stop(),
            None => Ok(None),
        }
    }

    /// Kills kea-dhcp4 with SIGKILL (hooks get no `unload`: a crash) and
    /// reaps it. The directory (lease file, config) stays for
    /// [`start_again`](Self::start_again).
    pub fn kill(&mut self) -> Result<Option<ExitStatus>> {
        match self.guard.take() {
            Some(mut guard) => {
                guard.signal(libc::SIGKILL)?;
                guard.stop()
            }
            None => Ok(None),
        }
    }

    /// Ok while Kea runs, else its exit status and log tails.
    pub fn check_running(&mut self) -> Result<()> {
        match self.guard.as_mut() {
            Some(guard) => guard.check_running(),
            None => Err(HarnessError::Missing("kea-dhcp4 was stopped".into())),
        }
    }

    /// Sends a raw command over the control socket and returns the reply.
    pub fn command(&self, command: &Value) -> Result<Value> {
        send_command(&self.socket_path(), command)
    }

    /// Sends `{"command": name, "arguments": args}` and returns the reply's
    /// `arguments` (Null when absent); a non-zero `result` is an error.
    pub fn command_ok(&self, name: &str, arguments: Option<Value>) -> Result<Value> {
        let mut command = json!({ "command": name });
        if let (Some(args), Value::Object(map)) = (arguments, &mut command) {
            map.insert("arguments".into(), args);
        }
        let reply = self.command(&command)?;
        if reply.get("result") != Some(&json!(0)) {
            return Err(HarnessError::CommandFailed {
                command: format!("kea {name}"),
                status: format!("result {}", reply.get("result").unwrap_or(&Value::Null)),
                output: reply.to_string(),
            });
        }
        Ok(reply.get("arguments").cloned().unwrap_or(Value::Null))
    }

    /// Rewrites the configuration file with `opts` and sends `config-reload`
    /// (Kea unloads and reloads every hook library).
    pub fn reconfigure(&mut self, opts: KeaOptions) -> Result<()> {
        self.opts = opts;
        self.write_config()?;
        self.command_ok("config-reload", None).map(|_| ())
    }

    /// Sends a signal to kea-dhcp4 (e.g. `libc::SIGHUP` to reload).
    pub fn signal(&self, signal: i32) -> Result<()> {
        match self.guard.as_ref() {
            Some(guard) => guard.signal(signal),
            None => Err(HarnessError::Missing("kea-dhcp4 was stopped".into())),
        }
    }

    /// Polls the log until `needle` appears.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let path = self.log_path();
        crate::wait_until(timeout, &format!("`{needle}` in the kea log"), || {
            log_since(&path, 0).contains(needle)
        })
    }

    /// kea-dhcp4's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().and_then(ChildGuard::pid)
    }

    pub fn options(&self) -> &KeaOptions {
        &self.opts
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.conf", self.opts.family.program()))
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("kea.sock")
    }

    pub fn lease_file(&self) -> PathBuf {
        self.dir.path().join(self.opts.family.lease_file())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("kea.log")
    }

    /// The Kea log so far.
    pub fn log(&self) -> String {
        log_since(&self.log_path(), 0)
    }

    /// The memfile's current leases: the last row per address, keyed by the
    /// CSV header (v4: `address`, `hwaddr`, `client_id`, `valid_lifetime`,
    /// `expire`, `subnet_id`, `fqdn_fwd`, `fqdn_rev`, `hostname`, `state`,
    /// ...; v6: `address`, `duid`, `valid_lifetime`, `expire`, `subnet_id`,
    /// `pref_lifetime`, `lease_type`, `iaid`, `prefix_len`, `fqdn_fwd`,
    /// `fqdn_rev`, `hostname`, `hwaddr`, `state`, ...). Rows with
    /// `valid_lifetime` 0 (released, or reclaimed and flushed) are dropped.
    pub fn leases(&self) -> Result<Vec<HashMap<String, String>>> {
        let path = self.lease_file();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("reading {}", path.display()), e))?;
        Ok(parse_lease_csv(&text))
    }

    /// Runs `kea-dhcp4 -t` on `config` at `place` (interfaces are checked
    /// against that namespace) and returns (success, output).
    pub fn check_config(place: &Place, config: &Value) -> Result<(bool, String)> {
        let dir = tempfile::Builder::new()
            .prefix("leasedns-kea-check-")
            .tempdir()
            .map_err(|e| HarnessError::io("creating temp dir", e))?;
        // Kea 3.0 checks that the control socket, lease file and log are in
        // its directories: those of the configuration's own directory (the
        // control socket's, as `config_json` puts everything in one), else
        // the check's.
        let family = if config.get("Dhcp6").is_some() {
            Family::V6
        } else {
            Family::V4
        };
        let own = config
            .pointer(&format!(
                "/{}/control-socket/socket-name",
                family.config_key()
            ))
            .and_then(Value::as_str)
            .and_then(|socket| Path::new(socket).parent().map(Path::to_path_buf))
            .filter(|d| d.is_dir());
        let private = own.as_deref().unwrap_or(dir.path());
        let path = dir.path().join(format!("{}.conf", family.program()));
        let mut config = config.clone();
        link_hooks(&mut config, private)?;
        std::fs::write(&path, config.to_string())
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))?;
        let mut cmd = place.command(family.program())?;
        cmd.arg("-t").arg(&path);
        private_dirs(&mut cmd, private);
        let out = run(cmd, None, COMMAND_TIMEOUT)?;
        Ok((out.success(), out.combined()))
    }
}

fn log_since(path: &Path, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// One request per connection: Kea 2.2 answers and closes the socket.
/// One command over a Kea control socket (kea-dhcp4, kea-dhcp-ddns: one
/// request per connection), returning the whole JSON reply.
pub fn send_command(socket: &Path, command: &Value) -> Result<Value> {
    let context = || format!("kea control socket {}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(|e| HarnessError::io(context(), e))?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .map_err(|e| HarnessError::io(context(), e))?;
    stream
        .write_all(command.to_string().as_bytes())
        .map_err(|e| HarnessError::io(context(), e))?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| HarnessError::io(context(), e))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        // Stop as soon as the reply is complete JSON, in case a future Kea
        // keeps the connection open.
        if let Ok(value) = serde_json::from_slice::<Value>(&reply) {
            return Ok(value);
        }
    }
    serde_json::from_slice(&reply).map_err(|e| {
        HarnessError::parse(
            context(),
            format!("{e}: {}", String::from_utf8_lossy(&reply)),
        )
    })
}

fn parse_lease_csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    let mut by_address: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let row: HashMap<String, String> = columns
            .iter()
            .zip(line.split(','))
            .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
            .collect();
        let address = row.get("address").cloned().unwrap_or_default();
        by_address.retain(|(a, _)| *a != address);
        by_address.push((address, row));
    }
    by_address
        .into_iter()
        .map(|(_, row)| row)
        .filter(|row| row.get("valid_lifetime").is_some_and(|v| v != "0"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_csv_keeps_last_row_and_drops_released() {
        let text = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
                    10.1.1.1,aa:bb,,600,100,1,0,0,one,0,\n\
                    10.1.1.2,aa:cc,,600,100,1,0,0,two,0,\n\
                    10.1.1.1,aa:bb,,600,200,1,1,1,one.lan.example.,0,\n\
                    10.1.1.2,aa:cc,,0,200,1,0,0,two,0,\n";
        let leases = parse_lease_csv(text);
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0]["address"], "10.1.1.1");
        assert_eq!(leases[0]["expire"], "200");
        assert_eq!(leases[0]["hostname"], "one.lan.example.");
    }

    #[test]
    fn extras_override_generated_keys() {
        let mut opts = KeaOptions {
            family: Family::V4,
            interface: "veth0".into(),
            subnet: "10.9.0.0/16".into(),
            pool: "10.9.1.1 - 10.9.1.9".into(),
            subnet_id: 7,
            valid_lifetime: 60,
            persist: false,
            severity: "DEBUG".into(),
            debuglevel: 99,
            multi_threading: Some(4),
            hooks: vec![(PathBuf::from("/x/lib.so"), json!({ "a": 1 }))],
            expired_leases_processing: Some(json!({ "reclaim-timer-wait-time": 1 })),
            dhcp4_extra: Map::new(),
            subnet_extra: Map::new(),
            environment: Vec::new(),
        };
        opts.dhcp4_extra.insert("valid-lifetime".into(), json!(90));
        opts.subnet_extra.insert("reservations".into(), json!([]));
        let config = opts.config_json(Path::new("/d"));
        let dhcp4 = &config["Dhcp4"];
        assert_eq!(dhcp4["valid-lifetime"], 90);
        assert_eq!(dhcp4["subnet4"][0]["id"], 7);
        assert_eq!(dhcp4["subnet4"][0]["reservations"], json!([]));
        assert_eq!(dhcp4["multi-threading"]["thread-pool-size"], 4);
        assert_eq!(dhcp4["hooks-libraries"][0]["library"], "/x/lib.so");
        assert_eq!(dhcp4["hooks-libraries"][0]["parameters"]["a"], 1);
        assert_eq!(dhcp4["control-socket"]["socket-name"], "/d/kea.sock");
        assert_eq!(dhcp4["lease-database"]["persist"], false);
        assert_eq!(
            dhcp4["expired-leases-processing"]["reclaim-timer-wait-time"],
            1
        );
    }

    #[test]
    fn hook_libraries_are_linked_into_the_hooks_directory() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("elsewhere/libdhcp_x.so");
        let mut config = json!({ "Dhcp4": { "hooks-libraries": [
            { "library": path_str(&lib), "parameters": { "a": 1 } }
        ] } });
        link_hooks(&mut config, dir.path()).unwrap();
        let link = dir.path().join("hooks/libdhcp_x.so");
        assert_eq!(
            config["Dhcp4"]["hooks-libraries"][0]["library"],
            path_str(&link)
        );
        assert_eq!(config["Dhcp4"]["hooks-libraries"][0]["parameters"]["a"], 1);
        assert_eq!(std::fs::read_link(&link).unwrap(), lib);
        // Linking again (a reconfiguration) keeps the link.
        link_hooks(&mut config, dir.path()).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), lib);
    }
}
