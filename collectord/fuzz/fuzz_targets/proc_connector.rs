//! Fuzzes the process connector's datagram decoder (`parse_datagram`), the parser of every
//! message the kernel pushes for a fork, exec, uid/gid change and exit.
//!
//! Each input is used twice:
//! - as a raw datagram: never panics, and every event or malformed count comes from a message of
//!   its own (so the counts cannot exceed what the bytes can hold);
//! - as a description of events (29 bytes each: kind, timestamp, five fields), encoded the way the
//!   kernel lays them out (`nlmsghdr` + `cn_msg` + `proc_event`, native endian, 4-byte aligned) into
//!   one datagram: decoding it gives back exactly those events, with nothing malformed.
#![no_main]

use collectord::monitors::process::{parse_datagram, ProcEvent};
use libfuzzer_sys::fuzz_target;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_DONE: u16 = 3;
/// `struct proc_event` header: what (u32), cpu (u32), timestamp_ns (u64).
const PROC_EVENT_HDR_LEN: usize = 16;
/// The largest member of `proc_event`'s union (exit: pid, tgid, code, signal, parent pid, tgid).
const PROC_EVENT_DATA_LEN: usize = 24;
const DESCRIPTION_LEN: usize = 29;
/// `nlmsghdr` + `cn_msg` + the `proc_event` header.
const MIN_EVENT_MESSAGE_LEN: usize = NLMSG_HDR_LEN + 20 + PROC_EVENT_HDR_LEN;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let malformed = parse_datagram(data, &mut out);
    // Each message counted, event or malformed, took at least a header's bytes; an event, a
    // whole message of its own (header, cn_msg, proc_event header).
    // (Plus one: a trailing piece shorter than a header is counted malformed too.)
    assert!(out.len() + malformed <= data.len() / NLMSG_HDR_LEN + 1);
    assert!(out.len() * MIN_EVENT_MESSAGE_LEN <= data.len());
    for ev in &out {
        let _ = format!("{ev:?}");
    }

    let (datagram, expected) = encode(data);
    let mut decoded = Vec::new();
    assert_eq!(parse_datagram(&datagram, &mut decoded), 0, "a well-formed datagram");
    assert_eq!(decoded, expected);
});

/// The kernel's encoding of the events `data` describes, and the events the decoder must give.
fn encode(data: &[u8]) -> (Vec<u8>, Vec<ProcEvent>) {
    let mut datagram = Vec::new();
    let mut expected = Vec::new();
    for (seq, d) in data.chunks_exact(DESCRIPTION_LEN).enumerate() {
        let ts_ns = u64::from_ne_bytes(d[1..9].try_into().unwrap());
        let f: Vec<u32> = d[9..]
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        let (what, ev) = match d[0] % 9 {
            0 => (0x0, ProcEvent::Ack { err: f[0] }),
            1 => (
                0x1,
                ProcEvent::Fork { parent_tgid: f[1], child_pid: f[2], child_tgid: f[3], ts_ns },
            ),
            2 => (0x2, ProcEvent::Exec { pid: f[0], tgid: f[1], ts_ns }),
            3 => (0x4, ProcEvent::Uid { pid: f[0], tgid: f[1], ruid: f[2], euid: f[3], ts_ns }),
            4 => (0x40, ProcEvent::Gid { pid: f[0], tgid: f[1], rgid: f[2], egid: f[3], ts_ns }),
            5 => (
                0x8000_0000,
                ProcEvent::Exit { pid: f[0], tgid: f[1], exit_code: f[2], exit_signal: f[3], ts_ns },
            ),
            6 => (0x100, ProcEvent::Ptrace { pid: f[0], tgid: f[1], tracer_tgid: f[3], ts_ns }),
            7 => {
                // The name's 16 bytes follow the two ids: three fields, then the zero padding.
                let mut comm = [0u8; 16];
                for (i, v) in f[2..5].iter().enumerate() {
                    comm[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
                }
                (0x200, ProcEvent::Comm { pid: f[0], tgid: f[1], comm, ts_ns })
            }
            // sid, coredump: decoded as kinds we do not report.
            _ => ([0x80, 0x4000_0000][f[4] as usize % 2], ProcEvent::Other),
        };
        let mut event = Vec::with_capacity(PROC_EVENT_HDR_LEN + PROC_EVENT_DATA_LEN);
        event.extend_from_slice(&u32::to_ne_bytes(what));
        event.extend_from_slice(&u32::to_ne_bytes(f[4] % 64)); // cpu
        event.extend_from_slice(&ts_ns.to_ne_bytes());
        for v in &f {
            event.extend_from_slice(&v.to_ne_bytes());
        }
        event.resize(PROC_EVENT_HDR_LEN + PROC_EVENT_DATA_LEN, 0);

        let mut cn_msg = Vec::with_capacity(20 + event.len());
        cn_msg.extend_from_slice(&1u32.to_ne_bytes()); // CN_IDX_PROC
        cn_msg.extend_from_slice(&1u32.to_ne_bytes()); // CN_VAL_PROC
        cn_msg.extend_from_slice(&(seq as u32).to_ne_bytes());
        cn_msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
        cn_msg.extend_from_slice(&(event.len() as u16).to_ne_bytes());
        cn_msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
        cn_msg.extend_from_slice(&event);

        let len = NLMSG_HDR_LEN + cn_msg.len();
        datagram.extend_from_slice(&(len as u32).to_ne_bytes());
        datagram.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        datagram.extend_from_slice(&0u16.to_ne_bytes()); // flags
        datagram.extend_from_slice(&(seq as u32).to_ne_bytes());
        datagram.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
        datagram.extend_from_slice(&cn_msg);
        datagram.resize(datagram.len().next_multiple_of(4), 0);
        expected.push(ev);
    }
    (datagram, expected)
}
