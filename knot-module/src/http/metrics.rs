//! Prometheus text exposition (format 0.0.4) of a [`Snapshot`].
//!
//! Written by hand: the data lives in per-thread arrays summed at scrape
//! time, which the client libraries' owned metric types do not model, and
//! the format is small. `promtool check metrics` runs on this output in the
//! end-to-end tests.

use crate::stats::dims::{FLAG_DO, FLAG_EDNS, FLAG_TC, OPERATIONS, PROTOS, SIZE_BOUNDS};
use crate::stats::instance::Snapshot;
use std::fmt::Write as _;

pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const PREFIX: &str = "knot_querystats_";

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer {
    text: String,
}

impl Writer {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.text, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.text, "{PREFIX}{name}");
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(val));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A histogram from per-bucket (non-cumulative) counts; the last count
    /// is the +Inf bucket. `le` values are the bounds divided by `scale`.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[u64],
        scale: f64,
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0u64;
        for (i, &count) in counts.iter().enumerate() {
            cumulative += count;
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |&b| format_float(b as f64 / scale));
            let mut all = labels.to_vec();
            all.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &all, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, format_float(sum));
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// Shortest decimal that round-trips; never exponent notation.
fn format_float(value: f64) -> String {
    format!("{value}")
}

/// Renders everything; `instances` is how many module instances were
/// summed, `panics` the process-wide count of caught panics.
pub(crate) fn render(snap: &Snapshot, instances: usize, panics: u64) -> String {
    let mut w = Writer {
        text: String::with_capacity(16 * 1024),
    };

    w.header(
        "queries_total",
        "counter",
        "DNS messages other than UPDATE answered (or dropped) by knotd, by zone, query type, response code and transport.",
    );
    let mut queries: Vec<_> = snap.queries.iter().collect();
    queries.sort();
    for (key, count) in queries {
        w.sample(
            "queries_total",
            &[
                ("zone", &key.zone),
                ("type", key.qtype),
                ("rcode", key.rcode),
                ("proto", key.proto),
            ],
            count,
        );
    }

    w.header(
        "operations_total",
        "counter",
        "Requests by server operation (transfers count once, not per message).",
    );
    for (op, count) in OPERATIONS.iter().zip(snap.ops) {
        w.sample("operations_total", &[("operation", op)], count);
    }

    w.header(
        "edns_queries_total",
        "counter",
        "Requests carrying an EDNS OPT record.",
    );
    w.sample("edns_queries_total", &[], snap.flags[FLAG_EDNS]);
    w.header(
        "dnssec_ok_queries_total",
        "counter",
        "Requests with the EDNS DO bit set.",
    );
    w.sample("dnssec_ok_queries_total", &[], snap.flags[FLAG_DO]);
    w.header(
        "truncated_responses_total",
        "counter",
        "Responses sent with the TC bit set.",
    );
    w.sample("truncated_responses_total", &[], snap.flags[FLAG_TC]);

    w.header(
        "updates_total",
        "counter",
        "DNS UPDATE messages received, by zone and TSIG key name ((none) when unsigned).",
    );
    let mut updates: Vec<_> = snap.updates.iter().collect();
    updates.sort();
    for ((zone, key), count) in updates {
        w.sample("updates_total", &[("zone", zone), ("key", key)], count);
    }
    w.header(
        "update_rejections_total",
        "counter",
        "DNS UPDATE messages refused before being queued (bad TSIG, ACL, ...), by zone and response code.",
    );
    let mut rejections: Vec<_> = snap.update_rejections.iter().collect();
    rejections.sort();
    for ((zone, rcode), count) in rejections {
        w.sample(
            "update_rejections_total",
            &[("zone", zone), ("rcode", rcode)],
            count,
        );
    }

    w.header(
        "response_size_bytes",
        "histogram",
        "Size of the responses sent, by transport.",
    );
    for (p, proto) in PROTOS.iter().enumerate() {
        w.histogram(
            "response_size_bytes",
            &[("proto", proto)],
            &SIZE_BOUNDS,
            1.0,
            &snap.sizes[p],
            snap.size_sum[p] as f64,
        );
    }

    w.header(
        "query_duration_seconds",
        "histogram",
        "Time knotd spent on a request other than UPDATE, from the module's BEGIN hook to its END hook.",
    );
    w.histogram(
        "query_duration_seconds",
        &[],
        &snap.latency_bounds_ns,
        1e9,
        &snap.latency,
        snap.latency_sum_ns as f64 / 1e9,
    );
    w.header(
        "update_duration_seconds",
        "histogram",
        "Time knotd spent on an UPDATE request before queueing it (or rejecting it), from BEGIN to END.",
    );
    w.histogram(
        "update_duration_seconds",
        &[],
        &snap.latency_bounds_ns,
        1e9,
        &snap.update_latency,
        snap.update_latency_sum_ns as f64 / 1e9,
    );

    w.header(
        "top_query_name_queries",
        "gauge",
        "Estimated recent queries of the most queried names (Space-Saving, exponentially decayed).",
    );
    for (name, count) in &snap.top_names {
        w.sample("top_query_name_queries", &[("name", name)], count);
    }
    w.header(
        "top_client_network_queries",
        "gauge",
        "Estimated recent queries from the busiest client networks (/24, /56), exponentially decayed.",
    );
    for (network, count) in &snap.top_networks {
        w.sample("top_client_network_queries", &[("network", network)], count);
    }
    w.header(
        "heavy_hitter_skipped_samples_total",
        "counter",
        "Samples not fed to the heavy-hitter tables because a scrape held them.",
    );
    w.sample(
        "heavy_hitter_skipped_samples_total",
        &[],
        snap.heavy_skipped,
    );

    w.header(
        "instances",
        "gauge",
        "Module instances summed into this exposition.",
    );
    w.sample("instances", &[], instances);

    w.header(
        "panics_total",
        "counter",
        "Panics caught at the module's boundary with knotd (the callback returned knotd's error value or left the query state unchanged); process-wide, not reset by knotc reload.",
    );
    w.sample("panics_total", &[], panics);
    w.text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::instance::QueryKey;

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let mut snap = Snapshot {
            latency_bounds_ns: vec![10_000, 1_000_000_000],
            latency: vec![2, 3, 1],
            latency_sum_ns: 1_500_000_000,
            update_latency: vec![0, 4, 0],
            update_latency_sum_ns: 2_000_000,
            ..Snapshot::default()
        };
        snap.queries.insert(
            QueryKey {
                zone: "a\"b.".into(),
                qtype: "A",
                rcode: "NOERROR",
                proto: "udp4",
            },
            7,
        );
        let text = render(&snap, 1, 3);
        assert!(text.contains(
            "knot_querystats_queries_total{zone=\"a\\\"b.\",type=\"A\",rcode=\"NOERROR\",proto=\"udp4\"} 7\n"
        ));
        assert!(text.contains("knot_querystats_query_duration_seconds_bucket{le=\"0.00001\"} 2\n"));
        assert!(text.contains("knot_querystats_query_duration_seconds_bucket{le=\"1\"} 5\n"));
        assert!(text.contains("knot_querystats_query_duration_seconds_bucket{le=\"+Inf\"} 6\n"));
        assert!(text.contains("knot_querystats_query_duration_seconds_sum 1.5\n"));
        assert!(text.contains("knot_querystats_query_duration_seconds_count 6\n"));
        assert!(
            text.contains("knot_querystats_update_duration_seconds_bucket{le=\"0.00001\"} 0\n")
        );
        assert!(text.contains("knot_querystats_update_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("knot_querystats_update_duration_seconds_sum 0.002\n"));
        assert!(text.contains("knot_querystats_update_duration_seconds_count 4\n"));
        assert!(text.contains("# TYPE knot_querystats_queries_total counter\n"));
        assert!(text.contains("# TYPE knot_querystats_panics_total counter\n"));
        assert!(text.contains("\nknot_querystats_panics_total 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with(PREFIX), "{line}");
        }
    }

    #[test]
    fn every_transport_has_a_size_histogram() {
        let mut snap = Snapshot::default();
        snap.sizes[PROTOS.len() - 1][0] = 2;
        snap.size_sum[PROTOS.len() - 1] = 90;
        let text = render(&snap, 1, 0);
        for proto in PROTOS {
            assert!(
                text.contains(&format!(
                    "knot_querystats_response_size_bytes_bucket{{proto=\"{proto}\",le=\"+Inf\"}}"
                )),
                "{proto}"
            );
        }
        assert!(
            text.contains(
                "knot_querystats_response_size_bytes_bucket{proto=\"tls6\",le=\"64\"} 2\n"
            )
        );
        assert!(text.contains("knot_querystats_response_size_bytes_sum{proto=\"tls6\"} 90\n"));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
