//! Knot primary and secondaries (issue 14, item 3): the real kea-dhcp4 with
//! the hook updates a knotd primary; two knotd secondaries, each its own
//! process on its own loopback address in the server namespace, follow it
//! by NOTIFY and IXFR. After a burst of perfdhcp clients, with or without
//! the primary killed in the middle, the primary must hold exactly Kea's
//! leases (A, PTR and DHCIDs) and every secondary exactly the primary's
//! zones at the primary's serial. A third test sends the updates to a
//! secondary, which forwards them to the primary (Knot's DDNS forwarding).
//!
//! Each test prints one `FAULT-FIGURES` line; run with `--nocapture`.

use std::time::{Duration, Instant};

use crate::common;

use harness::{Knot, Perfdhcp, require_root};

use common::ZONE;
use common::fault_lab::{Lab, Sampler, UpdatesTo, join, sleep_until};

const SECONDARIES: usize = 2;

/// Runs `run` against `lab`, waits until the zones match the leases (and
/// the secondaries the primary), and prints the figures as `test`.
fn burst_then_converge(lab: &Lab, test: &str, run: Perfdhcp) {
    let clients = u64::from(run.clients);
    let report = join(lab.burst(run));
    let ended = Instant::now();
    assert!(report.acks() >= clients * 5 / 6, "{}", report.output);
    let converged = lab.converge(ended);
    lab.figures(test, report.acks(), Default::default(), converged);
}

/// Asserts that `knot`'s log shows `what` (a zone event), naming `who`.
fn assert_logged(knot: &Knot, who: &str, what: &str) {
    let log = knot.log();
    assert!(
        log.contains(what),
        "{who} logged no `{what}`; its log tail:\n{}",
        common::tail(&log, 30)
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn secondaries_follow_the_primary_by_notify_and_ixfr() {
    require_root();
    let lab = Lab::with_secondaries(SECONDARIES, &UpdatesTo::Primary);
    burst_then_converge(&lab, "secondaries-follow", Perfdhcp::new(200, 600, 600));
    // Convergence compared whole zones; this pins how the copies got there:
    // the primary's changes, announced by NOTIFY and sent as IXFR.
    let serial = lab.dns().soa_serial(ZONE).expect("primary SOA");
    assert!(serial > 1, "the hook's updates moved the serial: {serial}");
    for secondary in &lab.secondaries {
        let who = format!("secondary {}", secondary.addr());
        assert_logged(secondary, &who, "notify, incoming");
        assert_logged(secondary, &who, "IXFR, incoming");
    }
    lab.assert_nothing_lost();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn primary_killed_mid_burst_then_restarted_secondaries_catch_up() {
    require_root();
    let mut lab = Lab::with_secondaries(SECONDARIES, &UpdatesTo::Primary);
    let sampler = Sampler::start(&lab.kea);
    // 3000 clients over 15 s; the primary dies 3 s in and comes back while
    // clients still arrive.
    let burst = lab.burst(Perfdhcp::new(200, 3000, 3000));
    std::thread::sleep(Duration::from_secs(3));
    let serial_at_kill = lab.dns().soa_serial(ZONE).expect("primary SOA");
    // Else the comparison after the restart would prove nothing.
    assert!(serial_at_kill > 1, "updates were applied before the kill");
    lab.knot.kill().expect("SIGKILL the primary");
    let down = Instant::now();
    // The secondaries keep answering while the primary is gone.
    for secondary in &lab.secondaries {
        let serial = secondary.dns().soa_serial(ZONE);
        assert!(
            serial.is_ok(),
            "secondary {} answers during the outage: {serial:?}",
            secondary.addr()
        );
    }
    sleep_until(down + Duration::from_secs(6));
    lab.knot.start_again().expect("the primary starts again");
    let up = Instant::now();
    let serial_at_restart = lab.dns().soa_serial(ZONE).expect("primary SOA");
    assert!(
        serial_at_restart >= serial_at_kill,
        "the primary's zone survived the kill (journal in its directory): \
         serial {serial_at_restart} after the restart, {serial_at_kill} before the kill"
    );
    let report = join(burst);
    assert!(report.acks() >= 2500, "{}", report.output);
    let converged = lab.converge(up);
    let peaks = sampler.finish();
    lab.assert_outage_ridden_out(
        "primary-sigkill-6s-with-secondaries",
        report.acks(),
        peaks,
        converged,
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn updates_sent_to_a_secondary_are_forwarded_to_the_primary() {
    require_root();
    let lab = Lab::with_secondaries(SECONDARIES, &UpdatesTo::Secondary);
    burst_then_converge(
        &lab,
        "updates-forwarded-by-a-secondary",
        Perfdhcp::new(100, 300, 300),
    );
    // The records reached the primary through the secondary, not around it:
    // the hook only knows the secondary's address.
    let forwarder = &lab.secondaries[0];
    assert_logged(forwarder, "the forwarding secondary", "forward");
    assert!(
        !forwarder.log().contains("failed to forward"),
        "every forward succeeded:\n{}",
        common::tail(&forwarder.log(), 30)
    );
    assert_logged(&lab.knot, "the primary", "DDNS, processing");
    lab.assert_nothing_lost();
}
