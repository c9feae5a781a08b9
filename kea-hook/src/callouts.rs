//! What each callout does, in safe Rust over the adapter in `host.rs`.
//!
//! Callouts never block: naming is computed in place, DNS work is handed to
//! the engine's bounded queue.

use crate::change::{Change, Lease, LeaseRecords};
use crate::engine::{Engine, Publication};
use crate::host::{self, Callout, PacketNames};
use crate::naming::{self, ClientFqdn, ClientNames, NameOutcome};
use crate::stats::Stats;

fn client_names(names: &PacketNames) -> ClientNames {
    ClientNames {
        fqdn: names.fqdn.as_ref().map(|(flags, name)| ClientFqdn {
            flags: *flags,
            name: name.clone(),
        }),
        hostname: names.hostname.clone(),
    }
}

fn decide(engine: &Engine, names: &PacketNames, addr: std::net::Ipv4Addr) -> NameOutcome {
    let cfg = engine.config();
    if names.oversized {
        return NameOutcome::Rejected(naming::NameRejection {
            kind: naming::RejectionKind::InvalidName,
            reason: "client name longer than 255 octets".to_string(),
        });
    }
    naming::decide(&cfg.naming, &cfg.forward, &client_names(names), addr)
}

/// lease4_select (real allocations) and lease4_renew: the hook owns naming,
/// so the final FQDN goes into the lease before Kea writes it to its database.
pub(crate) fn name_lease(engine: &Engine, co: &Callout<'_>) {
    let Some(names) = co.packet_names("query4") else {
        return;
    };
    if names.msg_type == host::DHCPDISCOVER {
        return;
    }
    let Some(lease) = co.lease("lease4") else {
        return;
    };
    match decide(engine, &names, lease.addr) {
        // Kea 3.0's SKIP_DDNS class: the lease keeps its name, DNS gets
        // nothing (the directions are off, as Kea's own DDNS leaves them).
        NameOutcome::Publish(decision) if names.skip_ddns => {
            co.set_lease_hostname("lease4", &decision.fqdn, false, false);
        }
        NameOutcome::Publish(decision) => {
            co.set_lease_hostname("lease4", &decision.fqdn, decision.forward, decision.reverse);
        }
        NameOutcome::NoUpdate { .. } | NameOutcome::NoName => {
            co.set_lease_hostname("lease4", "", false, false);
        }
        NameOutcome::Rejected(rejection) => {
            Stats::bump(&engine.stats().names_rejected);
            tracing::warn!(addr = %lease.addr, reason = %rejection, "client name refused; lease gets no DNS name");
            co.set_lease_hostname("lease4", "", false, false);
        }
    }
}

/// pkt4_send: answer option 81 (RFC 4702) when the client sent it.
pub(crate) fn answer_fqdn(engine: &Engine, co: &Callout<'_>) {
    let Some(query) = co.packet_names("query4") else {
        return;
    };
    if query.fqdn.is_none() {
        return;
    }
    let Some((_, yiaddr)) = co.packet_header("response4") else {
        return;
    };
    if yiaddr.is_unspecified() {
        return;
    }
    let reply = match decide(engine, &query, yiaddr) {
        NameOutcome::Publish(decision) => decision.reply,
        NameOutcome::NoUpdate { reply, .. } => reply,
        NameOutcome::NoName | NameOutcome::Rejected(_) => None,
    };
    if let Some(reply) = reply {
        // SKIP_DDNS: the server does no update, and says so (S off, N on),
        // as Kea does when DDNS is turned off for the client.
        let flags = if query.skip_ddns {
            (reply.flags & !naming::FLAG_S) | naming::FLAG_N
        } else {
            reply.flags
        };
        co.set_packet_fqdn("response4", flags, &reply.name);
    }
}

/// leases4_committed: the database holds the final state of this exchange.
pub(crate) fn committed(engine: &Engine, co: &Callout<'_>) {
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
pub(crate) fn lease_gone(engine: &Engine, co: &Callout<'_>) {
    if let Some(lease) = co.lease("lease4") {
        remove(engine, &lease);
    }
}

/// The records `lease` asks for, by the one lease -> DNS rule. A DHCID that
/// cannot be computed is logged and means no DNS change (`Err`).
fn lease_records(engine: &Engine, lease: &Lease) -> Result<Option<LeaseRecords>, ()> {
    let scope = engine.scope(lease.subnet_id);
    LeaseRecords::of_lease(lease, scope.conflict_mode, &scope.ttl).map_err(|err| {
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
        Publication::Unchanged => {
            Stats::bump(&engine.stats().changes_unchanged);
            return;
        }
        Publication::Changed { previous } => previous,
    };
    if let Some(old) = previous
        && (old.fqdn != records.fqdn || old.dhcid != records.dhcid)
    {
        // A dropped removal needs no bookkeeping: the reconciliation the
        // drop asks for finds the record without a lease and removes it.
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
