//! Reconciliation: Kea's lease database is the truth. Reads each configured
//! zone by a TSIG-signed AXFR, compares it with the active leases, and queues
//! the changes that make DNS match: adds for leases whose A (AAAA) or PTR is
//! missing or wrong, removals for DHCID-carrying names without a lease (stale).
//!
//! One run serves one family, the engine's (`Config::family`): kea-dhcp4
//! owns the A records and in-addr.arpa, kea-dhcp6 the AAAA records and
//! ip6.arpa. The other family's records at a dual-stack name are another
//! server's: a run never adds, fixes or removes them, nor the name's DHCID
//! while the other family's address is there, and does not read the other
//! family's reverse zones.
//!
//! It repairs what no journal can hold (a change lost between Kea's commit
//! and the journal write, a journal on a full disk, records deleted behind
//! our back) and adopts zones after a migration from kea-dhcp-ddns.
//!
//! "Ours" means: inside a configured zone and carrying a DHCID. With several
//! DHCP servers updating one zone, set `reconcile-remove-stale` to false.
//! Each lease is expected and repaired in its subnet's conflict-resolution
//! mode (no DHCID in no-check-without-dhcid: such names are added when
//! missing but, carrying no DHCID, never removed as stale).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;

use crate::change::{
    Change, ChangeKind, LEASE_STATE_DEFAULT, Lease, LeaseRecords, absolute_fqdn, addr_of_reverse,
    reverse_name,
};
use crate::config::{ConflictMode, DdnsDomain, Family};
use crate::dns::update;
use crate::dns::{self, TsigSigner};

const DHCID_TYPE: u16 = 49;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("zone {zone}: transfer from {server} failed: {reason}")]
    Transfer {
        zone: String,
        server: SocketAddr,
        reason: String,
    },
    #[error("zone {zone} has no servers")]
    NoServers { zone: String },
}

/// What one name holds, as far as reconciliation cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameRecords {
    /// The addresses of the name's A and AAAA records, both families.
    pub a: Vec<IpAddr>,
    pub ptr: Vec<String>,
    pub dhcid: Vec<Vec<u8>>,
}

/// Name (absolute, lower case) -> records, over every zone read.
pub type ZoneView = HashMap<String, NameRecords>;

/// The outcome of a run, for `leasedns-status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReconcileReport {
    pub leases: usize,
    pub names_read: usize,
    pub missing: usize,
    pub stale: usize,
    pub queued: usize,
    /// Repairs not queued because a callout changed the name or address
    /// after the lease snapshot (its own change is newer).
    pub left_to_callouts: usize,
    /// Held journal changes sent after checking them against the leases.
    pub replayed: usize,
    /// Held journal changes this run made unnecessary (or wrong).
    pub replay_superseded: usize,
    pub errors: Vec<String>,
    pub seconds: f64,
}

/// Active, named leases as DNS should show them; `now` in Unix seconds.
/// A lease whose DHCID cannot be computed is left out (the callouts logged it).
/// Each lease is written by its subnet's scope (conflict resolution, TTL).
pub fn desired_state(
    leases: &[Lease],
    scopes: &crate::config::Scopes,
    now: i64,
) -> Vec<LeaseRecords> {
    leases
        .iter()
        .filter(|l| l.state == LEASE_STATE_DEFAULT)
        .filter(|l| l.valid_lft == u32::MAX || l.cltt + i64::from(l.valid_lft) > now)
        .filter_map(|l| {
            let scope = scopes.for_subnet(l.subnet_id);
            LeaseRecords::of_lease(l, scope.conflict_mode, &scope.ttl)
                .ok()
                .flatten()
        })
        .collect()
}

/// The (address, name) pairs of the active leases, to check a journal
/// change written before a restart against the lease database as it is now.
pub struct ActiveLeases<'a>(HashSet<(IpAddr, &'a str)>);

impl<'a> ActiveLeases<'a> {
    pub fn of(desired: &'a [LeaseRecords]) -> ActiveLeases<'a> {
        ActiveLeases(desired.iter().map(|d| (d.addr, d.fqdn.as_str())).collect())
    }

    /// Whether an old change is still to be sent. Adds never are: the
    /// reconciliation that holds these leases adds what an active lease
    /// lacks, and an add whose lease has since gone (released through an HA
    /// partner, or the address given to another client) must not come
    /// back. A removal is, unless an active lease has that name and address
    /// again; it must run, since names without a DHCID
    /// (no-check-without-dhcid) are never found stale.
    pub fn still_wants(&self, change: &Change) -> bool {
        change.kind == ChangeKind::Remove
            && !self
                .0
                .contains(&(change.records.addr, change.records.fqdn.as_str()))
    }
}

/// The reverse zones a run of `family` reads and repairs: the other
/// family's are another server's, not even transferred.
pub fn reverse_zones_of(zones: &[DdnsDomain], family: Family) -> Vec<DdnsDomain> {
    zones
        .iter()
        .filter(|z| z.reverse_family() == Some(family))
        .cloned()
        .collect()
}

fn covered(zones: &[DdnsDomain], name: &str) -> bool {
    Name::from_ascii(name).is_ok_and(|n| matches!(update::pick(true, zones, &n), Ok(Some(_))))
}

/// The addresses of `family` among `addrs`.
fn of_family(addrs: &[IpAddr], family: Family) -> Vec<IpAddr> {
    addrs
        .iter()
        .copied()
        .filter(|a| Family::of(*a) == family)
        .collect()
}

/// The changes that make `view` match `desired`, for the records of
/// `family` only: leases, addresses and reverse names of the other family
/// are ignored (see the module's documentation).
pub fn plan(
    desired: &[LeaseRecords],
    view: &ZoneView,
    forward_zones: &[DdnsDomain],
    reverse_zones: &[DdnsDomain],
    family: Family,
    remove_stale: bool,
) -> (Vec<Change>, usize, usize) {
    let empty = NameRecords::default();
    let mut changes = Vec::new();
    let mut missing = 0;
    let mut names_with_lease: HashSet<&str> = HashSet::new();
    let mut addrs_with_lease: HashMap<IpAddr, &str> = HashMap::new();
    for d in desired.iter().filter(|d| Family::of(d.addr) == family) {
        names_with_lease.insert(&d.fqdn);
        addrs_with_lease.insert(d.addr, &d.fqdn);
        let fwd = view.get(&d.fqdn).unwrap_or(&empty);
        let need_fwd = d.forward
            && covered(forward_zones, &d.fqdn)
            && (of_family(&fwd.a, family) != [d.addr]
                || (!d.dhcid.is_empty() && !fwd.dhcid.contains(&d.dhcid)));
        let rev_name = reverse_name(d.addr);
        let rev = view.get(&rev_name).unwrap_or(&empty);
        let need_rev =
            d.reverse && covered(reverse_zones, &rev_name) && rev.ptr != [d.fqdn.clone()];
        if need_fwd || need_rev {
            missing += 1;
            changes.push(Change::add(LeaseRecords {
                forward: need_fwd,
                reverse: need_rev,
                ..d.clone()
            }));
        }
    }
    let mut stale = 0;
    if remove_stale {
        let mut names: Vec<(&String, &NameRecords)> = view.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, records) in names {
            let Some(dhcid) = records.dhcid.first() else {
                continue;
            };
            if let Some(addr) = addr_of_reverse(name) {
                if Family::of(addr) != family || addrs_with_lease.contains_key(&addr) {
                    continue;
                }
                for target in &records.ptr {
                    stale += 1;
                    changes.push(removal(target, addr, dhcid, false, true));
                }
            } else if !names_with_lease.contains(name.as_str()) {
                let own = of_family(&records.a, family);
                if own.is_empty() && !records.a.is_empty() {
                    // The other family's name (or its half of a
                    // dual-stack name): its server's to keep or remove.
                    continue;
                }
                stale += 1;
                if own.is_empty() {
                    // A DHCID alone: the removal's address matches nothing,
                    // its second step removes the name.
                    let none = match family {
                        Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        Family::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                    };
                    changes.push(removal(name, none, dhcid, true, false));
                }
                // Each removal deletes its own address only, and the rest
                // of the name (the DHCID) only once no A or AAAA is left:
                // a dual-stack name keeps the other family's address and
                // the DHCID with it.
                for addr in own {
                    changes.push(removal(name, addr, dhcid, true, false));
                }
            }
        }
    }
    (changes, missing, stale)
}

/// The removal of a stale name. No lease, so no subnet and no subnet's
/// mode: it runs in check-with-dhcid with the DHCID read from the zone,
/// whatever mode wrote the name. The name carries a DHCID, so the checks
/// pass while it is as read; should a client take it over between the
/// transfer and the removal, the check leaves the new owner's records
/// alone, and the name goes whole once no address is left (a no-check
/// removal would leave the DHCID behind in no-check-without-dhcid).
fn removal(fqdn: &str, addr: IpAddr, dhcid: &[u8], forward: bool, reverse: bool) -> Change {
    Change::remove(LeaseRecords {
        fqdn: fqdn.to_string(),
        addr,
        dhcid: dhcid.to_vec(),
        ttl: 0,
        forward,
        reverse,
        mode: ConflictMode::CheckWithDhcid,
    })
}

/// Adds one zone's records to `view`; `signers` are the configuration's
/// keys, each server's chosen by [`DdnsDomain::key_of`].
pub fn read_zone(
    zone: &DdnsDomain,
    signers: &[TsigSigner],
    timeout: Duration,
    view: &mut ZoneView,
) -> Result<usize, ReconcileError> {
    let zone_name = zone.name.to_ascii();
    let mut last = ReconcileError::NoServers {
        zone: zone_name.clone(),
    };
    for (i, server) in zone.servers.iter().enumerate() {
        let signer = zone.key_of(i).and_then(|k| signers.get(k));
        // Generous: a large zone takes many messages.
        let patience = timeout.max(Duration::from_secs(5));
        match dns::transfer(
            &zone.name,
            *server,
            signer,
            patience,
            Instant::now() + patience * 4,
        ) {
            Ok(records) => {
                let records: Vec<Record> = records
                    .into_iter()
                    .filter(|r| r.record_type() != RecordType::SOA)
                    .collect();
                let n = records.len();
                for record in records {
                    let name = absolute_fqdn(&record.name.to_ascii());
                    let entry = view.entry(name).or_default();
                    match record.data {
                        RData::A(a) => entry.a.push(a.0.into()),
                        RData::AAAA(aaaa) => entry.a.push(aaaa.0.into()),
                        RData::PTR(p) => entry.ptr.push(absolute_fqdn(&p.0.to_ascii())),
                        RData::Unknown { code, rdata } if u16::from(code) == DHCID_TYPE => {
                            entry.dhcid.push(rdata.anything.clone())
                        }
                        _ => {}
                    }
                }
                return Ok(n);
            }
            Err(err) => {
                let reason = err.to_string();
                tracing::warn!(zone = %zone_name, %server, %reason, "zone transfer for reconciliation failed");
                last = ReconcileError::Transfer {
                    zone: zone_name.clone(),
                    server: *server,
                    reason,
                };
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> DdnsDomain {
        DdnsDomain {
            name: Name::from_ascii(name).unwrap(),
            key: None,
            servers: vec!["127.0.0.1:53".parse().unwrap()],
            server_keys: Vec::new(),
        }
    }

    fn desired(fqdn: &str, addr: impl Into<IpAddr>) -> LeaseRecords {
        LeaseRecords {
            fqdn: fqdn.into(),
            addr: addr.into(),
            dhcid: vec![0, 1, 1, 9],
            ttl: 600,
            forward: true,
            reverse: true,
            mode: ConflictMode::CheckWithDhcid,
        }
    }

    fn zones() -> (Vec<DdnsDomain>, Vec<DdnsDomain>) {
        (
            vec![zone("lan.example.")],
            vec![zone("77.10.in-addr.arpa.")],
        )
    }

    #[test]
    fn journal_changes_from_before_a_restart_are_checked_against_the_leases() {
        let leases = vec![
            desired("kept.lan.example.", [10, 0, 0, 1]),
            desired("moved.lan.example.", [10, 0, 0, 9]),
        ];
        let active = ActiveLeases::of(&leases);
        // Adds never replay: the reconciliation adds what a lease lacks,
        // and a lease gone meanwhile must not come back.
        assert!(!active.still_wants(&Change::add(leases[0].clone())));
        assert!(!active.still_wants(&Change::add(desired(
            "released.lan.example.",
            [10, 0, 0, 2]
        ))));
        // A removal runs unless an active lease holds that name and address again.
        assert!(!active.still_wants(&Change::remove(leases[0].clone())));
        assert!(active.still_wants(&Change::remove(desired(
            "released.lan.example.",
            [10, 0, 0, 2]
        ))));
        assert!(
            active.still_wants(&Change::remove(desired(
                "moved.lan.example.",
                [10, 0, 0, 3]
            ))),
            "the name's old address goes, its new one stays"
        );
    }

    #[test]
    fn matching_zone_needs_nothing() {
        let d = desired("a.lan.example.", [10, 77, 0, 5]);
        let mut view = ZoneView::new();
        view.insert(
            d.fqdn.clone(),
            NameRecords {
                a: vec![d.addr],
                ptr: vec![],
                dhcid: vec![d.dhcid.clone()],
            },
        );
        view.insert(
            reverse_name(d.addr),
            NameRecords {
                a: vec![],
                ptr: vec![d.fqdn.clone()],
                dhcid: vec![d.dhcid.clone()],
            },
        );
        let (f, r) = zones();
        let (changes, missing, stale) = plan(&[d], &view, &f, &r, Family::V4, true);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!((missing, stale), (0, 0));
    }

    #[test]
    fn missing_directions_are_added_alone() {
        let d = desired("a.lan.example.", [10, 77, 0, 5]);
        let mut view = ZoneView::new();
        view.insert(
            d.fqdn.clone(),
            NameRecords {
                a: vec![d.addr],
                ptr: vec![],
                dhcid: vec![d.dhcid.clone()],
            },
        );
        let (f, r) = zones();
        let (changes, missing, _) = plan(std::slice::from_ref(&d), &view, &f, &r, Family::V4, true);
        assert_eq!(missing, 1);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].kind, ChangeKind::Add);
        assert!(!changes[0].records.forward && changes[0].records.reverse);
        // A wrong address is as good as missing.
        view.insert(
            d.fqdn.clone(),
            NameRecords {
                a: vec![Ipv4Addr::new(10, 77, 0, 9).into()],
                ptr: vec![],
                dhcid: vec![d.dhcid.clone()],
            },
        );
        let (changes, _, _) = plan(&[d], &view, &f, &r, Family::V4, true);
        assert!(changes[0].records.forward && changes[0].records.reverse);
    }

    #[test]
    fn stale_dhcid_names_are_removed_static_ones_kept() {
        let mut view = ZoneView::new();
        view.insert(
            "old.lan.example.".into(),
            NameRecords {
                a: vec![Ipv4Addr::new(10, 77, 0, 7).into()],
                ptr: vec![],
                dhcid: vec![vec![7]],
            },
        );
        view.insert(
            "printer.lan.example.".into(),
            NameRecords {
                a: vec![Ipv4Addr::new(10, 77, 0, 250).into()],
                ptr: vec![],
                dhcid: vec![],
            },
        );
        view.insert(
            "7.0.77.10.in-addr.arpa.".into(),
            NameRecords {
                a: vec![],
                ptr: vec!["old.lan.example.".into()],
                dhcid: vec![vec![7]],
            },
        );
        let (f, r) = zones();
        let (changes, missing, stale) = plan(&[], &view, &f, &r, Family::V4, true);
        assert_eq!((missing, stale), (0, 2));
        assert_eq!(changes.len(), 2);
        assert!(
            changes
                .iter()
                .all(|c| c.kind == ChangeKind::Remove && c.records.dhcid == vec![7])
        );
        assert!(changes.iter().any(|c| c.records.forward
            && c.records.fqdn == "old.lan.example."
            && c.records.addr == IpAddr::from([10, 77, 0, 7])));
        assert!(changes.iter().any(|c| c.records.reverse
            && c.records.fqdn == "old.lan.example."
            && c.records.addr == IpAddr::from([10, 77, 0, 7])));
        let (changes, _, _) = plan(&[], &view, &f, &r, Family::V4, false);
        assert!(changes.is_empty(), "remove-stale off keeps everything");
    }

    #[test]
    fn expired_declined_and_unnamed_leases_are_not_desired() {
        let base = Lease {
            addr: Ipv4Addr::new(10, 77, 0, 5).into(),
            valid_lft: 600,
            cltt: 1_000,
            subnet_id: 1,
            state: 0,
            htype: 1,
            hwaddr: vec![1, 2, 3, 4, 5, 6],
            client_id: None,
            duid: None,
            hostname: Some("a.lan.example.".into()),
            fqdn_fwd: true,
            fqdn_rev: true,
        };
        let scopes = crate::config::Scopes::default();
        assert_eq!(
            desired_state(std::slice::from_ref(&base), &scopes, 1_100).len(),
            1
        );
        assert!(desired_state(std::slice::from_ref(&base), &scopes, 2_000).is_empty());
        let declined = Lease {
            state: 1,
            ..base.clone()
        };
        let unnamed = Lease {
            hostname: None,
            ..base.clone()
        };
        let no_dns = Lease {
            fqdn_fwd: false,
            fqdn_rev: false,
            ..base
        };
        assert!(desired_state(&[declined, unnamed, no_dns], &scopes, 1_100).is_empty());
    }

    /// Each lease is compared in its own mode: no DHCID is expected for a
    /// no-check-without-dhcid lease, its own DHCID for the others.
    #[test]
    fn leases_of_different_modes_expect_their_own_records() {
        let with = desired("a.lan.example.", [10, 77, 0, 5]);
        let without = LeaseRecords {
            dhcid: Vec::new(),
            mode: ConflictMode::NoCheckWithoutDhcid,
            ..desired("b.lan.example.", [10, 77, 0, 6])
        };
        let mut view = ZoneView::new();
        for d in [&with, &without] {
            view.insert(
                d.fqdn.clone(),
                NameRecords {
                    a: vec![d.addr],
                    ptr: vec![],
                    dhcid: vec![],
                },
            );
            view.insert(
                reverse_name(d.addr),
                NameRecords {
                    a: vec![],
                    ptr: vec![d.fqdn.clone()],
                    dhcid: vec![],
                },
            );
        }
        let (f, r) = zones();
        let (changes, missing, stale) = plan(
            &[with.clone(), without.clone()],
            &view,
            &f,
            &r,
            Family::V4,
            true,
        );
        assert_eq!((missing, stale), (1, 0));
        // Only the DHCID-carrying lease lacks its DHCID, and its repair
        // runs in its own mode.
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].records.fqdn, with.fqdn);
        assert_eq!(changes[0].records.mode, ConflictMode::CheckWithDhcid);
        assert!(changes[0].records.forward && !changes[0].records.reverse);
        // A missing A is repaired in the lease's mode too.
        view.remove(&without.fqdn);
        let (changes, _, _) = plan(
            std::slice::from_ref(&without),
            &view,
            &f,
            &r,
            Family::V4,
            true,
        );
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].records.mode, ConflictMode::NoCheckWithoutDhcid);
        assert!(changes[0].records.dhcid.is_empty());
    }

    #[test]
    fn desired_records_carry_the_scope_mode_and_stale_removals_check() {
        let lease = Lease {
            addr: Ipv4Addr::new(10, 77, 0, 5).into(),
            valid_lft: 600,
            cltt: 1_000,
            subnet_id: 1,
            state: 0,
            htype: 1,
            hwaddr: vec![1, 2, 3, 4, 5, 6],
            client_id: None,
            duid: None,
            hostname: Some("a.lan.example.".into()),
            fqdn_fwd: true,
            fqdn_rev: true,
        };
        let in_mode = |conflict_mode| {
            crate::config::Scopes::uniform(crate::config::DdnsScope {
                conflict_mode,
                ..Default::default()
            })
        };
        let scopes = in_mode(ConflictMode::NoCheckWithoutDhcid);
        let d = desired_state(std::slice::from_ref(&lease), &scopes, 1_100);
        assert_eq!(d[0].mode, ConflictMode::NoCheckWithoutDhcid);
        assert!(d[0].dhcid.is_empty());
        let scopes = in_mode(ConflictMode::CheckExistsWithDhcid);
        let d = desired_state(std::slice::from_ref(&lease), &scopes, 1_100);
        assert_eq!(d[0].mode, ConflictMode::CheckExistsWithDhcid);
        assert!(!d[0].dhcid.is_empty());

        // A stale name has no lease and no subnet: its removal proves
        // ownership with the DHCID read from the zone.
        let mut view = ZoneView::new();
        view.insert(
            "old.lan.example.".into(),
            NameRecords {
                a: vec![Ipv4Addr::new(10, 77, 0, 7).into()],
                ptr: vec![],
                dhcid: vec![vec![7]],
            },
        );
        let (f, r) = zones();
        let (changes, _, stale) = plan(&[], &view, &f, &r, Family::V4, true);
        assert_eq!(stale, 1);
        assert_eq!(changes[0].records.mode, ConflictMode::CheckWithDhcid);
        assert_eq!(changes[0].records.dhcid, vec![7]);
    }

    #[test]
    fn reverse_names_round_trip() {
        let addr = IpAddr::from([10, 77, 3, 200]);
        assert_eq!(addr_of_reverse(&reverse_name(addr)), Some(addr));
        assert_eq!(addr_of_reverse("77.10.in-addr.arpa."), None);
        assert_eq!(addr_of_reverse("x.0.77.10.in-addr.arpa."), None);
    }

    // ---- Two families ----

    const V6: [u16; 8] = [0xfd77, 0, 0, 0, 0, 0, 0, 5];
    const V4: [u8; 4] = [10, 77, 0, 5];

    /// Both families' reverse zones, as a dual-stack site configures them
    /// for both servers; a run takes its own family's.
    fn zones_of(family: Family) -> (Vec<DdnsDomain>, Vec<DdnsDomain>) {
        let reverse = vec![zone("77.10.in-addr.arpa."), zone("7.7.d.f.ip6.arpa.")];
        (
            vec![zone("lan.example.")],
            reverse_zones_of(&reverse, family),
        )
    }

    fn records(a: &[IpAddr], ptr: &[&str], dhcid: &[&[u8]]) -> NameRecords {
        NameRecords {
            a: a.to_vec(),
            ptr: ptr.iter().map(|p| p.to_string()).collect(),
            dhcid: dhcid.iter().map(|d| d.to_vec()).collect(),
        }
    }

    fn addrs(changes: &[Change]) -> Vec<IpAddr> {
        changes.iter().map(|c| c.records.addr).collect()
    }

    #[test]
    fn a_run_reads_its_own_family_reverse_zones_only() {
        let names = |family| -> Vec<String> {
            zones_of(family)
                .1
                .iter()
                .map(|z| z.name.to_string())
                .collect()
        };
        assert_eq!(names(Family::V4), ["77.10.in-addr.arpa."]);
        assert_eq!(names(Family::V6), ["7.7.d.f.ip6.arpa."]);
    }

    #[test]
    fn v6_leases_expect_aaaa_and_a_ptr_in_ip6_arpa() {
        let d = desired("a.lan.example.", V6);
        let (f, r) = zones_of(Family::V6);
        let (changes, missing, _) = plan(
            std::slice::from_ref(&d),
            &ZoneView::new(),
            &f,
            &r,
            Family::V6,
            true,
        );
        assert_eq!(missing, 1);
        assert_eq!(addrs(&changes), [d.addr]);
        assert!(changes[0].records.forward && changes[0].records.reverse);

        let mut view = ZoneView::new();
        view.insert(d.fqdn.clone(), records(&[d.addr], &[], &[&d.dhcid]));
        view.insert(reverse_name(d.addr), records(&[], &[&d.fqdn], &[&d.dhcid]));
        let (changes, missing, stale) =
            plan(std::slice::from_ref(&d), &view, &f, &r, Family::V6, true);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!((missing, stale), (0, 0));

        // A wrong AAAA is repaired; an A at the name is no AAAA.
        let other: IpAddr = "fd77::9".parse().unwrap();
        for wrong in [vec![other], vec![IpAddr::from(V4)], vec![d.addr, other]] {
            view.insert(d.fqdn.clone(), records(&wrong, &[], &[&d.dhcid]));
            let (changes, _, _) = plan(std::slice::from_ref(&d), &view, &f, &r, Family::V6, true);
            assert_eq!(addrs(&changes), [d.addr], "{wrong:?}");
            assert!(changes[0].records.forward && !changes[0].records.reverse);
        }
        // An A next to the right AAAA is the other server's: nothing to do.
        view.insert(
            d.fqdn.clone(),
            records(&[V4.into(), d.addr], &[], &[&d.dhcid]),
        );
        let (changes, _, _) = plan(std::slice::from_ref(&d), &view, &f, &r, Family::V6, true);
        assert!(changes.is_empty(), "{changes:?}");
        // A V4 lease in a V6 run (there is none in kea-dhcp6) is not expected.
        let v4 = desired("b.lan.example.", [10, 77, 0, 6]);
        let (changes, missing, _) = plan(&[v4], &ZoneView::new(), &f, &r, Family::V6, true);
        assert_eq!((changes.len(), missing), (0, 0));
    }

    /// `host.lan.example.` has an A from kea-dhcp4 and an AAAA from
    /// kea-dhcp6, with each server's DHCID or (an RFC 4361 client using
    /// its DUID in both) one DHCID, and a PTR in each family's reverse zone.
    fn dual_stack(dhcids: &[&[u8]]) -> ZoneView {
        let host = "host.lan.example.";
        let mut view = ZoneView::new();
        view.insert(host.into(), records(&[V4.into(), V6.into()], &[], dhcids));
        view.insert(reverse_name(V4.into()), records(&[], &[host], &dhcids[..1]));
        view.insert(
            reverse_name(V6.into()),
            records(&[], &[host], &dhcids[dhcids.len() - 1..]),
        );
        view
    }

    #[test]
    fn a_run_never_touches_the_other_family_half_of_a_dual_stack_name() {
        let (v4_dhcid, v6_dhcid): (&[u8], &[u8]) = (&[0, 1, 1, 4], &[0, 2, 1, 6]);
        for dhcids in [&[v4_dhcid, v6_dhcid][..], &[v6_dhcid][..]] {
            let view = dual_stack(dhcids);
            for (family, own, other) in [
                (Family::V6, IpAddr::from(V6), IpAddr::from(V4)),
                (Family::V4, IpAddr::from(V4), IpAddr::from(V6)),
            ] {
                let (f, r) = zones_of(family);
                let lease = LeaseRecords {
                    dhcid: dhcids[if family == Family::V4 {
                        0
                    } else {
                        dhcids.len() - 1
                    }]
                    .to_vec(),
                    ..desired("host.lan.example.", own)
                };
                // The lease is active and its records are there.
                let (changes, missing, stale) =
                    plan(std::slice::from_ref(&lease), &view, &f, &r, family, true);
                assert!(changes.is_empty(), "{family:?} {dhcids:?}: {changes:?}");
                assert_eq!((missing, stale), (0, 0));

                // Its address went: the repair writes its own family only.
                let mut gone = view.clone();
                let host = gone.get_mut("host.lan.example.").unwrap();
                host.a.retain(|a| *a != own);
                let (changes, missing, _) =
                    plan(std::slice::from_ref(&lease), &gone, &f, &r, family, true);
                assert_eq!(missing, 1);
                assert_eq!(addrs(&changes), [own], "{family:?}");
                assert!(changes[0].records.forward && !changes[0].records.reverse);

                // The lease is gone: its own address and PTR go, the other
                // family's address, PTR and (by the removal's last step,
                // which needs no A and no AAAA left) DHCID stay.
                let (changes, missing, stale) = plan(&[], &view, &f, &r, family, true);
                assert_eq!((missing, stale), (0, 2), "{family:?}");
                assert!(changes.iter().all(|c| c.kind == ChangeKind::Remove));
                assert_eq!(addrs(&changes), [own, own], "{family:?} {changes:?}");
                assert!(!addrs(&changes).contains(&other));
                let forward: Vec<_> = changes.iter().filter(|c| c.records.forward).collect();
                assert_eq!(forward.len(), 1);
                assert!(!forward[0].records.reverse);
                assert_eq!(forward[0].records.fqdn, "host.lan.example.");
            }
        }
    }

    #[test]
    fn stale_v6_names_are_removed_and_left_alone_by_v4_runs() {
        let old: IpAddr = "fd77::7".parse().unwrap();
        let mut view = ZoneView::new();
        view.insert("old6.lan.example.".into(), records(&[old], &[], &[&[7]]));
        view.insert(
            reverse_name(old),
            records(&[], &["old6.lan.example."], &[&[7]]),
        );
        view.insert("only-dhcid.lan.example.".into(), records(&[], &[], &[&[8]]));
        view.insert(
            "v4.lan.example.".into(),
            records(&[V4.into()], &[], &[&[9]]),
        );
        let (f, r) = zones_of(Family::V6);
        let (changes, missing, stale) = plan(&[], &view, &f, &r, Family::V6, true);
        assert_eq!((missing, stale), (0, 3));
        let mut got: Vec<(String, IpAddr, bool, bool)> = changes
            .iter()
            .map(|c| {
                assert_eq!(c.kind, ChangeKind::Remove);
                let r = &c.records;
                (r.fqdn.clone(), r.addr, r.forward, r.reverse)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("old6.lan.example.".into(), old, false, true),
                ("old6.lan.example.".into(), old, true, false),
                (
                    "only-dhcid.lan.example.".into(),
                    Ipv6Addr::UNSPECIFIED.into(),
                    true,
                    false
                ),
            ]
        );
        // A kea-dhcp4 run leaves the V6 name and its PTR alone.
        let (f, r) = zones_of(Family::V4);
        let (changes, _, stale) = plan(&[], &view, &f, &r, Family::V4, true);
        let names: Vec<&str> = changes.iter().map(|c| c.records.fqdn.as_str()).collect();
        assert_eq!(stale, 2);
        assert_eq!(names, ["only-dhcid.lan.example.", "v4.lan.example."]);
    }
}
