//! The adapter between Kea's callout arguments and owned Rust values, over
//! the cxx bridge in `kea_sys`.
//!
//! The bridge returns owned copies (`String`, `Vec<u8>`, shared structs) and
//! turns every C++ exception into `Err`; this file converts them into the
//! engine's types. The raw handles Kea passes become bridge references in
//! `kea_sys::callout_handle` / `kea_sys::library_handle` only, and none is
//! kept after the call returns (STYLE boundary rule 5).

use std::borrow::Cow;
use std::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;

use kea_sys as sys;

use crate::change::Lease;
use crate::config::{Family, KeaSubnetDdns};

/// Kea's `ddns-replace-client-name` values that generate a name for a
/// client that sent none (`D2ClientConfig::RCM_ALWAYS`, `RCM_WHEN_NOT_PRESENT`).
const REPLACE_ALWAYS: u8 = 1;
const REPLACE_WHEN_NOT_PRESENT: u8 = 3;

/// Names longer than this are refused outright (a valid DNS name is at most
/// 255 octets in wire form): a lease's hostname becomes `None`.
const MAX_NAME: usize = 512;

/// What of a client's packet decides its DNS updates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PacketNames {
    /// Option 81's flags, when the client sent option 81.
    pub fqdn_flags: Option<u8>,
    /// Kea 3.0's `SKIP_DDNS` class: the client's name stays out of DNS.
    pub skip_ddns: bool,
}

/// Option 39's flags (RFC 4704), which the adapter translates to and from
/// option 81's layout (S 1, O 2, E 4, N 8) that `naming` works with.
const FQDN6_S: u8 = 0x01;
const FQDN6_O: u8 = 0x02;
const FQDN6_N: u8 = 0x04;

fn fqdn6_to_common(flags: u8) -> u8 {
    use crate::naming::{FLAG_N, FLAG_O, FLAG_S};
    let mut out = 0;
    for (v6, common) in [(FQDN6_S, FLAG_S), (FQDN6_O, FLAG_O), (FQDN6_N, FLAG_N)] {
        if flags & v6 != 0 {
            out |= common;
        }
    }
    out
}

fn common_to_fqdn6(flags: u8) -> u8 {
    use crate::naming::{FLAG_N, FLAG_O, FLAG_S};
    let mut out = 0;
    for (v6, common) in [(FQDN6_S, FLAG_S), (FQDN6_O, FLAG_O), (FQDN6_N, FLAG_N)] {
        if flags & common != 0 {
            out |= v6;
        }
    }
    out
}

/// The flags Kea's DDNS client gives the option 39 it makes up for a
/// client that sent none: S, the server updates both directions.
pub(crate) const FABRICATED_FQDN6_FLAGS: u8 = FQDN6_S;

pub(crate) const DHCPDISCOVER: u8 = 1;
/// DHCPv6 message types that allocate nothing (Kea never commits leases
/// for them).
pub(crate) const DHCPV6_SOLICIT: u8 = 1;
pub(crate) const DHCPV6_CONFIRM: u8 = 4;
pub(crate) const DHCPV6_INFORMATION_REQUEST: u8 = 11;
pub(crate) const DHCPINFORM: u8 = 8;

/// A borrowed `isc::hooks::CalloutHandle&`, valid for the duration of one callout.
pub(crate) struct Callout<'a> {
    handle: Pin<&'a mut sys::CalloutHandle>,
}

/// `text` without NULs (never in names we built; dropped as before the bridge
/// passed lengths).
fn no_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

fn hostname(raw: Vec<u8>) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_NAME {
        None
    } else {
        String::from_utf8(raw).ok()
    }
}

fn lease_from_bridge(raw: sys::Lease4) -> Lease {
    let hostname = hostname(raw.hostname);
    Lease {
        addr: IpAddr::V4(Ipv4Addr::from(raw.addr)),
        valid_lft: raw.valid_lft,
        cltt: raw.cltt,
        subnet_id: raw.subnet_id,
        state: raw.state,
        htype: u8::try_from(raw.htype).unwrap_or(u8::MAX),
        hwaddr: raw.hwaddr,
        client_id: (!raw.client_id.is_empty()).then_some(raw.client_id),
        hostname,
        fqdn_fwd: raw.fqdn_fwd,
        fqdn_rev: raw.fqdn_rev,
        duid: None,
    }
}

/// Kea's `Lease::TYPE_NA`: the only DHCPv6 leases Kea's DDNS names in DNS
/// (temporary addresses and delegated prefixes get no records).
const LEASE6_TYPE_NA: u8 = 0;

/// A DHCPv6 address lease as the engine sees it; `None` for prefix
/// delegations and temporary addresses, and for a malformed address.
fn lease6_from_bridge(raw: sys::Lease6) -> Option<Lease> {
    if raw.lease_type != LEASE6_TYPE_NA {
        return None;
    }
    let octets: [u8; 16] = raw.addr.as_slice().try_into().ok()?;
    Some(Lease {
        addr: IpAddr::V6(Ipv6Addr::from(octets)),
        valid_lft: raw.valid_lft,
        cltt: raw.cltt,
        subnet_id: raw.subnet_id,
        state: raw.state,
        htype: 0,
        hwaddr: Vec::new(),
        client_id: None,
        hostname: hostname(raw.hostname),
        fqdn_fwd: raw.fqdn_fwd,
        fqdn_rev: raw.fqdn_rev,
        duid: (!raw.duid.is_empty()).then_some(raw.duid),
    })
}

impl<'a> Callout<'a> {
    /// # Safety
    /// `handle` must be the `CalloutHandle&` Kea passed to the running callout
    /// or command (or null), and the returned value must not outlive that call.
    pub(crate) unsafe fn from_raw(handle: *mut c_void) -> Option<Callout<'a>> {
        // SAFETY: forwarded to the caller's contract, which is kea_sys's.
        let handle = unsafe { sys::callout_handle(handle) }?;
        Some(Callout { handle })
    }

    /// A command handler's handle, already a bridge reference.
    pub(crate) fn from_bridge(handle: Pin<&'a mut sys::CalloutHandle>) -> Callout<'a> {
        Callout { handle }
    }

    fn handle(&self) -> &sys::CalloutHandle {
        &self.handle
    }

    pub(crate) fn lease(&self, arg: &str) -> Option<Lease> {
        sys::ffi::arg_lease4(self.handle(), arg)
            .ok()
            .map(lease_from_bridge)
    }

    pub(crate) fn leases(&self, arg: &str) -> Vec<Lease> {
        sys::ffi::arg_leases4(self.handle(), arg)
            .map(|leases| leases.into_iter().map(lease_from_bridge).collect())
            .unwrap_or_default()
    }

    pub(crate) fn lease6(&self, arg: &str) -> Option<Lease> {
        sys::ffi::arg_lease6(self.handle(), arg)
            .ok()
            .and_then(lease6_from_bridge)
    }

    pub(crate) fn leases6(&self, arg: &str) -> Vec<Lease> {
        sys::ffi::arg_leases6(self.handle(), arg)
            .map(|leases| leases.into_iter().filter_map(lease6_from_bridge).collect())
            .unwrap_or_default()
    }

    /// Option 39 of the DHCPv6 packet argument `arg`, its flags in option
    /// 81's layout.
    pub(crate) fn packet6_names(&self, arg: &str) -> Option<PacketNames> {
        let raw = sys::ffi::arg_pkt6_names(self.handle(), arg).ok()?;
        Some(PacketNames {
            fqdn_flags: raw.has_fqdn.then(|| fqdn6_to_common(raw.fqdn_flags)),
            skip_ddns: raw.skip_ddns,
        })
    }

    pub(crate) fn packet6_type(&self, arg: &str) -> Option<u8> {
        sys::ffi::arg_pkt6_type(self.handle(), arg).ok()
    }

    /// ddns6_update's subnet (`None` without one) and whether Kea has
    /// named the client yet.
    pub(crate) fn ddns6_update(&self) -> Option<(Option<u32>, bool)> {
        let raw = sys::ffi::arg_ddns6_update(self.handle()).ok()?;
        Some((raw.has_subnet.then_some(raw.subnet_id), raw.has_hostname))
    }

    /// subnet6_select's subnet.
    pub(crate) fn subnet6_id(&self) -> Option<u32> {
        sys::ffi::arg_subnet6_id(self.handle())
            .ok()
            .filter(|id| *id != 0)
    }

    /// Adds an empty option 39 with `flags` (option 39's layout) to the
    /// packet argument `arg` unless it carries one; true when added.
    pub(crate) fn add_empty_fqdn6(&self, arg: &str, flags: u8) -> bool {
        sys::ffi::add_pkt6_empty_fqdn(self.handle(), arg, flags).unwrap_or(false)
    }

    /// Sets the flags of option 39 in the packet argument `arg`, given in
    /// option 81's layout.
    pub(crate) fn set_packet6_fqdn_flags(&self, arg: &str, flags: u8) -> bool {
        sys::ffi::set_pkt6_fqdn_flags(self.handle(), arg, common_to_fqdn6(flags)).is_ok()
    }

    pub(crate) fn packet_names(&self, arg: &str) -> Option<PacketNames> {
        let raw = sys::ffi::arg_pkt4_names(self.handle(), arg).ok()?;
        Some(PacketNames {
            fqdn_flags: raw.has_fqdn.then_some(raw.fqdn_flags),
            skip_ddns: raw.skip_ddns,
        })
    }

    /// Message type and `yiaddr` of the packet argument `arg`, without
    /// its options.
    pub(crate) fn packet_header(&self, arg: &str) -> Option<(u8, Ipv4Addr)> {
        let header = sys::ffi::arg_pkt4_header(self.handle(), arg).ok()?;
        Some((header.msg_type, Ipv4Addr::from(header.yiaddr)))
    }

    /// ddns4_update's subnet (`None` without one) and whether Kea has named
    /// the client yet.
    pub(crate) fn ddns4_update(&self) -> Option<(Option<u32>, bool)> {
        let raw = sys::ffi::arg_ddns4_update(self.handle()).ok()?;
        Some((raw.has_subnet.then_some(raw.subnet_id), raw.has_hostname))
    }

    /// Sets ddns4_update's `fwd-update` and `rev-update`.
    pub(crate) fn set_ddns4_directions(&mut self, fwd: bool, rev: bool) -> bool {
        sys::ffi::set_ddns4_update_directions(self.handle.as_mut(), fwd, rev).is_ok()
    }

    /// Sets the lease argument's update directions, which Kea stores with it.
    pub(crate) fn set_lease_directions(&self, arg: &str, fwd: bool, rev: bool) -> bool {
        sys::ffi::set_lease4_directions(self.handle(), arg, fwd, rev).is_ok()
    }

    /// Sets the DHCPv6 lease argument's update directions.
    pub(crate) fn set_lease6_directions(&self, arg: &str, fwd: bool, rev: bool) -> bool {
        sys::ffi::set_lease6_directions(self.handle(), arg, fwd, rev).is_ok()
    }

    /// Sets the flags of option 81 in the packet argument `arg` (the response).
    pub(crate) fn set_packet_fqdn_flags(&self, arg: &str, flags: u8) -> bool {
        sys::ffi::set_pkt4_fqdn_flags(self.handle(), arg, flags).is_ok()
    }

    /// Keeps `value` with the packet's handle, for a later callout of the
    /// same exchange.
    pub(crate) fn set_context(&mut self, key: &str, value: u32) -> bool {
        sys::ffi::context_set_u32(self.handle.as_mut(), key, value).is_ok()
    }

    /// Whether an earlier library's callout told Kea to skip this step
    /// (Kea 3.0's HA leaves a lease another server owns unreclaimed).
    pub(crate) fn skipped(&self) -> bool {
        sys::ffi::callout_skipped(self.handle()).unwrap_or(false)
    }

    pub(crate) fn context(&self, key: &str) -> Option<u32> {
        sys::ffi::context_get_u32(self.handle(), key).ok()
    }

    /// Starts the repeating main-thread timer from `dhcp4_srv_configured`'s
    /// io_context. `on_tick` must catch its own panics; the timer is stopped
    /// in `unload` before the library can go away.
    /// Kea's own DDNS settings in dhcp4_srv_configured's `server_config`:
    /// Kea's defaults, then every subnet's. `Err` also when Kea's own DDNS
    /// client is on, which would publish every change a second time.
    pub(crate) fn server_ddns(
        &self,
        family: Family,
    ) -> Result<(KeaSubnetDdns, Vec<KeaSubnetDdns>), String> {
        if sys::ffi::server_d2_client_enabled(self.handle()).map_err(|e| e.to_string())? {
            return Err(format!(
                "dhcp-ddns.enable-updates is true: leasedns replaces Kea's DDNS client \
                 (and kea-dhcp-ddns); set it to false in {}.conf",
                family.daemon()
            ));
        }
        let all = match family {
            Family::V4 => sys::ffi::server_subnets_ddns4(self.handle()),
            Family::V6 => sys::ffi::server_subnets_ddns6(self.handle()),
        }
        .map_err(|e| e.to_string())?;
        let mut all = all.into_iter().map(|s| {
            let set = |v: u32| (v > 0).then_some(v);
            KeaSubnetDdns {
                subnet_id: s.subnet_id,
                send_updates: s.send_updates,
                override_client_update: s.override_client_update,
                override_no_update: s.override_no_update,
                update_on_renew: s.update_on_renew,
                use_conflict_resolution: s
                    .has_use_conflict_resolution
                    .then_some(s.use_conflict_resolution),
                conflict_mode: s.conflict_mode,
                ttl_percent: (s.ttl_percent > 0.0).then_some(s.ttl_percent),
                ttl: set(s.ttl),
                ttl_min: set(s.ttl_min),
                ttl_max: set(s.ttl_max),
                generate_names: matches!(
                    s.replace_client_name,
                    REPLACE_ALWAYS | REPLACE_WHEN_NOT_PRESENT
                ),
            }
        });
        let global = all.next().ok_or("Kea returned no DDNS defaults")?;
        Ok((global, all.collect()))
    }

    /// dhcp4_srv_configured: makes Kea refuse the configuration with `error`.
    pub(crate) fn refuse_configuration(&mut self, error: &str) -> bool {
        sys::ffi::refuse_configuration(self.handle.as_mut(), &no_nul(error)).is_ok()
    }

    pub(crate) fn start_timer(&self, interval_ms: i64, on_tick: fn()) -> bool {
        sys::ffi::timer_start(self.handle(), interval_ms, on_tick).is_ok()
    }

    /// Sets the command's answer: `result` 0 success, 1 error; `args` JSON text.
    pub(crate) fn respond(&mut self, result: i32, text: &str, args: Option<&str>) -> bool {
        let args = args.map(no_nul);
        sys::ffi::command_respond(
            self.handle.as_mut(),
            result,
            &no_nul(text),
            args.as_deref().unwrap_or(""),
        )
        .is_ok()
    }
}

/// Called on Kea's main thread (unload).
pub(crate) fn stop_timer() {
    let _ = sys::ffi::timer_stop();
}

/// A borrowed `isc::hooks::LibraryHandle&`, valid during `load`.
pub(crate) struct Library<'a> {
    handle: Pin<&'a mut sys::LibraryHandle>,
}

/// A control-socket command handler; Kea calls it (through the bridge's
/// trampoline) with the command's `CalloutHandle&`. It must not panic.
pub(crate) type CommandHandler = fn(Pin<&mut sys::CalloutHandle>) -> i32;

impl<'a> Library<'a> {
    /// # Safety
    /// `library` must be the `LibraryHandle&` Kea passed to `load` (or null),
    /// and the returned value must not outlive that call.
    pub(crate) unsafe fn from_raw(library: *mut c_void) -> Option<Library<'a>> {
        // SAFETY: forwarded to the caller's contract, which is kea_sys's.
        let handle = unsafe { sys::library_handle(library) }?;
        Some(Library { handle })
    }

    /// The library's `parameters` map as JSON text; `None` when absent.
    pub(crate) fn params_json(&mut self) -> Option<String> {
        sys::ffi::library_params_json(self.handle.as_mut()).ok()
    }

    /// Registers `handler` for control-socket command `name`.
    pub(crate) fn register_command(&mut self, name: &str, handler: CommandHandler) -> bool {
        sys::ffi::register_command(self.handle.as_mut(), name, handler).is_ok()
    }
}

pub(crate) fn stat_set(name: &str, value: i64) {
    // StatsMgr is thread safe, and this is called from Kea's threads only
    // (timer, callouts, load/unload).
    let _ = sys::ffi::stat_set(&no_nul(name), value);
}

/// Severity as the shim expects it: 0 debug, 1 info, 2 warn, 3 error.
pub(crate) fn log(severity: i32, debuglevel: i32, text: &str) {
    // The text is a message argument, never a format string; Kea's logging
    // is thread safe and this runs on Kea's threads.
    let _ = sys::ffi::log(severity, debuglevel, &no_nul(text));
}

pub(crate) fn log_enabled(severity: i32, debuglevel: i32) -> bool {
    sys::ffi::log_enabled(severity, debuglevel).unwrap_or(false)
}

/// Whether Kea's High Availability library is loaded.
pub(crate) fn ha_present() -> bool {
    sys::ffi::ha_present().unwrap_or(false)
}

/// Kea HA's `ha-heartbeat` answer, JSON text. Main thread only (the timer).
pub(crate) fn ha_heartbeat() -> Result<String, String> {
    sys::ffi::ha_heartbeat().map_err(|e| e.to_string())
}

/// Every lease of `family` in Kea's lease database (DHCPv6: the address
/// leases). Main thread only (command handlers, dhcpX_srv_configured, the
/// timer).
pub(crate) fn all_leases(family: Family) -> Option<Vec<Lease>> {
    match family {
        Family::V4 => {
            let leases = sys::ffi::leases4_all().ok()?;
            Some(leases.into_iter().map(lease_from_bridge).collect())
        }
        Family::V6 => {
            let leases = sys::ffi::leases6_all().ok()?;
            Some(leases.into_iter().filter_map(lease6_from_bridge).collect())
        }
    }
}

/// Stores `lease`'s update directions in Kea's lease database (a DHCPv6
/// address lease); true when the stored lease changed.
pub(crate) fn store_lease6_directions(lease: &Lease) -> Result<bool, String> {
    let IpAddr::V6(addr) = lease.addr else {
        return Err(format!("{} is not an IPv6 address", lease.addr));
    };
    sys::ffi::lease6_store_directions(&addr.octets(), lease.fqdn_fwd, lease.fqdn_rev)
        .map_err(|e| e.to_string())
}

/// The name of the Kea daemon this library is loaded into.
pub(crate) fn daemon_name() -> Result<String, String> {
    sys::ffi::daemon_name().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{FLAG_E, FLAG_N, FLAG_O, FLAG_S};

    #[test]
    fn option_39_flags_map_onto_option_81_layout_and_back() {
        // RFC 4704: S 0x01, O 0x02, N 0x04; RFC 4702: S 0x01, O 0x02, E 0x04, N 0x08.
        assert_eq!(fqdn6_to_common(0x01), FLAG_S);
        assert_eq!(fqdn6_to_common(0x04), FLAG_N);
        assert_eq!(fqdn6_to_common(0x03), FLAG_S | FLAG_O);
        assert_eq!(common_to_fqdn6(FLAG_N | FLAG_O), 0x06);
        // Option 39 has no E: an echoed E never reaches the reply as N.
        assert_eq!(common_to_fqdn6(FLAG_S | FLAG_E), 0x01);
        for v6 in 0..8u8 {
            assert_eq!(common_to_fqdn6(fqdn6_to_common(v6)), v6);
        }
        // Unknown (MBZ) bits are dropped.
        assert_eq!(fqdn6_to_common(0xf8), 0);
    }

    #[test]
    fn only_address_leases_are_named() {
        let raw = |lease_type: u8| sys::Lease6 {
            addr: Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 1, 5).octets().to_vec(),
            lease_type,
            prefix_len: 128,
            duid: vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6],
            hostname: b"a.lan.example.".to_vec(),
            fqdn_fwd: true,
            fqdn_rev: true,
            ..sys::Lease6::default()
        };
        let lease = lease6_from_bridge(raw(LEASE6_TYPE_NA)).expect("an IA_NA lease");
        assert_eq!(lease.addr, "fd77::1:5".parse::<IpAddr>().unwrap());
        assert_eq!(
            lease.duid.as_deref(),
            Some(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6][..])
        );
        assert_eq!(lease.hostname.as_deref(), Some("a.lan.example."));
        assert!(lease6_from_bridge(raw(1)).is_none(), "IA_TA");
        assert!(lease6_from_bridge(raw(2)).is_none(), "IA_PD");
        let short = sys::Lease6 {
            addr: vec![0; 4],
            ..raw(LEASE6_TYPE_NA)
        };
        assert!(lease6_from_bridge(short).is_none());
    }
}
