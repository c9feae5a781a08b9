//! Kea's leases against the zones: what DNS must hold according to a
//! lease file, what it holds, and the difference. Shared by every test
//! that checks that nothing was lost.

use crate::dns::Dns;
use crate::kea::Kea;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

/// What DNS must hold according to a Kea's lease file.
pub struct LeaseNames {
    /// (FQDN, address) of every active lease.
    pub pairs: BTreeSet<(String, Ipv4Addr)>,
}

impl LeaseNames {
    pub fn read(kea: &Kea) -> Result<LeaseNames, String> {
        let leases = kea.leases().map_err(|e| e.to_string())?;
        let mut pairs = BTreeSet::new();
        let mut unnamed = Vec::new();
        // state 0 is an active lease; declined (1) and reclaimed (2) ones
        // must have no records.
        for lease in leases.iter().filter(|l| l["state"] == "0") {
            let addr: Ipv4Addr = lease["address"]
                .parse()
                .map_err(|_| format!("bad lease row {lease:?}"))?;
            if lease["hostname"].is_empty() {
                unnamed.push(addr);
                continue;
            }
            let name = crate::absolute_fqdn(&lease["hostname"]);
            pairs.insert((name, addr));
        }
        if !unnamed.is_empty() {
            return Err(format!(
                "{} leases without a host name in the lease file, e.g. {:?}",
                unnamed.len(),
                &unnamed[..unnamed.len().min(5)]
            ));
        }
        Ok(LeaseNames { pairs })
    }
}

/// What the zones hold, by AXFR: the A, PTR and DHCID records of
/// dynamic names.
pub struct ZoneNames {
    a: BTreeSet<(String, Ipv4Addr)>,
    ptr: BTreeSet<(String, Ipv4Addr)>,
    forward_dhcid: BTreeMap<String, usize>,
    reverse_dhcid: BTreeMap<Ipv4Addr, usize>,
}

impl ZoneNames {
    /// `ignore`: owners of the zones' static records.
    pub fn read(
        dns: &Dns,
        forward: &str,
        reverse: &str,
        ignore: &[&str],
    ) -> Result<ZoneNames, String> {
        let forward = dns.axfr(forward).map_err(|e| e.to_string())?;
        let reverse_records = dns.axfr(reverse).map_err(|e| e.to_string())?;
        let mut published = ZoneNames {
            a: BTreeSet::new(),
            ptr: BTreeSet::new(),
            forward_dhcid: BTreeMap::new(),
            reverse_dhcid: BTreeMap::new(),
        };
        for r in forward
            .iter()
            .filter(|r| !ignore.contains(&r.name.as_str()))
        {
            match r.rtype.as_str() {
                "A" => {
                    let addr = r.rdata.parse().map_err(|_| format!("bad A {r:?}"))?;
                    published.a.insert((r.name.clone(), addr));
                }
                "DHCID" => *published.forward_dhcid.entry(r.name.clone()).or_default() += 1,
                _ => {}
            }
        }
        for r in &reverse_records {
            let Some(addr) = ptr_owner_addr(&r.name) else {
                continue;
            };
            match r.rtype.as_str() {
                "PTR" => {
                    published.ptr.insert((r.rdata.to_ascii_lowercase(), addr));
                }
                "DHCID" => *published.reverse_dhcid.entry(addr).or_default() += 1,
                _ => {}
            }
        }
        Ok(published)
    }

    /// None when the zones hold exactly one A, PTR and DHCID pair per lease
    /// and nothing else; otherwise what differs.
    pub fn differs_from(&self, expected: &LeaseNames) -> Option<String> {
        let mut problems = Vec::new();
        let mut compare = |what: &str, got: &BTreeSet<(String, Ipv4Addr)>| {
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
        compare("A", &self.a);
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
        let addrs: BTreeMap<Ipv4Addr, usize> =
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

/// `d.c.b.a.in-addr.arpa.` -> a.b.c.d; None for other owners (the apex).
pub fn ptr_owner_addr(owner: &str) -> Option<Ipv4Addr> {
    let labels: Vec<&str> = owner.strip_suffix(".in-addr.arpa.")?.split('.').collect();
    let [d, c, b, a] = labels.as_slice() else {
        return None;
    };
    format!("{a}.{b}.{c}.{d}").parse().ok()
}

/// The ip6.arpa owner of `addr`'s PTR: its 32 nibbles, lowest first.
pub fn reverse_name6(addr: Ipv6Addr) -> String {
    let mut name = String::with_capacity(72);
    for nibble in nibbles(addr).iter().rev() {
        name.push(char::from_digit(u32::from(*nibble), 16).unwrap_or('0'));
        name.push('.');
    }
    name.push_str("ip6.arpa.");
    name
}

/// The ip6.arpa zone of the prefix `addr`/`prefix_len`, rounded down to a
/// nibble boundary: `fd77:42::/64` -> `0.0.0.0.0.0.0.0.2.4.0.0.7.7.d.f.ip6.arpa.`.
pub fn reverse_zone6(addr: Ipv6Addr, prefix_len: u8) -> String {
    let keep = usize::from(prefix_len.min(128) / 4);
    let mut name = String::new();
    for nibble in nibbles(addr)[..keep].iter().rev() {
        name.push(char::from_digit(u32::from(*nibble), 16).unwrap_or('0'));
        name.push('.');
    }
    name.push_str("ip6.arpa.");
    name
}

/// The address whose ip6.arpa PTR owner is `owner` (the inverse of
/// [`reverse_name6`]); None for other owners (the apex).
pub fn ptr6_owner_addr(owner: &str) -> Option<Ipv6Addr> {
    let lower = owner.to_ascii_lowercase();
    let rest = lower.strip_suffix(".ip6.arpa.")?;
    let digits: Vec<u8> = rest
        .split('.')
        .map(|label| {
            u8::from_str_radix(label, 16)
                .ok()
                .filter(|_| label.len() == 1)
        })
        .collect::<Option<Vec<u8>>>()?;
    if digits.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    // Owners list the nibbles lowest first.
    for (i, octet) in octets.iter_mut().enumerate() {
        *octet = (digits[31 - 2 * i] << 4) | digits[30 - 2 * i];
    }
    Some(Ipv6Addr::from(octets))
}

/// The 32 nibbles of `addr`, most significant first.
fn nibbles(addr: Ipv6Addr) -> Vec<u8> {
    addr.octets()
        .iter()
        .flat_map(|octet| [octet >> 4, octet & 0x0f])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip6_arpa_names_round_trip() {
        let addr: Ipv6Addr = "fd77:42::1:a".parse().unwrap();
        let name = reverse_name6(addr);
        assert_eq!(
            name,
            "a.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.4.0.0.7.7.d.f.ip6.arpa."
        );
        assert_eq!(ptr6_owner_addr(&name), Some(addr));
        assert_eq!(ptr6_owner_addr(&name.to_ascii_uppercase()), Some(addr));
        let zone = reverse_zone6(addr, 64);
        assert_eq!(zone, "0.0.0.0.0.0.0.0.2.4.0.0.7.7.d.f.ip6.arpa.");
        assert!(name.ends_with(&zone));
        assert_eq!(ptr6_owner_addr(&zone), None);
        assert_eq!(ptr6_owner_addr("1.0.10.in-addr.arpa."), None);
    }
}
