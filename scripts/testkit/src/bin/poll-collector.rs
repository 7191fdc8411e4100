//! A naive poll-based process collector, as reference for the exec storm benchmark: lists /proc
//! every INTERVAL seconds (default 5) and prints a line for each pid it has not seen before,
//! `exec <pid> <cmdline>` (arguments joined by spaces), then `scan <n> <pids seen>` after each
//! pass, flushed. What lives and dies between two passes is never seen: that is the point.
//!
//! `poll-collector [INTERVAL]` — runs until killed.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

fn main() -> std::io::Result<()> {
    let interval: f64 = std::env::args()
        .nth(1)
        .map_or(5.0, |s| s.parse().expect("INTERVAL in seconds"));
    let interval = Duration::from_secs_f64(interval);
    let mut seen: HashSet<u32> = HashSet::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let start = Instant::now();
    for n in 0u64.. {
        let mut now: HashSet<u32> = HashSet::new();
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            now.insert(pid);
            if !seen.contains(&pid) {
                // Gone between listing and reading: seen, without a command line.
                writeln!(out, "exec {pid} {}", cmdline(pid).unwrap_or_default())?;
            }
        }
        // Forget pids that are gone, so a reused pid counts as new.
        seen = now;
        writeln!(out, "scan {n} {}", seen.len())?;
        out.flush()?;
        let next = start + interval * (n as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}
