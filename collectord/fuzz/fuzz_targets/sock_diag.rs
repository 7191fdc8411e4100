//! Fuzzes the `NETLINK_SOCK_DIAG` dump decoder (`parse_dump`, `parse_diag_msg`).
//!
//! Input: one control byte, then the datagram. Bit 0 of the control byte: UDP (else TCP) dump.
//! The request seq is the first message's seq (so the messages are mostly "ours"), or another
//! one when bit 1 is set (stale answers). Never panics; every socket decoded is consistent with
//! the bytes it came from.
#![no_main]

use std::net::IpAddr;

use collectord::monitors::network::{parse_diag_msg, parse_dump, Sock, DIAG_MSG_LEN};
use libfuzzer_sys::fuzz_target;

const NLMSG_HDR_LEN: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, buf)) = data.split_first() else {
        return;
    };
    let udp = ctl & 1 != 0;
    let mut seq = buf
        .get(8..12)
        .map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap()));
    if ctl & 2 != 0 {
        seq = seq.wrapping_add(1);
    }

    let mut out = Vec::new();
    let p = parse_dump(buf, seq, udp, &mut out);
    // Each socket came from its own message of at least header + inet_diag_msg bytes.
    assert!(out.len() * (NLMSG_HDR_LEN + DIAG_MSG_LEN) <= buf.len());
    // Every message is counted at most once, and a message is at least a header.
    assert!(out.len() + p.malformed + p.stale <= buf.len() / NLMSG_HDR_LEN + 1);
    if p.error.is_some() {
        assert!(p.done);
        assert!(p.error.unwrap() != 0);
    }
    for s in &out {
        check(s, udp);
    }

    // The message decoder alone, on the raw bytes.
    for (payload, udp) in [(buf, udp), (data, !udp)] {
        match parse_diag_msg(payload, udp) {
            Some(s) => {
                assert!(payload.len() >= DIAG_MSG_LEN);
                check(&s, udp);
                assert_eq!(s.state, payload[1]);
                assert_eq!(s.local_port, u16::from_be_bytes([payload[4], payload[5]]));
                assert_eq!(s.remote_port, u16::from_be_bytes([payload[6], payload[7]]));
                let ne = |at: usize| u32::from_ne_bytes(payload[at..at + 4].try_into().unwrap());
                assert_eq!(s.uid, ne(64));
                assert_eq!(s.inode, u64::from(ne(68)));
            }
            None => assert!(payload.len() < DIAG_MSG_LEN || !matches!(payload[0], 2 | 10)),
        }
    }
});

fn check(s: &Sock, udp: bool) {
    assert_eq!(s.proto.is_udp(), udp);
    let v4 = s.proto.family() == 2;
    assert_eq!(matches!(s.local, IpAddr::V4(_)), v4);
    assert_eq!(matches!(s.remote, IpAddr::V4(_)), v4);
    assert!(s.inode <= u64::from(u32::MAX));
    let _ = (s.key(), s.socket_state(), s.is_listening(), format!("{s:?}"));
}
