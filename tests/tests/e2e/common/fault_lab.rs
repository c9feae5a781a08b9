//! The fault tests' lab: the real kea-dhcp4 with the hook, knotd (alone,
//! behind a link a test can cut, or as a primary with secondaries that
//! follow it by NOTIFY/IXFR), perfdhcp bursts, and the check that the zones
//! converge to exactly Kea's lease file.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::{
    Dhclient, DhclientOptions, Dns, Kea, KeaOptions, Knot, KnotOptions, LeaseNames, Netns,
    Perfdhcp, PerfdhcpReport, SideNetns, ZoneNames,
};
use serde_json::{Value, json};

use super::{ZONE, tail};

/// Records the test zones hold before any client comes.
const STATIC_NAMES: [&str; 2] = ["ns.lan.example.", "printer.lan.example."];
/// Longest wait for the zones to match the leases once a fault is over: the
/// sender's backoff reaches 30 s (+ up to 50 % jitter) during a long outage,
/// so a change may sleep 45 s before its next attempt.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(300);

/// Where knotd runs.
pub(crate) enum KnotAt {
    /// Beside Kea in the server namespace, on 127.0.0.1.
    Server,
    /// In a third namespace reached over its own veth, which a test can cut.
    Side,
}

/// Where the hook sends its updates and reads its zones from.
pub(crate) enum UpdatesTo {
    /// The knotd the zones are edited on.
    Primary,
    /// The first secondary, which forwards updates to the primary (Knot's
    /// DDNS forwarding: `master:` doubles as the update target).
    Secondary,
}

pub(crate) struct Lab {
    // Field order is drop order: Kea unloads the hook before knotd stops,
    // and the namespaces go last.
    pub(crate) kea: Kea,
    /// knotd secondaries of `knot` beside it on 127.0.0.2, 127.0.0.3, ...
    pub(crate) secondaries: Vec<Knot>,
    pub(crate) knot: Knot,
    pub(crate) side: Option<SideNetns>,
    pub(crate) net: Netns,
    _journal: tempfile::TempDir,
}

impl Lab {
    pub(crate) fn start(at: KnotAt) -> Lab {
        Self::start_with(at, 0, &UpdatesTo::Primary)
    }

    /// knotd as a primary on 127.0.0.1 in the server namespace with
    /// `count` secondaries that follow it by NOTIFY/IXFR, each its own
    /// knotd on its own loopback address; the hook talks to `updates_to`.
    pub(crate) fn with_secondaries(count: usize, updates_to: &UpdatesTo) -> Lab {
        Self::start_with(KnotAt::Server, count, updates_to)
    }

    fn start_with(at: KnotAt, secondaries: usize, updates_to: &UpdatesTo) -> Lab {
        let net = Netns::new().expect("namespaces");
        let side = match at {
            KnotAt::Server => None,
            KnotAt::Side => Some(SideNetns::new(&net).expect("side namespace")),
        };
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone());
        kopts.forward_records = vec![format!("printer A {}", net.addr(0, 250))];
        // 127.0.0.0/8 is all on `lo`: each secondary binds its own address.
        kopts.notify = (0..secondaries)
            .map(|i| {
                let last = u8::try_from(2 + i).expect("a few secondaries");
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 53)
            })
            .collect();
        let place = match &side {
            Some(side) => {
                kopts.listen = vec![IpAddr::V4(side.addr())];
                side.place()
            }
            None => net.server(),
        };
        let knot = Knot::start(place, &kopts).expect("knotd starts");
        // Each start waits until the secondary has transferred both zones.
        let secondaries: Vec<Knot> = kopts
            .notify
            .iter()
            .map(|addr| {
                Knot::start(net.server(), &KnotOptions::secondary_of(&knot, addr.ip()))
                    .expect("a knotd secondary starts and transfers the zones")
            })
            .collect();
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let updated = match updates_to {
            UpdatesTo::Primary => &knot,
            UpdatesTo::Secondary => secondaries.first().expect("a secondary"),
        };
        let params = updated.hook_parameters(journal.path());
        let mut opts = KeaOptions::for_netns(&net).with_ddns_naming(&kopts.forward_zone);
        // Long enough that nothing expires during a test: every lease in the
        // file must be in DNS.
        opts.valid_lifetime = 3600;
        let kea = super::start_kea_with_hook(&net, opts, params);
        Lab {
            kea,
            secondaries,
            knot,
            side,
            net,
            _journal: journal,
        }
    }

    pub(crate) fn dns(&self) -> Dns {
        self.knot.dns()
    }

    pub(crate) fn stat(&self, name: &str) -> i64 {
        stat_at(&self.kea.socket_path(), name).unwrap_or(0)
    }

    /// Every `leasedns.*` statistic, for failure messages and the figures.
    pub(crate) fn stats_line(&self) -> String {
        super::stats_line(&self.kea)
    }

    /// Starts perfdhcp from the client namespace on another thread.
    pub(crate) fn burst(&self, run: Perfdhcp) -> JoinHandle<harness::Result<PerfdhcpReport>> {
        super::burst(&self.net, run)
    }

    pub(crate) fn dhclient(&self, name: &str) -> Dhclient {
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
    pub(crate) fn converge(&self, since: Instant) -> (f64, usize) {
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
                if let Some(diff) = self.secondaries_differ()? {
                    return Err(diff);
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

    /// None when every secondary holds exactly the primary's zones, SOA
    /// (so its serial) included; otherwise the first difference.
    fn secondaries_differ(&self) -> Result<Option<String>, String> {
        if self.secondaries.is_empty() {
            return Ok(None);
        }
        let zones = [ZONE.to_owned(), self.net.reverse_zone()];
        let primary = ZoneCopy::read(&self.knot.dns(), &zones)?;
        for secondary in &self.secondaries {
            let copy = ZoneCopy::read(&secondary.dns(), &zones)?;
            if let Some(diff) = copy.differs_from(&primary) {
                return Ok(Some(format!("secondary {}: {diff}", secondary.addr())));
            }
        }
        Ok(None)
    }

    /// The statistics that must stay zero whatever the fault.
    pub(crate) fn assert_nothing_lost(&self) {
        super::assert_nothing_lost(&self.kea, |name| self.stat(name));
    }

    /// The end of an outage test: prints the figures, then checks that
    /// changes were held in the hook's journal during the outage and that
    /// nothing was lost.
    pub(crate) fn assert_outage_ridden_out(
        &self,
        test: &str,
        acks: u64,
        peaks: Peaks,
        converged: (f64, usize),
    ) {
        self.figures(test, acks, peaks, converged);
        assert!(
            peaks.journal > 0,
            "changes were held in the journal during the outage"
        );
        self.assert_nothing_lost();
    }

    pub(crate) fn figures(&self, test: &str, acks: u64, peaks: Peaks, converged: (f64, usize)) {
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
pub(crate) struct Peaks {
    pub(crate) queue: i64,
    pub(crate) journal: i64,
}

/// Polls the backlog gauges on a thread and keeps their maxima.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Peaks>,
}

impl Sampler {
    pub(crate) fn start(kea: &Kea) -> Sampler {
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

    pub(crate) fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("sampler thread")
    }
}

/// Every record of some zones as one server serves them, by AXFR.
struct ZoneCopy {
    /// Per zone: its SOA serial and its records as
    /// `name ttl type rdata` lines, SOA included.
    zones: Vec<(u32, BTreeSet<String>)>,
}

impl ZoneCopy {
    fn read(dns: &Dns, zones: &[String]) -> Result<ZoneCopy, String> {
        let mut copy = ZoneCopy { zones: Vec::new() };
        for zone in zones {
            let records = dns.axfr(zone).map_err(|e| e.to_string())?;
            let serial = records
                .iter()
                .find(|r| r.rtype == "SOA")
                .and_then(|soa| soa.rdata.split_whitespace().nth(2)?.parse().ok())
                .ok_or_else(|| format!("no SOA serial in the AXFR of {zone}"))?;
            let lines = records
                .iter()
                .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.rtype, r.rdata))
                .collect();
            copy.zones.push((serial, lines));
        }
        Ok(copy)
    }

    /// None when both hold the same records; otherwise the serials and
    /// what this copy lacks or has beyond `reference`.
    fn differs_from(&self, reference: &ZoneCopy) -> Option<String> {
        let diffs: Vec<String> = self
            .zones
            .iter()
            .zip(&reference.zones)
            .filter(|(ours, theirs)| ours != theirs)
            .map(|((serial, ours), (ref_serial, theirs))| {
                let missing: Vec<_> = theirs.difference(ours).take(3).collect();
                let extra: Vec<_> = ours.difference(theirs).take(3).collect();
                format!(
                    "serial {serial} (primary {ref_serial}), {} records missing (e.g. {missing:?}), {} extra (e.g. {extra:?})",
                    theirs.difference(ours).count(),
                    ours.difference(theirs).count(),
                )
            })
            .collect();
        (!diffs.is_empty()).then(|| diffs.join("; "))
    }
}

pub(crate) fn join(burst: JoinHandle<harness::Result<PerfdhcpReport>>) -> PerfdhcpReport {
    burst
        .join()
        .expect("perfdhcp thread")
        .expect("perfdhcp runs")
}

/// Sleeps until `at` (no-op when it has passed).
pub(crate) fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}
