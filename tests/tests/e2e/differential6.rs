//! The differential test in its DHCPv6 form: the stock path (kea-dhcp6
//! sending NameChangeRequests to kea-dhcp-ddns, which updates knotd) is the
//! oracle for the leasedns hook in kea-dhcp6. One scenario table drives two
//! runs, each with its own namespaces, lease file and fresh knotd:
//! - stock: kea-dhcp6 with `dhcp-ddns` enabled and a real kea-dhcp-ddns;
//! - hook: the same kea-dhcp6 configuration with `dhcp-ddns` disabled and
//!   the hook loaded, its parameters the D2 configuration's `tsig-keys`,
//!   `forward-ddns` and `reverse-ddns` as they are, plus `journal-dir`.
//!
//! Kea's own `ddns-*` settings (global, subnet, reservations) decide every
//! name and flag in both runs. A scripted client, its own relay agent,
//! reaches six subnets of `fd00:6d::/48` through the relay's link-address;
//! the same clients run in the same order (so Kea hands out the same
//! addresses) through allocation, renewal and release. After each phase
//! both runs' zones (AAAA, PTR, DHCID and their TTLs, by AXFR) and every
//! answer's option 39 (flags and name), address and status must be
//! identical.

use crate::common;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use common::lab6::dhcid6;
use common::tail;
use harness::{
    Client6Spec, ClientFqdn6, D2, D2Options, Kea, KeaOptions, Knot, KnotOptions, Netns,
    RelayClient6, RelayLease6, Reply6, ddns_domains, hook_library, kea_release, require_root,
    reverse_name6, reverse_zone6, wait_until,
};
use serde_json::{Map, Value, json};

/// The one forward zone; every subnet qualifies names below it.
const ZONE: &str = "lan.example.";
/// Subnet K is `fd00:6d:0:K::/64`; both runs use the same prefixes, each in
/// its own namespaces, so addresses, generated names and DHCIDs compare as
/// they are.
const PREFIX: [u16; 3] = [0xfd00, 0x6d, 0];
const VALID_LIFETIME: u32 = 3600;
/// How far the two runs' remaining lifetimes in renewal replies may differ;
/// see [`same_reply`].
const LIFETIME_SLACK: u32 = 30;
/// How long DNS may take to follow one phase.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// The hook publishes its statistics once a second (kea-hook TICK_MS); D2's
/// log must stay still as long before the stock run counts as settled.
const TICK: Duration = Duration::from_millis(1500);

const S: u8 = ClientFqdn6::S;
const N: u8 = ClientFqdn6::N;

/// One client of the scenario. Its DUID is DUID-LL over
/// `02:00:00:00:<subnet>:<row + 1>`, its IAID `row + 1`.
struct Case {
    label: &'static str,
    /// Which subnet's relay link-address it comes through.
    subnet: u16,
    /// Option 39: flags and name (a trailing dot makes it full).
    fqdn: Option<(u8, &'static str)>,
    /// Option 39 of its renewal, when it differs from the allocation's.
    renew_fqdn: Option<(u8, &'static str)>,
}

const fn case(label: &'static str, subnet: u16) -> Case {
    Case {
        label,
        subnet,
        fqdn: None,
        renew_fqdn: None,
    }
}

impl Case {
    const fn fqdn(mut self, flags: u8, name: &'static str) -> Self {
        self.fqdn = Some((flags, name));
        self
    }
    const fn renew_fqdn(mut self, flags: u8, name: &'static str) -> Self {
        self.renew_fqdn = Some((flags, name));
        self
    }
}

/// The clients, in the order both runs serve them. Subnets (see
/// [`dhcp6_scopes`]): 1 global settings (`g.lan.example.`, replace never,
/// update on renew, a reservation by DUID), 2 always (`b.`, prefix `gen`),
/// 3 when-present (`c.`), 4 when-not-present (`d.`, prefix `anon`,
/// `_` -> `x`), 5 updates off (`e.`), 6 overrides and no conflict
/// resolution (`f.`).
const CASES: &[Case] = &[
    case("partial-s", 1)
        .fqdn(S, "alpha")
        .renew_fqdn(S, "alpha2"),
    case("full-client-does-aaaa", 1).fqdn(0, "beta.g.lan.example."),
    case("no-update-n", 1).fqdn(N, "gamma"),
    case("nameless-never", 1),
    case("reserved-named", 1).fqdn(S, "ignored"),
    case("static-conflict", 1).fqdn(S, "taken"),
    case("empty-name-never", 1).fqdn(S, ""),
    case("outside-zone", 1).fqdn(S, "pi.elsewhere.example."),
    case("mixed-case", 1).fqdn(S, "MiXeD"),
    case("renew-restores", 1).fqdn(S, "epsilon"),
    case("always-replaced", 2).fqdn(S, "zeta"),
    case("always-n", 2).fqdn(N, "omega"),
    case("always-nameless", 2),
    case("when-present-named", 3).fqdn(S, "eta"),
    case("when-present-nameless", 3),
    case("char-replaced-partial", 4).fqdn(S, "my_host"),
    case("char-replaced-full", 4).fqdn(S, "under_score.d.lan.example."),
    case("generated-nameless", 4),
    case("generated-empty", 4).fqdn(S, ""),
    case("updates-off", 5).fqdn(S, "theta"),
    case("override-client-update", 6).fqdn(0, "iota"),
    case("override-no-update", 6).fqdn(N, "kappa"),
    case("static-overwrite", 6).fqdn(S, "taken"),
];

fn mac(row: usize, case: &Case) -> [u8; 6] {
    let [_, subnet] = case.subnet.to_be_bytes();
    [2, 0, 0, 0, subnet, u8::try_from(row + 1).unwrap_or(u8::MAX)]
}

fn row_of(label: &str) -> usize {
    CASES
        .iter()
        .position(|c| c.label == label)
        .unwrap_or_else(|| panic!("no case {label}"))
}

fn duid_of(label: &str) -> Vec<u8> {
    let row = row_of(label);
    Client6Spec::duid_ll(mac(row, &CASES[row]))
}

fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn spec(row: usize, case: &Case, fqdn: Option<(u8, &str)>) -> Client6Spec {
    Client6Spec {
        duid: Client6Spec::duid_ll(mac(row, case)),
        iaid: u32::try_from(row + 1).unwrap_or(u32::MAX),
        fqdn: fqdn.map(|(flags, name)| ClientFqdn6::new(flags, name)),
    }
}

/// `fd00:6d:0:k::host`.
fn addr(k: u16, host: u16) -> Ipv6Addr {
    let [a, b, c] = PREFIX;
    Ipv6Addr::new(a, b, c, k, 0, 0, 0, host)
}

/// The relay's link-address for subnet `k`: it selects the subnet.
fn link(k: u16) -> Ipv6Addr {
    addr(k, 1)
}

fn reverse_zone() -> String {
    reverse_zone6(addr(0, 0), 48)
}

fn subnet(k: u16, extra: Value) -> Value {
    let mut subnet = json!({
        "id": k,
        "subnet": format!("{}/64", addr(k, 0)),
        "pools": [{ "pool": format!("{} - {}", addr(k, 0x100), addr(k, 0x1ff)) }],
    });
    if let (Value::Object(map), Value::Object(extra)) = (&mut subnet, extra) {
        map.extend(extra);
    }
    subnet
}

/// The Dhcp6 keys of the scenario (globals and `subnet6`), the same in
/// both runs. Settings newer releases added go only where the installed
/// Kea has them.
fn dhcp6_scopes(release: (u32, u32)) -> Map<String, Value> {
    let mut subnet6 = json!({
        "ddns-qualifying-suffix": "f.lan.example.",
        "ddns-override-client-update": true,
        "ddns-override-no-update": true,
    });
    // Kea 2.6 turned the boolean into a mode.
    if release >= (2, 6) {
        subnet6["ddns-conflict-resolution-mode"] = json!("no-check-with-dhcid");
    } else {
        subnet6["ddns-use-conflict-resolution"] = json!(false);
    }
    let subnets = vec![
        subnet(
            1,
            json!({
                "ddns-update-on-renew": true,
                "reservations": [{
                    "duid": hex_colons(&duid_of("reserved-named")),
                    "ip-addresses": [addr(1, 0x400).to_string()],
                    "hostname": "reserved-host",
                }],
            }),
        ),
        subnet(
            2,
            json!({
                "ddns-qualifying-suffix": "b.lan.example.",
                "ddns-replace-client-name": "always",
                "ddns-generated-prefix": "gen",
            }),
        ),
        subnet(
            3,
            json!({
                "ddns-qualifying-suffix": "c.lan.example.",
                "ddns-replace-client-name": "when-present",
            }),
        ),
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
    let mut scopes = Map::new();
    // Packets are handled in order, so an answer proves earlier packets
    // finished.
    scopes.insert(
        "multi-threading".into(),
        json!({ "enable-multi-threading": false }),
    );
    scopes.insert("ddns-send-updates".into(), json!(true));
    scopes.insert("ddns-qualifying-suffix".into(), json!("g.lan.example."));
    scopes.insert("ddns-replace-client-name".into(), json!("never"));
    scopes.insert("ddns-generated-prefix".into(), json!("myhost"));
    scopes.insert("ddns-update-on-renew".into(), json!(false));
    scopes.insert("subnet6".into(), Value::Array(subnets));
    scopes
}

/// AAAA records deleted by hand after the allocation: `epsilon` is in
/// subnet 1 (`ddns-update-on-renew` true), `myxhost` in subnet 4 (false,
/// global).
const VANDALISED: [&str; 2] = ["epsilon.g.lan.example.", "myxhost.d.lan.example."];

/// Zone-file lines of the static records some clients collide with.
fn static_records() -> Vec<String> {
    vec![
        format!("taken.g AAAA {}", addr(0, 0x250)),
        format!("taken.f AAAA {}", addr(0, 0x251)),
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
    /// Every answer of the phase, labelled `client: message`.
    replies: Vec<(String, Reply6)>,
    forward: BTreeSet<Record>,
    reverse: BTreeSet<Record>,
}

/// One run's daemons, client and observations.
struct Run {
    path: Path,
    // Field order: daemons stop before the namespaces go.
    kea: Kea,
    d2: Option<D2>,
    knot: Knot,
    relay: RelayClient6,
    _journal: tempfile::TempDir,
    _net: Netns,
}

impl Run {
    fn start(path: Path, release: (u32, u32)) -> Run {
        let net = Netns::new_v6().expect("namespaces with IPv6");
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(reverse_zone());
        kopts.forward_records = static_records();
        let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
        let ddns = ddns_domains(knot.key(), knot.addr(), knot.port(), ZONE, &reverse_zone());
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let mut opts = KeaOptions::v6(&net);
        opts.valid_lifetime = VALID_LIFETIME;
        // The same logging in both runs; the stock run needs it to count NCRs.
        D2::ncr_logging(&mut opts);
        // `subnet6` here replaces the one KeaOptions would write.
        opts.dhcp4_extra = dhcp6_scopes(release);
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
            .unwrap_or_else(|e| panic!("{path:?} run: kea-dhcp6 starts: {e}"));
        let relay = RelayClient6::new(&net).expect("relay client");
        Run {
            path,
            kea,
            d2,
            knot,
            relay,
            _journal: journal,
            _net: net,
        }
    }

    /// Allocates a lease for every client, in order.
    fn allocate(&self) -> (Vec<RelayLease6>, Vec<(String, Reply6)>) {
        let mut leases = Vec::new();
        let mut replies = Vec::new();
        for (row, case) in CASES.iter().enumerate() {
            let lease = self
                .relay
                .allocate(&spec(row, case, case.fqdn), link(case.subnet))
                .unwrap_or_else(|e| {
                    panic!(
                        "{:?} run: {}: allocation: {e}\nkea log tail:\n{}",
                        self.path,
                        case.label,
                        tail(&self.kea.log(), 40)
                    )
                });
            replies.push((
                format!("{}: advertise", case.label),
                lease.advertise.clone(),
            ));
            replies.push((format!("{}: reply", case.label), lease.reply.clone()));
            leases.push(lease);
        }
        (leases, replies)
    }

    /// Renews every lease, in order, with the renewal's names.
    fn renew(&self, leases: &[RelayLease6]) -> Vec<(String, Reply6)> {
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
                (format!("{}: renewal reply", case.label), reply)
            })
            .collect()
    }

    /// Releases every lease, in order; Kea answers each Release once it has
    /// handled it.
    fn release(&self, leases: &[RelayLease6]) -> Vec<(String, Reply6)> {
        let replies = CASES
            .iter()
            .enumerate()
            .zip(leases)
            .map(|((row, case), lease)| {
                let reply = self
                    .relay
                    .release(&spec(row, case, None), lease)
                    .unwrap_or_else(|e| {
                        panic!("{:?} run: {}: release: {e}", self.path, case.label)
                    });
                (format!("{}: release reply", case.label), reply)
            })
            .collect();
        self.reclaim_released();
        replies
    }

    /// Kea 2.6+ may keep a released lease, expired, and withdraw its DNS
    /// records only when it reclaims it (`DHCP6_RELEASE_NA_EXPIRED`):
    /// `leases-reclaim` does that now rather than at the next timer.
    fn reclaim_released(&self) {
        let expired = self
            .kea
            .log()
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .any(|w| w == "DHCP6_RELEASE_NA_EXPIRED")
            })
            .count();
        if expired == 0 {
            return;
        }
        let expired = i64::try_from(expired).unwrap_or(i64::MAX);
        let mut reclaimed = None;
        wait_until(
            Duration::from_secs(30),
            &format!("kea-dhcp6 to reclaim {expired} released leases"),
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
            Some(d2) => self.settle_stock(d2),
            None => self.settle_hook(),
        }
    }

    /// D2 has ended every NCR kea-dhcp6 sent, and the counts stayed put for
    /// a tick. kea-dhcp6 2.2 does not log every NCR it queues (not a
    /// Release's), so `D2::wait_done`'s accounting does not apply; Kea has
    /// queued every NCR of a packet before it answers, the stillness covers
    /// the send.
    fn settle_stock(&self, d2: &D2) {
        let mut stable: Option<(Instant, harness::NcrProgress)> = None;
        let mut last = None;
        let result = wait_until(SETTLE_DEADLINE, "kea-dhcp-ddns to end every NCR", || {
            let p = d2.progress(&self.kea);
            last = Some(p);
            let ended = p.succeeded + p.failed + p.discarded;
            if p.received != p.sent || ended != p.received || p.sent + p.rejected < p.queued {
                stable = None;
                return false;
            }
            match &stable {
                Some((since, seen)) if *seen == p => since.elapsed() >= TICK,
                _ => {
                    stable = Some((Instant::now(), p));
                    false
                }
            }
        });
        result.unwrap_or_else(|e| {
            panic!(
                "stock run: {e}: last {last:?}\nD2 log tail:\n{}",
                tail(&d2.log(), 40)
            )
        });
        eprintln!("differential6: stock run settled: {last:?}");
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
            if started.elapsed() < TICK || queued != Some(0) || pending != Some(0) {
                stable = None;
                return false;
            }
            match &stable {
                Some((since, seen)) if *seen == values => since.elapsed() >= TICK,
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
        eprintln!("differential6: hook run settled: {last}");
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
        (read(ZONE), read(&reverse_zone()))
    }

    fn observe(&self, replies: Vec<(String, Reply6)>) -> Observed {
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

    /// Deletes, behind both paths' backs, the AAAA of a client whose subnet
    /// has `ddns-update-on-renew` (it must come back at the renewal) and of
    /// one whose subnet has not (it stays gone, as with D2).
    fn delete_behind_their_backs(&self) {
        for name in VANDALISED {
            let out = self
                .knot
                .nsupdate(ZONE, &[&format!("update delete {name} AAAA")])
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

fn record_line((owner, rtype, ttl, rdata): &Record) -> String {
    format!("{owner} {ttl} {rtype} {rdata}")
}

fn reply_line(reply: Option<&Reply6>) -> String {
    let Some(reply) = reply else {
        return "(none)".to_owned();
    };
    let fqdn = reply
        .fqdn
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    let address = reply
        .address
        .map_or_else(|| "-".to_owned(), |(a, valid)| format!("{a} valid {valid}"));
    format!(
        "{} {address} status {:?} opt39: {fqdn}",
        reply.message_type, reply.status
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
        if !theirs.is_some_and(|theirs| same_reply(reply, theirs)) {
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

/// Kea 3.0 caches leases by default (`cache-threshold` 0.25): a renewal soon
/// after the allocation gets the lease back with what remains of its valid
/// lifetime, so that number depends on how long each run took between the
/// two. Lifetimes are the same when they are within `LIFETIME_SLACK` seconds;
/// everything else in the replies must match exactly.
fn same_reply(stock: &Reply6, hook: &Reply6) -> bool {
    let lifetimes_match = match (stock.address, hook.address) {
        (Some((a, a_valid)), Some((b, b_valid))) => {
            a == b && a_valid.abs_diff(b_valid) <= LIFETIME_SLACK
        }
        (a, b) => a == b,
    };
    lifetimes_match
        && stock.message_type == hook.message_type
        && stock.status == hook.status
        && stock.fqdn == hook.fqdn
}

fn has(records: &BTreeSet<Record>, owner: &str, rtype: &str) -> Option<String> {
    records
        .iter()
        .find(|(o, t, _, _)| o == owner && t == rtype)
        .map(|(_, _, _, rdata)| rdata.clone())
}

/// The oracle itself must have worked, or two empty zones would agree:
/// kea-dhcp-ddns published the plainest client (with the DHCID RFC 4701
/// gives its DUID), renamed it at the renewal and removed it on release.
fn check_oracle(phases: &[(&str, Observed)], release: (u32, u32)) {
    let [(_, allocated), (_, renewed), (_, released)] = phases else {
        panic!("three phases");
    };
    let (address, _) = allocated
        .replies
        .iter()
        .find(|(l, _)| l == "partial-s: reply")
        .and_then(|(_, r)| r.address)
        .expect("partial-s got an address");
    let alpha = "alpha.g.lan.example.";
    assert_eq!(
        has(&allocated.forward, alpha, "AAAA"),
        Some(address.to_string()),
        "stock run: kea-dhcp-ddns published alpha"
    );
    let dhcid = dhcid6(&duid_of("partial-s"), alpha);
    assert_eq!(has(&allocated.forward, alpha, "DHCID"), Some(dhcid.clone()));
    let ptr = reverse_name6(address);
    assert_eq!(has(&allocated.reverse, &ptr, "PTR"), Some(alpha.to_owned()));
    assert_eq!(has(&allocated.reverse, &ptr, "DHCID"), Some(dhcid));
    let alpha2 = "alpha2.g.lan.example.";
    assert_eq!(
        has(&renewed.forward, alpha2, "AAAA"),
        Some(address.to_string()),
        "stock run: the renewal's new name replaced alpha"
    );
    assert!(has(&renewed.forward, alpha, "AAAA").is_none());
    let [on_renew, not_on_renew] = VANDALISED;
    assert!(
        has(&renewed.forward, not_on_renew, "AAAA").is_none(),
        "stock run: {not_on_renew} came back without ddns-update-on-renew"
    );
    if release < (3, 0) {
        assert!(
            has(&renewed.forward, on_renew, "AAAA").is_some(),
            "stock run: ddns-update-on-renew did not bring {on_renew} back"
        );
    }
    assert!(
        has(&released.forward, alpha2, "AAAA").is_none(),
        "stock run: the release removed alpha2"
    );
    assert!(has(&released.reverse, &ptr, "PTR").is_none());
}

#[test]
#[ignore = "needs root, kea-dhcp6, kea-dhcp-ddns, knotd: run by build/test"]
fn hook_publishes_what_kea_dhcp_ddns_publishes_for_dhcpv6() {
    require_root();
    let release = kea_release().expect("kea-dhcp4 -v");
    eprintln!("differential6: Kea {}.{}", release.0, release.1);
    let started = Instant::now();

    let stock = Run::start(Path::Stock, release);
    let stock_phases = stock.play();
    drop(stock);
    check_oracle(&stock_phases, release);

    let hook = Run::start(Path::Hook, release);
    let hook_phases = hook.play();
    drop(hook);
    eprintln!("differential6: both runs in {:?}", started.elapsed());

    let differences: Vec<String> = stock_phases
        .iter()
        .zip(&hook_phases)
        .filter_map(|((phase, stock), (_, hook))| difference(phase, stock, hook))
        .collect();
    assert!(
        differences.is_empty(),
        "the hook differs from kea-dhcp-ddns in kea-dhcp6 (Kea {}.{}):\n{}",
        release.0,
        release.1,
        differences.join("\n")
    );
}

#[test]
fn scenario_is_well_formed() {
    let labels: BTreeSet<&str> = CASES.iter().map(|c| c.label).collect();
    assert_eq!(labels.len(), CASES.len(), "labels are unique");
    let duids: BTreeSet<Vec<u8>> = CASES.iter().map(|c| duid_of(c.label)).collect();
    assert_eq!(duids.len(), CASES.len(), "DUIDs are unique");
    for release in [(2, 2), (2, 6), (3, 0)] {
        let scopes = dhcp6_scopes(release);
        let subnets = scopes["subnet6"].as_array().unwrap();
        let served: BTreeSet<u16> = CASES.iter().map(|c| c.subnet).collect();
        assert_eq!(served.len(), subnets.len(), "every subnet has clients");
        for (k, subnet) in (1..).zip(subnets) {
            assert_eq!(subnet["subnet"], format!("fd00:6d:0:{k}::/64"));
        }
        let text = Value::Object(scopes).to_string();
        assert_eq!(
            text.contains("ddns-conflict-resolution-mode"),
            release >= (2, 6)
        );
    }
    assert_eq!(reverse_zone(), "0.0.0.0.d.6.0.0.0.0.d.f.ip6.arpa.");
    for case in CASES {
        if let Some((flags, name)) = case.fqdn {
            assert!(ClientFqdn6::new(flags, name).flag_letters().len() <= 2);
        }
    }
}
