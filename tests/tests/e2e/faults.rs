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

use std::time::{Duration, Instant};

use crate::common;

use harness::{Perfdhcp, require_root};

use common::ZONE;
use common::fault_lab::{KnotAt, Lab, Sampler, join, sleep_until};

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
    lab.assert_outage_ridden_out("knotd-sigkill-30s", report.acks(), peaks, converged);
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
    lab.assert_outage_ridden_out("link-cut-20s", report.acks(), peaks, converged);
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
    let ptr = harness::reverse_name(lease.address.into());
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
