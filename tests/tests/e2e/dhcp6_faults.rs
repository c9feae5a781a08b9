//! DHCPv6 durability with the real daemons: the leasedns hook in
//! kea-dhcp6, knotd and perfdhcp -6, with a fault in the middle of a burst
//! (knotd killed, kea-dhcp6 killed while knotd is frozen); a Decline; and
//! `leasedns-reconcile` repairing the v6 records edited behind the hook's
//! back while leaving the v4 family's records alone. After each, the zones
//! hold exactly one AAAA, one PTR and the two DHCIDs per active lease in
//! kea-dhcp6's lease file, and nothing else of ours.
//!
//! The v4 equivalents are faults.rs, recovery.rs and the
//! decline test of kea_hook.rs.

use crate::common;

use std::net::Ipv6Addr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::ZONE;
use common::lab6::{Lab6, LeaseNames6, Updater, ZoneNames6, dhcid6, ptr_name};
use harness::{
    Client6Spec, ClientFqdn6, Perfdhcp, PerfdhcpReport, RelayClient6, require_root, wait_until,
};
use serde_json::json;

/// Longest wait for the zones to match the leases once a fault is over:
/// the sender's backoff reaches 5 s (+ jitter) during an outage, and 2,000
/// changes go out in batches.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(180);
/// Longest wait for the hook's gauges to show what a step caused.
const STAT_DEADLINE: Duration = Duration::from_secs(30);

/// The hook in kea-dhcp6 with leases long enough that none expires during
/// a test: every lease in the file must be in DNS.
fn hook_lab() -> Lab6 {
    Lab6::start(Updater::Hook, |opts, _| opts.valid_lifetime = 3600)
}

/// `clients` perfdhcp -6 clients at `rate`/s, each sending option 39 with
/// S=1 and no name, so Kea names each `host-<address>`.
fn named_burst(rate: u32, clients: u32) -> Perfdhcp {
    Perfdhcp::v6(rate, clients, clients).option(39, &[0x01])
}

fn join(burst: JoinHandle<harness::Result<PerfdhcpReport>>) -> PerfdhcpReport {
    burst
        .join()
        .expect("perfdhcp thread")
        .expect("perfdhcp -6 runs")
}

fn wait_stat(lab: &Lab6, what: &str, condition: impl Fn(i64) -> bool, name: &str) -> i64 {
    let mut last = 0;
    wait_until(STAT_DEADLINE, what, || {
        last = lab.stat(name);
        condition(last)
    })
    .unwrap_or_else(|e| panic!("{e}: {name}={last}; stats: {}", lab.stats_line()));
    last
}

/// Waits until the zones hold exactly the lease file's records and the
/// hook has nothing queued or pending; returns the number of leases and
/// the seconds that took from `since`.
fn converge(lab: &Lab6, since: Instant) -> (usize, f64) {
    let leases = LeaseNames6::read(&lab.kea)
        .expect("kea-dhcp6's lease file")
        .pairs
        .len();
    lab.wait_zones_match_leases(leases, CONVERGE_DEADLINE);
    wait_until(CONVERGE_DEADLINE, "queue and journal drained", || {
        lab.stat("leasedns.queue-depth") == 0 && lab.stat("leasedns.journal-entries") == 0
    })
    .unwrap_or_else(|e| panic!("{e}; stats: {}", lab.stats_line()));
    (leases, since.elapsed().as_secs_f64())
}

/// The statistics that must stay zero whatever the fault.
fn assert_nothing_lost(lab: &Lab6) {
    common::assert_nothing_lost(&lab.kea, |name| lab.stat(name));
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn knotd_killed_mid_v6_burst_then_restarted_loses_nothing() {
    require_root();
    let mut lab = hook_lab();
    // 1,500 clients over ~7.5 s; knotd dies once 300 changes are in.
    let burst = lab.burst(named_burst(200, 1500));
    wait_stat(
        &lab,
        "300 changes submitted before the kill",
        |n| n >= 300,
        "leasedns.changes-submitted",
    );
    lab.knot.kill().expect("SIGKILL knotd");
    let report = join(burst);
    assert!(report.replies() >= 1200, "{}", report.output);
    // The burst ended with knotd down: its tail waits in the journal.
    let held = wait_stat(
        &lab,
        "changes held in the journal while knotd is down",
        |n| n > 0,
        "leasedns.journal-entries",
    );
    lab.knot
        .start_again()
        .expect("knotd starts again on its zone files and journal");
    let (leases, seconds) = converge(&lab, Instant::now());
    eprintln!(
        "V6-FAULT-FIGURES knotd-sigkill: leases={leases} replies={} held-at-restart={held} converged-after-restart-s={seconds:.1} | {}",
        report.replies(),
        lab.stats_line()
    );
    assert!(leases >= 1200, "a real burst: {leases} leases");
    assert_nothing_lost(&lab);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn kea_dhcp6_killed_mid_burst_replays_its_journal() {
    require_root();
    let mut lab = hook_lab();
    let burst = lab.burst(named_burst(200, 2000));
    wait_stat(
        &lab,
        "200 changes submitted with knotd up",
        |n| n >= 200,
        "leasedns.changes-submitted",
    );
    // knotd frozen: what Kea commits from now on stays pending in the
    // journal, so the kill finds work there (with knotd answering, the
    // journal drains within milliseconds and a replay proves nothing).
    lab.knot.signal(libc::SIGSTOP).expect("SIGSTOP knotd");
    let held_before_kill = wait_stat(
        &lab,
        "300 changes pending while knotd is frozen",
        |n| n >= 300,
        "leasedns.journal-entries",
    );
    lab.kea.kill().expect("SIGKILL kea-dhcp6");
    let committed = LeaseNames6::read(&lab.kea).expect("lease file at the kill");
    let report = join(burst);
    lab.kea
        .start_again()
        .expect("kea-dhcp6 starts again on the same lease file and journal");
    lab.kea
        .wait_for_log("replaying journal entries", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the hook replays its journal at load: {e}\n{}", lab.logs()));
    // knotd is still frozen: the replayed changes are pending, and both
    // the statistic and leasedns-status say so.
    let replayed = wait_stat(
        &lab,
        "replayed changes pending after the restart",
        |n| n > 0,
        "leasedns.journal-entries",
    );
    let status = lab
        .kea
        .command_ok("leasedns-status", None)
        .expect("leasedns-status");
    assert!(
        status["pending-changes"].as_i64().is_some_and(|n| n > 0),
        "leasedns-status shows the replayed changes pending: {status}"
    );
    lab.knot.signal(libc::SIGCONT).expect("SIGCONT knotd");
    let (leases, seconds) = converge(&lab, Instant::now());
    eprintln!(
        "V6-FAULT-FIGURES kea6-sigkill: leases-at-kill={} pending-at-kill={held_before_kill} pending-after-restart={replayed} leases={leases} replies={} converged-after-thaw-s={seconds:.1} | {}",
        committed.pairs.len(),
        report.replies(),
        lab.stats_line()
    );
    // Every lease committed before the kill is published, exactly once.
    let zones = ZoneNames6::read(&lab.dns(), ZONE, &lab.reverse_zone()).expect("AXFR");
    let missing: Vec<_> = committed.pairs.difference(&zones.aaaa).collect();
    assert!(
        missing.is_empty(),
        "{} leases committed before the kill have no AAAA, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let missing: Vec<_> = committed.pairs.difference(&zones.ptr).collect();
    assert!(missing.is_empty(), "no PTR for {missing:?}");
    assert!(
        committed.pairs.len() >= 300,
        "the kill came mid-burst: {} leases before it",
        committed.pairs.len()
    );
    assert_nothing_lost(&lab);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn declined_address_loses_its_records() {
    require_root();
    let lab = Lab6::start(Updater::Hook, |_, _| {});
    // No stock client declines on demand (dhclient -6 only when its DAD
    // fails, perfdhcp -6 never): the scripted client sends it.
    let client = Client6Spec {
        duid: Client6Spec::duid_ll([0x02, 0x6c, 0xde, 0xc1, 0x00, 0x01]),
        iaid: 0x0d0c,
        fqdn: Some(ClientFqdn6::new(ClientFqdn6::S, "decliner")),
    };
    let relay = RelayClient6::new(&lab.net).expect("relay socket");
    let lease = relay
        .allocate(&client, lab.net.client_addr6())
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let fqdn = format!("decliner.{ZONE}");
    let ptr = ptr_name(lease.address);
    let dhcid = dhcid6(&client.duid, &fqdn);
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    lab.wait_records(&ptr, "PTR", std::slice::from_ref(&fqdn));
    lab.wait_records(&fqdn, "DHCID", std::slice::from_ref(&dhcid));
    lab.wait_records(&ptr, "DHCID", std::slice::from_ref(&dhcid));

    let reply = relay
        .decline(&client, &lease)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert!(
        reply.status.iter().all(|(code, _)| *code == 0),
        "Kea accepts the Decline: {reply:?}\n{}",
        lab.logs()
    );
    lab.wait_gone(&fqdn, "AAAA");
    lab.wait_gone(&fqdn, "DHCID");
    lab.wait_gone(&ptr, "PTR");
    lab.wait_gone(&ptr, "DHCID");
    // It was a Decline: Kea keeps the address in the declined state.
    let leases = lab.kea.leases().expect("lease file");
    let row = leases
        .iter()
        .find(|l| l["address"] == lease.address.to_string())
        .unwrap_or_else(|| panic!("no lease row for {}: {leases:?}", lease.address));
    assert_eq!(row["state"], "1", "declined: {row:?}\n{}", lab.logs());
    assert_eq!(lab.stat("leasedns.updates-conflict"), 0);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn a_client_whose_two_exchanges_interleave_keeps_its_records() {
    require_root();
    let lab = Lab6::start(Updater::Hook, |_, _| {});
    // As perfdhcp -6 -o 39,01 does under drops: one DUID runs a second
    // Solicit before its first Request, so two Advertises offer two
    // addresses, and both are requested. Option 39 with S and no name:
    // Kea generates the name from the address.
    let client = Client6Spec {
        duid: Client6Spec::duid_ll([0x02, 0x6c, 0xde, 0xc1, 0x00, 0x02]),
        iaid: 1,
        fqdn: Some(ClientFqdn6::new(ClientFqdn6::S, "")),
    };
    let relay = RelayClient6::new(&lab.net).expect("relay socket");
    let link = lab.net.client_addr6();
    let fail = |e: harness::HarnessError| -> ! { panic!("{e}\n{}", lab.logs()) };
    let (first, server_id) = relay.offer(&client, link).unwrap_or_else(|e| fail(e));
    let (second, _) = relay.offer(&client, link).unwrap_or_else(|e| fail(e));
    let mut replies = Vec::new();
    for advertise in [&first, &second] {
        let (address, _) = advertise.address.expect("an offered address");
        let reply = relay
            .request(&client, link, &server_id, address)
            .unwrap_or_else(|e| fail(e));
        replies.push(reply);
    }
    let leases = LeaseNames6::read(&lab.kea).expect("leases");
    eprintln!(
        "advertised {first:?} then {second:?}; replies {replies:?}; leases {:?}",
        leases.pairs
    );
    lab.wait_zones_match_leases(leases.pairs.len(), Duration::from_secs(30));
    // Then whole exchanges again for the binding it has (perfdhcp -R picks
    // clients at random, so one DUID can run several).
    for round in 0..2 {
        let again = relay.allocate(&client, link).unwrap_or_else(|e| fail(e));
        let leases = LeaseNames6::read(&lab.kea).expect("leases");
        eprintln!(
            "round {round}: {:?}; leases {:?}; {}",
            again.reply,
            leases.pairs,
            lab.stats_line()
        );
        lab.wait_zones_match_leases(leases.pairs.len(), Duration::from_secs(30));
    }
    assert_eq!(
        lab.stat("leasedns.updates-conflict"),
        0,
        "{}",
        lab.stats_line()
    );
}

/// A DHCID for a v4 client (identifier type 0: hardware address) at
/// `fqdn`.
fn dhcid4(hwaddr: &[u8], fqdn: &str) -> String {
    let rdata = ddns_engine::naming::dhcid::dhcid_rdata(None, 1, hwaddr, fqdn)
        .expect("DHCID of a valid name");
    base64::engine::general_purpose::STANDARD.encode(rdata)
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn v6_reconcile_restores_deleted_records_removes_stale_ones_and_leaves_v4_alone() {
    require_root();
    let lab = Lab6::start(Updater::Hook, |_, _| {});
    let report = named_burst(100, 30)
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp -6");
    assert!(report.replies() >= 30, "{}", report.output);
    lab.wait_zones_match_leases(30, Duration::from_secs(60));
    let leases: Vec<(String, Ipv6Addr)> = LeaseNames6::read(&lab.kea)
        .expect("leases")
        .pairs
        .into_iter()
        .collect();
    let victims = &leases[..3];
    let reverse = lab.reverse_zone();
    let nsupdate = |zone: &str, lines: &[String]| {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = lab.knot.nsupdate(zone, &refs).expect("knsupdate");
        assert!(out.success(), "{}", out.combined());
    };

    // Behind the hook's back: three AAAA and one PTR deleted ...
    let mut forward: Vec<String> = victims
        .iter()
        .map(|(name, _)| format!("update delete {name} AAAA"))
        .collect();
    // ... a stale v6 name with a DHCID and no lease ...
    let stale_name = format!("stale6.{ZONE}");
    let stale_addr = lab.net.addr6(0x9_0009);
    let stale_dhcid = dhcid6(&[0, 3, 0, 1, 0x02, 0x6c, 0, 0, 0x99, 0x99], &stale_name);
    forward.push(format!("update add {stale_name} 300 AAAA {stale_addr}"));
    forward.push(format!("update add {stale_name} 300 DHCID {stale_dhcid}"));
    // ... a v4 client's name (A + DHCID, no v6 lease) ...
    let v4_name = format!("v4only.{ZONE}");
    let v4_addr = lab.net.addr(9, 9);
    let v4_dhcid = dhcid4(&[0x02, 0, 0, 0, 0x09, 0x09], &v4_name);
    forward.push(format!("update add {v4_name} 300 A {v4_addr}"));
    forward.push(format!("update add {v4_name} 300 DHCID {v4_dhcid}"));
    // ... and the v4 half of a dual-stack name a v6 lease holds.
    let (dual_name, dual_addr6) = &leases[5];
    let dual_addr4 = lab.net.addr(9, 10);
    forward.push(format!("update add {dual_name} 300 A {dual_addr4}"));
    nsupdate(ZONE, &forward);
    let (victim_name, victim_addr) = &victims[0];
    let stale_ptr = ptr_name(stale_addr);
    nsupdate(
        &reverse,
        &[
            format!("update delete {} PTR", ptr_name(*victim_addr)),
            format!("update add {stale_ptr} 300 PTR {stale_name}"),
            format!("update add {stale_ptr} 300 DHCID {stale_dhcid}"),
        ],
    );
    assert!(lab.dns().query(victim_name, "AAAA").unwrap().is_empty());

    let answer = lab
        .kea
        .command_ok("leasedns-reconcile", None)
        .expect("leasedns-reconcile");
    assert_eq!(answer["leases"], json!(30), "{answer}");
    for (name, addr) in victims {
        lab.wait_records(name, "AAAA", &[addr.to_string()]);
    }
    lab.wait_records(
        &ptr_name(*victim_addr),
        "PTR",
        std::slice::from_ref(victim_name),
    );
    lab.wait_gone(&stale_name, "AAAA");
    lab.wait_gone(&stale_name, "DHCID");
    lab.wait_gone(&stale_ptr, "PTR");
    lab.wait_gone(&stale_ptr, "DHCID");
    // Exactly the leases' records, once the v4 family's are set aside.
    let expected = LeaseNames6::read(&lab.kea).expect("leases");
    let mut last = String::new();
    wait_until(
        Duration::from_secs(60),
        "v6 records match the leases",
        || {
            let Ok(mut zones) = ZoneNames6::read(&lab.dns(), ZONE, &reverse) else {
                return false;
            };
            zones.forward_dhcid.remove(&v4_name);
            match zones.differs_from(&expected) {
                None => true,
                Some(diff) => {
                    last = diff;
                    false
                }
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {last}\n{}", lab.logs()));
    // The reconciliation's report is in; the v4 family's records are
    // exactly as written.
    wait_until(STAT_DEADLINE, "the reconciliation report", || {
        lab.kea.command_ok("leasedns-status", None).is_ok_and(|s| {
            s["reconcile"]["last"]["report"]["missing"]
                .as_u64()
                .is_some_and(|m| m >= 3)
        })
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let dns = lab.dns();
    assert_eq!(dns.query(&v4_name, "A").unwrap(), vec![v4_addr.to_string()]);
    assert_eq!(dns.query(&v4_name, "DHCID").unwrap(), vec![v4_dhcid]);
    assert_eq!(
        dns.query(dual_name, "A").unwrap(),
        vec![dual_addr4.to_string()],
        "the v4 half of a dual-stack name"
    );
    assert_eq!(
        dns.query(dual_name, "AAAA").unwrap(),
        vec![dual_addr6.to_string()]
    );
    let status = lab.kea.command_ok("leasedns-status", None).unwrap();
    let report = &status["reconcile"]["last"]["report"];
    assert_eq!(report["missing"], json!(3), "{status}");
    assert_eq!(report["stale"], json!(2), "{status}");
}
