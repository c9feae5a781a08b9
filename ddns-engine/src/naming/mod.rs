//! Decides which name a lease gets in DNS, and which directions are updated.
//!
//! kea-dhcp4's own DDNS is off when leasedns runs, so the hook makes the
//! decisions Kea 2.2 would make in `Dhcpv4Srv::processClientFqdnOption`,
//! `processHostnameOption` and `D2ClientMgr::adjustFqdnFlags`,
//! `adjustDomainName`, `qualifyName` and `generateFqdn`:
//!
//! - The Client FQDN option (81) wins over the Host Name option (12).
//! - Option 81 flags (RFC 4702 section 2.1): the server's S and N follow the
//!   client's unless `ddns-override-client-update` (client S=0) or
//!   `ddns-override-no-update` (client N=1) say otherwise; O is set when the
//!   server's S differs from the client's; E is echoed. The forward zone is
//!   updated when the server's S is 1, the reverse zone when its N is 0, as
//!   in Kea's `getUpdateDirections`. S=1 with N=1 is invalid: Kea drops name
//!   processing, we reject.
//! - Option 12 alone: both directions are updated.
//! - `ddns-replace-client-name`: `always` replaces any client name with a
//!   generated one and also names clients that sent none; `when-present`
//!   replaces only names that were sent; `when-not-present` names clients
//!   that sent none; `never` leaves things to the client. As in Kea, an
//!   option 81 with an empty name, and an option 12 of just ".", are given a
//!   generated name in every mode.
//! - Generated names are `<prefix>-a-b-c-d` qualified with the suffix.
//! - Option 81 names without the root label (wire form, E=1) or without a
//!   trailing dot (ASCII form, E=0) are partial and get the qualifying suffix
//!   unless they already end with it (Kea's `qualifyName`). An option 12 name
//!   of one label is qualified; one of several labels is taken as absolute,
//!   as Kea counts labels to tell the two apart. Without a suffix a partial
//!   name is taken as absolute.
//! - `hostname-char-set` / `hostname-char-replacement` are applied per label
//!   (as Kea does for option 81; Kea applies them to option 12's whole text,
//!   which is the same for the default set, since it keeps dots), then
//!   everything is lower-cased.
//!
//! Where we are stricter than Kea, on purpose, because a hostile client must
//! not be able to write arbitrary data into the zone:
//! - After sanitising, every label must be 1 to 63 octets of letters,
//!   digits, `-` or `_`, and the name at most 255 octets in wire form.
//!   Non-ASCII and binary bytes (NULs included) that survive the char set are
//!   refused, never passed on. Raw names above 1024 octets are not looked at.
//! - A client name that is unusable after sanitising counts as "no name"
//!   under `when-not-present`, so the client gets a generated name; under
//!   `never` the request is rejected. (Kea would pass such a name on and
//!   kea-dhcp-ddns would then fail on it.)
//! - A name whose forward update is due must lie strictly below one of the
//!   configured forward zones (longest match): names outside every zone and
//!   zone apexes are rejected, where kea-dhcp-ddns would drop the whole
//!   request ("no forward match"). When only the reverse zone is updated
//!   (client S=0) the name is only a PTR target and the zone is the
//!   client's business, so no zone check is made, as in Kea.
//! - With no forward zones configured at all, forward updates are turned
//!   off and reverse updates still happen, like kea-dhcp-ddns with an empty
//!   `forward-ddns`.
//! - An empty option 12 counts as absent (Kea ignores it, which skips name
//!   generation even under `when-not-present`).
//!
//! Host reservations with a hostname are not handled here: the hook does not
//! see them.

/// The DHCID of a client and name (RFC 4701), and record TTLs.
pub mod dhcid;

use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use crate::config::{DdnsDomain, NamingPolicy, ReplaceClientName, is_label_byte};

/// RFC 4702 flag: the server should perform the A update.
pub const FLAG_S: u8 = 0x01;
/// RFC 4702 flag: the server overrode the client's S.
pub const FLAG_O: u8 = 0x02;
/// RFC 4702 flag: the name is in canonical wire format.
pub const FLAG_E: u8 = 0x04;
/// RFC 4702 flag: the server should perform no updates.
pub const FLAG_N: u8 = 0x08;

/// RFC 4702 section 2.2: servers set RCODE1 and RCODE2 to 255.
const REPLY_RCODE: u8 = 255;
/// Bigger raw names are refused without being sanitised.
const MAX_RAW_NAME: usize = 1024;
const MAX_LABEL: usize = 63;
const MAX_WIRE_NAME: usize = 255;
/// How much of a hostile name goes into a rejection reason.
const REASON_SNIPPET: usize = 64;

/// The Client FQDN option (81) as the client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFqdn {
    /// S=0x01, O=0x02, E=0x04, N=0x08; other bits are ignored.
    pub flags: u8,
    /// The raw domain-name field (after flags and the two RCODEs).
    pub name: Vec<u8>,
}

/// The naming options of a client's request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientNames {
    pub fqdn: Option<ClientFqdn>,
    /// The Host Name option (12), raw bytes.
    pub hostname: Option<Vec<u8>>,
}

/// The name to publish and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameDecision {
    /// Absolute, lower case, with the trailing dot.
    pub fqdn: String,
    /// Update the forward zone (A + DHCID).
    pub forward: bool,
    /// Update the reverse zone (PTR + DHCID).
    pub reverse: bool,
    /// Option 81 for the response; `None` when the client sent no option 81.
    pub reply: Option<ReplyFqdn>,
}

/// Option 81 for the server's response (RFC 4702 section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyFqdn {
    /// Server S, O and N, and E as the client sent it.
    pub flags: u8,
    /// Absolute, lower case, with the trailing dot.
    pub name: String,
}

impl ReplyFqdn {
    /// The option's payload: flags, RCODE1 and RCODE2 (255), then the name in
    /// wire form when E is set and as ASCII with the trailing dot otherwise
    /// (RFC 4702 section 2.3: answer in the client's encoding).
    pub fn to_option_data(&self) -> Vec<u8> {
        let mut data = Vec::with_capacity(self.name.len() + 5);
        data.extend_from_slice(&[self.flags, REPLY_RCODE, REPLY_RCODE]);
        if self.flags & FLAG_E == 0 {
            data.extend_from_slice(self.name.as_bytes());
            return data;
        }
        let body = self.name.strip_suffix('.').unwrap_or(&self.name);
        for label in body.split('.').filter(|l| !l.is_empty()) {
            // Names here were built from labels of at most 63 octets.
            data.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
            data.extend_from_slice(label.as_bytes());
        }
        data.push(0);
        data
    }
}

/// What to do with a lease's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOutcome {
    /// Publish `fqdn` in the directions given.
    Publish(NameDecision),
    /// The client asked for no updates (N=1) and no override applies.
    NoUpdate { reply: Option<ReplyFqdn> },
    /// The client sent no name and the replace mode does not generate one.
    NoName,
    /// The client's request cannot be honoured; nothing is published.
    Rejected(NameRejection),
}

/// Why a name was refused: a kind for counters, a short reason for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRejection {
    pub kind: RejectionKind,
    /// Printable ASCII only: client bytes are escaped and cut short.
    pub reason: String,
}

impl fmt::Display for NameRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    /// Option 81 with both S and N set (RFC 4702 section 2.1).
    BadFlags,
    /// The name is malformed or unusable after sanitising.
    InvalidName,
    /// A forward update is due but the name is in no configured forward zone.
    OutsideZones,
    /// The name is the apex of a configured zone.
    ZoneApex,
}

impl RejectionKind {
    /// Stable label for counters and log fields.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::BadFlags => "bad-flags",
            RejectionKind::InvalidName => "invalid-name",
            RejectionKind::OutsideZones => "outside-zones",
            RejectionKind::ZoneApex => "zone-apex",
        }
    }
}

/// Decides the lease's name and update directions, as kea-dhcp4 2.2 would
/// with DDNS on (see the module documentation for where and why we differ).
pub fn decide(
    policy: &NamingPolicy,
    forward_zones: &[DdnsDomain],
    client: &ClientNames,
    addr: Ipv4Addr,
) -> NameOutcome {
    match &client.fqdn {
        Some(fqdn) => decide_fqdn(policy, forward_zones, fqdn, addr),
        None => decide_hostname(policy, forward_zones, client.hostname.as_deref(), addr),
    }
}

fn decide_fqdn(
    policy: &NamingPolicy,
    zones: &[DdnsDomain],
    fqdn: &ClientFqdn,
    addr: Ipv4Addr,
) -> NameOutcome {
    let client_s = fqdn.flags & FLAG_S != 0;
    let client_n = fqdn.flags & FLAG_N != 0;
    let (server_s, server_n) = match (client_s, client_n) {
        (true, true) => {
            return reject(
                RejectionKind::BadFlags,
                "client FQDN option has both S and N set".to_owned(),
            );
        }
        (false, false) => (policy.override_client_update, false),
        (true, false) => (true, false),
        (false, true) => (policy.override_no_update, !policy.override_no_update),
    };
    let mut flags = fqdn.flags & FLAG_E;
    if server_s {
        flags |= FLAG_S;
    }
    if server_n {
        flags |= FLAG_N;
    }
    if server_s != client_s {
        flags |= FLAG_O;
    }

    let labels = match fqdn_labels(policy, fqdn, addr) {
        Ok(labels) => labels,
        Err(rejection) => return NameOutcome::Rejected(rejection),
    };
    let reply = ReplyFqdn {
        flags,
        name: to_text(&labels),
    };
    publish(zones, labels, server_s, !server_n, Some(reply))
}

fn fqdn_labels(
    policy: &NamingPolicy,
    fqdn: &ClientFqdn,
    addr: Ipv4Addr,
) -> Result<Vec<String>, NameRejection> {
    let mode = policy.replace_client_name;
    if matches!(
        mode,
        ReplaceClientName::Always | ReplaceClientName::WhenPresent
    ) {
        return generate(policy, addr);
    }
    let parsed = if fqdn.flags & FLAG_E != 0 {
        parse_wire(&fqdn.name)
    } else {
        parse_ascii(&fqdn.name)
    };
    let client = parsed.and_then(|raw| match raw {
        // Kea blanks an empty name and generates one later, whatever the mode.
        RawName::Empty | RawName::Root => Ok(None),
        RawName::Labels { labels, partial } => client_labels(policy, &labels, partial).map(Some),
    });
    match client {
        Ok(Some(labels)) => Ok(labels),
        Ok(None) => generate(policy, addr),
        Err(reason) => unusable(policy, addr, &fqdn.name, reason),
    }
}

fn decide_hostname(
    policy: &NamingPolicy,
    zones: &[DdnsDomain],
    hostname: Option<&[u8]>,
    addr: Ipv4Addr,
) -> NameOutcome {
    let mode = policy.replace_client_name;
    let parsed = hostname.map(|raw| (raw, parse_ascii(raw)));
    let labels = match parsed {
        None | Some((_, Ok(RawName::Empty))) => {
            if !matches!(
                mode,
                ReplaceClientName::Always | ReplaceClientName::WhenNotPresent
            ) {
                return NameOutcome::NoName;
            }
            generate(policy, addr)
        }
        Some(_)
            if matches!(
                mode,
                ReplaceClientName::Always | ReplaceClientName::WhenPresent
            ) =>
        {
            generate(policy, addr)
        }
        // Kea: fewer than two labels counting the root, i.e. just ".".
        Some((_, Ok(RawName::Root))) => generate(policy, addr),
        Some((raw, Ok(RawName::Labels { labels, partial }))) => {
            // Kea tells a host name from an FQDN by its label count alone.
            let qualify = partial && labels.len() == 1;
            match client_labels(policy, &labels, qualify) {
                Ok(labels) => Ok(labels),
                Err(reason) => unusable(policy, addr, raw, reason),
            }
        }
        Some((raw, Err(reason))) => unusable(policy, addr, raw, reason),
    };
    match labels {
        Ok(labels) => publish(zones, labels, true, true, None),
        Err(rejection) => NameOutcome::Rejected(rejection),
    }
}

/// A client name that cannot be used: under `when-not-present` it counts as
/// no name, so the client gets a generated one; otherwise it is refused.
fn unusable(
    policy: &NamingPolicy,
    addr: Ipv4Addr,
    raw: &[u8],
    reason: &'static str,
) -> Result<Vec<String>, NameRejection> {
    if policy.replace_client_name == ReplaceClientName::WhenNotPresent {
        return generate(policy, addr);
    }
    Err(NameRejection {
        kind: RejectionKind::InvalidName,
        reason: format!("client name '{}': {reason}", snippet(raw)),
    })
}

fn publish(
    zones: &[DdnsDomain],
    labels: Vec<String>,
    forward: bool,
    reverse: bool,
    reply: Option<ReplyFqdn>,
) -> NameOutcome {
    // kea-dhcp-ddns turns forward updates off when it has no forward domains.
    let forward = forward && !zones.is_empty();
    if !forward && !reverse {
        return NameOutcome::NoUpdate { reply };
    }
    let fqdn = to_text(&labels);
    if forward {
        match longest_zone(zones, &labels) {
            None => {
                return reject(
                    RejectionKind::OutsideZones,
                    format!("'{fqdn}' is in no configured forward zone"),
                );
            }
            Some(zone_labels) if zone_labels == labels.len() => {
                return reject(
                    RejectionKind::ZoneApex,
                    format!("'{fqdn}' is the apex of a configured zone"),
                );
            }
            Some(_) => {}
        }
    }
    NameOutcome::Publish(NameDecision {
        fqdn,
        forward,
        reverse,
        reply,
    })
}

/// Label count of the longest configured zone containing the name (apex included).
/// Labels of the longest configured zone holding `labels`.
fn longest_zone(zones: &[DdnsDomain], labels: &[String]) -> Option<usize> {
    DdnsDomain::longest_match(zones, labels).map(|zone| zone.name.iter().len())
}

fn reject(kind: RejectionKind, reason: String) -> NameOutcome {
    NameOutcome::Rejected(NameRejection { kind, reason })
}

/// A client name split into raw labels, not yet sanitised.
enum RawName {
    /// Nothing but padding.
    Empty,
    /// Only the root (`"."` or a lone zero octet).
    Root,
    /// `partial`: no root label / trailing dot.
    Labels { labels: Vec<Vec<u8>>, partial: bool },
}

/// ASCII form (option 12, option 81 with E=0). Trailing NULs and surrounding
/// white space are padding some clients add (Kea trims both).
fn parse_ascii(raw: &[u8]) -> Result<RawName, &'static str> {
    if raw.len() > MAX_RAW_NAME {
        return Err("longer than 1024 octets");
    }
    let mut text = raw;
    while let [rest @ .., 0] = text {
        text = rest;
    }
    let text = text.trim_ascii();
    if text.is_empty() {
        return Ok(RawName::Empty);
    }
    if text == b"." {
        return Ok(RawName::Root);
    }
    let (body, partial) = match text.strip_suffix(b".") {
        Some(body) => (body, false),
        None => (text, true),
    };
    let labels = body.split(|b| *b == b'.').map(<[u8]>::to_vec).collect();
    Ok(RawName::Labels { labels, partial })
}

/// Canonical wire form (option 81 with E=1, RFC 4702 section 2.3.1): a name
/// without the terminating zero octet is partial.
fn parse_wire(raw: &[u8]) -> Result<RawName, &'static str> {
    if raw.is_empty() {
        return Ok(RawName::Empty);
    }
    if raw.len() > MAX_WIRE_NAME {
        return Err("longer than 255 octets");
    }
    let mut labels = Vec::new();
    let mut rest = raw;
    let partial = loop {
        let Some((&len, tail)) = rest.split_first() else {
            break true;
        };
        if len == 0 {
            if !tail.is_empty() {
                return Err("data after the root label");
            }
            break false;
        }
        if usize::from(len) > MAX_LABEL {
            return Err("compressed or over-long label in wire format");
        }
        let Some((label, after)) = tail.split_at_checked(usize::from(len)) else {
            return Err("truncated label in wire format");
        };
        labels.push(label.to_vec());
        rest = after;
    };
    if labels.is_empty() {
        return Ok(RawName::Root);
    }
    Ok(RawName::Labels { labels, partial })
}

/// Sanitises and checks a client's labels, then qualifies them if asked to.
fn client_labels(
    policy: &NamingPolicy,
    raw: &[Vec<u8>],
    qualify: bool,
) -> Result<Vec<String>, &'static str> {
    let mut labels = raw
        .iter()
        .map(|label| sanitise_label(policy, label))
        .collect::<Result<Vec<_>, _>>()?;
    if qualify {
        labels = qualified(policy, labels);
    }
    check_length(&labels)?;
    Ok(labels)
}

fn sanitise_label(policy: &NamingPolicy, raw: &[u8]) -> Result<String, &'static str> {
    // Invalid UTF-8 becomes U+FFFD, which the char set removes or the check
    // below refuses: either way no raw byte gets through.
    let text = String::from_utf8_lossy(raw);
    let cleaned = match &policy.hostname_char_set {
        Some(set) => set
            .replace_all(&text, regex::NoExpand(&policy.hostname_char_replacement))
            .into_owned(),
        None => text.into_owned(),
    };
    let label = cleaned.to_ascii_lowercase();
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > MAX_LABEL {
        return Err("label longer than 63 octets");
    }
    if !label.bytes().all(is_label_byte) {
        return Err("label holds characters other than letters, digits, '-' and '_'");
    }
    Ok(label)
}

/// Kea's `qualifyName`: append the suffix unless the name already ends with it.
fn qualified(policy: &NamingPolicy, mut labels: Vec<String>) -> Vec<String> {
    let Some(suffix) = &policy.qualifying_suffix else {
        return labels;
    };
    // Compared in place: this runs for every packet with a name.
    let suffix_len = suffix.iter().len();
    let has_suffix = labels.len() >= suffix_len
        && suffix
            .iter()
            .rev()
            .zip(labels.iter().rev())
            .all(|(s, l)| s.eq_ignore_ascii_case(l.as_bytes()));
    if !has_suffix {
        labels.extend(
            suffix
                .iter()
                .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase()),
        );
    }
    labels
}

/// Kea's `generateFqdn`: `<prefix>-a-b-c-d`, qualified.
fn generate(policy: &NamingPolicy, addr: Ipv4Addr) -> Result<Vec<String>, NameRejection> {
    let [a, b, c, d] = addr.octets();
    let mut label = String::with_capacity(policy.generated_prefix.len() + 16);
    label.extend(
        policy
            .generated_prefix
            .chars()
            .map(|c| c.to_ascii_lowercase()),
    );
    // Writing to a String cannot fail.
    let _ = write!(label, "-{a}-{b}-{c}-{d}");
    let invalid = |reason: &str| NameRejection {
        kind: RejectionKind::InvalidName,
        reason: format!("generated name for {addr}: {reason}"),
    };
    if label.len() > MAX_LABEL || !label.bytes().all(is_label_byte) {
        return Err(invalid("ddns-generated-prefix does not make a valid label"));
    }
    let labels = qualified(policy, vec![label]);
    check_length(&labels).map_err(invalid)?;
    Ok(labels)
}

fn check_length(labels: &[String]) -> Result<(), &'static str> {
    let wire: usize = labels.iter().map(|l| l.len() + 1).sum::<usize>() + 1;
    if wire > MAX_WIRE_NAME {
        return Err("name longer than 255 octets");
    }
    Ok(())
}

fn to_text(labels: &[String]) -> String {
    let mut text = labels.join(".");
    text.push('.');
    text
}

fn snippet(raw: &[u8]) -> String {
    let cut = &raw[..raw.len().min(REASON_SNIPPET)];
    let mut text = cut.escape_ascii().to_string();
    if raw.len() > REASON_SNIPPET {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::rr::Name;
    use proptest::prelude::*;

    use super::*;

    const ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 12);

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap().to_lowercase()
    }

    fn zones() -> Vec<DdnsDomain> {
        ["lan.example.", "sub.lan.example.", "other.test."]
            .iter()
            .map(|z| DdnsDomain {
                name: name(z),
                key: None,
                servers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            })
            .collect()
    }

    fn policy() -> NamingPolicy {
        NamingPolicy {
            qualifying_suffix: Some(name("lan.example.")),
            replace_client_name: ReplaceClientName::Never,
            generated_prefix: "host".to_owned(),
            hostname_char_set: Some(regex::Regex::new("[^A-Za-z0-9.-]").unwrap()),
            hostname_char_replacement: String::new(),
            override_client_update: false,
            override_no_update: false,
        }
    }

    fn with_mode(mode: ReplaceClientName) -> NamingPolicy {
        NamingPolicy {
            replace_client_name: mode,
            ..policy()
        }
    }

    fn hostname(raw: &[u8]) -> ClientNames {
        ClientNames {
            fqdn: None,
            hostname: Some(raw.to_vec()),
        }
    }

    fn fqdn(flags: u8, raw: &[u8]) -> ClientNames {
        ClientNames {
            fqdn: Some(ClientFqdn {
                flags,
                name: raw.to_vec(),
            }),
            hostname: None,
        }
    }

    fn wire(labels: &[&str], full: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for l in labels {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        if full {
            out.push(0);
        }
        out
    }

    fn published(outcome: NameOutcome) -> NameDecision {
        match outcome {
            NameOutcome::Publish(d) => d,
            other => panic!("expected Publish, got {other:?}"),
        }
    }

    fn rejected(outcome: NameOutcome) -> RejectionKind {
        match outcome {
            NameOutcome::Rejected(r) => r.kind,
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    fn run(policy: &NamingPolicy, client: &ClientNames) -> NameOutcome {
        decide(policy, &zones(), client, ADDR)
    }

    #[test]
    fn hostname_is_qualified_and_updates_both_directions() {
        let d = published(run(&policy(), &hostname(b"Laptop")));
        assert_eq!(d.fqdn, "laptop.lan.example.");
        assert!(d.forward && d.reverse);
        assert_eq!(d.reply, None);
    }

    #[test]
    fn multi_label_hostname_is_absolute_like_kea() {
        let d = published(run(&policy(), &hostname(b"pc.sub.lan.example")));
        assert_eq!(d.fqdn, "pc.sub.lan.example.");
        // Kea would not qualify "laptop.home" either; it lands in no zone.
        assert_eq!(
            rejected(run(&policy(), &hostname(b"laptop.home"))),
            RejectionKind::OutsideZones
        );
    }

    #[test]
    fn hostname_padding_and_sanitising() {
        let d = published(run(&policy(), &hostname(b"  My_Laptop!\0\0")));
        assert_eq!(d.fqdn, "mylaptop.lan.example.");
        let d = published(run(&policy(), &hostname(b"lap\0top")));
        assert_eq!(d.fqdn, "laptop.lan.example.");
        let d = published(run(&policy(), &hostname("café".as_bytes())));
        assert_eq!(d.fqdn, "caf.lan.example.");
        let d = published(run(&policy(), &hostname(b"\xff\xfeab\x80")));
        assert_eq!(d.fqdn, "ab.lan.example.");
    }

    #[test]
    fn replacement_character_is_used() {
        let p = NamingPolicy {
            hostname_char_replacement: "x".to_owned(),
            ..policy()
        };
        let d = published(run(&p, &hostname(b"my laptop")));
        assert_eq!(d.fqdn, "myxlaptop.lan.example.");
    }

    #[test]
    fn without_sanitiser_bad_bytes_are_refused() {
        let p = NamingPolicy {
            hostname_char_set: None,
            ..policy()
        };
        for raw in [
            &b"my laptop"[..],
            b"a\0b",
            "café".as_bytes(),
            b"x\xff",
            b"a*",
        ] {
            assert_eq!(
                rejected(run(&p, &hostname(raw))),
                RejectionKind::InvalidName,
                "{raw:?}"
            );
        }
        let d = published(run(&p, &hostname(b"My_Pc")));
        assert_eq!(d.fqdn, "my_pc.lan.example.");
    }

    #[test]
    fn hostile_hostnames_are_refused() {
        let long_label = vec![b'a'; 64];
        let long_name = b"abcdefghi."
            .repeat(25)
            .into_iter()
            .chain(*b"lan.example")
            .collect::<Vec<_>>();
        let huge = vec![b'a'; 300];
        let cases: Vec<&[u8]> = vec![
            b"a..b",
            b"..",
            b".a",
            &long_label,
            &long_name,
            &huge,
            b"!!!",
            b"\0.\0",
        ];
        for raw in cases {
            let out = run(&policy(), &hostname(raw));
            assert_eq!(rejected(out), RejectionKind::InvalidName, "{raw:?}");
        }
        // NULs inside a label are sanitised away like any other bad byte.
        let d = published(run(&policy(), &hostname(b"\0\0x\0")));
        assert_eq!(d.fqdn, "x.lan.example.");
        let max = vec![b'a'; 63];
        assert!(matches!(
            run(&policy(), &hostname(&max)),
            NameOutcome::Publish(_)
        ));
    }

    #[test]
    fn rejection_reason_is_printable_and_short() {
        let mut raw = b"\x1b[31m\n".to_vec();
        raw.extend(vec![b'\xff'; 2000]);
        let NameOutcome::Rejected(r) = run(&policy(), &hostname(&raw)) else {
            panic!("not rejected");
        };
        assert!(
            r.reason.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{}",
            r.reason
        );
        assert!(r.reason.len() < 400);
        assert_eq!(r.kind.as_str(), "invalid-name");
    }

    #[test]
    fn names_outside_zones_and_apexes_are_rejected() {
        assert_eq!(
            rejected(run(&policy(), &hostname(b"www.bank.example."))),
            RejectionKind::OutsideZones
        );
        assert_eq!(
            rejected(run(&policy(), &hostname(b"lan.example."))),
            RejectionKind::ZoneApex
        );
        // The longest zone decides: sub.lan.example. is a zone apex in its own right.
        assert_eq!(
            rejected(run(&policy(), &hostname(b"sub.lan.example."))),
            RejectionKind::ZoneApex
        );
        let d = published(run(&policy(), &hostname(b"x.other.test.")));
        assert_eq!(d.fqdn, "x.other.test.");
        // Label boundaries count: "xlan.example." is not under "lan.example.".
        assert_eq!(
            rejected(run(&policy(), &hostname(b"a.xlan.example."))),
            RejectionKind::OutsideZones
        );
    }

    #[test]
    fn option_81_takes_precedence_over_option_12() {
        let client = ClientNames {
            fqdn: Some(ClientFqdn {
                flags: FLAG_S,
                name: b"fromfqdn".to_vec(),
            }),
            hostname: Some(b"fromhostname".to_vec()),
        };
        assert_eq!(
            published(run(&policy(), &client)).fqdn,
            "fromfqdn.lan.example."
        );
    }

    #[test]
    fn fqdn_ascii_partial_and_full() {
        let d = published(run(&policy(), &fqdn(FLAG_S, b"Laptop")));
        assert_eq!(d.fqdn, "laptop.lan.example.");
        let d = published(run(&policy(), &fqdn(FLAG_S, b"pc.sub")));
        assert_eq!(d.fqdn, "pc.sub.lan.example.");
        // Already ends with the suffix: not doubled (Kea's qualifyName).
        let d = published(run(&policy(), &fqdn(FLAG_S, b"pc.lan.example")));
        assert_eq!(d.fqdn, "pc.lan.example.");
        let d = published(run(&policy(), &fqdn(FLAG_S, b"pc.other.test.")));
        assert_eq!(d.fqdn, "pc.other.test.");
    }

    #[test]
    fn fqdn_wire_partial_and_full() {
        let flags = FLAG_S | FLAG_E;
        let d = published(run(&policy(), &fqdn(flags, &wire(&["Laptop"], false))));
        assert_eq!(d.fqdn, "laptop.lan.example.");
        let d = published(run(
            &policy(),
            &fqdn(flags, &wire(&["pc", "other", "test"], true)),
        ));
        assert_eq!(d.fqdn, "pc.other.test.");
        let reply = d.reply.unwrap();
        assert_eq!(reply.flags, FLAG_S | FLAG_E);
        assert_eq!(
            reply.to_option_data(),
            [
                &[FLAG_S | FLAG_E, 255, 255][..],
                &wire(&["pc", "other", "test"], true)
            ]
            .concat()
        );
    }

    #[test]
    fn fqdn_wire_garbage_is_refused() {
        let flags = FLAG_S | FLAG_E;
        let too_long_label = [&[64u8][..], &[b'a'; 64]].concat();
        let cases: Vec<Vec<u8>> = vec![
            vec![0xc0, 0x0c],             // compression pointer
            vec![5, b'a', b'b'],          // truncated
            vec![1, b'a', 0, 1, b'b', 0], // data after the root
            too_long_label,
            vec![3, b'a', b'.', b'b', 0], // a dot inside a label
            vec![2, 0, 0, 0],             // NULs in a label, sanitised to nothing
            [1u8, b'a'].repeat(200),      // > 255 octets
        ];
        for raw in cases {
            assert_eq!(
                rejected(run(&policy(), &fqdn(flags, &raw))),
                RejectionKind::InvalidName,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn flags_follow_rfc_4702_and_kea() {
        let p = policy();
        // S=1: server does both.
        let d = published(run(&p, &fqdn(FLAG_S, b"a")));
        assert_eq!(
            (d.forward, d.reverse, d.reply.unwrap().flags),
            (true, true, FLAG_S)
        );
        // S=0, N=0: client does A, server does PTR.
        let d = published(run(&p, &fqdn(0, b"a")));
        assert_eq!(
            (d.forward, d.reverse, d.reply.unwrap().flags),
            (false, true, 0)
        );
        // N=1: nobody updates; the reply still carries the name.
        let out = run(&p, &fqdn(FLAG_N, b"a"));
        assert_eq!(
            out,
            NameOutcome::NoUpdate {
                reply: Some(ReplyFqdn {
                    flags: FLAG_N,
                    name: "a.lan.example.".to_owned()
                })
            }
        );
        // S=1, N=1 is invalid.
        assert_eq!(
            rejected(run(&p, &fqdn(FLAG_S | FLAG_N, b"a"))),
            RejectionKind::BadFlags
        );
        // The O flag a client might send is not echoed; E is.
        let d = published(run(
            &p,
            &fqdn(FLAG_S | FLAG_O | FLAG_E, &wire(&["a"], false)),
        ));
        assert_eq!(d.reply.unwrap().flags, FLAG_S | FLAG_E);
    }

    #[test]
    fn overrides_set_o_flag() {
        let p = NamingPolicy {
            override_client_update: true,
            override_no_update: true,
            ..policy()
        };
        let d = published(run(&p, &fqdn(0, b"a")));
        assert_eq!(
            (d.forward, d.reverse, d.reply.unwrap().flags),
            (true, true, FLAG_S | FLAG_O)
        );
        let d = published(run(&p, &fqdn(FLAG_N, b"a")));
        assert_eq!(
            (d.forward, d.reverse, d.reply.unwrap().flags),
            (true, true, FLAG_S | FLAG_O)
        );
    }

    #[test]
    fn reverse_only_updates_skip_the_zone_check() {
        let d = published(run(&policy(), &fqdn(0, b"pc.elsewhere.example.")));
        assert_eq!(
            (d.fqdn.as_str(), d.forward, d.reverse),
            ("pc.elsewhere.example.", false, true)
        );
    }

    #[test]
    fn no_forward_zones_means_reverse_only() {
        let d = published(decide(&policy(), &[], &hostname(b"pc"), ADDR));
        assert_eq!(
            (d.fqdn.as_str(), d.forward, d.reverse),
            ("pc.lan.example.", false, true)
        );
    }

    #[test]
    fn replace_modes_with_hostname() {
        use ReplaceClientName::*;
        let generated = "host-10-77-0-12.lan.example.";
        let none = ClientNames::default();
        for (mode, sent, expect) in [
            (Never, true, Some("pc.lan.example.")),
            (Never, false, None),
            (Always, true, Some(generated)),
            (Always, false, Some(generated)),
            (WhenPresent, true, Some(generated)),
            (WhenPresent, false, None),
            (WhenNotPresent, true, Some("pc.lan.example.")),
            (WhenNotPresent, false, Some(generated)),
        ] {
            let client = if sent { hostname(b"pc") } else { none.clone() };
            match (run(&with_mode(mode), &client), expect) {
                (NameOutcome::Publish(d), Some(name)) => {
                    assert_eq!(d.fqdn, name, "{mode:?} {sent}");
                    assert!(d.forward && d.reverse);
                }
                (NameOutcome::NoName, None) => {}
                (other, _) => panic!("{mode:?} {sent}: {other:?}"),
            }
        }
    }

    #[test]
    fn replace_modes_with_fqdn() {
        use ReplaceClientName::*;
        let generated = "host-10-77-0-12.lan.example.";
        for (mode, expect) in [
            (Never, "pc.lan.example."),
            (Always, generated),
            (WhenPresent, generated),
            (WhenNotPresent, "pc.lan.example."),
        ] {
            let d = published(run(&with_mode(mode), &fqdn(FLAG_S, b"pc")));
            assert_eq!(d.fqdn, expect, "{mode:?}");
            assert_eq!(d.reply.unwrap().name, expect);
        }
        // An empty option 81 name gets a generated one in every mode, as in Kea.
        for mode in [Never, Always, WhenPresent, WhenNotPresent] {
            for empty in [&b""[..], b".", &[0u8]] {
                let flags = if empty == [0] {
                    FLAG_S | FLAG_E
                } else {
                    FLAG_S
                };
                let d = published(run(&with_mode(mode), &fqdn(flags, empty)));
                assert_eq!(d.fqdn, generated, "{mode:?} {empty:?}");
            }
        }
    }

    #[test]
    fn root_hostname_is_replaced_and_empty_counts_as_absent() {
        let generated = "host-10-77-0-12.lan.example.";
        assert_eq!(published(run(&policy(), &hostname(b"."))).fqdn, generated);
        assert_eq!(run(&policy(), &hostname(b" \0")), NameOutcome::NoName);
        let p = with_mode(ReplaceClientName::WhenNotPresent);
        assert_eq!(published(run(&p, &hostname(b""))).fqdn, generated);
    }

    #[test]
    fn unusable_name_is_generated_under_when_not_present() {
        let p = with_mode(ReplaceClientName::WhenNotPresent);
        let generated = "host-10-77-0-12.lan.example.";
        assert_eq!(published(run(&p, &hostname(b"a..b"))).fqdn, generated);
        assert_eq!(published(run(&p, &hostname(&[b'x'; 300]))).fqdn, generated);
        assert_eq!(
            published(run(&p, &fqdn(FLAG_S | FLAG_E, &[0xc0, 1]))).fqdn,
            generated
        );
        // A well-formed name outside the zones is still refused, not replaced.
        assert_eq!(
            rejected(run(&p, &hostname(b"a.b.c."))),
            RejectionKind::OutsideZones
        );
    }

    #[test]
    fn generated_names() {
        let p = with_mode(ReplaceClientName::Always);
        let d = published(decide(
            &p,
            &zones(),
            &ClientNames::default(),
            Ipv4Addr::new(192, 0, 2, 255),
        ));
        assert_eq!(d.fqdn, "host-192-0-2-255.lan.example.");
        // Without a suffix the generated name is a bare label: in no zone.
        let bare = NamingPolicy {
            qualifying_suffix: None,
            ..p
        };
        assert_eq!(
            rejected(decide(&bare, &zones(), &ClientNames::default(), ADDR)),
            RejectionKind::OutsideZones
        );
    }

    #[test]
    fn without_suffix_partial_names_are_absolute() {
        let p = NamingPolicy {
            qualifying_suffix: None,
            ..policy()
        };
        assert_eq!(
            published(run(&p, &fqdn(FLAG_S, b"pc.lan.example"))).fqdn,
            "pc.lan.example."
        );
        assert_eq!(
            rejected(run(&p, &fqdn(FLAG_S, b"pc"))),
            RejectionKind::OutsideZones
        );
    }

    #[test]
    fn ascii_reply_encoding() {
        let reply = ReplyFqdn {
            flags: FLAG_S | FLAG_O,
            name: "a.lan.example.".to_owned(),
        };
        assert_eq!(
            reply.to_option_data(),
            b"\x03\xff\xffa.lan.example.".to_vec()
        );
    }

    fn arb_policy() -> impl Strategy<Value = NamingPolicy> {
        (
            prop_oneof![
                Just(ReplaceClientName::Never),
                Just(ReplaceClientName::Always),
                Just(ReplaceClientName::WhenPresent),
                Just(ReplaceClientName::WhenNotPresent),
            ],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(mode, o1, o2, sanitise, suffix)| NamingPolicy {
                replace_client_name: mode,
                override_client_update: o1,
                override_no_update: o2,
                hostname_char_set: if sanitise {
                    policy().hostname_char_set
                } else {
                    None
                },
                qualifying_suffix: if suffix {
                    policy().qualifying_suffix
                } else {
                    None
                },
                ..policy()
            })
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..400),
            "[a-zA-Z0-9 ._\\-]{0,80}".prop_map(String::into_bytes),
            prop::collection::vec("[a-zA-Z0-9_\\-]{1,63}", 1..6).prop_map(|l| format!(
                "{}.lan.example.",
                l.join(".")
            )
            .into_bytes()),
        ]
    }

    fn arb_client() -> impl Strategy<Value = ClientNames> {
        (
            prop::option::of((any::<u8>(), arb_bytes())),
            prop::option::of(arb_bytes()),
        )
            .prop_map(|(fqdn, hostname)| ClientNames {
                fqdn: fqdn.map(|(flags, name)| ClientFqdn { flags, name }),
                hostname,
            })
    }

    fn assert_well_formed(fqdn: &str) -> Result<(), TestCaseError> {
        prop_assert!(fqdn.ends_with('.'));
        let body = &fqdn[..fqdn.len() - 1];
        prop_assert!(body.len() + 2 <= MAX_WIRE_NAME);
        for label in body.split('.') {
            prop_assert!(!label.is_empty() && label.len() <= MAX_LABEL, "{fqdn}");
            prop_assert!(
                label.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
                "{fqdn}"
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decisions_are_always_well_formed(p in arb_policy(), client in arb_client(), addr in any::<u32>()) {
            let zones = zones();
            match decide(&p, &zones, &client, Ipv4Addr::from(addr)) {
                NameOutcome::Publish(d) => {
                    assert_well_formed(&d.fqdn)?;
                    prop_assert!(d.forward || d.reverse);
                    if d.forward {
                        let labels: Vec<String> = d.fqdn.trim_end_matches('.').split('.').map(str::to_owned).collect();
                        let zone = longest_zone(&zones, &labels);
                        prop_assert!(zone.is_some_and(|z| z < labels.len()), "{}", d.fqdn);
                    }
                    if let Some(reply) = &d.reply {
                        prop_assert_eq!(&reply.name, &d.fqdn);
                        prop_assert!(reply.flags & FLAG_S == 0 || reply.flags & FLAG_N == 0);
                        prop_assert_eq!(reply.flags & !(FLAG_S | FLAG_O | FLAG_E | FLAG_N), 0);
                    }
                    prop_assert_eq!(d.reply.is_some(), client.fqdn.is_some());
                }
                NameOutcome::NoUpdate { reply } => {
                    if let Some(reply) = reply {
                        assert_well_formed(&reply.name)?;
                        prop_assert_eq!(reply.flags & FLAG_N, FLAG_N);
                    }
                }
                NameOutcome::NoName => prop_assert!(client.fqdn.is_none()),
                NameOutcome::Rejected(r) => {
                    prop_assert!(r.reason.bytes().all(|b| (0x20..0x7f).contains(&b)));
                }
            }
        }

        #[test]
        fn published_names_are_stable(p in arb_policy(), client in arb_client()) {
            // Feeding a published name back as a full ASCII name gives it again:
            // sanitising and qualifying are idempotent on our own output.
            let p = NamingPolicy {
                replace_client_name: ReplaceClientName::Never,
                override_client_update: false,
                ..p
            };
            if let NameOutcome::Publish(d) = decide(&p, &zones(), &client, ADDR) {
                let reverse_only = decide(&p, &zones(), &fqdn(0, d.fqdn.as_bytes()), ADDR);
                prop_assert_eq!(&published(reverse_only).fqdn, &d.fqdn);
                if d.forward {
                    let both = published(decide(&p, &zones(), &fqdn(FLAG_S, d.fqdn.as_bytes()), ADDR));
                    prop_assert_eq!(&both.fqdn, &d.fqdn);
                    prop_assert!(both.forward && both.reverse);
                }
            }
        }

        #[test]
        fn wire_and_ascii_forms_agree(labels in prop::collection::vec("[a-zA-Z0-9_\\-]{1,20}", 1..5), full in any::<bool>(), flags in any::<u8>()) {
            let flags = flags & !FLAG_E;
            let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
            let ascii = if full { format!("{}.", labels.join(".")) } else { labels.join(".") };
            let from_ascii = run(&policy(), &fqdn(flags, ascii.as_bytes()));
            let from_wire = run(&policy(), &fqdn(flags | FLAG_E, &wire(&refs, full)));
            let strip_e = |o: NameOutcome| match o {
                NameOutcome::Publish(mut d) => { if let Some(r) = &mut d.reply { r.flags &= !FLAG_E; } NameOutcome::Publish(d) }
                NameOutcome::NoUpdate { mut reply } => { if let Some(r) = &mut reply { r.flags &= !FLAG_E; } NameOutcome::NoUpdate { reply } }
                NameOutcome::Rejected(r) => NameOutcome::Rejected(NameRejection { kind: r.kind, reason: String::new() }),
                other => other,
            };
            prop_assert_eq!(strip_e(from_ascii), strip_e(from_wire));
        }
    }
}
