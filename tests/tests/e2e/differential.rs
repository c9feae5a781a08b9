//! The differential test of issue 13: the stock path (kea-dhcp4 sending
//! NameChangeRequests to kea-dhcp-ddns, which updates knotd) is the oracle
//! for the leasedns hook. One scenario table drives two runs, each with its
//! own namespaces, lease file and fresh knotd:
//! - stock: kea-dhcp4 with `dhcp-ddns` enabled and a real kea-dhcp-ddns;
//! - hook: the same kea-dhcp4 configuration with `dhcp-ddns` disabled and
//!   the hook loaded, its parameters the D2 configuration's `tsig-keys`,
//!   `forward-ddns` and `reverse-ddns` as they are, plus `journal-dir`.
//!
//! Kea's own `ddns-*` settings (global, shared network, subnet,
//! reservations) decide every name and flag in both runs. The same relayed
//! clients run in the same order (so Kea hands out the same addresses)
//! through allocation, renewal and release; after each phase both runs'
//! zones (A, PTR, DHCID and their TTLs) and every DHCP answer's options 81
//! and 12 must be identical.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use harness::{
    ClientFqdn, ClientSpec, D2, D2Options, Kea, KeaOptions, Knot, KnotOptions, Netns, RelayClient,
    RelayLease, Reply, ddns_domains, hook_library, kea_release, require_root, wait_until,
};
use serde_json::{Map, Value, json};

/// The one forward zone; every subnet qualifies names below it.
const ZONE: &str = "lan.example.";
/// Both runs use `10.200.0.0/16`, each in its own namespaces, so addresses,
/// generated names and DHCIDs can be compared as they are.
const OCTET: u8 = 200;
const VALID_LIFETIME: u32 = 3600;
/// How long DNS may take to follow one phase.
const SETTLE_DEADLINE: Duration = Duration::from_secs(90);
/// The hook publishes its statistics once a second (kea-hook TICK_MS).
const HOOK_TICK: Duration = Duration::from_millis(1500);

const S: u8 = ClientFqdn::S;
const E: u8 = ClientFqdn::E;
const N: u8 = ClientFqdn::N;

/// One client of the scenario. Its MAC is `02:00:00:00:<subnet>:<row>`.
struct Case {
    label: &'static str,
    /// The third octet of its relay address: which subnet serves it.
    subnet: u8,
    /// Option 61 (`01` + MAC): DHCIDs of identifier type 1.
    client_id: bool,
    /// Option 81: flags and name (a trailing dot makes it full).
    fqdn: Option<(u8, &'static str)>,
    /// Option 12.
    hostname: Option<&'static str>,
    /// Option 81 of its renewal, when it differs from the allocation's.
    renew_fqdn: Option<(u8, &'static str)>,
    /// Option 50 in the DISCOVER: the last octet of an address in its
    /// subnet (in a shared network Kea may otherwise pick a sibling subnet).
    requested: Option<u8>,
}

const fn case(label: &'static str, subnet: u8) -> Case {
    Case {
        label,
        subnet,
        client_id: false,
        fqdn: None,
        hostname: None,
        renew_fqdn: None,
        requested: None,
    }
}

impl Case {
    const fn fqdn(mut self, flags: u8, name: &'static str) -> Self {
        self.fqdn = Some((flags, name));
        self
    }
    const fn hostname(mut self, name: &'static str) -> Self {
        self.hostname = Some(name);
        self
    }
    const fn client_id(mut self) -> Self {
        self.client_id = true;
        self
    }
    const fn renew_fqdn(mut self, flags: u8, name: &'static str) -> Self {
        self.renew_fqdn = Some((flags, name));
        self
    }
    const fn requested(mut self, last_octet: u8) -> Self {
        self.requested = Some(last_octet);
        self
    }
}

/// The clients, in the order both runs serve them. Subnets (see
/// [`dhcp4_scopes`]): 1 global settings (`g.lan.example.`, replace never,
/// update on renew, reservations), 2 always (`b.`, prefix `gen`), 3
/// when-present (`c.`), 4 when-not-present (`d.`, prefix `anon`, `_` -> `x`),
/// 5 updates off, 6 overrides and no conflict resolution (`f.`), 7 and 8 a
/// shared network (`s.`, and `t.` in 8).
const CASES: &[Case] = &[
    case("partial-s", 1)
        .fqdn(S | E, "alpha")
        .renew_fqdn(S | E, "alpha2"),
    case("full-client-does-a", 1).fqdn(E, "beta.g.lan.example."),
    case("no-update-n", 1).fqdn(N | E, "gamma"),
    case("hostname-only", 1).hostname("delta"),
    case("nameless", 1),
    case("reserved-named", 1).hostname("ignored"),
    case("reserved-unnamed-ascii", 1)
        .client_id()
        .fqdn(S, "epsilon"),
    case("static-conflict", 1).fqdn(S | E, "taken"),
    case("empty-name", 1).fqdn(S | E, ""),
    case("outside-zone", 1).fqdn(S | E, "pi.elsewhere.example."),
    case("client-id-hostname", 1).client_id().hostname("nu"),
    case("always-replaced", 2).fqdn(S | E, "zeta"),
    case("always-nameless", 2),
    case("when-present-hostname", 3).hostname("eta"),
    case("when-present-nameless", 3),
    case("char-replaced-hostname", 4).hostname("my_host"),
    case("char-replaced-full", 4).fqdn(S | E, "under_score.d.lan.example."),
    case("generated-nameless", 4),
    case("generated-empty", 4).fqdn(S | E, ""),
    case("fqdn-and-hostname", 4)
        .fqdn(S | E, "xi")
        .hostname("omicron"),
    case("updates-off", 5).fqdn(S | E, "theta"),
    case("override-client-update", 6).fqdn(E, "iota"),
    case("override-no-update", 6).fqdn(N | E, "kappa"),
    case("static-overwrite", 6).fqdn(S | E, "taken"),
    case("shared-inherited", 7).fqdn(S | E, "lambda"),
    case("shared-subnet-suffix", 8).hostname("mu").requested(20),
];

fn mac(row: usize, case: &Case) -> [u8; 6] {
    [
        2,
        0,
        0,
        0,
        case.subnet,
        u8::try_from(row + 1).unwrap_or(u8::MAX),
    ]
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn mac_of(label: &str) -> [u8; 6] {
    CASES
        .iter()
        .enumerate()
        .find(|(_, c)| c.label == label)
        .map(|(row, c)| mac(row, c))
        .unwrap_or_else(|| panic!("no case {label}"))
}

fn spec(row: usize, case: &Case, fqdn: Option<(u8, &str)>) -> ClientSpec {
    let mac = mac(row, case);
    ClientSpec {
        mac,
        client_id: case.client_id.then(|| [&[1u8][..], &mac[..]].concat()),
        fqdn: fqdn.map(|(flags, name)| ClientFqdn::request(flags, name)),
        hostname: case.hostname.map(str::to_owned),
        requested: case.requested.map(|d| addr(case.subnet, d)),
    }
}

fn addr(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, OCTET, c, d)
}

fn relay_addr(subnet: u8) -> Ipv4Addr {
    addr(subnet, 1)
}

fn subnet(k: u8, extra: Value) -> Value {
    let mut subnet = json!({
        "id": k,
        "subnet": format!("10.{OCTET}.{k}.0/24"),
        "pools": [{ "pool": format!("10.{OCTET}.{k}.10 - 10.{OCTET}.{k}.99") }],
    });
    if let (Value::Object(map), Value::Object(extra)) = (&mut subnet, extra) {
        map.extend(extra);
    }
    subnet
}

/// The Dhcp4 keys of the scenario (globals, `subnet4`, `shared-networks`),
/// the same in both runs. Settings newer releases added go only where the
/// installed Kea has them.
fn dhcp4_scopes(release: (u32, u32)) -> Map<String, Value> {
    let since_2_6 = release >= (2, 6);
    let since_3_0 = release >= (3, 0);
    let mut subnet2 = json!({
        "ddns-qualifying-suffix": "b.lan.example.",
        "ddns-replace-client-name": "always",
        "ddns-generated-prefix": "gen",
    });
    if since_2_6 {
        subnet2["ddns-ttl-percent"] = json!(0.5);
    }
    let mut subnet3 = json!({
        "ddns-qualifying-suffix": "c.lan.example.",
        "ddns-replace-client-name": "when-present",
    });
    if since_3_0 {
        subnet3["ddns-ttl"] = json!(900);
    }
    let mut subnet6 = json!({
        "ddns-qualifying-suffix": "f.lan.example.",
        "ddns-override-client-update": true,
        "ddns-override-no-update": true,
    });
    // Kea 2.6 turned the boolean into a mode (and still takes the boolean,
    // with a deprecation warning).
    if since_2_6 {
        subnet6["ddns-conflict-resolution-mode"] = json!("no-check-with-dhcid");
    } else {
        subnet6["ddns-use-conflict-resolution"] = json!(false);
    }
    let subnets = vec![
        subnet(
            1,
            json!({
                "ddns-update-on-renew": true,
                "reservations": [
                    {
                        "hw-address": mac_text(mac_of("reserved-named")),
                        "ip-address": addr(1, 200).to_string(),
                        "hostname": "reserved-host",
                    },
                    {
                        "hw-address": mac_text(mac_of("reserved-unnamed-ascii")),
                        "ip-address": addr(1, 201).to_string(),
                    },
                ],
            }),
        ),
        subnet(2, subnet2),
        subnet(3, subnet3),
        subnet(
            4,
            json!({
                "ddns-qualifying-suffix": "d.lan.example.",
                "ddns-replace-client-name": "when-not-present",
                "ddns-generated-prefix": "anon",
                "hostname-char-set": "[^A-Za-z0-9.-]",
                "hostname-char-replacement": "x",
            }),
        ),
        subnet(
            5,
            json!({ "ddns-qualifying-suffix": "e.lan.example.", "ddns-send-updates": false }),
        ),
        subnet(6, subnet6),
    ];
    let shared = json!([{
        "name": "shared",
        "ddns-qualifying-suffix": "s.lan.example.",
        "ddns-update-on-renew": true,
        "subnet4": [
            subnet(7, json!({})),
            subnet(8, json!({ "ddns-qualifying-suffix": "t.lan.example." })),
        ],
    }]);
    let mut scopes = Map::new();
    // Packets are handled in order (Kea 2.4+ defaults to a thread pool), so
    // an answer proves earlier packets finished; see `Run::release`.
    scopes.insert(
        "multi-threading".into(),
        json!({ "enable-multi-threading": false }),
    );
    scopes.insert("ddns-send-updates".into(), json!(true));
    scopes.insert("ddns-qualifying-suffix".into(), json!("g.lan.example."));
    scopes.insert("ddns-replace-client-name".into(), json!("never"));
    scopes.insert("ddns-generated-prefix".into(), json!("myhost"));
    scopes.insert("ddns-update-on-renew".into(), json!(false));
    scopes.insert("subnet4".into(), Value::Array(subnets));
    scopes.insert("shared-networks".into(), shared);
    scopes
}

/// A records deleted by hand after the allocation: `delta` is in subnet 1
/// (`ddns-update-on-renew` true), `myxhost` in subnet 4 (false, global).
const VANDALISED: [&str; 2] = ["delta.g.lan.example.", "myxhost.d.lan.example."];

/// Zone-file lines of the static records some clients collide with.
fn static_records() -> Vec<String> {
    vec![
        format!("taken.g A {}", addr(0, 250)),
        format!("taken.f A {}", addr(0, 251)),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Stock,
    Hook,
}

/// One record as compared: (owner, type, TTL, rdata).
type Record = (String, String, u32, String);

/// What one run showed after one phase.
struct Observed {
    /// Every DHCP answer of the phase, labelled `client: message`.
    replies: Vec<(String, Reply)>,
    forward: BTreeSet<Record>,
    reverse: BTreeSet<Record>,
}

/// One run's daemons, clients and observations.
struct Run {
    path: Path,
    // Field order: daemons stop before the namespaces go.
    kea: Kea,
    d2: Option<D2>,
    knot: Knot,
    relay: RelayClient,
    _journal: tempfile::TempDir,
    net: Netns,
}

impl Run {
    fn start(path: Path, release: (u32, u32)) -> Run {
        let net = Netns::with_octet(OCTET).expect("namespaces");
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone());
        kopts.forward_records = static_records();
        let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
        let ddns = ddns_domains(
            knot.key(),
            knot.addr(),
            knot.port(),
            ZONE,
            &net.reverse_zone(),
        );
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let mut opts = KeaOptions::for_netns(&net);
        opts.valid_lifetime = VALID_LIFETIME;
        // The same logging in both runs; the stock run needs it to count NCRs.
        D2::ncr_logging(&mut opts);
        opts.dhcp4_extra = dhcp4_scopes(release);
        let d2 = match path {
            Path::Stock => {
                let d2 =
                    D2::start(&net.server(), &D2Options::new(ddns)).expect("kea-dhcp-ddns starts");
                opts.dhcp4_extra.insert("dhcp-ddns".into(), d2.dhcp_ddns());
                Some(d2)
            }
            Path::Hook => {
                opts.dhcp4_extra
                    .insert("dhcp-ddns".into(), json!({ "enable-updates": false }));
                let mut params = ddns;
                params["journal-dir"] = json!(journal.path().to_string_lossy());
                let library = hook_library()
                    .expect("the hook library is built (cargo build --release -p kea-hook)");
                opts = opts.with_hook(&library, params);
                None
            }
        };
        let kea = Kea::start(net.server(), opts)
            .unwrap_or_else(|e| panic!("{path:?} run: kea-dhcp4 starts: {e}"));
        let relays: BTreeSet<u8> = CASES.iter().map(|c| c.subnet).collect();
        let relays: Vec<Ipv4Addr> = relays.into_iter().map(relay_addr).collect();
        let relay = RelayClient::new(&net, &relays).expect("relay client");
        Run {
            path,
            kea,
            d2,
            knot,
            relay,
            _journal: journal,
            net,
        }
    }

    /// Allocates a lease for every client, in order.
    fn allocate(&self) -> (Vec<RelayLease>, Vec<(String, Reply)>) {
        let mut leases = Vec::new();
        let mut replies = Vec::new();
        for (row, case) in CASES.iter().enumerate() {
            let lease = self
                .relay
                .allocate(&spec(row, case, case.fqdn), relay_addr(case.subnet))
                .unwrap_or_else(|e| panic!("{:?} run: {}: allocation: {e}", self.path, case.label));
            replies.push((format!("{}: offer", case.label), lease.offer.clone()));
            replies.push((format!("{}: ack", case.label), lease.ack.clone()));
            leases.push(lease);
        }
        (leases, replies)
    }

    /// Renews every lease, in order, with the renewal's names.
    fn renew(&self, leases: &[RelayLease]) -> Vec<(String, Reply)> {
        CASES
            .iter()
            .enumerate()
            .zip(leases)
            .map(|((row, case), lease)| {
                let fqdn = case.renew_fqdn.or(case.fqdn);
                let reply = self
                    .relay
                    .renew(&spec(row, case, fqdn), lease)
                    .unwrap_or_else(|e| {
                        panic!("{:?} run: {}: renewal: {e}", self.path, case.label)
                    });
                (format!("{}: renewal ack", case.label), reply)
            })
            .collect()
    }

    /// Releases every lease, in order, each confirmed by Kea's log; then a
    /// DISCOVER whose answer shows Kea has finished the last release (Kea
    /// logs a release before it queues the release's NCR, and handles one
    /// packet at a time here).
    fn release(&self, leases: &[RelayLease]) -> Vec<(String, Reply)> {
        const RELEASED: [&str; 3] = [
            "DHCP4_RELEASE",
            "DHCP4_RELEASE_DELETED",
            "DHCP4_RELEASE_EXPIRED",
        ];
        for ((row, case), lease) in CASES.iter().enumerate().zip(leases) {
            self.relay
                .release(&spec(row, case, None), lease)
                .unwrap_or_else(|e| panic!("{:?} run: {}: release: {e}", self.path, case.label));
            let needle = format!("address {} ", lease.address);
            wait_until(
                Duration::from_secs(20),
                &format!("kea-dhcp4 to log the release of {}", lease.address),
                || {
                    self.kea.log().lines().any(|l| {
                        l.contains(&needle)
                            && l.split_whitespace().any(|word| RELEASED.contains(&word))
                    })
                },
            )
            .unwrap_or_else(|e| panic!("{:?} run: {}: {e}", self.path, case.label));
        }
        self.reclaim_released();
        let barrier = ClientSpec {
            mac: [2, 0, 0, 0, 0xff, 0xff],
            ..ClientSpec::default()
        };
        let offer = self
            .relay
            .discover(&barrier, relay_addr(5))
            .unwrap_or_else(|e| panic!("{:?} run: DISCOVER after the releases: {e}", self.path));
        vec![("after-release: offer".to_owned(), offer)]
    }

    /// Kea 2.6+ keeps a released lease, expired, for the same client
    /// (`hold-reclaimed-time` and `flush-reclaimed-timer-wait-time` both
    /// non-zero by default) and withdraws its DNS records only when it
    /// reclaims the lease. Kea's `leases-reclaim` does that now rather than
    /// at the next timer; a lease released in the current second is not yet
    /// past its expiry, hence the polling until Kea's `reclaimed-leases`
    /// counts every release it logged as expired.
    fn reclaim_released(&self) {
        let expired = self
            .kea
            .log()
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == "DHCP4_RELEASE_EXPIRED"))
            .count();
        if expired == 0 {
            return;
        }
        let expired = i64::try_from(expired).unwrap_or(i64::MAX);
        let mut reclaimed = None;
        wait_until(
            Duration::from_secs(30),
            &format!("kea-dhcp4 to reclaim {expired} released leases"),
            || {
                let _ = self
                    .kea
                    .command_ok("leases-reclaim", Some(json!({ "remove": false })));
                reclaimed = self.stat("reclaimed-leases");
                reclaimed >= Some(expired)
            },
        )
        .unwrap_or_else(|e| panic!("{:?} run: {e}; reclaimed-leases = {reclaimed:?}", self.path));
    }

    /// Waits until DNS has followed every lease change so far.
    fn settle(&self) {
        match &self.d2 {
            Some(d2) => {
                let progress = d2
                    .wait_done(&self.kea, SETTLE_DEADLINE)
                    .unwrap_or_else(|e| panic!("stock run: {e}"));
                eprintln!("differential: stock run settled: {progress:?}");
            }
            None => self.settle_hook(),
        }
    }

    /// The hook has nothing queued or pending in its journal, and its
    /// counters stayed put across a statistics tick taken after the last
    /// packet (a tick earlier may predate the last change).
    fn settle_hook(&self) {
        const NAMES: [&str; 8] = [
            "leasedns.changes-submitted",
            "leasedns.changes-unchanged",
            "leasedns.updates-sent",
            "leasedns.updates-succeeded",
            "leasedns.updates-failed",
            "leasedns.updates-refused",
            "leasedns.updates-conflict",
            "leasedns.names-rejected",
        ];
        let started = Instant::now();
        let mut stable: Option<(Instant, Vec<i64>)> = None;
        let mut last = String::new();
        let result = wait_until(SETTLE_DEADLINE, "the hook to settle", || {
            let values: Option<Vec<i64>> = NAMES.iter().map(|n| self.stat(n)).collect();
            let queued = self.stat("leasedns.queue-depth");
            let pending = self.stat("leasedns.journal-entries");
            last = format!("{values:?} queue-depth={queued:?} journal-entries={pending:?}");
            let Some(values) = values else {
                return false;
            };
            if started.elapsed() < HOOK_TICK || queued != Some(0) || pending != Some(0) {
                stable = None;
                return false;
            }
            match &stable {
                Some((since, seen)) if *seen == values => since.elapsed() >= HOOK_TICK,
                _ => {
                    stable = Some((Instant::now(), values));
                    false
                }
            }
        });
        result.unwrap_or_else(|e| {
            panic!(
                "hook run: {e}; last statistics {NAMES:?} = {last}\nkea log tail:\n{}",
                tail(&self.kea.log(), 60)
            )
        });
    }

    fn stat(&self, name: &str) -> Option<i64> {
        self.kea
            .command_ok("statistic-get", Some(json!({ "name": name })))
            .ok()
            .and_then(|v| v.get(name)?.get(0)?.get(0)?.as_i64())
    }

    /// Both zones by AXFR, without SOA and NS.
    fn zones(&self) -> (BTreeSet<Record>, BTreeSet<Record>) {
        let dns = self.knot.dns();
        let read = |zone: &str| -> BTreeSet<Record> {
            dns.axfr(zone)
                .unwrap_or_else(|e| panic!("{:?} run: AXFR {zone}: {e}", self.path))
                .into_iter()
                .filter(|r| r.rtype != "SOA" && r.rtype != "NS")
                .map(|r| (r.name, r.rtype, r.ttl, r.rdata))
                .collect()
        };
        (read(ZONE), read(&self.net.reverse_zone()))
    }

    fn observe(&self, replies: Vec<(String, Reply)>) -> Observed {
        self.settle();
        let (forward, reverse) = self.zones();
        let observed = Observed {
            replies,
            forward,
            reverse,
        };
        eprintln!("{}", listing(self.path, &observed));
        observed
    }

    /// Deletes, behind both paths' backs, the A record of a client whose
    /// subnet has `ddns-update-on-renew` (it must come back at the renewal)
    /// and of one whose subnet has not (it stays gone, as with D2).
    fn delete_behind_their_backs(&self) {
        for name in VANDALISED {
            let out = self
                .knot
                .nsupdate(ZONE, &[&format!("update delete {name} A")])
                .expect("knsupdate");
            assert!(
                out.success(),
                "{:?} run: deleting {name}: {}",
                self.path,
                out.combined()
            );
        }
    }

    /// The three phases: allocation, renewal, release. Between the first
    /// two, [`Run::delete_behind_their_backs`].
    fn play(&self) -> Vec<(&'static str, Observed)> {
        let (leases, replies) = self.allocate();
        let allocated = self.observe(replies);
        self.delete_behind_their_backs();
        let renewed = self.observe(self.renew(&leases));
        let released = self.observe(self.release(&leases));
        vec![
            ("allocation", allocated),
            ("renewal", renewed),
            ("release", released),
        ]
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn record_line((owner, rtype, ttl, rdata): &Record) -> String {
    format!("{owner} {ttl} {rtype} {rdata}")
}

fn reply_line(reply: Option<&Reply>) -> String {
    let Some(reply) = reply else {
        return "(none)".to_owned();
    };
    let fqdn = reply
        .fqdn
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let hostname = reply.hostname.as_deref().unwrap_or("-");
    format!(
        "{} {} opt81: {fqdn} opt12: {hostname:?}",
        reply.message_type, reply.yiaddr
    )
}

fn listing(path: Path, observed: &Observed) -> String {
    let mut out = format!("---- {path:?} run ----\n");
    for (label, reply) in &observed.replies {
        out.push_str(&format!("  {label}: {}\n", reply_line(Some(reply))));
    }
    for record in observed.forward.iter().chain(&observed.reverse) {
        out.push_str(&format!("  {}\n", record_line(record)));
    }
    out
}

/// A readable difference of one phase, None when the runs agree.
fn difference(phase: &str, stock: &Observed, hook: &Observed) -> Option<String> {
    let mut out = String::new();
    for (label, reply) in &stock.replies {
        let theirs = hook
            .replies
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, r)| r);
        if theirs != Some(reply) {
            out.push_str(&format!(
                "  {label}\n    stock: {}\n    hook:  {}\n",
                reply_line(Some(reply)),
                reply_line(theirs)
            ));
        }
    }
    for (what, ours, theirs) in [
        ("forward", &stock.forward, &hook.forward),
        ("reverse", &stock.reverse, &hook.reverse),
    ] {
        for record in ours.difference(theirs) {
            out.push_str(&format!(
                "  {what} only in stock: {}\n",
                record_line(record)
            ));
        }
        for record in theirs.difference(ours) {
            out.push_str(&format!(
                "  {what} only in hook:  {}\n",
                record_line(record)
            ));
        }
    }
    (!out.is_empty()).then(|| format!("after {phase}:\n{out}"))
}

fn has(records: &BTreeSet<Record>, owner: &str, rtype: &str) -> Option<String> {
    records
        .iter()
        .find(|(o, t, _, _)| o == owner && t == rtype)
        .map(|(_, _, _, rdata)| rdata.clone())
}

/// The oracle itself must have worked, or two empty zones would agree:
/// kea-dhcp-ddns published the plainest client and removed it on release.
fn check_oracle(phases: &[(&str, Observed)], release: (u32, u32)) {
    let [(_, allocated), (_, renewed), (_, released)] = phases else {
        panic!("three phases");
    };
    let address = allocated
        .replies
        .iter()
        .find(|(l, _)| l == "partial-s: ack")
        .map(|(_, r)| r.yiaddr)
        .expect("partial-s was answered");
    assert_eq!(
        has(&allocated.forward, "alpha.g.lan.example.", "A"),
        Some(address.to_string()),
        "stock run: kea-dhcp-ddns published alpha"
    );
    assert!(has(&allocated.forward, "alpha.g.lan.example.", "DHCID").is_some());
    assert_eq!(
        has(
            &allocated.reverse,
            &harness::reverse_name(address.into()),
            "PTR"
        ),
        Some("alpha.g.lan.example.".to_owned())
    );
    assert_eq!(
        has(&renewed.forward, "alpha2.g.lan.example.", "A"),
        Some(address.to_string()),
        "stock run: the renewal's new name replaced alpha"
    );
    assert!(has(&renewed.forward, "alpha.g.lan.example.", "A").is_none());
    // The records deleted by hand: without ddns-update-on-renew they stay
    // gone; with it, the renewal sends them again (before Kea 3.0, which
    // reuses the unchanged lease by default and then sends nothing).
    let [on_renew, not_on_renew] = VANDALISED;
    assert!(
        has(&renewed.forward, not_on_renew, "A").is_none(),
        "stock run: {not_on_renew} came back without ddns-update-on-renew"
    );
    if release < (3, 0) {
        assert!(
            has(&renewed.forward, on_renew, "A").is_some(),
            "stock run: ddns-update-on-renew did not bring {on_renew} back"
        );
    }
    assert!(
        has(&released.forward, "alpha2.g.lan.example.", "A").is_none(),
        "stock run: the release removed alpha2"
    );
}

#[test]
#[ignore = "needs root, kea-dhcp4, kea-dhcp-ddns, knotd: run by build/test"]
fn hook_publishes_what_kea_dhcp_ddns_publishes() {
    require_root();
    let release = kea_release().expect("kea-dhcp4 -v");
    eprintln!("differential: Kea {}.{}", release.0, release.1);

    let stock = Run::start(Path::Stock, release);
    let stock_phases = stock.play();
    drop(stock);
    check_oracle(&stock_phases, release);

    let hook = Run::start(Path::Hook, release);
    let hook_phases = hook.play();
    drop(hook);

    let differences: Vec<String> = stock_phases
        .iter()
        .zip(&hook_phases)
        .filter_map(|((phase, stock), (_, hook))| difference(phase, stock, hook))
        .collect();
    assert!(
        differences.is_empty(),
        "the hook differs from kea-dhcp-ddns (Kea {}.{}):\n{}",
        release.0,
        release.1,
        differences.join("\n")
    );
}

#[test]
fn scenario_is_well_formed() {
    let labels: BTreeSet<&str> = CASES.iter().map(|c| c.label).collect();
    assert_eq!(labels.len(), CASES.len(), "labels are unique");
    let macs: BTreeSet<[u8; 6]> = CASES
        .iter()
        .enumerate()
        .map(|(row, c)| mac(row, c))
        .collect();
    assert_eq!(macs.len(), CASES.len(), "MACs are unique");
    for release in [(2, 2), (2, 6), (3, 0)] {
        let scopes = dhcp4_scopes(release);
        let subnets = scopes["subnet4"].as_array().unwrap().len()
            + scopes["shared-networks"][0]["subnet4"]
                .as_array()
                .unwrap()
                .len();
        let served: BTreeSet<u8> = CASES.iter().map(|c| c.subnet).collect();
        assert_eq!(served.len(), subnets, "every subnet has clients");
        let text = Value::Object(scopes).to_string();
        assert_eq!(
            text.contains("ddns-conflict-resolution-mode"),
            release >= (2, 6)
        );
        assert_eq!(text.contains("ddns-ttl-percent"), release >= (2, 6));
        assert_eq!(
            text.contains("ddns-use-conflict-resolution"),
            release < (2, 6)
        );
    }
}
