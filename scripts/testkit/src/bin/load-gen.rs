//! Paced benchmark load: processes or file writes at a steady rate, for overhead and soak runs.
//!
//! ```sh
//! load-gen exec RATE SECONDS [--tag TAG] [--log FILE] [-- PROGRAM ARGS…]
//! load-gen write DIR RATE SECONDS [--tag TAG] [--log FILE] [--keep N]
//! ```
//! `exec` starts `PROGRAM ARGS… TAG-<i>` (default program `/bin/true`) RATE times a second;
//! children are reaped by a thread, so a slow child never holds up the pace. `write` creates
//! `DIR/d<i % 10>/TAG-<i>` (open, write a line, close) RATE times a second. Each action i is due at
//! start + i / RATE (a deadline, not a sleep after the previous one), so the rate holds however
//! long an action takes; when it falls behind it catches up as fast as it can. With `--keep N`,
//! `write` deletes each file again once N newer ones exist, so a long run's tree stays small. With `--log` every
//! tag is written to FILE as it is done (flushed every 100 ms). SECONDS 0: until killed.
//! At the end it prints `done N actions in S s (R/s), late L` to stderr, where `late` counts
//! actions started more than 10 ms after their deadline.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::waitpid;

enum Mode {
    Exec { program: Vec<String> },
    Write { dir: PathBuf, keep: Option<u64> },
}

struct Args {
    mode: Mode,
    rate: f64,
    seconds: f64,
    tag: String,
    log: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: load-gen exec RATE SECONDS [--tag TAG] [--log FILE] [-- PROGRAM ARGS…]\n       \
         load-gen write DIR RATE SECONDS [--tag TAG] [--log FILE] [--keep N]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let kind = it.next().unwrap_or_else(|| usage());
    let dir = match kind.as_str() {
        "write" => Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
        "exec" => None,
        _ => usage(),
    };
    let num = |v: Option<String>| -> f64 {
        v.and_then(|s| s.parse().ok())
            .filter(|x: &f64| x.is_finite() && *x >= 0.0)
            .unwrap_or_else(|| usage())
    };
    let rate = num(it.next());
    let seconds = num(it.next());
    if rate <= 0.0 {
        usage();
    }
    let mut tag = format!("lg{}", std::process::id());
    let mut log = None;
    let mut keep = None;
    let mut program = vec!["/bin/true".to_owned()];
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tag" => tag = it.next().unwrap_or_else(|| usage()),
            "--log" => log = Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
            "--keep" => keep = Some(num(it.next()) as u64),
            "--" => {
                program = it.by_ref().collect();
                if program.is_empty() {
                    usage();
                }
            }
            _ => usage(),
        }
    }
    let mode = match dir {
        Some(dir) => Mode::Write { dir, keep },
        None => Mode::Exec { program },
    };
    Args {
        mode,
        rate,
        seconds,
        tag,
        log,
    }
}

/// Reaps every child as it exits, until `done` is set and none is left.
fn reaper(done: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || loop {
        match waitpid(None, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => {
                // ECHILD: none running right now.
                if done.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
}

fn write_one(dir: &Path, i: u64, name: &str) -> std::io::Result<()> {
    let path = dir.join(format!("d{}", i % 10)).join(name);
    let mut f = std::fs::File::create(path)?;
    writeln!(f, "load_gen payload {i}")?;
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    let mut log = match &args.log {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    if let Mode::Write { dir, .. } = &args.mode {
        for d in 0..10 {
            std::fs::create_dir_all(dir.join(format!("d{d}")))?;
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let reaper = matches!(args.mode, Mode::Exec { .. }).then(|| reaper(done.clone()));

    let interval = 1.0 / args.rate;
    let total = if args.seconds > 0.0 {
        (args.seconds * args.rate).round() as u64
    } else {
        u64::MAX
    };
    let start = Instant::now();
    let mut last_flush = start;
    let (mut late, mut failed) = (0u64, 0u64);
    let mut i = 0u64;
    while i < total {
        let due = start + Duration::from_secs_f64(i as f64 * interval);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > Duration::from_millis(10) {
            late += 1;
        }
        let name = format!("{}-{i}", args.tag);
        let result = match &args.mode {
            Mode::Exec { program } => Command::new(&program[0])
                .args(&program[1..])
                .arg(&name)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(drop),
            Mode::Write { dir, keep } => write_one(dir, i, &name).and_then(|()| match keep {
                Some(k) if i >= *k => {
                    let old = i - k;
                    std::fs::remove_file(
                        dir.join(format!("d{}", old % 10))
                            .join(format!("{}-{old}", args.tag)),
                    )
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                }
                _ => Ok(()),
            }),
        };
        match result {
            Ok(()) => {
                if let Some(l) = log.as_mut() {
                    writeln!(l, "{name}")?;
                }
            }
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("load-gen: {name}: {e}");
                }
            }
        }
        i += 1;
        if let Some(l) = log.as_mut() {
            if last_flush.elapsed() >= Duration::from_millis(100) {
                l.flush()?;
                last_flush = Instant::now();
            }
        }
    }
    if let Some(l) = log.as_mut() {
        l.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Release);
    if let Some(r) = reaper {
        let _ = r.join();
    }
    eprintln!(
        "done {} actions in {secs:.2} s ({:.0}/s), late {late}, failed {failed}",
        i - failed,
        (i - failed) as f64 / secs
    );
    Ok(())
}
