//! The unit of work that flows from a callout, through the journal, to the sender.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Whether the lease's records must exist or must be gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Publish A + DHCID at `fqdn` and PTR + DHCID at the reverse name of `addr`.
    Add,
    /// Remove them, where the DHCID proves they are this client's.
    Remove,
}

/// One intended DNS change for one lease. Self-contained: it can be replayed
/// from the journal after a restart without any other state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute, lower-case FQDN with the trailing dot (`laptop.lan.example.`).
    pub fqdn: String,
    pub addr: Ipv4Addr,
    /// DHCID RDATA (RFC 4701); empty in `no-check-without-dhcid` mode.
    pub dhcid: Vec<u8>,
    /// TTL for added records (ignored for removals).
    pub ttl: u32,
    /// Update the forward zone (A + DHCID).
    pub forward: bool,
    /// Update the reverse zone (PTR + DHCID).
    pub reverse: bool,
}

/// `name` as `Change::fqdn` spells names: lower case, with the trailing dot.
pub fn absolute_fqdn(name: &str) -> String {
    let mut n = name.to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

/// The in-addr.arpa name of `addr`, spelled like `absolute_fqdn`.
pub fn reverse_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}
