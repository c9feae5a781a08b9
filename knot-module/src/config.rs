//! The module's configuration section: item names, defaults, and the
//! checks `knotc conf-check` and `load` run. knotd's own schema only knows
//! the types; every range and format check lives here so all errors read
//! the same way.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Item names, as they appear in `mod-querystats:` sections.
pub(crate) const METRICS_LISTEN: &str = "metrics-listen";
pub(crate) const TOP_N: &str = "top-n";
pub(crate) const TOP_SAMPLE: &str = "top-sample";
pub(crate) const TOP_HALF_LIFE: &str = "top-half-life";
pub(crate) const LATENCY_BUCKETS: &str = "latency-buckets";
pub(crate) const MAX_ZONES: &str = "max-zones";

pub(crate) const DEFAULT_TOP_N: i64 = 10;
pub(crate) const MAX_TOP_N: i64 = 100;
pub(crate) const DEFAULT_TOP_SAMPLE: i64 = 16;
pub(crate) const MAX_TOP_SAMPLE: i64 = 65_536;
pub(crate) const DEFAULT_TOP_HALF_LIFE: i64 = 60;
pub(crate) const MAX_TOP_HALF_LIFE: i64 = 86_400;
pub(crate) const DEFAULT_MAX_ZONES: i64 = 64;
pub(crate) const MAX_MAX_ZONES: i64 = 65_535;
pub(crate) const MAX_LATENCY_BUCKETS: usize = 32;
/// Microseconds: 10 us to 1 s, roughly 1-2.5-5 per decade.
pub(crate) const DEFAULT_LATENCY_BUCKETS_US: [i64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000,
];
const MAX_LATENCY_BOUND_US: i64 = 60_000_000;

/// What knotd hands over for one section, before any check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawSettings {
    pub(crate) metrics_listen: Option<String>,
    pub(crate) top_n: i64,
    pub(crate) top_sample: i64,
    pub(crate) top_half_life: i64,
    /// Empty when not configured.
    pub(crate) latency_buckets_us: Vec<i64>,
    pub(crate) max_zones: i64,
    pub(crate) knotc_stats: bool,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            metrics_listen: None,
            top_n: DEFAULT_TOP_N,
            top_sample: DEFAULT_TOP_SAMPLE,
            top_half_life: DEFAULT_TOP_HALF_LIFE,
            latency_buckets_us: Vec::new(),
            max_zones: DEFAULT_MAX_ZONES,
            knotc_stats: true,
        }
    }
}

/// Checked settings of one module instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// 0 turns heavy-hitter tracking off.
    pub(crate) top_n: usize,
    /// One query in `top_sample` feeds the heavy-hitter tables.
    pub(crate) top_sample: u32,
    pub(crate) top_half_life: Duration,
    /// Upper bounds in nanoseconds, strictly increasing.
    pub(crate) latency_bounds_ns: Vec<u64>,
    pub(crate) max_zones: usize,
    pub(crate) knotc_stats: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ConfigError {
    #[error("{METRICS_LISTEN}: '{0}' is not ADDRESS@PORT (e.g. 127.0.0.1@10053 or ::1@10053)")]
    BadListen(String),
    #[error("{METRICS_LISTEN}: port 0 in '{0}'; give the port to listen on")]
    ZeroPort(String),
    #[error("{item}: {value} is out of range {min}..={max}")]
    OutOfRange {
        item: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error("{LATENCY_BUCKETS}: at most {MAX_LATENCY_BUCKETS} bounds, got {0}")]
    TooManyBuckets(usize),
    #[error("{LATENCY_BUCKETS}: bounds must be strictly increasing ({0} us after {1} us)")]
    BucketsNotIncreasing(i64, i64),
}

fn in_range(item: &'static str, value: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    if (min..=max).contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::OutOfRange {
        item,
        value,
        min,
        max,
    })
}

/// Parses knotd's `address@port` notation (an IPv6 address needs no
/// brackets, as everywhere in knot.conf).
pub(crate) fn parse_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    let bad = || ConfigError::BadListen(text.to_owned());
    let (addr, port) = text.trim().rsplit_once('@').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(ConfigError::ZeroPort(text.to_owned()));
    }
    Ok(SocketAddr::new(addr, port))
}

impl RawSettings {
    pub(crate) fn check(&self) -> Result<Settings, ConfigError> {
        let metrics_listen = self
            .metrics_listen
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(parse_listen)
            .transpose()?;
        let top_n = in_range(TOP_N, self.top_n, 0, MAX_TOP_N)?;
        let top_sample = in_range(TOP_SAMPLE, self.top_sample, 1, MAX_TOP_SAMPLE)?;
        let half_life = in_range(TOP_HALF_LIFE, self.top_half_life, 1, MAX_TOP_HALF_LIFE)?;
        let max_zones = in_range(MAX_ZONES, self.max_zones, 1, MAX_MAX_ZONES)?;
        let bounds_us: &[i64] = if self.latency_buckets_us.is_empty() {
            &DEFAULT_LATENCY_BUCKETS_US
        } else {
            &self.latency_buckets_us
        };
        if bounds_us.len() > MAX_LATENCY_BUCKETS {
            return Err(ConfigError::TooManyBuckets(bounds_us.len()));
        }
        let mut latency_bounds_ns = Vec::with_capacity(bounds_us.len());
        let mut previous = 0;
        for &bound in bounds_us {
            let bound = in_range(LATENCY_BUCKETS, bound, 1, MAX_LATENCY_BOUND_US)?;
            if bound <= previous {
                return Err(ConfigError::BucketsNotIncreasing(bound, previous));
            }
            previous = bound;
            latency_bounds_ns.push(bound.unsigned_abs() * 1_000);
        }
        Ok(Settings {
            metrics_listen,
            top_n: usize::try_from(top_n).unwrap_or(0),
            top_sample: u32::try_from(top_sample).unwrap_or(1),
            top_half_life: Duration::from_secs(half_life.unsigned_abs()),
            latency_bounds_ns,
            max_zones: usize::try_from(max_zones).unwrap_or(1),
            knotc_stats: self.knotc_stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_off() {
        let settings = RawSettings::default().check().unwrap();
        assert_eq!(settings.metrics_listen, None);
        assert_eq!(settings.top_n, 10);
        assert_eq!(settings.latency_bounds_ns.first(), Some(&10_000));
        assert_eq!(settings.latency_bounds_ns.last(), Some(&1_000_000_000));
        assert_eq!(settings.latency_bounds_ns.len(), 16);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1@10053").unwrap(),
            "127.0.0.1:10053".parse().unwrap()
        );
        assert_eq!(parse_listen("::1@80").unwrap(), "[::1]:80".parse().unwrap());
        for bad in [
            "127.0.0.1",
            "localhost@80",
            "127.0.0.1@",
            "1.2.3.4@99999",
            "/run/x.sock",
        ] {
            assert_eq!(
                parse_listen(bad),
                Err(ConfigError::BadListen(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            parse_listen("127.0.0.1@0"),
            Err(ConfigError::ZeroPort("127.0.0.1@0".into()))
        );
    }

    #[test]
    fn ranges_are_enforced_with_the_item_name() {
        let raw = RawSettings {
            top_n: 101,
            ..RawSettings::default()
        };
        let err = raw.check().unwrap_err();
        assert_eq!(err.to_string(), "top-n: 101 is out of range 0..=100");
        let raw = RawSettings {
            top_sample: 0,
            ..RawSettings::default()
        };
        assert!(
            raw.check()
                .unwrap_err()
                .to_string()
                .starts_with("top-sample")
        );
        let raw = RawSettings {
            max_zones: 0,
            ..RawSettings::default()
        };
        assert!(raw.check().is_err());
    }

    #[test]
    fn latency_buckets_must_increase() {
        let raw = RawSettings {
            latency_buckets_us: vec![100, 50],
            ..RawSettings::default()
        };
        assert_eq!(
            raw.check().unwrap_err(),
            ConfigError::BucketsNotIncreasing(50, 100)
        );
        let raw = RawSettings {
            latency_buckets_us: vec![5, 50, 500],
            ..RawSettings::default()
        };
        assert_eq!(
            raw.check().unwrap().latency_bounds_ns,
            vec![5_000, 50_000, 500_000]
        );
        let raw = RawSettings {
            latency_buckets_us: (1..=33).collect(),
            ..RawSettings::default()
        };
        assert_eq!(raw.check().unwrap_err(), ConfigError::TooManyBuckets(33));
    }
}
