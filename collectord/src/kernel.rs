//! The only place collectord uses `unsafe`: calls into the kernel that neither `nix` nor the
//! other crates wrap. Each block is a single libc call with arguments owned by this function.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

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

/// The file handle of the directory open at `dir` (`name_to_handle_at` with `AT_EMPTY_PATH`): its
/// type (4 bytes, native order) then its bytes, as fanotify reports a directory in names mode.
/// Needs no privilege.
pub fn dir_handle(dir: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    const MAX_HANDLE_SZ: usize = 128;
    // struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[]; },
    // laid out in u32s for its alignment.
    let mut words = [0u32; 2 + MAX_HANDLE_SZ / 4];
    words[0] = MAX_HANDLE_SZ as u32;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `words` is a properly aligned file_handle with room for MAX_HANDLE_SZ handle bytes,
    // as `handle_bytes` tells the kernel; the path is a valid empty C string; `mount_id` is a
    // valid int; all outlive the call, and `dir` is an open descriptor.
    let rc = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            c"".as_ptr(),
            words.as_mut_ptr().cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (words[0] as usize).min(MAX_HANDLE_SZ);
    let bytes: Vec<u8> = words[1..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    // handle_type, then the handle's bytes.
    Ok(bytes[..4 + len].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_directory_has_a_stable_handle() {
        let d = tempfile::tempdir().unwrap();
        let a = std::fs::File::open(d.path()).unwrap();
        let b = std::fs::File::open(d.path()).unwrap();
        let h = dir_handle(a.as_fd()).unwrap();
        assert!(h.len() > 4);
        assert_eq!(h, dir_handle(b.as_fd()).unwrap());
        let other = tempfile::tempdir().unwrap();
        let c = std::fs::File::open(other.path()).unwrap();
        assert_ne!(h, dir_handle(c.as_fd()).unwrap());
    }
}
