//! The Kea hook end to end: stock kea-dhcp4 with libdhcp_leasedns.so in a
//! server namespace, stock knotd beside it, real DHCP clients (dhclient,
//! perfdhcp) in a client namespace, and every result checked with real DNS
//! queries against Knot.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::common;

use common::{DNS_DEADLINE, Lab, ZONE};
use harness::{
    Dhclient, DhclientOptions, Kea, KeaOptions, Knot, KnotOptions, Netns, Perfdhcp, hook_library,
    require_root, wait_until,
};
use serde_json::{Value, json};

/// One simulated client sending option `code`. perfdhcp stops as soon as
/// its last exchange is initiated, so the client runs two exchanges: the
/// first completes its DORA, the second is a renewal of the same lease.
fn one_client(code: u8, value: &[u8], mac: Option<&str>) -> Perfdhcp {
    let run = Perfdhcp::new(10, 1, 2).option(code, value);
    match mac {
        Some(mac) => run.mac_base(mac),
        None => run,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn named_client_is_published_and_removed_on_release() {
    require_root();
    let lab = Lab::start(|_, _| {});
    let mut client = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("laptop".into()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let lease = client
        .obtain(Duration::from_secs(30))
        .expect("dhclient gets a lease");
    let fqdn = format!("laptop.{ZONE}");
    lab.wait_records(&fqdn, "A", &[lease.address.to_string()]);
    lab.wait_records(
        &lab.ptr_name(lease.address),
        "PTR",
        std::slice::from_ref(&fqdn),
    );
    let dhcid = lab.dns().query(&fqdn, "DHCID").unwrap();
    assert_eq!(dhcid.len(), 1, "one DHCID at {fqdn}: {dhcid:?}");
    assert_eq!(
        lab.dns()
            .query(&lab.ptr_name(lease.address), "DHCID")
            .unwrap(),
        dhcid,
        "same DHCID at the PTR"
    );
    // Kea's lease database records the name the hook decided.
    let leases = lab.kea.leases().unwrap();
    assert!(
        leases
            .iter()
            .any(|l| l["address"] == lease.address.to_string()
                && harness::absolute_fqdn(&l["hostname"]) == fqdn),
        "{leases:?}"
    );

    client.release().expect("dhclient -r");
    lab.wait_gone(&fqdn, "A");
    lab.wait_gone(&fqdn, "DHCID");
    lab.wait_gone(&lab.ptr_name(lease.address), "PTR");
    lab.wait_gone(&lab.ptr_name(lease.address), "DHCID");
    lab.wait_stat("leasedns.updates-succeeded", 2);
    assert_eq!(lab.stat("leasedns.updates-refused"), 0);
}

/// Sends a DHCPDECLINE for `addr` from the client namespace, as a client
/// whose ARP probe found the address in use would.
fn send_decline(net: &Netns, chaddr: [u8; 6], addr: Ipv4Addr, server: Ipv4Addr) {
    let mut pkt = vec![0u8; 240];
    pkt[0] = 1; // BOOTREQUEST
    pkt[1] = 1; // Ethernet
    pkt[2] = 6;
    pkt[4..8].copy_from_slice(&rand::random::<u32>().to_be_bytes());
    pkt[28..34].copy_from_slice(&chaddr);
    pkt[236..240].copy_from_slice(&[99, 130, 83, 99]);
    pkt.extend_from_slice(&[53, 1, 4]);
    pkt.extend_from_slice(&[50, 4]);
    pkt.extend_from_slice(&addr.octets());
    pkt.extend_from_slice(&[54, 4]);
    pkt.extend_from_slice(&server.octets());
    pkt.push(255);
    let ns = format!("/run/netns/{}", net.client_ns());
    let iface = net.client_iface().to_owned();
    std::thread::spawn(move || {
        let nsfile = std::fs::File::open(&ns).expect("client namespace");
        // SAFETY: setns on this short-lived thread only; the fd is valid.
        let rc = unsafe { libc::setns(nsfile.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let sock = UdpSocket::bind("0.0.0.0:68").expect("bind :68 in the client namespace");
        sock.set_broadcast(true).unwrap();
        let dev = iface.as_bytes();
        // SAFETY: valid socket fd, a byte buffer and its length.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "SO_BINDTODEVICE: {}",
            std::io::Error::last_os_error()
        );
        sock.send_to(&pkt, "255.255.255.255:67")
            .expect("send DHCPDECLINE");
    })
    .join()
    .expect("decline thread");
}

fn parse_mac(text: &str) -> [u8; 6] {
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').take(6).enumerate() {
        mac[i] = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    mac
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn expired_and_declined_leases_lose_their_records() {
    require_root();
    let lab = Lab::start(|opts, _| {
        opts.valid_lifetime = 8;
        opts.expired_leases_processing = Some(json!({
            "reclaim-timer-wait-time": 1, "flush-reclaimed-timer-wait-time": 1,
            "hold-reclaimed-time": 1, "max-reclaim-leases": 0, "max-reclaim-time": 0
        }));
        opts.dhcp4_extra
            .insert("decline-probation-period".into(), json!(3600));
    });
    // Expiry: the client vanishes without releasing.
    let mut gone = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("ephemeral".into()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let lease = gone.obtain(Duration::from_secs(30)).expect("lease");
    let fqdn = format!("ephemeral.{ZONE}");
    lab.wait_records(&fqdn, "A", &[lease.address.to_string()]);
    gone.stop().expect("dhclient stops without a release");
    lab.wait_gone(&fqdn, "A");
    lab.wait_gone(&lab.ptr_name(lease.address), "PTR");
    lab.wait_gone(&fqdn, "DHCID");

    // Decline: the client reports its address in use.
    let mut client = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("decliner".into()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let lease = client.obtain(Duration::from_secs(30)).expect("lease");
    let fqdn = format!("decliner.{ZONE}");
    lab.wait_records(&fqdn, "A", &[lease.address.to_string()]);
    let row = lab
        .kea
        .leases()
        .unwrap()
        .into_iter()
        .find(|l| l["address"] == lease.address.to_string())
        .expect("lease row");
    client.stop().expect("dhclient stops");
    send_decline(
        &lab.net,
        parse_mac(&row["hwaddr"]),
        lease.address,
        lab.net.server_addr(),
    );
    lab.kea
        .wait_for_log("DHCP4_DECLINE_LEASE", Duration::from_secs(10))
        .expect("Kea takes the decline");
    lab.wait_gone(&fqdn, "A");
    lab.wait_gone(&lab.ptr_name(lease.address), "PTR");
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn two_thousand_perfdhcp_clients_get_exactly_their_records() {
    require_root();
    let lab = Lab::start(|_, _| {});
    let report = Perfdhcp::new(500, 2000, 2000)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(report.acks() >= 2000, "{}", report.output);
    lab.wait_zone_matches_leases(2000);
    assert_eq!(lab.dns().count(ZONE, "DHCID").unwrap(), 2000);
    assert_eq!(lab.stat("leasedns.changes-dropped"), 0);
    // Every packet callout is timed: DISCOVER and REQUEST each pass
    // lease4_select and pkt4_send, and the REQUEST leases4_committed.
    lab.wait_stat("leasedns.callout-count", 5 * 2000);
    let (p50, p99, max) = (
        lab.stat("leasedns.callout-p50-ns"),
        lab.stat("leasedns.callout-p99-ns"),
        lab.stat("leasedns.callout-max-ns"),
    );
    // Quantiles are bucket upper bounds (buckets ~19% wide), the max exact.
    assert!(
        0 < p50 && p50 <= p99 && max > 0,
        "p50 {p50} p99 {p99} max {max}"
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn static_records_and_other_clients_names_are_not_taken() {
    require_root();
    let lab = Lab::start(|_, _| {});
    let printer = lab.net.addr(0, 250).to_string();
    // A client asking for the static printer's name.
    let report = one_client(12, b"printer", None)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(report.acks() >= 1, "{}", report.output);
    lab.wait_stat("leasedns.updates-conflict", 1);
    assert_eq!(
        lab.dns().query(&format!("printer.{ZONE}"), "A").unwrap(),
        vec![printer]
    );
    assert!(
        lab.dns()
            .query(&format!("printer.{ZONE}"), "DHCID")
            .unwrap()
            .is_empty()
    );

    // Two clients asking for one name: the first keeps it.
    let mut first = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("shared".into()),
            client_id: Some(b"\x01first-client".to_vec()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let first_lease = first.obtain(Duration::from_secs(30)).expect("first lease");
    let fqdn = format!("shared.{ZONE}");
    lab.wait_records(&fqdn, "A", &[first_lease.address.to_string()]);
    let owner = lab.dns().query(&fqdn, "DHCID").unwrap();
    first.stop().unwrap();

    let mut second = Dhclient::new(
        lab.net.client(),
        lab.net.client_iface(),
        &DhclientOptions {
            hostname: Some("shared".into()),
            client_id: Some(b"\x01second-client".to_vec()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let second_lease = second
        .obtain(Duration::from_secs(30))
        .expect("second lease");
    assert_ne!(
        first_lease.address, second_lease.address,
        "two clients, two leases"
    );
    lab.wait_stat("leasedns.updates-conflict", 2);
    assert_eq!(
        lab.dns().query(&fqdn, "A").unwrap(),
        vec![first_lease.address.to_string()]
    );
    assert_eq!(
        lab.dns().query(&fqdn, "DHCID").unwrap(),
        owner,
        "the first client's DHCID stays"
    );
    assert!(
        lab.dns()
            .query(&lab.ptr_name(second_lease.address), "PTR")
            .unwrap()
            .is_empty(),
        "no PTR for the loser"
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn wrong_tsig_secret_is_refused_counted_and_kea_keeps_serving() {
    require_root();
    let lab = Lab::start(|_, params| {
        params["tsig-keys"][0]["secret"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    });
    let report = Perfdhcp::new(50, 20, 20)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert_eq!(
        report.acks(),
        20,
        "Kea answers every client: {}",
        report.output
    );
    lab.wait_stat("leasedns.updates-refused", 20);
    lab.kea
        .wait_for_log("NotAuth", Duration::from_secs(10))
        .expect("the refusal is logged with its reason");
    assert_eq!(
        lab.dns()
            .count(lab.net.reverse_zone().as_str(), "PTR")
            .unwrap(),
        0
    );
    assert!(
        lab.dns()
            .axfr(ZONE)
            .unwrap()
            .iter()
            .all(|r| !r.name.starts_with("host-"))
    );
    lab.kea.check_running_ref();
}

trait RunningCheck {
    fn check_running_ref(&self);
}

impl RunningCheck for Kea {
    fn check_running_ref(&self) {
        self.command_ok("list-commands", None)
            .expect("Kea still answers its control socket");
    }
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn hostile_client_names_are_refused_or_sanitised_without_harm() {
    require_root();
    let lab = Lab::start(|_, _| {});
    let long_label = "a".repeat(64);
    let huge = vec![b'x'; 255];
    // (option, value, whether Kea answers: a wire-format name that Kea's own
    // option parser rejects makes Kea drop the packet before any hook runs).
    let cases: Vec<(u8, Vec<u8>, bool)> = vec![
        (12, huge, true),
        (12, long_label.clone().into_bytes(), true),
        (12, b"\x00\x01\xff\xfe binary".to_vec(), true),
        (12, b"a..b".to_vec(), true),
        (12, b"evil.other.zone.".to_vec(), true),
        (12, b"Bad_Name!".to_vec(), true),
        // Option 81, E flag, a label length running past the end.
        (81, [&[0x05u8, 0, 0, 63][..], b"short"].concat(), false),
        // Option 81, ASCII, 64-byte label (Kea's parser refuses it too).
        (
            81,
            [&[0x01u8, 0, 0][..], long_label.as_bytes()].concat(),
            false,
        ),
        // Option 81, ASCII, valid but outside every zone.
        (
            81,
            [&[0x01u8, 0, 0][..], b"intruder.elsewhere.test."].concat(),
            true,
        ),
    ];
    for (i, (code, value, answered)) in cases.iter().enumerate() {
        let mac = format!("00:0c:01:02:{:02x}:{:02x}", 0xa0, i);
        let report = one_client(*code, value, Some(&mac))
            .run(&lab.net.client(), lab.net.client_iface())
            .expect("perfdhcp");
        if *answered {
            assert!(
                report.acks() >= 1,
                "Kea answers despite option {code},{}: {}",
                hex(value),
                report.output
            );
        }
        lab.kea.check_running_ref();
    }
    // Sanitised: Bad_Name! -> badname (hostname-char-set drops _ and !).
    let leases = lab.kea.leases().unwrap();
    lab.wait_records(
        &format!("badname.{ZONE}"),
        "A",
        &[leases
            .iter()
            .find(|l| harness::absolute_fqdn(&l["hostname"]) == format!("badname.{ZONE}"))
            .map(|l| l["address"].clone())
            .unwrap_or_else(|| panic!("no lease named badname: {leases:?}"))],
    );
    assert!(
        lab.stat("leasedns.names-rejected") >= 1,
        "refusals are counted"
    );
    // Whatever got published is a well-formed name inside the zone.
    for record in lab.dns().axfr(ZONE).unwrap() {
        assert!(record.name.ends_with(ZONE), "{record:?}");
        assert!(record.name.len() <= 255, "{record:?}");
        for label in record.name.trim_end_matches('.').split('.') {
            assert!(!label.is_empty() && label.len() <= 63, "{record:?}");
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{record:?}"
            );
        }
    }
    lab.kea.check_running_ref();
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn config_reload_keeps_the_hook_working_without_leaking_threads() {
    require_root();
    let mut lab = Lab::start(|_, _| {});
    let report = Perfdhcp::new(50, 10, 10)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(report.acks() >= 10, "{}", report.output);
    lab.wait_zone_matches_leases(10);
    let pid = lab.kea.pid().expect("kea pid");
    let before = thread_count(pid);
    for _ in 0..3 {
        let opts = lab.kea.options().clone();
        lab.kea.reconfigure(opts).expect("config-reload");
    }
    wait_until(
        Duration::from_secs(10),
        "thread count back to its level",
        || thread_count(pid) == before,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {} threads before, {} after",
            before,
            thread_count(pid)
        )
    });
    let report = Perfdhcp::new(50, 10, 10)
        .mac_base("00:0c:02:00:00:00")
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(report.acks() >= 10, "{}", report.output);
    lab.wait_zone_matches_leases(20);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn multi_threaded_kea_publishes_every_lease() {
    require_root();
    let lab = Lab::start(|opts, _| opts.multi_threading = Some(4));
    assert!(
        lab.kea.log().contains("DHCP4_MULTI_THREADING_INFO")
            || lab.kea.log().contains("multi-threading"),
        "MT on"
    );
    let report = Perfdhcp::new(500, 1000, 1000)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    // perfdhcp may initiate one exchange more than asked; 1000 clients still
    // means 1000 leases.
    assert!(report.acks() >= 1000, "{}", report.output);
    lab.wait_zone_matches_leases(1000);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn bad_configurations_refuse_the_load_with_a_clear_line() {
    require_root();
    let net = Netns::new().expect("namespaces");
    let knot = Knot::start(net.server(), &{
        let mut k = KnotOptions::new(ZONE);
        k.reverse_zone = Some(net.reverse_zone());
        k
    })
    .expect("knotd");
    let journal = tempfile::tempdir().unwrap();
    let good = knot.hook_parameters(journal.path());
    let a_file = journal.path().join("not-a-dir");
    std::fs::write(&a_file, "x").unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "parameter 'colour': unknown parameter",
            Box::new(|p| p["colour"] = json!("blue")),
        ),
        (
            "parameter 'journal-dir': required parameter is missing",
            Box::new(|p| {
                p.as_object_mut().unwrap().remove("journal-dir");
            }),
        ),
        (
            "parameter 'tsig-keys[0].secret'",
            Box::new(|p| p["tsig-keys"][0]["secret"] = json!("not base64!")),
        ),
        (
            "parameter 'forward-ddns.ddns-domains[0].dns-servers'",
            Box::new(|p| p["forward-ddns"]["ddns-domains"][0]["dns-servers"] = json!([])),
        ),
        (
            "parameter 'forward-ddns.ddns-domains[0].key-name'",
            Box::new(|p| p["forward-ddns"]["ddns-domains"][0]["key-name"] = json!("no-such-key")),
        ),
        (
            "parameter 'tsig-keys[0].algorithm'",
            Box::new(|p| p["tsig-keys"][0]["algorithm"] = json!("hmac-rot13")),
        ),
        (
            "parameter 'journal-dir'",
            Box::new(move |p| p["journal-dir"] = json!(a_file.to_string_lossy())),
        ),
    ];
    let library = hook_library().unwrap();
    for (expected, edit) in cases {
        let mut params = good.clone();
        edit(&mut params);
        let opts = KeaOptions::for_netns(&net).with_hook(&library, params);
        match Kea::start(net.server(), opts) {
            Ok(_) => panic!("Kea started with a bad hook configuration (expected {expected:?})"),
            Err(err) => {
                let text = err.to_string();
                assert!(
                    text.contains("LEASEDNS_ERROR") && text.contains(expected),
                    "expected {expected:?} in:\n{text}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs the built plugin (LEASEDNS_HOOK_LIB / LEASEDNS_KNOT_MODULE); build/test runs it"]
fn the_library_exports_exactly_the_symbols_kea_looks_up() {
    let library = hook_library().expect("hook library built");
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&library)
        .output()
        .expect("nm");
    assert!(out.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    names.sort();
    let mut expected = vec![
        "ddns4_update",
        "dhcp4_srv_configured",
        "lease4_decline",
        "lease4_expire",
        "lease4_recover",
        "lease4_renew",
        "lease4_select",
        "leases4_committed",
        "load",
        "multi_threading_compatible",
        "pkt4_send",
        // kea-dhcp6's hook points (each daemon registers only its own).
        "ddns6_update",
        "dhcp6_srv_configured",
        "lease6_decline",
        "lease6_expire",
        "lease6_rebind",
        "lease6_recover",
        "lease6_renew",
        "lease6_select",
        "leases6_committed",
        "subnet6_select",
        "unload",
        "version",
    ];
    expected.sort();
    assert_eq!(names, expected);
}

/// The TTL and the conflict resolution of a lease are what Kea's own DDNS
/// would apply: from the subnet's `ddns-*` settings in kea-dhcp4.conf where
/// this Kea has them (2.2: `ddns-use-conflict-resolution`; 2.6:
/// `ddns-conflict-resolution-mode`, `ddns-ttl-percent`; 3.0: `ddns-ttl`),
/// from the hook's parameters where it has not (2.2's TTL percentage).
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn ttl_and_conflict_resolution_follow_kea_per_subnet() {
    require_root();
    let release = harness::kea_release().expect("kea-dhcp4 -v");
    let lab = Lab::start(|opts, params| {
        opts.valid_lifetime = 3600;
        if release >= (3, 0) {
            // Kea 3.0 refuses ddns-ttl beside ddns-ttl-percent in one scope.
            opts.subnet_extra.insert("ddns-ttl".into(), json!(777));
        } else if release >= (2, 6) {
            opts.subnet_extra
                .insert("ddns-ttl-percent".into(), json!(0.5));
        } else {
            params["ddns-ttl-percent"] = json!(0.5);
        }
        if release >= (2, 6) {
            opts.subnet_extra.insert(
                "ddns-conflict-resolution-mode".into(),
                json!("no-check-without-dhcid"),
            );
        } else {
            opts.subnet_extra
                .insert("ddns-use-conflict-resolution".into(), json!(false));
        }
    });
    let expected_ttl = if release >= (3, 0) { 777 } else { 1800 };
    let run = one_client(12, b"native", None)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(run.acks() >= 1, "a lease: {run:?}");
    let fqdn = format!("native.{ZONE}");
    let dns = lab.dns();
    wait_until(DNS_DEADLINE, &format!("{fqdn} A"), || {
        dns.query(&fqdn, "A").is_ok_and(|a| a.len() == 1)
    })
    .unwrap_or_else(|e| panic!("{e}\nkea log:\n{}", lab.kea.log()));
    let a = dns.lookup(&fqdn, "A").unwrap();
    assert_eq!(a.records[0].ttl, expected_ttl, "Kea {release:?}: {a:?}");
    let addr: Ipv4Addr = a.records[0].rdata.parse().unwrap();
    lab.wait_records(&lab.ptr_name(addr), "PTR", std::slice::from_ref(&fqdn));
    let ptr = dns.lookup(&lab.ptr_name(addr), "PTR").unwrap();
    assert_eq!(ptr.records[0].ttl, expected_ttl, "{ptr:?}");
    let dhcid = dns.query(&fqdn, "DHCID").unwrap();
    if release >= (2, 6) {
        assert!(
            dhcid.is_empty(),
            "no-check-without-dhcid writes no DHCID: {dhcid:?}"
        );
        assert!(dns.query(&lab.ptr_name(addr), "DHCID").unwrap().is_empty());
    } else {
        // Kea 2.2's false: kea-dhcp-ddns's simple add, which writes DHCIDs.
        assert_eq!(dhcid.len(), 1, "{dhcid:?}");
    }
}

/// A hook parameter the running Kea has as its own setting is refused, and
/// the load fails with a message saying where it goes; on a Kea without it
/// (2.2's `ddns-ttl`) the message says which Kea has it.
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn settings_kea_owns_are_refused_as_hook_parameters() {
    require_root();
    let release = harness::kea_release().expect("kea-dhcp4 -v");
    let net = Netns::new().expect("namespaces");
    let knot = Knot::start(net.server(), &KnotOptions::new(ZONE)).expect("knotd");
    let journal = tempfile::tempdir().unwrap();
    let mut cases = vec![
        // Kea's naming settings, on every release.
        ("ddns-qualifying-suffix", json!(ZONE), "kea-dhcp4.conf"),
        (
            "ddns-replace-client-name",
            json!("always"),
            "kea-dhcp4.conf",
        ),
    ];
    cases.push(if release >= (2, 6) {
        ("ddns-ttl-percent", json!(0.5), "kea-dhcp4.conf")
    } else {
        ("ddns-ttl", json!(300), "Kea 3.0 has")
    });
    let library = hook_library().expect("hook library");
    for (key, value, says) in cases {
        let mut params = knot.hook_parameters(journal.path());
        params[key] = value;
        let opts = KeaOptions::for_netns(&net).with_hook(&library, params);
        // `kea-dhcp4 -t` does not call the hook's load(); starting does.
        let err = Kea::start(net.server(), opts).expect_err(&format!(
            "Kea {release:?} accepted {key} as a hook parameter"
        ));
        let message = err.to_string();
        assert!(message.contains(key) && message.contains(says), "{message}");
    }
    // Kea's own DDNS client beside the hook would publish everything twice:
    // the configuration is refused.
    let mut opts =
        KeaOptions::for_netns(&net).with_hook(&library, knot.hook_parameters(journal.path()));
    opts.dhcp4_extra.insert(
        "dhcp-ddns".into(),
        json!({ "enable-updates": true, "server-ip": "127.0.0.1", "server-port": 53001 }),
    );
    let err = Kea::start(net.server(), opts).expect_err("Kea's DDNS client on beside the hook");
    let message = err.to_string();
    assert!(message.contains("enable-updates"), "{message}");
}

/// Kea 3.0's SKIP_DDNS client class keeps a client out of DNS (its lease
/// keeps the name); Kea 2.2 and 2.6 have no such class, and there a class
/// of that name changes nothing.
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn skip_ddns_class_keeps_a_client_out_of_dns_on_kea_3_0() {
    require_root();
    let release = harness::kea_release().expect("kea-dhcp4 -v");
    let lab = Lab::start(|opts, _| {
        opts.dhcp4_extra.insert(
            "client-classes".into(),
            json!([{ "name": "SKIP_DDNS", "test": "option[host-name].text == 'hidden'" }]),
        );
    });
    let hidden = one_client(12, b"hidden", Some("02:00:00:00:0a:01"))
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    let shown = one_client(12, b"shown", Some("02:00:00:00:0a:02"))
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp");
    assert!(
        hidden.acks() >= 1 && shown.acks() >= 1,
        "{hidden:?} {shown:?}"
    );
    let shown_fqdn = format!("shown.{ZONE}");
    let hidden_fqdn = format!("hidden.{ZONE}");
    let dns = lab.dns();
    wait_until(DNS_DEADLINE, &format!("{shown_fqdn} A"), || {
        dns.query(&shown_fqdn, "A").is_ok_and(|a| a.len() == 1)
    })
    .unwrap_or_else(|e| panic!("{e}\nkea log:\n{}", lab.kea.log()));
    let leases = lab.kea.leases().unwrap();
    let hidden_lease = leases
        .iter()
        .find(|l| harness::absolute_fqdn(&l["hostname"]) == hidden_fqdn)
        .unwrap_or_else(|| panic!("a lease named {hidden_fqdn}: {leases:?}"));
    if release >= (3, 0) {
        // Both clients' changes went through the same queue; the shown one
        // is in DNS, so the hidden one would be too had it been sent.
        lab.wait_stat("leasedns.updates-succeeded", 1);
        assert!(
            dns.query(&hidden_fqdn, "A").unwrap().is_empty(),
            "SKIP_DDNS client in DNS"
        );
        assert_eq!(
            (
                hidden_lease["fqdn_fwd"].as_str(),
                hidden_lease["fqdn_rev"].as_str()
            ),
            ("0", "0"),
            "{hidden_lease:?}"
        );
    } else {
        lab.wait_records(&hidden_fqdn, "A", &[hidden_lease["address"].clone()]);
    }
}
