//! Fault tests: the real kea-dhcp4 with the hook, the real knotd, thousands
//! of perfdhcp clients (and dhclient where a single client tells more), and a
//! fault injected in the middle of the stream: knotd killed, knotd frozen,
//! the link to knotd cut, kea-dhcp4 killed while knotd is down, a release
//! racing a pending add, and a burst at Kea's own top rate. After each, the
//! zones must converge to exactly Kea's lease file: every committed lease
//! has its A, PTR and DHCIDs, every released lease has none, and nothing of
//! ours is left without a lease.
//!
//! Each test prints one `FAULT-FIGURES` line (leases, peak backlog, seconds
//! to converge after the fault ended); run with `--nocapture` to see them.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use harness::{
    Dhclient, DhclientOptions, Dns, Kea, KeaOptions, Knot, KnotOptions, LeaseNames, Netns,
    Perfdhcp, PerfdhcpReport, SideNetns, ZoneNames, hook_library, require_root,
};
use serde_json::{Value, json};

use common::ZONE;
/// Records the test zones hold before any client comes.
const STATIC_NAMES: [&str; 2] = ["ns.lan.example.", "printer.lan.example."];
/// Longest wait for the zones to match the leases once a fault is over: the
/// sender's backoff reaches 30 s (+ up to 50 % jitter) during a long outage,
/// so a change may sleep 45 s before its next attempt.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(300);

/// Where knotd runs.
enum KnotAt {
    /// Beside Kea in the server namespace, on 127.0.0.1.
    Server,
    /// In a third namespace reached over its own veth, which a test can cut.
    Side,
}

struct Lab {
    // Field order is drop order: Kea unloads the hook before knotd stops,
    // and the namespaces go last.
    kea: Kea,
    knot: Knot,
    side: Option<SideNetns>,
    net: Netns,
    _journal: tempfile::TempDir,
}

impl Lab {
    fn start(at: KnotAt) -> Lab {
        let net = Netns::new().expect("namespaces");
        let side = match at {
            KnotAt::Server => None,
            KnotAt::Side => Some(SideNetns::new(&net).expect("side namespace")),
        };
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone());
        kopts.forward_records = vec![format!("printer A {}", net.addr(0, 250))];
        let place = match &side {
            Some(side) => {
                kopts.listen = vec![IpAddr::V4(side.addr())];
                side.place()
            }
            None => net.server(),
        };
        let knot = Knot::start(place, &kopts).expect("knotd starts");
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let params = knot.hook_parameters(journal.path());
        let mut opts = KeaOptions::for_netns(&net).with_ddns_naming(&kopts.forward_zone);
        // Long enough that nothing expires during a test: every lease in the
        // file must be in DNS.
        opts.valid_lifetime = 3600;
        let library =
            hook_library().expect("the hook library is built (cargo build --release -p kea-hook)");
        let kea = Kea::start(net.server(), opts.with_hook(&library, params))
            .expect("kea-dhcp4 starts with the hook");
        Lab {
            kea,
            knot,
            side,
            net,
            _journal: journal,
        }
    }

    fn dns(&self) -> Dns {
        self.knot.dns()
    }

    fn stat(&self, name: &str) -> i64 {
        stat_at(&self.kea.socket_path(), name).unwrap_or(0)
    }

    /// Every `leasedns.*` statistic, for failure messages and the figures.
    fn stats_line(&self) -> String {
        let Ok(all) = self.kea.command_ok("statistic-get-all", None) else {
            return "(statistics unavailable)".into();
        };
        let Some(map) = all.as_object() else {
            return all.to_string();
        };
        map.iter()
            .filter(|(k, _)| k.starts_with("leasedns."))
            .map(|(k, v)| format!("{}={}", &k["leasedns.".len()..], v[0][0]))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts perfdhcp from the client namespace on another thread.
    fn burst(&self, run: Perfdhcp) -> JoinHandle<harness::Result<PerfdhcpReport>> {
        let place = self.net.client();
        let iface = self.net.client_iface().to_owned();
        std::thread::spawn(move || run.run(&place, &iface))
    }

    fn dhclient(&self, name: &str) -> Dhclient {
        Dhclient::new(
            self.net.client(),
            self.net.client_iface(),
            &DhclientOptions {
                hostname: Some(name.into()),
                client_id: Some(format!("\x01{name}-client").into_bytes()),
                ..DhclientOptions::default()
            },
        )
        .expect("dhclient")
    }

    /// Waits until the zones hold exactly what the lease file says and the
    /// hook has nothing queued or pending in its journal; returns the time
    /// that took from `since` and the number of leases. Panics with the
    /// difference, the statistics and the log tails otherwise.
    fn converge(&self, since: Instant) -> (f64, usize) {
        let deadline = Instant::now() + CONVERGE_DEADLINE;
        let reverse = self.net.reverse_zone();
        let dns = self.dns();
        loop {
            let verdict = (|| -> Result<usize, String> {
                let expected = LeaseNames::read(&self.kea)?;
                let published = ZoneNames::read(&dns, ZONE, &reverse, &STATIC_NAMES)?;
                if let Some(diff) = published.differs_from(&expected) {
                    return Err(diff);
                }
                let queued = self.stat("leasedns.queue-depth");
                let pending = self.stat("leasedns.journal-entries");
                if queued != 0 || pending != 0 {
                    return Err(format!(
                        "records match, but queue-depth={queued} journal-entries={pending}"
                    ));
                }
                Ok(expected.pairs.len())
            })();
            match verdict {
                Ok(leases) => return (since.elapsed().as_secs_f64(), leases),
                Err(why) if Instant::now() >= deadline => panic!(
                    "zones did not converge to the lease file within {CONVERGE_DEADLINE:?} \
                     ({:.1} s after the fault ended): {why}\nstats: {}\nkea log tail:\n{}\nknotd log tail:\n{}",
                    since.elapsed().as_secs_f64(),
                    self.stats_line(),
                    tail(&self.kea.log(), 40),
                    knot_log_digest(&self.knot.log())
                ),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// The statistics that must stay zero whatever the fault.
    fn assert_nothing_lost(&self) {
        for name in [
            "leasedns.changes-dropped",
            "leasedns.updates-refused",
            "leasedns.updates-conflict",
            "leasedns.journal-errors",
        ] {
            assert_eq!(
                self.stat(name),
                0,
                "{name} must be 0; stats: {}",
                self.stats_line()
            );
        }
    }

    fn figures(&self, test: &str, acks: u64, peaks: Peaks, converged: (f64, usize)) {
        eprintln!(
            "FAULT-FIGURES {test}: leases={} acks={acks} peak-queue-depth={} peak-journal-entries={} converge-after-fault-s={:.1} | {}",
            converged.1,
            peaks.queue,
            peaks.journal,
            converged.0,
            self.stats_line()
        );
    }
}

/// knotd's log without the transfer lines our polling causes: its starts,
/// loads, journal messages and DDNS failures.
fn knot_log_digest(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("AXFR, outgoing") && !l.contains("DDNS, processing"))
        .collect();
    tail(&lines.join("\n"), 40)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One statistic straight from Kea's control socket. Kept apart from `Kea`
/// so a sampler thread can poll while the test kills and restarts Kea.
fn stat_at(socket: &Path, name: &str) -> Option<i64> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let command = json!({"command": "statistic-get", "arguments": {"name": name}});
    stream.write_all(command.to_string().as_bytes()).ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply: Value = serde_json::from_slice(&reply).ok()?;
    reply["arguments"][name][0][0].as_i64()
}

#[derive(Clone, Copy, Debug, Default)]
struct Peaks {
    queue: i64,
    journal: i64,
}

/// Polls the backlog gauges on a thread and keeps their maxima.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Peaks>,
}

impl Sampler {
    fn start(kea: &Kea) -> Sampler {
        let socket: PathBuf = kea.socket_path();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            while !flag.load(Ordering::Relaxed) {
                if let Some(q) = stat_at(&socket, "leasedns.queue-depth") {
                    peaks.queue = peaks.queue.max(q);
                }
                if let Some(j) = stat_at(&socket, "leasedns.journal-entries") {
                    peaks.journal = peaks.journal.max(j);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            peaks
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sampler thread")
    }
}

fn join(burst: JoinHandle<harness::Result<PerfdhcpReport>>) -> PerfdhcpReport {
    burst
        .join()
        .expect("perfdhcp thread")
        .expect("perfdhcp runs")
}

/// Sleeps until `at` (no-op when it has passed).
fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn knotd_killed_for_30_s_mid_burst_then_restarted() {
    require_root();
    let mut lab = Lab::start(KnotAt::Server);
    let sampler = Sampler::start(&lab.kea);
    // 3000 clients over 10 s; knotd dies 3 s in.
    let burst = lab.burst(Perfdhcp::new(300, 3000, 3000));
    std::thread::sleep(Duration::from_secs(3));
    lab.knot.kill().expect("SIGKILL knotd");
    let down = Instant::now();
    let report = join(burst);
    assert!(report.acks() >= 2500, "{}", report.output);
    sleep_until(down + Duration::from_secs(30));
    lab.knot.start_again().expect("knotd starts again");
    let up = Instant::now();
    let converged = lab.converge(up);
    let peaks = sampler.finish();
    lab.figures("knotd-sigkill-30s", report.acks(), peaks, converged);
    assert!(
        peaks.journal > 0,
        "changes were held in the journal during the outage"
    );
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn knotd_frozen_for_10_s_mid_burst_then_resumed() {
    require_root();
    let lab = Lab::start(KnotAt::Server);
    let sampler = Sampler::start(&lab.kea);
    // perfdhcp releases some leases while knotd is frozen (-F: releases/s).
    let mut run = Perfdhcp::new(300, 2400, 2400);
    run.extra.extend(["-F".into(), "60".into()]);
    let burst = lab.burst(run);
    std::thread::sleep(Duration::from_secs(2));
    lab.knot.signal(libc::SIGSTOP).expect("SIGSTOP knotd");
    let frozen = Instant::now();
    let report = join(burst);
    sleep_until(frozen + Duration::from_secs(10));
    lab.knot.signal(libc::SIGCONT).expect("SIGCONT knotd");
    let thawed = Instant::now();
    assert!(report.acks() >= 2000, "{}", report.output);
    let converged = lab.converge(thawed);
    let peaks = sampler.finish();
    lab.figures("knotd-sigstop-10s", report.acks(), peaks, converged);
    assert!(
        lab.kea.log().contains("DNS update failed; will retry"),
        "the frozen server made updates time out and retry"
    );
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn link_to_knotd_cut_for_20_s_mid_burst_then_restored() {
    require_root();
    let lab = Lab::start(KnotAt::Side);
    let side = lab.side.as_ref().expect("side namespace");
    let sampler = Sampler::start(&lab.kea);
    let burst = lab.burst(Perfdhcp::new(300, 2400, 2400));
    std::thread::sleep(Duration::from_secs(2));
    side.cut().expect("link down");
    let cut = Instant::now();
    let report = join(burst);
    sleep_until(cut + Duration::from_secs(20));
    side.restore().expect("link up");
    let restored = Instant::now();
    assert!(report.acks() >= 2000, "{}", report.output);
    let converged = lab.converge(restored);
    let peaks = sampler.finish();
    lab.figures("link-cut-20s", report.acks(), peaks, converged);
    assert!(peaks.journal > 0, "changes were held during the cut");
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn kea_killed_while_knotd_is_down_replays_its_journal() {
    require_root();
    let mut lab = Lab::start(KnotAt::Server);
    let sampler = Sampler::start(&lab.kea);
    let burst = lab.burst(Perfdhcp::new(300, 3000, 3000));
    std::thread::sleep(Duration::from_secs(2));
    lab.knot.kill().expect("SIGKILL knotd");
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let held_before_kill = lab.stat("leasedns.journal-entries");
    lab.kea.kill().expect("SIGKILL kea-dhcp4");
    let leases_at_kill = lab.kea.leases().expect("lease file").len();
    let report = join(burst);
    lab.kea
        .start_again()
        .expect("kea-dhcp4 starts again on the same lease file and journal");
    // The statistics are refreshed once a second after the load.
    std::thread::sleep(Duration::from_millis(1500));
    let replayed = lab.stat("leasedns.journal-entries");
    lab.kea
        .wait_for_log("replaying journal entries", Duration::from_secs(10))
        .expect("the hook replays its journal at load");
    sleep_until(down + Duration::from_secs(15));
    lab.knot.start_again().expect("knotd starts again");
    let up = Instant::now();
    let converged = lab.converge(up);
    let peaks = sampler.finish();
    eprintln!(
        "FAULT-FIGURES kea-sigkill: leases-at-kill={leases_at_kill} journal-entries-before-kill={held_before_kill} pending-after-restart={replayed}"
    );
    lab.figures(
        "kea-sigkill-while-knotd-down",
        report.acks(),
        peaks,
        converged,
    );
    assert!(
        replayed > 0,
        "the restarted hook found pending changes in its journal"
    );
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn release_of_a_pending_add_leaves_no_ghost_record() {
    require_root();
    let mut lab = Lab::start(KnotAt::Server);
    let sampler = Sampler::start(&lab.kea);
    lab.knot.kill().expect("SIGKILL knotd");
    let down = Instant::now();
    let mut ghost = lab.dhclient("ghost");
    let lease = ghost
        .obtain(Duration::from_secs(30))
        .expect("a lease while knotd is down");
    let mut keeper = lab.dhclient("keeper");
    // Some volume beside the two named clients.
    let burst = lab.burst(Perfdhcp::new(200, 400, 400));
    ghost.release().expect("dhclient -r");
    let kept = keeper
        .obtain(Duration::from_secs(30))
        .expect("a second lease while knotd is down");
    keeper.stop().expect("keeper vanishes without a release");
    let report = join(burst);
    harness::wait_until(
        Duration::from_secs(10),
        "the add and the remove of `ghost` to be held",
        || lab.stat("leasedns.journal-entries") >= 3,
    )
    .unwrap_or_else(|e| panic!("{e}; stats: {}", lab.stats_line()));
    sleep_until(down + Duration::from_secs(15));
    lab.knot.start_again().expect("knotd starts again");
    let up = Instant::now();
    let converged = lab.converge(up);
    let peaks = sampler.finish();
    lab.figures("release-of-pending-add", report.acks(), peaks, converged);
    let dns = lab.dns();
    let ghost_name = format!("ghost.{ZONE}");
    let ptr = harness::reverse_name(lease.address);
    for (name, rtype) in [
        (ghost_name.as_str(), "A"),
        (ghost_name.as_str(), "DHCID"),
        (ptr.as_str(), "PTR"),
        (ptr.as_str(), "DHCID"),
    ] {
        assert_eq!(
            dns.query(name, rtype).unwrap(),
            Vec::<String>::new(),
            "{name} {rtype} of the released lease"
        );
    }
    assert_eq!(
        dns.query(&format!("keeper.{ZONE}"), "A").unwrap(),
        vec![kept.address.to_string()]
    );
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn burst_at_keas_top_rate_misses_nothing() {
    require_root();
    let lab = Lab::start(KnotAt::Server);
    let sampler = Sampler::start(&lab.kea);
    let mut run = Perfdhcp::new(4000, 10000, 10000);
    run.period_secs = 20;
    let started = Instant::now();
    let report = join(lab.burst(run));
    let sent_for = started.elapsed();
    let ended = Instant::now();
    let converged = lab.converge(ended);
    let peaks = sampler.finish();
    eprintln!(
        "FAULT-FIGURES top-rate: perfdhcp ran {:.1} s, {:.0} ACKs/s",
        sent_for.as_secs_f64(),
        report.acks() as f64 / sent_for.as_secs_f64()
    );
    lab.figures("top-rate", report.acks(), peaks, converged);
    assert!(
        converged.1 >= 1000,
        "a real burst: {} leases\n{}",
        converged.1,
        report.output
    );
    lab.assert_nothing_lost();
}
