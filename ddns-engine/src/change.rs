//! The engine's model of a lease's DNS: the lease as the adapter copies it
//! out of Kea, the records it should have (the one lease -> DNS rule), and
//! the change that flows from a callout through the journal to a sender.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{ConflictMode, TtlPolicy};
use crate::naming::dhcid::{self, DhcidError};

/// A lease, copied out of Kea by the adapter (`host.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub valid_lft: u32,
    pub cltt: i64,
    pub subnet_id: u32,
    /// [`LEASE_STATE_DEFAULT`], 1 declined, 2 expired-reclaimed.
    pub state: u32,
    pub htype: u8,
    pub hwaddr: Vec<u8>,
    pub client_id: Option<Vec<u8>>,
    /// `None` when empty, longer than the adapter accepts, or not UTF-8.
    pub hostname: Option<String>,
    pub fqdn_fwd: bool,
    pub fqdn_rev: bool,
}

/// Kea's state of a lease in use.
pub const LEASE_STATE_DEFAULT: u32 = 0;

/// The DNS records one lease should have: A + DHCID at `fqdn` (forward) and
/// PTR + DHCID at the reverse name of `addr` (reverse). What callouts
/// publish, what the engine remembers per address and what reconciliation
/// expects in the zones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecords {
    /// Absolute, lower-case FQDN with the trailing dot (`laptop.lan.example.`).
    pub fqdn: String,
    pub addr: Ipv4Addr,
    /// DHCID RDATA (RFC 4701); empty in `no-check-without-dhcid` mode.
    pub dhcid: Vec<u8>,
    /// TTL for added records (0 in removals).
    pub ttl: u32,
    /// Update the forward zone (A + DHCID).
    pub forward: bool,
    /// Update the reverse zone (PTR + DHCID).
    pub reverse: bool,
    /// How the sender resolves conflicts for these records: the mode of the
    /// lease's subnet when the change was made, so a change replayed after
    /// a reconfiguration still runs the sequence it was meant for.
    pub mode: ConflictMode,
}

impl LeaseRecords {
    /// The lease -> DNS rule, the one place it is written: the name Kea
    /// stored in the lease, the directions its FQDN flags ask for, the
    /// client's DHCID (none in `no-check-without-dhcid`), the TTL from the
    /// lease time. `Ok(None)`: the lease asks for no DNS records.
    pub fn of_lease(
        lease: &Lease,
        mode: ConflictMode,
        ttl: &TtlPolicy,
    ) -> Result<Option<LeaseRecords>, DhcidError> {
        let Some(hostname) = lease.hostname.as_deref() else {
            return Ok(None);
        };
        if !lease.fqdn_fwd && !lease.fqdn_rev {
            return Ok(None);
        }
        let fqdn = absolute_fqdn(hostname);
        let dhcid = if mode == ConflictMode::NoCheckWithoutDhcid {
            Vec::new()
        } else {
            dhcid::dhcid_rdata(
                lease.client_id.as_deref(),
                lease.htype,
                &lease.hwaddr,
                &fqdn,
            )?
        };
        Ok(Some(LeaseRecords {
            fqdn,
            addr: lease.addr,
            dhcid,
            ttl: dhcid::ttl(ttl, lease.valid_lft),
            forward: lease.fqdn_fwd,
            reverse: lease.fqdn_rev,
            mode,
        }))
    }
}

/// Whether the lease's records must exist or must be gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    /// Publish A + DHCID at `fqdn` and PTR + DHCID at the reverse name of `addr`.
    Add,
    /// Remove them, where the DHCID proves they are this client's.
    Remove,
}

/// One intended DNS change for one lease. Self-contained: it can be replayed
/// from the journal after a restart without any other state. Its postcard
/// encoding (kind, then the records' fields in order) is the journal's
/// payload: the golden journal tests pin it, and changing it needs a new
/// segment version (see `journal::payload`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub records: LeaseRecords,
}

impl Change {
    pub fn add(records: LeaseRecords) -> Change {
        Change {
            kind: ChangeKind::Add,
            records,
        }
    }

    /// Removes `records` (their TTL is irrelevant and set to 0).
    pub fn remove(records: LeaseRecords) -> Change {
        Change {
            kind: ChangeKind::Remove,
            records: LeaseRecords { ttl: 0, ..records },
        }
    }
}

/// `name` as `LeaseRecords::fqdn` spells names: lower case, with the trailing dot.
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

/// The address whose in-addr.arpa name is `name` (the inverse of
/// [`reverse_name`]); `None` for any other name.
pub fn addr_of_reverse(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa.")?;
    let parts: Vec<u8> = rest
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match parts.as_slice() {
        [d, c, b, a] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => None,
    }
}
