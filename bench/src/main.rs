//! `./build/bench`: the same perfdhcp workloads through (a) Kea with DDNS
//! off, (b) the stock path kea-dhcp4 -> kea-dhcp-ddns -> Knot and (c) Kea
//! with leasedns (each also for kea-dhcp6 and perfdhcp -6: the workloads
//! named with a 6), each against a fresh knotd in fresh network namespaces,
//! then one table with lease rates, DNS completion, lag, missing records,
//! CPU, the ratios c/b and c/a, callout latencies and the targets.

mod d2;
mod probe;
mod report;
mod run;

use harness::Family;
use run::{Mode, RunResult, Setup, Workload};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error(transparent)]
    Harness(#[from] harness::HarnessError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
}

impl BenchError {
    pub(crate) fn io(context: impl std::fmt::Display, source: std::io::Error) -> Self {
        Self::Io {
            context: context.to_string(),
            source,
        }
    }
}

const USAGE: &str = "usage: bench [--quick] [--steady-rate R] [--steady-leases N] [--burst-rate R]
             [--burst-leases N] [--threads T] [--family v4|v6|both]
             [--workloads steady,burst,burst-mt,backlog,steady6,burst6,burst6-mt,backlog6]
             [--modes abc] [--dns-timeout SECS] [--no-callout-timer] [--perf DIR]
             [--hook-param KEY=VALUE]...
  --quick              smoke run: 1,000 leases at 500/s, bursts of 2,000
  --steady-rate R      steady workload rate (default 1000/s)
  --steady-leases N    steady workload leases (default 10000)
  --burst-rate R       burst perfdhcp -r (default 10000: faster than Kea takes them)
  --burst-leases N     burst leases (default 20000)
  --threads T          Kea thread-pool-size in burst-mt (default 2)
  --family F           v4 (default): steady,burst,burst-mt,backlog through kea-dhcp4;
                       v6: the same four as steady6,burst6,burst6-mt,backlog6 through
                       kea-dhcp6 and perfdhcp -6 (option 39, S=1); both: all eight
  --workloads LIST     which workloads (overrides --family); a 6 in the name is DHCPv6
  --modes LETTERS      which modes (default abc)
  --dns-timeout SECS   give up on missing records this long after the last ACK (default 60)
  --no-callout-timer   skip the extra burst runs of leasedns through the callout timer
                       (v4 only: the timer forwards kea-dhcp4's callouts)
  --perf DIR           perf record Kea and knotd during leasedns runs, data in DIR
  --hook-param K=V     extra leasedns parameter in every leasedns run (repeatable),
                       e.g. --hook-param sender-threads=64
Environment: LEASEDNS_HOOK_LIB (the hook), LEASEDNS_CALLOUT_TIMER_LIB (the timer),
BENCH_STEADY_LEASES, BENCH_BURST_LEASES (defaults for the two -leases flags).";

#[derive(Debug)]
struct Args {
    steady_rate: u32,
    steady_leases: u32,
    burst_rate: u32,
    burst_leases: u32,
    threads: u32,
    workloads: Vec<String>,
    modes: Vec<Mode>,
    dns_timeout: Duration,
    callout_timer: bool,
    perf_dir: Option<PathBuf>,
    hook_params: Vec<(String, serde_json::Value)>,
}

/// The DHCPv4 workloads; each has a DHCPv6 twin named with a 6 after the
/// first word (`burst6-mt`).
const WORKLOADS_V4: [&str; 4] = ["steady", "burst", "burst-mt", "backlog"];
const WORKLOADS_V6: [&str; 4] = ["steady6", "burst6", "burst6-mt", "backlog6"];

/// The workload's v4 name and its family: `burst6-mt` is `burst-mt` in v6.
fn base_and_family(name: &str) -> (String, Family) {
    if name.contains('6') {
        (name.replacen('6', "", 1), Family::V6)
    } else {
        (name.to_owned(), Family::V4)
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, BenchError> {
    let mut parsed = Args {
        steady_rate: 1000,
        steady_leases: env_u32("BENCH_STEADY_LEASES", 10_000),
        burst_rate: 10_000,
        burst_leases: env_u32("BENCH_BURST_LEASES", 20_000),
        threads: 2,
        workloads: WORKLOADS_V4.map(String::from).to_vec(),
        modes: vec![Mode::KeaOnly, Mode::Stock, Mode::Leasedns],
        dns_timeout: Duration::from_secs(60),
        callout_timer: true,
        perf_dir: None,
        hook_params: Vec::new(),
    };
    let mut args = args.into_iter();
    let mut family_workloads: Option<Vec<String>> = None;
    let mut explicit_workloads = false;
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))
        };
        let number = |flag: &str, text: String| {
            text.parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| BenchError::Usage(format!("{flag}: not a positive number: {text}")))
        };
        match arg.as_str() {
            "--quick" => {
                parsed.steady_rate = 500;
                parsed.steady_leases = 1000;
                parsed.burst_leases = 2000;
                parsed.dns_timeout = Duration::from_secs(30);
            }
            "--steady-rate" => parsed.steady_rate = number(&arg, value(&arg)?)?,
            "--steady-leases" => parsed.steady_leases = number(&arg, value(&arg)?)?,
            "--burst-rate" => parsed.burst_rate = number(&arg, value(&arg)?)?,
            "--burst-leases" => parsed.burst_leases = number(&arg, value(&arg)?)?,
            "--threads" => parsed.threads = number(&arg, value(&arg)?)?,
            "--dns-timeout" => {
                parsed.dns_timeout = Duration::from_secs(u64::from(number(&arg, value(&arg)?)?));
            }
            "--workloads" => {
                parsed.workloads = value(&arg)?.split(',').map(String::from).collect();
                explicit_workloads = true;
                if let Some(bad) = parsed.workloads.iter().find(|w| {
                    !WORKLOADS_V4.contains(&w.as_str()) && !WORKLOADS_V6.contains(&w.as_str())
                }) {
                    return Err(BenchError::Usage(format!("unknown workload {bad}")));
                }
            }
            "--family" => {
                let list: Vec<&str> = match value(&arg)?.as_str() {
                    "v4" => WORKLOADS_V4.to_vec(),
                    "v6" => WORKLOADS_V6.to_vec(),
                    "both" => [WORKLOADS_V4, WORKLOADS_V6].concat(),
                    other => {
                        return Err(BenchError::Usage(format!(
                            "--family wants v4, v6 or both, got {other}"
                        )));
                    }
                };
                family_workloads = Some(list.into_iter().map(String::from).collect());
            }
            "--modes" => {
                parsed.modes = value(&arg)?
                    .chars()
                    .map(|c| match c {
                        'a' => Ok(Mode::KeaOnly),
                        'b' => Ok(Mode::Stock),
                        'c' => Ok(Mode::Leasedns),
                        other => Err(BenchError::Usage(format!("unknown mode {other}"))),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--no-callout-timer" => parsed.callout_timer = false,
            "--perf" => parsed.perf_dir = Some(PathBuf::from(value(&arg)?)),
            "--hook-param" => {
                let text = value(&arg)?;
                let (key, raw) = text.split_once('=').ok_or_else(|| {
                    BenchError::Usage(format!("--hook-param wants key=value, got {text}"))
                })?;
                // A JSON value (8, true, "x"), else the text as a string.
                let value = serde_json::from_str(raw)
                    .unwrap_or_else(|_| serde_json::Value::String(raw.to_owned()));
                parsed.hook_params.push((key.to_owned(), value));
            }
            "-h" | "--help" => return Err(BenchError::Usage(String::new())),
            other => return Err(BenchError::Usage(format!("unknown argument {other}"))),
        }
    }
    if let (Some(list), false) = (family_workloads, explicit_workloads) {
        parsed.workloads = list;
    }
    Ok(parsed)
}

fn workloads(args: &Args) -> Vec<Workload> {
    args.workloads
        .iter()
        .map(|name| (name, base_and_family(name)))
        .map(|(name, (base, family))| match base.as_str() {
            "steady" => Workload {
                name: name.clone(),
                family,
                rate: args.steady_rate,
                leases: args.steady_leases,
                threads: None,
                pause_dns: false,
            },
            "burst" => Workload {
                name: name.clone(),
                family,
                rate: args.burst_rate,
                leases: args.burst_leases,
                threads: None,
                pause_dns: false,
            },
            "backlog" => Workload {
                name: name.clone(),
                family,
                rate: args.burst_rate,
                leases: args.burst_leases,
                threads: None,
                pause_dns: true,
            },
            _ => Workload {
                name: name.clone(),
                family,
                rate: args.burst_rate,
                leases: args.burst_leases,
                threads: Some(args.threads),
                pause_dns: false,
            },
        })
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<(), BenchError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Failed(
            "needs root (network namespaces, raw sockets)".into(),
        ));
    }
    let hook = harness::hook_library()?;
    let timing_dir = tempfile::Builder::new()
        .prefix("leasedns-bench-callouts-")
        .tempdir()
        .map_err(|e| BenchError::io("creating the callout timing directory", e))?;
    let timer = if args.callout_timer {
        let lib = timer_library(&hook)?;
        // kea-dhcp4 inherits these; the timer reads them at load.
        // SAFETY: no other thread exists yet (the harness spawns its
        // threads on first use, below), so nothing reads the environment
        // concurrently.
        unsafe {
            std::env::set_var(leasedns_callout_timer::TIMED_LIB_ENV, &hook);
            std::env::set_var(leasedns_callout_timer::TIMING_DIR_ENV, timing_dir.path());
        }
        Some((lib, timing_dir.path().to_owned()))
    } else {
        None
    };
    if let Some(dir) = &args.perf_dir {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir.display(), e))?;
    }
    let setup = Setup {
        hook,
        timer,
        dns_timeout: args.dns_timeout,
        perf_dir: args.perf_dir.clone(),
        hook_params: args.hook_params.clone(),
    };
    let workloads = workloads(args);
    println!("{}", report::header(&setup, &workloads, &args.modes));
    let mut results: Vec<RunResult> = Vec::new();
    for workload in &workloads {
        let mut modes = args.modes.clone();
        // Callout latencies are taken under the burst, in a run of their
        // own: the timer's clock calls would tax the lease rate compared.
        // The timer forwards kea-dhcp4's callouts only.
        if setup.timer.is_some()
            && workload.family == Family::V4
            && workload.name.starts_with("burst")
            && modes.contains(&Mode::Leasedns)
        {
            modes.push(Mode::LeasednsTimed);
        }
        for &mode in &modes {
            eprintln!(
                "bench: {} ({}{} leases at {}/s{}) in mode {} ...",
                workload.name,
                match workload.family {
                    Family::V4 => "",
                    Family::V6 => "kea-dhcp6, ",
                },
                workload.leases,
                workload.rate,
                workload
                    .threads
                    .map_or(String::new(), |t| format!(", Kea multi-threaded x{t}")),
                mode.label()
            );
            let result = run::run(mode, workload, &setup)?;
            eprintln!("bench:   {}", report::one_line(&result));
            results.push(result);
        }
    }
    println!("{}", report::table(&workloads, &results));
    Ok(())
}

/// The callout timer library: `LEASEDNS_CALLOUT_TIMER_LIB`, else next to
/// the hook (both are built into the same target directory).
fn timer_library(hook: &std::path::Path) -> Result<PathBuf, BenchError> {
    let path = match std::env::var_os("LEASEDNS_CALLOUT_TIMER_LIB") {
        Some(path) => PathBuf::from(path),
        None => hook.with_file_name("libleasedns_callout_timer.so"),
    };
    if path.is_file() {
        return Ok(path);
    }
    Err(BenchError::Failed(format!(
        "{} not found: build it with `cargo build --release -p bench`, or pass --no-callout-timer",
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, BenchError> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn quick_shrinks_the_workloads_and_flags_override() {
        let a = args(&["--quick", "--burst-leases", "500", "--modes", "bc"]).unwrap();
        assert_eq!(a.steady_leases, 1000);
        assert_eq!(a.burst_leases, 500);
        assert_eq!(a.modes, vec![Mode::Stock, Mode::Leasedns]);
        let w = workloads(&a);
        assert_eq!(w.len(), 4);
        assert_eq!(w[2].threads, Some(2));
        assert_eq!(w[1].rate, 10_000);
        // Only the backlog pauses knotd, at the burst's size and rate.
        let paused: Vec<&str> = w
            .iter()
            .filter(|w| w.pause_dns)
            .map(|w| w.name.as_str())
            .collect();
        assert_eq!(paused, ["backlog"]);
        assert_eq!((w[3].leases, w[3].threads), (500, None));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(args(&["--modes", "x"]).is_err());
        assert!(args(&["--steady-rate", "0"]).is_err());
        assert!(args(&["--burst-leases"]).is_err());
        assert!(args(&["--workloads", "steady,nope"]).is_err());
        assert!(args(&["--frobnicate"]).is_err());
        assert!(args(&["--family", "v5"]).is_err());
        assert!(args(&["--workloads", "steady7"]).is_err());
    }

    #[test]
    fn family_picks_the_workloads_and_names_carry_it() {
        let v4 = args(&[]).unwrap();
        assert_eq!(v4.workloads, WORKLOADS_V4.map(String::from));
        assert!(workloads(&v4).iter().all(|w| w.family == Family::V4));
        let v6 = args(&["--quick", "--family", "v6"]).unwrap();
        let w = workloads(&v6);
        let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, WORKLOADS_V6);
        assert!(w.iter().all(|w| w.family == Family::V6));
        // Each v6 workload is its v4 twin's shape.
        assert_eq!((w[0].rate, w[0].leases), (500, 1000));
        assert_eq!((w[2].threads, w[2].leases), (Some(2), 2000));
        assert!(w[3].pause_dns && !w[1].pause_dns);
        let both = args(&["--family", "both"]).unwrap();
        assert_eq!(both.workloads.len(), 8);
        // An explicit list wins, wherever --family stands.
        let mixed = args(&["--workloads", "burst,burst6", "--family", "v6"]).unwrap();
        let w = workloads(&mixed);
        assert_eq!(
            w.iter().map(|w| w.family).collect::<Vec<_>>(),
            [Family::V4, Family::V6]
        );
    }
}
