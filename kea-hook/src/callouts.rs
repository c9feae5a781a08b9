//! What each callout does, in safe Rust over the adapter in `host.rs`.
//!
//! Callouts never block: the decisions are computed in place, DNS work is
//! handed to the engine's bounded queue. Kea names every lease itself (DDNS
//! client on or off); the hook decides what Kea + kea-dhcp-ddns would do
//! with that name (`naming`), from Kea's settings of the lease's subnet.

use crate::change::{Change, Lease, LeaseRecords};
use crate::engine::{Engine, Publication};
use crate::host::{self, Callout};
use crate::naming;
use crate::stats::Stats;

/// Context key (per packet handle) of option 81's flags in the answer,
/// decided at allocation and written into the response by pkt4_send.
const REPLY_FLAGS: &str = "leasedns-fqdn-reply-flags";

/// lease4_select (allocations, DHCPDISCOVER's fake ones included) and
/// lease4_renew: the directions go into the lease before Kea writes it (Kea
/// leaves both off with its own DDNS client off), the answer's option 81
/// flags into the packet's context.
pub(crate) fn decide(engine: &Engine, co: &mut Callout<'_>) {
    let Some(query) = co.packet_names("query4") else {
        return;
    };
    let Some(lease) = co.lease("lease4") else {
        return;
    };
    let scope = engine.scope(lease.subnet_id);
    let decision = naming::decide(query.fqdn_flags, &scope, query.skip_ddns);
    co.set_lease_directions("lease4", decision.forward, decision.reverse);
    if let Some(flags) = decision.reply_flags {
        co.set_context(REPLY_FLAGS, u32::from(flags));
    }
}

/// pkt4_send: option 81 in the answer carries the flags Kea would send with
/// its DDNS client on (Kea answers S=0 N=1 with it off); the name in it is
/// Kea's.
pub(crate) fn answer_fqdn(_engine: &Engine, co: &mut Callout<'_>) {
    if let Some(flags) = co.context(REPLY_FLAGS).and_then(|f| u8::try_from(f).ok()) {
        co.set_packet_fqdn_flags("response4", flags);
    }
}

/// leases4_committed: the database holds the final state of this exchange.
pub(crate) fn committed(engine: &Engine, co: &mut Callout<'_>) {
    if let Some((msg_type, _)) = co.packet_header("query4")
        && (msg_type == host::DHCPDISCOVER || msg_type == host::DHCPINFORM)
    {
        return;
    }
    for lease in co.leases("deleted_leases4") {
        remove(engine, &lease);
    }
    for lease in co.leases("leases4") {
        if lease.state == crate::change::LEASE_STATE_DEFAULT {
            add(engine, &lease);
        } else {
            remove(engine, &lease);
        }
    }
}

/// lease4_decline, lease4_expire, lease4_recover: the address loses its name.
pub(crate) fn lease_gone(engine: &Engine, co: &mut Callout<'_>) {
    if let Some(lease) = co.lease("lease4") {
        remove(engine, &lease);
    }
}

/// The records `lease` asks for, by the one lease -> DNS rule. A DHCID that
/// cannot be computed is logged and means no DNS change (`Err`).
fn lease_records(engine: &Engine, lease: &Lease) -> Result<Option<LeaseRecords>, ()> {
    let scope = engine.scope(lease.subnet_id);
    LeaseRecords::of_lease(lease, scope.conflict_mode, &scope.ttl).map_err(|err| {
        Stats::bump(&engine.stats().names_rejected);
        tracing::warn!(addr = %lease.addr, hostname = ?lease.hostname, %err, "cannot compute the DHCID; no DNS change");
    })
}

fn add(engine: &Engine, lease: &Lease) {
    let records = match lease_records(engine, lease) {
        Ok(Some(records)) => records,
        Ok(None) => {
            // The lease no longer asks for a name: what it published goes.
            if let Some(old) = engine.unpublish(lease.addr) {
                engine.submit(Change::remove(old));
            }
            return;
        }
        Err(()) => return,
    };
    let previous = match engine.publish(&records) {
        // ddns-update-on-renew: Kea + kea-dhcp-ddns send the records again
        // on every renewal, so one removed behind their back comes back.
        Publication::Unchanged if engine.scope(lease.subnet_id).update_on_renew => None,
        Publication::Unchanged => {
            Stats::bump(&engine.stats().changes_unchanged);
            return;
        }
        Publication::Changed { previous } => previous,
    };
    if let Some(old) = previous
        && (old.fqdn != records.fqdn
            || old.dhcid != records.dhcid
            || old.forward != records.forward
            || old.reverse != records.reverse)
    {
        // As Kea, which removes the old lease's records whenever its name
        // or directions differ from the new one's. A dropped removal needs
        // no bookkeeping: the reconciliation the drop asks for finds the
        // record without a lease and removes it.
        engine.submit(Change::remove(old));
    }
    if !engine.submit(Change::add(records.clone())) {
        // Dropped: not published. The next renewal sends it again and the
        // reconciliation the drop asked for repairs it before that.
        engine.unpublish_if(&records);
    }
}

fn remove(engine: &Engine, lease: &Lease) {
    // What this process published; else (e.g. added before a restart) the
    // lease itself still carries the name and the client's identity.
    let records = match engine.unpublish(lease.addr) {
        Some(old) => old,
        None => match lease_records(engine, lease) {
            Ok(Some(records)) => records,
            Ok(None) | Err(()) => return,
        },
    };
    engine.submit(Change::remove(records));
}
