//! The management-server double for scripts: the testkit's HTTPS server (rustls, a throwaway CA)
//! speaking the agent API, for trying server mode by hand, for the benchmarks and for the soak.
//!
//! ```sh
//! test-server [DIR] [--port N] [--api-key KEY] [--batch-size N] [--mode MODE]
//!             [--print] [--record] [--stats [--window FROM TO]]
//! ```
//! DIR (default `/tmp/sec-tracker-demo`) gets `ca.pem`, `server.crt` and `server.key` on the first
//! start and keeps them: a restart with the same DIR and `--port` is the same server to shipperd.
//! It also gets `config.json`, a shipperd config for this server (its URL, CA and key,
//! `server.batch_size` N (default 100), `agent.report_interval` 1s with `--stats`, else 5s, and
//! `agent.state_dir` DIR/state), written whole then renamed.
//!
//! What it prints (stdout), any combination:
//! - `--print`: each batch and health report as it arrives (the first 3 events of a batch);
//! - `--record`: nothing; it appends to DIR/`received.tsv` (batch id, tab, event JSON),
//!   `batches.tsv` and `health.jsonl` before answering, and keeps nothing in memory;
//! - `--stats`: one JSON line per second, `{"t","batches","payloads","total_payloads",
//!   "total_wire_bytes","latency_ms":{"p50","p90","p99","max"}}` (latency: arrival minus each
//!   event's own `timestamp`), payloads checked but not parsed into trees; with `--window FROM TO`,
//!   `{"window_open":{"total_payloads"}}` once FROM seconds have passed since the first batch and
//!   `{"window":{…}}` (events/s, wire and JSON bytes per event, latency) at TO.
//!
//! `--mode` is how it answers data requests: `accept` (default), `status:CODE` (e.g. `status:503`),
//! `retry-after:CODE:SECS`, `stall`, `unauthorized`. It runs until killed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sec_tracker_testkit::server::{
    Mode, ReceivedBatch, ServerOptions, TestCa, TestCert, TestServer, TEST_API_KEY,
};
use serde_json::value::RawValue;
use serde_json::{json, Value};

struct Args {
    dir: PathBuf,
    port: u16,
    api_key: String,
    batch_size: u64,
    mode: Mode,
    print: bool,
    record: bool,
    stats: bool,
    window: Option<(f64, f64)>,
}

const USAGE: &str = "usage: test-server [DIR] [--port N] [--api-key KEY] [--batch-size N] \
    [--mode accept|status:CODE|retry-after:CODE:SECS|stall|unauthorized] [--print] [--record] \
    [--stats [--window FROM TO]]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        dir: PathBuf::from("/tmp/sec-tracker-demo"),
        port: 0,
        api_key: TEST_API_KEY.to_owned(),
        batch_size: 100,
        mode: Mode::Accept,
        print: false,
        record: false,
        stats: false,
        window: None,
    };
    let mut dir_given = false;
    let num = |v: Option<String>, what: &str| -> Result<f64, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        v.parse().map_err(|e| format!("{what} {v}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => a.port = num(it.next(), "--port")? as u16,
            "--api-key" => a.api_key = it.next().ok_or("--api-key needs a value")?,
            "--batch-size" => a.batch_size = num(it.next(), "--batch-size")? as u64,
            "--mode" => a.mode = parse_mode(&it.next().ok_or("--mode needs a value")?)?,
            "--print" => a.print = true,
            "--record" => a.record = true,
            "--stats" => a.stats = true,
            "--window" => {
                let from = num(it.next(), "--window")?;
                let to = num(it.next(), "--window")?;
                if to <= from {
                    return Err("--window FROM TO needs FROM < TO".into());
                }
                a.window = Some((from, to));
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ if !dir_given => {
                a.dir = PathBuf::from(arg);
                dir_given = true;
            }
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if a.window.is_some() && !a.stats {
        return Err("--window goes with --stats".into());
    }
    Ok(a)
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let code = |v: &str| v.parse::<u16>().map_err(|e| format!("--mode {s}: {e}"));
    Ok(match parts.as_slice() {
        ["accept"] => Mode::Accept,
        ["stall"] => Mode::Stall,
        ["unauthorized"] => Mode::Unauthorized,
        ["status", c] => Mode::FailStatus {
            status: code(c)?,
            times: None,
        },
        ["retry-after", c, secs] => Mode::RetryAfter {
            status: code(c)?,
            secs: secs.parse().map_err(|e| format!("--mode {s}: {e}"))?,
            times: None,
        },
        _ => return Err(format!("unknown --mode {s}")),
    })
}

/// The CA and certificate of an earlier start in `dir`, or new ones written there.
fn certificate(dir: &Path) -> std::io::Result<TestCert> {
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    if crt.exists() && key.exists() && dir.join("ca.pem").exists() {
        return TestCert::from_pem(
            &std::fs::read_to_string(crt)?,
            &std::fs::read_to_string(key)?,
        );
    }
    let ca = TestCa::new();
    ca.write_ca_pem(&dir.join("ca.pem"))?;
    let cert = ca.localhost_cert();
    cert.write(dir, "server")?;
    Ok(cert)
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
// and clearing them (no await in between) cannot miss one that arrives at that moment; and with
// --stats its request handling is in the sender's round trip, as a real server's would be.
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("test-server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let dir = &args.dir;
    std::fs::create_dir_all(dir)?;
    let cert = certificate(dir)?;
    let clock = Clock::now();
    let options = ServerOptions {
        api_key: args.api_key.clone(),
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        // The stats sink checks each batch's JSON and reads each event's timestamp, but builds
        // no tree: the figure is shipperd's, not this server's parser's.
        raw_payloads: args.stats || args.record,
        record_dir: args.record.then(|| dir.clone()),
        forget: args.record && !args.stats && !args.print,
        ..ServerOptions::default()
    };
    let server = TestServer::start_with(&cert, args.mode.clone(), options).await?;
    let config = json!({
        "server": {
            "url": server.url,
            "api_key": args.api_key,
            "ca_file": dir.join("ca.pem"),
            "batch_size": args.batch_size,
        },
        "agent": {
            "id": "test-agent",
            "report_interval": if args.stats { "1s" } else { "5s" },
            "max_queue_size": 50_000_000,
            "state_dir": dir.join("state"),
        },
    });
    sec_tracker_proto::fsutil::write_atomic(&dir.join("config.json"), |w| {
        serde_json::to_writer_pretty(w, &config).map_err(std::io::Error::other)
    })?;
    eprintln!(
        "test-server: listening on {}; shipperd config in {}",
        server.url,
        dir.join("config.json").display()
    );
    if args.print {
        println!("management server listening on {}", server.url);
        println!("in other terminals, as root:");
        println!(
            "  ./target/release/collectord --config {}",
            dir.join("config.json").display()
        );
        println!(
            "  ./target/release/shipperd --config {} --allow-root",
            dir.join("config.json").display()
        );
    }

    // This thread takes what arrived every second; another one does the counting, so that the
    // server (same thread as the take) is held up only by the take itself.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<ReceivedBatch>)>();
    let (window, stats) = (args.window, args.stats);
    if stats {
        std::thread::spawn(move || count(clock, window, rx));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(if stats { 1000 } else { 500 }));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let got = server.batches();
        let health = server.health_reports();
        server.clear();
        if args.print {
            print_arrivals(&got, &health);
        }
        if stats && tx.send((Instant::now(), got)).is_err() {
            return Ok(());
        }
    }
}

fn print_arrivals(batches: &[ReceivedBatch], health: &[Value]) {
    for b in batches {
        let n = b.raw_payloads.len().max(b.payloads.len());
        println!(
            "batch {} from {}: {n} events ({} bytes on the wire)",
            b.batch_id, b.agent_id, b.wire_bytes
        );
        let shown: Vec<Value> = if b.payloads.is_empty() {
            b.raw_payloads
                .iter()
                .take(3)
                .filter_map(|p| serde_json::from_str(p.get()).ok())
                .collect()
        } else {
            b.payloads.iter().take(3).cloned().collect()
        };
        for p in &shown {
            println!(
                "  {} {} {}",
                p["severity"].as_str().unwrap_or(""),
                p["type"].as_str().unwrap_or(""),
                p["message"].as_str().unwrap_or("")
            );
        }
        if n > 3 {
            println!("  … and {} more", n - 3);
        }
    }
    for h in health {
        println!("health: {h}");
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
