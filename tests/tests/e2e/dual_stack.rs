//! Dual stack: one client on one link gets a DHCPv4 lease from kea-dhcp4
//! (option 12 `dual`) and a DHCPv6 lease from kea-dhcp6 (option 39
//! partial `dual`), both named `dual.lan.example.`; one knotd serves
//! `lan.example.`, the in-addr.arpa zone of the /16 and the ip6.arpa zone
//! of the /64. Each daemon runs its own leasedns hook (two journals); the
//! oracle is the stock path on the same configuration: both daemons'
//! NCRs to ONE kea-dhcp-ddns whose reverse domains hold both reverse
//! zones. After every step the hook's zones must equal the stock path's
//! (names, types, rdata; DHCIDs included).
//!
//! What kea-dhcp-ddns does with the two families at one name depends on
//! conflict resolution:
//! - `check-with-dhcid` (Kea's default, RFC 4703): the first family's add
//!   writes its address and its DHCID (v4: from the client identifier;
//!   v6: from the DUID). The second family's add finds the name in use
//!   ("name not in use" fails: YXDOMAIN), then its DHCID differs ("DHCID
//!   matches" fails: NXRRSET): D2 gives the forward add up and, as it does
//!   after a lost forward add, skips the reverse one. So the name keeps
//!   only the first family's address; the second family's address has no
//!   AAAA and no PTR. The hook must do the same (and count the conflict).
//! - `no-check-with-dhcid` (Kea 2.2: `ddns-use-conflict-resolution`
//!   false; 2.6+: `ddns-conflict-resolution-mode`): D2's simple add
//!   replaces the records of its own address type AND the name's DHCID,
//!   so A and AAAA coexist but only the last family's DHCID is left (not
//!   both); the simple remove deletes its address records and the DHCID,
//!   so releasing v6 leaves the A and the in-addr.arpa PTR (with its
//!   DHCID) but no DHCID at the name. Observed with kea-dhcp-ddns 2.2;
//!   the hook must do the same.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use common::{DNS_DEADLINE, ZONE, tail};
use harness::{
    D2, D2Options, Dhclient, Dhclient6, Dhclient6Options, DhclientOptions, Dns, Fqdn6, Kea,
    KeaOptions, Knot, KnotOptions, Netns, ddns_domains_multi, hook_library, kea_release,
    require_root, wait_until,
};
use serde_json::{Value, json};

/// Both runs of a test (stock, hook) use this /16 and /64, so their zones
/// hold the same names; each run has its own namespaces.
const OCTET: u8 = 203;
const LEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// The v4 client's identifier (option 61: type 1, a MAC).
const CLIENT_ID: [u8; 7] = [0x01, 0x02, 0x6c, 0x00, 0xd5, 0x00, 0x01];
/// The v6 client's DUID (DUID-LL of the same MAC).
const DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0x6c, 0x00, 0xd5, 0x00, 0x01];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Updater {
    /// kea-dhcp4 and kea-dhcp6 send NCRs to one kea-dhcp-ddns.
    Stock,
    /// Each daemon runs the leasedns hook with its own journal.
    Hook,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    /// RFC 4703 `check-with-dhcid`, Kea's default.
    CheckWithDhcid,
    /// `no-check-with-dhcid`: the families' records coexist.
    NoCheckWithDhcid,
}

impl Resolution {
    /// The Kea settings (both daemons, global) for this mode on the
    /// installed release.
    fn kea_settings(self) -> Vec<(&'static str, Value)> {
        let (major, minor) = kea_release().expect("kea-dhcp4 -v");
        match (self, (major, minor) >= (2, 6)) {
            (Resolution::CheckWithDhcid, _) => Vec::new(),
            (Resolution::NoCheckWithDhcid, false) => {
                vec![("ddns-use-conflict-resolution", json!(false))]
            }
            (Resolution::NoCheckWithDhcid, true) => {
                vec![(
                    "ddns-conflict-resolution-mode",
                    json!("no-check-with-dhcid"),
                )]
            }
        }
    }
}

struct DualLab {
    // Field order is drop order: the Keas (and their hooks) stop before D2
    // and knotd, the namespaces go last.
    kea4: Kea,
    kea6: Kea,
    d2: Option<D2>,
    knot: Knot,
    net: Netns,
    _journals: [tempfile::TempDir; 2],
}

impl DualLab {
    fn start(updater: Updater, resolution: Resolution) -> DualLab {
        let net = Netns::new_v6_with_octet(OCTET).expect("namespaces with IPv4 and IPv6");
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone());
        kopts.more_reverse_zones = vec![net.reverse_zone6()];
        let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
        let reverse4 = net.reverse_zone();
        let reverse6 = net.reverse_zone6();
        // The same DNS side for D2 and both hooks: both reverse zones.
        let ddns = ddns_domains_multi(
            knot.key(),
            knot.addr(),
            knot.port(),
            ZONE,
            &[&reverse4, &reverse6],
        );
        let mut opts4 = KeaOptions::for_netns(&net).with_ddns_naming(ZONE);
        let mut opts6 = KeaOptions::v6(&net).with_ddns_naming(ZONE);
        for opts in [&mut opts4, &mut opts6] {
            opts.valid_lifetime = 600;
            for (key, value) in resolution.kea_settings() {
                opts.dhcp4_extra.insert(key.into(), value);
            }
        }
        let journals = [journal_dir(), journal_dir()];
        let d2 = match updater {
            Updater::Stock => {
                let d2 = D2::start(&net.server(), &D2Options::new(ddns)).expect("D2 starts");
                for opts in [&mut opts4, &mut opts6] {
                    opts.dhcp4_extra.insert("dhcp-ddns".into(), d2.dhcp_ddns());
                    D2::ncr_logging(opts);
                }
                Some(d2)
            }
            Updater::Hook => {
                let library = hook_library()
                    .expect("the hook library is built (cargo build --release -p kea-hook)");
                for (opts, journal) in [&mut opts4, &mut opts6].into_iter().zip(&journals) {
                    let mut params = ddns.clone();
                    params["journal-dir"] = json!(journal.path().to_string_lossy());
                    opts.dhcp4_extra
                        .insert("dhcp-ddns".into(), json!({ "enable-updates": false }));
                    opts.hooks.push((library.clone(), params));
                }
                None
            }
        };
        let kea4 = Kea::start(net.server(), opts4).expect("kea-dhcp4 starts");
        let kea6 = Kea::start(net.server(), opts6).expect("kea-dhcp6 starts");
        DualLab {
            kea4,
            kea6,
            d2,
            knot,
            net,
            _journals: journals,
        }
    }

    fn dns(&self) -> Dns {
        self.knot.dns()
    }

    fn logs(&self) -> String {
        let d2 = self
            .d2
            .as_ref()
            .map(|d2| format!("\nD2 log tail:\n{}", tail(&d2.log(), 30)))
            .unwrap_or_default();
        format!(
            "kea-dhcp4 log tail:\n{}\nkea-dhcp6 log tail:\n{}{d2}",
            tail(&self.kea4.log(), 30),
            tail(&self.kea6.log(), 30)
        )
    }

    /// Every record of the three zones but their SOAs (the serials differ
    /// between runs) as `name type rdata`.
    fn snapshot(&self) -> BTreeSet<String> {
        let dns = self.dns();
        [
            ZONE.to_owned(),
            self.net.reverse_zone(),
            self.net.reverse_zone6(),
        ]
        .iter()
        .flat_map(|zone| dns.axfr(zone).expect("AXFR"))
        .filter(|r| r.rtype != "SOA")
        .map(|r| format!("{} {} {}", r.name, r.rtype, r.rdata))
        .collect()
    }

    fn query(&self, name: &str, rtype: &str) -> Vec<String> {
        let mut got = self.dns().query(name, rtype).expect("DNS query");
        got.sort();
        got
    }

    fn wait_records(&self, name: &str, rtype: &str, expected: &[String]) {
        let mut last = Vec::new();
        wait_until(
            DNS_DEADLINE,
            &format!("{name} {rtype} = {expected:?}"),
            || {
                last = self.query(name, rtype);
                last == expected
            },
        )
        .unwrap_or_else(|e| panic!("{e}: last {last:?}\n{}", self.logs()));
    }

    /// Runs `step` (a client's exchange with `kea`), then waits until the
    /// updater has finished with everything it caused: D2 has ended every
    /// NCR it received, or the hook (whose callouts queue their changes
    /// before Kea answers) has nothing queued or pending, as its live
    /// `leasedns-status` says (the statistics lag up to a second).
    fn settle<T>(&self, family: u8, step: impl FnOnce() -> T) -> T {
        let kea = if family == 4 { &self.kea4 } else { &self.kea6 };
        let d2_before = self.d2.as_ref().map(d2_counts);
        let result = step();
        let what = format!("the v{family} step's DNS work to end");
        let mut last = String::new();
        let done = wait_until(DNS_DEADLINE, &what, || match &self.d2 {
            Some(d2) => {
                let (received, ended) = d2_counts(d2);
                last = format!("D2 received {received}, ended {ended}");
                received > d2_before.map_or(0, |(r, _)| r) && ended == received
            }
            None => {
                let Ok(status) = kea.command_ok("leasedns-status", None) else {
                    return false;
                };
                last = status.to_string();
                status["pending-changes"] == json!(0) && status["journal"]["entries"] == json!(0)
            }
        });
        done.unwrap_or_else(|e| panic!("{e}: {last}\n{}", self.logs()));
        result
    }
}

/// One statistic from the hook's live `leasedns-status`.
fn live_stat(kea: &Kea, name: &str) -> i64 {
    let status = kea
        .command_ok("leasedns-status", None)
        .expect("leasedns-status");
    let stats = &status["statistics"];
    stats[name]
        .as_i64()
        .or_else(|| stats[format!("leasedns.{name}")].as_i64())
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

fn journal_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("leasedns-journal-")
        .tempdir()
        .expect("temp dir")
}

/// (NCRs D2 received, NCRs it ended) from its log alone: kea-dhcp6 2.2
/// does not log the removals it queues.
fn d2_counts(d2: &D2) -> (usize, usize) {
    let p = harness::NcrProgress::from_logs("", &d2.log());
    (p.received, p.succeeded + p.failed + p.discarded)
}

fn dhcid_of(client_id: Option<&[u8]>, duid: Option<&[u8]>, fqdn: &str) -> String {
    let rdata = match (client_id, duid) {
        (_, Some(duid)) => ddns_engine::naming::dhcid::dhcid_rdata_duid(duid, fqdn),
        (id, None) => ddns_engine::naming::dhcid::dhcid_rdata(id, 1, &[], fqdn),
    }
    .expect("DHCID of a valid name");
    base64::engine::general_purpose::STANDARD.encode(rdata)
}

/// The zones after each step of one run, for the comparison with the
/// other updater.
type Steps = Vec<(&'static str, BTreeSet<String>)>;

/// v4 lease, v6 lease, v6 release, v4 release, with `updater`; asserts
/// what each step must leave in `resolution` and returns the zones after
/// each.
fn run(updater: Updater, resolution: Resolution) -> Steps {
    let lab = DualLab::start(updater, resolution);
    let fqdn = format!("dual.{ZONE}");
    let dhcid4 = dhcid_of(Some(&CLIENT_ID), None, &fqdn);
    let dhcid6 = dhcid_of(None, Some(&DUID), &fqdn);
    let coexist = resolution == Resolution::NoCheckWithDhcid;
    let mut steps = Steps::new();
    let context = |step: &str| format!("{updater:?}, {resolution:?}, after {step}");

    let mut v4 = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("dual".into()),
            client_id: Some(CLIENT_ID.to_vec()),
            ..DhclientOptions::default()
        },
    )
    .expect("dhclient");
    let lease4 = lab.settle(4, || {
        v4.obtain(LEASE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()))
    });
    let ptr4 = harness::reverse_name(lease4.address.into());
    lab.wait_records(&fqdn, "A", &[lease4.address.to_string()]);
    lab.wait_records(&ptr4, "PTR", std::slice::from_ref(&fqdn));
    lab.wait_records(&fqdn, "DHCID", std::slice::from_ref(&dhcid4));
    steps.push(("v4 lease", lab.snapshot()));

    let mut v6 = Dhclient6::new(
        lab.net.client(),
        lab.net.client_iface(),
        &Dhclient6Options {
            fqdn: Some(Fqdn6::partial("dual")),
            duid: Some(DUID.to_vec()),
            ..Dhclient6Options::default()
        },
    )
    .expect("dhclient -6");
    let lease6 = lab.settle(6, || {
        v6.obtain(LEASE_TIMEOUT)
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()))
    });
    let ptr6 = harness::reverse_name6(lease6.address);
    let step = context("the v6 lease");
    if coexist {
        lab.wait_records(&fqdn, "AAAA", &[lease6.address.to_string()]);
        lab.wait_records(&ptr6, "PTR", std::slice::from_ref(&fqdn));
        // D2's simple add replaces the name's DHCID with its own: the v6
        // client's.
        assert_eq!(
            lab.query(&fqdn, "DHCID"),
            vec![dhcid6.clone()],
            "{step}\n{}",
            lab.logs()
        );
        assert_eq!(lab.query(&ptr6, "DHCID"), vec![dhcid6.clone()], "{step}");
    } else {
        // The second family's add lost the name: no AAAA, and no PTR.
        assert_eq!(lab.query(&fqdn, "AAAA"), Vec::<String>::new(), "{step}");
        assert_eq!(lab.query(&ptr6, "PTR"), Vec::<String>::new(), "{step}");
        assert_eq!(lab.query(&fqdn, "DHCID"), vec![dhcid4.clone()], "{step}");
        match &lab.d2 {
            Some(d2) => {
                let p = harness::NcrProgress::from_logs("", &d2.log());
                assert_eq!(p.failed, 1, "{step}: D2 gave the v6 add up\n{}", lab.logs());
            }
            None => assert_eq!(
                live_stat(&lab.kea6, "updates-conflict"),
                1,
                "{step}: the hook counts the lost name\n{}",
                lab.logs()
            ),
        }
    }
    // The v4 family's records whatever the mode.
    assert_eq!(
        lab.query(&fqdn, "A"),
        vec![lease4.address.to_string()],
        "{step}"
    );
    assert_eq!(lab.query(&ptr4, "PTR"), vec![fqdn.clone()], "{step}");
    steps.push(("v6 lease", lab.snapshot()));

    lab.settle(6, || v6.release().expect("dhclient -6 -r"));
    let step = context("the v6 release");
    lab.wait_records(&fqdn, "AAAA", &[]);
    lab.wait_records(&ptr6, "PTR", &[]);
    lab.wait_records(&ptr6, "DHCID", &[]);
    assert_eq!(
        lab.query(&fqdn, "A"),
        vec![lease4.address.to_string()],
        "{step}"
    );
    assert_eq!(lab.query(&ptr4, "PTR"), vec![fqdn.clone()], "{step}");
    // With checks the v6 add never touched the name: the v4 DHCID stays.
    // Without, D2's simple add had replaced it with the v6 one, and the
    // simple remove deletes that with the AAAA: the A is left without a
    // DHCID (what kea-dhcp-ddns 2.2 does, observed here; not "the v4
    // side's DHCID stays").
    let dhcid_left = if coexist {
        vec![]
    } else {
        vec![dhcid4.clone()]
    };
    assert_eq!(
        lab.query(&fqdn, "DHCID"),
        dhcid_left,
        "{step}\n{}",
        lab.logs()
    );
    steps.push(("v6 release", lab.snapshot()));

    lab.settle(4, || v4.release().expect("dhclient -r"));
    for (name, rtype) in [
        (&fqdn, "A"),
        (&fqdn, "AAAA"),
        (&fqdn, "DHCID"),
        (&ptr4, "PTR"),
        (&ptr4, "DHCID"),
    ] {
        lab.wait_records(name, rtype, &[]);
    }
    steps.push(("v4 release", lab.snapshot()));
    steps
}

/// Runs the sequence on the stock path, then with the hooks, and compares
/// the zones step by step.
fn hook_matches_stock(resolution: Resolution) {
    let stock = run(Updater::Stock, resolution);
    let hook = run(Updater::Hook, resolution);
    for ((step, want), (_, got)) in stock.iter().zip(&hook) {
        let missing: Vec<_> = want.difference(got).collect();
        let extra: Vec<_> = got.difference(want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{resolution:?}, after the {step}: the hook's zones differ from kea-dhcp-ddns's: \
             missing {missing:#?}, extra {extra:#?}"
        );
    }
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn dual_stack_names_coexist_without_conflict_checks_as_with_kea_dhcp_ddns() {
    require_root();
    hook_matches_stock(Resolution::NoCheckWithDhcid);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn dual_stack_second_family_loses_the_name_with_dhcid_checks_as_with_kea_dhcp_ddns() {
    require_root();
    hook_matches_stock(Resolution::CheckWithDhcid);
}
