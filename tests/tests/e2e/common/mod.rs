//! Shared setup of the end-to-end tests: Knot serving `lan.example.` and the
//! reverse zone of the test's /16 in the server namespace, kea-dhcp4 with the
//! hook beside it, clients in the client namespace.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub(crate) mod fault_lab;
pub(crate) mod lab6;

use std::net::Ipv4Addr;
use std::thread::JoinHandle;
use std::time::Duration;

use harness::{
    Dns, Kea, KeaOptions, Knot, KnotOptions, Netns, Perfdhcp, PerfdhcpReport, hook_library,
    wait_until,
};
use serde_json::{Value, json};

pub(crate) const ZONE: &str = "lan.example.";
pub(crate) const DNS_DEADLINE: Duration = Duration::from_secs(30);

pub(crate) struct Lab {
    pub(crate) net: Netns,
    pub(crate) knot: Knot,
    pub(crate) kea: Kea,
    pub(crate) journal: tempfile::TempDir,
}

impl Lab {
    /// Knot with `lan.example.` (plus a static `printer`) and the reverse
    /// zone; Kea with the hook. `tweak` edits Kea's options and the hook's
    /// parameters before the start.
    pub(crate) fn start(tweak: impl FnOnce(&mut KeaOptions, &mut Value)) -> Lab {
        let net = Netns::new().expect("namespaces");
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone());
        kopts.forward_records = vec![format!("printer A {}", net.addr(0, 250))];
        let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let mut params = knot.hook_parameters(journal.path());
        let mut opts = KeaOptions::for_netns(&net).with_ddns_naming(ZONE);
        opts.valid_lifetime = 600;
        tweak(&mut opts, &mut params);
        let kea = start_kea_with_hook(&net, opts, params);
        Lab {
            net,
            knot,
            kea,
            journal,
        }
    }

    pub(crate) fn dns(&self) -> Dns {
        self.knot.dns()
    }

    pub(crate) fn ptr_name(&self, addr: impl Into<std::net::IpAddr>) -> String {
        harness::reverse_name(addr.into())
    }

    pub(crate) fn stat(&self, name: &str) -> i64 {
        self.kea
            .command_ok("statistic-get", Some(json!({"name": name})))
            .ok()
            .and_then(|v| v.get(name)?.get(0)?.get(0)?.as_i64())
            .unwrap_or(0)
    }

    pub(crate) fn wait_stat(&self, name: &str, at_least: i64) {
        wait_until(
            DNS_DEADLINE,
            &format!("statistic {name} >= {at_least}"),
            || self.stat(name) >= at_least,
        )
        .unwrap_or_else(|e| panic!("{e}\nkea log:\n{}", self.kea.log()));
    }

    pub(crate) fn wait_records(&self, name: &str, rtype: &str, expected: &[String]) {
        let dns = self.dns();
        wait_until(
            DNS_DEADLINE,
            &format!("{name} {rtype} = {expected:?}"),
            || {
                dns.query(name, rtype).is_ok_and(|mut got| {
                    got.sort();
                    got == expected
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nkea log:\n{}", self.kea.log()));
    }

    pub(crate) fn wait_gone(&self, name: &str, rtype: &str) {
        self.wait_records(name, rtype, &[]);
    }

    /// Waits until the zones hold exactly one A and one PTR per lease in
    /// Kea's lease file, and nothing else of ours.
    pub(crate) fn wait_zone_matches_leases(&self, expected: usize) {
        let dns = self.dns();
        let reverse = self.net.reverse_zone();
        let mut last = (None, None);
        let result = wait_until(
            Duration::from_secs(90),
            &format!("{expected} A and PTR records"),
            || {
                let a = dns.axfr(ZONE).ok().map(|z| {
                    z.iter()
                        .filter(|r| r.rtype == "A" && r.name.starts_with("host-"))
                        .count()
                });
                let ptr = dns.count(&reverse, "PTR").ok();
                last = (a, ptr);
                a == Some(expected) && ptr == Some(expected)
            },
        );
        result.unwrap_or_else(|e| {
            panic!(
                "{e}: last seen {:?} host-* A and {:?} PTR\nkea log tail:\n{}",
                last.0,
                last.1,
                tail(&self.kea.log(), 40)
            )
        });
        let leases = self.kea.leases().expect("lease file");
        assert_eq!(leases.len(), expected, "one lease per record pair");
        for lease in &leases {
            let addr: Ipv4Addr = lease["address"].parse().expect("address");
            // Kea's spelling: option 12 names have no trailing dot.
            let name = &harness::absolute_fqdn(&lease["hostname"]);
            assert_eq!(
                dns.query(name, "A").unwrap(),
                vec![addr.to_string()],
                "{name}"
            );
            assert_eq!(
                dns.query(&self.ptr_name(addr), "PTR").unwrap(),
                vec![name.clone()]
            );
        }
    }
}

/// kea-dhcp4 in the server namespace with the built hook and `params`.
pub(crate) fn start_kea_with_hook(net: &Netns, opts: KeaOptions, params: Value) -> Kea {
    let library =
        hook_library().expect("the hook library is built (cargo build --release -p kea-hook)");
    Kea::start(net.server(), opts.with_hook(&library, params))
        .expect("kea-dhcp4 starts with the hook")
}

/// Every `leasedns.*` statistic of `kea`, for failure messages and figures.
pub(crate) fn stats_line(kea: &Kea) -> String {
    let Ok(all) = kea.command_ok("statistic-get-all", None) else {
        return "(statistics unavailable)".into();
    };
    let Some(map) = all.as_object() else {
        return all.to_string();
    };
    map.iter()
        .filter(|(k, _)| k.starts_with("leasedns."))
        .map(|(k, v)| format!("{}={}", &k["leasedns.".len()..], v[0][0]))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts `run` (perfdhcp, -4 or -6) from `net`'s client namespace on
/// another thread.
pub(crate) fn burst(net: &Netns, run: Perfdhcp) -> JoinHandle<harness::Result<PerfdhcpReport>> {
    let place = net.client();
    let iface = net.client_iface().to_owned();
    std::thread::spawn(move || run.run(&place, &iface))
}

/// The statistics that must stay zero whatever the fault, read with
/// `stat`; `kea`'s statistics go into the failure message.
pub(crate) fn assert_nothing_lost(kea: &Kea, stat: impl Fn(&str) -> i64) {
    for name in [
        "leasedns.changes-dropped",
        "leasedns.updates-refused",
        "leasedns.updates-conflict",
        "leasedns.journal-errors",
    ] {
        assert_eq!(
            stat(name),
            0,
            "{name} must be 0; stats: {}",
            stats_line(kea)
        );
    }
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
