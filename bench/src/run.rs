//! One measured run: a fresh namespace pair, a fresh knotd, kea-dhcp4 or
//! kea-dhcp6 in one of the three modes, one perfdhcp workload, then polling
//! Knot until every committed lease has its A (v6: AAAA) and PTR.

use crate::BenchError;
use crate::d2::{D2, NCR_PORT};
use crate::probe::{self, SerialWatch, WireClock, ZoneContents};
use harness::{Family, Kea, KeaOptions, Knot, KnotOptions, Netns, Perfdhcp};
use leasedns_callout_timer::histogram::{self, Histogram};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) const ZONE: &str = "lan.example.";
/// Client FQDN option (81): flags S|E, empty name, i.e. "name me and update
/// DNS for me". Both Kea's own DDNS and the hook then generate
/// `host-a-b-c-d.lan.example.`, so the record counts compare.
const FQDN_OPTION: [u8; 3] = [0x05, 0, 0];
/// DHCPv6 Client FQDN option (39): flag S, empty name: kea-dhcp6 then
/// generates `host-fd77-N--1-x.lan.example.` in every mode.
pub(crate) const FQDN_OPTION6: [u8; 1] = [0x01];
/// Zones unchanged this long while records are still missing: the path has
/// given up (D2 drops after its retries).
const STALL: Duration = Duration::from_secs(10);
/// Zones unchanged this long before a transfer checks for completeness.
const SETTLE: Duration = Duration::from_millis(150);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// (a) Kea with DDNS off.
    KeaOnly,
    /// (b) kea-dhcp4 -> kea-dhcp-ddns -> Knot.
    Stock,
    /// (c) kea-dhcp4 with libdhcp_leasedns.so -> Knot.
    Leasedns,
    /// (c) again, loaded through the callout timer: only for the callout
    /// latencies, since the timer's clock calls slow Kea down a little.
    LeasednsTimed,
}

impl Mode {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::KeaOnly => "a: kea, ddns off",
            Mode::Stock => "b: stock kea-dhcp-ddns",
            Mode::Leasedns => "c: leasedns",
            Mode::LeasednsTimed => "c': leasedns, callouts timed",
        }
    }

    pub(crate) fn letter(self) -> &'static str {
        match self {
            Mode::KeaOnly => "a",
            Mode::Stock => "b",
            Mode::Leasedns => "c",
            Mode::LeasednsTimed => "c'",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) name: String,
    /// kea-dhcp4 and perfdhcp -4, or kea-dhcp6 and perfdhcp -6.
    pub(crate) family: Family,
    /// perfdhcp `-r`.
    pub(crate) rate: u32,
    /// perfdhcp `-R` and `-n`.
    pub(crate) leases: u32,
    /// Kea's `thread-pool-size` when multi-threading is on.
    pub(crate) threads: Option<u32>,
    /// knotd is stopped (SIGSTOP) while perfdhcp runs and resumed after it:
    /// every change waits, and the drain after the resume measures the
    /// path's own rate of complete DNS changes, whatever Kea's rate.
    pub(crate) pause_dns: bool,
}

/// Everything the benchmark needs from outside: the hook and the optional
/// callout timer, the DNS deadline.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    pub(crate) hook: PathBuf,
    /// The callout timer library and the directory it dumps to.
    pub(crate) timer: Option<(PathBuf, PathBuf)>,
    /// How long after the last ACK the records may take before the run
    /// counts the rest as missing.
    pub(crate) dns_timeout: Duration,
    /// `perf record` Kea and knotd during leasedns runs into this directory.
    pub(crate) perf_dir: Option<PathBuf>,
    /// Extra hook parameters (`--hook-param`), e.g. `sender-threads`.
    pub(crate) hook_params: Vec<(String, Value)>,
}

#[derive(Clone, Debug)]
pub(crate) struct RunResult {
    pub(crate) mode: Mode,
    pub(crate) workload: String,
    pub(crate) family: Family,
    pub(crate) committed: usize,
    /// ACKs (v6: Replies to Requests) perfdhcp received.
    pub(crate) acks: u64,
    pub(crate) drops: u64,
    /// Leases committed per second between the first DISCOVER and the last
    /// ACK on the wire.
    pub(crate) leases_per_s: f64,
    /// Seconds from the first DISCOVER until every record existed (None:
    /// DDNS off, or never complete).
    pub(crate) all_records_s: Option<f64>,
    /// Seconds from the last ACK until every record existed.
    pub(crate) lag_s: Option<f64>,
    /// Leases whose A or PTR is absent or wrong at the end (None: DDNS off).
    pub(crate) missing: Option<usize>,
    /// Leases with complete records per second, first DISCOVER to the last
    /// record (or to the end of polling when some never came).
    pub(crate) names_per_s: Option<f64>,
    pub(crate) cpu_kea: f64,
    pub cpu_d2: Option<f64>,
    pub(crate) cpu_knot: f64,
    pub(crate) callouts: Vec<(String, Histogram)>,
    pub(crate) notes: Vec<String>,
}

/// Runs `workload` in `mode` from scratch.
pub(crate) fn run(mode: Mode, workload: &Workload, setup: &Setup) -> Result<RunResult, BenchError> {
    let family = workload.family;
    let net = match family {
        Family::V4 => Netns::new()?,
        Family::V6 => Netns::new_v6()?,
    };
    let reverse_zone = match family {
        Family::V4 => net.reverse_zone(),
        Family::V6 => net.reverse_zone6(),
    };
    let knot = start_knot(&net, &reverse_zone)?;
    let d2 = match mode {
        Mode::Stock => Some(D2::start(&net.server(), &knot)?),
        _ => None,
    };
    let journal = tempfile::Builder::new()
        .prefix("leasedns-bench-journal-")
        .tempdir()
        .map_err(|e| BenchError::io("creating the journal directory", e))?;
    let opts = kea_options(mode, &net, &knot, journal.path(), workload, setup);
    let mut kea = Kea::start(net.server(), opts.clone())?;
    quiet_logging(&mut kea, opts)?;
    let kea_pid = kea
        .pid()
        .ok_or_else(|| BenchError::Failed(format!("{} has no pid", family.program())))?;
    let knot_pid = knot
        .pid()
        .ok_or_else(|| BenchError::Failed("knotd has no pid".into()))?;
    let d2_pid = d2.as_ref().and_then(D2::pid);
    let dns = SocketAddr::new(knot.addr(), knot.port());
    let zones = vec![ZONE.to_owned(), reverse_zone];

    let serials = SerialWatch::start(net.server_ns(), dns, zones.clone())?;
    let wire = WireClock::start(net.client_ns(), net.client_iface(), family)?;
    let cpu_before = (
        cpu_seconds(kea_pid),
        d2_pid.map(cpu_seconds),
        cpu_seconds(knot_pid),
    );
    let threads_before = thread_cpu(kea_pid);
    let perf = match (&setup.perf_dir, mode) {
        (Some(dir), Mode::Leasedns) => Some(PerfRecord::start(
            &[kea_pid, knot_pid],
            dir,
            &workload.name,
        )?),
        _ => None,
    };

    let mut perfdhcp =
        match family {
            Family::V4 => Perfdhcp::new(workload.rate, workload.leases, workload.leases)
                .option(81, &FQDN_OPTION),
            Family::V6 => Perfdhcp::v6(workload.rate, workload.leases, workload.leases)
                .option(39, &FQDN_OPTION6),
        };
    perfdhcp.period_secs = workload.leases / workload.rate.max(1) + 30;
    perfdhcp.exit_wait = Duration::from_secs(1);
    if workload.pause_dns {
        knot.signal(libc::SIGSTOP)?;
    }
    let report = perfdhcp.run(&net.client(), net.client_iface());
    let resumed = Instant::now();
    if workload.pause_dns {
        knot.signal(libc::SIGCONT)?;
    }
    let report = report?;
    let times = wire.finish()?;
    let perf_report = perf.map(PerfRecord::finish);

    let leases = committed_leases(&kea)?;
    let (first, last_ack) = match (times.first_sent, times.last_received) {
        (Some(first), Some(last)) => (first, last),
        _ => {
            return Err(BenchError::Failed(format!(
                "no DHCP traffic seen on the wire:\n{}",
                report.output
            )));
        }
    };
    let dhcp_secs = last_ack.duration_since(first).as_secs_f64().max(1e-3);
    let mut result = RunResult {
        mode,
        workload: workload.name.clone(),
        family,
        committed: leases.len(),
        acks: match family {
            Family::V4 => report.acks(),
            Family::V6 => report.replies(),
        },
        drops: report.total_drops(),
        leases_per_s: leases.len() as f64 / dhcp_secs,
        all_records_s: None,
        lag_s: None,
        missing: None,
        names_per_s: None,
        cpu_kea: 0.0,
        cpu_d2: None,
        cpu_knot: 0.0,
        callouts: Vec::new(),
        notes: Vec::new(),
    };

    if mode != Mode::KeaOnly {
        // With DNS paused, the clock for DNS starts when it resumes.
        let (dns_start, dns_base) = if workload.pause_dns {
            (resumed, resumed)
        } else {
            (first, last_ack)
        };
        let outcome = wait_for_records(&net, dns, &zones, &leases, &serials, dns_base, setup)?;
        let end = outcome.complete_at.unwrap_or(outcome.gave_up_at);
        let complete = leases.len() - outcome.missing;
        result.missing = Some(outcome.missing);
        // DHCPv6 only, so the v4 report stays as it was.
        if family == Family::V6 && !outcome.examples.is_empty() {
            result.notes.push(format!(
                "incomplete leases (lease file: address and host name; zones: what they hold), e.g. {}",
                outcome.examples.join("; ")
            ));
        }
        result.names_per_s = Some(complete as f64 / end.duration_since(dns_start).as_secs_f64());
        if let Some(at) = outcome.complete_at {
            result.all_records_s = Some(at.duration_since(first).as_secs_f64());
            result.lag_s = Some(signed_secs(at, dns_base));
        }
    }
    let _ = serials.finish();
    result.cpu_kea = cpu_seconds(kea_pid) - cpu_before.0;
    result.cpu_d2 = d2_pid
        .map(cpu_seconds)
        .zip(cpu_before.1)
        .map(|(a, b)| a - b);
    result.cpu_knot = cpu_seconds(knot_pid) - cpu_before.2;
    if mode != Mode::KeaOnly {
        result
            .notes
            .push(thread_note(family, &threads_before, &thread_cpu(kea_pid)));
    }

    if let Some(d2) = &d2 {
        result.notes.push(d2_note(d2));
    }
    if matches!(mode, Mode::Leasedns | Mode::LeasednsTimed) {
        // The hook publishes its statistics once a second.
        std::thread::sleep(Duration::from_millis(1100));
        result.notes.push(hook_note(&kea));
    }
    if let Some(text) = perf_report {
        result.notes.push(text);
    }
    let queue_full = kea.log().matches("QUEUE_FULL").count();
    if queue_full > 0 {
        result.notes.push(format!(
            "{} logged {queue_full} DDNS queue-full errors",
            family.program()
        ));
    }
    kea.stop()?;
    if let (Mode::LeasednsTimed, Some((_, dir))) = (mode, &setup.timer) {
        let path = leasedns_callout_timer::dump_path(dir, kea_pid);
        let text = std::fs::read_to_string(&path).map_err(|e| BenchError::io(path.display(), e))?;
        result.callouts = histogram::parse(&text)
            .into_iter()
            .filter(|(_, h)| h.count > 0)
            .collect();
    }
    Ok(result)
}

fn signed_secs(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64(),
        None => -earlier.duration_since(later).as_secs_f64(),
    }
}

fn start_knot(net: &Netns, reverse_zone: &str) -> Result<Knot, BenchError> {
    let mut opts = KnotOptions::new(ZONE);
    opts.reverse_zone = Some(reverse_zone.to_owned());
    // Identical in every mode; per-update info lines would only measure
    // Knot's logging.
    opts.log_level = "warning".to_owned();
    Ok(Knot::start(net.server(), &opts)?)
}

fn kea_options(
    mode: Mode,
    net: &Netns,
    knot: &Knot,
    journal: &Path,
    workload: &Workload,
    setup: &Setup,
) -> KeaOptions {
    // Kea's own naming settings, the same in every mode (Kea names leases
    // with its DDNS client off too).
    let base = match workload.family {
        Family::V4 => KeaOptions::for_netns(net),
        Family::V6 => KeaOptions::v6(net),
    };
    let mut opts = base.with_ddns_naming(ZONE);
    if workload.family == Family::V6 && mode != Mode::Stock {
        // As the hook's README asks (it is Kea's default too).
        opts.dhcp4_extra
            .insert("dhcp-ddns".into(), json!({ "enable-updates": false }));
    }
    opts.multi_threading = workload.threads;
    match mode {
        Mode::KeaOnly => opts,
        Mode::Stock => {
            let extra = [
                (
                    "dhcp-ddns",
                    json!({
                        "enable-updates": true,
                        "server-ip": "127.0.0.1",
                        "server-port": NCR_PORT,
                        "ncr-protocol": "UDP",
                        "ncr-format": "JSON"
                    }),
                ),
                ("ddns-send-updates", json!(true)),
                ("ddns-use-conflict-resolution", json!(true)),
            ];
            for (key, value) in extra {
                opts.dhcp4_extra.insert(key.into(), value);
            }
            opts
        }
        Mode::Leasedns => opts.with_hook(&setup.hook, hook_params(knot, journal, setup)),
        Mode::LeasednsTimed => {
            let library = setup.timer.as_ref().map_or(&setup.hook, |(lib, _)| lib);
            opts.with_hook(library, hook_params(knot, journal, setup))
        }
    }
}

/// Reconfigures a started Kea to log warnings and errors only, unflushed:
/// its per-lease INFO lines (flushed line by line, as the harness wants for
/// its readiness check) would otherwise measure the logger, in every mode
/// alike. D2 and Knot log warnings only too.
fn quiet_logging(kea: &mut Kea, mut opts: KeaOptions) -> Result<(), BenchError> {
    let log = kea.log_path().to_string_lossy().into_owned();
    opts.dhcp4_extra.insert(
        "loggers".into(),
        json!([{
            "name": opts.family.program(),
            "output_options": [{ "output": log, "flush": false }],
            "severity": "WARN"
        }]),
    );
    Ok(kea.reconfigure(opts)?)
}

/// The hook's parameters: the same zones, server and key as D2's.
fn hook_params(knot: &Knot, journal: &Path, setup: &Setup) -> Value {
    let mut params = knot.hook_parameters(journal);
    if let Value::Object(map) = &mut params {
        for (key, value) in &setup.hook_params {
            map.insert(key.clone(), value.clone());
        }
    }
    params
}

/// A committed lease: address and the FQDN Kea recorded for it.
#[derive(Clone, Debug)]
struct Committed {
    address: IpAddr,
    hostname: String,
}

/// The leases in Kea's lease file; v6: addresses (IA_NA, `lease_type` 0)
/// only, perfdhcp -6 asks for no prefixes.
fn committed_leases(kea: &Kea) -> Result<Vec<Committed>, BenchError> {
    Ok(kea
        .leases()?
        .into_iter()
        .filter(|row| row.get("lease_type").is_none_or(|t| t == "0"))
        .filter_map(|row| {
            Some(Committed {
                address: row.get("address")?.parse().ok()?,
                hostname: row.get("hostname").cloned().unwrap_or_default(),
            })
        })
        .collect())
}

struct Outcome {
    complete_at: Option<Instant>,
    gave_up_at: Instant,
    missing: usize,
    /// A few of the incomplete leases and what the zones hold for them.
    examples: Vec<String>,
}

/// Waits until every lease has its A (AAAA) and PTR, the zones stall, or the
/// deadline passes. The completion instant is when the SOA watch first saw
/// the serials of the complete transfer, so it is accurate to the 10 ms
/// poll, not to the (slower, rarer) transfers.
fn wait_for_records(
    net: &Netns,
    dns: SocketAddr,
    zones: &[String],
    leases: &[Committed],
    serials: &SerialWatch,
    last_ack: Instant,
    setup: &Setup,
) -> Result<Outcome, BenchError> {
    let deadline = last_ack + setup.dns_timeout;
    let mut checked_serials: Option<Vec<u32>> = None;
    let mut missing = leases.len();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let log = serials.log();
        let last_change = log.last_change().unwrap_or(last_ack);
        let settled = now.duration_since(last_change) >= SETTLE;
        let current: Vec<u32> = zones
            .iter()
            .map(|z| {
                log.changes
                    .get(z)
                    .and_then(|v| v.last())
                    .map_or(0, |(_, s)| *s)
            })
            .collect();
        if settled && checked_serials.as_ref() != Some(&current) {
            let started = Instant::now();
            let contents = transfer(net, dns, zones)?;
            missing = count_missing(leases, &contents[0], &contents[1]);
            checked_serials = Some(current);
            if missing == 0 {
                let at = zones
                    .iter()
                    .zip(&contents)
                    .map(|(z, c)| log.first_seen(z, c.serial).unwrap_or(started))
                    .max()
                    .unwrap_or(started);
                return Ok(Outcome {
                    complete_at: Some(at),
                    gave_up_at: at,
                    missing: 0,
                    examples: Vec::new(),
                });
            }
        }
        let stalled = now.duration_since(last_change.max(last_ack)) >= STALL;
        if (stalled && checked_serials.is_some()) || now >= deadline {
            // One last look, in case the final changes landed just now.
            let contents = transfer(net, dns, zones)?;
            missing = missing.min(count_missing(leases, &contents[0], &contents[1]));
            return Ok(Outcome {
                complete_at: None,
                gave_up_at: log.last_change().unwrap_or(now),
                missing,
                examples: missing_examples(leases, &contents[0], &contents[1]),
            });
        }
    }
}

fn transfer(
    net: &Netns,
    dns: SocketAddr,
    zones: &[String],
) -> Result<Vec<ZoneContents>, BenchError> {
    let zones = zones.to_vec();
    probe::run_in_netns(net.server_ns(), move || {
        zones.iter().map(|z| probe::axfr(dns, z)).collect()
    })
}

/// Up to three incomplete leases, each with the addresses its name has and
/// the names its PTR has, so a miss says which half is absent.
fn missing_examples(
    leases: &[Committed],
    forward: &ZoneContents,
    reverse: &ZoneContents,
) -> Vec<String> {
    leases
        .iter()
        .filter(|l| count_missing(std::slice::from_ref(*l), forward, reverse) == 1)
        .take(3)
        .map(|l| {
            let name = l.hostname.to_ascii_lowercase();
            let addresses: Vec<String> = match l.address {
                IpAddr::V4(_) => forward
                    .a
                    .get(&name)
                    .map(|a| a.iter().map(|x| x.to_string()).collect()),
                IpAddr::V6(_) => forward
                    .aaaa
                    .get(&name)
                    .map(|a| a.iter().map(|x| x.to_string()).collect()),
            }
            .unwrap_or_default();
            let ptr = reverse.ptr.get(&probe::ptr_name(l.address));
            format!(
                "{} {:?}: forward {addresses:?}, PTR {ptr:?}",
                l.address, l.hostname
            )
        })
        .collect()
}

fn count_missing(leases: &[Committed], forward: &ZoneContents, reverse: &ZoneContents) -> usize {
    leases
        .iter()
        .filter(|lease| {
            let name = lease.hostname.to_ascii_lowercase();
            let a_ok = match lease.address {
                IpAddr::V4(v4) => forward.a.get(&name).is_some_and(|a| a.contains(&v4)),
                IpAddr::V6(v6) => forward.aaaa.get(&name).is_some_and(|a| a.contains(&v6)),
            };
            let ptr_ok = reverse
                .ptr
                .get(&probe::ptr_name(lease.address))
                .is_some_and(|targets| targets.contains(&name));
            !(a_ok && ptr_ok)
        })
        .count()
}

/// utime + stime of `pid` in seconds (0 when it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    parse_cpu_ticks(&stat).map_or(0.0, |ticks| ticks as f64 / clock_ticks())
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. utime and stime are fields 14 and 15 (1-based).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds of each thread group of `pid`, keyed by thread name with
/// trailing digits dropped (`ldns-send-3` counts as `ldns-send-`).
fn thread_cpu(pid: u32) -> HashMap<String, f64> {
    let mut groups = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return groups;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map_or("?", |(name, _)| name)
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .to_owned();
        let secs = parse_cpu_ticks(&stat).map_or(0.0, |t| t as f64 / clock_ticks());
        *groups.entry(name).or_insert(0.0) += secs;
    }
    groups
}

fn thread_note(
    family: Family,
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
) -> String {
    let mut used: Vec<(&String, f64)> = after
        .iter()
        .map(|(name, secs)| (name, secs - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, secs)| *secs >= 0.005)
        .collect();
    used.sort_by(|x, y| y.1.total_cmp(&x.1));
    let parts: Vec<String> = used
        .iter()
        .map(|(name, secs)| format!("{name} {secs:.2}"))
        .collect();
    format!("{} CPU s by thread: {}", family.program(), parts.join(", "))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn d2_note(d2: &D2) -> String {
    let stats: HashMap<String, i64> = d2.statistics().into_iter().collect();
    let get = |name: &str| stats.get(name).copied().unwrap_or(0);
    let mut note = format!(
        "kea-dhcp-ddns: ncr-received {}, update-sent {}, update-success {}, update-timeout {}, update-error {}",
        get("ncr-received"),
        get("update-sent"),
        get("update-success"),
        get("update-timeout"),
        get("update-error"),
    );
    let log = d2.log();
    let queue_full = log.matches("QUEUE_FULL").count() + log.matches("queue full").count();
    if queue_full > 0 {
        note.push_str(&format!(", {queue_full} queue-full log lines"));
    }
    note
}

fn hook_note(kea: &Kea) -> String {
    let stat = |name: &str| {
        kea.command_ok("statistic-get", Some(json!({ "name": name })))
            .ok()
            .and_then(|v| v.get(name)?.get(0)?.get(0)?.as_i64())
            .unwrap_or(0)
    };
    let last_error = kea
        .command_ok("leasedns-status", None)
        .ok()
        .and_then(|status| status.get("last-error").cloned())
        .filter(|e| !e.is_null())
        .map_or(String::new(), |e| format!(", last error {e}"));
    format!(
        "leasedns: changes-submitted {}, updates-sent {}, updates-succeeded {}, updates-failed {}, updates-conflict {}, changes-dropped {}{last_error}",
        stat("leasedns.changes-submitted"),
        stat("leasedns.updates-sent"),
        stat("leasedns.updates-succeeded"),
        stat("leasedns.updates-failed"),
        stat("leasedns.updates-conflict"),
        stat("leasedns.changes-dropped"),
    )
}

/// `perf record` of kea-dhcp4 and knotd (every thread, call graphs).
struct PerfRecord {
    child: std::process::Child,
    data: PathBuf,
}

impl PerfRecord {
    fn start(pids: &[u32], dir: &Path, workload: &str) -> Result<Self, BenchError> {
        let data = dir.join(format!("leasedns-{workload}.perf.data"));
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = std::process::Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "997", "-g", "-p"])
            .arg(pids.join(","))
            .arg("-o")
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BenchError::io("starting perf record", e))?;
        // perf needs a moment to attach to every thread.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Self { child, data })
    }

    /// Stops the recording and summarises where Kea's time went, by shared
    /// object.
    fn finish(mut self) -> String {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let _ = self.child.wait();
        let out = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--sort",
                "comm,dso",
                "-q",
                "-i",
            ])
            .arg(&self.data)
            .output();
        let text = match out {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => return format!("perf report failed: {e}"),
        };
        let top: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.contains('%'))
            .take(12)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        format!(
            "perf (kea-dhcp4 and knotd samples by thread and object, {}): {}",
            self.data.display(),
            top.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn cpu_ticks_skip_a_command_with_spaces() {
        let stat =
            "1234 (kea dhcp4) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn missing_counts_wrong_and_absent_records() {
        let lease = |d: u8, name: &str| Committed {
            address: Ipv4Addr::new(10, 1, 1, d).into(),
            hostname: name.to_owned(),
        };
        let leases = [
            lease(1, "host-10-1-1-1.lan.example."),
            lease(2, "host-10-1-1-2.lan.example."),
            lease(3, "host-10-1-1-3.lan.example."),
            lease(4, ""),
        ];
        let mut forward = ZoneContents::default();
        forward.a.insert(
            "host-10-1-1-1.lan.example.".into(),
            vec![Ipv4Addr::new(10, 1, 1, 1)],
        );
        // Wrong address.
        forward.a.insert(
            "host-10-1-1-2.lan.example.".into(),
            vec![Ipv4Addr::new(10, 1, 1, 9)],
        );
        forward.a.insert(
            "host-10-1-1-3.lan.example.".into(),
            vec![Ipv4Addr::new(10, 1, 1, 3)],
        );
        let mut reverse = ZoneContents::default();
        reverse.ptr.insert(
            "1.1.1.10.in-addr.arpa.".into(),
            vec!["host-10-1-1-1.lan.example.".into()],
        );
        reverse.ptr.insert(
            "2.1.1.10.in-addr.arpa.".into(),
            vec!["host-10-1-1-2.lan.example.".into()],
        );
        // 3 has no PTR; 4 has no name at all.
        assert_eq!(count_missing(&leases, &forward, &reverse), 3);
        assert_eq!(count_missing(&leases[..1], &forward, &reverse), 0);
    }

    #[test]
    fn missing_checks_aaaa_for_v6_leases() {
        let addr: Ipv6Addr = "fd77:42::1:5".parse().unwrap();
        let name = "host-fd77-42--1-5.lan.example.";
        let leases = [Committed {
            address: addr.into(),
            hostname: name.into(),
        }];
        let mut forward = ZoneContents::default();
        let mut reverse = ZoneContents::default();
        reverse
            .ptr
            .insert(probe::ptr_name(addr.into()), vec![name.into()]);
        // An A record does not stand in for the AAAA.
        forward
            .a
            .insert(name.into(), vec![Ipv4Addr::new(10, 42, 1, 5)]);
        assert_eq!(count_missing(&leases, &forward, &reverse), 1);
        forward.aaaa.insert(name.into(), vec![addr]);
        assert_eq!(count_missing(&leases, &forward, &reverse), 0);
    }
}
