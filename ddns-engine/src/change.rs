//! The engine's model of a lease's DNS: the lease as the adapter copies it
//! out of Kea, the records it should have (the one lease -> DNS rule), and
//! the change that flows from a callout through the journal to a sender.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::config::{ConflictMode, TtlPolicy};
use crate::naming::dhcid::{self, DhcidError};

/// A lease, copied out of Kea by the adapter (`host.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The leased address: V4 from kea-dhcp4, V6 (an IA_NA address) from kea-dhcp6.
    pub addr: IpAddr,
    pub valid_lft: u32,
    pub cltt: i64,
    pub subnet_id: u32,
    /// [`LEASE_STATE_DEFAULT`], 1 declined, 2 expired-reclaimed.
    pub state: u32,
    pub htype: u8,
    pub hwaddr: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    /// A DHCPv6 lease's client DUID, its DHCID's identifier (RFC 4701
    /// type 2); `None` for DHCPv4 leases.
    pub duid: Option<Vec<u8>>,
    /// `None` when empty, longer than the adapter accepts, or not UTF-8.
    pub hostname: Option<String>,
    pub fqdn_fwd: bool,
    pub fqdn_rev: bool,
}

/// Kea's state of a lease in use.
pub const LEASE_STATE_DEFAULT: u32 = 0;

/// The DNS records one lease should have: A (AAAA for a V6 `addr`) + DHCID
/// at `fqdn` (forward) and PTR + DHCID at the reverse name of `addr`
/// (reverse, in in-addr.arpa or ip6.arpa). What callouts
/// publish, what the engine remembers per address and what reconciliation
/// expects in the zones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecords {
    /// Absolute, lower-case FQDN with the trailing dot (`laptop.lan.example.`).
    pub fqdn: String,
    /// V4 publishes an A record, V6 an AAAA record.
    pub addr: IpAddr,
    /// DHCID RDATA (RFC 4701); empty in `no-check-without-dhcid` mode.
    pub dhcid: Vec<u8>,
    /// TTL for added records (0 in removals).
    pub ttl: u32,
    /// Update the forward zone (A or AAAA + DHCID).
    pub forward: bool,
    /// Update the reverse zone (PTR + DHCID).
    pub reverse: bool,
    /// How the sender resolves conflicts for these records: the mode of the
    /// lease's subnet when the change was made, so a change replayed after
    /// a reconfiguration still runs the sequence it was meant for.
    pub mode: ConflictMode,
}

impl LeaseRecords {
    /// The lease -> DNS rule, the one place it is written: the name Kea
    /// stored in the lease, the directions its FQDN flags ask for, the
    /// client's DHCID (none in `no-check-without-dhcid`; a DHCPv6 lease's
    /// from its DUID, a DHCPv4 lease's as kea-dhcp4 forms it), the TTL from
    /// the lease time. `Ok(None)`: the lease asks for no DNS records.
    pub fn of_lease(
        lease: &Lease,
        mode: ConflictMode,
        ttl: &TtlPolicy,
    ) -> Result<Option<LeaseRecords>, DhcidError> {
        let Some(hostname) = lease.hostname.as_deref() else {
            return Ok(None);
        };
        if !lease.fqdn_fwd && !lease.fqdn_rev {
            return Ok(None);
        }
        let fqdn = absolute_fqdn(hostname);
        let dhcid = if mode == ConflictMode::NoCheckWithoutDhcid {
            Vec::new()
        } else if lease.addr.is_ipv6() {
            let duid = lease.duid.as_deref().ok_or(DhcidError::NoDuid)?;
            dhcid::dhcid_rdata_duid(duid, &fqdn)?
        } else {
            dhcid::dhcid_rdata(
                lease.client_id.as_deref(),
                lease.htype,
                &lease.hwaddr,
                &fqdn,
            )?
        };
        Ok(Some(LeaseRecords {
            fqdn,
            addr: lease.addr,
            dhcid,
            ttl: dhcid::ttl(ttl, lease.valid_lft),
            forward: lease.fqdn_fwd,
            reverse: lease.fqdn_rev,
            mode,
        }))
    }
}

/// Whether the lease's records must exist or must be gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Publish A or AAAA + DHCID at `fqdn` and PTR + DHCID at the reverse name of `addr`.
    Add,
    /// Remove them, where the DHCID proves they are this client's.
    Remove,
}

/// One intended DNS change for one lease. Self-contained: it can be replayed
/// from the journal after a restart without any other state. Its postcard
/// encoding (kind, then the records' fields in order) is the journal's
/// payload: the golden journal tests pin it, and changing it needs a new
/// segment version (see `journal::payload`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub records: LeaseRecords,
}

impl Change {
    pub fn add(records: LeaseRecords) -> Change {
        Change {
            kind: ChangeKind::Add,
            records,
        }
    }

    /// Removes `records` (their TTL is irrelevant and set to 0).
    pub fn remove(records: LeaseRecords) -> Change {
        Change {
            kind: ChangeKind::Remove,
            records: LeaseRecords { ttl: 0, ..records },
        }
    }
}

/// `name` as `LeaseRecords::fqdn` spells names: lower case, with the trailing dot.
pub fn absolute_fqdn(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The reverse name of `addr`, spelled like `absolute_fqdn`: in in-addr.arpa
/// for V4, the 32 nibbles (lower-case hex, least significant first) in
/// ip6.arpa for V6 (RFC 3596 section 2.5).
pub fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push(hex_digit(byte & 0xf));
                name.push('.');
                name.push(hex_digit(byte >> 4));
                name.push('.');
            }
            name.push_str("ip6.arpa.");
            name
        }
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// The address whose reverse name is `name` (the inverse of
/// [`reverse_name`], case-insensitive for the hex digits); `None` for any
/// other name, including the names of reverse zones themselves.
pub fn addr_of_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa.") {
        let parts: Vec<u8> = rest
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        return match parts.as_slice() {
            [d, c, b, a] => Some(Ipv4Addr::new(*a, *b, *c, *d).into()),
            _ => None,
        };
    }
    let rest = name.strip_suffix(".ip6.arpa.")?;
    let mut value: u128 = 0;
    let mut count = 0;
    // Least significant nibble first: each label goes in at the top.
    for label in rest.split('.') {
        let mut chars = label.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return None;
        };
        let nibble = c.to_digit(16)?;
        if count == 32 {
            return None;
        }
        value |= u128::from(nibble) << (4 * count);
        count += 1;
    }
    (count == 32).then(|| Ipv6Addr::from(value).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6_lease(duid: Option<Vec<u8>>) -> Lease {
        Lease {
            addr: "fd77::5".parse().unwrap(),
            valid_lft: 3600,
            cltt: 0,
            subnet_id: 1,
            state: LEASE_STATE_DEFAULT,
            htype: 1,
            hwaddr: vec![1, 2, 3, 4, 5, 6],
            client_id: None,
            duid,
            hostname: Some("Chi6.example.com".into()),
            fqdn_fwd: true,
            fqdn_rev: true,
        }
    }

    #[test]
    fn a_v6_lease_dhcid_is_its_duid() {
        // RFC 4701 section 3.6's DUID example.
        let duid = vec![
            0x00, 0x01, 0x00, 0x06, 0x41, 0x2d, 0xf1, 0x66, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ];
        let ttl = TtlPolicy::default();
        let mode = ConflictMode::CheckWithDhcid;
        let records = LeaseRecords::of_lease(&v6_lease(Some(duid.clone())), mode, &ttl)
            .unwrap()
            .unwrap();
        assert_eq!(records.fqdn, "chi6.example.com.");
        assert_eq!(records.addr, "fd77::5".parse::<IpAddr>().unwrap());
        assert_eq!(
            records.dhcid,
            dhcid::dhcid_rdata_duid(&duid, "chi6.example.com.").unwrap()
        );
        assert_eq!(&records.dhcid[..3], &[0, 2, 1]);
        // The hardware address is not a DHCPv6 client's identifier.
        assert_eq!(
            LeaseRecords::of_lease(&v6_lease(None), mode, &ttl),
            Err(DhcidError::NoDuid)
        );
        let without = ConflictMode::NoCheckWithoutDhcid;
        let records = LeaseRecords::of_lease(&v6_lease(None), without, &ttl)
            .unwrap()
            .unwrap();
        assert!(records.dhcid.is_empty());
    }

    #[test]
    fn reverse_names_of_both_families() {
        let v4: IpAddr = Ipv4Addr::new(10, 77, 3, 200).into();
        assert_eq!(reverse_name(v4), "200.3.77.10.in-addr.arpa.");
        // RFC 3596 section 2.5's example address.
        let v6: IpAddr = "4321:0:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            reverse_name(v6),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa."
        );
        let v6: IpAddr = "fd77::AbCd".parse().unwrap();
        assert_eq!(
            reverse_name(v6),
            "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa."
        );
        for addr in [v4, v6, "::".parse().unwrap(), "ffff::1".parse().unwrap()] {
            assert_eq!(addr_of_reverse(&reverse_name(addr)), Some(addr));
        }
        let upper = reverse_name(v6)
            .replace("ip6.arpa.", "")
            .to_ascii_uppercase();
        assert_eq!(addr_of_reverse(&format!("{upper}ip6.arpa.")), Some(v6));
    }

    #[test]
    fn names_that_are_not_one_address_have_none() {
        for name in [
            "77.10.in-addr.arpa.",
            "x.0.77.10.in-addr.arpa.",
            "7.7.d.f.ip6.arpa.",
            "ip6.arpa.",
            ".ip6.arpa.",
            "laptop.lan.example.",
        ] {
            assert_eq!(addr_of_reverse(name), None, "{name}");
        }
        let v6: IpAddr = "fd77::5".parse().unwrap();
        let full = reverse_name(v6);
        assert_eq!(addr_of_reverse(&format!("0.{full}")), None, "33 nibbles");
        assert_eq!(addr_of_reverse(&full.replacen('5', "55", 1)), None);
        assert_eq!(addr_of_reverse(&full.replacen('5', "g", 1)), None);
    }
}
