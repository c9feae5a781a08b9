//! The hook's `parameters`, parsed and validated at `load`.
//!
//! Mirrors kea-dhcp-ddns (D2) so that an operator can paste a D2 configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use hickory_proto::rr::Name;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacMd5,
    HmacSha1,
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

#[derive(Clone)]
pub struct TsigKey {
    /// Fully qualified key name.
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One zone of `forward-ddns` or `reverse-ddns`.
#[derive(Clone, Debug)]
pub struct DdnsDomain {
    /// Zone apex, fully qualified, lower case.
    pub name: Name,
    /// Index into `Config::tsig_keys`; `None` sends unsigned updates.
    pub key: Option<usize>,
    /// Servers in the order they are tried.
    pub servers: Vec<SocketAddr>,
    /// Per server (same order): its own `key-name` (kea-dhcp-ddns 2.6+),
    /// `None` where it has none and uses the zone's. May be empty.
    pub server_keys: Vec<Option<usize>>,
}

impl DdnsDomain {
    /// The key the `i`-th server's messages are signed with: its own, else
    /// the zone's.
    pub fn key_of(&self, i: usize) -> Option<usize> {
        self.server_keys.get(i).copied().flatten().or(self.key)
    }

    /// The zone of `zones` that holds the name whose labels are `labels`
    /// (leaf first, without the root), the longest one when zones nest;
    /// labels compare case-insensitively. The one zone matcher: naming
    /// (is the client's name in a forward zone?), updates (which zone and
    /// servers) and reconciliation (is this record ours?) all ask it.
    pub fn longest_match<'z, L: AsRef<[u8]>>(
        zones: &'z [DdnsDomain],
        labels: &[L],
    ) -> Option<&'z DdnsDomain> {
        zones
            .iter()
            .filter(|zone| {
                let zone_len = zone.name.iter().len();
                zone_len > 0
                    && zone_len <= labels.len()
                    && zone
                        .name
                        .iter()
                        .rev()
                        .zip(labels.iter().rev())
                        .all(|(z, l)| z.eq_ignore_ascii_case(l.as_ref()))
            })
            .max_by_key(|zone| zone.name.iter().len())
    }
}

impl DdnsDomain {
    /// The family whose reverse names the zone holds: V4 under
    /// in-addr.arpa., V6 under ip6.arpa., `None` for any other zone.
    pub fn reverse_family(&self) -> Option<Family> {
        let labels: Vec<&[u8]> = self.name.iter().collect();
        match labels.as_slice() {
            [.., a, b] if a.eq_ignore_ascii_case(b"in-addr") && b.eq_ignore_ascii_case(b"arpa") => {
                Some(Family::V4)
            }
            [.., a, b] if a.eq_ignore_ascii_case(b"ip6") && b.eq_ignore_ascii_case(b"arpa") => {
                Some(Family::V6)
            }
            _ => None,
        }
    }
}

/// The address family of the DHCP server the engine serves: one process
/// is kea-dhcp4 (A records, in-addr.arpa) or kea-dhcp6 (AAAA, ip6.arpa).
/// Reconciliation compares and repairs only its own family's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    V4,
    V6,
}

impl Family {
    /// The Kea daemon serving this family.
    pub fn daemon(self) -> &'static str {
        match self {
            Family::V4 => "kea-dhcp4",
            Family::V6 => "kea-dhcp6",
        }
    }

    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// RFC 4703 conflict resolution, Kea's `ddns-conflict-resolution-mode`.
/// Each change carries its own (`LeaseRecords::mode`) into the journal,
/// which stores the variant's index: add new variants at the end only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ConflictMode {
    #[default]
    CheckWithDhcid,
    NoCheckWithDhcid,
    CheckExistsWithDhcid,
    NoCheckWithoutDhcid,
}

impl ConflictMode {
    /// Kea's name of a mode (`ddns-conflict-resolution-mode`, Kea 2.6+).
    pub fn from_kea_name(name: &str) -> Option<ConflictMode> {
        match name {
            "check-with-dhcid" => Some(ConflictMode::CheckWithDhcid),
            "no-check-with-dhcid" => Some(ConflictMode::NoCheckWithDhcid),
            "check-exists-with-dhcid" => Some(ConflictMode::CheckExistsWithDhcid),
            "no-check-without-dhcid" => Some(ConflictMode::NoCheckWithoutDhcid),
            _ => None,
        }
    }

    /// The `check-*` modes: a name is only written or removed where its
    /// DHCID shows it is the client's (RFC 4703 prerequisites).
    pub fn checks_ownership(self) -> bool {
        matches!(self, Self::CheckWithDhcid | Self::CheckExistsWithDhcid)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct TtlPolicy {
    /// Whose rule computes the TTL: each Kea release line has its own
    /// (see `naming::dhcid::ttl`).
    pub kea: KeaRelease,
    /// Fraction of the valid lifetime; `None`: Kea's rule max(600, lft/3).
    /// Kea's `ddns-ttl-percent` is already a decimal fraction (0.25 means 25%) and is stored as is.
    pub percent: Option<f64>,
    /// Kea 3.0's `ddns-ttl`: this TTL, whatever the lifetime.
    pub fixed: Option<u32>,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// The Kea release line the hook runs in. It decides which DDNS settings
/// Kea itself has (and so come from kea-dhcp4.conf, per subnet, rather than
/// from the hook's parameters) and how the TTL is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum KeaRelease {
    /// 2.2: naming, directions and `ddns-use-conflict-resolution` are Kea's;
    /// `ddns-ttl-percent`, `ddns-ttl-min`, `ddns-ttl-max` (which Kea 2.2 does
    /// not have) are the hook's own parameters.
    #[default]
    V2_2,
    /// 2.6: `ddns-conflict-resolution-mode` and `ddns-ttl-percent` are Kea's
    /// too; `ddns-ttl-min`/`-max` stay the hook's.
    V2_6,
    /// 3.0: all of them are Kea's, plus `ddns-ttl`.
    V3_0,
}

impl KeaRelease {
    /// The release line of Kea's `KEA_HOOKS_VERSION` (2.6.3 is 20603).
    pub fn from_hooks_version(version: i32) -> Option<KeaRelease> {
        match version / 100 {
            202 => Some(KeaRelease::V2_2),
            206 => Some(KeaRelease::V2_6),
            300 => Some(KeaRelease::V3_0),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeaRelease::V2_2 => "2.2",
            KeaRelease::V2_6 => "2.6",
            KeaRelease::V3_0 => "3.0",
        }
    }

    /// Kea's DDNS settings, with the first release that has each in its own
    /// configuration (kea-dhcp4.conf, at global, shared-network and subnet
    /// scope). The hook reads them from Kea and refuses them as parameters.
    const NATIVE_SINCE: [(&'static str, KeaRelease); 16] = [
        ("ddns-send-updates", KeaRelease::V2_2),
        ("ddns-override-no-update", KeaRelease::V2_2),
        ("ddns-override-client-update", KeaRelease::V2_2),
        ("ddns-replace-client-name", KeaRelease::V2_2),
        ("ddns-generated-prefix", KeaRelease::V2_2),
        ("ddns-qualifying-suffix", KeaRelease::V2_2),
        ("hostname-char-set", KeaRelease::V2_2),
        ("hostname-char-replacement", KeaRelease::V2_2),
        ("ddns-update-on-renew", KeaRelease::V2_2),
        ("ddns-use-conflict-resolution", KeaRelease::V2_2),
        ("ddns-conflict-resolution-mode", KeaRelease::V2_6),
        ("ddns-ttl-percent", KeaRelease::V2_6),
        ("ddns-ttl", KeaRelease::V3_0),
        ("ddns-ttl-min", KeaRelease::V3_0),
        ("ddns-ttl-max", KeaRelease::V3_0),
        // Kea's DDNS client section: leasedns replaces it (it stays off).
        ("dhcp-ddns", KeaRelease::V2_2),
    ];

    /// True when this Kea has `setting` itself.
    pub fn has_native(self, setting: &str) -> bool {
        KeaRelease::NATIVE_SINCE
            .iter()
            .any(|(name, since)| *name == setting && self >= *since)
    }
}

/// Kea's own DDNS settings of one subnet (with Kea's inheritance from
/// shared network and global scope already applied), as the adapter reads
/// them from Kea's configuration. `None`/empty: not set at any scope, or
/// not a setting of the running release.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeaSubnetDdns {
    pub subnet_id: u32,
    pub send_updates: bool,
    pub override_client_update: bool,
    pub override_no_update: bool,
    pub update_on_renew: bool,
    /// Kea 2.2's `ddns-use-conflict-resolution`.
    pub use_conflict_resolution: Option<bool>,
    /// `ddns-conflict-resolution-mode` (Kea 2.6+), Kea's name.
    pub conflict_mode: String,
    pub ttl_percent: Option<f64>,
    pub ttl: Option<u32>,
    pub ttl_min: Option<u32>,
    pub ttl_max: Option<u32>,
    /// `ddns-replace-client-name` is `always` or `when-not-present`: Kea's
    /// DDNS client names a DHCPv6 client that sent no option 39.
    pub generate_names: bool,
}

/// How Kea's DDNS settings of one subnet treat a lease: whether it is
/// published and in which directions (see `naming`), whether a renewal
/// sends it again, the conflict resolution and the TTL.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdnsScope {
    pub send_updates: bool,
    pub override_client_update: bool,
    pub override_no_update: bool,
    pub update_on_renew: bool,
    pub conflict_mode: ConflictMode,
    pub ttl: TtlPolicy,
    /// `ddns-replace-client-name` `always` or `when-not-present`: a
    /// DHCPv6 client that sends no option 39 gets one (and a name) as
    /// with Kea's DDNS client on. DHCPv4 needs nothing: kea-dhcp4 names
    /// such clients with its DDNS client off as well.
    pub generate_names: bool,
}

impl Default for DdnsScope {
    /// Kea's defaults.
    fn default() -> Self {
        DdnsScope {
            send_updates: true,
            override_client_update: false,
            override_no_update: false,
            update_on_renew: false,
            conflict_mode: ConflictMode::CheckWithDhcid,
            ttl: TtlPolicy::default(),
            generate_names: false,
        }
    }
}

/// The scope of every subnet, from Kea's configuration (each subnet's
/// settings with Kea's inheritance), completed by the hook's TTL
/// parameters where the running Kea has no such setting. A lease of a
/// subnet Kea no longer knows gets the fallback (Kea's defaults, as Kea's
/// own DDNS does for a lease without a subnet).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scopes {
    by_subnet: std::collections::HashMap<u32, DdnsScope>,
    fallback: DdnsScope,
}

impl Scopes {
    /// `scope` for every subnet (tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn uniform(scope: DdnsScope) -> Scopes {
        Scopes {
            by_subnet: std::collections::HashMap::new(),
            fallback: scope,
        }
    }

    /// Kea's defaults with the hook's TTL parameters, for every subnet:
    /// what applies before Kea's configuration is known.
    pub fn from_hook(cfg: &Config) -> Scopes {
        Scopes {
            by_subnet: std::collections::HashMap::new(),
            fallback: DdnsScope {
                ttl: cfg.ttl,
                ..DdnsScope::default()
            },
        }
    }

    /// Kea's per-subnet settings (`subnets`) and its defaults for a lease
    /// without a subnet (`global`), with the hook's TTL parameters in `cfg`
    /// where `cfg.kea` has no such setting. An unknown conflict-resolution
    /// name (a newer Kea) is an error.
    pub fn from_kea(
        cfg: &Config,
        global: &KeaSubnetDdns,
        subnets: &[KeaSubnetDdns],
    ) -> Result<Scopes, String> {
        let merge = |kea: &KeaSubnetDdns| -> Result<DdnsScope, String> {
            let release = cfg.kea;
            let conflict_mode = if release.has_native("ddns-conflict-resolution-mode") {
                // Set at no scope: Kea's own DDNS uses check-with-dhcid.
                if kea.conflict_mode.is_empty() {
                    ConflictMode::CheckWithDhcid
                } else {
                    ConflictMode::from_kea_name(&kea.conflict_mode).ok_or_else(|| {
                        format!(
                            "subnet {}: Kea's ddns-conflict-resolution-mode '{}' is not one \
                             leasedns knows",
                            kea.subnet_id, kea.conflict_mode
                        )
                    })?
                }
            } else {
                // Kea 2.2: false runs kea-dhcp-ddns's simple add/remove,
                // which still writes DHCID records (2.6 calls it
                // no-check-with-dhcid).
                match kea.use_conflict_resolution {
                    Some(false) => ConflictMode::NoCheckWithDhcid,
                    Some(true) | None => ConflictMode::CheckWithDhcid,
                }
            };
            let pick = |setting: &str, kea_value: Option<u32>, hook_value: Option<u32>| {
                if release.has_native(setting) {
                    kea_value
                } else {
                    hook_value
                }
            };
            let ttl = TtlPolicy {
                kea: release,
                percent: if release.has_native("ddns-ttl-percent") {
                    kea.ttl_percent.filter(|p| *p > 0.0)
                } else {
                    cfg.ttl.percent
                },
                fixed: pick("ddns-ttl", kea.ttl.filter(|t| *t > 0), cfg.ttl.fixed),
                min: pick("ddns-ttl-min", kea.ttl_min.filter(|t| *t > 0), cfg.ttl.min),
                max: pick("ddns-ttl-max", kea.ttl_max.filter(|t| *t > 0), cfg.ttl.max),
            };
            Ok(DdnsScope {
                send_updates: kea.send_updates,
                override_client_update: kea.override_client_update,
                override_no_update: kea.override_no_update,
                update_on_renew: kea.update_on_renew,
                conflict_mode,
                ttl,
                generate_names: kea.generate_names,
            })
        };
        let mut by_subnet = std::collections::HashMap::with_capacity(subnets.len());
        for subnet in subnets {
            by_subnet.insert(subnet.subnet_id, merge(subnet)?);
        }
        Ok(Scopes {
            by_subnet,
            fallback: merge(global)?,
        })
    }

    pub fn for_subnet(&self, subnet_id: u32) -> DdnsScope {
        self.by_subnet
            .get(&subnet_id)
            .copied()
            .unwrap_or(self.fallback)
    }

    /// Number of subnets with their own scope.
    pub fn subnets(&self) -> usize {
        self.by_subnet.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

/// When journal writes reach the disk (`journal-sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JournalSync {
    /// fdatasync once per batch of changes (group commit).
    #[default]
    Batch,
    /// Leave it to the kernel: faster, but a power loss can drop the last
    /// seconds of changes (reconciliation repairs them at the next start).
    None,
}

pub const DEFAULT_RECONCILE_RATE: u32 = 200;

/// `reconcile-*` parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// Reconcile when the server is configured (start-up and reloads).
    pub on_start: bool,
    /// Changes queued per second at most, so the DNS server is never flooded.
    pub rate: u32,
    /// Remove DHCID-carrying names without a lease; false when other DHCP
    /// servers update the same zones.
    pub remove_stale: bool,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            on_start: true,
            rate: DEFAULT_RECONCILE_RATE,
            remove_stale: true,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The Kea release line the configuration was read for.
    pub kea: KeaRelease,
    pub journal_sync: JournalSync,
    pub reconcile: ReconcilePolicy,
    pub journal_dir: PathBuf,
    pub tsig_keys: Vec<TsigKey>,
    pub forward: Vec<DdnsDomain>,
    pub reverse: Vec<DdnsDomain>,
    pub ttl: TtlPolicy,
    /// Per-attempt timeout for one DNS exchange (`dns-server-timeout`, ms).
    pub dns_server_timeout: Duration,
    pub transport: Transport,
    /// Number of sender threads, i.e. UPDATE messages in flight at once (`sender-threads`).
    pub sender_threads: usize,
    /// Capacity of the bounded queue between callouts and the journal (`queue-capacity`).
    pub queue_capacity: usize,
    /// Most changes one sender puts in one UPDATE message
    /// (`max-changes-per-update`; 1 sends every change on its own).
    pub max_changes_per_update: usize,
    /// The family of the daemon the hook is loaded in; not a parameter:
    /// V4 after parsing, the hook sets V6 in kea-dhcp6. Reverse zones of
    /// the other family are accepted and unused.
    pub family: Family,
}

/// Why the hook's `parameters` were refused. Every variant names the parameter
/// path (`forward-ddns.ddns-domains[0].dns-servers[1].port`) so the operator
/// can find the culprit in a large Kea configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("hook parameters are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("parameter '{path}': unknown parameter")]
    Unknown { path: String },
    #[error("parameter '{path}': required parameter is missing")]
    Missing { path: String },
    #[error("parameter '{path}': {reason}")]
    Invalid { path: String, reason: String },
    #[error("parameter '{path}': cannot read secret file '{}': {source}", file.display())]
    SecretFile {
        path: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The parameter path the error is about (`None` for unparsable JSON).
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Json(_) => None,
            ConfigError::Unknown { path }
            | ConfigError::Missing { path }
            | ConfigError::Invalid { path, .. }
            | ConfigError::SecretFile { path, .. } => Some(path),
        }
    }
}

/// Default of `dns-server-timeout`, in milliseconds.
pub const DEFAULT_DNS_SERVER_TIMEOUT_MS: u64 = 1000;
/// Default of `sender-threads`.
pub const DEFAULT_SENDER_THREADS: usize = 4;
/// Default of `max-changes-per-update`.
pub const DEFAULT_MAX_CHANGES_PER_UPDATE: usize = 256;
/// Default of `queue-capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;
/// Default `port` of a `dns-servers` entry.
pub const DEFAULT_DNS_PORT: u16 = 53;

const MAX_SENDER_THREADS: u64 = 256;
/// A change takes ~130 bytes with typical names and up to ~1.1 KB with the
/// longest; 64 KiB is the limit of one DNS message, and a group that does
/// not fit is split in halves anyway.
const MAX_CHANGES_PER_UPDATE: u64 = 1024;
const MIN_QUEUE_CAPACITY: u64 = 16;
const MAX_QUEUE_CAPACITY: u64 = 16 * 1024 * 1024;
const MAX_DNS_SERVER_TIMEOUT_MS: u64 = 60_000;
/// RFC 2181 section 8: TTLs with the top bit set are read as zero.
const MAX_TTL: u64 = i32::MAX as u64;

/// Keys Kea accepts in every map and ignores; allowing them keeps pasted D2
/// configurations loadable.
const KEA_IGNORED_KEYS: [&str; 2] = ["comment", "user-context"];

/// kea-dhcp-ddns's own settings that mean nothing where no NCR is received
/// (its NCR listener, control channel and logging): accepted and ignored at
/// the top level, so a whole D2 configuration pastes as is.
const D2_LISTENER_KEYS: [&str; 7] = [
    "ip-address",
    "port",
    "ncr-protocol",
    "ncr-format",
    "control-socket",
    "control-sockets",
    "loggers",
];

impl Config {
    /// Parses and validates the hook's `parameters` map, given as JSON text.
    ///
    /// The layout is kea-dhcp-ddns's (`tsig-keys`, `forward-ddns`,
    /// `reverse-ddns`), so an operator can paste a D2 configuration, plus the
    /// engine's own settings. Kea's `ddns-*` settings are refused: the hook
    /// reads them from kea-dhcp4.conf, per subnet. Unknown keys are errors (only Kea's `comment`
    /// and `user-context` are ignored) because a silently ignored misspelt
    /// parameter is worse than a refused load. The journal directory is not
    /// checked here: the journal does that when it opens.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        Config::from_json_for(text, KeaRelease::V2_2)
    }

    /// The hook's parameters for the Kea release line `kea`: a setting that
    /// Kea has itself is refused here, with where it goes in kea-dhcp4.conf.
    pub fn from_json_for(text: &str, kea: KeaRelease) -> Result<Config, ConfigError> {
        let root: serde_json::Value = serde_json::from_str(text)?;
        let mut top = Obj::new(String::new(), &root)?;
        for (setting, since) in KeaRelease::NATIVE_SINCE {
            if kea >= since && top.take(setting).is_some() {
                let reason = if setting == "dhcp-ddns" {
                    "this is kea-dhcp4's DDNS client section; leasedns replaces it: in \
                     kea-dhcp4.conf keep dhcp-ddns.enable-updates false"
                        .to_owned()
                } else {
                    format!(
                        "Kea {} has this setting itself: set it in kea-dhcp4.conf's Dhcp4 \
                         (globally, in a shared network or in a subnet), where leasedns reads \
                         it per subnet, not in the hook's parameters",
                        kea.name()
                    )
                };
                return Err(top.invalid(setting, reason));
            }
        }
        if top.take("ddns-conflict-resolution-mode").is_some() {
            return Err(top.invalid(
                "ddns-conflict-resolution-mode",
                format!(
                    "Kea {} has no such setting (Kea 2.6 has): leasedns follows Kea's \
                     ddns-use-conflict-resolution in kea-dhcp4.conf (true: check-with-dhcid, \
                     false: no-check-with-dhcid), per subnet",
                    kea.name()
                ),
            ));
        }

        let journal_dir = match top.string("journal-dir")? {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            Some(_) => return Err(top.invalid("journal-dir", "must not be empty")),
            None => return Err(top.missing("journal-dir")),
        };

        let tsig_keys = match top.array("tsig-keys")? {
            Some(items) => parse_tsig_keys(&top.path_of("tsig-keys"), items)?,
            None => Vec::new(),
        };

        let forward = match top.take("forward-ddns") {
            Some(v) => parse_direction(&top.path_of("forward-ddns"), v, &tsig_keys, false)?,
            None => Vec::new(),
        };
        let reverse = match top.take("reverse-ddns") {
            Some(v) => parse_direction(&top.path_of("reverse-ddns"), v, &tsig_keys, true)?,
            None => Vec::new(),
        };
        if forward.is_empty() && reverse.is_empty() {
            return Err(ConfigError::Invalid {
                path: "forward-ddns".to_owned(),
                reason: "no zone configured: give at least one ddns-domains entry in \
                         forward-ddns or reverse-ddns"
                    .to_owned(),
            });
        }

        let mut ttl = parse_ttl(&mut top)?;
        ttl.kea = kea;
        if !kea.has_native("ddns-ttl") && top.take("ddns-ttl").is_some() {
            return Err(top.invalid(
                "ddns-ttl",
                format!(
                    "Kea {} has no ddns-ttl (Kea 3.0 has); use ddns-ttl-min and ddns-ttl-max",
                    kea.name()
                ),
            ));
        }

        let timeout_ms = top
            .integer("dns-server-timeout", 1, MAX_DNS_SERVER_TIMEOUT_MS)?
            .unwrap_or(DEFAULT_DNS_SERVER_TIMEOUT_MS);
        let transport = match top.string("dns-transport")? {
            None | Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            Some(other) => {
                return Err(top.invalid(
                    "dns-transport",
                    format!("'{other}' is not one of 'udp', 'tcp'"),
                ));
            }
        };
        let sender_threads = top
            .integer("sender-threads", 1, MAX_SENDER_THREADS)?
            .map_or(Ok(DEFAULT_SENDER_THREADS), usize::try_from)
            .map_err(|_| top.invalid("sender-threads", "out of range"))?;
        let queue_capacity = top
            .integer("queue-capacity", MIN_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY)?
            .map_or(Ok(DEFAULT_QUEUE_CAPACITY), usize::try_from)
            .map_err(|_| top.invalid("queue-capacity", "out of range"))?;
        let max_changes_per_update = top
            .integer("max-changes-per-update", 1, MAX_CHANGES_PER_UPDATE)?
            .map_or(Ok(DEFAULT_MAX_CHANGES_PER_UPDATE), usize::try_from)
            .map_err(|_| top.invalid("max-changes-per-update", "out of range"))?;

        let journal_sync = match top.string("journal-sync")? {
            None | Some("batch") => JournalSync::Batch,
            Some("none") => JournalSync::None,
            Some(other) => {
                return Err(top.invalid(
                    "journal-sync",
                    format!("'{other}' is not one of 'batch', 'none'"),
                ));
            }
        };
        let reconcile = ReconcilePolicy {
            on_start: top.boolean("reconcile-on-start")?.unwrap_or(true),
            rate: top
                .integer("reconcile-rate", 1, 100_000)?
                .map_or(Ok(DEFAULT_RECONCILE_RATE), u32::try_from)
                .map_err(|_| top.invalid("reconcile-rate", "out of range"))?,
            remove_stale: top.boolean("reconcile-remove-stale")?.unwrap_or(true),
        };

        for key in D2_LISTENER_KEYS {
            top.take(key);
        }
        top.finish()?;

        Ok(Config {
            kea,
            journal_sync,
            reconcile,
            journal_dir,
            tsig_keys,
            forward,
            reverse,
            ttl,
            dns_server_timeout: Duration::from_millis(timeout_ms),
            transport,
            sender_threads,
            queue_capacity,
            max_changes_per_update,
            family: Family::default(),
        })
    }
}

fn parse_tsig_keys(path: &str, items: &[serde_json::Value]) -> Result<Vec<TsigKey>, ConfigError> {
    let mut keys: Vec<TsigKey> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut obj = Obj::new(format!("{path}[{i}]"), item)?;
        let name_text = obj.string("name")?.ok_or_else(|| obj.missing("name"))?;
        let name = parse_domain(&obj.path_of("name"), name_text)?;
        if keys.iter().any(|k| k.name == name) {
            return Err(obj.invalid("name", format!("duplicate key name '{name}'")));
        }
        let algorithm_text = obj
            .string("algorithm")?
            .ok_or_else(|| obj.missing("algorithm"))?;
        let algorithm = parse_algorithm(algorithm_text).ok_or_else(|| {
            obj.invalid("algorithm", format!("unknown algorithm '{algorithm_text}'"))
        })?;
        // Kea's digest-bits truncates the MAC; we only sign with full MACs, so
        // anything but Kea's "no truncation" value would be silently wrong.
        if let Some(bits) = obj.integer("digest-bits", 0, 1024)?
            && bits != 0
        {
            return Err(obj.invalid("digest-bits", "truncated TSIG MACs are not supported"));
        }
        let secret = parse_secret(&mut obj)?;
        obj.finish()?;
        keys.push(TsigKey {
            name,
            algorithm,
            secret,
        });
    }
    Ok(keys)
}

/// Accepts Kea's spellings (`HMAC-SHA256`, `hmac-sha256`) and the RFC 8945
/// `.sig-alg.reg.int.` form of MD5 that BIND users paste.
fn parse_algorithm(text: &str) -> Option<TsigAlgorithm> {
    let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
    match lower.as_str() {
        "hmac-md5" | "hmac-md5.sig-alg.reg.int" => Some(TsigAlgorithm::HmacMd5),
        "hmac-sha1" => Some(TsigAlgorithm::HmacSha1),
        "hmac-sha224" => Some(TsigAlgorithm::HmacSha224),
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

fn parse_secret(obj: &mut Obj<'_>) -> Result<Vec<u8>, ConfigError> {
    let inline = obj.string("secret")?;
    let file = obj.string("secret-file")?;
    let (key, text) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(obj.invalid("secret", "give either 'secret' or 'secret-file', not both"));
        }
        (None, None) => return Err(obj.missing("secret")),
        (Some(secret), None) => ("secret", secret.to_owned()),
        (None, Some(file)) => {
            let contents =
                std::fs::read_to_string(file).map_err(|source| ConfigError::SecretFile {
                    path: obj.path_of("secret-file"),
                    file: PathBuf::from(file),
                    source,
                })?;
            ("secret-file", contents)
        }
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(obj.invalid(key, "empty secret"));
    }
    let secret = lenient_base64()
        .decode(text)
        .map_err(|e| obj.invalid(key, format!("invalid base64: {e}")))?;
    if secret.is_empty() {
        return Err(obj.invalid(key, "empty secret"));
    }
    Ok(secret)
}

fn lenient_base64() -> base64::engine::GeneralPurpose {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Secrets are pasted from tsig-keygen/knotc output and sometimes lose their
    // padding on the way; the bytes are unambiguous either way.
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

fn parse_direction(
    path: &str,
    value: &serde_json::Value,
    keys: &[TsigKey],
    reverse: bool,
) -> Result<Vec<DdnsDomain>, ConfigError> {
    let mut obj = Obj::new(path.to_owned(), value)?;
    let domains = match obj.array("ddns-domains")? {
        Some(items) => items,
        None => {
            obj.finish()?;
            return Ok(Vec::new());
        }
    };
    let list_path = obj.path_of("ddns-domains");
    let mut out: Vec<DdnsDomain> = Vec::with_capacity(domains.len());
    for (i, item) in domains.iter().enumerate() {
        let domain = parse_domain_entry(&format!("{list_path}[{i}]"), item, keys, reverse)?;
        if out.iter().any(|d| d.name == domain.name) {
            return Err(ConfigError::Invalid {
                path: format!("{list_path}[{i}].name"),
                reason: format!("duplicate zone '{}'", domain.name),
            });
        }
        out.push(domain);
    }
    obj.finish()?;
    Ok(out)
}

fn parse_domain_entry(
    path: &str,
    value: &serde_json::Value,
    keys: &[TsigKey],
    reverse: bool,
) -> Result<DdnsDomain, ConfigError> {
    let mut obj = Obj::new(path.to_owned(), value)?;
    let name_text = obj.string("name")?.ok_or_else(|| obj.missing("name"))?;
    let name = parse_domain(&obj.path_of("name"), name_text)?;
    if name.is_root() {
        return Err(obj.invalid("name", "the root zone cannot be a DDNS zone"));
    }
    if reverse {
        check_reverse_zone(&name).map_err(|reason| obj.invalid("name", reason))?;
    }

    // D2 treats an empty key-name as "no key".
    let key = parse_key_name(&mut obj, keys)?;

    let servers_value = obj
        .array("dns-servers")?
        .ok_or_else(|| obj.missing("dns-servers"))?;
    if servers_value.is_empty() {
        return Err(obj.invalid("dns-servers", "a zone needs at least one server"));
    }
    let servers_path = obj.path_of("dns-servers");
    let mut servers = Vec::with_capacity(servers_value.len());
    let mut server_keys = Vec::with_capacity(servers_value.len());
    for (i, item) in servers_value.iter().enumerate() {
        let (server, key) = parse_server(&format!("{servers_path}[{i}]"), item, keys)?;
        servers.push(server);
        server_keys.push(key);
    }
    obj.finish()?;
    Ok(DdnsDomain {
        name,
        key,
        servers,
        server_keys,
    })
}

/// A reverse zone holds whole labels of reverse names: any zone under
/// in-addr.arpa., or a zone under ip6.arpa. whose labels below it are
/// single hex digits (a nibble-aligned prefix, at most 32 nibbles).
fn check_reverse_zone(name: &Name) -> Result<(), String> {
    let labels: Vec<&[u8]> = name.iter().collect();
    match labels.as_slice() {
        [.., a, b] if a.eq_ignore_ascii_case(b"in-addr") && b.eq_ignore_ascii_case(b"arpa") => {
            Ok(())
        }
        [nibbles @ .., a, b]
            if a.eq_ignore_ascii_case(b"ip6") && b.eq_ignore_ascii_case(b"arpa") =>
        {
            if nibbles.len() > 32 {
                return Err(format!(
                    "reverse zone '{name}' has more than 32 nibble labels under ip6.arpa."
                ));
            }
            match nibbles
                .iter()
                .find(|l| !matches!(l, [c] if c.is_ascii_hexdigit()))
            {
                Some(label) => Err(format!(
                    "reverse zone '{name}' is not a nibble-aligned prefix: label '{}' \
                     under ip6.arpa. is not one hex digit",
                    String::from_utf8_lossy(label)
                )),
                None => Ok(()),
            }
        }
        _ => Err(format!(
            "reverse zone '{name}' is not under in-addr.arpa. or ip6.arpa."
        )),
    }
}

/// A `key-name` (zone or server): `None` when absent or empty (D2's "no
/// key"), else the index of that `tsig-keys` entry.
fn parse_key_name(obj: &mut Obj<'_>, keys: &[TsigKey]) -> Result<Option<usize>, ConfigError> {
    match obj.string("key-name")? {
        None | Some("") => Ok(None),
        Some(text) => {
            let key_name = parse_domain(&obj.path_of("key-name"), text)?;
            let index = keys
                .iter()
                .position(|k| k.name == key_name)
                .ok_or_else(|| {
                    obj.invalid("key-name", format!("no tsig-keys entry named '{key_name}'"))
                })?;
            Ok(Some(index))
        }
    }
}

/// One `dns-servers` entry: its address and its own key (kea-dhcp-ddns
/// 2.6's per-server `key-name`, which wins over the zone's).
fn parse_server(
    path: &str,
    value: &serde_json::Value,
    keys: &[TsigKey],
) -> Result<(SocketAddr, Option<usize>), ConfigError> {
    let mut obj = Obj::new(path.to_owned(), value)?;
    let key = parse_key_name(&mut obj, keys)?;
    // D2 2.2 also refuses hostnames ("not yet supported"); say so rather than
    // calling a key Kea documents "unknown".
    if obj.take("hostname").is_some_and(|h| h.as_str() != Some("")) {
        return Err(obj.invalid(
            "hostname",
            "server hostnames are not supported, give ip-address",
        ));
    }
    let ip_text = obj
        .string("ip-address")?
        .ok_or_else(|| obj.missing("ip-address"))?;
    let ip: std::net::IpAddr = ip_text
        .trim()
        .parse()
        .map_err(|_| obj.invalid("ip-address", format!("'{ip_text}' is not an IP address")))?;
    let port = obj
        .integer("port", 1, u64::from(u16::MAX))?
        .map_or(Ok(DEFAULT_DNS_PORT), u16::try_from)
        .map_err(|_| obj.invalid("port", "out of range"))?;
    obj.finish()?;
    Ok((SocketAddr::new(ip, port), key))
}

fn parse_ttl(top: &mut Obj<'_>) -> Result<TtlPolicy, ConfigError> {
    let percent = match top.take("ddns-ttl-percent") {
        None => None,
        Some(value) => {
            let p = value
                .as_f64()
                .ok_or_else(|| top.invalid("ddns-ttl-percent", "must be a number"))?;
            // Kea reads this as a decimal fraction (0.25 = 25%); a value above 1
            // almost surely means someone wrote "25" and expects 25%.
            if !(p > 0.0 && p <= 1.0) {
                return Err(top.invalid(
                    "ddns-ttl-percent",
                    format!("{p} is out of range: give a decimal fraction above 0 and at most 1.0 (0.25 means 25%), as in Kea"),
                ));
            }
            Some(p)
        }
    };
    let min = top.integer("ddns-ttl-min", 1, MAX_TTL)?;
    let max = top.integer("ddns-ttl-max", 1, MAX_TTL)?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(top.invalid("ddns-ttl-min", format!("{lo} is above ddns-ttl-max ({hi})")));
    }
    let to_u32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
    Ok(TtlPolicy {
        kea: KeaRelease::default(),
        percent,
        fixed: None,
        min: to_u32(min),
        max: to_u32(max),
    })
}

/// Bytes a label of ours may hold: letters, digits, hyphen and underscore.
/// Stricter than DNS itself so that names print, log and compare plainly.
pub(crate) fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Parses a configured domain name (zone, key, suffix): letters, digits, `-`
/// and `_` per label, no escapes, a trailing dot optional. Stored lower case
/// and fully qualified. `"."` gives the root.
fn parse_domain(path: &str, text: &str) -> Result<Name, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    let body = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if body.is_empty() {
        if trimmed == "." {
            return Ok(Name::root());
        }
        return Err(invalid("invalid domain name: empty".to_owned()));
    }
    let lower = body.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let mut wire_len = 1usize;
    for label in &labels {
        if label.is_empty() {
            return Err(invalid(format!(
                "invalid domain name '{text}': empty label"
            )));
        }
        if label.len() > 63 {
            return Err(invalid(format!(
                "invalid domain name '{text}': label longer than 63 octets"
            )));
        }
        if !label.bytes().all(is_label_byte) {
            return Err(invalid(format!(
                "invalid domain name '{text}': only letters, digits, '-' and '_' are allowed"
            )));
        }
        wire_len += label.len() + 1;
    }
    if wire_len > 255 {
        return Err(invalid(format!(
            "invalid domain name '{text}': longer than 255 octets"
        )));
    }
    let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes()))
        .map_err(|e| invalid(format!("invalid domain name '{text}': {e}")))?;
    name.set_fqdn(true);
    Ok(name)
}

/// One JSON object being consumed: tracks its path and which keys were read,
/// so that whatever is left over can be reported as unknown.
struct Obj<'a> {
    path: String,
    map: &'a serde_json::Map<String, serde_json::Value>,
    seen: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(path: String, value: &'a serde_json::Value) -> Result<Self, ConfigError> {
        match value {
            serde_json::Value::Object(map) => Ok(Obj {
                path,
                map,
                seen: Vec::new(),
            }),
            _ => Err(ConfigError::Invalid {
                path: if path.is_empty() {
                    "<parameters>".to_owned()
                } else {
                    path
                },
                reason: "must be a map".to_owned(),
            }),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path_of(key),
            reason: reason.into(),
        }
    }

    fn missing(&self, key: &str) -> ConfigError {
        ConfigError::Missing {
            path: self.path_of(key),
        }
    }

    fn take(&mut self, key: &'static str) -> Option<&'a serde_json::Value> {
        self.seen.push(key);
        self.map.get(key)
    }

    fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(key, "must be a string")),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.invalid(key, "must be true or false")),
        }
    }

    fn integer(
        &mut self,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.invalid(key, format!("must be an integer from {min} to {max}"))),
            },
        }
    }

    fn array(&mut self, key: &'static str) -> Result<Option<&'a [serde_json::Value]>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(serde_json::Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.invalid(key, "must be a list")),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        let unknown = self
            .map
            .keys()
            .find(|k| !self.seen.contains(&k.as_str()) && !KEA_IGNORED_KEYS.contains(&k.as_str()));
        match unknown {
            Some(key) => Err(ConfigError::Unknown {
                path: self.path_of(key),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    // "secret" in base64.
    const SECRET_B64: &str = "c2VjcmV0";

    fn sample() -> Value {
        json!({
            "journal-dir": "/var/lib/kea/leasedns",
            "tsig-keys": [ {"name": "ddns-key", "algorithm": "hmac-sha256", "secret": SECRET_B64} ],
            "forward-ddns": {"ddns-domains": [ {"name": "lan.example.", "key-name": "ddns-key",
                              "dns-servers": [ {"ip-address": "127.0.0.1", "port": 53} ] } ] },
            "reverse-ddns": {"ddns-domains": [ {"name": "77.10.in-addr.arpa.", "key-name": "ddns-key",
                              "dns-servers": [ {"ip-address": "127.0.0.1", "port": 53} ] } ] }
        })
    }

    fn parse(v: &Value) -> Result<Config, ConfigError> {
        Config::from_json(&v.to_string())
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// Applies `edit` to the sample and returns the error's Display text.
    fn error_of(edit: impl FnOnce(&mut Value)) -> String {
        let mut v = sample();
        edit(&mut v);
        match parse(&v) {
            Ok(_) => panic!("accepted: {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn ip6_arpa_zones_of_any_nibble_boundary_are_reverse_zones() {
        let mut v = sample();
        let server = json!([ {"ip-address": "::1"} ]);
        v["reverse-ddns"]["ddns-domains"] = json!([
            {"name": "77.10.in-addr.arpa.", "dns-servers": server},
            {"name": "7.7.d.f.ip6.arpa.", "dns-servers": server},
            {"name": "0.0.0.0.0.0.0.0.7.7.D.F.ip6.arpa", "dns-servers": server},
            {"name": "ip6.arpa.", "dns-servers": server},
        ]);
        let c = parse(&v).unwrap();
        assert_eq!(c.family, Family::V4, "the hook sets V6 itself");
        let families: Vec<_> = c.reverse.iter().map(DdnsDomain::reverse_family).collect();
        assert_eq!(
            families,
            [
                Some(Family::V4),
                Some(Family::V6),
                Some(Family::V6),
                Some(Family::V6)
            ]
        );
        assert_eq!(c.reverse[2].name, name("0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa."));
        assert_eq!(c.forward[0].reverse_family(), None);
        assert_eq!(Family::of("fd77::1".parse().unwrap()), Family::V6);
        assert_eq!(Family::of("10.0.0.1".parse().unwrap()), Family::V4);
    }

    #[test]
    fn sample_parses_with_defaults() {
        let c = parse(&sample()).unwrap();
        assert_eq!(c.journal_dir, PathBuf::from("/var/lib/kea/leasedns"));
        assert_eq!(c.tsig_keys.len(), 1);
        assert_eq!(c.tsig_keys[0].name, name("ddns-key."));
        assert!(c.tsig_keys[0].name.is_fqdn());
        assert_eq!(c.tsig_keys[0].algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(c.tsig_keys[0].secret, b"secret");
        assert_eq!(c.forward.len(), 1);
        assert_eq!(c.forward[0].name, name("lan.example."));
        assert_eq!(c.forward[0].key, Some(0));
        assert_eq!(
            c.forward[0].servers,
            vec![SocketAddr::from(([127, 0, 0, 1], 53))]
        );
        assert_eq!(c.reverse[0].name, name("77.10.in-addr.arpa."));
        assert_eq!(c.ttl, TtlPolicy::default());
        assert_eq!(
            c.dns_server_timeout,
            Duration::from_millis(DEFAULT_DNS_SERVER_TIMEOUT_MS)
        );
        assert_eq!(c.transport, Transport::Udp);
        assert_eq!(c.sender_threads, DEFAULT_SENDER_THREADS);
        assert_eq!(c.queue_capacity, 65_536);
        assert_eq!(c.max_changes_per_update, DEFAULT_MAX_CHANGES_PER_UPDATE);
        // The secret never shows in Debug output.
        assert!(!format!("{:?}", c.tsig_keys[0]).contains("secret\""));
    }

    #[test]
    fn minimal_config_gets_kea_defaults() {
        let v = json!({
            "journal-dir": "/j",
            "reverse-ddns": {"ddns-domains": [ {"name": "10.in-addr.arpa", "dns-servers": [ {"ip-address": "::1"} ] } ] }
        });
        let c = parse(&v).unwrap();
        assert!(c.forward.is_empty());
        assert!(c.tsig_keys.is_empty());
        assert_eq!(c.reverse[0].key, None);
        assert_eq!(c.reverse[0].name, name("10.in-addr.arpa."));
        assert_eq!(c.reverse[0].servers[0], "[::1]:53".parse().unwrap());
    }

    #[test]
    fn every_optional_parameter() {
        let mut v = sample();
        let extra = json!({
            "ddns-ttl-percent": 0.5, "ddns-ttl-min": 300, "ddns-ttl-max": 3600,
            "dns-server-timeout": 250, "dns-transport": "tcp", "sender-threads": 256,
            "queue-capacity": 16, "max-changes-per-update": 1,
            "comment": "Kea-style comment", "user-context": {"any": ["thing"]}
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        let c = parse(&v).unwrap();
        assert_eq!(
            c.ttl,
            TtlPolicy {
                percent: Some(0.5),
                min: Some(300),
                max: Some(3600),
                ..TtlPolicy::default()
            }
        );
        assert_eq!(c.dns_server_timeout, Duration::from_millis(250));
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.sender_threads, 256);
        assert_eq!(c.queue_capacity, 16);
        assert_eq!(c.max_changes_per_update, 1);
    }

    /// A kea-dhcp-ddns configuration's `DhcpDdns` map, pasted whole, loads
    /// once `journal-dir` is added.
    #[test]
    fn a_d2_configuration_pastes_as_is() {
        let d2 = json!({
            "ip-address": "127.0.0.1", "port": 53001, "dns-server-timeout": 500,
            "ncr-protocol": "UDP", "ncr-format": "JSON",
            "control-socket": {"socket-type": "unix", "socket-name": "/run/kea/d2.sock"},
            "tsig-keys": [ {"name": "ddns-key", "algorithm": "HMAC-SHA256", "secret": SECRET_B64} ],
            "forward-ddns": {"ddns-domains": [ {"name": "lan.example.", "key-name": "ddns-key",
                              "dns-servers": [ {"ip-address": "127.0.0.1", "port": 53} ] } ] },
            "reverse-ddns": {"ddns-domains": [ {"name": "77.10.in-addr.arpa.", "key-name": "ddns-key",
                              "dns-servers": [ {"ip-address": "127.0.0.1"} ] } ] },
            "loggers": [ {"name": "kea-dhcp-ddns", "severity": "INFO"} ],
            "journal-dir": "/var/lib/kea/leasedns"
        });
        let c = parse(&d2).unwrap();
        assert_eq!(c.dns_server_timeout, Duration::from_millis(500));
        assert_eq!(c.forward[0].key, Some(0));
        assert_eq!(c.forward[0].key_of(0), Some(0));
    }

    /// kea-dhcp-ddns 2.6's per-server `key-name` wins over the zone's; a
    /// server without one (or with "") uses the zone's.
    #[test]
    fn a_server_may_have_its_own_key() {
        let mut v = sample();
        v["tsig-keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "other-key", "algorithm": "hmac-sha512", "secret": SECRET_B64}));
        v["forward-ddns"]["ddns-domains"][0]["dns-servers"] = json!([
            {"ip-address": "127.0.0.1", "key-name": "other-key"},
            {"ip-address": "127.0.0.2", "key-name": ""},
            {"ip-address": "127.0.0.3"}
        ]);
        let c = parse(&v).unwrap();
        let zone = &c.forward[0];
        assert_eq!(zone.key, Some(0));
        assert_eq!(
            (zone.key_of(0), zone.key_of(1), zone.key_of(2)),
            (Some(1), Some(0), Some(0))
        );
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["key-name"] = json!("nope");
        });
        assert!(
            e.starts_with("parameter 'forward-ddns.ddns-domains[0].dns-servers[0].key-name'"),
            "{e}"
        );
    }

    #[test]
    fn algorithms_in_every_spelling() {
        for (text, alg) in [
            ("hmac-md5", TsigAlgorithm::HmacMd5),
            ("HMAC-MD5", TsigAlgorithm::HmacMd5),
            ("hmac-md5.sig-alg.reg.int.", TsigAlgorithm::HmacMd5),
            ("HMAC-SHA1", TsigAlgorithm::HmacSha1),
            ("hmac-sha224", TsigAlgorithm::HmacSha224),
            ("HMAC-SHA256", TsigAlgorithm::HmacSha256),
            ("Hmac-Sha384", TsigAlgorithm::HmacSha384),
            ("hmac-sha512", TsigAlgorithm::HmacSha512),
        ] {
            let mut v = sample();
            v["tsig-keys"][0]["algorithm"] = json!(text);
            assert_eq!(parse(&v).unwrap().tsig_keys[0].algorithm, alg, "{text}");
        }
        let e = error_of(|v| v["tsig-keys"][0]["algorithm"] = json!("hmac-sha3"));
        assert_eq!(
            e,
            "parameter 'tsig-keys[0].algorithm': unknown algorithm 'hmac-sha3'"
        );
    }

    #[test]
    fn names_are_lower_case_and_fully_qualified() {
        let mut v = sample();
        v["tsig-keys"][0]["name"] = json!("DDNS-Key");
        v["forward-ddns"]["ddns-domains"][0]["key-name"] = json!("ddns-key.");
        v["forward-ddns"]["ddns-domains"][0]["name"] = json!("LAN.Example");
        let c = parse(&v).unwrap();
        for n in [&c.tsig_keys[0].name, &c.forward[0].name] {
            assert!(n.is_fqdn());
            assert_eq!(n.to_ascii(), n.to_lowercase().to_ascii());
        }
        assert_eq!(c.forward[0].name.to_ascii(), "lan.example.");
        assert_eq!(c.forward[0].key, Some(0));
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "  {SECRET_B64}  \n").unwrap();
        let mut v = sample();
        let key = v["tsig-keys"][0].as_object_mut().unwrap();
        key.remove("secret");
        key.insert("secret-file".to_owned(), json!(file.path()));
        assert_eq!(parse(&v).unwrap().tsig_keys[0].secret, b"secret");

        let e = error_of(|v| {
            let key = v["tsig-keys"][0].as_object_mut().unwrap();
            key.remove("secret");
            key.insert("secret-file".to_owned(), json!("/nonexistent/leasedns.key"));
        });
        assert!(e.starts_with("parameter 'tsig-keys[0].secret-file': cannot read secret file '/nonexistent/leasedns.key'"), "{e}");
    }

    #[test]
    fn secret_errors() {
        let e = error_of(|v| v["tsig-keys"][0]["secret"] = json!("not base64!"));
        assert!(
            e.starts_with("parameter 'tsig-keys[0].secret': invalid base64"),
            "{e}"
        );
        let e = error_of(|v| v["tsig-keys"][0]["secret"] = json!("  "));
        assert_eq!(e, "parameter 'tsig-keys[0].secret': empty secret");
        let e = error_of(|v| v["tsig-keys"][0]["secret-file"] = json!("/x"));
        assert!(
            e.starts_with("parameter 'tsig-keys[0].secret': give either"),
            "{e}"
        );
        let e = error_of(|v| {
            v["tsig-keys"][0].as_object_mut().unwrap().remove("secret");
        });
        assert_eq!(
            e,
            "parameter 'tsig-keys[0].secret': required parameter is missing"
        );
        // Missing padding is tolerated.
        let mut v = sample();
        v["tsig-keys"][0]["secret"] = json!("c2VjcmV0MQ");
        assert_eq!(parse(&v).unwrap().tsig_keys[0].secret, b"secret1");
        let e = error_of(|v| v["tsig-keys"][0]["digest-bits"] = json!(128));
        assert!(e.starts_with("parameter 'tsig-keys[0].digest-bits'"), "{e}");
        let mut v = sample();
        v["tsig-keys"][0]["digest-bits"] = json!(0);
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn unknown_keys_are_named_wherever_they_are() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|v| v["hooks-libraries"] = json!([])),
                "hooks-libraries",
            ),
            (
                Box::new(|v| v["tsig-keys"][0]["secrett"] = json!("x")),
                "tsig-keys[0].secrett",
            ),
            (
                Box::new(|v| v["forward-ddns"]["ddns-domain"] = json!([])),
                "forward-ddns.ddns-domain",
            ),
            (
                Box::new(|v| v["forward-ddns"]["ddns-domains"][0]["keyname"] = json!("x")),
                "forward-ddns.ddns-domains[0].keyname",
            ),
            (
                Box::new(|v| {
                    v["reverse-ddns"]["ddns-domains"][0]["dns-servers"][0]["prot"] = json!(53)
                }),
                "reverse-ddns.ddns-domains[0].dns-servers[0].prot",
            ),
        ];
        for (edit, path) in cases {
            assert_eq!(
                error_of(edit),
                format!("parameter '{path}': unknown parameter")
            );
        }
    }

    #[test]
    fn missing_required_keys() {
        let e = error_of(|v| {
            v.as_object_mut().unwrap().remove("journal-dir");
        });
        assert_eq!(e, "parameter 'journal-dir': required parameter is missing");
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]
                .as_object_mut()
                .unwrap()
                .remove("name");
        });
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].name': required parameter is missing"
        );
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]
                .as_object_mut()
                .unwrap()
                .remove("dns-servers");
        });
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].dns-servers': required parameter is missing"
        );
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]
                .as_object_mut()
                .unwrap()
                .remove("ip-address");
        });
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].dns-servers[0].ip-address': required parameter is missing"
        );
        let e = error_of(|v| v["journal-dir"] = json!(""));
        assert_eq!(e, "parameter 'journal-dir': must not be empty");
    }

    #[test]
    fn zone_errors() {
        let e = error_of(|v| v["forward-ddns"]["ddns-domains"][0]["dns-servers"] = json!([]));
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].dns-servers': a zone needs at least one server"
        );
        let e = error_of(|v| v["forward-ddns"]["ddns-domains"][0]["key-name"] = json!("other-key"));
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].key-name': no tsig-keys entry named 'other-key.'"
        );
        let e = error_of(|v| {
            let zone = v["forward-ddns"]["ddns-domains"][0].clone();
            let mut dup = zone.clone();
            dup["name"] = json!("LAN.example");
            v["forward-ddns"]["ddns-domains"] = json!([zone, dup]);
        });
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[1].name': duplicate zone 'lan.example.'"
        );
        let e = error_of(|v| v["reverse-ddns"]["ddns-domains"][0]["name"] = json!("lan.example."));
        assert_eq!(
            e,
            "parameter 'reverse-ddns.ddns-domains[0].name': reverse zone 'lan.example.' is not under in-addr.arpa. or ip6.arpa."
        );
        let e =
            error_of(|v| v["reverse-ddns"]["ddns-domains"][0]["name"] = json!("77.fd.ip6.arpa."));
        assert_eq!(
            e,
            "parameter 'reverse-ddns.ddns-domains[0].name': reverse zone '77.fd.ip6.arpa.' is not a nibble-aligned prefix: label '77' under ip6.arpa. is not one hex digit"
        );
        let e = error_of(|v| v["reverse-ddns"]["ddns-domains"][0]["name"] = json!("x.ip6.arpa."));
        assert!(e.contains("label 'x' under ip6.arpa."), "{e}");
        let too_deep = format!("{}ip6.arpa.", "0.".repeat(33));
        let e = error_of(|v| v["reverse-ddns"]["ddns-domains"][0]["name"] = json!(too_deep));
        assert!(e.contains("more than 32 nibble labels"), "{e}");
        let e = error_of(|v| v["reverse-ddns"]["ddns-domains"][0]["name"] = json!("ip6.example."));
        assert!(e.contains("is not under in-addr.arpa. or ip6.arpa."), "{e}");
        let e = error_of(|v| v["forward-ddns"]["ddns-domains"][0]["name"] = json!("."));
        assert_eq!(
            e,
            "parameter 'forward-ddns.ddns-domains[0].name': the root zone cannot be a DDNS zone"
        );
        for bad in [
            "a..b",
            "a b.example",
            "é.example",
            "a\\.b",
            "",
            &"x".repeat(64),
            &"abc.".repeat(70),
        ] {
            let e = error_of(|v| v["forward-ddns"]["ddns-domains"][0]["name"] = json!(bad));
            assert!(
                e.starts_with("parameter 'forward-ddns.ddns-domains[0].name': invalid domain name"),
                "{bad}: {e}"
            );
        }
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"] = json!([]);
            v.as_object_mut().unwrap().remove("reverse-ddns");
        });
        assert!(e.contains("no zone configured"), "{e}");
        let e = error_of(|v| {
            let k = v["tsig-keys"][0].clone();
            v["tsig-keys"] = json!([k.clone(), k]);
        });
        assert_eq!(
            e,
            "parameter 'tsig-keys[1].name': duplicate key name 'ddns-key.'"
        );
    }

    #[test]
    fn server_errors() {
        let path = "forward-ddns.ddns-domains[0].dns-servers[0]";
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["ip-address"] =
                json!("10.0.0.256")
        });
        assert_eq!(
            e,
            format!("parameter '{path}.ip-address': '10.0.0.256' is not an IP address")
        );
        let e =
            error_of(|v| v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["port"] = json!(0));
        assert_eq!(
            e,
            format!("parameter '{path}.port': must be an integer from 1 to 65535")
        );
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["port"] = json!("53")
        });
        assert!(e.starts_with(&format!("parameter '{path}.port'")), "{e}");
        let e = error_of(|v| {
            v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["hostname"] = json!("ns1")
        });
        assert!(
            e.starts_with(&format!("parameter '{path}.hostname': server hostnames")),
            "{e}"
        );
        // Kea writes an empty hostname when it is unused.
        let mut v = sample();
        v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["hostname"] = json!("");
        v["forward-ddns"]["ddns-domains"][0]["dns-servers"][0]["port"] = json!(5353);
        assert_eq!(parse(&v).unwrap().forward[0].servers[0].port(), 5353);
    }

    #[test]
    fn tuning_errors() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "ddns-ttl-percent",
                json!(25),
                "parameter 'ddns-ttl-percent': 25 is out of range",
            ),
            ("ddns-ttl-percent", json!(0), "parameter 'ddns-ttl-percent'"),
            (
                "ddns-ttl-percent",
                json!("0.5"),
                "parameter 'ddns-ttl-percent': must be a number",
            ),
            ("ddns-ttl-min", json!(0), "parameter 'ddns-ttl-min'"),
            (
                "ddns-ttl-max",
                json!(2_147_483_648u64),
                "parameter 'ddns-ttl-max'",
            ),
            (
                "dns-server-timeout",
                json!(0),
                "parameter 'dns-server-timeout'",
            ),
            (
                "dns-transport",
                json!("quic"),
                "parameter 'dns-transport': 'quic'",
            ),
            (
                "sender-threads",
                json!(0),
                "parameter 'sender-threads': must be an integer from 1 to 256",
            ),
            ("sender-threads", json!(257), "parameter 'sender-threads'"),
            (
                "max-changes-per-update",
                json!(0),
                "parameter 'max-changes-per-update'",
            ),
            (
                "max-changes-per-update",
                json!(1025),
                "parameter 'max-changes-per-update'",
            ),
            ("queue-capacity", json!(15), "parameter 'queue-capacity'"),
            (
                "queue-capacity",
                json!(16 * 1024 * 1024 + 1),
                "parameter 'queue-capacity'",
            ),
            (
                "tsig-keys",
                json!({}),
                "parameter 'tsig-keys': must be a list",
            ),
            (
                "forward-ddns",
                json!([]),
                "parameter 'forward-ddns': must be a map",
            ),
        ];
        for (key, value, expect) in cases {
            let e = error_of(|v| v[key] = value.clone());
            assert!(e.starts_with(expect), "{key}={value}: {e}");
        }
        let e = error_of(|v| {
            v["ddns-ttl-min"] = json!(7200);
            v["ddns-ttl-max"] = json!(3600);
        });
        assert_eq!(
            e,
            "parameter 'ddns-ttl-min': 7200 is above ddns-ttl-max (3600)"
        );
    }

    #[test]
    fn not_json_or_not_a_map() {
        assert!(matches!(Config::from_json("{"), Err(ConfigError::Json(_))));
        let e = Config::from_json("[]").unwrap_err();
        assert_eq!(e.to_string(), "parameter '<parameters>': must be a map");
        assert_eq!(ConfigError::Missing { path: "x".into() }.path(), Some("x"));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = Config::from_json(&text);
        }

        #[test]
        fn arbitrary_values_in_sample_never_panic(
            key in prop::sample::select(vec![
                "journal-dir", "tsig-keys", "forward-ddns", "reverse-ddns",
                "ddns-ttl-percent", "ddns-ttl-min", "sender-threads", "queue-capacity",
            ]),
            value in prop_oneof![
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                ".{0,70}".prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
                Just(json!([{}])),
                Just(json!({"ddns-domains": [{"name": "x", "dns-servers": [{}]}]})),
            ],
        ) {
            let mut v = sample();
            v[key] = value;
            if let Err(e) = parse(&v) {
                prop_assert!(e.path().is_some_and(|p| p.starts_with(key)), "{e}");
            }
        }
    }

    #[test]
    fn kea_release_of_hooks_version() {
        assert_eq!(
            KeaRelease::from_hooks_version(20200),
            Some(KeaRelease::V2_2)
        );
        assert_eq!(
            KeaRelease::from_hooks_version(20603),
            Some(KeaRelease::V2_6)
        );
        assert_eq!(
            KeaRelease::from_hooks_version(30003),
            Some(KeaRelease::V3_0)
        );
        assert_eq!(
            KeaRelease::from_hooks_version(30004),
            Some(KeaRelease::V3_0)
        );
        assert_eq!(KeaRelease::from_hooks_version(20400), None);
        assert_eq!(KeaRelease::from_hooks_version(30100), None);
    }

    /// A setting Kea has itself is refused as a hook parameter, naming the
    /// release and where it goes; older releases keep it as the hook's.
    #[test]
    fn native_kea_settings_are_refused_as_hook_parameters() {
        let with = |key: &str, value: serde_json::Value| {
            let mut v = sample();
            v[key] = value;
            v.to_string()
        };
        let cases = [
            ("ddns-send-updates", json!(true), KeaRelease::V2_2),
            ("ddns-override-no-update", json!(true), KeaRelease::V2_2),
            ("ddns-override-client-update", json!(true), KeaRelease::V2_2),
            (
                "ddns-replace-client-name",
                json!("always"),
                KeaRelease::V2_2,
            ),
            ("ddns-generated-prefix", json!("host"), KeaRelease::V2_2),
            (
                "ddns-qualifying-suffix",
                json!("lan.example."),
                KeaRelease::V2_2,
            ),
            ("hostname-char-set", json!("[^a-z]"), KeaRelease::V2_2),
            ("hostname-char-replacement", json!("x"), KeaRelease::V2_2),
            ("ddns-update-on-renew", json!(true), KeaRelease::V2_2),
            (
                "ddns-use-conflict-resolution",
                json!(false),
                KeaRelease::V2_2,
            ),
            (
                "ddns-conflict-resolution-mode",
                json!("no-check-with-dhcid"),
                KeaRelease::V2_6,
            ),
            ("ddns-ttl-percent", json!(0.5), KeaRelease::V2_6),
            ("ddns-ttl-min", json!(300), KeaRelease::V3_0),
            ("ddns-ttl-max", json!(3000), KeaRelease::V3_0),
            ("ddns-ttl", json!(300), KeaRelease::V3_0),
        ];
        for (key, value, since) in cases {
            for kea in [KeaRelease::V2_2, KeaRelease::V2_6, KeaRelease::V3_0] {
                let result = Config::from_json_for(&with(key, value.clone()), kea);
                if kea >= since {
                    let err = result.expect_err(key).to_string();
                    assert!(err.contains(key) && err.contains("kea-dhcp4.conf"), "{err}");
                    assert!(err.contains(&format!("Kea {}", kea.name())), "{err}");
                } else if key == "ddns-ttl" {
                    let err = result.expect_err(key).to_string();
                    assert!(err.contains("Kea 3.0 has"), "{err}");
                } else if key == "ddns-conflict-resolution-mode" {
                    // Kea 2.2 has the boolean only, which leasedns follows.
                    let err = result.expect_err(key).to_string();
                    assert!(err.contains("ddns-use-conflict-resolution"), "{err}");
                } else {
                    let c = result.unwrap_or_else(|e| panic!("{key} on {kea:?}: {e}"));
                    assert_eq!(c.kea, kea);
                    assert_eq!(c.ttl.kea, kea);
                }
            }
        }
        // Kea's DDNS client section says where it belongs.
        let err = Config::from_json_for(&with("dhcp-ddns", json!({})), KeaRelease::V2_2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("enable-updates false"), "{err}");
    }

    #[test]
    fn scopes_take_each_setting_from_kea_where_kea_has_it() {
        let mut v = sample();
        v["ddns-ttl-min"] = json!(900);
        let kea_view = |id: u32, mode: &str| KeaSubnetDdns {
            subnet_id: id,
            send_updates: true,
            override_client_update: id == 7,
            override_no_update: false,
            update_on_renew: id == 7,
            use_conflict_resolution: None,
            conflict_mode: mode.to_owned(),
            ttl_percent: Some(0.5),
            ttl: Some(120),
            ttl_min: Some(100),
            ttl_max: None,
            generate_names: id == 7,
        };
        let global = kea_view(0, "check-with-dhcid");
        let subnets = [kea_view(7, "no-check-without-dhcid")];

        // Kea 2.6: mode and percentage from Kea, minimum from the hook.
        let c26 = Config::from_json_for(&v.to_string(), KeaRelease::V2_6).unwrap();
        let scopes = Scopes::from_kea(&c26, &global, &subnets).unwrap();
        let s7 = scopes.for_subnet(7);
        assert_eq!(s7.conflict_mode, ConflictMode::NoCheckWithoutDhcid);
        assert!(s7.send_updates && s7.override_client_update && s7.update_on_renew);
        assert!(!s7.override_no_update);
        assert_eq!(s7.ttl.kea, KeaRelease::V2_6);
        assert_eq!(
            (s7.ttl.percent, s7.ttl.fixed, s7.ttl.min, s7.ttl.max),
            (Some(0.5), None, Some(900), None)
        );
        // A subnet Kea does not know gets Kea's defaults.
        let s8 = scopes.for_subnet(8);
        assert_eq!(s8.conflict_mode, ConflictMode::CheckWithDhcid);
        assert!(!s8.override_client_update && !s8.update_on_renew);
        assert_eq!(scopes.subnets(), 1);

        // Kea 3.0: everything from Kea.
        v.as_object_mut().unwrap().remove("ddns-ttl-min");
        let c30 = Config::from_json_for(&v.to_string(), KeaRelease::V3_0).unwrap();
        let s7 = Scopes::from_kea(&c30, &global, &subnets)
            .unwrap()
            .for_subnet(7);
        assert_eq!(
            (s7.ttl.percent, s7.ttl.fixed, s7.ttl.min, s7.ttl.max),
            (Some(0.5), Some(120), Some(100), None)
        );
        assert_eq!(crate::naming::dhcid::ttl(&s7.ttl, 3600), 120);

        // Kea 2.2: ddns-use-conflict-resolution decides, per subnet; the TTL
        // settings Kea 2.2 lacks come from the hook.
        let c22 = Config::from_json(&sample().to_string()).unwrap();
        let mut off = kea_view(7, "");
        off.use_conflict_resolution = Some(false);
        let mut on = kea_view(8, "");
        on.use_conflict_resolution = Some(true);
        let s = Scopes::from_kea(&c22, &global, &[off, on]).unwrap();
        assert_eq!(
            s.for_subnet(7).conflict_mode,
            ConflictMode::NoCheckWithDhcid
        );
        assert_eq!(s.for_subnet(8).conflict_mode, ConflictMode::CheckWithDhcid);
        assert_eq!(s.for_subnet(7).ttl.percent, None);

        // Set at no scope (Kea reports ""): Kea's default, check-with-dhcid.
        let unset = [kea_view(7, "")];
        let s7 = Scopes::from_kea(&c26, &global, &unset)
            .unwrap()
            .for_subnet(7);
        assert_eq!(s7.conflict_mode, ConflictMode::CheckWithDhcid);

        // A mode this build does not know is an error, not a guess.
        let odd = [kea_view(9, "check-with-magic")];
        let err = Scopes::from_kea(&c26, &global, &odd).unwrap_err();
        assert!(
            err.contains("subnet 9") && err.contains("check-with-magic"),
            "{err}"
        );
    }
}
