//! `NETLINK_SOCK_DIAG`: one `SOCK_DIAG_BY_FAMILY` dump request (`inet_diag_req_v2`, all states)
//! per (family, protocol), answered by one `inet_diag_msg` per socket.
//!
//! Decoding is plain byte parsing of `nlmsghdr` + `inet_diag_msg` (header fields native endian,
//! ports and addresses big-endian), kept as a pure function so it can be fuzzed. Attributes after
//! the fixed message are ignored (we ask for none).

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::sock::{ip_from_bytes, Proto, Sock};
use crate::netlink::{u32_ne, Messages, NLMSG_HDR_LEN};

const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// The dump was interrupted by a change: its content may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// `struct inet_diag_req_v2`.
const REQ_LEN: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue,
/// uid, inode.
pub const DIAG_MSG_LEN: usize = 72;
const RECV_BUFFER: usize = 64 * 1024;

/// The request for every socket of one protocol and family, in every state.
pub(super) fn request(proto: Proto, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDR_LEN + REQ_LEN);
    m.extend_from_slice(&((NLMSG_HDR_LEN + REQ_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.push(proto.family());
    m.push(if proto.is_udp() {
        IPPROTO_UDP
    } else {
        IPPROTO_TCP
    });
    m.push(0); // idiag_ext: no extensions
    m.push(0); // pad
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // idiag_states: all
    m.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: no filter
    m
}

/// `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY` (groups 1 and 3) as a bind mask.
const TCP_DESTROY_GROUPS: u32 = 1 << 0 | 1 << 2;
/// Room for the destroy broadcasts between two drains (~100 B each; a busy host's second).
const DESTROY_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The kernel's broadcast of every TCP socket it destroys (no privilege needed), for the
/// connections that open and close between two scans. Non-blocking: drained on a timer.
pub(crate) struct DestroyListener {
    socket: Socket,
    buf: Vec<u8>,
    /// Messages skipped as malformed, in total.
    pub malformed: u64,
}

/// What one drain found.
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// The kernel dropped broadcasts because the receive buffer was full (times).
    pub overruns: u64,
}

impl DestroyListener {
    pub(crate) fn open() -> io::Result<DestroyListener> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind(&SocketAddr::new(0, TCP_DESTROY_GROUPS))?;
        let _ = socket.set_rx_buf_sz(DESTROY_BUFFER_BYTES as libc::c_int);
        socket.set_non_blocking(true)?;
        Ok(DestroyListener {
            socket,
            buf: vec![0u8; RECV_BUFFER],
            malformed: 0,
        })
    }

    /// Appends every TCP socket destroyed since the last drain to `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<Sock>) -> io::Result<Drained> {
        let mut d = Drained::default();
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                match self.socket.recv(&mut slice, 0) {
                    Ok(n) => n.min(self.buf.len()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        d.overruns += 1;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(d),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            let mut messages = Messages::new(&self.buf[..n]);
            for m in messages.by_ref() {
                match (m.kind, parse_diag_msg(m.payload, false)) {
                    (SOCK_DIAG_BY_FAMILY, Some(s)) => out.push(s),
                    _ => self.malformed += 1,
                }
            }
            if messages.malformed() {
                self.malformed += 1;
            }
        }
    }
}

/// `struct unix_diag_req` for the one socket with `inode` (any state, no attributes, no cookie).
fn unix_exact_request(inode: u32, seq: u32) -> Vec<u8> {
    const AF_UNIX: u8 = 1;
    const UNIX_REQ_LEN: usize = 24;
    let mut m = Vec::with_capacity(NLMSG_HDR_LEN + UNIX_REQ_LEN);
    m.extend_from_slice(&((NLMSG_HDR_LEN + UNIX_REQ_LEN) as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.push(AF_UNIX);
    m.push(0); // protocol
    m.extend_from_slice(&0u16.to_ne_bytes()); // pad
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // states: all
    m.extend_from_slice(&inode.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // show: nothing more
    m.extend_from_slice(&[0xff; 8]); // cookie: none (INET_DIAG_NOCOOKIE)
    m
}

/// What one datagram of a dump held besides the sockets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// NLMSG_DONE (or an error) seen: the dump is over.
    pub done: bool,
    /// The kernel's error for the request (a positive errno).
    pub error: Option<i32>,
    /// The kernel flagged the dump as interrupted by concurrent changes.
    pub interrupted: bool,
    /// Truncated messages, unknown types, foreign families: skipped and counted.
    pub malformed: usize,
    /// Messages answering another request (a dump abandoned earlier): skipped.
    pub stale: usize,
}

/// Decodes every message of one datagram of the answer to request `seq` for `udp` sockets.
/// Never panics; anything it cannot make sense of is counted in `malformed`.
pub fn parse_dump(buf: &[u8], seq: u32, udp: bool, out: &mut Vec<Sock>) -> Parsed {
    let mut p = Parsed::default();
    let mut messages = Messages::new(buf);
    for m in messages.by_ref() {
        if m.seq != seq {
            p.stale += 1;
            continue;
        }
        if m.flags & NLM_F_DUMP_INTR != 0 {
            p.interrupted = true;
        }
        match m.kind {
            SOCK_DIAG_BY_FAMILY => match parse_diag_msg(m.payload, udp) {
                Some(s) => out.push(s),
                None => p.malformed += 1,
            },
            NLMSG_DONE => p.done = true,
            NLMSG_ERROR => match m.payload.get(0..4) {
                Some(b) => {
                    let errno = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                    // 0 is an acknowledgement, not an error.
                    if errno != 0 {
                        p.error = Some(errno.saturating_neg());
                        p.done = true;
                    }
                }
                None => p.malformed += 1,
            },
            NLMSG_NOOP => {}
            _ => p.malformed += 1,
        }
    }
    if messages.malformed() {
        p.malformed += 1;
    }
    p
}

/// One `inet_diag_msg`.
pub fn parse_diag_msg(p: &[u8], udp: bool) -> Option<Sock> {
    if p.len() < DIAG_MSG_LEN {
        return None;
    }
    let family = p[0];
    let proto = Proto::new(udp, family)?;
    let addr = |at: usize| -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(&p[at..at + 16]);
        a
    };
    Some(Sock {
        proto,
        state: p[1],
        local_port: u16::from_be_bytes([p[4], p[5]]),
        remote_port: u16::from_be_bytes([p[6], p[7]]),
        local: ip_from_bytes(family, &addr(8)),
        remote: ip_from_bytes(family, &addr(24)),
        uid: u32_ne(p, 64),
        inode: u64::from(u32_ne(p, 68)),
    })
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    #[error("sock_diag: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the request: for `ENOENT` it has no diag module for the protocol.
    #[error("sock_diag refused the {proto} dump: {}", io::Error::from_raw_os_error(*.errno))]
    Refused { proto: &'static str, errno: i32 },
    #[error("sock_diag: a {0}-byte answer did not fit the receive buffer")]
    Truncated(usize),
    #[error("sock_diag: the {0} dump was interrupted by changes three times running")]
    Interrupted(&'static str),
}

/// An open `NETLINK_SOCK_DIAG` socket.
pub(crate) struct DiagSocket {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
    /// Messages skipped as malformed, in total.
    pub malformed: u64,
}

impl DiagSocket {
    pub(crate) fn open(read_timeout: Duration) -> io::Result<DiagSocket> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let tv = TimeVal::new(
            read_timeout.as_secs() as i64,
            read_timeout.subsec_micros() as i64,
        );
        setsockopt(&socket, sockopt::ReceiveTimeout, &tv).map_err(io::Error::from)?;
        Ok(DiagSocket {
            socket,
            buf: vec![0u8; RECV_BUFFER],
            seq: 0,
            malformed: 0,
        })
    }

    /// Appends every socket of `proto` to `out`. A dump the kernel flags as interrupted is
    /// retried, so that a socket is never missing from a scan (which would read as closed).
    pub(super) fn dump(&mut self, proto: Proto, out: &mut Vec<Sock>) -> Result<(), DumpError> {
        let start = out.len();
        for _ in 0..3 {
            out.truncate(start);
            if !self.dump_once(proto, out)? {
                return Ok(());
            }
        }
        out.truncate(start);
        Err(DumpError::Interrupted(proto.as_str()))
    }

    /// The inet socket (tcp, tcp6, udp, udp6) whose inode is `inode`, from a dump of each
    /// protocol in turn: for the rare question "what is this socket", not for scans.
    pub(crate) fn find_inet(&mut self, inode: u64) -> Result<Option<Sock>, DumpError> {
        let mut all = Vec::new();
        for proto in Proto::ALL {
            all.clear();
            self.dump(proto, &mut all)?;
            if let Some(s) = all.iter().find(|s| s.inode == inode) {
                return Ok(Some(s.clone()));
            }
        }
        Ok(None)
    }

    /// Whether `inode` is a Unix socket's: one exact lookup (`unix_diag_req` with the inode,
    /// no dump), cheap enough to ask at an exec.
    pub(crate) fn is_unix(&mut self, inode: u64) -> io::Result<bool> {
        let Ok(inode) = u32::try_from(inode) else {
            return Ok(false);
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&unix_exact_request(inode, seq), 0)?;
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                self.socket.recv(&mut slice, 0)?
            };
            for m in Messages::new(&self.buf[..n.min(self.buf.len())]) {
                if m.seq != seq {
                    continue;
                }
                return Ok(m.kind == SOCK_DIAG_BY_FAMILY);
            }
        }
    }

    /// Returns whether the dump was interrupted.
    fn dump_once(&mut self, proto: Proto, out: &mut Vec<Sock>) -> Result<bool, DumpError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&request(proto, seq), 0)?;
        let mut interrupted = false;
        loop {
            let n = {
                let mut slice = &mut self.buf[..];
                // MSG_TRUNC: the real length even when it did not fit.
                self.socket.recv(&mut slice, libc::MSG_TRUNC)?
            };
            if n > self.buf.len() {
                return Err(DumpError::Truncated(n));
            }
            let p = parse_dump(&self.buf[..n], seq, proto.is_udp(), out);
            self.malformed += p.malformed as u64;
            interrupted |= p.interrupted;
            if let Some(errno) = p.error {
                return Err(DumpError::Refused {
                    proto: proto.as_str(),
                    errno,
                });
            }
            if p.done {
                return Ok(interrupted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::network::sock::{AF_INET, AF_INET6, TCP_LISTEN};
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn diag_msg(family: u8, state: u8, sport: u16, dport: u16, src: &[u8], dst: &[u8]) -> Vec<u8> {
        let mut m = vec![family, state, 0, 0];
        m.extend_from_slice(&sport.to_be_bytes());
        m.extend_from_slice(&dport.to_be_bytes());
        let mut a = [0u8; 16];
        a[..src.len()].copy_from_slice(src);
        m.extend_from_slice(&a);
        let mut a = [0u8; 16];
        a[..dst.len()].copy_from_slice(dst);
        m.extend_from_slice(&a);
        m.extend_from_slice(&[0u8; 4 + 8]); // if, cookie
        m.extend_from_slice(&[0u8; 12]); // expires, rqueue, wqueue
        m.extend_from_slice(&1000u32.to_ne_bytes()); // uid
        m.extend_from_slice(&424242u32.to_ne_bytes()); // inode
        assert_eq!(m.len(), DIAG_MSG_LEN);
        m
    }

    fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&77u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn request_layout() {
        let r = request(Proto::Udp6, 9);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_ne(&r, 0), 72);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        assert_eq!(u32_ne(&r, 8), 9);
        assert_eq!((r[16], r[17]), (AF_INET6, IPPROTO_UDP));
        assert_eq!(u32_ne(&r, 20), u32::MAX);
    }

    #[test]
    fn decodes_v4_and_v6_sockets_then_done() {
        let mut buf = nlmsg(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_DUMP,
            5,
            &diag_msg(AF_INET, TCP_LISTEN, 8080, 0, &[127, 0, 0, 1], &[]),
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        let mut with_attr = diag_msg(AF_INET6, 1, 40000, 443, &v6, &v6);
        with_attr.extend_from_slice(&[5, 0, 8, 0, 0, 0, 0, 0]); // an attribute, ignored
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, 5, &with_attr));
        buf.extend(nlmsg(NLMSG_DONE, NLM_F_DUMP, 5, &0i32.to_ne_bytes()));
        let mut out = Vec::new();
        let p = parse_dump(&buf, 5, false, &mut out);
        assert_eq!(
            p,
            Parsed {
                done: true,
                ..Default::default()
            }
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].proto, Proto::Tcp);
        assert_eq!(out[0].local, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(out[0].local_port, 8080);
        assert_eq!(out[0].remote_port, 0);
        assert_eq!(out[0].uid, 1000);
        assert_eq!(out[0].inode, 424242);
        assert!(out[0].is_listening());
        assert_eq!(out[1].proto, Proto::Tcp6);
        assert_eq!(out[1].local, "::1".parse::<IpAddr>().unwrap());
        assert_eq!((out[1].local_port, out[1].remote_port), (40000, 443));
        assert!(out[1].is_established_tcp());
    }

    #[test]
    fn errors_interruptions_and_stale_answers() {
        let mut out = Vec::new();
        let err = nlmsg(NLMSG_ERROR, 0, 3, &(-2i32).to_ne_bytes());
        let p = parse_dump(&err, 3, true, &mut out);
        assert_eq!((p.done, p.error), (true, Some(2)));
        let ack = nlmsg(NLMSG_ERROR, 0, 3, &0i32.to_ne_bytes());
        assert_eq!(parse_dump(&ack, 3, true, &mut out), Parsed::default());
        let msg = diag_msg(AF_INET, 7, 53, 0, &[0; 4], &[]);
        let stale = nlmsg(SOCK_DIAG_BY_FAMILY, 0, 2, &msg);
        assert_eq!(parse_dump(&stale, 3, true, &mut out).stale, 1);
        assert!(out.is_empty());
        let intr = nlmsg(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP_INTR, 3, &msg);
        assert!(parse_dump(&intr, 3, true, &mut out).interrupted);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].proto, Proto::Udp);
        assert!(out[0].is_listening());
    }

    #[test]
    fn truncated_and_garbage_input_is_counted_not_a_panic() {
        let msg = diag_msg(AF_INET, 1, 1, 2, &[10, 0, 0, 1], &[10, 0, 0, 2]);
        let good = nlmsg(SOCK_DIAG_BY_FAMILY, 0, 1, &msg);
        for cut in 1..good.len() {
            let mut out = Vec::new();
            let p = parse_dump(&good[..cut], 1, false, &mut out);
            assert!(out.is_empty(), "cut at {cut}");
            assert_eq!(p.malformed, 1, "cut at {cut}");
        }
        // The header claims a short payload: too short for an inet_diag_msg, and what follows
        // it is no message either.
        let mut short = good.clone();
        short[0..4].copy_from_slice(&40u32.to_ne_bytes());
        let mut out = Vec::new();
        assert_eq!(parse_dump(&short, 1, false, &mut out).malformed, 2);
        assert!(out.is_empty());
        // A family that is not inet.
        let mut foreign = good.clone();
        foreign[NLMSG_HDR_LEN] = 1;
        assert_eq!(parse_dump(&foreign, 1, false, &mut out).malformed, 1);
        // An unknown message type, then a good one: the good one still counts.
        let mut mixed = nlmsg(999, 0, 1, &[1, 2, 3]);
        mixed.extend_from_slice(&good);
        assert_eq!(parse_dump(&mixed, 1, false, &mut out).malformed, 1);
        assert_eq!(out.len(), 1);
        // A length of 0 would loop forever if it were trusted.
        let mut zero = good;
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_dump(&zero, 1, false, &mut out).malformed, 1);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600),
                                    seq in 0u32..4, udp in any::<bool>()) {
            let mut out = Vec::new();
            let p = parse_dump(&buf, seq, udp, &mut out);
            // Every socket decoded came from at least one full inet_diag message.
            prop_assert!(out.len() * (NLMSG_HDR_LEN + DIAG_MSG_LEN) <= buf.len() + 3);
            prop_assert!(p.malformed <= buf.len() / NLMSG_HDR_LEN + 1);
        }

        #[test]
        fn random_payloads_in_valid_frames_never_panic(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..8)) {
            let mut buf = Vec::new();
            for p in &payloads {
                buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 0, 1, p));
            }
            let mut out = Vec::new();
            let p = parse_dump(&buf, 1, false, &mut out);
            prop_assert_eq!(out.len() + p.malformed, payloads.len());
        }
    }

    /// The real kernel: a listener of ours is in the dump with its inode. sock_diag needs no
    /// privilege for inet sockets, so this runs as any user.
    #[test]
    fn kernel_dump_finds_our_listener() {
        use std::os::fd::AsFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inode = nix::sys::stat::fstat(l.as_fd()).unwrap().st_ino;
        let mut d = match DiagSocket::open(Duration::from_secs(2)) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("SKIPPED kernel_dump_finds_our_listener: no sock_diag here ({e})");
                return;
            }
        };
        let mut out = Vec::new();
        d.dump(Proto::Tcp, &mut out).unwrap();
        let me = out
            .iter()
            .find(|s| s.local_port == port && s.is_listening())
            .expect("our listener in the dump");
        assert_eq!(me.inode, inode);
        assert_eq!(me.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(d.malformed, 0);
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;
    use std::os::fd::AsFd;

    /// What a process's stdio socket is, as the process monitor asks it at an exec: a Unix
    /// socket (journald's stream, an ssh session's socketpair) is told apart by one exact
    /// lookup, and a TCP connection is found with its peer.
    #[test]
    fn a_unix_socket_and_a_tcp_connection_are_told_apart_by_inode() {
        let Ok(mut d) = DiagSocket::open(Duration::from_secs(2)) else {
            eprintln!("SKIPPED: no sock_diag here");
            return;
        };
        let ino = |fd: std::os::fd::BorrowedFd<'_>| nix::sys::stat::fstat(fd).unwrap().st_ino;
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(d.is_unix(ino(a.as_fd())).unwrap());
        assert!(!d.is_unix(ino(c.as_fd())).unwrap());
        let found = d
            .find_inet(ino(c.as_fd()))
            .unwrap()
            .expect("the connection");
        assert_eq!(found.remote_port, l.local_addr().unwrap().port());
        assert!(d.find_inet(ino(a.as_fd())).unwrap().is_none());
    }
}
