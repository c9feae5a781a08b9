//! Observers that run inside the benchmark's network namespaces: the
//! client veth's packet counters (when the first DISCOVER or Solicit left
//! and the last ACK or Reply arrived), Knot's SOA serials (when the zones last changed) and zone
//! transfers (which records exist). Each runs on its own thread that has
//! entered the namespace with setns, so nothing here spawns a process per
//! sample and the observers cost the machine almost nothing.

use crate::BenchError;
use ddns_engine::dns;
use harness::Family;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COUNTER_INTERVAL: Duration = Duration::from_millis(2);
const SOA_INTERVAL: Duration = Duration::from_millis(10);
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` on a new thread inside network namespace `ns`.
pub(crate) fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T, BenchError>>, BenchError> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| BenchError::io(&path, e))?;
    std::thread::Builder::new()
        .name(format!("probe-{ns}"))
        .spawn(move || {
            // SAFETY: setns on this thread only, with a valid namespace fd
            // that `file` keeps open for the duration of the call.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(BenchError::io(
                    format!("setns {path}"),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .map_err(|e| BenchError::io("spawning a probe thread", e))
}

/// Runs `f` inside `ns` and waits for its result.
pub(crate) fn run_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    in_netns(ns, f)?
        .join()
        .map_err(|_| BenchError::Failed("a probe thread panicked".into()))??
}

/// What the client veth saw while perfdhcp ran.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WireTimes {
    /// When the first packet left the client (perfdhcp's first DISCOVER).
    pub(crate) first_sent: Option<Instant>,
    /// When the last packet reached the client (the last OFFER or ACK).
    pub(crate) last_received: Option<Instant>,
    pub(crate) sent: u64,
    pub(crate) received: u64,
}

/// Samples the client namespace's UDP counters of the run's family (else
/// the interface's packet counters) every 2 ms until stopped.
pub(crate) struct WireClock {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Result<WireTimes, BenchError>, BenchError>>,
}

impl WireClock {
    pub(crate) fn start(ns: &str, iface: &str, family: Family) -> Result<Self, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let iface = iface.to_owned();
        let thread = in_netns(ns, move || sample_counters(&iface, family, &flag))?;
        Ok(Self { stop, thread })
    }

    pub(crate) fn finish(self) -> Result<WireTimes, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| BenchError::Failed("the counter thread panicked".into()))??
    }
}

/// Prefers the client namespace's UDP datagram counters: perfdhcp (a
/// relay in v4, a link-local client in v6) talks to Kea over UDP, and
/// nothing else there does, so ARP, neighbour discovery and MLD cannot move
/// the clock. IPv6 datagrams count only in `snmp6`, IPv4 ones only in
/// `snmp`. The interface's packet counters are the fallback.
fn sample_counters(
    iface: &str,
    family: Family,
    stop: &AtomicBool,
) -> Result<WireTimes, BenchError> {
    let at_start = read_counters(iface)?;
    let read_udp = match family {
        Family::V4 => read_udp,
        Family::V6 => read_udp6,
    };
    if let Some(udp_at_start) = read_udp() {
        return sample(udp_at_start, stop, || Ok(read_udp()));
    }
    sample(at_start, stop, || read_counters(iface).map(Some))
}

/// Samples a (received, sent) counter pair every `COUNTER_INTERVAL` until
/// `stop`: the first send, the last receive and the totals since `start`.
/// A reading of `None` is skipped.
fn sample(
    (rx0, tx0): (u64, u64),
    stop: &AtomicBool,
    read: impl Fn() -> Result<Option<(u64, u64)>, BenchError>,
) -> Result<WireTimes, BenchError> {
    let mut times = WireTimes::default();
    let mut last_rx = rx0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some((rx, tx)) = read()? {
            if tx > tx0 && times.first_sent.is_none() {
                times.first_sent = Some(now);
            }
            if rx != last_rx {
                times.last_received = Some(now);
                last_rx = rx;
            }
            times.sent = tx - tx0;
            times.received = rx - rx0;
        }
        std::thread::sleep(COUNTER_INTERVAL);
    }
    Ok(times)
}

/// (InDatagrams, OutDatagrams) of the calling thread's namespace.
fn read_udp() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").ok()?;
    parse_snmp_udp(&text)
}

fn parse_snmp_udp(text: &str) -> Option<(u64, u64)> {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let header: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let index = header.iter().position(|h| *h == name)?;
        values.get(index)?.parse().ok()
    };
    Some((field("InDatagrams")?, field("OutDatagrams")?))
}

/// (Udp6InDatagrams, Udp6OutDatagrams) of the calling thread's namespace.
fn read_udp6() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp6").ok()?;
    parse_snmp6_udp(&text)
}

fn parse_snmp6_udp(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next()? == name).then(|| parts.next()?.parse().ok())?
        })
    };
    Some((field("Udp6InDatagrams")?, field("Udp6OutDatagrams")?))
}

/// (rx packets, tx packets) of `iface` in the calling thread's namespace.
fn read_counters(iface: &str) -> Result<(u64, u64), BenchError> {
    // thread-self: /proc/self/net would show the main thread's namespace.
    let path = "/proc/thread-self/net/dev";
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    parse_dev(&text, iface).ok_or_else(|| BenchError::Failed(format!("{iface} not in {path}")))
}

fn parse_dev(text: &str, iface: &str) -> Option<(u64, u64)> {
    let line = text.lines().find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == iface).then_some(rest)
    })?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    Some((*fields.get(1)?, *fields.get(9)?))
}

/// Serial changes of the zones, as seen by polling SOA every 10 ms.
#[derive(Clone, Debug, Default)]
pub(crate) struct SerialLog {
    /// Per zone, (first time seen, serial) in the order observed.
    pub(crate) changes: HashMap<String, Vec<(Instant, u32)>>,
}

impl SerialLog {
    /// When `zone` was first seen at `serial`.
    pub(crate) fn first_seen(&self, zone: &str, serial: u32) -> Option<Instant> {
        self.changes
            .get(zone)?
            .iter()
            .find(|(_, s)| *s == serial)
            .map(|(t, _)| *t)
    }

    /// When any zone last changed serial.
    pub(crate) fn last_change(&self) -> Option<Instant> {
        self.changes
            .values()
            .filter_map(|v| v.last())
            .map(|(t, _)| *t)
            .max()
    }
}

/// Polls the zones' SOA serials in the server namespace until stopped.
pub(crate) struct SerialWatch {
    stop: Arc<AtomicBool>,
    log: Arc<Shared<SerialLog>>,
    thread: JoinHandle<Result<Result<(), BenchError>, BenchError>>,
}

/// The serial log, read by the benchmark while the watch thread writes it.
#[derive(Debug, Default)]
struct Shared<T>(Mutex<T>);

impl<T: Clone> Shared<T> {
    fn get(&self) -> T {
        match self.0.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut T)) {
        match self.0.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl SerialWatch {
    pub(crate) fn start(
        ns: &str,
        server: SocketAddr,
        zones: Vec<String>,
    ) -> Result<Self, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Shared::default());
        let (flag, shared) = (stop.clone(), log.clone());
        let thread = in_netns(ns, move || watch_serials(server, &zones, &flag, &shared))?;
        Ok(Self { stop, log, thread })
    }

    /// What has been seen so far.
    pub(crate) fn log(&self) -> SerialLog {
        self.log.get()
    }

    pub(crate) fn finish(self) -> Result<SerialLog, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| BenchError::Failed("the SOA thread panicked".into()))???;
        Ok(self.log.get())
    }
}

fn watch_serials(
    server: SocketAddr,
    zones: &[String],
    stop: &AtomicBool,
    log: &Shared<SerialLog>,
) -> Result<(), BenchError> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(server).map(|()| s))
        .map_err(|e| BenchError::io("SOA socket", e))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| BenchError::io("SOA socket", e))?;
    let queries: Vec<(String, Vec<u8>)> = zones
        .iter()
        .map(|z| Ok((z.clone(), query_bytes(z, RecordType::SOA)?)))
        .collect::<Result<_, BenchError>>()?;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        for (zone, query) in &queries {
            // A lost or late answer is skipped: the next poll catches up.
            if socket.send(query).is_err() {
                continue;
            }
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            let now = Instant::now();
            let Some(serial) = soa_serial(&buf[..n]) else {
                continue;
            };
            log.update(|log| {
                let seen = log.changes.entry(zone.clone()).or_default();
                if seen.last().is_none_or(|(_, s)| *s != serial) {
                    seen.push((now, serial));
                }
            });
        }
        std::thread::sleep(SOA_INTERVAL);
    }
    Ok(())
}

fn query_bytes(zone: &str, rtype: RecordType) -> Result<Vec<u8>, BenchError> {
    let name = Name::from_ascii(zone).map_err(|e| BenchError::Failed(format!("{zone}: {e}")))?;
    let mut message = Message::new(0x4c44, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name, rtype));
    message
        .to_vec()
        .map_err(|e| BenchError::Failed(format!("encoding a query: {e}")))
}

fn soa_serial(bytes: &[u8]) -> Option<u32> {
    let message = Message::from_vec(bytes).ok()?;
    message.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// The records of a zone that the benchmark checks.
#[derive(Clone, Debug, Default)]
pub(crate) struct ZoneContents {
    pub(crate) serial: u32,
    /// Owner (lower-case, absolute) to its A addresses.
    pub(crate) a: HashMap<String, Vec<Ipv4Addr>>,
    /// Owner (lower-case, absolute) to its AAAA addresses.
    pub(crate) aaaa: HashMap<String, Vec<Ipv6Addr>>,
    /// Owner (lower-case, absolute) to its PTR targets.
    pub(crate) ptr: HashMap<String, Vec<String>>,
}

/// Transfers `zone` by AXFR over TCP from `server` (run inside the
/// namespace the server listens in), with the hook's own transport.
pub(crate) fn axfr(server: SocketAddr, zone: &str) -> Result<ZoneContents, BenchError> {
    let context = || format!("AXFR {zone} from {server}");
    let name = Name::from_ascii(zone).map_err(|e| BenchError::Failed(format!("{zone}: {e}")))?;
    let records = dns::transfer(
        &name,
        server,
        None,
        DNS_TIMEOUT,
        Instant::now() + DNS_TIMEOUT * 4,
    )
    .map_err(|e| BenchError::Failed(format!("{}: {e}", context())))?;
    let mut contents = ZoneContents::default();
    for record in &records {
        let owner = record.name.to_lowercase().to_ascii();
        match &record.data {
            RData::SOA(soa) => contents.serial = soa.serial,
            RData::A(a) => contents.a.entry(owner).or_default().push(a.0),
            RData::AAAA(aaaa) => contents.aaaa.entry(owner).or_default().push(aaaa.0),
            RData::PTR(ptr) => contents
                .ptr
                .entry(owner)
                .or_default()
                .push(ptr.0.to_lowercase().to_ascii()),
            _ => {}
        }
    }
    Ok(contents)
}

pub(crate) use harness::reverse_name as ptr_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rx_and_tx_packets_of_one_interface() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n\
            ld12x3c: 5000      41    0    0    0     0          0         0     9000      77    0    0    0     0       0          0\n";
        assert_eq!(parse_dev(text, "ld12x3c"), Some((41, 77)));
        assert_eq!(parse_dev(text, "lo"), Some((2, 2)));
        assert_eq!(parse_dev(text, "eth0"), None);
    }

    #[test]
    fn reads_udp_datagram_counters() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
            Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
            Udp: 1200 3 0 1300 0 0\n\
            UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(parse_snmp_udp(text), Some((1200, 1300)));
        assert_eq!(parse_snmp_udp("Ip: a\nIp: 1\n"), None);
    }

    #[test]
    fn reads_udp6_datagram_counters() {
        let text = "Ip6InReceives                   \t40\nUdp6InDatagrams                 \t17\n\
            Udp6NoPorts                     \t0\nUdp6OutDatagrams                \t21\n\
            UdpLite6InDatagrams             \t0\n";
        assert_eq!(parse_snmp6_udp(text), Some((17, 21)));
        assert_eq!(parse_snmp6_udp("Ip6InReceives 4\n"), None);
    }

    #[test]
    fn soa_query_round_trips_and_serial_is_read_from_answers() {
        let bytes = query_bytes("lan.example.", RecordType::SOA).unwrap();
        let message = Message::from_vec(&bytes).unwrap();
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.queries[0].query_type(), RecordType::SOA);
        // A query carries no answer, so no serial.
        assert_eq!(soa_serial(&bytes), None);
    }

    #[test]
    fn serial_log_finds_first_sighting() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(30);
        let mut log = SerialLog::default();
        log.changes.insert("z.".into(), vec![(t0, 1), (t1, 7)]);
        assert_eq!(log.first_seen("z.", 7), Some(t1));
        assert_eq!(log.first_seen("z.", 3), None);
        assert_eq!(log.last_change(), Some(t1));
    }

    #[test]
    fn ptr_names_reverse_the_octets() {
        assert_eq!(
            ptr_name(Ipv4Addr::new(10, 12, 3, 4).into()),
            "4.3.12.10.in-addr.arpa."
        );
        assert_eq!(
            ptr_name("fd77:42::1:5".parse::<Ipv6Addr>().unwrap().into()),
            "5.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.4.0.0.7.7.d.f.ip6.arpa."
        );
    }
}
