//! The flooder: an attacker who can write in a watched directory renames a file back and forth
//! there as fast as one core allows, for SECONDS, to push what they did before out of the
//! agent's buffers with INFO events (one "renamed" event per rename).
//!
//! ```sh
//! rename-flood DIR SECONDS
//! ```
//! Prints `renames N seconds S` to stdout. Meant to run as an unprivileged user (setpriv).

use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, secs] = args.as_slice() else {
        eprintln!("usage: rename-flood DIR SECONDS");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let secs: f64 = secs.parse().expect("SECONDS");
    let (a, b) = (dir.join("flood-a"), dir.join("flood-b"));
    std::fs::write(&a, b"").expect("create the file to rename");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut renames = 0u64;
    while Instant::now() < end {
        for _ in 0..500 {
            std::fs::rename(&a, &b).expect("rename");
            std::fs::rename(&b, &a).expect("rename back");
        }
        renames += 1000;
    }
    println!(
        "renames {renames} seconds {:.3}",
        start.elapsed().as_secs_f64()
    );
}
