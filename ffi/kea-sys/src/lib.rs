//! The Kea bridge: one `#[cxx::bridge]` module declaring what crosses between
//! the hook and the C++ glue in `shim/shim.cc`, the only code that touches
//! `isc::` types.
//!
//! Every C++ function that can throw returns `Result`: cxx catches the
//! exception in its generated C++ wrapper and hands it to Rust as `Err`, so no
//! C++ exception crosses into Rust (and through Rust back into Kea's
//! `CalloutManager`). Everything returned is an owned copy (`String`,
//! `Vec<u8>`, shared structs); nothing returned points into Kea's objects.
//!
//! Kea-version-specific code lives only in this crate (`build.rs`, `shim/`).

use std::ffi::c_void;
use std::pin::Pin;

#[cxx::bridge(namespace = "leasedns")]
pub mod ffi {
    /// One `isc::dhcp::Lease4`, copied.
    #[derive(Clone, Debug, Default)]
    struct Lease4 {
        /// Host byte order.
        addr: u32,
        valid_lft: u32,
        cltt: i64,
        subnet_id: u32,
        /// 0 default, 1 declined, 2 expired-reclaimed.
        state: u32,
        htype: u16,
        hwaddr: Vec<u8>,
        /// Empty when the lease has no client identifier.
        client_id: Vec<u8>,
        /// `hostname_` as Kea stores it (not checked for UTF-8 here).
        hostname: Vec<u8>,
        fqdn_fwd: bool,
        fqdn_rev: bool,
    }

    /// What of a DHCPv4 packet decides its DNS updates (its names are Kea's
    /// business: Kea puts the final one in the lease).
    /// A DHCPv6 lease (IA_NA, IA_TA or IA_PD).
    #[derive(Clone, Debug, Default)]
    struct Lease6 {
        /// The address or prefix, 16 octets.
        addr: Vec<u8>,
        /// Kea's `Lease::Type`: 0 IA_NA, 1 IA_TA, 2 IA_PD.
        lease_type: u8,
        prefix_len: u8,
        iaid: u32,
        valid_lft: u32,
        cltt: i64,
        subnet_id: u32,
        state: u32,
        duid: Vec<u8>,
        hostname: Vec<u8>,
        fqdn_fwd: bool,
        fqdn_rev: bool,
    }

    #[derive(Clone, Debug, Default)]
    struct ClientNames {
        /// Option 81 present (with at least its three fixed octets).
        has_fqdn: bool,
        /// Option 81's flags field.
        fqdn_flags: u8,
        /// Kea 3.0: the query is in the client class `SKIP_DDNS`, which
        /// tells Kea's DDNS to leave the client's name out of DNS. Always
        /// false on older releases, which have no such class.
        skip_ddns: bool,
    }

    /// Kea's own DDNS settings of one subnet, with Kea's inheritance from
    /// shared network and global scope applied.
    #[derive(Clone, Debug, Default)]
    struct SubnetDdns {
        /// 0: Kea's defaults for a lease without a subnet.
        subnet_id: u32,
        /// `ddns-send-updates`.
        send_updates: bool,
        /// `ddns-override-client-update`.
        override_client_update: bool,
        /// `ddns-override-no-update`.
        override_no_update: bool,
        /// `ddns-update-on-renew`.
        update_on_renew: bool,
        /// Kea 2.2's `ddns-use-conflict-resolution` (has_ false on 2.6+,
        /// where the mode replaces it).
        has_use_conflict_resolution: bool,
        use_conflict_resolution: bool,
        /// `ddns-conflict-resolution-mode`, Kea's name; empty on 2.2.
        conflict_mode: String,
        /// `ddns-ttl-percent`; 0 when unset (and always on 2.2).
        ttl_percent: f64,
        /// Kea 3.0's `ddns-ttl`, `ddns-ttl-min`, `ddns-ttl-max`; 0 when
        /// unset (and always before 3.0).
        ttl: u32,
        ttl_min: u32,
        ttl_max: u32,
        /// Kea's `ddns-replace-client-name`: 0 never, 1 always,
        /// 2 when-present, 3 when-not-present.
        replace_client_name: u8,
    }

    /// The arguments of ddns4_update that the hook reads.
    #[derive(Clone, Copy, Debug, Default)]
    struct Ddns4Update {
        /// The subnet Kea selected for the exchange (0 with none).
        subnet_id: u32,
        has_subnet: bool,
        /// Kea has named the client already (empty: Kea generates the name
        /// after the allocation, or there is none).
        has_hostname: bool,
    }

    /// Message type and `yiaddr` of a DHCPv4 packet.
    #[derive(Clone, Copy, Debug, Default)]
    struct PacketHeader {
        /// DHCP message type, 0 if absent.
        msg_type: u8,
        /// Host byte order.
        yiaddr: u32,
    }

    extern "Rust" {
        /// `data` as a `Vec<u8>` in one call: filling a `rust::Vec` from C++
        /// byte by byte costs a few calls into Rust per byte.
        fn copy_bytes(data: &[u8]) -> Vec<u8>;
    }

    #[namespace = "isc::hooks"]
    unsafe extern "C++" {
        include!("kea-sys/shim/leasedns_shim.h");

        /// Kea's `isc::hooks::CalloutHandle`, live for one callout or command.
        type CalloutHandle;
        /// Kea's `isc::hooks::LibraryHandle`, live during `load`.
        type LibraryHandle;
    }

    unsafe extern "C++" {
        include!("kea-sys/shim/leasedns_shim.h");

        // Callout arguments. A missing argument, a type mismatch (Kea's
        // getArgument is an exact any_cast) or a null pointer is an Err.

        /// The `Lease4Ptr` argument `name`.
        fn arg_lease4(handle: &CalloutHandle, name: &str) -> Result<Lease4>;
        /// Every non-null lease of the `Lease4CollectionPtr` argument `name`
        /// (empty when the collection pointer is null).
        fn arg_leases4(handle: &CalloutHandle, name: &str) -> Result<Vec<Lease4>>;
        /// Option 81's flags and SKIP_DDNS of the `Pkt4Ptr` argument `name`.
        fn arg_pkt4_names(handle: &CalloutHandle, name: &str) -> Result<ClientNames>;
        /// Message type and yiaddr of the `Pkt4Ptr` argument `name`: cheaper
        /// than the names when only these are needed.
        fn arg_pkt4_header(handle: &CalloutHandle, name: &str) -> Result<PacketHeader>;
        /// ddns4_update's subnet and whether Kea has a name for the client yet.
        fn arg_ddns4_update(handle: &CalloutHandle) -> Result<Ddns4Update>;
        /// Sets ddns4_update's `fwd-update` and `rev-update` arguments, which
        /// Kea takes back into the exchange (and the lease). Only with a
        /// name: Kea 2.2 to 3.0 then rewrite option 81 with that name as a
        /// full one, which throws for an empty name.
        fn set_ddns4_update_directions(
            handle: Pin<&mut CalloutHandle>,
            fwd: bool,
            rev: bool,
        ) -> Result<()>;
        /// Sets `fqdn_fwd_` and `fqdn_rev_` of the lease argument `name`.
        fn set_lease4_directions(
            handle: &CalloutHandle,
            name: &str,
            fwd: bool,
            rev: bool,
        ) -> Result<()>;
        /// Sets the flags field (S, O, E, N) of option 81 in the packet
        /// argument `name` (normally response4); nothing without option 81.
        fn set_pkt4_fqdn_flags(handle: &CalloutHandle, name: &str, flags: u8) -> Result<()>;
        /// Stores `value` in the handle's per-library context under `key`:
        /// it lives as long as the packet's handle, across its callouts.
        fn arg_lease6(handle: &CalloutHandle, name: &str) -> Result<Lease6>;
        fn arg_leases6(handle: &CalloutHandle, name: &str) -> Result<Vec<Lease6>>;
        /// Option 39's flags (as the option carries them: S 1, O 2, N 4).
        fn arg_pkt6_names(handle: &CalloutHandle, name: &str) -> Result<ClientNames>;
        fn arg_pkt6_type(handle: &CalloutHandle, name: &str) -> Result<u8>;
        /// ddns6_update's subnet and whether Kea has named the client.
        fn arg_ddns6_update(handle: &CalloutHandle) -> Result<Ddns4Update>;
        /// subnet6_select's subnet id (0 without a subnet).
        fn arg_subnet6_id(handle: &CalloutHandle) -> Result<u32>;
        /// Adds an empty, partial option 39 with `flags` to the packet
        /// argument `name` unless it has one: Kea then names the client as
        /// its DDNS client does for a client that sent none.
        fn add_pkt6_empty_fqdn(handle: &CalloutHandle, name: &str, flags: u8) -> Result<bool>;
        fn set_lease6_directions(
            handle: &CalloutHandle,
            name: &str,
            fwd: bool,
            rev: bool,
        ) -> Result<()>;
        /// Sets the flags (S 1, O 2, N 4) of option 39 in the packet
        /// argument `name`.
        fn set_pkt6_fqdn_flags(handle: &CalloutHandle, name: &str, flags: u8) -> Result<()>;
        fn context_set_u32(handle: Pin<&mut CalloutHandle>, key: &str, value: u32) -> Result<()>;
        /// The context value under `key` (Err when none was set).
        fn context_get_u32(handle: &CalloutHandle, key: &str) -> Result<u32>;

        /// Sets a control command's `response` argument (`createAnswer`);
        /// `args_json` is the answer's arguments as JSON text, empty for none.
        fn command_respond(
            handle: Pin<&mut CalloutHandle>,
            result: i32,
            text: &str,
            args_json: &str,
        ) -> Result<()>;
        /// Registers `handler` for the control command `name`: Kea calls a
        /// C++ trampoline of type `int (*)(CalloutHandle&)`, which finds the
        /// handler by the command's name and calls it. `handler` must not
        /// panic (cxx aborts on a panic crossing it): run it under a guard.
        fn register_command(
            library: Pin<&mut LibraryHandle>,
            name: &str,
            handler: fn(handle: Pin<&mut CalloutHandle>) -> i32,
        ) -> Result<()>;
        /// The library's `parameters` map as JSON text (Err when absent).
        fn library_params_json(library: Pin<&mut LibraryHandle>) -> Result<String>;

        /// Kea's DDNS settings in the `server_config` argument of
        /// dhcp4_srv_configured: first Kea's defaults for a lease without a
        /// subnet (`subnet_id` 0), then every IPv4 subnet's.
        fn server_subnets_ddns4(handle: &CalloutHandle) -> Result<Vec<SubnetDdns>>;
        fn server_subnets_ddns6(handle: &CalloutHandle) -> Result<Vec<SubnetDdns>>;

        /// The name of the Kea daemon the library is loaded into
        /// (`kea-dhcp4`, `kea-dhcp6`, `kea-dhcp-ddns`, ...).
        fn daemon_name() -> Result<String>;

        /// Whether `server_config`'s `dhcp-ddns.enable-updates` is on (Kea's
        /// own DDNS client, which leasedns replaces).
        fn server_d2_client_enabled(handle: &CalloutHandle) -> Result<bool>;

        /// Refuses the configuration in dhcp4_srv_configured: sets the
        /// handle's status to DROP and its `error` argument, which Kea
        /// reports as the configuration's error.
        fn refuse_configuration(handle: Pin<&mut CalloutHandle>, error: &str) -> Result<()>;

        /// Every IPv4 lease of Kea's current lease manager (any backend).
        /// Main thread only; Err when there is no lease manager.
        fn leases4_all() -> Result<Vec<Lease4>>;
        fn leases6_all() -> Result<Vec<Lease6>>;
        /// Stores the update directions of the IA_NA lease of `addr` (16
        /// octets) in Kea's lease database; false when there is no such
        /// lease or it already has them.
        fn lease6_store_directions(addr: &[u8], fwd: bool, rev: bool) -> Result<bool>;

        /// Whether an earlier callout of this hook point set the status
        /// to SKIP (Kea 3.0's HA skips the reclamation of a lease another
        /// server owns): Kea then leaves the lease as it is.
        fn callout_skipped(handle: &CalloutHandle) -> Result<bool>;

        /// Whether Kea's High Availability library is loaded (its
        /// `ha-heartbeat` command has a handler).
        fn ha_present() -> Result<bool>;

        /// Kea HA's answer to `ha-heartbeat` (state, served scopes), as
        /// JSON text, run in process. Main thread only, outside callouts.
        fn ha_heartbeat() -> Result<String>;

        /// Sets a statistic (isc::stats::StatsMgr, thread safe), keeping one sample.
        fn stat_set(name: &str, value: i64) -> Result<()>;

        /// Logs `text` as the argument of a fixed message through isc::log,
        /// logger kea-dhcp4.leasedns. severity: 0 debug, 1 info, 2 warn,
        /// 3 error; debuglevel 0..99 for debug.
        fn log(severity: i32, debuglevel: i32, text: &str) -> Result<()>;
        fn log_enabled(severity: i32, debuglevel: i32) -> Result<bool>;

        /// Starts (or restarts) a repeating timer on Kea's main IOService,
        /// taken from the `io_context` argument of dhcp4_srv_configured.
        /// `on_tick` runs on Kea's main thread and must not panic.
        fn timer_start(handle: &CalloutHandle, interval_ms: i64, on_tick: fn()) -> Result<()>;
        /// Cancels the timer (see the comment in shim.cc on why it is leaked).
        fn timer_stop() -> Result<()>;
    }
}

fn copy_bytes(data: &[u8]) -> Vec<u8> {
    data.to_vec()
}

pub use ffi::{CalloutHandle, ClientNames, Lease4, Lease6, LibraryHandle, PacketHeader};

/// Kea's `KEA_HOOKS_VERSION` of the headers this crate was built against.
pub const KEA_HOOKS_VERSION: i32 = {
    let bytes = env!("LEASEDNS_KEA_HOOKS_VERSION").as_bytes();
    let mut value: i32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as i32;
        i += 1;
    }
    value
};

/// The one place a raw `CalloutHandle&` from Kea becomes the bridge's type.
///
/// # Safety
/// `handle` must be null or the `CalloutHandle&` Kea passed to the running
/// callout or command handler, and the returned reference must not outlive
/// that call.
pub unsafe fn callout_handle<'a>(handle: *mut c_void) -> Option<Pin<&'a mut CalloutHandle>> {
    // SAFETY: Kea passes `CalloutHandle&`, a pointer at the ABI level, to an
    // object it owns and keeps alive (and does not move) for the whole
    // callout; the caller bounds the lifetime to that call. Rust never reads
    // the opaque type's memory, only passes the reference back to C++.
    unsafe {
        handle
            .cast::<CalloutHandle>()
            .as_mut()
            .map(|h| Pin::new_unchecked(h))
    }
}

/// The one place a raw `LibraryHandle&` from Kea becomes the bridge's type.
///
/// # Safety
/// `library` must be null or the `LibraryHandle&` Kea passed to `load`, and
/// the returned reference must not outlive that call.
pub unsafe fn library_handle<'a>(library: *mut c_void) -> Option<Pin<&'a mut LibraryHandle>> {
    // SAFETY: as in `callout_handle`: Kea's `LibraryHandle&` is live and
    // unmoved for the duration of load(), which bounds the lifetime.
    unsafe {
        library
            .cast::<LibraryHandle>()
            .as_mut()
            .map(|h| Pin::new_unchecked(h))
    }
}
