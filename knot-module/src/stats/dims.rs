//! The small integer dimensions every counter is indexed by, and their
//! names. Mapping a query to indexes is a couple of compares and a table
//! load, so the query path never hashes or allocates for these.

/// Query types with their own index; everything else is `OTHER`.
const TYPES: [(u16, &str); 22] = [
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (35, "NAPTR"),
    (43, "DS"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (52, "TLSA"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (255, "ANY"),
    (251, "IXFR"),
    (252, "AXFR"),
    (257, "CAA"),
];
pub(crate) const TYPE_COUNT: usize = TYPES.len() + 1;
const TYPE_OTHER: u8 = TYPES.len() as u8;

/// qtype -> index for qtype < 256; built at compile time.
const TYPE_TABLE: [u8; 256] = {
    let mut table = [TYPE_OTHER; 256];
    let mut i = 0;
    while i < TYPES.len() {
        if TYPES[i].0 < 256 {
            table[TYPES[i].0 as usize] = i as u8;
        }
        i += 1;
    }
    table
};

pub(crate) fn type_index(qtype: u16) -> usize {
    match qtype {
        0..=255 => usize::from(TYPE_TABLE[usize::from(qtype)]),
        257 => 21,
        _ => usize::from(TYPE_OTHER),
    }
}

pub(crate) fn type_name(index: usize) -> &'static str {
    TYPES.get(index).map_or("OTHER", |(_, name)| name)
}

/// RCODEs 0..=10 by number, then BADVERS (16) and everything else. The
/// names are the IANA mnemonics, as kdig and knotc print them.
const RCODES: [&str; 12] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "BADVERS",
];
pub(crate) const RCODE_COUNT: usize = RCODES.len() + 1;

pub(crate) fn rcode_index(rcode: u16) -> usize {
    match rcode {
        0..=10 => usize::from(rcode),
        16 => 11,
        _ => 12,
    }
}

pub(crate) fn rcode_name(index: usize) -> &'static str {
    RCODES.get(index).copied().unwrap_or("OTHER")
}

/// The transport a request came over. The adapter maps knotd's
/// `knotd_query_proto_t` to this; DNS over TLS exists from Knot 3.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Transport {
    Udp = 0,
    Tcp = 1,
    /// DNS over QUIC (RFC 9250): `listen-quic` (3.3+) or XDP with QUIC.
    Quic = 2,
    /// DNS over TLS (RFC 7858): `listen-tls` (3.4+).
    Tls = 3,
}

/// Transport and address family, indexed by [`proto_index`]. The order
/// is part of the `knotc stats` output (`protocol[...]` indexes): new
/// transports go at the end.
pub(crate) const PROTOS: [&str; 8] = [
    "udp4", "udp6", "tcp4", "tcp6", "quic4", "quic6", "tls4", "tls6",
];
pub(crate) const PROTO_COUNT: usize = PROTOS.len();

#[inline(always)]
pub(crate) fn proto_index(transport: Transport, ipv6: bool) -> usize {
    usize::from(transport as u8) * 2 + usize::from(ipv6)
}

/// knotd's `knotd_query_type_t`, by value, renamed the way mod-stats
/// names its operations.
pub(crate) const OPERATIONS: [&str; 6] = ["invalid", "query", "axfr", "ixfr", "notify", "update"];
pub(crate) const OP_COUNT: usize = OPERATIONS.len();
pub(crate) const OP_INVALID: usize = 0;
pub(crate) const OP_AXFR: usize = 2;
pub(crate) const OP_IXFR: usize = 3;
pub(crate) const OP_UPDATE: usize = 5;

/// Operation index of a `knotd_query_type_t` value; unknown values are
/// counted as invalid rather than trusted.
pub(crate) fn op_index(query_type: u32) -> usize {
    usize::try_from(query_type)
        .ok()
        .filter(|&op| op < OP_COUNT)
        .unwrap_or(OP_INVALID)
}

/// Header and EDNS flags counted per query.
pub(crate) const FLAGS: [&str; 3] = ["edns", "do", "tc"];
pub(crate) const FLAG_EDNS: usize = 0;
pub(crate) const FLAG_DO: usize = 1;
pub(crate) const FLAG_TC: usize = 2;

/// Upper bounds (bytes) of the response-size histogram.
pub(crate) const SIZE_BOUNDS: [u64; 9] = [64, 128, 256, 512, 1232, 1500, 4096, 16384, 65535];

/// `bucket_index(&SIZE_BOUNDS, size)` as a compare tree the compiler
/// lays out at build time (per request, about half the instructions of
/// the generic binary search).
pub(crate) fn size_bucket(size: u64) -> usize {
    match size {
        0..=64 => 0,
        65..=128 => 1,
        129..=256 => 2,
        257..=512 => 3,
        513..=1232 => 4,
        1233..=1500 => 5,
        1501..=4096 => 6,
        4097..=16384 => 7,
        16385..=65535 => 8,
        _ => 9,
    }
}

/// Index of the first bound >= `value`, or the +Inf bucket: the reference
/// that the query path's lookups (`size_bucket`, the latency table in
/// `instance`) are tested against.
#[cfg(test)]
pub(crate) fn bucket_index(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&bound| bound < value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_maps_to_its_own_name() {
        for (qtype, name) in TYPES {
            assert_eq!(type_name(type_index(qtype)), name, "qtype {qtype}");
        }
        assert_eq!(type_name(type_index(99)), "OTHER");
        assert_eq!(type_name(type_index(65280)), "OTHER");
        assert!(type_index(u16::MAX) < TYPE_COUNT);
    }

    #[test]
    fn rcodes_map_to_iana_names() {
        assert_eq!(rcode_name(rcode_index(0)), "NOERROR");
        assert_eq!(rcode_name(rcode_index(3)), "NXDOMAIN");
        assert_eq!(rcode_name(rcode_index(5)), "REFUSED");
        assert_eq!(rcode_name(rcode_index(9)), "NOTAUTH");
        assert_eq!(rcode_name(rcode_index(16)), "BADVERS");
        assert_eq!(rcode_name(rcode_index(23)), "OTHER");
        assert!(rcode_index(u16::MAX) < RCODE_COUNT);
    }

    #[test]
    fn protos_and_ops() {
        use Transport::{Quic, Tcp, Tls, Udp};
        let mut seen = Vec::new();
        for (transport, name) in [(Udp, "udp"), (Tcp, "tcp"), (Quic, "quic"), (Tls, "tls")] {
            for (ipv6, family) in [(false, "4"), (true, "6")] {
                let index = proto_index(transport, ipv6);
                assert_eq!(PROTOS[index], format!("{name}{family}"));
                seen.push(index);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..PROTO_COUNT).collect::<Vec<_>>(), "one index each");
        // knotc stats kept these indexes before QUIC and TLS were added.
        assert_eq!(PROTOS[..4], ["udp4", "udp6", "tcp4", "tcp6"]);
        assert_eq!(OPERATIONS[op_index(1)], "query");
        assert_eq!(OPERATIONS[op_index(5)], "update");
        assert_eq!(op_index(77), OP_INVALID);
    }

    #[test]
    fn size_buckets_match_the_bounds() {
        for size in (0..70_000).chain([u64::MAX]) {
            assert_eq!(
                size_bucket(size),
                bucket_index(&SIZE_BOUNDS, size),
                "{size}"
            );
        }
    }

    #[test]
    fn buckets_are_upper_inclusive() {
        let bounds = [10, 20, 30];
        assert_eq!(bucket_index(&bounds, 0), 0);
        assert_eq!(bucket_index(&bounds, 10), 0);
        assert_eq!(bucket_index(&bounds, 11), 1);
        assert_eq!(bucket_index(&bounds, 30), 2);
        assert_eq!(bucket_index(&bounds, 31), 3);
    }
}
