//! Client names come straight from DHCP packets (option 81 flags and name,
//! option 12). Whatever a client sends, `naming::decide` must not panic, and
//! a name it publishes must be a well-formed absolute name inside a
//! configured forward zone (never an apex), made only of letters, digits and
//! hyphens when the default `hostname-char-set` applies, and the option 81
//! reply built from it must be well formed.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use ddns_engine::config::Config;
use ddns_engine::naming::{ClientFqdn, ClientNames, NameOutcome, decide};
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 2] = ["lan.example.", "other.test."];
const MODES: [&str; 4] = ["never", "always", "when-present", "when-not-present"];

/// Every combination of the parameters that steer naming: replace mode,
/// qualifying suffix set or not, both overrides, default or no sanitising.
/// Index bits: 0-1 mode, 2 suffix, 3 override-client-update,
/// 4 override-no-update, 5 sanitising off.
fn configs() -> &'static Vec<Config> {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        (0..64u8)
            .map(|i| {
                let server = r#"[{"ip-address": "127.0.0.1", "port": 53}]"#;
                let mut text = format!(
                    r#"{{"journal-dir": "/nonexistent",
                        "forward-ddns": {{"ddns-domains": [
                            {{"name": "{}", "dns-servers": {server}}},
                            {{"name": "{}", "dns-servers": {server}}}]}},
                        "reverse-ddns": {{"ddns-domains": [{{"name": "10.in-addr.arpa.", "dns-servers": {server}}}]}},
                        "ddns-replace-client-name": "{}",
                        "ddns-generated-prefix": "host",
                        "ddns-override-client-update": {},
                        "ddns-override-no-update": {}"#,
                    ZONES[0],
                    ZONES[1],
                    MODES[usize::from(i & 3)],
                    i & 8 != 0,
                    i & 16 != 0
                );
                if i & 4 != 0 {
                    text.push_str(r#", "ddns-qualifying-suffix": "lan.example.""#);
                }
                if i & 32 != 0 {
                    text.push_str(r#", "hostname-char-set": """#);
                }
                text.push('}');
                Config::from_json(&text).expect("fuzz target's own configuration is valid")
            })
            .collect()
    })
}

fuzz_target!(|input: &[u8]| {
    // [config index, which options, option 81 flags, split, addr x4, data...]
    let [index, which, flags, split, a, b, c, d, data @ ..] = input else {
        return;
    };
    let cfg = &configs()[usize::from(*index) % 64];
    let split = usize::from(*split).min(data.len());
    let (fqdn_name, hostname) = data.split_at(split);
    let client = ClientNames {
        fqdn: (which & 1 != 0).then(|| ClientFqdn {
            flags: *flags,
            name: fqdn_name.to_vec(),
        }),
        hostname: (which & 2 != 0).then(|| hostname.to_vec()),
    };
    let addr = Ipv4Addr::new(*a, *b, *c, *d);
    let outcome = decide(&cfg.naming, &cfg.forward, &client, addr);
    assert_eq!(
        outcome,
        decide(&cfg.naming, &cfg.forward, &client, addr),
        "decide is deterministic"
    );
    let NameOutcome::Publish(decision) = outcome else {
        return;
    };
    let fqdn = &decision.fqdn;
    assert!(fqdn.ends_with('.'), "absolute: {fqdn:?}");
    assert!(
        fqdn.len() <= 254,
        "at most 253 characters and the root: {fqdn:?}"
    );
    assert_eq!(*fqdn, fqdn.to_ascii_lowercase(), "lower case: {fqdn:?}");
    let body = &fqdn[..fqdn.len() - 1];
    for label in body.split('.') {
        assert!(
            !label.is_empty() && label.len() <= 63,
            "label length in {fqdn:?}"
        );
        if index & 32 == 0 {
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "sanitised label {label:?} in {fqdn:?}"
            );
        }
    }
    if decision.forward {
        assert!(
            ZONES
                .iter()
                .any(|zone| fqdn.len() > zone.len() && fqdn.ends_with(&format!(".{zone}"))),
            "inside a forward zone and not its apex: {fqdn:?}"
        );
    }
    if let Some(reply) = &decision.reply {
        let data = reply.to_option_data();
        assert!(data.len() >= 3);
        if reply.flags & 0x04 != 0 {
            // Wire form: length-prefixed labels ending with the root.
            let mut at = 3;
            loop {
                let len = usize::from(*data.get(at).expect("wire name ends with the root"));
                if len == 0 {
                    assert_eq!(at + 1, data.len(), "nothing after the root label");
                    break;
                }
                assert!(len <= 63, "wire label too long in {data:?}");
                at += 1 + len;
            }
        }
    }
});
