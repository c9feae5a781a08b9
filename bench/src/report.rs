//! The benchmark's output: a header naming the machine and versions, one
//! Markdown table of every run, the ratios, callout latencies and the
//! issue's targets, ready to paste into docs/benchmarks.md.

use crate::run::{FQDN_OPTION6, Mode, RunResult, Setup, Workload};
use harness::Family;
use leasedns_callout_timer::CPU_SUFFIX;
use leasedns_callout_timer::histogram::Histogram;
use std::fmt::Write as _;

/// Target 1: every record within this long after the last ACK.
const TARGET_LAG_S: f64 = 1.0;
/// Target 2: leasedns completes DNS changes this many times faster.
const TARGET_SPEEDUP: f64 = 5.0;
/// Target 3: Kea's lease rate with the hook, relative to DDNS off.
const TARGET_KEA_RATE: f64 = 0.97;
/// Target 4: callout p99 in microseconds.
const TARGET_CALLOUT_P99_US: f64 = 20.0;

fn command_line(program: &str, args: &[&str]) -> String {
    let path = harness::program(program).unwrap_or_else(|_| program.into());
    std::process::Command::new(path)
        .args(args)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_else(|e| format!("({program}: {e})"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub(crate) fn header(setup: &Setup, workloads: &[Workload], modes: &[Mode]) -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "leasedns benchmark, {}",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(
        text,
        "machine: {} x {cores} cores, {}, load average at start {}",
        cpu_model(),
        command_line("uname", &["-sr"]),
        load.join(" ")
    );
    let _ = writeln!(
        text,
        "software: kea-dhcp4 {}, kea-dhcp-ddns {}, {}, perfdhcp (Kea {})",
        command_line("kea-dhcp4", &["-V"]),
        command_line("kea-dhcp-ddns", &["-V"]),
        command_line("knotd", &["--version"]),
        command_line("kea-dhcp4", &["-v"]),
    );
    let any_v6 = workloads.iter().any(|w| w.family == Family::V6);
    if any_v6 {
        let _ = writeln!(
            text,
            "software (DHCPv6): kea-dhcp6 {}, perfdhcp -6",
            command_line("kea-dhcp6", &["-V"]),
        );
    }
    let _ = writeln!(
        text,
        "hook: {}{}",
        setup.hook.display(),
        match (setup.timer.is_some(), any_v6) {
            (true, false) => " (mode c' loads it through the callout timer)",
            (true, true) => " (mode c' loads it through the callout timer; DHCPv4 only)",
            (false, _) => "",
        }
    );
    for w in workloads {
        if w.family == Family::V6 {
            let option: String = FQDN_OPTION6.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(
                text,
                "workload {} (DHCPv6): perfdhcp -6 -r {} -R {n} -n {n} -o 39,{option} -W 1000000; kea-dhcp6 {}",
                w.name,
                w.rate,
                w.threads.map_or("single-threaded".to_owned(), |t| format!(
                    "multi-threaded, thread-pool-size {t}"
                )),
                n = w.leases,
            );
            continue;
        }
        let _ = writeln!(
            text,
            "workload {}: perfdhcp -4 -r {} -R {n} -n {n} -o 81,050000 -W 1000000; Kea {}",
            w.name,
            w.rate,
            w.threads.map_or("single-threaded".to_owned(), |t| format!(
                "multi-threaded, thread-pool-size {t}"
            )),
            n = w.leases,
        );
    }
    let labels: Vec<&str> = modes.iter().map(|m| m.label()).collect();
    let _ = write!(text, "modes: {}", labels.join("; "));
    text
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The family's words for the exchange's first message and last answer.
fn first_and_last(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => ("DISCOVER", "ACK"),
        Family::V6 => ("Solicit", "Reply"),
    }
}

pub(crate) fn one_line(r: &RunResult) -> String {
    let (first, _) = first_and_last(r.family);
    let answers = match r.family {
        Family::V4 => "ACKs",
        Family::V6 => "Replies",
    };
    format!(
        "{} leases committed ({} {answers}), {:.0} leases/s, {} drops, all records {} s after the first {first}, lag {} s, missing {}, {} names/s, CPU kea {:.2} s d2 {} s knotd {:.2} s",
        r.committed,
        r.acks,
        r.leases_per_s,
        r.drops,
        opt(r.all_records_s, 2),
        opt(r.lag_s, 3),
        r.missing.map_or("-".into(), |m| m.to_string()),
        opt(r.names_per_s, 0),
        r.cpu_kea,
        opt(r.cpu_d2, 2),
        r.cpu_knot,
    )
}

fn find<'a>(results: &'a [RunResult], workload: &str, mode: Mode) -> Option<&'a RunResult> {
    results
        .iter()
        .find(|r| r.workload == workload && r.mode == mode)
}

fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub(crate) fn table(workloads: &[Workload], results: &[RunResult]) -> String {
    let mut t = String::new();
    // One table per family, DHCPv4 first and exactly as before DHCPv6
    // existed; DHCPv6's columns name its messages and server.
    for family in [Family::V4, Family::V6] {
        let rows: Vec<&RunResult> = results.iter().filter(|r| r.family == family).collect();
        if !rows.is_empty() {
            runs_table(&mut t, family, &rows);
        }
    }
    ratios_and_rest(&mut t, workloads, results);
    t
}

fn runs_table(t: &mut String, family: Family, results: &[&RunResult]) {
    let (first, last) = first_and_last(family);
    if family == Family::V6 {
        let _ = writeln!(
            t,
            "\nDHCPv6 (kea-dhcp6, perfdhcp -6: Solicit/Advertise/Request/Reply; records are AAAA and ip6.arpa PTR):"
        );
    }
    let _ = writeln!(
        t,
        "\n| workload | mode | leases committed | leases/s | perfdhcp drops | first {first} to all records (s) | lag after last {last} (s) | records missing | complete names/s | CPU s {} | CPU s kea-dhcp-ddns | CPU s knotd |",
        family.program()
    );
    let _ = writeln!(t, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in results {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {} | {:.2} |",
            r.workload,
            r.mode.label(),
            r.committed,
            r.leases_per_s,
            r.drops,
            opt(r.all_records_s, 2),
            opt(r.lag_s, 3),
            r.missing.map_or("-".into(), |m| m.to_string()),
            opt(r.names_per_s, 0),
            r.cpu_kea,
            opt(r.cpu_d2, 2),
            r.cpu_knot,
        );
    }
}

fn ratios_and_rest(t: &mut String, workloads: &[Workload], results: &[RunResult]) {
    let _ = writeln!(
        t,
        "\n| workload | c/b complete names/s | c/b leases/s | c/a leases/s |"
    );
    let _ = writeln!(t, "|---|--:|--:|--:|");
    for w in workloads {
        let a = find(results, &w.name, Mode::KeaOnly);
        let b = find(results, &w.name, Mode::Stock);
        let c = find(results, &w.name, Mode::Leasedns);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            w.name,
            opt(
                ratio(c.and_then(|c| c.names_per_s), b.and_then(|b| b.names_per_s)),
                2
            ),
            opt(
                ratio(c.map(|c| c.leases_per_s), b.map(|b| b.leases_per_s)),
                3
            ),
            opt(
                ratio(c.map(|c| c.leases_per_s), a.map(|a| a.leases_per_s)),
                3
            ),
        );
    }

    let timed: Vec<&RunResult> = results.iter().filter(|r| !r.callouts.is_empty()).collect();
    if !timed.is_empty() {
        let _ = writeln!(
            t,
            "\nTime inside each leasedns callout (mode c, measured in kea-dhcp4 by the callout timer):\n"
        );
        let _ = writeln!(
            t,
            "| workload | callout | calls | wall p50 (us) | wall p99 (us) | wall max (us) | CPU p50 (us) | CPU p99 (us) | CPU max (us) |"
        );
        let _ = writeln!(t, "|---|---|--:|--:|--:|--:|--:|--:|--:|");
        for r in &timed {
            for (name, wall, cpu) in callout_pairs(r) {
                let _ = writeln!(
                    t,
                    "| {} | {name} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                    r.workload,
                    wall.count,
                    us(wall.quantile(0.5)),
                    us(wall.quantile(0.99)),
                    us(wall.max),
                    opt(cpu.map(|h| us(h.quantile(0.5))), 1),
                    opt(cpu.map(|h| us(h.quantile(0.99))), 1),
                    opt(cpu.map(|h| us(h.max)), 1),
                );
            }
        }
    }

    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| {
            r.notes
                .iter()
                .map(move |n| format!("- {} / {}: {n}", r.workload, r.mode.letter()))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(t, "\nNotes:\n{}", notes.join("\n"));
    }
    let _ = write!(t, "\n{}", targets(workloads, results));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn targets(workloads: &[Workload], results: &[RunResult]) -> String {
    let mut t = String::from("Targets (issue 5):\n");
    for w in workloads.iter().filter(|w| w.name.starts_with("burst")) {
        let Some(c) = find(results, &w.name, Mode::Leasedns) else {
            continue;
        };
        let lag = c.lag_s;
        let ok = c.missing == Some(0) && lag.is_some_and(|l| l <= TARGET_LAG_S);
        let (records, last) = match w.family {
            Family::V4 => ("A", "ACK"),
            Family::V6 => ("AAAA", "Reply"),
        };
        let _ = writeln!(
            t,
            "1. {}: all {records} and PTR within {TARGET_LAG_S} s of the last {last}, none missing: lag {} s, missing {} -> {}",
            w.name,
            opt(lag, 3),
            c.missing.map_or("-".into(), |m| m.to_string()),
            verdict(ok)
        );
    }
    for w in workloads {
        let b = find(results, &w.name, Mode::Stock).and_then(|b| b.names_per_s);
        let c = find(results, &w.name, Mode::Leasedns).and_then(|c| c.names_per_s);
        if let Some(r) = ratio(c, b) {
            let _ = writeln!(
                t,
                "2. {}: complete DNS changes/s c/b >= {TARGET_SPEEDUP}: {r:.2} -> {}",
                w.name,
                verdict(r >= TARGET_SPEEDUP)
            );
        }
    }
    for w in workloads.iter().filter(|w| w.name.starts_with("burst")) {
        let a = find(results, &w.name, Mode::KeaOnly).map(|a| a.leases_per_s);
        let c = find(results, &w.name, Mode::Leasedns).map(|c| c.leases_per_s);
        if let Some(r) = ratio(c, a) {
            let _ = writeln!(
                t,
                "3. {}: Kea's lease rate with leasedns >= {:.0} % of DDNS off: {:.1} % -> {}",
                w.name,
                TARGET_KEA_RATE * 100.0,
                r * 100.0,
                verdict(r >= TARGET_KEA_RATE)
            );
        }
    }
    for w in workloads.iter().filter(|w| w.name.starts_with("burst")) {
        let Some(c) = find(results, &w.name, Mode::LeasednsTimed) else {
            continue;
        };
        let pairs = callout_pairs(c);
        let worst = |cpu: bool| {
            pairs
                .iter()
                .filter_map(|(name, wall, on_cpu)| {
                    let h = if cpu { (*on_cpu)? } else { *wall };
                    Some((*name, us(h.quantile(0.99))))
                })
                .max_by(|x, y| x.1.total_cmp(&y.1))
        };
        if let (Some((wall_name, wall)), cpu) = (worst(false), worst(true)) {
            let cpu_text = cpu.map_or(String::new(), |(name, p99)| {
                format!(
                    "; on-CPU worst {name} {p99:.1} us -> {}",
                    verdict(p99 <= TARGET_CALLOUT_P99_US)
                )
            });
            let _ = writeln!(
                t,
                "4. {}: callout p99 <= {TARGET_CALLOUT_P99_US} us: wall-clock worst {wall_name} {wall:.1} us -> {}{cpu_text}",
                w.name,
                verdict(wall <= TARGET_CALLOUT_P99_US)
            );
        }
    }
    t
}

/// (callout, wall-clock histogram, on-CPU histogram) of a run.
/// The per-packet ones only: `dhcp4_srv_configured` runs once per
/// configuration.
fn callout_pairs(r: &RunResult) -> Vec<(&str, &Histogram, Option<&Histogram>)> {
    r.callouts
        .iter()
        .filter(|(name, _)| !name.ends_with(CPU_SUFFIX) && name != "dhcp4_srv_configured")
        .map(|(name, wall)| {
            let cpu = r
                .callouts
                .iter()
                .find(|(n, _)| n.strip_suffix(CPU_SUFFIX) == Some(name.as_str()))
                .map(|(_, h)| h);
            (name.as_str(), wall, cpu)
        })
        .collect()
}
