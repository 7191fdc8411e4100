//! Benchmark load for shipperd: serves the real `Collector` gRPC service on a Unix socket (the
//! collectord library, every monitor off) and publishes synthetic process-exec events into its
//! hub, as fast as possible or at `--rate` events/s, for `--seconds`, then keeps serving until
//! killed (so a subscriber can drain what it still holds).
//!
//! Publishing starts when the first subscriber attaches, so the measured stream starts with the
//! reader. When the reader falls further behind than the ring holds (here at least 200,000
//! events), it misses what the ring let go and is told so (a `slow_subscriber` gap, counted in
//! the final line).
//!
//! Unpaced full speed (~650k events/s) overruns any reader at once. To measure what shipperd
//! sustains, `--pace-socket <shipperd's status socket>` keeps full speed but never more than
//! `--max-ahead` (default 50,000) events beyond what shipperd reports as delivered
//! (`events_sent`, polled every 20 ms): the hub is never overrun and shipperd's queue stays
//! bounded, so the rate is the end-to-end capacity, with in = out.
//!
//! ```sh
//! cargo run --release -p sec-tracker-testkit --bin synthetic-collector -- /tmp/c.sock \
//!     [--rate N] [--seconds S] [--pace-socket PATH [--max-ahead N]]
//! ```
//! Prints to stdout, when publishing ends:
//! `published <n> events in <secs> s (<rate>/s); skipped for slow subscribers so far: <k>`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collectord::hub::Hub;
use collectord::{server, Collector};
use sec_tracker_proto::config::DEFAULT_SHIPPER_USER;
use sec_tracker_proto::json::now_ns;
use sec_tracker_proto::local::peer::{self, Limits, PeerPolicy};
use sec_tracker_proto::local::{client, socket, LocalService};
use sec_tracker_proto::v1::shipper_client::ShipperClient;
use sec_tracker_proto::v1::{
    event, Event, EventType, ProcessAction, ProcessEvent, Severity, ShipperStatusRequest,
};
use sec_tracker_proto::Config;

const BUFFER_SIZE: u64 = 200_000;

struct Args {
    socket: PathBuf,
    /// Events per second; `None`: as fast as possible.
    rate: Option<u64>,
    seconds: f64,
    /// shipperd's status socket, to pace on what it has delivered.
    pace_socket: Option<PathBuf>,
    max_ahead: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut socket = None;
    let mut rate = None;
    let mut seconds = 60.0;
    let mut pace_socket = None;
    let mut max_ahead = 50_000;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rate" => {
                let v = it.next().ok_or("--rate needs a value")?;
                rate = Some(v.parse().map_err(|e| format!("--rate {v}: {e}"))?);
            }
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                seconds = v.parse().map_err(|e| format!("--seconds {v}: {e}"))?;
            }
            "--pace-socket" => {
                pace_socket = Some(PathBuf::from(
                    it.next().ok_or("--pace-socket needs a path")?,
                ));
            }
            "--max-ahead" => {
                let v = it.next().ok_or("--max-ahead needs a value")?;
                max_ahead = v.parse().map_err(|e| format!("--max-ahead {v}: {e}"))?;
            }
            _ if a.starts_with("--") => return Err(format!("unknown option {a}")),
            _ if socket.is_none() => socket = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Args {
        socket: socket.ok_or("missing <socket>")?,
        rate: rate.filter(|r| *r > 0),
        seconds,
        pace_socket,
        max_ahead,
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "synthetic-collector: {e}\nusage: synthetic-collector <socket> [--rate N] [--seconds S] [--pace-socket PATH [--max-ahead N]]"
            );
            std::process::exit(2);
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("synthetic")
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::default();
    let m = &mut config.monitoring;
    m.system_info = false;
    m.process_monitor = false;
    m.file_monitor = false;
    m.auth_monitor = false;
    m.network_monitor = false;
    config.agent.buffer_size = BUFFER_SIZE;
    // One synthetic program publishing at full speed is a flood by design: what is measured here
    // is shipping, so every event goes out.
    config.monitoring.flood_limit = u64::MAX;
    let policy = PeerPolicy::new(LocalService::Collector, &config.agent.socket_group);
    let (listener, _published) =
        socket::bind(&args.socket, LocalService::Collector, policy.group_gid())?.publish()?;
    let listener = socket::into_tokio(listener)?;
    let collector = Collector::start(config, None, Some(args.socket.clone()));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server::service(Arc::clone(&collector), policy))
            .serve_with_incoming(peer::serve_incoming(
                listener,
                LocalService::Collector,
                Limits::default(),
            )),
    );
    eprintln!(
        "synthetic-collector: serving {} (stream {}); publishing when a subscriber attaches",
        args.socket.display(),
        collector.hub().stream_id()
    );

    let hub = Arc::clone(collector.hub());
    while hub.subscriber_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pace = args.pace_socket.map(|path| {
        let delivered = Arc::new(AtomicU64::new(0));
        tokio::spawn(poll_delivered(path, Arc::clone(&delivered)));
        Pace {
            delivered,
            max_ahead: args.max_ahead.clamp(1, BUFFER_SIZE / 2),
        }
    });
    // Publishing runs on its own thread so that it never starves the runtime serving the stream.
    let (rate, seconds) = (args.rate, args.seconds);
    let publisher = std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || publish(&hub, rate, pace, Duration::from_secs_f64(seconds)))?;
    let (published, elapsed) = tokio::task::spawn_blocking(move || publisher.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the publisher panicked"))?;
    let secs = elapsed.as_secs_f64();
    println!(
        "published {published} events in {secs:.2} s ({:.0}/s); skipped for slow subscribers so far: {}",
        published as f64 / secs,
        collector.hub().skipped_total()
    );
    // Keep serving until killed.
    server.await??;
    Ok(())
}

struct Pace {
    /// Events shipperd has delivered (its `events_sent`).
    delivered: Arc<AtomicU64>,
    max_ahead: u64,
}

/// Keeps `delivered` up to date from shipperd's status socket (waits for it to appear).
async fn poll_delivered(path: PathBuf, delivered: Arc<AtomicU64>) {
    loop {
        let channel =
            match client::connect(&path, &client::Trust::shipper(DEFAULT_SHIPPER_USER)).await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
        let mut client = ShipperClient::new(channel);
        while let Ok(s) = client.status(ShipperStatusRequest {}).await {
            delivered.store(s.into_inner().events_sent, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Publishes until `duration` has passed; returns how many and how long it took.
fn publish(
    hub: &Hub,
    rate: Option<u64>,
    pace: Option<Pace>,
    duration: Duration,
) -> (u64, Duration) {
    let started = Instant::now();
    let mut n: u64 = 0;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return (n, elapsed);
        }
        // Publish in slices of up to 1 ms worth (or 256 at full speed), then check the clock.
        let mut due = match rate {
            None => n + 256,
            Some(r) => (r as f64 * elapsed.as_secs_f64()) as u64,
        };
        if let Some(p) = &pace {
            due = due.min(p.delivered.load(Ordering::Relaxed) + p.max_ahead);
        }
        if due <= n {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        while n < due {
            hub.publish(exec_event(n));
            n += 1;
        }
    }
}

/// splitmix64: cheap, deterministic variety for pids, paths and tokens.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a busy host execs: a few recurring programs with ~5 arguments each, one or two of which
/// vary (temp names, job ids, hosts, counters), so the stream compresses like a real one rather
/// than like one line repeated.
fn command(n: u64) -> (&'static str, Vec<String>, &'static str) {
    let r = mix(n);
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match n % 6 {
        0 => {
            let mut a = s(&["git", "-C", "", "log", "--oneline", "-n"]);
            a[2] = format!("/srv/git/project-{}", r % 40);
            a.push(((r >> 8) & 63).to_string());
            ("/usr/bin/git", a, "bash")
        }
        1 => {
            let mut a = s(&["grep", "-rn", "--include=*.rs", "", "src"]);
            a[3] = format!("fn handle_{:06x}", r & 0xff_ffff);
            ("/usr/bin/grep", a, "bash")
        }
        2 => {
            let mut a = s(&["curl", "-fsSL", "-o", "", ""]);
            a[3] = format!("/tmp/dl-{:08x}", r as u32);
            a[4] = format!("https://mirror.example/{:08x}.tgz", r >> 32);
            ("/usr/bin/curl", a, "sh")
        }
        3 => {
            let mut a = s(&["python3", "/opt/app/worker.py", "--job", "", "-v"]);
            a[3] = format!("{:016x}", r);
            ("/usr/bin/python3.11", a, "supervisord")
        }
        4 => {
            let mut a = s(&["tar", "-czf", "", "-C", "/", "etc"]);
            a[2] = format!("/var/backups/etc-{}.tar.gz", 1_700_000_000 + n / 6);
            ("/usr/bin/tar", a, "cron")
        }
        _ => {
            let mut a = s(&["ssh", "-o", "BatchMode=yes", "", "uptime"]);
            a[3] = format!("deploy@10.0.{}.{}", (r >> 16) & 255, (r >> 24) & 255);
            ("/usr/bin/ssh", a, "bash")
        }
    }
}

fn exec_event(n: u64) -> Event {
    let (exe, argv, parent) = command(n);
    let r = mix(!n);
    let pid = 10_000 + (r % 4_000_000) as u32;
    let (uid, user) = [(1000, "alice"), (0, "root"), (33, "www-data")][(r >> 40) as usize % 3];
    let name = argv[0].clone();
    Event {
        timestamp_ns: now_ns(),
        r#type: EventType::Process as i32,
        severity: Severity::Info as i32,
        source: "process_monitor".into(),
        message: format!("Process started: {name} (PID: {pid})"),
        details: Some(event::Details::Process(ProcessEvent {
            action: ProcessAction::Exec as i32,
            pid,
            ppid: 9_000 + (r >> 22) as u32 % 500,
            uid,
            user: user.into(),
            gid: uid,
            euid: uid,
            egid: uid,
            exe: exe.as_bytes().to_vec(),
            argv: argv.into_iter().map(String::into_bytes).collect(),
            name,
            parent_name: parent.into(),
            cwd: b"/home/alice".to_vec(),
            tty: "pts/1".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}
