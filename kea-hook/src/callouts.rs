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

/// Context key (per packet handle) of the decision ddns4_update made:
/// [`DIRECTIONS_SET`], [`FORWARD`], [`REVERSE`], [`REPLY_SET`] and the reply
/// flags in the low octet.
const DECISION: &str = "leasedns-decision";
const DIRECTIONS_SET: u32 = 1 << 8;
const FORWARD: u32 = 1 << 9;
const REVERSE: u32 = 1 << 10;
const REPLY_SET: u32 = 1 << 11;

fn pack(decision: &naming::Decision) -> u32 {
    let mut v = DIRECTIONS_SET;
    if decision.forward {
        v |= FORWARD;
    }
    if decision.reverse {
        v |= REVERSE;
    }
    if let Some(flags) = decision.reply_flags {
        v |= REPLY_SET | u32::from(flags);
    }
    v
}

fn unpack(v: u32) -> Option<naming::Decision> {
    (v & DIRECTIONS_SET != 0).then(|| naming::Decision {
        forward: v & FORWARD != 0,
        reverse: v & REVERSE != 0,
        reply_flags: (v & REPLY_SET != 0).then_some((v & 0xff) as u8),
    })
}

/// ddns4_update: Kea has named the client (with its DDNS client off it
/// leaves both directions off). The directions Kea + kea-dhcp-ddns would
/// take go back into Kea's exchange here, before the allocation compares
/// the lease with the stored one, so an unchanged renewal stays unchanged
/// (Kea 3.0 then reuses the lease, as with its own DDNS). The decision is
/// kept with the packet for the lease and the answer.
pub(crate) fn ddns4_update(engine: &Engine, co: &mut Callout<'_>) {
    let Some(query) = co.packet_names("query4") else {
        return;
    };
    let Some((Some(subnet_id), has_name)) = co.ddns4_update() else {
        return;
    };
    let decision = naming::decide(query.fqdn_flags, &engine.scope(subnet_id), query.skip_ddns);
    // Without a name yet (Kea generates it after the allocation), Kea would
    // fail on the directions; lease4_select sets them in the lease instead.
    if has_name {
        co.set_ddns4_directions(decision.forward, decision.reverse);
    }
    co.set_context(DECISION, pack(&decision));
}

/// lease4_select (allocations, DHCPDISCOVER's fake ones included) and
/// lease4_renew: the lease gets ddns4_update's directions, also where Kea
/// had no name yet; without that decision (no subnet then), the lease's
/// subnet decides.
pub(crate) fn decide(engine: &Engine, co: &mut Callout<'_>) {
    let Some(lease) = co.lease("lease4") else {
        return;
    };
    let decision = match co.context(DECISION).and_then(unpack) {
        Some(decision) => decision,
        None => {
            let Some(query) = co.packet_names("query4") else {
                return;
            };
            let scope = engine.scope(lease.subnet_id);
            let decision = naming::decide(query.fqdn_flags, &scope, query.skip_ddns);
            co.set_context(DECISION, pack(&decision));
            decision
        }
    };
    if (lease.fqdn_fwd, lease.fqdn_rev) != (decision.forward, decision.reverse) {
        co.set_lease_directions("lease4", decision.forward, decision.reverse);
    }
}

/// pkt4_send: option 81 in the answer carries the flags Kea would send with
/// its DDNS client on (Kea answers S=0 N=1 with it off); the name in it is
/// Kea's.
pub(crate) fn answer_fqdn(_engine: &Engine, co: &mut Callout<'_>) {
    if let Some(flags) = co
        .context(DECISION)
        .and_then(unpack)
        .and_then(|d| d.reply_flags)
    {
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

/// subnet6_select: Kea's DDNS client makes up an empty option 39 with S
/// set for a client that sent none, where the subnet sends updates and
/// `ddns-replace-client-name` is `always` or `when-not-present`; Kea then
/// qualifies a reserved hostname or generates one from the address, and
/// answers with option 39. With its DDNS client off (as leasedns requires)
/// kea-dhcp6 skips that, so the hook adds the same option to the query.
pub(crate) fn subnet6_select(engine: &Engine, co: &mut Callout<'_>) {
    let Some(subnet_id) = co.subnet6_id() else {
        return;
    };
    let scope = engine.scope(subnet_id);
    if !(scope.send_updates && scope.generate_names) {
        return;
    }
    if co
        .packet6_names("query6")
        .is_some_and(|q| q.fqdn_flags.is_none())
    {
        co.add_empty_fqdn6("query6", host::FABRICATED_FQDN6_FLAGS);
    }
}

/// ddns6_update: as ddns4_update. Kea calls it only when the exchange has
/// option 39 (the client's, or the one subnet6_select made up); the answer's
/// option 39 is already in the response and gets the decided flags here.
pub(crate) fn ddns6_update(engine: &Engine, co: &mut Callout<'_>) {
    let Some(query) = co.packet6_names("query6") else {
        return;
    };
    let Some((Some(subnet_id), has_name)) = co.ddns6_update() else {
        return;
    };
    let decision = naming::decide(query.fqdn_flags, &engine.scope(subnet_id), query.skip_ddns);
    // Without a name yet (Kea generates it after the allocation), Kea would
    // put the hook's empty name into option 39 and fail; the lease gets the
    // directions in lease6_select instead.
    if has_name {
        co.set_ddns4_directions(decision.forward, decision.reverse);
    }
    if let Some(flags) = decision.reply_flags {
        co.set_packet6_fqdn_flags("response6", flags);
    }
    co.set_context(DECISION, pack(&decision));
}

/// lease6_select, lease6_renew, lease6_rebind: the lease gets ddns6_update's
/// directions (Kea gave it none where it had no name yet). Without option 39
/// ddns6_update did not run: no DNS update, as with Kea's DDNS.
pub(crate) fn decide6(_engine: &Engine, co: &mut Callout<'_>) {
    let Some(decision) = co.context(DECISION).and_then(unpack) else {
        return;
    };
    let Some(lease) = co.lease6("lease6") else {
        return;
    };
    if (lease.fqdn_fwd, lease.fqdn_rev) != (decision.forward, decision.reverse) {
        co.set_lease6_directions("lease6", decision.forward, decision.reverse);
    }
}

/// leases6_committed: as leases4_committed, for the exchange's address
/// leases (prefix delegations get no records).
pub(crate) fn committed6(engine: &Engine, co: &mut Callout<'_>) {
    if let Some(t) = co.packet6_type("query6")
        && matches!(
            t,
            host::DHCPV6_SOLICIT | host::DHCPV6_CONFIRM | host::DHCPV6_INFORMATION_REQUEST
        )
    {
        return;
    }
    for lease in co.leases6("deleted_leases6") {
        remove(engine, &lease);
    }
    let decision = co.context(DECISION).and_then(unpack);
    for mut lease in co.leases6("leases6") {
        if lease.state != crate::change::LEASE_STATE_DEFAULT {
            remove(engine, &lease);
            continue;
        }
        if let Some(d) = decision
            && lease.hostname.is_some()
            && (lease.fqdn_fwd, lease.fqdn_rev) != (d.forward, d.reverse)
        {
            store_directions(&mut lease, d);
        }
        add(engine, &lease);
    }
}

/// A binding the client already had, requested again without a name yet
/// (Kea generates it after the allocation): Kea updates the lease from the
/// exchange, where its DDNS client would have put both directions, with
/// none (ddns6_update cannot set them without a name, and no lease6_select
/// runs). The decided directions go into Kea's lease database here, so it
/// says what DNS holds, as with Kea's own DDNS.
fn store_directions(lease: &mut Lease, decision: naming::Decision) {
    lease.fqdn_fwd = decision.forward;
    lease.fqdn_rev = decision.reverse;
    if let Err(err) = host::store_lease6_directions(lease) {
        tracing::warn!(addr = %lease.addr, %err, "cannot store the lease's DNS update directions in Kea's lease database");
    }
}

/// lease6_decline, lease6_recover: the address loses its name.
pub(crate) fn lease6_gone(engine: &Engine, co: &mut Callout<'_>) {
    if let Some(lease) = co.lease6("lease6") {
        remove(engine, &lease);
    }
}

/// lease6_expire: reclamation, as lease4_expire.
pub(crate) fn lease6_expired(engine: &Engine, co: &mut Callout<'_>) {
    if co.skipped() {
        return;
    }
    if let Some(lease) = co.lease6("lease6") {
        reclaimed(engine, &lease);
    }
}

/// lease4_decline, lease4_expire, lease4_recover: the address loses its name.
pub(crate) fn lease_gone(engine: &Engine, co: &mut Callout<'_>) {
    if let Some(lease) = co.lease("lease4") {
        remove(engine, &lease);
    }
}

/// lease4_expire: reclamation. Kea 3.0's HA skips leases another server
/// owns (status SKIP: the lease stays as it is), and in an HA pair a server
/// serving no client leaves the removal to the peer that serves (both
/// reclaim; the active one may have renewed the lease meanwhile). It forgets
/// what it published either way.
pub(crate) fn lease_expired(engine: &Engine, co: &mut Callout<'_>) {
    if co.skipped() {
        return;
    }
    if let Some(lease) = co.lease("lease4") {
        reclaimed(engine, &lease);
    }
}

/// A reclaimed lease: its records go, unless a passive HA peer leaves that
/// to the serving one.
fn reclaimed(engine: &Engine, lease: &Lease) {
    if crate::lifecycle::ha_passive() {
        engine.unpublish(lease.addr);
        Stats::bump(&engine.stats().reclaims_left_to_partner);
        tracing::debug!(addr = %lease.addr, "lease reclaimed on the passive HA peer; the serving peer removes its records");
        return;
    }
    remove(engine, lease);
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
