//! Fixtures for tests of the update engine, shared by the crate's own unit
//! tests and the real-knotd tests in `tests/tests/e2e/updates.rs` (feature
//! `test-support`): the zones `lan.example.`, `77.10.in-addr.arpa.` and
//! `7.7.d.f.ip6.arpa.`, one TSIG key per algorithm, changes and
//! configurations built from them.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::change::{Change, ChangeKind, LeaseRecords};
use crate::config::{
    Config, ConflictMode, DdnsDomain, Family, JournalSync, ReconcilePolicy, Transport,
    TsigAlgorithm, TsigKey, TtlPolicy,
};

pub const DHCID_A: &[u8] = &[0, 1, 1, 0xaa, 0xbb, 0xcc, 0xdd];
pub const DHCID_B: &[u8] = &[0, 1, 1, 0x11, 0x22, 0x33, 0x44];
pub const FQDN: &str = "laptop.lan.example.";
pub const REV: &str = "5.0.77.10.in-addr.arpa.";
/// The reverse zone of [`ADDR6`]'s /16, nibble-aligned.
pub const REV6_ZONE: &str = "7.7.d.f.ip6.arpa.";
/// A DHCPv6 address in [`REV6_ZONE`] (the V6 counterpart of 10.77.0.5).
pub const ADDR6: [u16; 8] = [0xfd77, 0, 0, 0, 0, 0, 0, 5];
/// The reverse name of [`ADDR6`].
pub const REV6: &str = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa.";

/// Every TSIG algorithm with its name in Knot's and Kea's configuration.
pub const ALGORITHMS: [(TsigAlgorithm, &str); 6] = [
    (TsigAlgorithm::HmacMd5, "hmac-md5"),
    (TsigAlgorithm::HmacSha1, "hmac-sha1"),
    (TsigAlgorithm::HmacSha224, "hmac-sha224"),
    (TsigAlgorithm::HmacSha256, "hmac-sha256"),
    (TsigAlgorithm::HmacSha384, "hmac-sha384"),
    (TsigAlgorithm::HmacSha512, "hmac-sha512"),
];
/// Key index of hmac-sha256 in [`keys`].
pub const SHA256: usize = 3;

pub fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// The secret of the key for algorithm `alg` (its configuration name).
pub fn secret(alg: &str) -> Vec<u8> {
    format!("leasedns-test-secret-{alg}").into_bytes()
}

/// Keys 0..6 are the six algorithms, `k-<algorithm>.`.
pub fn keys() -> Vec<TsigKey> {
    ALGORITHMS
        .iter()
        .map(|(algorithm, label)| TsigKey {
            name: name(&format!("k-{label}.")),
            algorithm: *algorithm,
            secret: secret(label),
        })
        .collect()
}

/// A change of both directions with TTL 1200, in check-with-dhcid (Kea's
/// default; [`in_mode`] for another). The sender follows the change's mode,
/// not the configuration's. `addr`: `[u8; 4]` for an A change, `[u16; 8]`
/// or an address for either family.
pub fn change(kind: ChangeKind, fqdn: &str, addr: impl Into<IpAddr>, dhcid: &[u8]) -> Change {
    Change {
        kind,
        records: LeaseRecords {
            fqdn: fqdn.into(),
            addr: addr.into(),
            dhcid: dhcid.to_vec(),
            ttl: 1200,
            forward: true,
            reverse: true,
            mode: ConflictMode::CheckWithDhcid,
        },
    }
}

/// `change` to be resolved in `mode`.
pub fn in_mode(mode: ConflictMode, mut change: Change) -> Change {
    change.records.mode = mode;
    change
}

/// `n` changes `b<i>.lan.example.` -> 10.77.`octet`.(i + 1).
pub fn numbered(kind: ChangeKind, n: usize, octet: u8, dhcid: &[u8]) -> Vec<Change> {
    (0..n)
        .map(|i| {
            change(
                kind,
                &format!("b{i}.lan.example."),
                [10, 77, octet, i as u8 + 1],
                dhcid,
            )
        })
        .collect()
}

pub fn domain(zone: &str, key: Option<usize>, servers: Vec<SocketAddr>) -> DdnsDomain {
    DdnsDomain {
        name: name(zone),
        key,
        servers,
        server_keys: Vec::new(),
    }
}

/// A configuration with [`keys`], the given zones and conflict mode (the
/// configuration's mode is no longer what the sender uses: see [`change`]).
pub fn config(forward: Vec<DdnsDomain>, reverse: Vec<DdnsDomain>) -> Config {
    Config {
        kea: crate::config::KeaRelease::default(),
        journal_dir: "/nonexistent".into(),
        tsig_keys: keys(),
        forward,
        reverse,
        ttl: TtlPolicy::default(),
        dns_server_timeout: Duration::from_secs(2),
        transport: Transport::Udp,
        sender_threads: 1,
        queue_capacity: 16,
        max_changes_per_update: 64,
        journal_sync: JournalSync::Batch,
        reconcile: ReconcilePolicy::default(),
        family: Family::V4,
    }
}

/// `lan.example.` and `77.10.in-addr.arpa.` on `servers`, signed with key `key`.
pub fn zones_on(key: usize, servers: Vec<SocketAddr>) -> Config {
    config(
        vec![domain("lan.example.", Some(key), servers.clone())],
        vec![domain("77.10.in-addr.arpa.", Some(key), servers)],
    )
}
