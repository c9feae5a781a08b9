//! The live demo behind `./build/demo`: knotd and kea-dhcp4 with the
//! leasedns hook in a private server namespace (knotd with mod-querystats),
//! real DHCP clients in a client namespace, and the records they get, read
//! back with real DNS queries while an operator watches; then the same hook
//! in kea-dhcp6 (namespaces with IPv6 and a knotd with an ip6.arpa zone of
//! their own) giving a `dhclient -6` its AAAA and PTR; at the end the Knot
//! module's view of the DHCPv4 traffic, from its /metrics endpoint.
//!
//! Each step of the story is one `section_*` function taking the running
//! [`Demo`]; a new step is one more function and one more call in [`story`].
//! Every step checks what it shows: a record that never appears, a removal
//! that never happens, a missing statistic or metric, a daemon that does not
//! start or dies, each ends the demo with an error naming the step, and the
//! process exits non-zero. Every daemon and client is a kill-on-drop guard,
//! and errors are returned (never `process::exit`), so any way out of [`run`]
//! cleans up.

use harness::{
    Dhclient, Dhclient6, Dhclient6Options, DhclientOptions, Dns, Fqdn6, HarnessError, Kea,
    KeaOptions, Knot, KnotOptions, Lease, Netns, Perfdhcp, PerfdhcpReport, reverse_name, wait_for,
    wait_until,
};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const FORWARD_ZONE: &str = "lan.example.";
const KEY_NAME: &str = "leasedns-demo.";
const GENERATED_PREFIX: &str = "host";
/// How long any record may take to appear or vanish before the demo fails.
const RECORDS_TIMEOUT: Duration = Duration::from_secs(30);
const LEASE_TIMEOUT: Duration = Duration::from_secs(30);
const BULK_CLIENTS: u32 = 500;
/// Exchanges per second: fast enough to be a burst, slow enough that a
/// 2-core machine answers every one.
const BULK_RATE: u32 = 250;
/// Client FQDN option (81) with flags S|E and an empty name: "please name
/// me and update DNS for me" (RFC 4702); the hook gives each such client
/// its own generated name. An option 12 would be the same name for all 500
/// simulated clients.
const BULK_FQDN_OPTION: [u8; 3] = [0x05, 0, 0];
const LOG_LINES_SHOWN: usize = 8;
const LOG_LINE_MAX: usize = 240;

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The system did something other than what the demo shows.
    #[error("{0}")]
    Unexpected(String),
    #[error("{error}\n{logs}")]
    WithLogs { error: Box<DemoError>, logs: String },
}

type Result<T> = std::result::Result<T, DemoError>;

fn main() -> ExitCode {
    let clock = Clock::start();
    match run(&clock) {
        Ok(()) => {
            clock.say("demo finished; namespaces, daemons and files removed");
            ExitCode::SUCCESS
        }
        Err(error) => {
            // Printed after run() returned, i.e. after every guard has
            // dropped: the daemons' logs, then the FAILED line naming the
            // step, so that it is not buried under the guards' output.
            let error = match error {
                DemoError::WithLogs { error, logs } => {
                    eprintln!("\n{logs}\n");
                    *error
                }
                error => error,
            };
            eprintln!(
                "demo: FAILED in step '{}' at {:.3} s: {error}",
                clock.step(),
                clock.elapsed()
            );
            ExitCode::FAILURE
        }
    }
}

fn run(clock: &Clock) -> Result<()> {
    let mut demo = section_start_servers(clock)?;
    let told = story(&demo).and_then(|()| section_stop(&mut demo));
    // The daemons' logs go with their guards: quote them while they exist.
    told.map_err(|error| DemoError::WithLogs {
        error: Box::new(error),
        logs: failure_logs(&mut demo),
    })
}

/// The demo's story, in order, once the servers run.
fn story(demo: &Demo) -> Result<()> {
    let mut laptop = section_named_client(demo)?;
    let _unnamed = section_unnamed_client(demo)?;
    let _printer = section_conflicting_client(demo)?;
    section_many_clients(demo)?;
    section_release(demo, &mut laptop)?;
    section_dhcpv6(demo.clock)?;
    section_hook_statistics(demo)?;
    section_hook_log(demo)?;
    section_knot_module_metrics(demo)?;
    Ok(())
}

/// The end of the story: both daemons are still up, and kea-dhcp4 stops
/// cleanly (SIGTERM, the hook's `unload` stops its threads and flushes the
/// journal); a crash at unload would otherwise go unseen.
fn section_stop(demo: &mut Demo) -> Result<()> {
    demo.clock
        .heading("stopping kea-dhcp4 (SIGTERM: the hook unloads)");
    demo.knot.check_running()?;
    demo.kea.check_running()?;
    let status = demo.kea.stop()?;
    if !status.is_some_and(|s| s.success()) {
        return Err(DemoError::Unexpected(format!(
            "kea-dhcp4 did not exit cleanly on SIGTERM: {}",
            status.map_or("no status".to_owned(), |s| s.to_string())
        )));
    }
    if !demo.kea.log().contains("leasedns unloaded") {
        return Err(DemoError::Unexpected(format!(
            "kea-dhcp4 exited without the hook logging 'leasedns unloaded' to {}",
            demo.kea.log_path().display()
        )));
    }
    demo.clock
        .say("kea-dhcp4 exited 0 after the hook logged 'leasedns unloaded'");
    Ok(())
}

const FAILURE_LOG_LINES: usize = 6;

/// Whether each daemon still runs, the last hook lines of Kea's log and the
/// last lines of knotd's.
fn failure_logs(demo: &mut Demo) -> String {
    // The log tails follow below, so an exit is told by its status only.
    let state = |running: harness::Result<()>| match running {
        Ok(()) => "running".to_owned(),
        Err(HarnessError::DaemonExited { status, .. }) => format!("exited ({status})"),
        Err(e) => e.to_string(),
    };
    let daemons = format!(
        "knotd: {}\nkea-dhcp4: {}",
        state(demo.knot.check_running()),
        state(demo.kea.check_running())
    );
    let last = |lines: Vec<String>| {
        if lines.is_empty() {
            return "(none)".to_owned();
        }
        lines[lines.len().saturating_sub(FAILURE_LOG_LINES)..].join("\n  ")
    };
    let hook = demo
        .kea
        .log()
        .lines()
        .filter(|l| l.contains("LEASEDNS"))
        .map(shorten)
        .collect();
    let knot = demo
        .knot
        .log()
        .lines()
        .map(|l| l.trim().to_owned())
        .collect();
    format!(
        "{daemons}\nlast LEASEDNS lines of Kea's log:\n  {}\nlast lines of knotd's log:\n  {}",
        last(hook),
        last(knot)
    )
}

/// Elapsed-time stamps for the narrative, and the step being told (the
/// last heading), which a failure names.
struct Clock {
    started: Instant,
    step: RefCell<String>,
}

impl Clock {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            step: RefCell::new("start-up".to_owned()),
        }
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn step(&self) -> String {
        self.step.borrow().clone()
    }

    fn say(&self, text: &str) {
        println!("[{:7.3}s] {text}", self.elapsed());
    }

    /// A continuation line under the last stamped one.
    fn detail(&self, text: &str) {
        println!("            {text}");
    }

    fn heading(&self, text: &str) {
        text.clone_into(&mut self.step.borrow_mut());
        println!();
        self.say(&format!("== {text}"));
    }
}

/// Everything running. Field order is drop order: Kea stops (and the hook
/// unloads) while Knot and the namespaces still exist; the files go last.
struct Demo<'c> {
    kea: Kea,
    knot: Knot,
    net: Netns,
    /// Holds the hook's journal; only dropped, after Kea.
    _files: tempfile::TempDir,
    clock: &'c Clock,
    /// Lease changes the clients caused so far, one per add or removal the
    /// hook should submit.
    changes_caused: Cell<usize>,
}

impl Demo<'_> {
    fn dns(&self) -> Dns {
        self.knot.dns()
    }

    fn reverse_zone(&self) -> String {
        self.net.reverse_zone()
    }

    /// The hook's `leasedns.*` statistics from Kea's control socket, sorted
    /// by name.
    fn hook_statistics(&self) -> Result<Vec<(String, i64)>> {
        let all = self.kea.command_ok("statistic-get-all", None)?;
        let Value::Object(map) = all else {
            return Err(DemoError::Unexpected(format!(
                "statistic-get-all returned no map: {all}"
            )));
        };
        let mut stats = Vec::new();
        for (name, samples) in map.iter().filter(|(name, _)| name.starts_with("leasedns.")) {
            // Each statistic is a list of [value, timestamp] samples, newest first.
            let Some(value) = samples[0][0].as_i64() else {
                return Err(DemoError::Unexpected(format!(
                    "statistic {name} has no integer value: {samples}"
                )));
            };
            stats.push((name.clone(), value));
        }
        stats.sort();
        Ok(stats)
    }

    /// One of the hook's statistics; the hook registers all of them when
    /// Kea has configured it, so a missing one is an error.
    fn hook_statistic(&self, name: &str) -> Result<i64> {
        statistic(&self.hook_statistics()?, name)
    }

    /// Starts dhclient in the client namespace and waits for its lease,
    /// which must come from the demo's kea-dhcp4 with a lease time.
    fn obtain_lease(&self, label: &str, opts: &DhclientOptions) -> Result<(Dhclient, Lease)> {
        let mut client = Dhclient::new(self.net.client(), self.net.client_iface(), opts)?;
        let lease = client.obtain(LEASE_TIMEOUT)?;
        self.changes_caused.set(self.changes_caused.get() + 1);
        let (Some(lifetime), Some(server)) = (lease.lifetime, lease.server) else {
            return Err(DemoError::Unexpected(format!(
                "{label}: dhclient's lease of {} has no lease time or no server identifier: {lease:?}",
                lease.address
            )));
        };
        if server != self.net.server_addr() {
            return Err(DemoError::Unexpected(format!(
                "{label}: lease {} came from {server}, not from kea-dhcp4 on {}",
                lease.address,
                self.net.server_addr()
            )));
        }
        self.clock.say(&format!(
            "{label}: DHCPACK {} (lease {lifetime} s, from {server})",
            lease.address
        ));
        Ok((client, lease))
    }

    /// Polls this demo's knotd until each expected record is there or gone
    /// (see [`watch_records`]).
    fn watch_records(
        &self,
        since: Instant,
        expected: &[Expected],
        presence: Presence,
    ) -> Result<()> {
        watch_records(self.clock, &self.dns(), since, expected, presence)
    }

    /// (A, PTR, DHCID) counts of the forward and reverse zones by AXFR.
    fn zone_counts(&self) -> Result<ZoneCounts> {
        let dns = self.dns();
        let forward = dns.axfr(FORWARD_ZONE)?;
        let reverse = dns.axfr(&self.reverse_zone())?;
        let count = |records: &[harness::ZoneRecord], rtype: &str| {
            records.iter().filter(|r| r.rtype == rtype).count()
        };
        Ok(ZoneCounts {
            a: count(&forward, "A"),
            ptr: count(&reverse, "PTR"),
            dhcid: count(&forward, "DHCID") + count(&reverse, "DHCID"),
        })
    }
}

/// `name`'s value in a `hook_statistics` snapshot.
fn statistic(stats: &[(String, i64)], name: &str) -> Result<i64> {
    stats
        .iter()
        .find_map(|(n, v)| (n == name).then_some(*v))
        .ok_or_else(|| {
            DemoError::Unexpected(format!(
                "Kea has no statistic {name} (the hook registers it when configured)"
            ))
        })
}

#[derive(Clone, Copy, Debug)]
enum Presence {
    Appears,
    Vanishes,
}

/// One record the demo waits for; `rdata` None accepts any value.
struct Expected {
    name: String,
    rtype: &'static str,
    rdata: Option<String>,
}

impl Expected {
    fn new(name: &str, rtype: &'static str, rdata: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            rtype,
            rdata,
        }
    }

    fn matches(&self, rdata: &str) -> bool {
        self.rdata
            .as_deref()
            .is_none_or(|want| want.eq_ignore_ascii_case(rdata))
    }
}

/// Polls with real DNS queries until each expected record is there
/// (`Presence::Appears`) or gone (`Presence::Vanishes`), printing each as it
/// happens with the time since `since`.
fn watch_records(
    clock: &Clock,
    dns: &Dns,
    since: Instant,
    expected: &[Expected],
    presence: Presence,
) -> Result<()> {
    let mut pending: Vec<(&Expected, Vec<String>)> =
        expected.iter().map(|e| (e, Vec::new())).collect();
    let outcome = wait_until(RECORDS_TIMEOUT, "DNS records", || {
        pending.retain_mut(|(want, seen)| {
            // A failed kdig is retried at the next poll; the timeout
            // message shows the last answer.
            let Ok(answer) = dns.query(&want.name, want.rtype) else {
                return true;
            };
            let done = match presence {
                Presence::Appears => answer.iter().any(|rdata| want.matches(rdata)),
                Presence::Vanishes => answer.is_empty(),
            };
            if done {
                let after = since.elapsed().as_secs_f64();
                match presence {
                    Presence::Appears => clock.say(&format!(
                        "  {} {} {}   (+{after:.3} s)",
                        want.name,
                        want.rtype,
                        answer.join(" ")
                    )),
                    Presence::Vanishes => clock.say(&format!(
                        "  {} {} gone   (+{after:.3} s)",
                        want.name, want.rtype
                    )),
                }
            }
            *seen = answer;
            !done
        });
        pending.is_empty()
    });
    if outcome.is_ok() {
        return Ok(());
    }
    let missing: Vec<String> = pending
        .iter()
        .map(|(want, seen)| {
            format!(
                "{} {} {} (last answer: {seen:?})",
                want.name,
                want.rtype,
                want.rdata.as_deref().unwrap_or("<any>")
            )
        })
        .collect();
    let verb = match presence {
        Presence::Appears => "did not appear",
        Presence::Vanishes => "did not disappear",
    };
    Err(DemoError::Unexpected(format!(
        "records {verb} within {} s: {}",
        RECORDS_TIMEOUT.as_secs(),
        missing.join("; ")
    )))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ZoneCounts {
    a: usize,
    ptr: usize,
    dhcid: usize,
}

/// The records a lease with `fqdn` should produce: A or AAAA, PTR in
/// in-addr.arpa or ip6.arpa, and DHCID at both names.
fn lease_records(fqdn: &str, addr: impl Into<IpAddr>) -> Vec<Expected> {
    let addr = addr.into();
    let ptr = reverse_name(addr);
    let rtype = if addr.is_ipv4() { "A" } else { "AAAA" };
    vec![
        Expected::new(fqdn, rtype, Some(addr.to_string())),
        Expected::new(fqdn, "DHCID", None),
        Expected::new(&ptr, "PTR", Some(fqdn.to_owned())),
        Expected::new(&ptr, "DHCID", None),
    ]
}

/// The name the hook generates for a client that sent none.
fn generated_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{GENERATED_PREFIX}-{a}-{b}-{c}-{d}.{FORWARD_ZONE}")
}

fn journal_dir(files: &Path) -> PathBuf {
    files.join("leasedns-journal")
}

fn printer_addr(net: &Netns) -> Ipv4Addr {
    net.addr(0, 250)
}

/// Where mod-querystats serves Prometheus, inside the server namespace.
const METRICS_PORT: u16 = 10053;

/// Knot's zones (the forward zone with a static `printer`, the subnet's
/// reverse zone with its PTR) and mod-querystats as a global module with its
/// metrics endpoint on the namespace's loopback.
fn knot_options(net: &Netns, module: &Path) -> KnotOptions {
    let mut opts = KnotOptions::new(FORWARD_ZONE);
    opts.key_name = KEY_NAME.to_owned();
    opts.reverse_zone = Some(net.reverse_zone());
    let printer = printer_addr(net);
    let [_, _, c, d] = printer.octets();
    opts.forward_records = vec![format!("printer A {printer}")];
    opts.reverse_records = vec![format!("{d}.{c} PTR printer.{FORWARD_ZONE}")];
    opts.conf_extra = format!(
        "module:\n  - id: mod-querystats\n    file: \"{}\"\n\nmod-querystats:\n  - id: default\n    metrics-listen: 127.0.0.1@{METRICS_PORT}\n    top-sample: 1\n\n",
        module.display()
    );
    opts.template_extra = vec!["global-module: mod-querystats/default".into()];
    opts
}

/// The hook's parameters, named as in a kea-dhcp-ddns configuration.
/// kea-dhcp4 with the hook and Kea's own DDNS left off (its default,
/// `dhcp-ddns.enable-updates` false). The harness's `kea-dhcp4` logger at
/// INFO is the parent of the hook's `kea-dhcp4.leasedns`, so the hook's INFO
/// lines land in Kea's log.
fn kea_options(net: &Netns, hook: &Path, parameters: Value) -> KeaOptions {
    let mut opts = KeaOptions::for_netns(net)
        .with_ddns_naming(FORWARD_ZONE)
        .with_hook(hook, parameters);
    opts.severity = "INFO".to_owned();
    opts
}

fn section_start_servers(clock: &Clock) -> Result<Demo<'_>> {
    clock.heading("starting knotd and kea-dhcp4 (with libdhcp_leasedns.so) in a private namespace");
    let hook = harness::hook_library()?;
    let files = tempfile::Builder::new()
        .prefix("leasedns-demo-")
        .tempdir()
        .map_err(|source| DemoError::Io {
            what: "creating the demo directory".into(),
            source,
        })?;
    let net = Netns::new().map_err(|e| {
        DemoError::Unexpected(format!(
            "cannot create network namespaces (the demo needs root): {e}"
        ))
    })?;
    clock.say(&format!(
        "namespaces {} (servers, {}) and {} (clients, {}), subnet {}",
        net.server_ns(),
        net.server_addr(),
        net.client_ns(),
        net.client_addr(),
        net.subnet()
    ));
    let module = harness::knot_module_library()?;
    let knot = Knot::start(net.server(), &knot_options(&net, &module))?;
    clock.say(&format!(
        "knotd on {}:{} serving {FORWARD_ZONE} and {}, static printer.{FORWARD_ZONE} A {}",
        knot.addr(),
        knot.port(),
        net.reverse_zone(),
        printer_addr(&net)
    ));
    wait_for_metrics_endpoint(&net, &knot)?;
    clock.detail(&format!(
        "knotd loaded mod-querystats ({}), Prometheus endpoint 127.0.0.1:{METRICS_PORT} in the server namespace answers",
        module.display()
    ));
    let parameters = knot.hook_parameters(&journal_dir(files.path()));
    let kea = Kea::start(net.server(), kea_options(&net, &hook, parameters))?;
    check_hook_loaded(&kea, &hook, "kea-dhcp4")?;
    clock.say(&format!(
        "kea-dhcp4 on {} serving pool {}, hook {}",
        net.server_iface(),
        kea.options().pool,
        hook.display()
    ));
    clock.detail(&format!(
        "updates signed with TSIG {} (hmac-sha256), journal {}",
        knot.key().name,
        journal_dir(files.path()).display()
    ));
    Ok(Demo {
        kea,
        knot,
        net,
        _files: files,
        clock,
        changes_caused: Cell::new(0),
    })
}

/// mod-querystats serves `/metrics` once knotd has loaded it; knotd answers
/// queries before the endpoint's thread listens, so this polls.
fn wait_for_metrics_endpoint(net: &Netns, knot: &Knot) -> Result<()> {
    let mut last = String::new();
    let up = wait_until(RECORDS_TIMEOUT, "mod-querystats' /metrics endpoint", || {
        match scrape_in_namespace(net.server_ns(), "/metrics") {
            Ok(body) if body.contains("knot_querystats_") => true,
            Ok(body) => {
                last = format!("no knot_querystats_ metric in:\n{body}");
                false
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        }
    });
    if up.is_err() {
        return Err(DemoError::Unexpected(format!(
            "mod-querystats' endpoint 127.0.0.1:{METRICS_PORT} did not answer within {} s: {last}\nlast lines of knotd's log:\n{}",
            RECORDS_TIMEOUT.as_secs(),
            last_lines(&knot.log(), FAILURE_LOG_LINES)
        )));
    }
    Ok(())
}

/// Kea logs `HOOKS_LIBRARY_LOADED` with the path of each hook library it
/// loaded, before `DHCP4_STARTED`/`DHCP6_STARTED` (which `Kea::start`
/// waited for). Kea
/// 2.6.3+ loads hooks only from its hooks directory, where the harness links
/// the library by its file name: the logged path ends in `hooks/<file>`.
fn check_hook_loaded(kea: &Kea, hook: &Path, daemon: &str) -> Result<()> {
    let log = kea.log();
    let file = hook
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = format!("/hooks/{file}");
    if log
        .lines()
        .any(|l| l.contains("HOOKS_LIBRARY_LOADED") && l.contains(&path))
    {
        return Ok(());
    }
    Err(DemoError::Unexpected(format!(
        "{daemon} started without logging HOOKS_LIBRARY_LOADED for {path}; last lines of its log:\n{}",
        last_lines(&log, FAILURE_LOG_LINES)
    )))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A client that says who it is: its name is published as sent.
fn section_named_client(demo: &Demo) -> Result<Dhclient> {
    demo.clock.heading("dhclient sending host-name \"laptop\"");
    let opts = DhclientOptions {
        hostname: Some("laptop".into()),
        client_id: Some(b"\0demo-laptop".to_vec()),
        ..DhclientOptions::default()
    };
    let (client, lease) = demo.obtain_lease("laptop", &opts)?;
    let bound = Instant::now();
    let fqdn = format!("laptop.{FORWARD_ZONE}");
    demo.watch_records(
        bound,
        &lease_records(&fqdn, lease.address),
        Presence::Appears,
    )?;
    demo.clock.detail(&format!(
        "all 4 records visible {:.3} s after the ACK",
        bound.elapsed().as_secs_f64()
    ));
    Ok(client)
}

/// A client that sends no name gets one generated from its address.
fn section_unnamed_client(demo: &Demo) -> Result<Dhclient> {
    demo.clock.heading("dhclient sending no name");
    let opts = DhclientOptions {
        client_id: Some(b"\0demo-anonymous".to_vec()),
        ..DhclientOptions::default()
    };
    let (client, lease) = demo.obtain_lease("anonymous", &opts)?;
    let bound = Instant::now();
    let fqdn = generated_name(lease.address);
    demo.clock.detail(&format!(
        "no name sent; ddns-replace-client-name when-not-present -> {fqdn}"
    ));
    demo.watch_records(
        bound,
        &lease_records(&fqdn, lease.address),
        Presence::Appears,
    )?;
    Ok(client)
}

/// A client claiming a name a static record owns: RFC 4703 says no.
fn section_conflicting_client(demo: &Demo) -> Result<Dhclient> {
    demo.clock
        .heading("dhclient sending host-name \"printer\" (a static record owns that name)");
    let conflicts_before = demo.hook_statistic("leasedns.updates-conflict")?;
    let opts = DhclientOptions {
        hostname: Some("printer".into()),
        client_id: Some(b"\0demo-impostor".to_vec()),
        ..DhclientOptions::default()
    };
    let (client, lease) = demo.obtain_lease("impostor", &opts)?;
    let bound = Instant::now();
    // The hook publishes its counters once a second.
    let conflicts = wait_for(
        RECORDS_TIMEOUT,
        "leasedns.updates-conflict to count the refused add",
        || {
            demo.hook_statistic("leasedns.updates-conflict")
                .ok()
                .filter(|n| *n > conflicts_before)
        },
    )?;
    demo.clock.say(&format!(
        "  hook refused the add (+{:.3} s): leasedns.updates-conflict {conflicts_before} -> {conflicts}",
        bound.elapsed().as_secs_f64()
    ));
    let dns = demo.dns();
    let printer = format!("printer.{FORWARD_ZONE}");
    let a = dns.query(&printer, "A")?;
    let dhcid = dns.query(&printer, "DHCID")?;
    let ptr = dns.query(&reverse_name(lease.address.into()), "PTR")?;
    demo.clock.detail(&format!(
        "{printer} A {} (static, untouched); DHCID: {}; PTR of {}: {}",
        a.join(" "),
        list_or_none(&dhcid),
        lease.address,
        list_or_none(&ptr)
    ));
    if a != [printer_addr(&demo.net).to_string()] || !dhcid.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the static record changed: {printer} A {a:?}, DHCID {dhcid:?}"
        )));
    }
    // The reverse update follows a successful forward one only.
    if !ptr.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the refused client got a PTR anyway: {} PTR {ptr:?}",
            reverse_name(lease.address.into())
        )));
    }
    Ok(client)
}

fn list_or_none(values: &[String]) -> String {
    if values.is_empty() {
        "none".to_owned()
    } else {
        values.join(" ")
    }
}

/// A burst of clients; the zones must end up with a record pair for each.
/// The zones are sampled while perfdhcp runs, so the time to "all records
/// visible" is measured, not bounded by perfdhcp's own exit wait.
fn section_many_clients(demo: &Demo) -> Result<()> {
    demo.clock.heading(&format!(
        "perfdhcp: {BULK_CLIENTS} clients at {BULK_RATE}/s, each asking to be named (option 81, empty name)"
    ));
    let before = demo.zone_counts()?;
    let leases_before = demo.kea.leases()?.len();
    let perfdhcp =
        Perfdhcp::new(BULK_RATE, BULK_CLIENTS, BULK_CLIENTS).option(81, &BULK_FQDN_OPTION);
    let (place, iface) = (demo.net.client(), demo.net.client_iface().to_owned());
    let started = Instant::now();
    let mut sampler = ZoneSampler::new(demo, before, started);
    let report = std::thread::scope(|scope| {
        let run = scope.spawn(|| perfdhcp.run(&place, &iface));
        while !run.is_finished() {
            sampler.sample();
            std::thread::sleep(ZONE_SAMPLE_INTERVAL);
        }
        run.join()
            .map_err(|_| DemoError::Unexpected("the perfdhcp thread panicked".into()))
    })??;
    let leases = demo.kea.leases()?;
    let granted = leases.len().saturating_sub(leases_before);
    print_perfdhcp(demo.clock, &report, granted, started);
    // BULK_RATE is chosen so that Kea answers every exchange; a loaded
    // machine may still lose a few packets (perfdhcp then exits 3), which
    // the records check below covers (every granted lease must appear).
    // Losing more than 5 % means the burst the heading announces did not
    // happen.
    let enough = granted * 20 >= BULK_CLIENTS as usize * 19;
    if !matches!(report.exit_code, Some(0) | Some(3)) || !enough {
        return Err(DemoError::Unexpected(format!(
            "{granted} of {BULK_CLIENTS} clients got a lease; perfdhcp exit code {:?}, {} exchanges unanswered:\n{}",
            report.exit_code,
            report.total_drops(),
            report.output
        )));
    }
    let complete = |added: ZoneCounts| added.a >= granted && added.ptr >= granted;
    let deadline = Instant::now() + RECORDS_TIMEOUT;
    let reached = loop {
        if let Some(at) = sampler.first_reaching(complete) {
            break at;
        }
        if Instant::now() >= deadline {
            let last = sampler.last();
            return Err(DemoError::Unexpected(format!(
                "{} s after perfdhcp ended the zones hold {} of {granted} A and {} of {granted} PTR records of the burst",
                RECORDS_TIMEOUT.as_secs(),
                last.a,
                last.ptr
            )));
        }
        std::thread::sleep(ZONE_SAMPLE_INTERVAL);
        sampler.sample();
    };
    let last = sampler.last();
    demo.clock.say(&format!(
        "  zones hold all {granted} A + {granted} PTR (+{} DHCID) of the burst: complete {reached:.2} s after perfdhcp started",
        last.dhcid
    ));
    demo.changes_caused.set(demo.changes_caused.get() + granted);
    let example = leases
        .iter()
        .rev()
        .find_map(|l| {
            let name = l.get("hostname")?;
            name.starts_with(GENERATED_PREFIX)
                .then(|| (name.clone(), l.get("address").cloned().unwrap_or_default()))
        })
        .ok_or_else(|| {
            DemoError::Unexpected(format!(
                "no lease in Kea's lease file has a generated name ({GENERATED_PREFIX}-...)"
            ))
        })?;
    let (name, address) = example;
    let answer = demo.dns().query(&name, "A")?;
    if answer != [address.as_str()] {
        return Err(DemoError::Unexpected(format!(
            "{name} (leased {address}) answers A {answer:?}"
        )));
    }
    demo.clock.detail(&format!("e.g. {name} A {address}"));
    Ok(())
}

const ZONE_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Records added to the zones since a baseline, sampled by AXFR, with a
/// progress line once a second.
struct ZoneSampler<'d, 'c> {
    demo: &'d Demo<'c>,
    baseline: ZoneCounts,
    started: Instant,
    /// (seconds since `started`, records added by then).
    samples: Vec<(f64, ZoneCounts)>,
    last_progress: Instant,
}

impl<'d, 'c> ZoneSampler<'d, 'c> {
    fn new(demo: &'d Demo<'c>, baseline: ZoneCounts, started: Instant) -> Self {
        Self {
            demo,
            baseline,
            started,
            samples: Vec::new(),
            last_progress: started,
        }
    }

    fn sample(&mut self) {
        // A failed transfer is just a missing sample.
        let Ok(now) = self.demo.zone_counts() else {
            return;
        };
        let added = ZoneCounts {
            a: now.a.saturating_sub(self.baseline.a),
            ptr: now.ptr.saturating_sub(self.baseline.ptr),
            dhcid: now.dhcid.saturating_sub(self.baseline.dhcid),
        };
        let at = self.started.elapsed().as_secs_f64();
        if self.last_progress.elapsed() >= PROGRESS_INTERVAL {
            self.last_progress = Instant::now();
            self.demo.clock.say(&format!(
                "  +{at:.1} s: {} A, {} PTR, {} DHCID in the zones so far",
                added.a, added.ptr, added.dhcid
            ));
        }
        self.samples.push((at, added));
    }

    fn first_reaching(&self, complete: impl Fn(ZoneCounts) -> bool) -> Option<f64> {
        self.samples
            .iter()
            .find_map(|(at, added)| complete(*added).then_some(*at))
    }

    fn last(&self) -> ZoneCounts {
        self.samples.last().map_or(
            ZoneCounts {
                a: 0,
                ptr: 0,
                dhcid: 0,
            },
            |(_, added)| *added,
        )
    }
}

fn print_perfdhcp(clock: &Clock, report: &PerfdhcpReport, granted: usize, started: Instant) {
    let count = |name: &str| {
        report
            .exchange(name)
            .map_or((0, 0), |e| (e.sent, e.received))
    };
    let (discovers, offers) = count("DISCOVER-OFFER");
    let (requests, acks) = count("REQUEST-ACK");
    clock.say(&format!(
        "  perfdhcp done in {:.3} s: {discovers} DISCOVER -> {offers} OFFER, {requests} REQUEST -> {acks} ACK; {granted} new leases in Kea",
        started.elapsed().as_secs_f64()
    ));
}

/// DHCPRELEASE: the client's records go away.
fn section_release(demo: &Demo, laptop: &mut Dhclient) -> Result<()> {
    demo.clock
        .heading("dhclient -r (laptop releases its lease)");
    let lease = laptop
        .lease()
        .ok_or_else(|| DemoError::Unexpected("laptop's dhclient has no lease on record".into()))?;
    let started = Instant::now();
    laptop.release()?;
    let released = Instant::now();
    demo.changes_caused.set(demo.changes_caused.get() + 1);
    demo.clock.say(&format!(
        "laptop: DHCPRELEASE {} (dhclient -r took {:.3} s; times below are from its exit)",
        lease.address,
        (released - started).as_secs_f64()
    ));
    let fqdn = format!("laptop.{FORWARD_ZONE}");
    demo.watch_records(
        released,
        &lease_records(&fqdn, lease.address),
        Presence::Vanishes,
    )
}

/// kea-dhcp6, knotd and a client namespace of their own: the v4 story's
/// namespaces have no IPv6, and its knotd no ip6.arpa zone. Field order is
/// drop order, as in [`Demo`].
struct Dhcp6Servers {
    kea: Kea,
    knot: Knot,
    net: Netns,
    _files: tempfile::TempDir,
}

/// DHCPv6: the same hook library in stock kea-dhcp6, with the same kind of
/// parameters (the reverse zone is an ip6.arpa one), publishes a
/// `dhclient -6` client's name: AAAA and DHCID at the name, PTR and DHCID
/// at the ip6.arpa name; a Release removes them.
fn section_dhcpv6(clock: &Clock) -> Result<()> {
    clock.heading("DHCPv6: kea-dhcp6 with the same hook, dhclient -6 sending \"laptop6\"");
    let mut v6 = start_dhcp6_servers(clock)?;
    let told = dhcpv6_story(clock, &mut v6);
    told.map_err(|error| DemoError::WithLogs {
        error: Box::new(error),
        logs: format!(
            "last lines of kea-dhcp6's log:\n{}\nlast lines of its knotd's log:\n{}",
            last_lines(&v6.kea.log(), FAILURE_LOG_LINES),
            last_lines(&v6.knot.log(), FAILURE_LOG_LINES)
        ),
    })
}

fn start_dhcp6_servers(clock: &Clock) -> Result<Dhcp6Servers> {
    let hook = harness::hook_library()?;
    let files = tempfile::Builder::new()
        .prefix("leasedns-demo6-")
        .tempdir()
        .map_err(|source| DemoError::Io {
            what: "creating the DHCPv6 demo directory".into(),
            source,
        })?;
    let net = Netns::new_v6()?;
    let mut knot_opts = KnotOptions::new(FORWARD_ZONE);
    knot_opts.key_name = KEY_NAME.to_owned();
    knot_opts.reverse_zone = Some(net.reverse_zone6());
    let knot = Knot::start(net.server(), &knot_opts)?;
    let parameters = knot.hook_parameters(&journal_dir(files.path()));
    let opts = KeaOptions::v6(&net)
        .with_ddns_naming(FORWARD_ZONE)
        .with_hook(&hook, parameters);
    let kea = Kea::start(net.server(), opts)?;
    check_hook_loaded(&kea, &hook, "kea-dhcp6")?;
    clock.say(&format!(
        "namespaces {} and {}, subnet {}; knotd serving {FORWARD_ZONE} and {}",
        net.server_ns(),
        net.client_ns(),
        net.subnet6(),
        net.reverse_zone6()
    ));
    clock.detail(&format!(
        "kea-dhcp6 on {} serving pool {}, hook {} (dhcp-ddns off)",
        net.server_iface(),
        kea.options().pool,
        hook.display()
    ));
    Ok(Dhcp6Servers {
        kea,
        knot,
        net,
        _files: files,
    })
}

fn dhcpv6_story(clock: &Clock, v6: &mut Dhcp6Servers) -> Result<()> {
    let opts = Dhclient6Options {
        fqdn: Some(Fqdn6::partial("laptop6")),
        ..Dhclient6Options::default()
    };
    let mut client = Dhclient6::new(v6.net.client(), v6.net.client_iface(), &opts)?;
    let lease = client.obtain(LEASE_TIMEOUT)?;
    let bound = Instant::now();
    clock.say(&format!(
        "laptop6: Reply {} (valid {} s, from kea-dhcp6)",
        lease.address,
        lease
            .valid_lifetime
            .map_or("?".to_owned(), |s| s.to_string())
    ));
    let fqdn = format!("laptop6.{FORWARD_ZONE}");
    let records = lease_records(&fqdn, lease.address);
    let dns = v6.knot.dns();
    watch_records(clock, &dns, bound, &records, Presence::Appears)?;
    clock.detail(&format!(
        "all 4 records visible {:.3} s after the Reply",
        bound.elapsed().as_secs_f64()
    ));
    client.release()?;
    let released = Instant::now();
    clock.say(&format!(
        "laptop6: Release {} (dhclient -6 -r)",
        lease.address
    ));
    watch_records(clock, &dns, released, &records, Presence::Vanishes)?;
    let status = v6.kea.stop()?;
    if !status.is_some_and(|s| s.success()) || !v6.kea.log().contains("leasedns unloaded") {
        return Err(DemoError::Unexpected(format!(
            "kea-dhcp6 did not stop cleanly on SIGTERM with the hook logging 'leasedns unloaded' (exit {status:?})"
        )));
    }
    clock.say("kea-dhcp6 exited 0 after the hook logged 'leasedns unloaded'");
    Ok(())
}

fn section_hook_statistics(demo: &Demo) -> Result<()> {
    demo.clock
        .heading("hook statistics (statistic-get-all on Kea's control socket)");
    let stats = settled_statistics(demo)?;
    let width = stats.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for pair in stats.chunks(2) {
        let line: Vec<String> = pair
            .iter()
            .map(|(name, value)| format!("{name:<width$} {value:>6}"))
            .collect();
        demo.clock.detail(&line.join("    "));
    }
    let mut errors = Vec::new();
    for name in ERROR_STATISTICS {
        let value = statistic(&stats, name)?;
        if value != 0 {
            errors.push(format!("{name} {value}"));
        }
    }
    if !errors.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the hook counted errors: {}",
            errors.join(", ")
        )));
    }
    Ok(())
}

/// Statistics that count changes lost or refused and journal trouble: each
/// must be 0 after this demo. (`updates-failed` counts attempts that are
/// retried, `updates-conflict` the refused "printer".)
const ERROR_STATISTICS: [&str; 5] = [
    "leasedns.updates-refused",
    "leasedns.changes-dropped",
    "leasedns.names-rejected",
    "leasedns.journal-errors",
    "leasedns.journal-degraded",
];

/// The hook publishes its counters once a second, so the last changes may
/// not show yet: waits for a snapshot that has every change the clients
/// caused submitted and nothing left in flight.
fn settled_statistics(demo: &Demo) -> Result<Vec<(String, i64)>> {
    let caused = i64::try_from(demo.changes_caused.get()).unwrap_or(i64::MAX);
    let mut last = Vec::new();
    let settled = wait_until(RECORDS_TIMEOUT, "the hook's statistics to settle", || {
        let Ok(stats) = demo.hook_statistics() else {
            return false;
        };
        let get = |name: &str| stats.iter().find_map(|(n, v)| (n == name).then_some(*v));
        let done = get("leasedns.changes-submitted").is_some_and(|n| n >= caused)
            && get("leasedns.queue-depth") == Some(0)
            && get("leasedns.journal-entries") == Some(0);
        last = stats;
        done
    });
    if settled.is_err() {
        return Err(DemoError::Unexpected(format!(
            "after {} s the hook's statistics do not account for the {caused} lease changes the demo caused, or still show work in flight: {last:?}",
            RECORDS_TIMEOUT.as_secs()
        )));
    }
    Ok(last)
}

fn section_hook_log(demo: &Demo) -> Result<()> {
    demo.clock
        .heading("Kea's log, lines from the hook (LEASEDNS_*)");
    let log = demo.kea.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("LEASEDNS")).collect();
    if lines.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the hook wrote no LEASEDNS line to {}",
            demo.kea.log_path().display()
        )));
    }
    let total = lines.len();
    let head = LOG_LINES_SHOWN / 2;
    for (i, line) in lines.iter().enumerate() {
        if i == head && total > LOG_LINES_SHOWN {
            demo.clock
                .detail(&format!("... {} more ...", total - LOG_LINES_SHOWN));
        }
        if i < head || i >= total.saturating_sub(LOG_LINES_SHOWN - head) {
            demo.clock.detail(&shorten(line));
        }
    }
    demo.clock.detail(&format!(
        "({total} LEASEDNS lines in {})",
        demo.kea.log_path().display()
    ));
    // Kea's line: date, time, severity, [logger], message.
    let errors: Vec<String> = lines
        .iter()
        .filter(|l| matches!(l.split_whitespace().nth(2), Some("ERROR" | "FATAL")))
        .map(|l| shorten(l))
        .collect();
    if !errors.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "the hook logged {} error line(s):\n  {}",
            errors.len(),
            errors.join("\n  ")
        )));
    }
    Ok(())
}

/// GET `path` from the metrics endpoint, which listens on the server
/// namespace's loopback: the request is made from a short-lived thread that
/// joins that namespace, as a Prometheus beside knotd would.
fn scrape_in_namespace(netns: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/run/netns/{netns}"))?;
    let path = path.to_owned();
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid namespace fd.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: demo\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(std::io::Error::other(format!(
                "GET {path} answered '{status}'"
            )));
        }
        Ok(body.to_owned())
    })
    .join()
    .map_err(|_| std::io::Error::other("scrape thread panicked"))?
}

/// The DNS side of the story: what mod-querystats saw in knotd.
fn section_knot_module_metrics(demo: &Demo) -> Result<()> {
    demo.clock
        .heading("mod-querystats in knotd: GET /metrics (Prometheus text format)");
    let body =
        scrape_in_namespace(demo.net.server_ns(), "/metrics").map_err(|source| DemoError::Io {
            what: "scraping mod-querystats".into(),
            source,
        })?;
    let a_queries = |line: &str| {
        line.starts_with("knot_querystats_queries_total{") && line.contains("type=\"A\"")
    };
    let wanted = [
        "knot_querystats_updates_total{",
        "knot_querystats_operations_total{",
        "knot_querystats_query_duration_seconds_count",
        "knot_querystats_query_duration_seconds_sum",
        "knot_querystats_top_client_network_queries{",
    ];
    let samples: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
        .collect();
    for line in samples
        .iter()
        .filter(|l| a_queries(l) || wanted.iter().any(|w| l.starts_with(w)))
        .take(16)
    {
        demo.clock.detail(line);
    }
    demo.clock.detail(&format!(
        "({} lines in all; the updates above are the hook's, counted by knotd)",
        body.lines().count()
    ));
    // Every series shown above has a non-zero sample, and knotd counted
    // updates signed with the demo's key in both zones.
    let mut missing: Vec<String> = wanted
        .iter()
        .filter(|w| !samples.iter().any(|l| l.starts_with(*w)))
        .map(|w| w.trim_end_matches('{').to_owned())
        .collect();
    if !samples.iter().any(|l| a_queries(l)) {
        missing.push("knot_querystats_queries_total{type=\"A\"}".to_owned());
    }
    for zone in [FORWARD_ZONE.to_owned(), demo.reverse_zone()] {
        let series = format!("knot_querystats_updates_total{{zone=\"{zone}\",key=\"{KEY_NAME}\"}}");
        if !samples.iter().any(|l| l.starts_with(&series)) {
            missing.push(series);
        }
    }
    if !missing.is_empty() {
        return Err(DemoError::Unexpected(format!(
            "mod-querystats has no non-zero sample of {}:\n{body}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// One log line as `time severity message`: Kea's date, logger name, pid
/// and thread id go, and the rest is cut to a readable width.
fn shorten(line: &str) -> String {
    let mut words = line.split_whitespace();
    let (Some(_date), Some(time), Some(severity)) = (words.next(), words.next(), words.next())
    else {
        return line.trim().to_owned();
    };
    let mut message: Vec<&str> = words.collect();
    if message
        .first()
        .is_some_and(|w| w.starts_with('[') && w.ends_with(']'))
    {
        message.remove(0);
    }
    let mut text = format!("{time} {severity:<5} {}", message.join(" "));
    if text.chars().count() > LOG_LINE_MAX {
        text = text.chars().take(LOG_LINE_MAX - 1).collect();
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kea_log_lines_lose_date_and_logger() {
        let line = "2026-11-22 03:11:58.539 WARN  [kea-dhcp4.leasedns/20325.140417978573312] LEASEDNS_WARN name owned   fqdn=printer.lan.example.";
        assert_eq!(
            shorten(line),
            "03:11:58.539 WARN  LEASEDNS_WARN name owned fqdn=printer.lan.example."
        );
        let long = format!("2026-11-22 03:11:58.539 INFO [x/1.2] {}", "y".repeat(500));
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), LOG_LINE_MAX);
        assert!(cut.ends_with('…'));
        assert_eq!(shorten("  odd line "), "odd line");
    }

    #[test]
    fn names_follow_the_address() {
        let addr = Ipv4Addr::new(10, 10, 2, 247);
        assert_eq!(reverse_name(addr.into()), "247.2.10.10.in-addr.arpa.");
        assert_eq!(generated_name(addr), "host-10-10-2-247.lan.example.");
        let records = lease_records("laptop.lan.example.", addr);
        assert_eq!(records.len(), 4);
        assert!(records[0].matches("10.10.2.247"));
        assert!(!records[0].matches("10.10.2.248"));
        assert!(records[2].matches("LAPTOP.lan.example."));
        assert!(records[3].matches("anything"));
        let addr6: std::net::Ipv6Addr = "fd77:12::1:5".parse().unwrap();
        let records = lease_records("laptop6.lan.example.", addr6);
        assert_eq!(records[0].rtype, "AAAA");
        assert!(records[0].matches("fd77:12::1:5"));
        assert!(records[2].name.ends_with(".2.1.0.0.7.7.d.f.ip6.arpa."));
    }
}
