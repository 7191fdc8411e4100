//! One socket as both sources (sock_diag and `/proc/net/*`) describe it, and how it is shown.

use sec_tracker_proto::v1::SocketState;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(super) const AF_INET: u8 = 2;
pub(super) const AF_INET6: u8 = 10;

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
pub(super) const TCP_ESTABLISHED: u8 = 1;
pub(super) const TCP_CLOSE: u8 = 7;
pub(super) const TCP_LISTEN: u8 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Tcp6,
    Udp,
    Udp6,
}

impl Proto {
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Tcp6, Proto::Udp, Proto::Udp6];

    pub fn new(udp: bool, family: u8) -> Option<Proto> {
        Some(match (udp, family) {
            (false, AF_INET) => Proto::Tcp,
            (false, AF_INET6) => Proto::Tcp6,
            (true, AF_INET) => Proto::Udp,
            (true, AF_INET6) => Proto::Udp6,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Tcp6 => "tcp6",
            Proto::Udp => "udp",
            Proto::Udp6 => "udp6",
        }
    }

    pub fn is_udp(self) -> bool {
        matches!(self, Proto::Udp | Proto::Udp6)
    }

    pub fn family(self) -> u8 {
        match self {
            Proto::Tcp | Proto::Udp => AF_INET,
            Proto::Tcp6 | Proto::Udp6 => AF_INET6,
        }
    }
}

/// A socket from one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sock {
    pub proto: Proto,
    pub state: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub uid: u32,
    /// 0 for a socket no file refers to (TIME_WAIT, orphaned, not yet accepted).
    pub inode: u64,
}

/// What a socket is tracked by: a re-used 4-tuple with a new socket (inode) is a new socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub proto: Proto,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub inode: u64,
}

impl Sock {
    pub fn key(&self) -> Key {
        Key {
            proto: self.proto,
            local: self.local,
            local_port: self.local_port,
            remote: self.remote,
            remote_port: self.remote_port,
            inode: self.inode,
        }
    }

    /// TCP LISTEN, or a UDP socket bound to a port with no peer: both wait for anyone.
    pub fn is_listening(&self) -> bool {
        if self.proto.is_udp() {
            self.local_port != 0 && self.remote_port == 0 && self.remote.is_unspecified()
        } else {
            self.state == TCP_LISTEN
        }
    }

    pub fn is_established_tcp(&self) -> bool {
        !self.proto.is_udp() && self.state == TCP_ESTABLISHED
    }

    pub fn socket_state(&self) -> SocketState {
        if self.proto.is_udp() {
            match self.state {
                TCP_ESTABLISHED => SocketState::Established,
                TCP_CLOSE => SocketState::Unconn,
                _ => SocketState::Unknown,
            }
        } else {
            tcp_state(self.state)
        }
    }
}

/// The kernel's TCP state numbers are the contract's `SocketState` values.
pub(super) fn tcp_state(state: u8) -> SocketState {
    SocketState::try_from(i32::from(state))
        .ok()
        .filter(|s| (1..=12).contains(&(*s as i32)))
        .unwrap_or(SocketState::Unknown)
}

/// An address as text. An IPv4-mapped IPv6 address (a dual-stack socket talking IPv4) is shown
/// as the IPv4 address it is, so `127.0.0.1` reads the same whichever socket carried it; the
/// protocol (`tcp6`) still says which kind of socket it was.
pub(super) fn addr_text(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
    }
}

/// `addr:port`, with brackets around an IPv6 address.
pub(crate) struct Endpoint<'a>(pub &'a IpAddr, pub u16);

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = addr_text(self.0);
        if text.contains(':') {
            write!(f, "[{text}]:{}", self.1)
        } else {
            write!(f, "{text}:{}", self.1)
        }
    }
}

/// 16 bytes in network order as the kernel gives them; for IPv4 the first 4 are the address.
pub(super) fn ip_from_bytes(family: u8, b: &[u8; 16]) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_sensibly() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(addr_text(&mapped), "127.0.0.1");
        assert_eq!(Endpoint(&mapped, 80).to_string(), "127.0.0.1:80");
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(Endpoint(&v6, 8080).to_string(), "[::1]:8080");
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(Endpoint(&any, 22).to_string(), "0.0.0.0:22");
    }

    #[test]
    fn listening_means_tcp_listen_or_unconnected_udp() {
        let any4: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let s = |proto, state, rport, remote| Sock {
            proto,
            state,
            local: lo,
            local_port: 53,
            remote,
            remote_port: rport,
            uid: 0,
            inode: 1,
        };
        assert!(s(Proto::Tcp, TCP_LISTEN, 0, any4).is_listening());
        assert!(!s(Proto::Tcp, TCP_ESTABLISHED, 9, lo).is_listening());
        assert!(s(Proto::Udp, TCP_CLOSE, 0, any4).is_listening());
        assert!(!s(Proto::Udp, TCP_ESTABLISHED, 53, lo).is_listening());
        assert!(!s(Proto::Udp, TCP_ESTABLISHED, 53, lo).is_established_tcp());
        assert_eq!(
            s(Proto::Udp, TCP_CLOSE, 0, any4).socket_state(),
            SocketState::Unconn
        );
        assert_eq!(
            s(Proto::Tcp6, 8, 1, lo).socket_state(),
            SocketState::CloseWait
        );
        assert_eq!(tcp_state(12), SocketState::NewSynRecv);
        assert_eq!(tcp_state(20), SocketState::Unknown);
    }
}
