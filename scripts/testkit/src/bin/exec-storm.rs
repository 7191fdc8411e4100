//! Benchmark load: spawns N short-lived processes (`/bin/true <tag>-<i>`) as fast as the machine
//! allows, keeping up to `--parallel` in flight, and writes their pids to a file so that a
//! benchmark can check which of them a collector saw.
//!
//! `exec-storm <count> <tag> <pid-file> [parallel]`

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: exec-storm <count> <tag> <pid-file> [parallel]");
        std::process::exit(2);
    }
    let count: usize = args[1].parse().expect("count");
    let tag = &args[2];
    let parallel: usize = args.get(4).map_or(8, |p| p.parse().expect("parallel"));
    let mut pids = std::io::BufWriter::new(std::fs::File::create(&args[3])?);
    let mut in_flight: Vec<Child> = Vec::with_capacity(parallel);
    let start = Instant::now();
    for i in 0..count {
        if in_flight.len() >= parallel {
            in_flight.remove(0).wait()?;
        }
        let child = Command::new("/bin/true")
            .arg(format!("{tag}-{i}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        writeln!(pids, "{}", child.id())?;
        in_flight.push(child);
    }
    for mut c in in_flight {
        c.wait()?;
    }
    let secs = start.elapsed().as_secs_f64();
    pids.flush()?;
    eprintln!(
        "spawned {count} processes in {secs:.2} s ({:.0}/s)",
        count as f64 / secs
    );
    Ok(())
}
