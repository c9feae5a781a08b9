//! End-to-end harness: runs the real kea-dhcp4, kea-dhcp6, kea-dhcp-ddns,
//! knotd, dhclient (v4 and -6) and perfdhcp, and scripted relaying
//! DHCPv4 and DHCPv6 clients.
//!
//! Every test gets its own pair of network namespaces ([`Netns`]), its own
//! temporary directory per daemon, and kill-on-drop guards ([`ChildGuard`]),
//! so tests run in parallel and leave nothing behind even when they panic.
//! Readiness is always checked by talking to the daemon (a DNS query, a
//! control-socket command), never by sleeping.
//!
//! The tests need root (namespaces, raw sockets) and the plugins just built:
//! they are `#[ignore]`d so a plain `cargo test` does not count them as
//! passed, and build/test runs them with `--include-ignored` after building
//! the plugins and naming the exact files in `LEASEDNS_HOOK_LIB` and
//! `LEASEDNS_KNOT_MODULE`. [`require_root`] fails a test that runs without
//! root.

mod child;
mod d2;
mod dhclient;
mod dhclient6;
mod dhcp4_client;
mod dhcp6_client;
mod dns;
mod error;
mod kea;
mod knot;
mod netns;
mod perfdhcp;
mod process;
mod zones;

pub use child::ChildGuard;
pub use d2::{D2, D2Options, NcrProgress, ddns_domains, ddns_domains_multi};
/// The in-addr.arpa name of an address, as the hook writes it (the one helper).
pub use ddns_engine::change::{absolute_fqdn, reverse_name};
pub use dhclient::{Dhclient, DhclientOptions, Fqdn, Lease};
pub use dhclient6::{Dhclient6, Dhclient6Options, Fqdn6, Lease6};
/// A lease obtained by [`RelayClient::allocate`].
pub use dhcp4_client::Lease as RelayLease;
pub use dhcp4_client::{ClientFqdn, ClientSpec, RelayClient, Reply};
pub use dhcp6_client::{Client6Spec, ClientFqdn6, Lease6 as RelayLease6, RelayClient6, Reply6};
pub use dns::{Answer, Dns, ZoneRecord};
pub use error::{HarnessError, Result};
pub use kea::{Family, Kea, KeaOptions, kea_release, link_hooks, private_dirs, send_command};
pub use knot::{Knot, KnotOptions, TsigKeyInfo};
pub use netns::{Lan, Netns, SideNetns};
pub use perfdhcp::{Exchange, Perfdhcp, PerfdhcpReport};
pub use process::{Output, Place, program};
pub use zones::{
    LeaseNames, ZoneNames, ptr_owner_addr, ptr6_owner_addr, reverse_name6, reverse_zone6,
};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`wait_for`] poll.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Fails the calling test unless it runs as root. End-to-end tests are
/// `#[ignore]`d, so a plain `cargo test` reports them as ignored; when they
/// are asked for (`--include-ignored`, as build/test does) without root they
/// fail loudly instead of passing with nothing run.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "end-to-end tests need root (network namespaces, raw sockets); run ./build/test as root"
    );
}

/// Polls `condition` until it holds or `timeout` passes.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    wait_for(timeout, what, || condition().then_some(()))
}

/// Polls `probe` until it returns a value or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The leasedns hook library to load into kea-dhcp4: exactly the file named
/// by `LEASEDNS_HOOK_LIB` (build/test, build/demo and build/bench set it to
/// the library they have just built). Never guesses from `target/`: a stale
/// build there would be tested silently.
pub fn hook_library() -> Result<PathBuf> {
    built_library(
        "LEASEDNS_HOOK_LIB",
        "cargo build --release -p kea-hook",
        "libdhcp_leasedns.so",
    )
}

/// The Knot module (`libquerystats.so`): exactly the file named by
/// `LEASEDNS_KNOT_MODULE`, as [`hook_library`].
pub fn knot_module_library() -> Result<PathBuf> {
    built_library(
        "LEASEDNS_KNOT_MODULE",
        "cargo build --release -p knot-module",
        "libquerystats.so",
    )
}

fn built_library(env_var: &str, build: &str, file: &str) -> Result<PathBuf> {
    let Some(path) = std::env::var_os(env_var) else {
        return Err(HarnessError::Missing(format!(
            "{env_var} is not set: ./build/test builds the plugins and sets it; by hand, \
             run `{build}` and set {env_var}=<target dir>/release/{file}"
        )));
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(HarnessError::Missing(format!(
            "{env_var}={} does not exist",
            path.display()
        )));
    }
    Ok(path)
}
