//! The connection-exhaustion attacker: opens N connections to a daemon's Unix socket and holds
//! them, idle, for SECONDS, as a member of the readers' group could.
//!
//! ```sh
//! hold-connections SOCKET N SECONDS
//! ```
//! Raises its own descriptor limit to the hard limit first. Prints `connected C` once it has
//! tried all N (C: how many the kernel accepted), then, at the end, `still-open S` (how many the
//! daemon had not closed).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, n, secs] = args.as_slice() else {
        eprintln!("usage: hold-connections SOCKET N SECONDS");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let secs: f64 = secs.parse().expect("SECONDS");
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let mut held: Vec<UnixStream> = (0..n)
        .filter_map(|_| UnixStream::connect(socket).ok())
        .collect();
    println!("connected {}", held.len());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let mut open = 0;
    for s in &mut held {
        s.set_nonblocking(true).ok();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            _ => {}
        }
    }
    println!("still-open {open}");
}
