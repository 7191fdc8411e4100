//! The "became root" attacker: a process that holds CAP_SETUID (given to it as an ambient
//! capability, as an exploit or a careless launcher would) but no root uid and no setuid-root
//! executable, becomes root with a raw `setresuid(0, 0, 0)` in a thread other than its main one
//! (a raw system call changes only the calling thread; glibc's wrapper would change them all).
//!
//! ```sh
//! setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+setuid --ambient-caps=+setuid \
//!     become-root [SECONDS]
//! ```
//! Prints `thread <tid> is uid <uid>` and waits SECONDS (default 1) before exiting, so that the
//! process is still there to be looked at.

use std::time::Duration;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS"))
        .unwrap_or(1.0);
    let t = std::thread::spawn(|| {
        let tid = nix::unistd::gettid();
        match kernel::setresuid_this_thread(0) {
            Ok(()) => println!("thread {tid} is uid {}", nix::unistd::getuid()),
            Err(e) => {
                eprintln!("become-root: setresuid in thread {tid}: {e}");
                std::process::exit(1);
            }
        }
    });
    t.join().expect("the thread");
    std::thread::sleep(Duration::from_secs_f64(secs));
}

/// The one system call no safe wrapper makes for a single thread.
mod kernel {
    #![allow(unsafe_code)]

    /// `setresuid(uid, uid, uid)` for the calling thread only.
    pub(super) fn setresuid_this_thread(uid: libc::uid_t) -> std::io::Result<()> {
        // SAFETY: a raw system call with three integer arguments; it touches no memory of ours.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
