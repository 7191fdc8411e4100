//! Pure parser for `/var/log/wtmp` and `/var/log/btmp` records: glibc's `struct utmp` as
//! written on x86_64 and aarch64 (384 bytes, native byte order):
//!
//! | offset | field |
//! |---|---|
//! | 0 | `ut_type` i16 (+2 bytes padding) |
//! | 4 | `ut_pid` i32 |
//! | 8 | `ut_line` [32] |
//! | 40 | `ut_id` [4] |
//! | 44 | `ut_user` [32] |
//! | 76 | `ut_host` [256] |
//! | 332 | `ut_exit` {i16 termination, i16 exit} |
//! | 336 | `ut_session` i32 |
//! | 340 | `ut_tv` {i32 sec, i32 usec} |
//! | 348 | `ut_addr_v6` [4]i32 |
//! | 364 | unused [20] |
//!
//! No I/O: the auth monitor's runtime reads the files and calls [`parse_records`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const RECORD_SIZE: usize = 384;

const OFF_TYPE: usize = 0;
const OFF_PID: usize = 4;
const OFF_LINE: usize = 8;
const OFF_ID: usize = 40;
const OFF_USER: usize = 44;
const OFF_HOST: usize = 76;
const OFF_EXIT: usize = 332;
const OFF_SESSION: usize = 336;
const OFF_TV: usize = 340;
const OFF_ADDR: usize = 348;

/// `ut_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UtmpKind {
    Empty,
    RunLevel,
    BootTime,
    NewTime,
    OldTime,
    InitProcess,
    LoginProcess,
    UserProcess,
    DeadProcess,
    Accounting,
    Unknown(i16),
}

impl UtmpKind {
    pub fn from_raw(t: i16) -> UtmpKind {
        match t {
            0 => UtmpKind::Empty,
            1 => UtmpKind::RunLevel,
            2 => UtmpKind::BootTime,
            3 => UtmpKind::NewTime,
            4 => UtmpKind::OldTime,
            5 => UtmpKind::InitProcess,
            6 => UtmpKind::LoginProcess,
            7 => UtmpKind::UserProcess,
            8 => UtmpKind::DeadProcess,
            9 => UtmpKind::Accounting,
            other => UtmpKind::Unknown(other),
        }
    }

    pub fn is_known(self) -> bool {
        !matches!(self, UtmpKind::Unknown(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpRecord {
    pub kind: UtmpKind,
    pub pid: i32,
    /// `ut_line`: the tty without `/dev/` (`pts/0`, `tty1`, `ssh:notty` in btmp), or `~` for
    /// reboot/shutdown/runlevel records.
    pub line: String,
    /// `ut_id`: the inittab id / tty suffix.
    pub id: String,
    pub user: String,
    pub host: String,
    /// `ut_addr_v6`: an IPv4 address in the first word with the others zero, else IPv6;
    /// None when all zero.
    pub addr: Option<IpAddr>,
    pub session: i32,
    /// `ut_exit` (termination, exit status), for DEAD_PROCESS.
    pub exit: (i16, i16),
    /// Seconds since the epoch. The field is 32 bits: read as unsigned, so that it stays
    /// right until 2106 (a negative time is never written by real tools).
    pub time_sec: i64,
    pub time_usec: i64,
}

fn bytes<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(off..off + N) {
        out.copy_from_slice(src);
    }
    out
}

/// A NUL-padded (not necessarily NUL-terminated) char array, decoded lossily.
fn cstr(buf: &[u8], off: usize, len: usize) -> String {
    let field = buf.get(off..off + len).unwrap_or(&[]);
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn address(raw: [u8; 16]) -> Option<IpAddr> {
    if raw.iter().all(|b| *b == 0) {
        return None;
    }
    if raw[4..].iter().all(|b| *b == 0) {
        return Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])));
    }
    Some(IpAddr::V6(Ipv6Addr::from(raw)))
}

/// Parses the first record of `buf`; None unless `buf.len() >= RECORD_SIZE`.
pub fn parse_record(buf: &[u8]) -> Option<UtmpRecord> {
    let buf = buf.get(..RECORD_SIZE)?;
    let exit_term = i16::from_ne_bytes(bytes(buf, OFF_EXIT));
    let exit_code = i16::from_ne_bytes(bytes(buf, OFF_EXIT + 2));
    Some(UtmpRecord {
        kind: UtmpKind::from_raw(i16::from_ne_bytes(bytes(buf, OFF_TYPE))),
        pid: i32::from_ne_bytes(bytes(buf, OFF_PID)),
        line: cstr(buf, OFF_LINE, 32),
        id: cstr(buf, OFF_ID, 4),
        user: cstr(buf, OFF_USER, 32),
        host: cstr(buf, OFF_HOST, 256),
        addr: address(bytes(buf, OFF_ADDR)),
        session: i32::from_ne_bytes(bytes(buf, OFF_SESSION)),
        exit: (exit_term, exit_code),
        time_sec: i64::from(u32::from_ne_bytes(bytes(buf, OFF_TV))),
        time_usec: i64::from(i32::from_ne_bytes(bytes(buf, OFF_TV + 4))),
    })
}

/// Parses every whole record of `buf`; the second value is the number of trailing bytes of an
/// incomplete record (a writer mid-append, or a truncated file) that the caller keeps for later.
pub fn parse_records(buf: &[u8]) -> (Vec<UtmpRecord>, usize) {
    let chunks = buf.chunks_exact(RECORD_SIZE);
    let rest = chunks.remainder().len();
    (chunks.filter_map(parse_record).collect(), rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Spec<'a> {
        kind: i16,
        pid: i32,
        line: &'a [u8],
        id: &'a [u8],
        user: &'a [u8],
        host: &'a [u8],
        addr: [u8; 16],
        sec: i32,
        usec: i32,
    }

    /// Builds a record field by field, as glibc lays it out.
    fn build(s: &Spec<'_>) -> Vec<u8> {
        fn put(buf: &mut [u8], off: usize, max: usize, v: &[u8]) {
            let n = v.len().min(max);
            buf[off..off + n].copy_from_slice(&v[..n]);
        }
        let mut b = vec![0u8; RECORD_SIZE];
        put(&mut b, 0, 2, &s.kind.to_ne_bytes());
        put(&mut b, 4, 4, &s.pid.to_ne_bytes());
        put(&mut b, 8, 32, s.line);
        put(&mut b, 40, 4, s.id);
        put(&mut b, 44, 32, s.user);
        put(&mut b, 76, 256, s.host);
        put(&mut b, 332, 2, &0i16.to_ne_bytes());
        put(&mut b, 334, 2, &0i16.to_ne_bytes());
        put(&mut b, 336, 4, &0i32.to_ne_bytes());
        put(&mut b, 340, 4, &s.sec.to_ne_bytes());
        put(&mut b, 344, 4, &s.usec.to_ne_bytes());
        put(&mut b, 348, 16, &s.addr);
        b
    }

    fn login_spec() -> Spec<'static> {
        Spec {
            kind: 7,
            pid: 4242,
            line: b"pts/0",
            id: b"ts/0",
            user: b"alice",
            host: b"203.0.113.5",
            addr: [203, 0, 113, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            sec: 1_764_166_158,
            usec: 123_456,
        }
    }

    #[test]
    fn user_process_ipv4() {
        let r = parse_record(&build(&login_spec())).unwrap();
        assert_eq!(
            r,
            UtmpRecord {
                kind: UtmpKind::UserProcess,
                pid: 4242,
                line: "pts/0".into(),
                id: "ts/0".into(),
                user: "alice".into(),
                host: "203.0.113.5".into(),
                addr: Some("203.0.113.5".parse().unwrap()),
                session: 0,
                exit: (0, 0),
                time_sec: 1_764_166_158,
                time_usec: 123_456,
            }
        );
    }

    #[test]
    fn ipv6_full_width_fields_and_kinds() {
        let v6: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let r = parse_record(&build(&Spec {
            kind: 6,
            pid: 1,
            // 32 bytes with no NUL: the whole field is the value.
            line: b"0123456789abcdef0123456789abcdef",
            id: b"tty1",
            user: b"LOGIN\xff",
            host: &[b'h'; 256],
            addr: v6.octets(),
            sec: -1,
            usec: 0,
        }))
        .unwrap();
        assert_eq!(r.kind, UtmpKind::LoginProcess);
        assert_eq!(r.line.len(), 32);
        assert_eq!(r.id, "tty1");
        assert_eq!(r.user, "LOGIN\u{fffd}");
        assert_eq!(r.host.len(), 256);
        assert_eq!(r.addr, Some(IpAddr::V6(v6)));
        assert_eq!(r.time_sec, i64::from(u32::MAX));
        for (raw, kind) in [
            (0, UtmpKind::Empty),
            (1, UtmpKind::RunLevel),
            (2, UtmpKind::BootTime),
            (3, UtmpKind::NewTime),
            (4, UtmpKind::OldTime),
            (5, UtmpKind::InitProcess),
            (8, UtmpKind::DeadProcess),
            (9, UtmpKind::Accounting),
            (10, UtmpKind::Unknown(10)),
            (-3, UtmpKind::Unknown(-3)),
        ] {
            let mut s = login_spec();
            s.kind = raw;
            s.addr = [0; 16];
            let r = parse_record(&build(&s)).unwrap();
            assert_eq!(r.kind, kind);
            assert_eq!(r.addr, None);
        }
    }

    #[test]
    fn records_and_trailing_bytes() {
        assert_eq!(parse_record(&[0u8; RECORD_SIZE - 1]), None);
        assert_eq!(parse_records(&[]), (Vec::new(), 0));
        let mut file = build(&login_spec());
        let mut boot = login_spec();
        boot.kind = 2;
        boot.line = b"~";
        boot.user = b"reboot";
        boot.host = b"6.1.0-28-amd64";
        file.extend(build(&boot));
        file.extend_from_slice(&[7, 0, 0]);
        let (records, rest) = parse_records(&file);
        assert_eq!(rest, 3);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].kind, UtmpKind::BootTime);
        assert_eq!(records[1].user, "reboot");
        assert_eq!(records[1].host, "6.1.0-28-amd64");
        // Longer input: parse_record takes the first record only.
        assert_eq!(parse_record(&file).unwrap().user, "alice");
    }

    /// The machine's own wtmp/btmp, when they have records.
    #[test]
    fn real_files() {
        for path in ["/var/log/wtmp", "/var/log/btmp"] {
            let Ok(data) = std::fs::read(path) else {
                eprintln!("{path}: not readable, skipped");
                continue;
            };
            if data.is_empty() {
                eprintln!("{path}: empty, skipped");
                continue;
            }
            let (records, rest) = parse_records(&data);
            assert_eq!(rest, 0, "{path}: trailing bytes");
            assert_eq!(records.len(), data.len() / RECORD_SIZE);
            for r in &records {
                assert!(r.kind.is_known(), "{path}: {r:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let (records, rest) = parse_records(&b);
            prop_assert_eq!(records.len() * RECORD_SIZE + rest, b.len());
            let _ = parse_record(&b);
        }
    }
}
