//! Whatever arrives on the update socket: `judge` classifies it against the
//! pending request (foreign, bad, truncated, an answer) and must never panic,
//! and never accept an unsigned or wrongly signed reply to a signed request.
#![no_main]

use std::str::FromStr;
use std::sync::OnceLock;

use ddns_engine::config::{TsigAlgorithm, TsigKey};
use ddns_engine::dns::{Judged, Pending, Rcode, TsigSigner, judge, unix_now};
use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use libfuzzer_sys::fuzz_target;

fn update() -> Message {
    let mut m = Message::new(0, MessageType::Query, OpCode::Update);
    let mut zone = Query::query(
        Name::from_str("lan.example.").expect("static name"),
        RecordType::SOA,
    );
    zone.set_query_class(DNSClass::IN);
    m.add_zone(zone);
    m
}

/// One signed and one unsigned request, built once: `Pending::new` draws a
/// random id, which must not make runs differ.
fn pendings() -> &'static (Pending, Pending) {
    static PENDINGS: OnceLock<(Pending, Pending)> = OnceLock::new();
    PENDINGS.get_or_init(|| {
        let signer = TsigSigner::new(&TsigKey {
            name: Name::from_str("k.example.").expect("static name"),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: b"fuzzing secret".to_vec(),
        });
        (
            Pending::new(&update(), Some(&signer)).expect("signed request"),
            Pending::new(&update(), None).expect("unsigned request"),
        )
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, reply)) = input.split_first() else {
        return;
    };
    let (signed, unsigned) = pendings();
    let pending = if mode & 1 == 0 { signed } else { unsigned };
    let mut reply = reply.to_vec();
    // Give most inputs our id, or nearly all would stop at the id check.
    if mode & 2 == 0 && reply.len() >= 2 {
        reply[..2].copy_from_slice(&pending.id.to_be_bytes());
    }
    let verdict = judge(&reply, pending, unix_now());
    if std::ptr::eq(pending, signed)
        && let Judged::Answer { rcode, message } = &verdict
    {
        // A reply to a signed request is only an answer when its MAC
        // verifies (out of reach for random bytes) or when it is an unsigned
        // BADSIG/BADKEY refusal (RFC 8945 section 5.3.2). Anything else
        // accepted would be a forged answer.
        assert!(
            matches!(
                rcode,
                Rcode::NotAuth {
                    tsig_error: Some(16 | 17)
                }
            ),
            "forged reply accepted as {rcode:?}: {message:?}"
        );
    }
});
