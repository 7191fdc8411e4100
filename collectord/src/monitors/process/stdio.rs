//! What a new process's standard input and output are connected to: a shell that reads its
//! commands from a network socket is a reverse shell (`bash -i >& /dev/tcp/…`, `nc -e /bin/sh`,
//! a Python one-liner that dup2s a socket and runs `sh`).
//!
//! At each exec the links of fds 0–2 are read (three readlinks, nothing more for pipes and
//! terminals). A socket is looked into only when it is not a Unix one: services write to
//! journald over Unix sockets and sshd runs commands over a socketpair, so those are told apart
//! first by one exact sock_diag lookup, and remembered (a service's children share its socket).
//! Only an inet socket costs a dump, to name its peer.

use std::collections::VecDeque;
use std::time::Duration;

use super::proc_reader::ProcDir;
use crate::monitors::network::{socket_inode, DiagSocket, SocketEndpoint};

/// Unix socket inodes remembered: the journald streams of the services running now.
const UNIX_REMEMBERED: usize = 256;

pub(super) struct StdioSockets {
    diag: Option<DiagSocket>,
    /// Opening was tried (and failed when `diag` is None): not retried at every exec.
    tried: bool,
    unix: VecDeque<u64>,
}

impl StdioSockets {
    pub(super) fn new() -> StdioSockets {
        StdioSockets {
            diag: None,
            tried: false,
            unix: VecDeque::with_capacity(UNIX_REMEMBERED),
        }
    }

    /// The first network socket among fds 0–2 of the process: `tcp 203.0.113.5:4444` (its peer),
    /// `socket` when sock_diag cannot say what it is; empty when none is.
    pub(super) fn describe(&mut self, dir: &ProcDir) -> String {
        let mut seen = [0u64; 3];
        for (fd, name) in ["fd/0", "fd/1", "fd/2"].into_iter().enumerate() {
            let Some(inode) = socket_inode(&dir.link(name)) else {
                continue;
            };
            if seen.contains(&inode) || self.unix.contains(&inode) {
                continue;
            }
            seen[fd] = inode;
            let Some(diag) = self.diag() else {
                return "socket".into();
            };
            match diag.is_unix(inode) {
                Ok(true) => {
                    if self.unix.len() == UNIX_REMEMBERED {
                        self.unix.pop_front();
                    }
                    self.unix.push_back(inode);
                    continue;
                }
                Ok(false) => {}
                Err(_) => return "socket".into(),
            }
            match diag.find_inet(inode) {
                Ok(Some(s)) => {
                    return format!(
                        "{} {}",
                        s.proto.as_str(),
                        SocketEndpoint(&s.remote, s.remote_port)
                    )
                }
                // Gone meanwhile, or netlink, packet, vsock…: not a network peer to name.
                Ok(None) => {}
                Err(_) => return "socket".into(),
            }
        }
        String::new()
    }

    fn diag(&mut self) -> Option<&mut DiagSocket> {
        if !self.tried {
            self.tried = true;
            match DiagSocket::open(Duration::from_secs(1)) {
                Ok(d) => self.diag = Some(d),
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot open sock_diag: a process's stdio sockets will be reported without their peer"
                ),
            }
        }
        self.diag.as_mut()
    }
}
