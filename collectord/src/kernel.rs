//! The only place collectord uses `unsafe`: calls into the kernel that neither `nix` nor the
//! other crates wrap. Each block is a single libc call with arguments owned by this function.
#![allow(unsafe_code)]

use std::io;

/// Puts the calling thread under `SCHED_FIFO` at `priority`, so it runs the moment the kernel
/// wakes it. Used for the process-connector reader: it must read `/proc/<pid>/cmdline` before a
/// short-lived process exits. Needs CAP_SYS_NICE.
pub fn set_thread_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 means the calling thread; `param` is a valid, initialised sched_param that
    // outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
