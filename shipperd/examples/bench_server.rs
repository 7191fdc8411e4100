//! Benchmark sink for shipperd: the in-process HTTPS management server of `shipperd::testing`
//! (throwaway CA, localhost certificate), counting what arrives.
//!
//! ```sh
//! cargo run --release -p shipperd --features testing --example bench_server -- <dir> \
//!     [--batch-size N] [--window FROM TO]
//! ```
//! Writes `<dir>/ca.pem` and `<dir>/config.json` (shipperd's config: this server, its CA, the
//! test API key, `server.batch_size` N (default 1000), `agent.report_interval` 1s, a large
//! `agent.max_queue_size`), then prints one JSON line per second to stdout:
//!
//! `{"t":…,"batches":…,"payloads":…,"total_payloads":…,"total_wire_bytes":…,"latency_ms":{"p50":…,"p90":…,"p99":…,"max":…}}`
//!
//! `t` is seconds since the server started; `batches`/`payloads`/`latency_ms` are for the batches
//! received in that second; latency is the time a batch's request reached the server minus each
//! event's own `timestamp`. With `--window FROM TO`, once `TO` seconds have passed since the first
//! batch arrived it prints one more line, `{"window":{…}}`, over the batches that arrived between
//! FROM and TO seconds after the first one: events/s, wire (gzip) and JSON bytes per event, latency
//! percentiles; and when FROM has passed, `{"window_open":{"total_payloads":…}}`, so that a
//! script can sample other figures (CPU time) over the same window.
//!
//! Batch size 1000 (10× the default 100): at tens of thousands of events/s that is tens of requests
//! per second, so per-request costs (HTTP, TLS records, SQLite ack) are amortised, while one batch
//! (~550 KB of JSON for the synthetic exec events, ~45 KB gzipped) stays well under any server
//! body limit. The server runs on one thread (see `main`): its request handling is in the
//! sender's round trip, as a real server's would be.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use serde_json::{json, Value};
use shipperd::testing::{Mode, ReceivedBatch, ServerOptions, TestCa, TestServer, TEST_API_KEY};

struct Args {
    dir: PathBuf,
    batch_size: u64,
    window: Option<(f64, f64)>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut dir = None;
    let mut batch_size = 1000;
    let mut window = None;
    let num = |v: Option<String>, what: &str| -> Result<f64, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        v.parse().map_err(|e| format!("{what} {v}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--batch-size" => batch_size = num(it.next(), "--batch-size")? as u64,
            "--window" => {
                let from = num(it.next(), "--window")?;
                let to = num(it.next(), "--window")?;
                if to <= from {
                    return Err("--window FROM TO needs FROM < TO".into());
                }
                window = Some((from, to));
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or("missing <dir>")?,
        batch_size,
        window,
    })
}

/// Maps the server's `Instant`s to wall-clock time, to compare with the events' timestamps.
struct Clock {
    instant: Instant,
    wall_ns: i128,
}

impl Clock {
    fn now() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            instant: Instant::now(),
            wall_ns: wall.as_nanos() as i128,
        }
    }
    fn wall_ns(&self, at: Instant) -> i128 {
        self.wall_ns + at.saturating_duration_since(self.instant).as_nanos() as i128
    }
    fn secs_since_start(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.instant).as_secs_f64()
    }
}

/// The event's own `timestamp`, read without parsing the rest of it into a tree.
fn event_ns(payload: &RawValue) -> Option<i128> {
    #[derive(serde::Deserialize)]
    struct Stamp<'a> {
        #[serde(borrow)]
        timestamp: std::borrow::Cow<'a, str>,
    }
    let stamp: Stamp<'_> = serde_json::from_str(payload.get()).ok()?;
    let t = humantime::parse_rfc3339(&stamp.timestamp).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos() as i128)
}

/// Latencies (ms) of a batch's payloads; payloads without a readable timestamp are skipped.
fn latencies_ms(clock: &Clock, b: &ReceivedBatch, out: &mut Vec<f64>) {
    let at = clock.wall_ns(b.at);
    out.extend(
        b.raw_payloads
            .iter()
            .filter_map(|p| event_ns(p))
            .map(|ts| (at - ts) as f64 / 1e6),
    );
}

/// Nearest-rank percentiles of `v` (sorted here); null when empty.
fn percentiles(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| {
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        (v[rank - 1] * 10.0).round() / 10.0
    };
    json!({"p50": p(0.50), "p90": p(0.90), "p99": p(0.99), "max": p(1.0), "n": v.len()})
}

#[derive(Default)]
struct Window {
    payloads: u64,
    wire_bytes: u64,
    /// The size as compact JSON (before gzip) of `sampled` of the payloads.
    json_bytes: u64,
    sampled: u64,
    latencies: Vec<f64>,
    opened: bool,
    done: bool,
}

// One thread for the server: its connections and the take below share it, so taking the batches
// and clearing them (no await in between) cannot miss one that arrives at that moment.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "bench_server: {e}\nusage: bench_server <dir> [--batch-size N] [--window FROM TO]"
            );
            std::process::exit(2);
        }
    };
    let dir = &args.dir;
    std::fs::create_dir_all(dir)?;
    let ca = TestCa::new();
    let ca_path = dir.join("ca.pem");
    ca.write_ca_pem(&ca_path)?;
    let clock = Clock::now();
    // The sink checks each batch's JSON and reads each event's timestamp, but builds no tree:
    // the figure is shipperd's, not this server's parser's.
    let options = ServerOptions {
        raw_payloads: true,
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(&ca.localhost_cert(), Mode::Accept, options).await?;
    let config = json!({
        "server": {
            "url": server.url,
            "api_key": TEST_API_KEY,
            "ca_file": ca_path,
            "batch_size": args.batch_size,
        },
        "agent": {
            "id": "bench-agent",
            "report_interval": "1s",
            "max_queue_size": 50_000_000,
            "state_dir": dir.join("state"),
        },
    });
    // Written whole, then renamed: a reader waiting for the file never sees half of it.
    let tmp = dir.join("config.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&config)?)?;
    std::fs::rename(&tmp, dir.join("config.json"))?;
    eprintln!("bench_server: listening on {}", server.url);

    // This thread takes what arrived every second; another one does the counting, so that the
    // server (same thread as the take) is held up only by the take itself.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<ReceivedBatch>)>();
    let window = args.window;
    std::thread::spawn(move || count(clock, window, rx));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let got = server.batches();
        server.clear();
        if tx.send((Instant::now(), got)).is_err() {
            return Ok(());
        }
    }
}

/// Prints a line per second's take and, with a window, the window's lines.
fn count(
    clock: Clock,
    window_args: Option<(f64, f64)>,
    rx: std::sync::mpsc::Receiver<(Instant, Vec<ReceivedBatch>)>,
) {
    let (mut total_payloads, mut total_wire, mut total_batches) = (0u64, 0u64, 0u64);
    let mut first_at: Option<Instant> = None;
    let mut window = Window::default();
    while let Ok((now, got)) = rx.recv() {
        let mut lat = Vec::new();
        let mut payloads = 0u64;
        for (i, b) in got.iter().enumerate() {
            let n = b.raw_payloads.len() as u64;
            payloads += n;
            total_wire += b.wire_bytes as u64;
            let from_here = lat.len();
            latencies_ms(&clock, b, &mut lat);
            let first = *first_at.get_or_insert(b.at);
            if let Some((from, to)) = window_args {
                let since = b.at.saturating_duration_since(first).as_secs_f64();
                if since >= from && since < to {
                    window.payloads += n;
                    window.wire_bytes += b.wire_bytes as u64;
                    window.latencies.extend_from_slice(&lat[from_here..]);
                    // JSON size from the first batch of each second: a sample is enough.
                    if i == 0 {
                        window.sampled += n;
                        window.json_bytes += b
                            .raw_payloads
                            .iter()
                            .map(|p| p.get().len() as u64)
                            .sum::<u64>();
                    }
                }
            }
        }
        total_payloads += payloads;
        let batches = got.len();
        total_batches += batches as u64;
        drop(got);
        let line = json!({
            "t": (clock.secs_since_start(now) * 10.0).round() / 10.0,
            "batches": batches,
            "payloads": payloads,
            "total_batches": total_batches,
            "total_payloads": total_payloads,
            "total_wire_bytes": total_wire,
            "latency_ms": percentiles(&mut lat),
        });
        println!("{line}");
        let (Some((from, to)), Some(first)) = (window_args, first_at) else {
            continue;
        };
        let since_first = now.saturating_duration_since(first).as_secs_f64();
        if !window.opened && since_first >= from {
            window.opened = true;
            // For a reader sampling other figures (CPU) over the same window.
            println!(
                "{}",
                json!({"window_open": {"total_payloads": total_payloads}})
            );
        }
        if !window.done && since_first >= to {
            window.done = true;
            let secs = to - from;
            let per_event = |x: u64, n: u64| {
                if n == 0 {
                    Value::Null
                } else {
                    json!((x as f64 / n as f64 * 10.0).round() / 10.0)
                }
            };
            let summary = json!({"window": {
                "total_payloads": total_payloads,
                "from_s": from,
                "to_s": to,
                "payloads": window.payloads,
                "events_per_s": (window.payloads as f64 / secs).round(),
                "wire_bytes": window.wire_bytes,
                "wire_bytes_per_event": per_event(window.wire_bytes, window.payloads),
                "json_bytes_per_event": per_event(window.json_bytes, window.sampled),
                "latency_ms": percentiles(&mut window.latencies),
            }});
            println!("{summary}");
            window.latencies = Vec::new();
        }
    }
}
