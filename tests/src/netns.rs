//! A private server/client pair of network namespaces joined by a veth.

use crate::error::Result;
use crate::process::{Place, program, run_ok};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Namespaces are named `ldns-<pid>-<n>-srv|cli`, so stale ones from a dead
/// test binary can be recognised by their pid.
const NS_PREFIX: &str = "ldns-";
const IP_TIMEOUT: Duration = Duration::from_secs(10);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces, "server" (Kea, Knot) and "client" (dhclient,
/// perfdhcp), joined by a veth pair. The server end has `10.N.0.1/16`, the
/// client end `10.N.0.2/16` (perfdhcp acts as a relay and needs an address
/// in the subnet). Both namespaces have `lo` up, so a daemon may listen on
/// 127.0.0.1 inside one. Namespaces isolate everything, so parallel tests
/// never collide; N still differs per test to make logs easier to read.
/// Dropping the guard kills whatever still runs inside and deletes both.
#[derive(Debug)]
pub struct Netns {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    octet: u8,
    /// Whether the pair also has IPv6 (see [`Netns::new_v6`]).
    ipv6: bool,
}

impl Netns {
    pub fn new() -> Result<Self> {
        Self::create_with(None, false)
    }

    /// Like [`new`](Self::new), and IPv6 as kea-dhcp6 and `dhclient -6`
    /// need it: duplicate address detection is off in both namespaces
    /// (through their default sysctls, set before the veth arrives, so the
    /// link-local addresses are usable at once), the server end has
    /// `fd77:N::1/64`, the client end `fd77:N::2/64`, and this returns only
    /// once both ends' link-local addresses are usable (kea-dhcp6 binds
    /// only then).
    pub fn new_v6() -> Result<Self> {
        Self::create_with(None, true)
    }

    /// Like [`new`](Self::new), but with `10.octet.0.0/16` whatever other
    /// pairs use: runs that must see the same addresses and names (the
    /// differential tests' stock and hook runs) each get a pair of their
    /// own with the same N. Namespaces isolate them, so they may overlap.
    pub fn with_octet(octet: u8) -> Result<Self> {
        Self::create_with(Some(octet), false)
    }

    /// [`new_v6`](Self::new_v6) with `10.octet.0.0/16` and `fd77:octet::/64`
    /// whatever other pairs use, as [`with_octet`](Self::with_octet): runs
    /// that must see the same addresses and names.
    pub fn new_v6_with_octet(octet: u8) -> Result<Self> {
        Self::create_with(Some(octet), true)
    }

    fn create_with(octet: Option<u8>, ipv6: bool) -> Result<Self> {
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let octet = octet.unwrap_or_else(|| u8::try_from(10 + n % 240).unwrap_or(10));
        // Interface names are at most 15 bytes: "ld" + pid (<= 7 digits)
        // + "x" + n (<= 4 digits) + "s" fits.
        let tag = format!("{pid}x{}", n % 10_000);
        let net = Self {
            server_ns: format!("{NS_PREFIX}{pid}-{n}-srv"),
            client_ns: format!("{NS_PREFIX}{pid}-{n}-cli"),
            server_if: format!("ld{tag}s"),
            client_if: format!("ld{tag}c"),
            octet,
            ipv6,
        };
        // From here on Drop removes whatever part was created.
        net.create()?;
        if ipv6 {
            net.wait_link_local()?;
        }
        Ok(net)
    }

    fn create(&self) -> Result<()> {
        let server = self.server_addr();
        let client = self.client_addr();
        let mut steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), self.server_ns.clone()],
            vec!["netns".into(), "add".into(), self.client_ns.clone()],
        ];
        if self.ipv6 {
            // An interface takes its IPv6 settings from `default` when it
            // appears in the namespace: this must precede `link set netns`.
            for ns in [&self.server_ns, &self.client_ns] {
                steps.extend(no_dad(ns));
            }
        }
        steps.extend([
            format!(
                "link add {} type veth peer name {}",
                self.server_if, self.client_if
            )
            .split(' ')
            .map(String::from)
            .collect(),
            move_link(&self.server_if, &self.server_ns),
            move_link(&self.client_if, &self.client_ns),
            ns_args(
                &self.server_ns,
                &format!("addr add {server}/16 dev {}", self.server_if),
            ),
            ns_args(
                &self.client_ns,
                &format!("addr add {client}/16 dev {}", self.client_if),
            ),
            ns_args(&self.server_ns, &format!("link set {} up", self.server_if)),
            ns_args(&self.client_ns, &format!("link set {} up", self.client_if)),
            ns_args(&self.server_ns, "link set lo up"),
            ns_args(&self.client_ns, "link set lo up"),
        ]);
        if self.ipv6 {
            steps.extend([
                add_addr6(&self.server_ns, self.server_addr6(), &self.server_if),
                add_addr6(&self.client_ns, self.client_addr6(), &self.client_if),
            ]);
        }
        ip_all(steps)
    }

    /// Waits until both veth ends have a link-local address that is not
    /// tentative (kernel DAD is off, but the address appears only once the
    /// link is up on both sides).
    fn wait_link_local(&self) -> Result<()> {
        wait_link_local(&[
            (&self.server_ns, &self.server_if),
            (&self.client_ns, &self.client_if),
        ])
    }

    /// Where to run server-side programs.
    pub fn server(&self) -> Place {
        Place::Netns(self.server_ns.clone())
    }

    /// Where to run client-side programs.
    pub fn client(&self) -> Place {
        Place::Netns(self.client_ns.clone())
    }

    pub fn server_ns(&self) -> &str {
        &self.server_ns
    }

    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }

    /// The veth end in the server namespace (Kea's interface).
    pub fn server_iface(&self) -> &str {
        &self.server_if
    }

    /// The veth end in the client namespace.
    pub fn client_iface(&self) -> &str {
        &self.client_if
    }

    /// N in `10.N.0.0/16`.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// `10.N.c.d`.
    pub fn addr(&self, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, c, d)
    }

    /// `10.N.0.0/16`.
    pub fn subnet(&self) -> String {
        format!("10.{}.0.0/16", self.octet)
    }

    /// `10.N.0.1`, on the server veth.
    pub fn server_addr(&self) -> Ipv4Addr {
        self.addr(0, 1)
    }

    /// `10.N.0.2`, on the client veth.
    pub fn client_addr(&self) -> Ipv4Addr {
        self.addr(0, 2)
    }

    /// Runs `ip -n <server ns> args...` (e.g. to take the link down).
    pub fn ip_server(&self, args: &[&str]) -> Result<String> {
        ip(&ns_args(&self.server_ns, &args.join(" ")))
    }

    /// Runs `ip -n <client ns> args...`.
    pub fn ip_client(&self, args: &[&str]) -> Result<String> {
        ip(&ns_args(&self.client_ns, &args.join(" ")))
    }

    /// The reverse zone of the subnet: `N.10.in-addr.arpa.`.
    pub fn reverse_zone(&self) -> String {
        format!("{}.10.in-addr.arpa.", self.octet)
    }

    /// Whether the pair was made by [`new_v6`](Self::new_v6).
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// `fd77:N::host` (N written in hex digits as its decimal spelling,
    /// `fd77:42::` for N = 42, so logs read alike in both families).
    pub fn addr6(&self, host: u64) -> Ipv6Addr {
        addr6(self.octet, host)
    }

    /// `fd77:N::/64`.
    pub fn subnet6(&self) -> String {
        format!("{}/64", self.addr6(0))
    }

    /// `fd77:N::1`, on the server veth.
    pub fn server_addr6(&self) -> Ipv6Addr {
        self.addr6(1)
    }

    /// `fd77:N::2`, on the client veth.
    pub fn client_addr6(&self) -> Ipv6Addr {
        self.addr6(2)
    }

    /// The ip6.arpa zone of `fd77:N::/64` (its 16 nibbles).
    pub fn reverse_zone6(&self) -> String {
        crate::zones::reverse_zone6(self.addr6(0), 64)
    }
}

/// `fd77:N::host`, N written in hex digits as its decimal spelling.
fn addr6(octet: u8, host: u64) -> Ipv6Addr {
    let n = u16::from_str_radix(&octet.to_string(), 16).unwrap_or(0);
    let h = host.to_be_bytes();
    let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    Ipv6Addr::new(0xfd77, n, 0, 0, word(0), word(2), word(4), word(6))
}

/// Waits until every `(namespace, interface)` has a usable link-local
/// address (kernel DAD is off, but the address appears only once the link
/// is up on both sides).
fn wait_link_local(ends: &[(&str, &str)]) -> Result<()> {
    crate::wait_until(IP_TIMEOUT, "link-local addresses on the veths", || {
        ends.iter().all(|(ns, iface)| {
            ip(&ns_args(
                ns,
                &format!("-6 addr show dev {iface} scope link"),
            ))
            .is_ok_and(|out| link_local_usable(&out))
        })
    })
}

/// `ip -6 addr add <addr>/64 dev <iface> nodad` in `ns`: usable at once
/// whatever the sysctls say.
fn add_addr6(ns: &str, addr: Ipv6Addr, iface: &str) -> Vec<String> {
    ns_args(ns, &format!("-6 addr add {addr}/64 dev {iface} nodad"))
}

/// `sysctl` steps turning duplicate address detection off for interfaces
/// created in (or moved into) `ns` from now on.
fn no_dad(ns: &str) -> Vec<Vec<String>> {
    ["all", "default"]
        .iter()
        .flat_map(|scope| {
            [
                format!("net.ipv6.conf.{scope}.accept_dad=0"),
                format!("net.ipv6.conf.{scope}.disable_ipv6=0"),
            ]
        })
        .map(|setting| {
            ["netns", "exec", ns, "sysctl", "-q", "-w", setting.as_str()]
                .into_iter()
                .map(String::from)
                .collect()
        })
        .collect()
}

/// `ip -6 addr show scope link` output: an fe80:: address that is neither
/// tentative nor failed DAD.
fn link_local_usable(out: &str) -> bool {
    out.lines().any(|line| {
        let line = line.trim();
        line.starts_with("inet6 fe80:")
            && !line.contains("tentative")
            && !line.contains("dadfailed")
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.client_ns, &self.server_ns] {
            delete_namespace(ns);
        }
        // The veth normally dies with its namespace; this catches a failure
        // between `link add` and `link set netns`.
        let _ = ip(&["link".into(), "del".into(), self.server_if.clone()]);
    }
}

fn ns_args(ns: &str, rest: &str) -> Vec<String> {
    ["-n", ns]
        .into_iter()
        .chain(rest.split(' '))
        .map(String::from)
        .collect()
}

/// Runs `ip` with each argument list in turn.
fn ip_all(steps: Vec<Vec<String>>) -> Result<()> {
    for args in steps {
        ip(&args)?;
    }
    Ok(())
}

/// `ip link set <iface> netns <ns>`.
fn move_link(iface: &str, ns: &str) -> Vec<String> {
    ["link", "set", iface, "netns", ns]
        .into_iter()
        .map(String::from)
        .collect()
}

fn ip(args: &[String]) -> Result<String> {
    let mut cmd = Command::new(program("ip")?);
    cmd.args(args);
    Ok(run_ok(cmd, None, IP_TIMEOUT)?.stdout)
}

/// Kills what runs inside (daemons started there are ours) and deletes it.
fn delete_namespace(ns: &str) {
    if let Ok(pids) = ip(&["netns".into(), "pids".into(), ns.into()]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let mut attempts = 0;
    while ip(&["netns".into(), "del".into(), ns.into()]).is_err() && attempts < 3 {
        attempts += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes namespaces (and orphan veths) left by test binaries that died
/// without running their destructors, recognised by a dead pid in the name.
fn remove_stale() {
    let Ok(list) = ip(&["netns".into(), "list".into()]) else {
        return;
    };
    for name in list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !pid_alive(pid) {
            eprintln!("harness: removing stale namespace {name}");
            delete_namespace(name);
        }
    }
    let Ok(links) = ip(&["-o".into(), "link".into(), "show".into()]) else {
        return;
    };
    for link in links.lines().filter_map(|line| line.split(": ").nth(1)) {
        let name = link.split('@').next().unwrap_or(link);
        let Some(pid) = name
            .strip_prefix("ld")
            .and_then(|rest| rest.split('x').next())
        else {
            continue;
        };
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !pid_alive(pid) {
            eprintln!("harness: removing stale interface {name}");
            let _ = ip(&["link".into(), "del".into(), name.into()]);
        }
    }
}

fn pid_alive(pid: &str) -> bool {
    std::path::Path::new("/proc").join(pid).exists()
}

/// A third namespace hanging off the server namespace by its own veth, for a
/// daemon (e.g. knotd) that Kea must reach across a link the test can cut
/// without touching the DHCP veth. The server end has `192.168.K.1/24`, the
/// side end `192.168.K.2/24`. Dropping it kills what runs inside and deletes
/// the namespace (and with it the veth pair).
#[derive(Debug)]
pub struct SideNetns {
    ns: String,
    server_ns: String,
    server_if: String,
    side_if: String,
    k: u8,
}

impl SideNetns {
    /// Creates the namespace and its veth to `net`'s server namespace.
    pub fn new(net: &Netns) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{pid}x{}", n % 10_000);
        let side = Self {
            ns: format!("{NS_PREFIX}{pid}-{n}-side"),
            server_ns: net.server_ns.clone(),
            server_if: format!("ld{tag}s"),
            side_if: format!("ld{tag}c"),
            k: u8::try_from(1 + n % 250).unwrap_or(1),
        };
        side.create()?;
        Ok(side)
    }

    fn create(&self) -> Result<()> {
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), self.ns.clone()],
            format!(
                "link add {} type veth peer name {}",
                self.server_if, self.side_if
            )
            .split(' ')
            .map(String::from)
            .collect(),
            format!("link set {} netns {}", self.server_if, self.server_ns)
                .split(' ')
                .map(String::from)
                .collect(),
            format!("link set {} netns {}", self.side_if, self.ns)
                .split(' ')
                .map(String::from)
                .collect(),
            ns_args(
                &self.server_ns,
                &format!("addr add {}/24 dev {}", self.server_addr(), self.server_if),
            ),
            ns_args(
                &self.ns,
                &format!("addr add {}/24 dev {}", self.addr(), self.side_if),
            ),
            ns_args(&self.server_ns, &format!("link set {} up", self.server_if)),
            ns_args(&self.ns, &format!("link set {} up", self.side_if)),
            ns_args(&self.ns, "link set lo up"),
        ];
        ip_all(steps)
    }

    /// Where to run programs in the side namespace.
    pub fn place(&self) -> Place {
        Place::Netns(self.ns.clone())
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// `192.168.K.2`, the side end (where a daemon there listens).
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.k, 2)
    }

    /// `192.168.K.1`, the server namespace's end.
    pub fn server_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.k, 1)
    }

    /// The veth end inside the server namespace.
    pub fn server_iface(&self) -> &str {
        &self.server_if
    }

    /// Takes the server namespace's end of the link down (Kea's packets to
    /// the side namespace then fail with "network unreachable").
    pub fn cut(&self) -> Result<()> {
        ip(&ns_args(
            &self.server_ns,
            &format!("link set {} down", self.server_if),
        ))
        .map(|_| ())
    }

    /// Brings the link back up; the kernel restores its connected route.
    pub fn restore(&self) -> Result<()> {
        ip(&ns_args(
            &self.server_ns,
            &format!("link set {} up", self.server_if),
        ))
        .map(|_| ())
    }
}

impl Drop for SideNetns {
    fn drop(&mut self) {
        delete_namespace(&self.ns);
        let _ = ip(&["link".into(), "del".into(), self.side_if.clone()]);
    }
}

/// One LAN segment shared by several DHCP servers, as an HA pair needs:
/// a client namespace holding a bridge (`10.N.0.2/16`, where perfdhcp,
/// dhclient, knotd and kdig run) and one namespace per server, each on its
/// own veth into the bridge (`10.N.0.11/16`, `10.N.0.12/16`, ...). A
/// broadcast from the client reaches every server, and each server reaches
/// the others and the client's address. Dropping it kills what runs inside
/// and deletes the namespaces.
#[derive(Debug)]
pub struct Lan {
    client_ns: String,
    bridge: String,
    servers: Vec<(String, String)>,
    octet: u8,
    /// Whether the LAN also has IPv6 (see [`Lan::new_v6`]).
    ipv6: bool,
}

impl Lan {
    pub fn new(servers: usize) -> Result<Self> {
        Self::create_with(servers, false)
    }

    /// Like [`new`](Self::new), and IPv6 as [`Netns::new_v6`] sets it up:
    /// no duplicate address detection, the bridge `fd77:N::2/64`, server
    /// `i` `fd77:N::(11 + i)/64` (hex digits as in [`Netns::addr6`]), and
    /// this returns once every end's link-local address is usable.
    pub fn new_v6(servers: usize) -> Result<Self> {
        Self::create_with(servers, true)
    }

    fn create_with(servers: usize, ipv6: bool) -> Result<Self> {
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(remove_stale);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{pid}x{}", n % 10_000);
        let lan = Self {
            client_ns: format!("{NS_PREFIX}{pid}-{n}-lan"),
            bridge: format!("ld{tag}b"),
            servers: (1..=servers)
                .map(|i| (format!("{NS_PREFIX}{pid}-{n}-s{i}"), format!("ld{tag}s{i}")))
                .collect(),
            octet: u8::try_from(10 + n % 240).unwrap_or(10),
            ipv6,
        };
        lan.create()?;
        if ipv6 {
            let mut ends = vec![(lan.client_ns.as_str(), lan.bridge.as_str())];
            ends.extend(lan.servers.iter().map(|(ns, i)| (ns.as_str(), i.as_str())));
            wait_link_local(&ends)?;
        }
        Ok(lan)
    }

    fn create(&self) -> Result<()> {
        let client = self.client_addr();
        let mut steps: Vec<Vec<String>> =
            vec![vec!["netns".into(), "add".into(), self.client_ns.clone()]];
        if self.ipv6 {
            // Before any interface appears in the namespace (see Netns).
            steps.extend(no_dad(&self.client_ns));
        }
        steps.extend([
            ns_args(
                &self.client_ns,
                &format!("link add {} type bridge", self.bridge),
            ),
            ns_args(
                &self.client_ns,
                &format!("addr add {client}/16 dev {}", self.bridge),
            ),
            ns_args(&self.client_ns, &format!("link set {} up", self.bridge)),
            ns_args(&self.client_ns, "link set lo up"),
        ]);
        if self.ipv6 {
            steps.push(add_addr6(
                &self.client_ns,
                self.client_addr6(),
                &self.bridge,
            ));
        }
        for (i, (ns, iface)) in self.servers.iter().enumerate() {
            let port = format!("{iface}p");
            let addr = self.server_addr(i);
            steps.push(vec!["netns".into(), "add".into(), ns.clone()]);
            if self.ipv6 {
                steps.extend(no_dad(ns));
            }
            steps.extend([
                format!("link add {iface} type veth peer name {port}")
                    .split(' ')
                    .map(String::from)
                    .collect(),
                move_link(iface, ns),
                move_link(&port, &self.client_ns),
                ns_args(
                    &self.client_ns,
                    &format!("link set {port} master {} up", self.bridge),
                ),
                ns_args(ns, &format!("addr add {addr}/16 dev {iface}")),
                ns_args(ns, &format!("link set {iface} up")),
                ns_args(ns, "link set lo up"),
            ]);
            if self.ipv6 {
                steps.push(add_addr6(ns, self.server_addr6(i), iface));
            }
        }
        ip_all(steps)
    }

    /// Where the clients (and knotd) run.
    pub fn client(&self) -> Place {
        Place::Netns(self.client_ns.clone())
    }

    /// The bridge in the client namespace (perfdhcp's interface).
    pub fn client_iface(&self) -> &str {
        &self.bridge
    }

    /// `10.N.0.2`, on the bridge.
    pub fn client_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 2)
    }

    /// Where server `i` (from 0) runs.
    pub fn server(&self, i: usize) -> Place {
        Place::Netns(self.servers[i].0.clone())
    }

    /// Server `i`'s interface, in its namespace.
    pub fn server_iface(&self, i: usize) -> &str {
        &self.servers[i].1
    }

    /// `10.N.0.(11 + i)`.
    pub fn server_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 11 + u8::try_from(i).unwrap_or(0))
    }

    /// N in `10.N.0.0/16`.
    pub fn octet(&self) -> u8 {
        self.octet
    }

    /// `N.10.in-addr.arpa.`.
    pub fn reverse_zone(&self) -> String {
        format!("{}.10.in-addr.arpa.", self.octet)
    }

    /// Whether the LAN was made by [`new_v6`](Self::new_v6).
    pub fn has_ipv6(&self) -> bool {
        self.ipv6
    }

    /// `fd77:N::host`, as [`Netns::addr6`].
    pub fn addr6(&self, host: u64) -> Ipv6Addr {
        addr6(self.octet, host)
    }

    /// `fd77:N::2`, on the bridge.
    pub fn client_addr6(&self) -> Ipv6Addr {
        self.addr6(2)
    }

    /// `fd77:N::(11 + i)` (hex digits), server `i`'s.
    pub fn server_addr6(&self, i: usize) -> Ipv6Addr {
        self.addr6(0x11 + i as u64)
    }

    /// `fd77:N::/64`.
    pub fn subnet6(&self) -> String {
        format!("{}/64", self.addr6(0))
    }

    /// The ip6.arpa zone of `fd77:N::/64`.
    pub fn reverse_zone6(&self) -> String {
        crate::zones::reverse_zone6(self.addr6(0), 64)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (ns, _) in &self.servers {
            delete_namespace(ns);
        }
        delete_namespace(&self.client_ns);
    }
}
