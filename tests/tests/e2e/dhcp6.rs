//! The leasedns hook in stock kea-dhcp6: the scenarios of
//! dhcp6_stock.rs (which pass with kea-dhcp-ddns) with the hook
//! instead of D2 (`dhcp-ddns.enable-updates` false), plus what only the
//! hook does: names for clients that send none, removal on expiry, and
//! refusing to run in a daemon it does not support.

use crate::common;

use std::time::Duration;

use common::ZONE;
use common::lab6::{
    LEASE_TIMEOUT, Lab6, Updater, dhcid6, generated_name, named_client_is_published_and_released,
    perfdhcp_clients_are_published, ptr_name,
};
use harness::{ChildGuard, Dhclient6Options, Knot, KnotOptions, Netns, hook_library, require_root};
use serde_json::json;

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn named_client_is_published_and_removed_on_release() {
    require_root();
    named_client_is_published_and_released(Updater::Hook);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn client_without_a_name_gets_the_generated_one() {
    require_root();
    // with_ddns_naming: `ddns-replace-client-name` when-not-present,
    // prefix `host`.
    let lab = Lab6::start(Updater::Hook, |_, _| {});
    let mut client = lab.dhclient(&Dhclient6Options::default());
    let lease = client
        .obtain(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let fqdn = generated_name(lease.address);
    let ptr = ptr_name(lease.address);
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    lab.wait_records(&ptr, "PTR", std::slice::from_ref(&fqdn));
    let dhcid = dhcid6(client.duid(), &fqdn);
    lab.wait_records(&fqdn, "DHCID", std::slice::from_ref(&dhcid));
    lab.wait_records(&ptr, "DHCID", std::slice::from_ref(&dhcid));
    client.release().expect("dhclient -6 -r");
    lab.wait_gone(&fqdn, "AAAA");
    lab.wait_gone(&ptr, "PTR");
}

/// A client without a name that restarts (Solicit, then Request for the
/// binding it already has) keeps its generated name: Kea updates the
/// existing lease from the exchange (no lease6_select), and its DDNS
/// client would have stored both directions there, so the lease database
/// must say so and the records must stay.
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn restarted_client_keeps_its_generated_name() {
    require_root();
    let lab = Lab6::start(Updater::Hook, |_, _| {});
    let mut first = lab.dhclient(&Dhclient6Options::default());
    let lease = first
        .obtain(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let fqdn = generated_name(lease.address);
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    let duid = first.duid().to_vec();
    first.kill().expect("kill dhclient -6");
    let mut again = lab.dhclient(&Dhclient6Options {
        duid: Some(duid),
        ..Dhclient6Options::default()
    });
    let second = again
        .obtain(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(second.address, lease.address, "the same binding");
    let leases = lab.kea.leases().expect("lease file");
    let row = leases
        .iter()
        .rev()
        .find(|l| l["address"] == lease.address.to_string())
        .unwrap_or_else(|| panic!("no lease for {}: {leases:?}", lease.address));
    assert_eq!(
        (
            row["hostname"].as_str(),
            row["fqdn_fwd"].as_str(),
            row["fqdn_rev"].as_str()
        ),
        (fqdn.as_str(), "1", "1"),
        "the renewed binding keeps its name and both directions: {row:?}"
    );
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    lab.wait_records(&ptr_name(lease.address), "PTR", std::slice::from_ref(&fqdn));
    again.release().expect("dhclient -6 -r");
    lab.wait_gone(&fqdn, "AAAA");
    lab.wait_gone(&ptr_name(lease.address), "PTR");
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn two_thousand_perfdhcp_clients_get_exactly_their_records() {
    require_root();
    perfdhcp_clients_are_published(Updater::Hook, 2000, 500);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn expired_lease_loses_its_records() {
    require_root();
    let lab = Lab6::start(Updater::Hook, |opts, _| {
        opts.valid_lifetime = 4;
        // Reclaim every second and delete reclaimed leases at once.
        opts.expired_leases_processing = Some(json!({
            "reclaim-timer-wait-time": 1,
            "flush-reclaimed-timer-wait-time": 0,
            "hold-reclaimed-time": 0,
            "max-reclaim-leases": 0,
            "max-reclaim-time": 0,
        }));
    });
    let mut client = lab.dhclient(&Dhclient6Options {
        fqdn: Some(harness::Fqdn6::partial("shortlived")),
        ..Dhclient6Options::default()
    });
    let lease = client
        .obtain(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // Gone without a word: no Release, no Renew.
    client.kill().expect("kill dhclient -6");
    let fqdn = format!("shortlived.{ZONE}");
    let ptr = ptr_name(lease.address);
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    lab.wait_records(&ptr, "PTR", std::slice::from_ref(&fqdn));
    // Expiry (4 s) + reclaim timer (1 s) + the update, well within the
    // deadline.
    lab.wait_gone(&fqdn, "AAAA");
    lab.wait_gone(&fqdn, "DHCID");
    lab.wait_gone(&ptr, "PTR");
    lab.wait_gone(&ptr, "DHCID");
    assert!(
        lab.kea.log().contains("ALLOC_ENGINE_V6_LEASE_RECLAIM")
            || lab.kea.leases().expect("lease file").is_empty(),
        "the lease was reclaimed, not released\n{}",
        lab.logs()
    );
}

/// Runs `program` with `config` (written into a private directory, the
/// hook linked into its hooks directory) and returns its exit status and
/// everything it wrote.
fn run_daemon_expecting_exit(
    net: &Netns,
    program: &str,
    mut config: serde_json::Value,
) -> (std::process::ExitStatus, String) {
    let dir = tempfile::Builder::new()
        .prefix("leasedns-foreign-")
        .tempdir()
        .expect("temp dir");
    harness::link_hooks(&mut config, dir.path()).expect("link the hook");
    let conf = dir.path().join(format!("{program}.conf"));
    std::fs::write(&conf, config.to_string()).expect("write config");
    let mut cmd = net.server().command(program).expect(program);
    cmd.arg("-c").arg(&conf);
    harness::private_dirs(&mut cmd, dir.path());
    let output = dir.path().join("output.log");
    let mut guard = ChildGuard::spawn(program, cmd, &output).expect("spawn");
    let status = guard
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{program} with the leasedns hook kept running: {e}"));
    (status, std::fs::read_to_string(&output).unwrap_or_default())
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn unsupported_daemon_refuses_to_start_naming_leasedns() {
    require_root();
    let net = Netns::new_v6().expect("namespaces");
    let mut kopts = KnotOptions::new(ZONE);
    kopts.reverse_zone = Some(net.reverse_zone6());
    let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
    let journal = tempfile::tempdir().expect("temp dir");
    let params = knot.hook_parameters(journal.path());
    let library = hook_library().expect("LEASEDNS_HOOK_LIB");
    let hooks = json!([{ "library": library.to_string_lossy(), "parameters": params }]);
    let logger = |name: &str| {
        json!([{
            "name": name,
            "output_options": [{ "output": "stdout", "flush": true }],
            "severity": "INFO",
        }])
    };
    // The log goes to stdout (the output log): the configuration that
    // would move it is the one being refused.
    let d2 = json!({ "DhcpDdns": {
        "ip-address": "127.0.0.1",
        "port": 53001,
        "hooks-libraries": hooks,
        "loggers": logger("kea-dhcp-ddns"),
    } });
    let agent = json!({ "Control-agent": {
        "http-host": "127.0.0.1",
        "http-port": 8000,
        "hooks-libraries": hooks,
        "loggers": logger("kea-ctrl-agent"),
    } });
    for (program, config) in [("kea-dhcp-ddns", d2), ("kea-ctrl-agent", agent)] {
        let (status, log) = run_daemon_expecting_exit(&net, program, config);
        assert!(
            !status.success(),
            "{program} with the leasedns hook exited {status}\n{log}"
        );
        // The hook's own refusal, not some other failure to load it.
        let refusal =
            format!("loaded into {program}: leasedns runs in kea-dhcp4 and kea-dhcp6 only");
        assert!(
            log.contains(&refusal),
            "{program}'s output does not carry the hook's refusal ({refusal}):\n{log}"
        );
    }
    // Knot saw no update from a daemon that should never have run the hook.
    let dns = knot.dns();
    assert_eq!(dns.count(ZONE, "AAAA").expect("AXFR"), 0);
}
