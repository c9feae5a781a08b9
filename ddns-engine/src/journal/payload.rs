//! How an entry's payload encodes a [`Change`], per segment version.
//!
//! * Version 3: the postcard encoding of [`Change`] as it is now
//!   (`LeaseRecords::addr` an `IpAddr`: its variant index, then 4 or 16
//!   bytes).
//! * Version 2: the same with an `Ipv4Addr` (its 4 bytes, no variant);
//!   [`ChangeV2`] spells that layout out, frozen.
//! * Version 1 (release 0.1.0): version 2 without the mode; [`ChangeV1`]
//!   spells that layout out, frozen, and the mode is inferred on reading.
//!
//! A change to `Change`'s fields is a new version: freeze the current layout
//! here as `ChangeV3`, bump `format::VERSION` and add a golden segment.

use std::net::Ipv4Addr;

use serde::Deserialize;

use super::JournalError;
use crate::change::{Change, ChangeKind, LeaseRecords};
use crate::config::ConflictMode;

const V1: u32 = 1;
const V2: u32 = 2;

/// A change in the current version's encoding.
pub(super) fn encode(change: &Change) -> Result<Vec<u8>, JournalError> {
    postcard::to_stdvec(change).map_err(JournalError::Encode)
}

/// A change from a segment of `version` (one `format::parse_header` accepted).
pub(super) fn decode(version: u32, payload: &[u8]) -> Result<Change, JournalError> {
    match version {
        V1 => whole::<ChangeV1>(payload).map(ChangeV1::upgrade),
        V2 => whole::<ChangeV2>(payload).map(ChangeV2::upgrade),
        _ => whole(payload),
    }
    .map_err(JournalError::Decode)
}

/// A payload is one value: bytes left over mean another version's layout.
fn whole<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, postcard::Error> {
    match postcard::take_from_bytes(payload)? {
        (value, []) => Ok(value),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

/// `Change` as release 0.1.0 wrote it.
#[derive(Deserialize)]
struct ChangeV1 {
    kind: ChangeKind,
    records: LeaseRecordsV1,
}

/// `LeaseRecords` as release 0.1.0 wrote it: no mode.
#[derive(Deserialize)]
struct LeaseRecordsV1 {
    fqdn: String,
    addr: Ipv4Addr,
    dhcid: Vec<u8>,
    ttl: u32,
    forward: bool,
    reverse: bool,
}

impl ChangeV1 {
    /// Release 0.1.0 had one mode for the whole server, its hook parameter
    /// `ddns-conflict-resolution-mode` (any of the four; Kea 2.2's
    /// `ddns-use-conflict-resolution` false meant no-check-with-dhcid), and
    /// did not write it into the change. The change itself tells part of
    /// it: its DHCID is empty exactly in no-check-without-dhcid (0.1.0
    /// computed none there, and its sender refused an empty one in every
    /// other mode). A DHCID means one of the other three, which the entry
    /// cannot tell apart; check-with-dhcid is taken, Kea's default and the
    /// strictest: a change written under no-check-with-dhcid or
    /// check-exists-with-dhcid then takes over no name whose DHCID is not
    /// its own (it ends as a conflict instead of overwriting), and the
    /// lease's next renewal or a reconciliation, in the subnet's current
    /// mode, publishes it. Only entries pending across the upgrade are
    /// concerned.
    fn upgrade(self) -> Change {
        let r = self.records;
        let mode = if r.dhcid.is_empty() {
            ConflictMode::NoCheckWithoutDhcid
        } else {
            ConflictMode::CheckWithDhcid
        };
        Change {
            kind: self.kind,
            records: LeaseRecords {
                fqdn: r.fqdn,
                addr: r.addr.into(),
                dhcid: r.dhcid,
                ttl: r.ttl,
                forward: r.forward,
                reverse: r.reverse,
                mode,
            },
        }
    }
}

/// `Change` as version 2 wrote it (releases before DHCPv6).
#[derive(Deserialize)]
struct ChangeV2 {
    kind: ChangeKind,
    records: LeaseRecordsV2,
}

/// `LeaseRecords` as version 2 wrote it: an IPv4 address.
#[derive(Deserialize)]
struct LeaseRecordsV2 {
    fqdn: String,
    addr: Ipv4Addr,
    dhcid: Vec<u8>,
    ttl: u32,
    forward: bool,
    reverse: bool,
    mode: ConflictMode,
}

impl ChangeV2 {
    /// Version 2 only ever held DHCPv4 changes.
    fn upgrade(self) -> Change {
        let r = self.records;
        Change {
            kind: self.kind,
            records: LeaseRecords {
                fqdn: r.fqdn,
                addr: r.addr.into(),
                dhcid: r.dhcid,
                ttl: r.ttl,
                forward: r.forward,
                reverse: r.reverse,
                mode: r.mode,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;

    fn change(addr: impl Into<IpAddr>, dhcid: &[u8], mode: ConflictMode) -> Change {
        Change::add(LeaseRecords {
            fqdn: "a.lan.example.".into(),
            addr: addr.into(),
            dhcid: dhcid.to_vec(),
            ttl: 600,
            forward: true,
            reverse: false,
            mode,
        })
    }

    const V4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);

    /// Version 2 bytes: version 3 bytes of a V4 change without the
    /// address's variant index (0, right after the name).
    fn v2_of(v3: &[u8]) -> Vec<u8> {
        let variant = 1 + 1 + "a.lan.example.".len();
        assert_eq!(v3[variant], 0, "IpAddr::V4's variant index");
        assert_eq!(v3[variant + 1..variant + 5], V4.octets());
        [&v3[..variant], &v3[variant + 1..]].concat()
    }

    #[test]
    fn version_3_is_version_2_with_the_address_family() {
        let c = change(V4, &[0, 1, 1, 7], ConflictMode::CheckExistsWithDhcid);
        let v3 = encode(&c).unwrap();
        assert_eq!(decode(3, &v3).unwrap(), c);
        let v2 = v2_of(&v3);
        assert_eq!(decode(V2, &v2).unwrap(), c);
        assert!(decode(V2, &v3).is_err());
        assert!(decode(3, &v2).is_err());
        let v6 = change(
            Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 5),
            &[0, 2, 1, 9],
            ConflictMode::CheckWithDhcid,
        );
        let bytes = encode(&v6).unwrap();
        assert_eq!(bytes.len(), v3.len() + 12);
        assert_eq!(decode(3, &bytes).unwrap(), v6);
        // A V6 change is no version 2 change.
        assert!(decode(V2, &bytes).is_err());
    }

    #[test]
    fn version_2_is_version_1_with_the_mode_appended() {
        let c = change(V4, &[0, 1, 1, 7], ConflictMode::CheckExistsWithDhcid);
        let v2 = v2_of(&encode(&c).unwrap());
        // The mode is the last field: its variant index, one byte.
        assert_eq!(v2.last(), Some(&2));
        assert_eq!(decode(V2, &v2).unwrap(), c);
        let v1 = &v2[..v2.len() - 1];
        assert_eq!(
            decode(V1, v1).unwrap(),
            change(V4, &[0, 1, 1, 7], ConflictMode::CheckWithDhcid)
        );
        // Version 2 bytes do not pass as version 1 or the other way round.
        assert!(decode(V1, &v2).is_err());
        assert!(decode(V2, v1).is_err());
    }

    #[test]
    fn version_1_without_dhcid_was_no_check_without_dhcid() {
        let v2 = v2_of(&encode(&change(V4, &[], ConflictMode::NoCheckWithoutDhcid)).unwrap());
        assert_eq!(
            decode(V1, &v2[..v2.len() - 1]).unwrap().records.mode,
            ConflictMode::NoCheckWithoutDhcid
        );
    }
}
