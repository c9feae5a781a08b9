//! DHCID RDATA (RFC 4701) and the TTL of the records we publish.
//!
//! Both follow kea-dhcp4 2.2 + kea-dhcp-ddns so that records written by the
//! stock Kea DDNS path and by leasedns carry the same DHCID for the same
//! client: an operator can switch between the two without conflict-resolution
//! failures (RFC 4703) on every existing name.

use sha2::{Digest, Sha256};

use crate::config::{KeaRelease, TtlPolicy};

/// Identifier type: htype + chaddr (RFC 4701 section 3.3).
const ID_HWADDR: u16 = 0x0000;
/// Identifier type: DHCPv4 client identifier option (RFC 4701 section 3.3).
const ID_CLIENT_ID: u16 = 0x0001;
/// Identifier type: DUID (RFC 4701 section 3.3; RFC 4361 client ids carry one).
const ID_DUID: u16 = 0x0002;
/// Digest type 1 = SHA-256 (RFC 4701 section 3.4).
const DIGEST_SHA256: u8 = 1;
/// Identifier type (2) + digest type (1) + SHA-256 (32).
pub const DHCID_RDATA_LEN: usize = 35;

/// RFC 4361 client identifiers start with this type byte, then a 4-byte IAID.
const RFC4361_TYPE: u8 = 0xff;
const RFC4361_HEADER_LEN: usize = 5;
/// RFC 8415 section 11.1: a DUID is a 2-byte type and at most 128 bytes more.
const MAX_DUID_LEN: usize = 130;

/// RFC 2181 section 8: a TTL with the top bit set is read as zero, so never send one.
const MAX_TTL: u32 = i32::MAX as u32;
/// RFC 4702 section 5 floor (10 minutes) used by Kea's TTL rule.
const MIN_RFC_TTL: u32 = 600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcidError {
    #[error("no client identifier and an empty hardware address: no DHCID can be formed")]
    NoIdentifier,
    #[error("DHCPv6 lease without a client DUID: no DHCID can be formed")]
    NoDuid,
    #[error("RFC 4361 client identifier carries no DUID ({len} bytes)")]
    DuidTooShort { len: usize },
    #[error("RFC 4361 client identifier carries a DUID longer than 130 bytes ({len} bytes)")]
    DuidTooLong { len: usize },
    #[error("cannot form the DHCID of an invalid name: {0}")]
    InvalidName(&'static str),
}

/// Computes the DHCID RDATA (35 bytes) for a DHCPv4 client and its FQDN.
///
/// The identifier is chosen as kea-dhcp4 2.2 does (ncr_generator.cc): the
/// client identifier wins over the hardware address; a client identifier of
/// RFC 4361 form (type 0xFF, IAID, DUID) contributes its DUID as identifier
/// type 2; any other client identifier is type 1 with the option content as
/// is; without one, type 0 hashes htype followed by chaddr. An empty client
/// identifier counts as absent (Kea never stores one shorter than 2 bytes).
///
/// `fqdn` is hashed in canonical wire form (RFC 4701 section 3.5: lower
/// case, no compression); a missing trailing dot is the same name. Labels
/// must be plain (no backslash escapes), 1 to 63 octets, 255 octets in all.
pub fn dhcid_rdata(
    client_id: Option<&[u8]>,
    htype: u8,
    hwaddr: &[u8],
    fqdn: &str,
) -> Result<Vec<u8>, DhcidError> {
    let wire = canonical_wire(fqdn)?;
    let client_id = client_id.filter(|c| !c.is_empty());

    let htype = [htype];
    // The identifier, in at most two pieces (htype and chaddr).
    let (id_type, id): (u16, [&[u8]; 2]) = match client_id {
        Some(cid) if cid.first() == Some(&RFC4361_TYPE) => {
            let duid = &cid[RFC4361_HEADER_LEN.min(cid.len())..];
            if duid.is_empty() {
                return Err(DhcidError::DuidTooShort { len: cid.len() });
            }
            if duid.len() > MAX_DUID_LEN {
                return Err(DhcidError::DuidTooLong { len: duid.len() });
            }
            (ID_DUID, [duid, &[]])
        }
        Some(cid) => (ID_CLIENT_ID, [cid, &[]]),
        None => {
            if hwaddr.is_empty() {
                return Err(DhcidError::NoIdentifier);
            }
            (ID_HWADDR, [&htype, hwaddr])
        }
    };
    Ok(rdata_of(id_type, &[id[0], id[1], &wire]))
}

/// Computes the DHCID RDATA (35 bytes) for a DHCPv6 client and its FQDN:
/// identifier type 2, SHA-256 over the client's DUID (as the client sent it
/// in its Client Identifier option) and `fqdn` in canonical wire form, as
/// kea-dhcp6 forms it (RFC 4701 section 3.3). `fqdn` as for
/// [`dhcid_rdata`]. An empty DUID is [`DhcidError::NoDuid`]; the length is
/// not checked again (Kea refuses a DUID longer than RFC 8415's 130 bytes).
pub fn dhcid_rdata_duid(duid: &[u8], fqdn: &str) -> Result<Vec<u8>, DhcidError> {
    let wire = canonical_wire(fqdn)?;
    if duid.is_empty() {
        return Err(DhcidError::NoDuid);
    }
    Ok(rdata_of(ID_DUID, &[duid, &wire]))
}

/// The RDATA of identifier type `id_type` over the concatenated `parts`.
fn rdata_of(id_type: u16, parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut rdata = Vec::with_capacity(DHCID_RDATA_LEN);
    rdata.extend_from_slice(&id_type.to_be_bytes());
    rdata.push(DIGEST_SHA256);
    rdata.extend_from_slice(&hasher.finalize());
    rdata
}

/// Lower-case, uncompressed wire form of a textual absolute name.
fn canonical_wire(fqdn: &str) -> Result<Vec<u8>, DhcidError> {
    let body = fqdn.strip_suffix('.').unwrap_or(fqdn);
    if body.is_empty() {
        // Kea refuses an empty name; a DHCID for the root makes no sense either.
        return Err(DhcidError::InvalidName("empty name"));
    }
    if body.contains('\\') {
        return Err(DhcidError::InvalidName("escapes are not supported"));
    }
    let mut wire = Vec::with_capacity(body.len() + 2);
    for label in body.split('.') {
        let len = label.len();
        if len == 0 {
            return Err(DhcidError::InvalidName("empty label"));
        }
        let len_byte = u8::try_from(len)
            .ok()
            .filter(|l| *l <= 63)
            .ok_or(DhcidError::InvalidName("label longer than 63 octets"))?;
        wire.push(len_byte);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > 255 {
        return Err(DhcidError::InvalidName("name longer than 255 octets"));
    }
    Ok(wire)
}

/// TTL of the A, PTR and DHCID records for a lease of `valid_lifetime` seconds,
/// by the rule of the Kea release the hook runs in (`policy.kea`), so that
/// records carry the TTL that Kea's own DDNS would give them:
///
/// - Kea 2.2 and 2.6: RFC 4702 section 5, a third of the lifetime and at
///   least 600 s; with `ddns-ttl-percent` (Kea 2.6's, or the hook's on 2.2)
///   `round(lifetime * percent)` instead, back to the RFC rule when that
///   rounds to 0. `ddns-ttl-min`/`-max` (the hook's on these releases) then
///   clamp the result; when both bind, the maximum wins (the configuration
///   refuses min > max anyway).
/// - Kea 3.0: `ddns-ttl` when set; else `round(lifetime * percent)` with
///   `ddns-ttl-percent` or Kea's 0.33333, raised to `ddns-ttl-min` or else
///   600 s, then lowered to `ddns-ttl-max` when set.
///
/// The arithmetic is done in 64 bits and floating point, so an infinite
/// lifetime (0xffffffff) cannot overflow; the result never exceeds 2^31 - 1
/// (RFC 2181 section 8).
pub fn ttl(policy: &TtlPolicy, valid_lifetime: u32) -> u32 {
    let scaled = |fraction: f64| -> u32 {
        // `as` saturates for floats, so a fraction above 1 cannot wrap.
        (fraction * f64::from(valid_lifetime))
            .round()
            .min(f64::from(u32::MAX)) as u32
    };
    let ttl = match policy.kea {
        KeaRelease::V2_2 | KeaRelease::V2_6 => {
            let rfc_rule = (valid_lifetime / 3).max(MIN_RFC_TTL);
            let base = match policy.percent {
                Some(fraction) if fraction.is_finite() && fraction > 0.0 => {
                    match scaled(fraction) {
                        0 => rfc_rule,
                        ttl => ttl,
                    }
                }
                _ => rfc_rule,
            };
            let raised = policy.min.map_or(base, |min| base.max(min));
            policy.max.map_or(raised, |max| raised.min(max))
        }
        KeaRelease::V3_0 => match policy.fixed {
            Some(fixed) if fixed > 0 => fixed,
            _ => {
                let fraction = policy
                    .percent
                    .filter(|p| p.is_finite() && *p > 0.0)
                    .unwrap_or(KEA_3_DEFAULT_FRACTION);
                let candidate = scaled(fraction);
                let min = policy.min.filter(|m| *m > 0).unwrap_or(MIN_RFC_TTL);
                if candidate < min {
                    min
                } else {
                    match policy.max {
                        Some(max) if max > 0 && candidate > max => max,
                        _ => candidate,
                    }
                }
            }
        },
    };
    ttl.min(MAX_TTL)
}

/// Kea 3.0's stand-in for RFC 4702's third of the lifetime.
const KEA_3_DEFAULT_FRACTION: f64 = 0.33333;

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    // RFC 4701 section 3.6, first example: DHCPv6 client with DUID
    // 00:01:00:06:41:2d:f1:66:01:02:03:04:05:06 and name chi6.example.com.
    // A DHCPv4 client carries the same DUID in an RFC 4361 client id.
    #[test]
    fn rfc4701_example_duid() {
        let duid = [
            0x00, 0x01, 0x00, 0x06, 0x41, 0x2d, 0xf1, 0x66, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ];
        let mut client_id = vec![0xff, 0xde, 0xad, 0xbe, 0xef];
        client_id.extend_from_slice(&duid);
        let rdata = dhcid_rdata(Some(&client_id), 1, &[9; 6], "chi6.example.com").unwrap();
        assert_eq!(
            b64(&rdata),
            "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
        );
    }

    // The same example as a DHCPv6 client sends it: the DUID itself.
    #[test]
    fn rfc4701_example_duid_of_a_dhcpv6_client() {
        let duid = [
            0x00, 0x01, 0x00, 0x06, 0x41, 0x2d, 0xf1, 0x66, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ];
        let rdata = dhcid_rdata_duid(&duid, "chi6.example.com.").unwrap();
        assert_eq!(
            b64(&rdata),
            "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
        );
        assert_eq!(rdata, dhcid_rdata_duid(&duid, "CHI6.example.com").unwrap());
        assert_eq!(
            dhcid_rdata_duid(&[], "chi6.example.com."),
            Err(DhcidError::NoDuid)
        );
        assert!(matches!(
            dhcid_rdata_duid(&duid, ""),
            Err(DhcidError::InvalidName(_))
        ));
    }

    // RFC 4701 section 3.6, second example: client id 01:07:08:09:0a:0b:0c, chi.example.com.
    #[test]
    fn rfc4701_example_client_id() {
        let client_id = [0x01, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c];
        let rdata = dhcid_rdata(Some(&client_id), 1, &[9; 6], "chi.example.com.").unwrap();
        assert_eq!(
            b64(&rdata),
            "AAEBOSD+XR3Os/0LozeXVqcNc7FwCfQdWL3b/NaiUDlW2No="
        );
    }

    // RFC 4701 section 3.6, third example: Ethernet 01:02:03:04:05:06, client.example.com.
    #[test]
    fn rfc4701_example_hwaddr() {
        let mac = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let rdata = dhcid_rdata(None, 1, &mac, "client.example.com").unwrap();
        assert_eq!(
            b64(&rdata),
            "AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY="
        );
        assert_eq!(rdata.len(), DHCID_RDATA_LEN);
    }

    #[test]
    fn name_is_hashed_lower_case_and_trailing_dot_is_optional() {
        let mac = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let a = dhcid_rdata(None, 1, &mac, "Client.EXAMPLE.com.").unwrap();
        let b = dhcid_rdata(None, 1, &mac, "client.example.com").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn empty_client_id_falls_back_to_hwaddr() {
        let mac = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let a = dhcid_rdata(Some(&[]), 1, &mac, "client.example.com").unwrap();
        assert_eq!(b64(&a), "AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY=");
    }

    #[test]
    fn htype_is_part_of_the_identifier() {
        let mac = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let eth = dhcid_rdata(None, 1, &mac, "client.example.com").unwrap();
        let ieee802 = dhcid_rdata(None, 6, &mac, "client.example.com").unwrap();
        assert_ne!(eth, ieee802);
    }

    #[test]
    fn rfc4361_client_id_without_duid_is_refused() {
        for cid in [&[0xff][..], &[0xff, 1, 2, 3, 4][..]] {
            assert_eq!(
                dhcid_rdata(Some(cid), 1, &[1; 6], "a.example."),
                Err(DhcidError::DuidTooShort { len: cid.len() })
            );
        }
        let long = vec![0xff; 5 + 131];
        assert_eq!(
            dhcid_rdata(Some(&long), 1, &[1; 6], "a.example."),
            Err(DhcidError::DuidTooLong { len: 131 })
        );
        let longest = vec![0xff; 5 + 130];
        assert!(dhcid_rdata(Some(&longest), 1, &[1; 6], "a.example.").is_ok());
    }

    #[test]
    fn no_identifier_is_refused() {
        assert_eq!(
            dhcid_rdata(None, 1, &[], "a.example."),
            Err(DhcidError::NoIdentifier)
        );
    }

    #[test]
    fn invalid_names_are_refused() {
        let long_label = format!("{}.example.", "a".repeat(64));
        let long_name = format!("{}example.", "abcdefghi.".repeat(26));
        for name in [
            "",
            ".",
            "a..b.",
            "..",
            "a\\.b.example.",
            &long_label,
            &long_name,
        ] {
            assert!(
                matches!(
                    dhcid_rdata(None, 1, &[1; 6], name),
                    Err(DhcidError::InvalidName(_))
                ),
                "{name:?} accepted"
            );
        }
        let max_label = format!("{}.example.", "a".repeat(63));
        assert!(dhcid_rdata(None, 1, &[1; 6], &max_label).is_ok());
    }

    #[test]
    fn ttl_follows_kea_2_2_without_percent() {
        let p = TtlPolicy::default();
        assert_eq!(ttl(&p, 0), 600);
        assert_eq!(ttl(&p, 1799), 600);
        assert_eq!(ttl(&p, 1800), 600);
        assert_eq!(ttl(&p, 1803), 601);
        assert_eq!(ttl(&p, 3600), 1200);
        assert_eq!(ttl(&p, 86_400), 28_800);
        assert_eq!(ttl(&p, u32::MAX), u32::MAX / 3);
    }

    #[test]
    fn ttl_follows_kea_3_0() {
        let kea3 = TtlPolicy {
            kea: KeaRelease::V3_0,
            ..TtlPolicy::default()
        };
        // 0.33333 of the lifetime, rounded, at least 600.
        assert_eq!(ttl(&kea3, 0), 600);
        assert_eq!(ttl(&kea3, 3600), 1200);
        assert_eq!(ttl(&kea3, 86_400), 28_800);
        // Where 0.33333 and a third differ, Kea 3.0's own constant wins.
        assert_eq!(ttl(&kea3, 1_000_000), 333_330);
        assert_eq!(ttl(&TtlPolicy::default(), 1_000_000), 333_333);
        // ddns-ttl wins over everything.
        let fixed = TtlPolicy {
            fixed: Some(45),
            min: Some(1000),
            ..kea3
        };
        assert_eq!(ttl(&fixed, 86_400), 45);
        // A percentage is raised to 600 s without ddns-ttl-min (Kea 2.6
        // would give 90) and to ddns-ttl-min with it, even below 600.
        let percent = TtlPolicy {
            percent: Some(0.025),
            ..kea3
        };
        assert_eq!(ttl(&percent, 3600), 600);
        let low_min = TtlPolicy {
            min: Some(60),
            ..percent
        };
        assert_eq!(ttl(&low_min, 3600), 90);
        assert_eq!(ttl(&low_min, 1200), 60);
        // ddns-ttl-max lowers a long lease's TTL.
        let max = TtlPolicy {
            max: Some(3000),
            ..kea3
        };
        assert_eq!(ttl(&max, 86_400), 3000);
        assert_eq!(ttl(&max, 3600), 1200);
    }

    #[test]
    fn ttl_with_percent() {
        let p = TtlPolicy {
            percent: Some(0.25),
            ..TtlPolicy::default()
        };
        assert_eq!(ttl(&p, 3600), 900);
        assert_eq!(ttl(&p, 100), 25);
        assert_eq!(ttl(&p, 3), 1); // 0.75 rounds up
        // Rounds to 0: Kea 2.6 falls back to the RFC rule.
        assert_eq!(ttl(&p, 1), 600);
        let whole = TtlPolicy {
            percent: Some(1.0),
            ..TtlPolicy::default()
        };
        assert_eq!(ttl(&whole, u32::MAX), i32::MAX as u32);
        assert_eq!(ttl(&whole, 7200), 7200);
    }

    #[test]
    fn ttl_min_and_max_clamp() {
        let p = TtlPolicy {
            percent: None,
            min: Some(1000),
            max: Some(5000),
            ..TtlPolicy::default()
        };
        assert_eq!(ttl(&p, 60), 1000);
        assert_eq!(ttl(&p, 6000), 2000);
        assert_eq!(ttl(&p, 86_400), 5000);
        let only_max = TtlPolicy {
            max: Some(300),
            ..TtlPolicy::default()
        };
        assert_eq!(ttl(&only_max, 60), 300);
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-zA-Z0-9_-]{1,20}", 1..6).prop_map(|l| l.join("."))
    }

    proptest! {
        #[test]
        fn rdata_shape(
            cid in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
            htype in any::<u8>(),
            hw in prop::collection::vec(any::<u8>(), 1..20),
            name in arb_name(),
            dot in any::<bool>(),
        ) {
            let fqdn = if dot { format!("{name}.") } else { name.clone() };
            match dhcid_rdata(cid.as_deref(), htype, &hw, &fqdn) {
                Ok(rdata) => {
                    prop_assert_eq!(rdata.len(), DHCID_RDATA_LEN);
                    prop_assert_eq!(rdata[2], DIGEST_SHA256);
                    let expected_type = match cid.as_deref() {
                        None | Some([]) => 0,
                        Some([0xff, ..]) => 2,
                        Some(_) => 1,
                    };
                    prop_assert_eq!(u16::from_be_bytes([rdata[0], rdata[1]]), expected_type);
                    let upper = dhcid_rdata(cid.as_deref(), htype, &hw, &fqdn.to_ascii_uppercase());
                    prop_assert_eq!(Some(rdata), upper.ok());
                }
                Err(e) => prop_assert!(
                    matches!(e, DhcidError::DuidTooShort { .. }),
                    "unexpected error {e}"
                ),
            }
        }

        #[test]
        fn rdata_never_panics(
            cid in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
            hw in prop::collection::vec(any::<u8>(), 0..30),
            name in ".{0,300}",
        ) {
            let _ = dhcid_rdata(cid.as_deref(), 1, &hw, &name);
        }

        #[test]
        fn ttl_is_bounded(
            lft in any::<u32>(),
            percent in prop::option::of(0.0001f64..=1.0),
            a in prop::option::of(1u32..=i32::MAX as u32),
            b in prop::option::of(1u32..=i32::MAX as u32),
        ) {
            let (min, max) = match (a, b) {
                (Some(x), Some(y)) => (Some(x.min(y)), Some(x.max(y))),
                other => other,
            };
            let p = TtlPolicy { percent, min, max, ..TtlPolicy::default() };
            let t = ttl(&p, lft);
            prop_assert!(t >= 1);
            prop_assert!(t <= i32::MAX as u32);
            if let Some(min) = min { prop_assert!(t >= min); }
            if let Some(max) = max { prop_assert!(t <= max); }
            if percent.is_none() && min.is_none() && max.is_none() {
                prop_assert_eq!(t, if lft < 1800 { 600 } else { lft / 3 });
            }
        }
    }
}
