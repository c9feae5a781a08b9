//! The hook's `parameters` map, as an operator (or a broken deployment
//! tool) writes it. `Config::from_json` must refuse bad input with an error,
//! never panic, and whatever it accepts must respect the documented limits.
//! Half the inputs are raw text; the other half replace one parameter of a
//! valid configuration, so the validation of each parameter is reached.
#![no_main]

use ddns_engine::config::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Where the fuzzed value goes: a JSON pointer into the base configuration.
const SLOTS: [&str; 22] = [
    "/journal-dir",
    "/tsig-keys",
    "/tsig-keys/0",
    "/tsig-keys/0/name",
    "/tsig-keys/0/algorithm",
    "/tsig-keys/0/secret",
    "/tsig-keys/0/digest-bits",
    "/forward-ddns",
    "/forward-ddns/ddns-domains/0",
    "/forward-ddns/ddns-domains/0/name",
    "/forward-ddns/ddns-domains/0/key-name",
    "/forward-ddns/ddns-domains/0/dns-servers",
    "/forward-ddns/ddns-domains/0/dns-servers/0/ip-address",
    "/forward-ddns/ddns-domains/0/dns-servers/0/port",
    "/reverse-ddns/ddns-domains/0/name",
    "/ddns-ttl-percent",
    "/ddns-ttl-min",
    "/ddns-ttl-max",
    "/dns-server-timeout",
    "/dns-transport",
    "/sender-threads",
    "/queue-capacity",
];

fn base() -> Value {
    let server = json!([{"ip-address": "127.0.0.1", "port": 53}]);
    json!({
        "journal-dir": "/var/lib/kea/leasedns",
        "tsig-keys": [{"name": "ddns-key", "algorithm": "hmac-sha256",
                        "secret": "LSWXnfkKZjdPJI5QxlpnfQ=="}],
        "forward-ddns": {"ddns-domains": [{"name": "lan.example.", "key-name": "ddns-key",
                                           "dns-servers": server}]},
        "reverse-ddns": {"ddns-domains": [{"name": "77.10.in-addr.arpa.", "key-name": "ddns-key",
                                           "dns-servers": server}]}
    })
}

fn check(text: &str) {
    let Ok(cfg) = Config::from_json(text) else {
        return;
    };
    assert!(
        (1..=256).contains(&cfg.sender_threads),
        "sender-threads {} accepted",
        cfg.sender_threads
    );
    assert!(
        (16..=16 * 1024 * 1024).contains(&cfg.queue_capacity),
        "queue-capacity {} accepted",
        cfg.queue_capacity
    );
    assert!(
        !cfg.forward.is_empty() || !cfg.reverse.is_empty(),
        "a configuration without any zone accepted"
    );
    for zone in cfg.forward.iter().chain(&cfg.reverse) {
        assert!(!zone.servers.is_empty(), "a zone without servers accepted");
        if let Some(key) = zone.key {
            assert!(key < cfg.tsig_keys.len(), "zone key index out of range");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if mode & 1 == 0 {
        check(text);
        return;
    }
    let value = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()));
    let mut cfg = base();
    if let Some(slot) = cfg.pointer_mut(SLOTS[usize::from(mode >> 1) % SLOTS.len()]) {
        *slot = value;
    }
    check(&cfg.to_string());
});
