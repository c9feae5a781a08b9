//! End-to-end harness: runs the real kea-dhcp4, knotd, dhclient and perfdhcp.
//!
//! Every test gets its own pair of network namespaces ([`Netns`]), its own
//! temporary directory per daemon, and kill-on-drop guards ([`ChildGuard`]),
//! so tests run in parallel and leave nothing behind even when they panic.
//! Readiness is always checked by talking to the daemon (a DNS query, a
//! control-socket command), never by sleeping.
//!
//! The tests need root (namespaces, raw sockets). [`require_root`] prints a
//! clear line and lets a test return early when it is not root; nothing else
//! is a reason to skip.

mod child;
mod dhclient;
mod dns;
mod error;
mod kea;
mod knot;
mod netns;
mod perfdhcp;
mod process;

pub use child::ChildGuard;
pub use dhclient::{Dhclient, DhclientOptions, Fqdn, Lease};
pub use dns::{Answer, Dns, ZoneRecord};
pub use error::{HarnessError, Result};
pub use kea::{Kea, KeaOptions};
pub use knot::{Knot, KnotOptions, TsigKeyInfo};
pub use netns::{Netns, SideNetns};
pub use perfdhcp::{Exchange, Perfdhcp, PerfdhcpReport};
pub use process::{Output, Place, program};

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often [`wait_until`] and [`wait_for`] poll.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// True when running as root. Otherwise prints why the test is skipped, so a
/// green run without root is never mistaken for a real pass.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    // Written to the stderr handle rather than with eprintln!, which libtest
    // captures and hides for passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: end-to-end tests need root (network namespaces, raw sockets)"
    );
    false
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

/// The leasedns hook library to load into kea-dhcp4.
///
/// `LEASEDNS_HOOK_LIB` wins (build/test sets it to the release build);
/// otherwise the workspace's `target/release` and then `target/debug` are
/// tried. Fails with a message saying how to build it.
pub fn hook_library() -> Result<PathBuf> {
    built_library(
        "LEASEDNS_HOOK_LIB",
        "libdhcp_leasedns.so",
        "cargo build --release -p kea-hook",
    )
}

/// The Knot module (`libquerystats.so`), found like [`hook_library`] with
/// `LEASEDNS_KNOT_MODULE`.
pub fn knot_module_library() -> Result<PathBuf> {
    built_library(
        "LEASEDNS_KNOT_MODULE",
        "libquerystats.so",
        "cargo build --release -p knot-module",
    )
}

fn built_library(env_var: &str, file: &str, build: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(HarnessError::Missing(format!(
            "{env_var}={} does not exist",
            path.display()
        )));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    for profile in ["release", "debug"] {
        let candidate = target.join(profile).join(file);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(HarnessError::Missing(format!(
        "{file} not found under {}; run `{build}` or set {env_var}",
        target.display()
    )))
}
