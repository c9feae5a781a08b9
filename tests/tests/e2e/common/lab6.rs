//! The DHCPv6 lab: Knot serving `lan.example.` and the ip6.arpa zone of the
//! test's `fd77:N::/64` in the server namespace, kea-dhcp6 beside it either
//! with the stock path (dhcp-ddns on, kea-dhcp-ddns talking to Knot) or
//! with the leasedns hook, clients (`dhclient -6`, `perfdhcp -6`) in the
//! client namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::Duration;

use base64::Engine as _;
use harness::{
    D2, D2Options, Dhclient6, Dhclient6Options, Dns, Kea, KeaOptions, Knot, KnotOptions, Netns,
    ddns_domains, hook_library, ptr6_owner_addr, reverse_name6, wait_until,
};
use serde_json::{Value, json};

use super::{DNS_DEADLINE, ZONE, tail};

/// Who turns leases into DNS updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Updater {
    /// kea-dhcp6's own DDNS: NCRs to kea-dhcp-ddns, which updates Knot.
    Stock,
    /// The leasedns hook in kea-dhcp6 (`dhcp-ddns.enable-updates` false).
    Hook,
}

pub(crate) struct Lab6 {
    pub(crate) net: Netns,
    pub(crate) knot: Knot,
    pub(crate) kea: Kea,
    pub(crate) d2: Option<D2>,
    pub(crate) journal: tempfile::TempDir,
    pub(crate) updater: Updater,
}

impl Lab6 {
    /// Knot with `lan.example.` and the ip6.arpa zone of the /64; kea-dhcp6
    /// naming clients under `lan.example.` (`host-<address>` for clients
    /// without a name) with `updater`. `tweak` edits Kea's options and the
    /// hook's parameters (which are also D2's DNS side) before the start.
    pub(crate) fn start(updater: Updater, tweak: impl FnOnce(&mut KeaOptions, &mut Value)) -> Lab6 {
        let net = Netns::new_v6().expect("namespaces with IPv6");
        let mut kopts = KnotOptions::new(ZONE);
        kopts.reverse_zone = Some(net.reverse_zone6());
        let knot = Knot::start(net.server(), &kopts).expect("knotd starts");
        let journal = tempfile::Builder::new()
            .prefix("leasedns-journal-")
            .tempdir()
            .expect("temp dir");
        let mut params = knot.hook_parameters(journal.path());
        let mut opts = KeaOptions::v6(&net).with_ddns_naming(ZONE);
        opts.valid_lifetime = 600;
        tweak(&mut opts, &mut params);
        let (kea, d2) = match updater {
            Updater::Stock => {
                let ddns = ddns_domains(
                    knot.key(),
                    knot.addr(),
                    knot.port(),
                    ZONE,
                    &net.reverse_zone6(),
                );
                let d2 = D2::start(&net.server(), &D2Options::new(ddns)).expect("D2 starts");
                opts.dhcp4_extra.insert("dhcp-ddns".into(), d2.dhcp_ddns());
                D2::ncr_logging(&mut opts);
                let kea = Kea::start(net.server(), opts).expect("kea-dhcp6 starts");
                (kea, Some(d2))
            }
            Updater::Hook => {
                opts.dhcp4_extra
                    .insert("dhcp-ddns".into(), json!({ "enable-updates": false }));
                let library = hook_library()
                    .expect("the hook library is built (cargo build --release -p kea-hook)");
                let kea = Kea::start(net.server(), opts.with_hook(&library, params))
                    .expect("kea-dhcp6 starts with the hook");
                (kea, None)
            }
        };
        Lab6 {
            net,
            knot,
            kea,
            d2,
            journal,
            updater,
        }
    }

    pub(crate) fn dns(&self) -> Dns {
        self.knot.dns()
    }

    pub(crate) fn reverse_zone(&self) -> String {
        self.net.reverse_zone6()
    }

    /// A `dhclient -6` on the client veth.
    pub(crate) fn dhclient(&self, opts: &Dhclient6Options) -> Dhclient6 {
        Dhclient6::new(self.net.client(), self.net.client_iface(), opts).expect("dhclient -6")
    }

    /// Kea's log, and D2's on the stock path, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let d2 = self
            .d2
            .as_ref()
            .map(|d2| format!("\nD2 log tail:\n{}", tail(&d2.log(), 40)))
            .unwrap_or_default();
        format!("kea log tail:\n{}{d2}", tail(&self.kea.log(), 60))
    }

    /// One `leasedns.*` statistic (0 while Kea does not answer).
    pub(crate) fn stat(&self, name: &str) -> i64 {
        self.kea
            .command_ok("statistic-get", Some(json!({ "name": name })))
            .ok()
            .and_then(|v| v.get(name)?.get(0)?.get(0)?.as_i64())
            .unwrap_or(0)
    }

    /// Every `leasedns.*` statistic, for failure messages.
    pub(crate) fn stats_line(&self) -> String {
        super::stats_line(&self.kea)
    }

    /// Starts `run` (a `perfdhcp -6`) from the client namespace on another
    /// thread.
    pub(crate) fn burst(
        &self,
        run: harness::Perfdhcp,
    ) -> std::thread::JoinHandle<harness::Result<harness::PerfdhcpReport>> {
        super::burst(&self.net, run)
    }

    pub(crate) fn wait_records(&self, name: &str, rtype: &str, expected: &[String]) {
        let dns = self.dns();
        let mut last = None;
        wait_until(
            DNS_DEADLINE,
            &format!("{name} {rtype} = {expected:?}"),
            || {
                dns.query(name, rtype).is_ok_and(|mut got| {
                    got.sort();
                    let done = got == expected;
                    last = Some(got);
                    done
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}: last {last:?}\n{}", self.logs()));
    }

    pub(crate) fn wait_gone(&self, name: &str, rtype: &str) {
        self.wait_records(name, rtype, &[]);
    }

    /// Waits until the zones hold exactly one AAAA, one PTR and a DHCID at
    /// both names per active lease in Kea's lease file, and nothing else of
    /// ours; returns the number of leases.
    pub(crate) fn wait_zones_match_leases(&self, expected: usize, timeout: Duration) -> usize {
        let mut last = String::new();
        let result = wait_until(
            timeout,
            &format!("{expected} AAAA and PTR records matching the leases"),
            || match self.compare_zones() {
                Ok(n) if n == expected => true,
                Ok(n) => {
                    last = format!("{n} leases in DNS");
                    false
                }
                Err(problem) => {
                    last = problem;
                    false
                }
            },
        );
        result.unwrap_or_else(|e| panic!("{e}: {last}\n{}", self.logs()));
        expected
    }

    /// Ok(number of leases) when DNS holds exactly the leases' records.
    fn compare_zones(&self) -> Result<usize, String> {
        let expected = LeaseNames6::read(&self.kea)?;
        let got = ZoneNames6::read(&self.dns(), ZONE, &self.reverse_zone())?;
        match got.differs_from(&expected) {
            None => Ok(expected.pairs.len()),
            Some(problem) => Err(problem),
        }
    }
}

/// What DNS must hold according to kea-dhcp6's lease file: (FQDN, address)
/// of every active IA_NA lease (state 0, lease type 0).
pub(crate) struct LeaseNames6 {
    pub(crate) pairs: BTreeSet<(String, Ipv6Addr)>,
}

impl LeaseNames6 {
    pub(crate) fn read(kea: &Kea) -> Result<LeaseNames6, String> {
        let leases = kea.leases().map_err(|e| e.to_string())?;
        let mut pairs = BTreeSet::new();
        let mut unnamed = Vec::new();
        for lease in leases
            .iter()
            .filter(|l| l["state"] == "0" && l["lease_type"] == "0")
        {
            let addr: Ipv6Addr = lease["address"]
                .parse()
                .map_err(|_| format!("bad lease row {lease:?}"))?;
            if lease["hostname"].is_empty() {
                unnamed.push(addr);
                continue;
            }
            pairs.insert((harness::absolute_fqdn(&lease["hostname"]), addr));
        }
        if !unnamed.is_empty() {
            return Err(format!(
                "{} leases without a host name, e.g. {:?}",
                unnamed.len(),
                &unnamed[..unnamed.len().min(5)]
            ));
        }
        Ok(LeaseNames6 { pairs })
    }
}

/// What the zones hold, by AXFR: AAAA, PTR and DHCID records.
pub(crate) struct ZoneNames6 {
    pub(crate) aaaa: BTreeSet<(String, Ipv6Addr)>,
    pub(crate) ptr: BTreeSet<(String, Ipv6Addr)>,
    pub(crate) forward_dhcid: BTreeMap<String, usize>,
    pub(crate) reverse_dhcid: BTreeMap<Ipv6Addr, usize>,
}

impl ZoneNames6 {
    pub(crate) fn read(dns: &Dns, forward: &str, reverse: &str) -> Result<ZoneNames6, String> {
        let forward = dns.axfr(forward).map_err(|e| e.to_string())?;
        let reverse = dns.axfr(reverse).map_err(|e| e.to_string())?;
        let mut zones = ZoneNames6 {
            aaaa: BTreeSet::new(),
            ptr: BTreeSet::new(),
            forward_dhcid: BTreeMap::new(),
            reverse_dhcid: BTreeMap::new(),
        };
        for r in &forward {
            match r.rtype.as_str() {
                "AAAA" => {
                    let addr = r.rdata.parse().map_err(|_| format!("bad AAAA {r:?}"))?;
                    zones.aaaa.insert((r.name.clone(), addr));
                }
                "DHCID" => *zones.forward_dhcid.entry(r.name.clone()).or_default() += 1,
                _ => {}
            }
        }
        for r in &reverse {
            let Some(addr) = ptr6_owner_addr(&r.name) else {
                continue;
            };
            match r.rtype.as_str() {
                "PTR" => {
                    zones.ptr.insert((r.rdata.to_ascii_lowercase(), addr));
                }
                "DHCID" => *zones.reverse_dhcid.entry(addr).or_default() += 1,
                _ => {}
            }
        }
        Ok(zones)
    }

    /// None when the zones hold exactly the leases' records.
    pub(crate) fn differs_from(&self, expected: &LeaseNames6) -> Option<String> {
        let mut problems = Vec::new();
        let mut compare = |what: &str, got: &BTreeSet<(String, Ipv6Addr)>| {
            let missing: Vec<_> = expected.pairs.difference(got).collect();
            let extra: Vec<_> = got.difference(&expected.pairs).collect();
            if !missing.is_empty() || !extra.is_empty() {
                problems.push(format!(
                    "{what}: {} missing (e.g. {:?}), {} without a lease (e.g. {:?})",
                    missing.len(),
                    &missing[..missing.len().min(3)],
                    extra.len(),
                    &extra[..extra.len().min(3)]
                ));
            }
        };
        compare("AAAA", &self.aaaa);
        compare("PTR", &self.ptr);
        let names: BTreeMap<String, usize> =
            expected.pairs.iter().map(|(n, _)| (n.clone(), 1)).collect();
        if self.forward_dhcid != names {
            problems.push(format!(
                "forward DHCID: {} owners for {} leases",
                self.forward_dhcid.len(),
                names.len()
            ));
        }
        let addrs: BTreeMap<Ipv6Addr, usize> =
            expected.pairs.iter().map(|(_, a)| (*a, 1)).collect();
        if self.reverse_dhcid != addrs {
            problems.push(format!(
                "reverse DHCID: {} owners for {} leases",
                self.reverse_dhcid.len(),
                addrs.len()
            ));
        }
        (!problems.is_empty())
            .then(|| format!("{} leases; {}", expected.pairs.len(), problems.join("; ")))
    }
}

/// The DHCID presentation (base64) a DHCPv6 client with `duid` gets for
/// `fqdn`: RFC 4701 identifier type 2 over the DUID and the wire name. The
/// engine's v4 function gives it for an RFC 4361 client identifier (type
/// 0xff, an IAID, the DUID), whose DUID is hashed the same way.
pub(crate) fn dhcid6(duid: &[u8], fqdn: &str) -> String {
    let mut client_id = vec![0xff, 0, 0, 0, 0];
    client_id.extend_from_slice(duid);
    let rdata = ddns_engine::naming::dhcid::dhcid_rdata(Some(&client_id), 0, &[], fqdn)
        .expect("DHCID of a valid name");
    base64::engine::general_purpose::STANDARD.encode(rdata)
}

/// Kea's generated name for a client without one (`host-` prefix, the
/// address with ':' replaced by '-', qualified with the zone).
pub(crate) fn generated_name(addr: Ipv6Addr) -> String {
    format!("host-{}.{ZONE}", addr.to_string().replace(':', "-"))
}

/// The PTR owner of `addr`.
pub(crate) fn ptr_name(addr: Ipv6Addr) -> String {
    reverse_name6(addr)
}

/// How long a client may take to get its lease.
pub(crate) const LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Scenario (a), for either updater: `dhclient -6` sending the partial
/// name `laptop6` with S=1 gets AAAA + DHCID at `laptop6.lan.example.` and
/// PTR + DHCID at its ip6.arpa name, the lease holds the qualified name,
/// and a Release removes all four records.
pub(crate) fn named_client_is_published_and_released(updater: Updater) {
    let lab = Lab6::start(updater, |_, _| {});
    let mut client = lab.dhclient(&Dhclient6Options {
        fqdn: Some(harness::Fqdn6::partial("laptop6")),
        ..Dhclient6Options::default()
    });
    let lease = client
        .obtain(LEASE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(
        client.lease_file_addresses(),
        vec![lease.address],
        "dhclient's lease file holds the address its script got"
    );
    let fqdn = format!("laptop6.{ZONE}");
    let ptr = ptr_name(lease.address);
    let dhcid = dhcid6(client.duid(), &fqdn);
    lab.wait_records(&fqdn, "AAAA", &[lease.address.to_string()]);
    lab.wait_records(&ptr, "PTR", std::slice::from_ref(&fqdn));
    lab.wait_records(&fqdn, "DHCID", std::slice::from_ref(&dhcid));
    lab.wait_records(&ptr, "DHCID", std::slice::from_ref(&dhcid));
    let leases = lab.kea.leases().expect("lease file");
    let row = leases
        .iter()
        .find(|l| l["address"] == lease.address.to_string())
        .unwrap_or_else(|| panic!("no lease row for {}: {leases:?}", lease.address));
    assert_eq!(harness::absolute_fqdn(&row["hostname"]), fqdn, "{row:?}");
    assert_eq!(
        (row["fqdn_fwd"].as_str(), row["fqdn_rev"].as_str()),
        ("1", "1")
    );

    client.release().expect("dhclient -6 -r");
    lab.wait_gone(&fqdn, "AAAA");
    lab.wait_gone(&fqdn, "DHCID");
    lab.wait_gone(&ptr, "PTR");
    lab.wait_gone(&ptr, "DHCID");
    if let Some(d2) = &lab.d2 {
        // kea-dhcp6 2.2 logs DHCPSRV_QUEUE_NCR for the add only (not for a
        // Release's removal), so D2::wait_done's v4 accounting does not
        // apply: D2 must have ended every NCR it got, all successfully.
        let mut last = None;
        wait_until(DNS_DEADLINE, "D2 to end every NCR", || {
            let p = d2.progress(&lab.kea);
            last = Some(p);
            p.received == p.sent && p.succeeded + p.failed + p.discarded == p.received
        })
        .unwrap_or_else(|e| panic!("{e}: {last:?}\n{}", lab.logs()));
        let progress = last.expect("polled");
        assert_eq!(
            (progress.succeeded, progress.failed, progress.discarded),
            (2, 0, 0),
            "{progress:?}"
        );
    }
}

/// Scenario (b)/(c): `clients` perfdhcp -6 clients, each sending option 39
/// with S=1 and an empty name, so Kea names each `host-<address>`; the
/// zones end up with exactly one AAAA, PTR and two DHCIDs per lease.
pub(crate) fn perfdhcp_clients_are_published(updater: Updater, clients: u32, rate: u32) {
    let lab = Lab6::start(updater, |_, _| {});
    let started = std::time::Instant::now();
    let report = harness::Perfdhcp::v6(rate, clients, clients)
        .option(39, &[0x01])
        .run(&lab.net.client(), lab.net.client_iface())
        .expect("perfdhcp -6");
    // Kea's lease file, not perfdhcp's count of Replies, says what was
    // committed: on a loaded machine perfdhcp misses a few Replies that
    // Kea sent (and it never retransmits).
    let leases = lab.kea.leases().expect("lease file").len();
    assert_eq!(
        leases,
        usize::try_from(clients).unwrap(),
        "one lease per perfdhcp client ({} Replies seen)\n{}",
        report.replies(),
        report.output
    );
    let timeout = Duration::from_secs(60 + u64::from(clients) / 20);
    lab.wait_zones_match_leases(leases, timeout);
    let dns = lab.dns();
    let aaaa = dns.count(ZONE, "AAAA").expect("AXFR forward");
    let ptr = dns.count(&lab.reverse_zone(), "PTR").expect("AXFR reverse");
    assert_eq!((aaaa, ptr), (leases, leases));
    // The names are Kea's generated ones.
    let names = LeaseNames6::read(&lab.kea).expect("leases");
    for (name, addr) in names.pairs.iter().take(5) {
        assert_eq!(name, &generated_name(*addr));
    }
    eprintln!(
        "{updater:?}: {clients} perfdhcp -6 clients published in {:?}",
        started.elapsed()
    );
}
