//! The daemons' counters in Prometheus' text format (version 0.0.4), rendered from their status
//! messages, so that `GET /metrics` on shipperd's opt-in listener and `sec-trackerctl metrics`
//! print the same thing from the same numbers.
//!
//! Names follow Prometheus' conventions: `sec_tracker_<daemon>_…`, base units (`_seconds`,
//! `_bytes`), counters end in `_total`, one family per quantity with labels for its parts
//! (`type`, `severity`, `monitor`, `cause`), and an enum as one 0/1 series per value (`state`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::v1::{
    CollectorStatus, EventType, Histogram, MonitorState, MonitorStatus, OutputStatus, Severity,
    SeverityCounts, ShipperState, ShipperStatus,
};

/// The kind of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A text exposition being written: each family's `# HELP` and `# TYPE`, then its samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family. Its samples follow until the next one.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{label="value",…} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

/// Prometheus' spelling of a value: integers without a fraction, `+Inf`, `NaN`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 9.007e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn severities(c: &SeverityCounts) -> [(&'static str, u64); 3] {
    [
        ("info", c.info),
        ("warning", c.warning),
        ("critical", c.critical),
    ]
}

fn event_type_label(t: i32) -> &'static str {
    match EventType::try_from(t) {
        Ok(EventType::System) => "system",
        Ok(EventType::Process) => "process",
        Ok(EventType::File) => "file",
        Ok(EventType::Auth) => "auth",
        Ok(EventType::Network) => "network",
        // The agent's own events (flood summaries, a monitor's losses).
        Ok(EventType::Unspecified) | Err(_) => "agent",
    }
}

fn severity_label(s: i32) -> &'static str {
    match Severity::try_from(s) {
        Ok(Severity::Warning) => "warning",
        Ok(Severity::Critical) => "critical",
        Ok(Severity::Info) | Err(_) => "info",
    }
}

const MONITOR_STATES: [(MonitorState, &str); 7] = [
    (MonitorState::Starting, "starting"),
    (MonitorState::Running, "running"),
    (MonitorState::Fallback, "fallback"),
    (MonitorState::Disabled, "disabled"),
    (MonitorState::Failed, "failed"),
    (MonitorState::Stopped, "stopped"),
    (MonitorState::Stalled, "stalled"),
];

const SHIPPER_STATES: [(ShipperState, &str); 5] = [
    (ShipperState::Idle, "idle"),
    (ShipperState::Sending, "sending"),
    (ShipperState::Retrying, "retrying"),
    (ShipperState::PausedAuth, "paused_auth"),
    (ShipperState::DiskError, "disk_error"),
];

/// Reads one of a monitor's counters.
type MonitorCount = fn(&MonitorStatus) -> u64;

/// collectord's metrics; `None`: it did not answer (`sec_tracker_collector_up 0` only).
pub fn collector(out: &mut Exposition, status: Option<&CollectorStatus>) {
    out.single(
        "sec_tracker_collector_up",
        Kind::Gauge,
        "1 when collectord answered on its socket",
        f64::from(u8::from(status.is_some())),
    );
    let Some(s) = status else { return };

    let name = "sec_tracker_collector_events_total";
    out.family(
        name,
        Kind::Counter,
        "Events published on the stream since collectord started, by type and severity",
    );
    for c in &s.published {
        out.sample(
            name,
            &[
                ("type", event_type_label(c.r#type)),
                ("severity", severity_label(c.severity)),
            ],
            c.count as f64,
        );
    }

    let name = "sec_tracker_collector_dropped_total";
    out.family(
        name,
        Kind::Counter,
        "Events lost before any reader had them, by cause (evicted: pushed out of the full ring; \
         suppressed: held back in a flood and counted in a summary) and severity",
    );
    for (cause, counts) in [("evicted", &s.evicted), ("suppressed", &s.suppressed)] {
        for (severity, n) in severities(&counts.unwrap_or_default()) {
            out.sample(name, &[("cause", cause), ("severity", severity)], n as f64);
        }
    }
    out.single(
        "sec_tracker_collector_subscriber_skipped_total",
        Kind::Counter,
        "Events live readers missed because they read too slowly",
        s.subscriber_skipped as f64,
    );
    out.single(
        "sec_tracker_collector_flood_summaries_total",
        Kind::Counter,
        "Flood summary events published",
        s.flood_summaries as f64,
    );

    let per_monitor: [(&str, &str, MonitorCount); 3] = [
        (
            "sec_tracker_collector_monitor_events_total",
            "Events each monitor reported",
            |m| m.events,
        ),
        (
            "sec_tracker_collector_monitor_lost_total",
            "Events each monitor knows it lost (a kernel queue overflowed, a line unreadable)",
            |m| m.lost,
        ),
        (
            "sec_tracker_collector_monitor_errors_total",
            "Errors each monitor met and went on from",
            |m| m.errors,
        ),
    ];
    for (name, help, value) in per_monitor {
        out.family(name, Kind::Counter, help);
        for m in &s.monitors {
            out.sample(name, &[("monitor", &m.name)], value(m) as f64);
        }
    }
    let name = "sec_tracker_collector_monitor_state";
    out.family(
        name,
        Kind::Gauge,
        "Each monitor's state: 1 for the one it is in",
    );
    for m in &s.monitors {
        for (state, label) in MONITOR_STATES {
            out.sample(
                name,
                &[("monitor", &m.name), ("state", label)],
                f64::from(u8::from(m.state == state as i32)),
            );
        }
    }

    out.single(
        "sec_tracker_collector_ring_events",
        Kind::Gauge,
        "Events held in the ring for readers that come back",
        s.buffered as f64,
    );
    out.single(
        "sec_tracker_collector_ring_bytes",
        Kind::Gauge,
        "Bytes the ring holds",
        s.buffered_bytes as f64,
    );
    out.single(
        "sec_tracker_collector_ring_max_bytes",
        Kind::Gauge,
        "The ring's bound in bytes (agent.buffer_bytes)",
        s.buffer_bytes as f64,
    );
    out.single(
        "sec_tracker_collector_subscribers",
        Kind::Gauge,
        "Readers of the stream now",
        f64::from(s.subscribers),
    );
    out.single(
        "sec_tracker_collector_resident_memory_bytes",
        Kind::Gauge,
        "collectord's resident memory",
        s.rss_bytes as f64,
    );
    out.single(
        "sec_tracker_collector_start_time_seconds",
        Kind::Gauge,
        "When collectord started, in seconds since the Unix epoch",
        s.started_at_ns as f64 / 1e9,
    );
}

/// shipperd's metrics; `None`: it did not answer (`sec_tracker_shipper_up 0` only).
pub fn shipper(out: &mut Exposition, status: Option<&ShipperStatus>) {
    out.single(
        "sec_tracker_shipper_up",
        Kind::Gauge,
        "1 when shipperd answered on its status socket",
        f64::from(u8::from(status.is_some())),
    );
    let Some(s) = status else { return };
    for (name, help, v) in [
        (
            "sec_tracker_shipper_events_received_total",
            "Events received from collectord and written to the queue",
            s.events_received,
        ),
        (
            "sec_tracker_shipper_events_sent_total",
            "Events the management server accepted",
            s.events_sent,
        ),
        (
            "sec_tracker_shipper_events_dead_lettered_total",
            "Events the server refused for good (kept aside, not retried)",
            s.events_dead_lettered,
        ),
        (
            "sec_tracker_shipper_collector_gap_events_total",
            "Events collectord let go before shipperd read them (told as gaps)",
            s.collector_gaps_missed,
        ),
        (
            "sec_tracker_shipper_batches_sent_total",
            "Batches the server accepted",
            s.batches_sent,
        ),
        (
            "sec_tracker_shipper_batches_resent_total",
            "Batch sends that were retries",
            s.batches_resent,
        ),
    ] {
        out.single(name, Kind::Counter, help, v as f64);
    }
    let name = "sec_tracker_shipper_dropped_total";
    out.family(
        name,
        Kind::Counter,
        "Events the full queue dropped (least severe first), by severity",
    );
    for (severity, n) in severities(&s.dropped.unwrap_or_default()) {
        out.sample(
            name,
            &[("cause", "queue_full"), ("severity", severity)],
            n as f64,
        );
    }
    out.single(
        "sec_tracker_shipper_queue_events",
        Kind::Gauge,
        "Events in the queue, not yet accepted by the server",
        s.queue_depth as f64,
    );
    out.single(
        "sec_tracker_shipper_queue_bytes",
        Kind::Gauge,
        "Bytes of the queued events",
        s.queue_bytes as f64,
    );
    out.single(
        "sec_tracker_shipper_queue_oldest_age_seconds",
        Kind::Gauge,
        "Age of the oldest queued event (0 when the queue is empty)",
        s.oldest_queued_age_seconds,
    );
    out.single(
        "sec_tracker_shipper_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the server last accepted a batch or a health report, in seconds since the Unix \
         epoch (0: never)",
        s.last_success_ns as f64 / 1e9,
    );
    out.single(
        "sec_tracker_shipper_collector_connected",
        Kind::Gauge,
        "1 while shipperd follows collectord's stream",
        f64::from(u8::from(s.collector_connected)),
    );
    let name = "sec_tracker_shipper_state";
    out.family(
        name,
        Kind::Gauge,
        "shipperd's delivery state: 1 for the one it is in",
    );
    for (state, label) in SHIPPER_STATES {
        out.sample(
            name,
            &[("state", label)],
            f64::from(u8::from(s.state == state as i32)),
        );
    }
    if let Some(h) = &s.send_seconds {
        histogram(
            out,
            "sec_tracker_shipper_send_duration_seconds",
            "Seconds from sending a batch to the server's acceptance",
            h,
        );
    }
    out.single(
        "sec_tracker_shipper_resident_memory_bytes",
        Kind::Gauge,
        "shipperd's resident memory",
        s.rss_bytes as f64,
    );
    outputs(out, &s.outputs);
}

/// Each output's own queue and delivery, labelled `output` (`server`, `syslog`, `otlp`); the
/// unlabelled series above are the first output's.
fn outputs(out: &mut Exposition, outputs: &[OutputStatus]) {
    if outputs.is_empty() {
        return;
    }
    type Field = fn(&OutputStatus) -> f64;
    let series: [(&str, Kind, &str, Field); 8] = [
        (
            "sec_tracker_shipper_output_events_received_total",
            Kind::Counter,
            "Events written to this output's queue",
            |o| o.events_received as f64,
        ),
        (
            "sec_tracker_shipper_output_events_sent_total",
            Kind::Counter,
            "Events this output accepted",
            |o| o.events_sent as f64,
        ),
        (
            "sec_tracker_shipper_output_events_dropped_total",
            Kind::Counter,
            "Events this output's full queue dropped",
            |o| o.events_dropped as f64,
        ),
        (
            "sec_tracker_shipper_output_events_dead_lettered_total",
            Kind::Counter,
            "Events this output refused for good",
            |o| o.events_dead_lettered as f64,
        ),
        (
            "sec_tracker_shipper_output_batches_resent_total",
            Kind::Counter,
            "Batch sends to this output that were retries",
            |o| o.batches_resent as f64,
        ),
        (
            "sec_tracker_shipper_output_queue_events",
            Kind::Gauge,
            "Events in this output's queue, not yet accepted by it",
            |o| o.queue_depth as f64,
        ),
        (
            "sec_tracker_shipper_output_queue_oldest_age_seconds",
            Kind::Gauge,
            "Age of the oldest event in this output's queue (0 when empty)",
            |o| o.oldest_queued_age_seconds,
        ),
        (
            "sec_tracker_shipper_output_last_success_timestamp_seconds",
            Kind::Gauge,
            "When this output last accepted a batch, in seconds since the Unix epoch (0: never)",
            |o| o.last_success_ns as f64 / 1e9,
        ),
    ];
    for (name, kind, help, field) in series {
        out.family(name, kind, help);
        for o in outputs {
            out.sample(name, &[("output", &o.name)], field(o));
        }
    }
    let name = "sec_tracker_shipper_output_state";
    out.family(
        name,
        Kind::Gauge,
        "Each output's delivery state: 1 for the one it is in",
    );
    for o in outputs {
        for (state, label) in SHIPPER_STATES {
            out.sample(
                name,
                &[("output", &o.name), ("state", label)],
                f64::from(u8::from(o.state == state as i32)),
            );
        }
    }
}

fn histogram(out: &mut Exposition, name: &str, help: &str, h: &Histogram) {
    out.family(name, Kind::Histogram, help);
    let bucket = format!("{name}_bucket");
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        out.sample(&bucket, &[("le", &number(*bound))], *count as f64);
    }
    out.sample(&bucket, &[("le", "+Inf")], h.count as f64);
    out.sample(&format!("{name}_sum"), &[], h.sum);
    out.sample(&format!("{name}_count"), &[], h.count as f64);
}

/// Bucket bounds for network round trips, in seconds.
pub const LATENCY_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram updated from any task without a lock.
pub struct LatencyHistogram {
    counts: [AtomicU64; LATENCY_BOUNDS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Cumulative buckets: every bound the observation is within.
        for (bound, c) in LATENCY_BOUNDS.iter().zip(&self.counts) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Histogram {
        Histogram {
            bounds: LATENCY_BOUNDS.to_vec(),
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::EventCount;

    /// Checks an exposition the way Prometheus' text parser would reject it: every sample's
    /// family announced once by `# TYPE` before it, names and label names in the allowed
    /// alphabet, counters ending in `_total`, values parseable, no series twice.
    fn assert_valid(text: &str) {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        let mut types = std::collections::HashMap::new();
        let mut series = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name_ok(name), "{line}");
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "{line}"
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series_part, value) = line.rsplit_once(' ').unwrap();
            assert!(
                value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                "{line}"
            );
            let name = series_part.split('{').next().unwrap();
            assert!(name_ok(name), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "no # TYPE before {line}");
            if let Some(labels) = series_part.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    for pair in labels[1..labels.len() - 1].split("\",") {
                        let (k, v) = pair.split_once("=\"").unwrap();
                        assert!(name_ok(k), "{line}");
                        assert!(!v.trim_end_matches('"').contains('\n'), "{line}");
                    }
                }
            }
            assert!(series.insert(series_part.to_owned()), "twice: {line}");
        }
    }

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn collector_metrics_say_what_the_status_says() {
        let status = CollectorStatus {
            published: vec![
                EventCount {
                    r#type: EventType::Process as i32,
                    severity: Severity::Critical as i32,
                    count: 3,
                },
                EventCount {
                    r#type: EventType::File as i32,
                    severity: Severity::Info as i32,
                    count: 40,
                },
            ],
            evicted: Some(SeverityCounts {
                info: 7,
                ..Default::default()
            }),
            monitors: vec![MonitorStatus {
                name: "file \"odd\"\nname".into(),
                state: MonitorState::Running as i32,
                events: 40,
                lost: 2,
                ..Default::default()
            }],
            rss_bytes: 9_000_000,
            started_at_ns: 1_700_000_000_500_000_000,
            ..Default::default()
        };
        let mut out = Exposition::new();
        collector(&mut out, Some(&status));
        let text = out.into_string();
        assert_valid(&text);
        let v = |s: &str| sample_value(&text, s);
        assert_eq!(v("sec_tracker_collector_up"), Some(1.0));
        assert_eq!(
            v(r#"sec_tracker_collector_events_total{type="process",severity="critical"}"#),
            Some(3.0)
        );
        assert_eq!(
            v(r#"sec_tracker_collector_dropped_total{cause="evicted",severity="info"}"#),
            Some(7.0)
        );
        assert_eq!(
            v(r#"sec_tracker_collector_monitor_lost_total{monitor="file \"odd\"\nname"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(
                r#"sec_tracker_collector_monitor_state{monitor="file \"odd\"\nname",state="running"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            v(
                r#"sec_tracker_collector_monitor_state{monitor="file \"odd\"\nname",state="failed"}"#
            ),
            Some(0.0)
        );
        assert_eq!(v("sec_tracker_collector_resident_memory_bytes"), Some(9e6));
        assert_eq!(
            v("sec_tracker_collector_start_time_seconds"),
            Some(1_700_000_000.5)
        );
    }

    #[test]
    fn a_daemon_that_does_not_answer_is_down_and_nothing_else() {
        let mut out = Exposition::new();
        collector(&mut out, None);
        shipper(&mut out, None);
        let text = out.into_string();
        assert_valid(&text);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            ["sec_tracker_collector_up 0", "sec_tracker_shipper_up 0"]
        );
    }

    #[test]
    fn the_send_histogram_is_cumulative_and_sums_in_seconds() {
        let h = LatencyHistogram::default();
        for ms in [3, 30, 30, 700, 20_000] {
            h.observe(Duration::from_millis(ms));
        }
        let status = ShipperStatus {
            send_seconds: Some(h.snapshot()),
            state: ShipperState::Retrying as i32,
            events_sent: 12,
            ..Default::default()
        };
        let mut out = Exposition::new();
        shipper(&mut out, Some(&status));
        let text = out.into_string();
        assert_valid(&text);
        let v = |s: &str| sample_value(&text, s);
        let b = "sec_tracker_shipper_send_duration_seconds_bucket";
        assert_eq!(v(&format!("{b}{{le=\"0.005\"}}")), Some(1.0));
        assert_eq!(v(&format!("{b}{{le=\"0.025\"}}")), Some(1.0));
        assert_eq!(v(&format!("{b}{{le=\"0.05\"}}")), Some(3.0));
        assert_eq!(v(&format!("{b}{{le=\"1\"}}")), Some(4.0));
        assert_eq!(v(&format!("{b}{{le=\"10\"}}")), Some(4.0));
        assert_eq!(v(&format!("{b}{{le=\"+Inf\"}}")), Some(5.0));
        assert_eq!(
            v("sec_tracker_shipper_send_duration_seconds_count"),
            Some(5.0)
        );
        let sum = v("sec_tracker_shipper_send_duration_seconds_sum").unwrap();
        assert!((sum - 20.763).abs() < 1e-9, "{sum}");
        assert_eq!(
            v(r#"sec_tracker_shipper_state{state="retrying"}"#),
            Some(1.0)
        );
        assert_eq!(v(r#"sec_tracker_shipper_state{state="idle"}"#), Some(0.0));
        assert_eq!(v("sec_tracker_shipper_events_sent_total"), Some(12.0));
    }
}
