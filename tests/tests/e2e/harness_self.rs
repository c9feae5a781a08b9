//! Proves the harness against the stock daemons: knotd with TSIG updates,
//! kea-dhcp4 (no hooks) serving dhclient and perfdhcp across namespaces,
//! and `kea-dhcp4 -t` refusing a broken configuration.

use harness::{
    Dhclient, DhclientOptions, Kea, KeaOptions, Knot, KnotOptions, Netns, Perfdhcp, Place,
    require_root, wait_until,
};
use std::net::Ipv4Addr;
use std::time::Duration;

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn knot_answers_and_applies_a_signed_update() {
    require_root();
    let net = Netns::new().expect("namespaces");
    let mut opts = KnotOptions::new("lan.example.");
    opts.reverse_zone = Some(net.reverse_zone());
    opts.forward_records = vec![format!("printer A {}", net.addr(0, 250))];
    opts.reverse_records = vec!["250.0 PTR printer.lan.example.".to_owned()];
    let knot = Knot::start(net.server(), &opts).expect("knotd starts");
    let dns = knot.dns();

    assert_eq!(
        dns.query("printer.lan.example.", "A").unwrap(),
        vec![net.addr(0, 250).to_string()]
    );
    let ptr_name = format!("250.0.{}", net.reverse_zone());
    assert_eq!(
        dns.query(&ptr_name, "PTR").unwrap(),
        vec!["printer.lan.example.".to_owned()]
    );
    assert_eq!(dns.soa_serial("lan.example.").unwrap(), 1);
    let missing = dns.lookup("nobody.lan.example.", "A").unwrap();
    assert_eq!(missing.rcode, "NXDOMAIN");
    assert!(missing.records.is_empty());
    let printer = dns.lookup("printer.lan.example.", "A").unwrap();
    assert_eq!(printer.rcode, "NOERROR");
    assert_eq!(printer.records.len(), 1);
    assert_eq!(printer.records[0].name, "printer.lan.example.");
    assert_eq!(printer.records[0].ttl, 300);

    let host = net.addr(1, 5);
    let out = knot
        .nsupdate(
            "lan.example.",
            &[&format!("update add alpha.lan.example. 300 A {host}")],
        )
        .expect("knsupdate runs");
    assert!(out.success(), "signed update refused:\n{}", out.combined());
    assert_eq!(
        dns.query("alpha.lan.example.", "A").unwrap(),
        vec![host.to_string()]
    );
    assert_eq!(dns.soa_serial("lan.example.").unwrap(), 2);
    let zone = dns.axfr("lan.example.").unwrap();
    assert_eq!(
        zone.iter().filter(|r| r.rtype == "A").count(),
        3,
        "ns, printer, alpha: {zone:?}"
    );
    assert_eq!(knot.zone_read("lan.example.").unwrap().len(), zone.len());

    // An unsigned update must be refused by the ACL.
    let update = format!("update add beta.lan.example. 300 A {host}");
    let out = knot.nsupdate_as(None, "lan.example.", &[&update]).unwrap();
    assert!(
        !out.success() && out.combined().contains("NOTAUTH"),
        "{}",
        out.combined()
    );
    let wrong = harness::TsigKeyInfo {
        secret: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        ..knot.key().clone()
    };
    let out = knot
        .nsupdate_as(Some(&wrong), "lan.example.", &[&update])
        .unwrap();
    assert!(
        !out.success() && out.combined().contains("BADSIG"),
        "{}",
        out.combined()
    );
    assert!(dns.query("beta.lan.example.", "A").unwrap().is_empty());
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn knot_keeps_updates_across_a_restart() {
    require_root();
    let mut knot =
        Knot::start(Place::Host, &KnotOptions::new("lan.example")).expect("knotd starts");
    let out = knot
        .nsupdate(
            "lan.example.",
            &["update add gamma.lan.example. 300 A 192.0.2.7"],
        )
        .unwrap();
    assert!(out.success(), "{}", out.combined());
    let port = knot.port();
    knot.stop().unwrap();
    assert!(
        knot.dns().query("gamma.lan.example.", "A").is_err(),
        "nothing answers while stopped"
    );
    knot.start_again().unwrap();
    assert_eq!(knot.port(), port);
    assert_eq!(
        knot.dns().query("gamma.lan.example.", "A").unwrap(),
        vec!["192.0.2.7".to_owned()]
    );
}

fn in_pool(net: &Netns, addr: Ipv4Addr) -> bool {
    let o = addr.octets();
    o[0] == 10 && o[1] == net.octet() && (1..=250).contains(&o[2]) && o[3] != 0 && o[3] != 255
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn kea_serves_dhclient_and_perfdhcp_across_namespaces() {
    require_root();
    let net = Netns::new().expect("namespaces");
    let mut opts = KeaOptions::for_netns(&net);
    opts.valid_lifetime = 600;
    let mut kea = Kea::start(net.server(), opts).expect("kea-dhcp4 starts");

    let mut client = Dhclient::new(
        net.client(),
        net.client_iface(),
        &DhclientOptions {
            hostname: Some("alpha".into()),
            ..DhclientOptions::default()
        },
    )
    .unwrap();
    let lease = client
        .obtain(Duration::from_secs(30))
        .expect("dhclient gets a lease");
    assert!(in_pool(&net, lease.address), "{lease:?} outside the pool");
    assert_eq!(lease.server, Some(net.server_addr()));
    assert_eq!(lease.lifetime, Some(600));
    let leases = kea.leases().unwrap();
    assert!(
        leases
            .iter()
            .any(|l| l["address"] == lease.address.to_string() && l["hostname"] == "alpha"),
        "{leases:?}"
    );

    // Our dhclient-script put the address on the client veth.
    let addrs = net
        .ip_client(&["-4", "addr", "show", "dev", net.client_iface()])
        .unwrap();
    assert!(
        addrs.contains(&format!("inet {}/16", lease.address)),
        "{addrs}"
    );

    client.release().expect("dhclient -r");
    kea.wait_for_log("DHCP4_RELEASE", Duration::from_secs(10))
        .unwrap();
    let addrs = net
        .ip_client(&["-4", "addr", "show", "dev", net.client_iface()])
        .unwrap();
    assert!(
        !addrs.contains(&format!("inet {}/16", lease.address)),
        "{addrs}"
    );
    wait_until(
        Duration::from_secs(10),
        "the released lease to leave the lease file",
        || {
            kea.leases().is_ok_and(|l| {
                l.iter()
                    .all(|row| row["address"] != lease.address.to_string())
            })
        },
    )
    .unwrap();

    let report = Perfdhcp::new(100, 100, 100)
        .run(&net.client(), net.client_iface())
        .expect("perfdhcp runs");
    assert_eq!(report.exit_code, Some(0), "{}", report.output);
    assert_eq!(
        report.exchange("DISCOVER-OFFER").unwrap().received,
        100,
        "{}",
        report.output
    );
    assert_eq!(report.acks(), 100, "{}", report.output);
    assert_eq!(report.total_drops(), 0);
    let leases = kea.leases().unwrap();
    assert_eq!(leases.len(), 100, "one lease per simulated client");
    assert!(
        leases
            .iter()
            .all(|l| l["address"].parse().is_ok_and(|a| in_pool(&net, a)))
    );

    let stats = kea
        .command_ok(
            "statistic-get",
            Some(serde_json::json!({ "name": "pkt4-ack-sent" })),
        )
        .unwrap();
    let acks = stats["pkt4-ack-sent"][0][0].as_u64().unwrap();
    assert!(acks >= 101, "pkt4-ack-sent {acks}");
    kea.check_running().unwrap();
    let status = kea.stop().unwrap().unwrap();
    assert!(
        status.success(),
        "kea-dhcp4 exits cleanly on SIGTERM: {status}"
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn kea_check_config_rejects_a_broken_config() {
    require_root();
    let net = Netns::new().expect("namespaces");
    let dir = tempfile::tempdir().unwrap();
    let good = KeaOptions::for_netns(&net).config_json(dir.path());
    let (ok, output) = Kea::check_config(&net.server(), &good).unwrap();
    assert!(ok, "stock config must pass:\n{output}");

    let mut bad_pool = good.clone();
    bad_pool["Dhcp4"]["subnet4"][0]["pools"][0]["pool"] = "192.0.2.1 - 192.0.2.9".into();
    let (ok, output) = Kea::check_config(&net.server(), &bad_pool).unwrap();
    assert!(!ok, "a pool outside its subnet must be refused:\n{output}");
    assert!(output.contains("192.0.2.1"), "{output}");

    let mut missing_hook = good.clone();
    missing_hook["Dhcp4"]["hooks-libraries"] =
        serde_json::json!([{ "library": "/nonexistent/libnothing.so" }]);
    let (ok, output) = Kea::check_config(&net.server(), &missing_hook).unwrap();
    assert!(!ok, "a missing hook library must be refused:\n{output}");

    // Interfaces are checked in the namespace the check runs in.
    let (ok, _) = Kea::check_config(&Place::Host, &good).unwrap();
    assert!(!ok, "the server veth does not exist outside its namespace");
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn kea_start_reports_why_kea_died() {
    require_root();
    let net = Netns::new().expect("namespaces");
    let opts = KeaOptions::for_netns(&net).with_hook(
        std::path::Path::new("/nonexistent/libnothing.so"),
        serde_json::json!({}),
    );
    let err = Kea::start(net.server(), opts).expect_err("a missing hook library stops Kea");
    let message = err.to_string();
    assert!(
        matches!(err, harness::HarnessError::DaemonExited { .. }),
        "{message}"
    );
    // Kea 2.6.3+ loads hooks only from its hooks directory, where the
    // harness links each library by its file name.
    assert!(message.contains("libnothing.so"), "{message}");
}
