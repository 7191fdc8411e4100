//! The only place this crate uses `unsafe`: `SO_PEERGROUPS`, which neither `nix` nor `tokio`
//! wraps. One `getsockopt` call on a descriptor the caller borrows, into a buffer this function
//! owns.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` (Linux 4.13+); 59 in asm-generic, which x86_64 and aarch64 use.
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups the peer of a connected Unix socket had when it connected, as the
/// kernel recorded them: unlike `/proc/<pid>/status`, they cannot change under us or belong to a
/// recycled pid.
pub(crate) fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a live, writable buffer of exactly `len` bytes; the kernel writes at
        // most `len` bytes and sets `len` to what it wrote (or, on ERANGE, what it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ERANGE) && count > groups.len() && count <= 65_536 {
            groups.resize(count, 0);
            continue;
        }
        return Err(e);
    }
}
