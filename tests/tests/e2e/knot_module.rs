//! mod-querystats inside the real knotd (3.2, 3.4 or 3.5, whichever is
//! installed): configuration checks, exact counters in `/metrics` and
//! `knotc stats`, the latency histogram, heavy hitters, `knotc reload` under
//! load, UPDATE visibility, promtool, concurrent workers, and on Knot 3.4+
//! DNS over TLS and QUIC counted as their own transports.
//!
//! Every test starts its own knotd on 127.0.0.1 with free ports and loads
//! the module built by `cargo build --release -p knot-module` (or the file
//! named by `LEASEDNS_KNOT_MODULE`). Counts are compared as differences
//! from a baseline taken after knotd is ready, so the harness's readiness
//! queries never matter.

use harness::{Knot, KnotOptions, Place, TsigKeyInfo, program, require_root, wait_until};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const ZONE: &str = "lan.example.";

fn module_path() -> PathBuf {
    harness::knot_module_library().unwrap_or_else(|e| panic!("{e}"))
}

fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind probe");
    listener.local_addr().expect("probe addr").port()
}

/// The `module:` and `mod-querystats:` sections with `items` in the
/// `default` section.
fn module_conf(items: &[String]) -> String {
    let mut text = format!(
        "module:\n  - id: mod-querystats\n    file: \"{}\"\n\nmod-querystats:\n  - id: default\n",
        module_path().display()
    );
    for item in items {
        text.push_str(&format!("    {item}\n"));
    }
    text.push('\n');
    text
}

struct Server {
    knot: Knot,
    metrics: SocketAddr,
}

/// knotd serving lan.example. with the module as a global module, the
/// metrics endpoint on a free port, and `extra` section items.
fn start(extra: &[&str]) -> Server {
    start_with_records(extra, &[])
}

/// [`start`] with `records` (zone-file lines) added to the zone.
fn start_with_records(extra: &[&str], records: &[String]) -> Server {
    start_with(extra, records, &[])
}

/// [`start_with_records`] with `server` lines added to knotd's `server`
/// section (e.g. `listen-tls: ...`).
fn start_with(extra: &[&str], records: &[String], server: &[String]) -> Server {
    let port = free_tcp_port();
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut items = vec![format!("metrics-listen: 127.0.0.1@{port}")];
    items.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut opts = KnotOptions::new(ZONE);
    opts.forward_records = vec![
        "www A 192.0.2.1".into(),
        "www AAAA 2001:db8::1".into(),
        "mail A 192.0.2.2".into(),
    ];
    opts.forward_records.extend_from_slice(records);
    opts.server_extra = server.to_vec();
    opts.conf_extra = module_conf(&items);
    opts.template_extra = vec!["global-module: mod-querystats/default".into()];
    let knot = Knot::start(Place::Host, &opts).expect("knotd starts with the module");
    wait_until(Duration::from_secs(10), "the /metrics endpoint", || {
        http_get(metrics, "/healthz").is_ok_and(|(status, _)| status == 200)
    })
    .expect("endpoint up");
    Server { knot, metrics }
}

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `series -> value` of every sample line, the series spelled as in the
/// exposition (`name{labels}`).
fn scrape(server: &Server) -> HashMap<String, f64> {
    let (status, body) = http_get(server.metrics, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn get(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    get(after, series) - get(before, series)
}

fn queries(zone: &str, qtype: &str, rcode: &str, proto: &str) -> String {
    format!(
        "knot_querystats_queries_total{{zone=\"{zone}\",type=\"{qtype}\",rcode=\"{rcode}\",proto=\"{proto}\"}}"
    )
}

/// Sum of every series of `name` whose labels contain all of `having`.
fn sum_of(metrics: &HashMap<String, f64>, name: &str, having: &[&str]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{name}{{")) || series.as_str() == name)
        .filter(|(series, _)| having.iter().all(|h| series.contains(h)))
        .map(|(_, v)| v)
        .sum()
}

/// `knotc stats` as `name[index] -> value` for the module's counters.
fn knotc_stats(knot: &Knot) -> HashMap<String, u64> {
    knot.knotc(&["stats"])
        .expect("knotc stats")
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(" = ")?;
            let key = key.trim().strip_prefix("mod-querystats.")?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn knotc_delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, key: &str) -> u64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

/// Runs dnsperf once through `lines` (`name TYPE` each) and returns the
/// number of completed queries; fails on any lost query so counts stay exact.
fn dnsperf(knot: &Knot, lines: &[String], extra: &[&str]) -> u64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("queries");
    std::fs::write(&file, lines.join("\n") + "\n").expect("query file");
    let mut cmd = Command::new(program("dnsperf").expect("dnsperf installed"));
    cmd.arg("-s")
        .arg(knot.addr().to_string())
        .arg("-p")
        .arg(knot.port().to_string())
        .arg("-d")
        .arg(&file)
        .args(["-n", "1", "-t", "5", "-Q", "4000"])
        .args(extra)
        .stdin(Stdio::null());
    let out = cmd.output().expect("dnsperf runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnsperf failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |label: &str| -> u64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no '{label}' in dnsperf output:\n{text}"))
    };
    let completed = field("Queries completed:");
    assert_eq!(field("Queries lost:"), 0, "dnsperf lost queries:\n{text}");
    assert_eq!(completed, lines.len() as u64, "{text}");
    completed
}

fn repeat(line: &str, n: usize) -> Vec<String> {
    vec![line.to_owned(); n]
}

fn promtool_check(body: &str) -> (bool, String) {
    let mut child =
        Command::new(program("promtool").expect("promtool (Debian package prometheus)"))
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[ignore = "needs the built plugin (LEASEDNS_HOOK_LIB / LEASEDNS_KNOT_MODULE); build/test runs it"]
fn library_exports_only_the_module_api() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("nm runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let symbols: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(symbols, vec!["knotd_mod_api"], "{text}");
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn conf_check_accepts_good_and_rejects_bad_configs() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, module_items: Option<&[&str]>, template: &str, zone_extra: &str| {
        let section = match module_items {
            Some(items) => {
                let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
                module_conf(&items)
            }
            None => format!(
                "module:\n  - id: mod-querystats\n    file: \"{}\"\n\n",
                module_path().display()
            ),
        };
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{p}\ndatabase:\n    storage: \"{d}\"\n{section}template:\n  - id: default\n    storage: \"{d}\"\n{template}zone:\n  - domain: {ZONE}\n{zone_extra}",
            d = dir.path().display(),
            p = free_tcp_port(),
        );
        let path = dir.path().join(format!("{name}.conf"));
        std::fs::write(&path, conf).unwrap();
        let out = Command::new(program("knotc").unwrap())
            .arg("-c")
            .arg(&path)
            .arg("conf-check")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let global = "    global-module: mod-querystats/default\n";

    // Good: global without a section, per zone with one, every item set.
    let (ok, out) = check("plain", None, "    global-module: mod-querystats\n", "");
    assert!(ok, "global module without a section: {out}");
    let (ok, out) = check(
        "zone",
        Some(&["top-n: 3"]),
        "",
        "    module: mod-querystats/default\n",
    );
    assert!(ok, "zone module: {out}");
    let (ok, out) = check(
        "full",
        Some(&[
            "metrics-listen: ::1@10053",
            "top-n: 100",
            "top-sample: 1",
            "top-half-life: 30",
            "latency-buckets: [ 50, 500, 5000 ]",
            "max-zones: 10",
            "knotc-stats: off",
        ]),
        global,
        "",
    );
    assert!(ok, "every item: {out}");

    let bad: [(&str, &str, &str); 7] = [
        (
            "addr",
            "metrics-listen: nonsense",
            "metrics-listen: 'nonsense' is not ADDRESS@PORT",
        ),
        ("noport", "metrics-listen: 127.0.0.1", "is not ADDRESS@PORT"),
        (
            "port0",
            "metrics-listen: 127.0.0.1@0",
            "metrics-listen: port 0",
        ),
        ("topn", "top-n: 1000", "top-n: 1000 is out of range 0..=100"),
        (
            "sample",
            "top-sample: 0",
            "top-sample: 0 is out of range 1..=65536",
        ),
        (
            "buckets",
            "latency-buckets: [ 100, 50 ]",
            "bounds must be strictly increasing",
        ),
        ("unknown", "no-such-item: 1", "invalid item"),
    ];
    for (name, item, expected) in bad {
        let (ok, out) = check(name, Some(&[item]), global, "");
        assert!(!ok, "{item} accepted:\n{out}");
        assert!(
            out.contains(expected),
            "{item}: expected '{expected}' in:\n{out}"
        );
    }
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn counts_a_known_query_mix_exactly() {
    require_root();
    let server = start(&[]);
    let knot = &server.knot;
    let before = scrape(&server);
    let stats_before = knotc_stats(knot);

    let mut udp = repeat("www.lan.example. A", 1000);
    udp.extend(repeat("www.lan.example. AAAA", 500));
    udp.extend((0..200).map(|i| format!("nx{i}.lan.example. A")));
    udp.extend(repeat("x.unserved.test. A", 20));
    dnsperf(knot, &udp, &[]);
    dnsperf(knot, &repeat("mail.lan.example. A", 50), &["-m", "tcp"]);

    let after = scrape(&server);
    let d = |series: &str| delta(&before, &after, series);
    assert_eq!(d(&queries(ZONE, "A", "NOERROR", "udp4")), 1000.0);
    assert_eq!(d(&queries(ZONE, "AAAA", "NOERROR", "udp4")), 500.0);
    assert_eq!(d(&queries(ZONE, "A", "NXDOMAIN", "udp4")), 200.0);
    assert_eq!(d(&queries(ZONE, "A", "NOERROR", "tcp4")), 50.0);
    assert_eq!(d(&queries("(none)", "A", "REFUSED", "udp4")), 20.0);
    assert_eq!(
        sum_of(&after, "knot_querystats_queries_total", &[])
            - sum_of(&before, "knot_querystats_queries_total", &[]),
        1770.0
    );
    assert_eq!(
        d("knot_querystats_operations_total{operation=\"query\"}"),
        1770.0
    );
    assert_eq!(
        d("knot_querystats_response_size_bytes_count{proto=\"tcp4\"}"),
        50.0
    );

    let stats = knotc_stats(knot);
    let k = |key: &str| knotc_delta(&stats_before, &stats, key);
    assert_eq!(k("query-type[A]"), 1270, "{stats:?}");
    assert_eq!(k("query-type[AAAA]"), 500);
    assert_eq!(k("response-code[NXDOMAIN]"), 200);
    assert_eq!(k("response-code[REFUSED]"), 20);
    assert_eq!(k("response-code[NOERROR]"), 1550);
    assert_eq!(k("protocol[udp4]"), 1720);
    assert_eq!(k("protocol[tcp4]"), 50);
    assert_eq!(k("operation[query]"), 1770);
}

/// knotd calls END once per message of a transfer; the module must count
/// the transfer request once, in /metrics and in knotc stats, and time it
/// once. The zone is made large enough for several messages, checked with
/// kdig's own statistics.
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn a_multi_message_transfer_counts_once() {
    require_root();
    let filler: Vec<String> = (0..3000)
        .map(|i| format!("t{i} TXT \"{}\"", "x".repeat(60)))
        .collect();
    let server = start_with_records(&[], &filler);
    let before = scrape(&server);
    let stats_before = knotc_stats(&server.knot);
    for _ in 0..2 {
        let out = Command::new(program("kdig").expect("kdig installed"))
            .args([
                "@127.0.0.1",
                "-p",
                &server.knot.port().to_string(),
                ZONE,
                "AXFR",
                "+noall",
                "+stats",
            ])
            .output()
            .expect("kdig runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let messages: u64 = text
            .split_once(" B (")
            .and_then(|(_, rest)| rest.split_once(' '))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("no message count in kdig output:\n{text}"));
        assert!(
            messages > 1,
            "the transfer took {messages} message(s):\n{text}"
        );
    }
    let after = scrape(&server);
    let d = |series: &str| delta(&before, &after, series);
    assert_eq!(
        d("knot_querystats_operations_total{operation=\"axfr\"}"),
        2.0
    );
    assert_eq!(d(&queries(ZONE, "AXFR", "NOERROR", "tcp4")), 2.0);
    assert_eq!(d("knot_querystats_query_duration_seconds_count"), 2.0);
    let stats = knotc_stats(&server.knot);
    assert_eq!(knotc_delta(&stats_before, &stats, "operation[axfr]"), 2);
    assert_eq!(knotc_delta(&stats_before, &stats, "query-type[AXFR]"), 2);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn latency_histogram_counts_every_query_cumulatively() {
    require_root();
    let server = start(&["latency-buckets: [ 10, 100, 1000, 10000, 1000000 ]"]);
    let before = scrape(&server);
    let mut lines = repeat("www.lan.example. A", 300);
    lines.extend(repeat("missing.lan.example. TXT", 100));
    dnsperf(&server.knot, &lines, &[]);
    let after = scrape(&server);

    let count = "knot_querystats_query_duration_seconds_count";
    let queries_delta = sum_of(&after, "knot_querystats_queries_total", &[])
        - sum_of(&before, "knot_querystats_queries_total", &[]);
    assert_eq!(delta(&before, &after, count), 400.0);
    assert_eq!(queries_delta, 400.0);
    assert_eq!(
        get(&after, count),
        sum_of(&after, "knot_querystats_queries_total", &[])
    );

    let mut previous = 0.0;
    for le in ["0.00001", "0.0001", "0.001", "0.01", "1", "+Inf"] {
        let bucket = get(
            &after,
            &format!("knot_querystats_query_duration_seconds_bucket{{le=\"{le}\"}}"),
        );
        assert!(
            bucket >= previous,
            "bucket le={le} ({bucket}) below {previous}"
        );
        previous = bucket;
    }
    assert_eq!(previous, get(&after, count), "+Inf equals _count");
    let sum = get(&after, "knot_querystats_query_duration_seconds_sum");
    assert!(
        sum > 0.0 && sum < get(&after, count),
        "sum {sum} s is plausible"
    );
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn heavy_hitters_rank_the_hottest_names_and_networks_first() {
    require_root();
    let server = start(&["top-n: 5", "top-sample: 1", "top-half-life: 86400"]);
    // A skewed, shuffled stream: 400 www, 200 mail, 100 ns, 150 one-off names.
    let mut lines = repeat("www.lan.example. A", 400);
    lines.extend(repeat("mail.lan.example. A", 200));
    lines.extend(repeat("ns.lan.example. A", 100));
    lines.extend((0..150).map(|i| format!("cold{i}.lan.example. A")));
    // Deterministic shuffle (LCG) so failures are reproducible.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in (1..lines.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        lines.swap(i, (state >> 33) as usize % (i + 1));
    }
    // Three client networks with 450, 250 and 150 queries.
    dnsperf(&server.knot, &lines[..450], &["-a", "127.0.1.1"]);
    dnsperf(&server.knot, &lines[450..700], &["-a", "127.0.2.1"]);
    dnsperf(&server.knot, &lines[700..], &["-a", "127.0.3.1"]);

    let (_, body) = http_get(server.metrics, "/metrics").unwrap();
    let ranked = |name: &str, label: &str| -> Vec<(String, f64)> {
        let prefix = format!("{name}{{{label}=\"");
        body.lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (value_label, count) = rest.split_once("\"} ")?;
                Some((value_label.to_owned(), count.parse().ok()?))
            })
            .collect()
    };
    let names = ranked("knot_querystats_top_query_name_queries", "name");
    let top3: Vec<&str> = names.iter().take(3).map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        top3,
        vec!["www.lan.example.", "mail.lan.example.", "ns.lan.example."],
        "{names:?}"
    );
    assert!(names.len() <= 5, "top-n bounds the output: {names:?}");
    assert!(
        names[0].1 >= 400.0,
        "Space-Saving never underestimates: {names:?}"
    );
    let nets = ranked("knot_querystats_top_client_network_queries", "network");
    let nets_top: Vec<&str> = nets.iter().take(3).map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        nets_top,
        vec!["127.0.1.0/24", "127.0.2.0/24", "127.0.3.0/24"],
        "{nets:?}"
    );
    assert_eq!(nets[0].1, 450.0, "few networks: exact counts");
}

/// knotd's threads named by the module (`querystats-http`).
fn module_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "querystats-http")
                })
                .count()
        })
        .unwrap_or(0)
}

fn thread_and_socket_counts(pid: u32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0);
    (threads, sockets)
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn endpoint_survives_five_reloads_under_load() {
    require_root();
    let mut server = start(&["top-sample: 1"]);
    let pid = server.knot.pid().expect("knotd pid");
    // Baseline after one scrape, so the HTTP server's own threads exist,
    // and after one reload: knotd 3.4+ starts a thread of its own at its
    // first reload (with or without modules).
    scrape(&server);
    server.knot.knotc(&["reload"]).expect("knotc reload");
    wait_until(Duration::from_secs(15), "the first reload settled", || {
        get(&scrape(&server), "knot_querystats_instances") == 1.0
    })
    .unwrap();
    let baseline = thread_and_socket_counts(pid);
    assert_eq!(module_threads(pid), 1, "one /metrics thread");

    let (addr, port) = (server.knot.addr(), server.knot.port());
    let dir = tempfile::tempdir().unwrap();
    let queries_file = dir.path().join("queries");
    std::fs::write(&queries_file, "www.lan.example. A\nmail.lan.example. A\n").unwrap();
    let load = std::thread::spawn(move || {
        Command::new(program("dnsperf").unwrap())
            .arg("-s")
            .arg(addr.to_string())
            .arg("-p")
            .arg(port.to_string())
            .arg("-d")
            .arg(&queries_file)
            .args(["-l", "6", "-Q", "1500", "-c", "4"])
            .stdin(Stdio::null())
            .output()
    });
    for round in 1..=5 {
        std::thread::sleep(Duration::from_millis(600));
        server.knot.knotc(&["reload"]).expect("knotc reload");
        let (status, body) = http_get(server.metrics, "/healthz").expect("healthz after reload");
        assert_eq!((status, body.as_str()), (200, "ok\n"), "round {round}");
        let metrics = scrape(&server);
        assert!(
            get(&metrics, "knot_querystats_instances") >= 1.0,
            "round {round}"
        );
        server.knot.check_running().expect("knotd still running");
    }
    let out = load.join().expect("load thread").expect("dnsperf ran");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Old instances are gone: one left, and threads and sockets are back.
    wait_until(Duration::from_secs(15), "old instances unloaded", || {
        get(&scrape(&server), "knot_querystats_instances") == 1.0
    })
    .unwrap();
    let mut last = (0, 0);
    let settled = wait_until(
        Duration::from_secs(20),
        "threads and sockets back to baseline",
        || {
            last = thread_and_socket_counts(pid);
            last.0 <= baseline.0 && last.1 <= baseline.1
        },
    );
    assert!(
        settled.is_ok(),
        "threads/sockets {last:?} vs baseline {baseline:?}"
    );
    assert_eq!(module_threads(pid), 1, "one /metrics thread");
    let after = scrape(&server);
    assert!(get(&after, &queries(ZONE, "A", "NOERROR", "udp4")) > 0.0);
    server.knot.check_running().unwrap();
    server.knot.stop().unwrap();
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn signed_updates_are_counted_per_zone_and_key_and_bad_keys_rejected() {
    require_root();
    let server = start(&[]);
    let knot = &server.knot;
    let before = scrape(&server);
    let stats_before = knotc_stats(knot);
    for i in 0..3 {
        let out = knot
            .nsupdate(
                ZONE,
                &[&format!(
                    "update add h{i}.lan.example. 300 A 192.0.2.{}",
                    10 + i
                )],
            )
            .unwrap();
        assert!(out.success(), "{}", out.combined());
    }
    let wrong = TsigKeyInfo {
        secret: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        ..knot.key().clone()
    };
    let update = "update add bad.lan.example. 300 A 192.0.2.99";
    let out = knot.nsupdate_as(Some(&wrong), ZONE, &[update]).unwrap();
    assert!(!out.success(), "{}", out.combined());
    let out = knot.nsupdate_as(None, ZONE, &[update]).unwrap();
    assert!(!out.success(), "{}", out.combined());

    let after = scrape(&server);
    let d = |series: &str| delta(&before, &after, series);
    let key = knot.key().name.clone();
    assert_eq!(
        d(&format!(
            "knot_querystats_updates_total{{zone=\"{ZONE}\",key=\"{key}\"}}"
        )),
        4.0,
        "three good and one bad signature with this key name"
    );
    assert_eq!(
        d(&format!(
            "knot_querystats_updates_total{{zone=\"{ZONE}\",key=\"(none)\"}}"
        )),
        1.0
    );
    assert_eq!(
        d(&format!(
            "knot_querystats_update_rejections_total{{zone=\"{ZONE}\",rcode=\"NOTAUTH\"}}"
        )),
        2.0,
        "bad signature and unsigned"
    );
    assert_eq!(
        d("knot_querystats_operations_total{operation=\"update\"}"),
        5.0
    );
    // Every UPDATE is timed in its own histogram; the query histogram
    // still counts exactly the queries (whatever nsupdate asked besides).
    assert_eq!(d("knot_querystats_update_duration_seconds_count"), 5.0);
    assert_eq!(
        d("knot_querystats_query_duration_seconds_count"),
        sum_of(&after, "knot_querystats_queries_total", &[])
            - sum_of(&before, "knot_querystats_queries_total", &[])
    );
    let stats = knotc_stats(knot);
    assert_eq!(knotc_delta(&stats_before, &stats, "operation[update]"), 5);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn exposition_passes_promtool() {
    require_root();
    let server = start(&["top-sample: 1"]);
    let dns = server.knot.dns();
    for (name, rtype) in [
        ("www.lan.example.", "A"),
        ("www.lan.example.", "AAAA"),
        ("nope.lan.example.", "A"),
        ("x.unserved.test.", "TXT"),
        ("lan.example.", "AXFR"),
    ] {
        let _ = dns.lookup(name, rtype);
    }
    let out = server
        .knot
        .nsupdate(ZONE, &["update add p.lan.example. 300 A 192.0.2.5"])
        .unwrap();
    assert!(out.success(), "{}", out.combined());
    let _ = server
        .knot
        .nsupdate_as(None, ZONE, &["update add q.lan.example. 300 A 192.0.2.6"]);
    let (status, body) = http_get(server.metrics, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("knot_querystats_updates_total{"), "{body}");
    assert!(body.contains("type=\"AXFR\""), "{body}");
    let (ok, report) = promtool_check(&body);
    assert!(ok, "promtool rejected the exposition:\n{report}\n{body}");
    let (status, _) = http_get(server.metrics, "/nope").unwrap();
    assert_eq!(status, 404);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn concurrent_clients_on_two_udp_and_two_tcp_workers_sum_exactly() {
    require_root();
    let server = start(&["top-sample: 1"]);
    let before = scrape(&server);
    let stats_before = knotc_stats(&server.knot);
    let udp_lines: Vec<String> = (0..4000)
        .map(|i| match i % 4 {
            0 => "www.lan.example. A".to_owned(),
            1 => "www.lan.example. AAAA".to_owned(),
            2 => format!("n{i}.lan.example. A"),
            _ => "mail.lan.example. A".to_owned(),
        })
        .collect();
    let tcp_lines = repeat("www.lan.example. A", 1000);
    std::thread::scope(|s| {
        let knot = &server.knot;
        let udp = s.spawn(|| dnsperf(knot, &udp_lines, &["-c", "8", "-T", "2"]));
        let tcp = s.spawn(|| dnsperf(knot, &tcp_lines, &["-m", "tcp", "-c", "4", "-T", "2"]));
        assert_eq!(udp.join().unwrap(), 4000);
        assert_eq!(tcp.join().unwrap(), 1000);
    });
    let after = scrape(&server);
    let total = |m: &HashMap<String, f64>, having: &[&str]| {
        sum_of(m, "knot_querystats_queries_total", having)
    };
    assert_eq!(total(&after, &[]) - total(&before, &[]), 5000.0);
    assert_eq!(
        total(&after, &["proto=\"udp4\""]) - total(&before, &["proto=\"udp4\""]),
        4000.0
    );
    assert_eq!(
        total(&after, &["proto=\"tcp4\""]) - total(&before, &["proto=\"tcp4\""]),
        1000.0
    );
    assert_eq!(
        delta(&before, &after, &queries(ZONE, "A", "NXDOMAIN", "udp4")),
        1000.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "knot_querystats_query_duration_seconds_count"
        ),
        5000.0
    );
    let stats = knotc_stats(&server.knot);
    assert_eq!(knotc_delta(&stats_before, &stats, "operation[query]"), 5000);
    assert_eq!(knotc_delta(&stats_before, &stats, "protocol[tcp4]"), 1000);
}

/// A UDP port free on 127.0.0.1 (DNS over QUIC listens on UDP).
#[cfg(knotd_tls)]
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind probe");
    socket.local_addr().expect("probe addr").port()
}

/// `kdig` with `transport` (`+tls`, `+quic`) asking `names` (type A) of
/// 127.0.0.1@`port`, one query each; every answer must be NOERROR over
/// that transport.
#[cfg(knotd_tls)]
fn kdig_over(transport: &str, port: u16, names: &[&str]) {
    let mut cmd = Command::new(program("kdig").expect("kdig installed"));
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), transport])
        .args(["+time=5", "+retry=0"]);
    for name in names {
        cmd.args([*name, "A"]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("kdig runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kdig {transport} failed:\n{text}");
    assert_eq!(
        text.matches("status: NOERROR").count(),
        names.len(),
        "kdig {transport}:\n{text}"
    );
    // kdig names the session it used: ";; TLS session (TLS1.3)-...",
    // ";; QUIC session (QUICv1)-...".
    let session = if transport == "+quic" {
        ";; QUIC session"
    } else {
        ";; TLS session"
    };
    assert!(
        text.contains(session),
        "kdig {transport} did not use it:\n{text}"
    );
}

/// Knot 3.4+ gives modules DNS over TLS as its own transport, and DNS over
/// QUIC as ever (Debian's knotd 3.4 and 3.5 are built with QUIC): queries
/// over them are counted as tls4 and quic4, in /metrics (queries and the
/// size histogram) and in knotc stats, not folded into tcp4 or udp4. knotd
/// makes its own one-time key and self-signed certificate when `key-file`
/// and `cert-file` are unset; kdig's opportunistic profile accepts it.
/// Compiled only where the header has KNOTD_QUERY_PROTO_TLS (tests/build.rs):
/// there a knotd without TLS or QUIC fails this test at start.
#[cfg(knotd_tls)]
#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn tls_and_quic_queries_count_under_their_own_proto() {
    require_root();
    let (tls_port, quic_port) = (free_tcp_port(), free_udp_port());
    let server = start_with(
        &[],
        &[],
        &[
            format!("listen-tls: 127.0.0.1@{tls_port}"),
            format!("listen-quic: 127.0.0.1@{quic_port}"),
        ],
    );
    let before = scrape(&server);
    let stats_before = knotc_stats(&server.knot);

    kdig_over("+tls", tls_port, &["www.lan.example."; 3]);
    kdig_over("+tls", tls_port, &["mail.lan.example."; 2]);
    kdig_over("+quic", quic_port, &["www.lan.example."; 4]);

    let after = scrape(&server);
    let d = |series: &str| delta(&before, &after, series);
    assert_eq!(d(&queries(ZONE, "A", "NOERROR", "tls4")), 5.0);
    assert_eq!(d(&queries(ZONE, "A", "NOERROR", "quic4")), 4.0);
    for (proto, n) in [("tls4", 5.0), ("quic4", 4.0), ("tcp4", 0.0), ("udp4", 0.0)] {
        assert_eq!(
            d(&format!(
                "knot_querystats_response_size_bytes_count{{proto=\"{proto}\"}}"
            )),
            n,
            "{proto}"
        );
    }
    assert_eq!(
        sum_of(&after, "knot_querystats_queries_total", &[])
            - sum_of(&before, "knot_querystats_queries_total", &[]),
        9.0,
        "nothing else was counted"
    );
    let stats = knotc_stats(&server.knot);
    let k = |key: &str| knotc_delta(&stats_before, &stats, key);
    assert_eq!(k("protocol[tls4]"), 5, "{stats:?}");
    assert_eq!(k("protocol[quic4]"), 4, "{stats:?}");
    assert_eq!(k("protocol[tcp4]") + k("protocol[udp4]"), 0, "{stats:?}");
}
