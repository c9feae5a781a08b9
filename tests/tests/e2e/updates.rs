//! The RFC 4703 update sequences of `ddns_engine::dns::update` against a
//! real knotd on loopback (the harness's, with one key per TSIG algorithm):
//! every algorithm, every conflict-resolution mode, failover, retries and
//! batches, each checked with real queries.

use std::net::SocketAddr;
use std::time::Duration;

use ddns_engine::change::{Change, ChangeKind};
use ddns_engine::config::{ConflictMode, Transport};
use ddns_engine::dns::Rcode;
use ddns_engine::dns::update::{
    Applied, ApplyOutcome, BatchApplied, Direction, DoneKind, RetryCause, StepKind, StepResult,
    UpdateExecutor,
};
use ddns_engine::testing::*;
use harness::{Knot, KnotOptions, Place, TsigKeyInfo};

/// The harness's knotd on loopback with `lan.example.` (a static printer)
/// and `77.10.in-addr.arpa.`, accepting updates signed with every key of
/// [`keys()`].
struct UpdateKnot {
    knot: Knot,
}

fn start_knot() -> UpdateKnot {
    use base64::Engine as _;
    let mut opts = KnotOptions::new("lan.example.");
    opts.reverse_zone = Some("77.10.in-addr.arpa.".into());
    opts.forward_records = vec!["printer A 10.77.0.250".into()];
    opts.extra_keys = ALGORITHMS
        .iter()
        .map(|(_, label)| TsigKeyInfo {
            name: format!("k-{label}."),
            algorithm: (*label).to_string(),
            secret: base64::engine::general_purpose::STANDARD.encode(secret(label)),
        })
        .collect();
    UpdateKnot {
        knot: Knot::start(Place::Host, &opts).expect("knotd starts"),
    }
}

impl UpdateKnot {
    fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.knot.addr(), self.knot.port())
    }

    /// `kdig +short` answers, sorted.
    fn dig(&self, qname: &str, qtype: &str) -> Vec<String> {
        let mut lines = self.knot.dns().query(qname, qtype).expect("kdig");
        lines.sort();
        lines
    }
}

fn done(applied: &Applied) -> &DoneKind {
    match &applied.outcome {
        ApplyOutcome::Done(kind) => kind,
        other => panic!("expected Done, got {other:?}; steps {:?}", applied.steps),
    }
}

fn kinds(applied: &Applied) -> Vec<(StepKind, String)> {
    applied
        .steps
        .iter()
        .map(|s| {
            (
                s.kind,
                match &s.result {
                    StepResult::Answer(r) => r.to_string(),
                    StepResult::Failed(e) => format!("{e}"),
                },
            )
        })
        .collect()
}

fn outcomes_of(applied: &BatchApplied) -> Vec<&DoneKind> {
    applied
        .outcomes
        .iter()
        .map(|o| match o {
            ApplyOutcome::Done(kind) => kind,
            other => panic!("expected Done, got {other:?}"),
        })
        .collect()
}

fn assert_all(applied: &BatchApplied, expected: &DoneKind) {
    for (i, outcome) in outcomes_of(applied).into_iter().enumerate() {
        assert_eq!(outcome, expected, "change {i}; steps {:?}", applied.steps);
    }
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_every_tsig_algorithm() {
    let knot = start_knot();
    for (i, (alg, label)) in ALGORITHMS.iter().enumerate() {
        let cfg = zones_on(i, vec![knot.addr()]);
        let host = format!("h-{label}.lan.example.");
        let applied = UpdateExecutor::new(&cfg).apply(&change(
            ChangeKind::Add,
            &host,
            [10, 77, 1, i as u8 + 1],
            DHCID_A,
        ));
        assert_eq!(
            done(&applied),
            &DoneKind::Published,
            "{alg:?}: {:?}",
            kinds(&applied)
        );
        assert_eq!(
            knot.dig(&host, "A"),
            vec![format!("10.77.1.{}", i + 1)],
            "{alg:?}"
        );
        assert_eq!(applied.stats.succeeded, 2);
    }
}

/// kea-dhcp-ddns 2.6's per-server `key-name`: a server's own key signs its
/// messages even where the zone has none (unsigned, Knot refuses).
#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_server_key_wins_over_the_zone_key() {
    let knot = start_knot();
    let mut cfg = zones_on(SHA256, vec![knot.addr()]);
    for zone in cfg.forward.iter_mut().chain(cfg.reverse.iter_mut()) {
        zone.key = None;
    }
    let unsigned = UpdateExecutor::new(&cfg).apply(&change(
        ChangeKind::Add,
        "unsigned.lan.example.",
        [10, 77, 2, 1],
        DHCID_A,
    ));
    assert!(
        matches!(done(&unsigned), DoneKind::Rejected { .. }),
        "unsigned: {:?}",
        kinds(&unsigned)
    );
    for zone in cfg.forward.iter_mut().chain(cfg.reverse.iter_mut()) {
        zone.server_keys = vec![Some(SHA256)];
    }
    let signed = UpdateExecutor::new(&cfg).apply(&change(
        ChangeKind::Add,
        "server-key.lan.example.",
        [10, 77, 2, 2],
        DHCID_A,
    ));
    assert_eq!(done(&signed), &DoneKind::Published, "{:?}", kinds(&signed));
    assert_eq!(knot.dig("server-key.lan.example.", "A"), vec!["10.77.2.2"]);
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_check_with_dhcid_lifecycle() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);

    // Add: A + DHCID forward, PTR + DHCID reverse.
    let add_a = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
    let applied = exec.apply(&add_a);
    assert_eq!(done(&applied), &DoneKind::Published);
    assert_eq!(
        kinds(&applied),
        vec![
            (StepKind::AddForward, "NOERROR".into()),
            (StepKind::ReplaceReverse, "NOERROR".into())
        ]
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    assert_eq!(knot.dig(FQDN, "DHCID").len(), 1);
    assert_eq!(knot.dig(REV, "PTR"), vec![FQDN]);
    assert_eq!(knot.dig(REV, "DHCID").len(), 1);

    // Same client again (renewal, or a retry): YXDOMAIN then replace.
    let applied = exec.apply(&add_a);
    assert_eq!(done(&applied), &DoneKind::Published);
    assert_eq!(
        kinds(&applied),
        vec![
            (StepKind::AddForward, "YXDOMAIN".into()),
            (StepKind::ReplaceForward, "NOERROR".into()),
            (StepKind::ReplaceReverse, "NOERROR".into())
        ]
    );
    assert_eq!(applied.stats.prerequisite_failed, 1);
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);

    // Same client, new address: the A RRset is replaced.
    let moved = change(ChangeKind::Add, FQDN, [10, 77, 0, 6], DHCID_A);
    assert_eq!(done(&exec.apply(&moved)), &DoneKind::Published);
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.6"]);
    assert_eq!(done(&exec.apply(&add_a)), &DoneKind::Published);
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);

    // Another client wants the name: conflict, reverse untouched.
    let add_b = change(ChangeKind::Add, FQDN, [10, 77, 0, 9], DHCID_B);
    let applied = exec.apply(&add_b);
    assert!(
        matches!(done(&applied), DoneKind::Conflict { .. }),
        "{applied:?}"
    );
    assert_eq!(
        kinds(&applied),
        vec![
            (StepKind::AddForward, "YXDOMAIN".into()),
            (StepKind::ReplaceForward, "NXRRSET".into())
        ]
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    assert!(knot.dig("9.0.77.10.in-addr.arpa.", "PTR").is_empty());

    // A client asking for the static printer's name: conflict, printer intact.
    let printer = change(
        ChangeKind::Add,
        "printer.lan.example.",
        [10, 77, 0, 7],
        DHCID_B,
    );
    assert!(matches!(
        done(&exec.apply(&printer)),
        DoneKind::Conflict { .. }
    ));
    assert_eq!(knot.dig("printer.lan.example.", "A"), vec!["10.77.0.250"]);
    assert!(knot.dig("printer.lan.example.", "DHCID").is_empty());
    assert!(knot.dig("7.0.77.10.in-addr.arpa.", "PTR").is_empty());

    // The other client's lease ends: nothing of ours is removed.
    let remove_b = change(ChangeKind::Remove, FQDN, [10, 77, 0, 9], DHCID_B);
    let applied = exec.apply(&remove_b);
    assert_eq!(done(&applied), &DoneKind::Removed);
    assert_eq!(
        kinds(&applied),
        vec![
            (StepKind::RemoveForwardAddress, "NXRRSET".into()),
            (StepKind::RemoveForwardRest, "YXRRSET".into()),
            (StepKind::RemoveReverse, "NXRRSET".into())
        ]
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    assert_eq!(knot.dig(FQDN, "DHCID").len(), 1);
    assert_eq!(knot.dig(REV, "PTR"), vec![FQDN]);

    // A removal for the printer's name does not touch the static record.
    let printer_gone = change(
        ChangeKind::Remove,
        "printer.lan.example.",
        [10, 77, 0, 250],
        DHCID_B,
    );
    assert_eq!(done(&exec.apply(&printer_gone)), &DoneKind::Removed);
    assert_eq!(knot.dig("printer.lan.example.", "A"), vec!["10.77.0.250"]);

    // Our lease ends: everything goes.
    let remove_a = change(ChangeKind::Remove, FQDN, [10, 77, 0, 5], DHCID_A);
    let applied = exec.apply(&remove_a);
    assert_eq!(done(&applied), &DoneKind::Removed);
    assert_eq!(
        kinds(&applied),
        vec![
            (StepKind::RemoveForwardAddress, "NOERROR".into()),
            (StepKind::RemoveForwardRest, "NOERROR".into()),
            (StepKind::RemoveReverse, "NOERROR".into())
        ]
    );
    assert!(knot.dig(FQDN, "A").is_empty());
    assert!(knot.dig(FQDN, "DHCID").is_empty());
    assert!(knot.dig(REV, "PTR").is_empty());
    assert!(knot.dig(REV, "DHCID").is_empty());
    assert_eq!(knot.dig("printer.lan.example.", "A"), vec!["10.77.0.250"]);

    // Removing again is harmless (a retried removal).
    assert_eq!(done(&exec.apply(&remove_a)), &DoneKind::Removed);

    // Now the other client may take the name.
    assert_eq!(done(&exec.apply(&add_b)), &DoneKind::Published);
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.9"]);
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_check_exists_with_dhcid() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    // The sender follows each change's mode, not the configuration's.
    let change = |kind, fqdn: &str, addr, dhcid: &[u8]| {
        in_mode(
            ConflictMode::CheckExistsWithDhcid,
            change(kind, fqdn, addr, dhcid),
        )
    };
    assert_eq!(
        done(&exec.apply(&change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A))),
        &DoneKind::Published
    );
    // Any DHCID counts as "dynamic": another client takes the name over.
    let add_b = change(ChangeKind::Add, FQDN, [10, 77, 0, 9], DHCID_B);
    let applied = exec.apply(&add_b);
    assert_eq!(
        done(&applied),
        &DoneKind::Published,
        "{:?}",
        kinds(&applied)
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.9"]);
    // A static name without DHCID is still protected.
    let printer = change(
        ChangeKind::Add,
        "printer.lan.example.",
        [10, 77, 0, 7],
        DHCID_B,
    );
    assert!(matches!(
        done(&exec.apply(&printer)),
        DoneKind::Conflict { .. }
    ));
    assert_eq!(knot.dig("printer.lan.example.", "A"), vec!["10.77.0.250"]);
    // Removal: address, then the DHCID once no address is left; PTR by name.
    let applied = exec.apply(&change(ChangeKind::Remove, FQDN, [10, 77, 0, 9], DHCID_B));
    assert_eq!(done(&applied), &DoneKind::Removed, "{:?}", kinds(&applied));
    assert!(knot.dig(FQDN, "A").is_empty());
    assert!(knot.dig(FQDN, "DHCID").is_empty());
    assert!(knot.dig("9.0.77.10.in-addr.arpa.", "PTR").is_empty());
    // The first client's PTR still points to the name (D2 leaves it too).
    assert_eq!(knot.dig(REV, "PTR"), vec![FQDN]);
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_no_check_modes() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    // The sender follows each change's mode, not the configuration's.
    let change = |kind, fqdn: &str, addr, dhcid: &[u8]| {
        in_mode(
            ConflictMode::NoCheckWithDhcid,
            change(kind, fqdn, addr, dhcid),
        )
    };
    assert_eq!(
        done(&exec.apply(&change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A))),
        &DoneKind::Published
    );
    let applied = exec.apply(&change(ChangeKind::Add, FQDN, [10, 77, 0, 9], DHCID_B));
    assert_eq!(kinds(&applied)[0], (StepKind::SetForward, "NOERROR".into()));
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.9"]);
    assert_eq!(knot.dig(FQDN, "DHCID").len(), 1);
    let applied = exec.apply(&change(ChangeKind::Remove, FQDN, [10, 77, 0, 9], DHCID_B));
    assert_eq!(done(&applied), &DoneKind::Removed);
    assert!(knot.dig(FQDN, "A").is_empty());
    assert!(knot.dig(FQDN, "DHCID").is_empty());
    assert!(knot.dig("9.0.77.10.in-addr.arpa.", "PTR").is_empty());
    assert!(knot.dig("9.0.77.10.in-addr.arpa.", "DHCID").is_empty());

    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    // The sender follows each change's mode, not the configuration's.
    let change = |kind, fqdn: &str, addr, dhcid: &[u8]| {
        in_mode(
            ConflictMode::NoCheckWithoutDhcid,
            change(kind, fqdn, addr, dhcid),
        )
    };
    let host = "nodhcid.lan.example.";
    let applied = exec.apply(&change(ChangeKind::Add, host, [10, 77, 0, 20], &[]));
    assert_eq!(done(&applied), &DoneKind::Published);
    assert_eq!(knot.dig(host, "A"), vec!["10.77.0.20"]);
    assert!(knot.dig(host, "DHCID").is_empty());
    assert_eq!(knot.dig("20.0.77.10.in-addr.arpa.", "PTR"), vec![host]);
    assert!(knot.dig("20.0.77.10.in-addr.arpa.", "DHCID").is_empty());
    let applied = exec.apply(&change(ChangeKind::Remove, host, [10, 77, 0, 20], &[]));
    assert_eq!(done(&applied), &DoneKind::Removed);
    assert!(knot.dig(host, "A").is_empty());
    assert!(knot.dig("20.0.77.10.in-addr.arpa.", "PTR").is_empty());
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_failures_and_failover() {
    let knot = start_knot();
    let add_a = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);

    // Wrong secret: NOTAUTH/BADSIG, final.
    let mut cfg = zones_on(SHA256, vec![knot.addr()]);
    cfg.tsig_keys[SHA256].secret = b"wrong".to_vec();
    let applied = UpdateExecutor::new(&cfg).apply(&add_a);
    match done(&applied) {
        DoneKind::Rejected {
            rcode, direction, ..
        } => {
            assert_eq!(
                *rcode,
                Rcode::NotAuth {
                    tsig_error: Some(16)
                }
            );
            assert!(!rcode.is_retryable());
            assert_eq!(*direction, Direction::Forward);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(applied.stats.refused, 1);
    // Unknown key name: NOTAUTH/BADKEY from Knot 3.2; Knot 3.4+ answers a
    // bare NOTAUTH without a TSIG record. Final either way.
    let mut cfg = zones_on(SHA256, vec![knot.addr()]);
    cfg.tsig_keys[SHA256].name = name("nobody.");
    match done(&UpdateExecutor::new(&cfg).apply(&add_a)) {
        DoneKind::Rejected { rcode, .. } => {
            assert!(
                matches!(
                    *rcode,
                    Rcode::NotAuth {
                        tsig_error: Some(17) | None
                    }
                ),
                "{rcode:?}"
            );
            assert!(!rcode.is_retryable());
        }
        other => panic!("{other:?}"),
    }
    // Unsigned: the ACL refuses.
    let cfg = config(
        vec![domain("lan.example.", None, vec![knot.addr()])],
        vec![],
    );
    match done(&UpdateExecutor::new(&cfg).apply(&add_a)) {
        DoneKind::Rejected { rcode, .. } => assert!(rcode.is_refusal(), "{rcode}"),
        other => panic!("{other:?}"),
    }
    assert!(knot.dig(FQDN, "A").is_empty());

    // A server that never answers: Timeout, retryable.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let mut cfg = zones_on(SHA256, vec![silent_addr]);
    cfg.dns_server_timeout = Duration::from_millis(1000);
    let applied = UpdateExecutor::new(&cfg).apply(&add_a);
    match &applied.outcome {
        ApplyOutcome::Retry {
            cause,
            server,
            direction,
            ..
        } => {
            assert_eq!(*cause, RetryCause::Timeout);
            assert_eq!(*server, silent_addr);
            assert_eq!(*direction, Direction::Forward);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(applied.stats.timeouts, 1);

    // Failover: the silent server first, knotd second.
    let cfg2 = {
        let mut c = zones_on(SHA256, vec![silent_addr, knot.addr()]);
        c.dns_server_timeout = Duration::from_millis(1000);
        c
    };
    let applied = UpdateExecutor::new(&cfg2).apply(&add_a);
    assert_eq!(done(&applied), &DoneKind::Published);
    let servers: Vec<SocketAddr> = applied.steps.iter().map(|s| s.server).collect();
    assert_eq!(
        servers,
        vec![silent_addr, knot.addr(), silent_addr, knot.addr()]
    );
    assert_eq!(applied.stats.sent, 4);
    assert_eq!(applied.stats.timeouts, 2);
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    drop(silent);
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_retry_after_half_done_change_is_idempotent() {
    let knot = start_knot();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Forward zone reachable, reverse zone not.
    let mut cfg = config(
        vec![domain("lan.example.", Some(SHA256), vec![knot.addr()])],
        vec![domain(
            "77.10.in-addr.arpa.",
            Some(SHA256),
            vec![silent.local_addr().unwrap()],
        )],
    );
    cfg.dns_server_timeout = Duration::from_millis(1000);
    let add_a = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
    let applied = UpdateExecutor::new(&cfg).apply(&add_a);
    assert!(
        matches!(
            applied.outcome,
            ApplyOutcome::Retry {
                direction: Direction::Reverse,
                ..
            }
        ),
        "{applied:?}"
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    assert!(knot.dig(REV, "PTR").is_empty());

    // The retry, now with the reverse server back, over TCP this time.
    let mut cfg = zones_on(SHA256, vec![knot.addr()]);
    cfg.transport = Transport::Tcp;
    let applied = UpdateExecutor::new(&cfg).apply(&add_a);
    assert_eq!(
        done(&applied),
        &DoneKind::Published,
        "{:?}",
        kinds(&applied)
    );
    assert_eq!(knot.dig(FQDN, "A"), vec!["10.77.0.5"]);
    assert_eq!(knot.dig(FQDN, "DHCID").len(), 1);
    assert_eq!(knot.dig(REV, "PTR"), vec![FQDN]);
    assert_eq!(knot.dig(REV, "DHCID").len(), 1);

    // Same for a removal interrupted after the forward part.
    let remove_a = change(ChangeKind::Remove, FQDN, [10, 77, 0, 5], DHCID_A);
    let mut half = config(
        vec![domain("lan.example.", Some(SHA256), vec![knot.addr()])],
        vec![domain(
            "77.10.in-addr.arpa.",
            Some(SHA256),
            vec![silent.local_addr().unwrap()],
        )],
    );
    half.dns_server_timeout = Duration::from_millis(1000);
    let applied = UpdateExecutor::new(&half).apply(&remove_a);
    assert!(applied.outcome.is_retry(), "{applied:?}");
    assert!(knot.dig(FQDN, "A").is_empty(), "{:?}", kinds(&applied));
    assert_eq!(knot.dig(REV, "PTR"), vec![FQDN]);
    let applied = UpdateExecutor::new(&cfg).apply(&remove_a);
    assert_eq!(done(&applied), &DoneKind::Removed);
    assert!(knot.dig(REV, "PTR").is_empty());
    drop(silent);
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_batch_publishes_renews_and_removes_in_few_messages() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    let adds = numbered(ChangeKind::Add, 50, 2, DHCID_A);
    let refs: Vec<&Change> = adds.iter().collect();

    let applied = exec.apply_batch(&refs);
    assert_all(&applied, &DoneKind::Published);
    // One forward and one reverse message for 50 changes, over TCP
    // (too long for a datagram).
    assert_eq!(applied.stats.sent, 2);
    for i in [0usize, 17, 49] {
        assert_eq!(
            knot.dig(&format!("b{i}.lan.example."), "A"),
            vec![format!("10.77.2.{}", i + 1)]
        );
        assert_eq!(
            knot.dig(&format!("{}.2.77.10.in-addr.arpa.", i + 1), "PTR"),
            vec![format!("b{i}.lan.example.")]
        );
    }

    // The same changes again (a restart forgot what was published): the
    // names are in use and ours, so the shared replace takes them over.
    let applied = exec.apply_batch(&refs);
    assert_all(&applied, &DoneKind::Published);
    let kinds: Vec<StepKind> = applied.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        vec![
            StepKind::AddForward,
            StepKind::ReplaceForward,
            StepKind::ReplaceReverse
        ]
    );

    let removes = numbered(ChangeKind::Remove, 50, 2, DHCID_A);
    let refs: Vec<&Change> = removes.iter().collect();
    let applied = exec.apply_batch(&refs);
    assert_all(&applied, &DoneKind::Removed);
    assert_eq!(applied.stats.sent, 3);
    for i in [0usize, 17, 49] {
        assert!(knot.dig(&format!("b{i}.lan.example."), "ANY").is_empty());
        assert!(
            knot.dig(&format!("{}.2.77.10.in-addr.arpa.", i + 1), "PTR")
                .is_empty()
        );
    }
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_batch_isolates_a_name_owned_by_another_client() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    let other = change(
        ChangeKind::Add,
        "b7.lan.example.",
        [10, 77, 9, 200],
        DHCID_B,
    );
    assert_eq!(done(&exec.apply(&other)), &DoneKind::Published);

    let adds = numbered(ChangeKind::Add, 32, 3, DHCID_A);
    let refs: Vec<&Change> = adds.iter().collect();
    let applied = exec.apply_batch(&refs);
    for (i, outcome) in outcomes_of(&applied).into_iter().enumerate() {
        if i == 7 {
            assert!(matches!(outcome, DoneKind::Conflict { .. }), "{outcome:?}");
        } else {
            assert_eq!(outcome, &DoneKind::Published, "b{i}");
        }
    }
    // Halving isolates the one conflict: 5 levels of (add, replace,
    // add of the good half), the conflict's own two messages, and one
    // reverse message; one message per change each way would be 63.
    println!("32 adds, one conflict: {} messages", applied.stats.sent);
    assert!(applied.stats.sent <= 20, "{} messages", applied.stats.sent);
    assert_eq!(knot.dig("b7.lan.example.", "A"), vec!["10.77.9.200"]);
    assert!(knot.dig("8.3.77.10.in-addr.arpa.", "PTR").is_empty());
    assert_eq!(knot.dig("b31.lan.example.", "A"), vec!["10.77.3.32"]);
    assert_eq!(
        knot.dig("32.3.77.10.in-addr.arpa.", "PTR"),
        vec!["b31.lan.example."]
    );
}

#[test]
#[ignore = "starts a real knotd; build/test runs it"]
fn knot_batch_longer_than_one_message_is_split() {
    let knot = start_knot();
    let cfg = zones_on(SHA256, vec![knot.addr()]);
    let exec = UpdateExecutor::new(&cfg);
    // The sender follows each change's mode, not the configuration's.
    let change = |kind, fqdn: &str, addr, dhcid: &[u8]| {
        in_mode(
            ConflictMode::NoCheckWithDhcid,
            change(kind, fqdn, addr, dhcid),
        )
    };
    let label = "x".repeat(60);
    let changes: Vec<Change> = (0..600usize)
        .map(|i| {
            change(
                ChangeKind::Add,
                &format!("n{i}.{label}.{label}.{label}.lan.example."),
                [10, 77, 10 + (i / 200) as u8, (i % 200) as u8 + 1],
                DHCID_A,
            )
        })
        .collect();
    let refs: Vec<&Change> = changes.iter().collect();
    let applied = exec.apply_batch(&refs);
    assert_all(&applied, &DoneKind::Published);
    // No single message holds 600 long names (64 KiB at most).
    assert!(
        (3..50).contains(&applied.stats.sent),
        "{} messages",
        applied.stats.sent
    );
    let last = format!("n599.{label}.{label}.{label}.lan.example.");
    assert_eq!(knot.dig(&last, "A"), vec!["10.77.12.200"]);
    assert_eq!(knot.dig("200.12.77.10.in-addr.arpa.", "PTR"), vec![last]);
}
