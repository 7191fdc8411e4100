//! The fallback source: `/proc/net/{tcp,tcp6,udp,udp6}`, used only where the sock_diag socket
//! cannot be opened (or the kernel has no diag module for a protocol).
//!
//! Each line: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`, addresses as hex of
//! the in-kernel (network order) 32-bit words printed as native integers, ports in hex.

use std::path::Path;

use super::sock::{ip_from_bytes, Proto, Sock};

pub(super) fn path(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "/proc/net/tcp",
        Proto::Tcp6 => "/proc/net/tcp6",
        Proto::Udp => "/proc/net/udp",
        Proto::Udp6 => "/proc/net/udp6",
    }
}

/// Reads one table. A missing file (no IPv6 in this kernel) is an empty table.
pub(super) fn read(proto: Proto, out: &mut Vec<Sock>) -> std::io::Result<usize> {
    match std::fs::read(Path::new(path(proto))) {
        Ok(text) => Ok(parse(&text, proto, out)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Parses a table; returns the number of lines it could not read (the header excluded).
pub fn parse(text: &[u8], proto: Proto, out: &mut Vec<Sock>) -> usize {
    let mut malformed = 0;
    for line in text.split(|b| *b == b'\n').skip(1) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line, proto) {
            Some(s) => out.push(s),
            None => malformed += 1,
        }
    }
    malformed
}

fn parse_line(line: &[u8], proto: Proto) -> Option<Sock> {
    let line = std::str::from_utf8(line).ok()?;
    let mut f = line.split_ascii_whitespace();
    let _sl = f.next()?;
    let (local, local_port) = endpoint(f.next()?, proto)?;
    let (remote, remote_port) = endpoint(f.next()?, proto)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let _queues = f.next()?;
    let _timer = f.next()?;
    let _retransmits = f.next()?;
    let uid = f.next()?.parse().ok()?;
    let _timeout = f.next()?;
    let inode = f.next()?.parse().ok()?;
    Some(Sock {
        proto,
        state,
        local,
        local_port,
        remote,
        remote_port,
        uid,
        inode,
    })
}

fn endpoint(field: &str, proto: Proto) -> Option<(std::net::IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words = if proto.family() == super::sock::AF_INET {
        1
    } else {
        4
    };
    if addr.len() != words * 8 || !addr.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..words {
        let w = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    Some((ip_from_bytes(proto.family(), &bytes), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_real_lines() {
        let tcp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18534 1 0000000000000000 100 0 0 10 0
   1: 0100007F:B26E 0100007F:1F90 01 00000000:00000000 02:000AFC2B 00000000  1000        0 991234 2 0000000000000000 20 4 30 10 -1
";
        let mut out = Vec::new();
        assert_eq!(parse(tcp, Proto::Tcp, &mut out), 0);
        assert_eq!(out.len(), 2);
        assert!(out[0].is_listening());
        assert_eq!(out[0].local_port, 22);
        assert_eq!(out[0].inode, 18534);
        assert_eq!(out[1].local, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((out[1].local_port, out[1].remote_port), (45678, 8080));
        assert_eq!(out[1].uid, 1000);
        assert!(out[1].is_established_tcp());

        let tcp6 = b"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 6666 1 0000000000000000 100 0 0 10 0
";
        let mut out = Vec::new();
        assert_eq!(parse(tcp6, Proto::Tcp6, &mut out), 0);
        assert_eq!(out[0].local, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(out[0].local_port, 8080);
        assert_eq!(out[1].local, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_lines_are_counted() {
        let text = b"header\nnonsense\n 0: zz:zz 00000000:0000 0A\n\n 1: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 77\n";
        let mut out = Vec::new();
        assert_eq!(parse(text, Proto::Tcp, &mut out), 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].inode, 77);
        let mut out = Vec::new();
        assert_eq!(parse(b"", Proto::Udp6, &mut out), 0);
        assert_eq!(parse(b"h\n\xff\xfe", Proto::Udp6, &mut out), 1);
    }

    /// Our own listener is in the live table, as it is in the sock_diag dump.
    #[test]
    fn live_table_has_our_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut out = Vec::new();
        assert_eq!(read(Proto::Tcp, &mut out).unwrap(), 0);
        assert!(out.iter().any(|s| s.local_port == port && s.is_listening()));
    }
}
