//! Fuzzes the parsers of `/proc` text: `/proc/<pid>/status`, `/proc/<pid>/cmdline`, the
//! `/proc/net/{tcp,tcp6,udp,udp6}` tables and `socket:[INODE]` fd links. Each gets the same bytes.
#![no_main]

use std::net::IpAddr;

use collectord::monitors::network::{parse_proc_net, socket_inode, Proto};
use collectord::monitors::process::proc_reader::{parse_status, split_cmdline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = parse_status(data) {
        // Only a text with a `Name:` line is a status file.
        assert!(data.split(|b| *b == b'\n').any(|l| l.starts_with(b"Name:")));
        let _ = format!("{s:?}");
    }

    // The arguments are the text between NULs, nothing lost and nothing added.
    let args = split_cmdline(data);
    let body = data.strip_suffix(b"\0").unwrap_or(data);
    if body.is_empty() {
        assert!(args.is_empty());
    } else {
        assert_eq!(args.join(&0u8), body);
    }

    let lines = data
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    for proto in Proto::ALL {
        let mut out = Vec::new();
        let malformed = parse_proc_net(data, proto, &mut out);
        // Every line past the header is a socket or counted as malformed.
        assert_eq!(out.len() + malformed, lines);
        for s in &out {
            assert_eq!(s.proto, proto);
            let v4 = matches!(proto, Proto::Tcp | Proto::Udp);
            assert_eq!(matches!(s.local, IpAddr::V4(_)), v4);
            assert_eq!(matches!(s.remote, IpAddr::V4(_)), v4);
            let _ = (s.key(), s.socket_state(), s.is_listening(), format!("{s:?}"));
        }
    }

    if let Some(inode) = socket_inode(data) {
        assert!(data.starts_with(b"socket:[") && data.ends_with(b"]"));
        let digits = &data[8..data.len() - 1];
        assert_eq!(
            std::str::from_utf8(digits).unwrap().parse::<u64>().unwrap(),
            inode
        );
    }
});
