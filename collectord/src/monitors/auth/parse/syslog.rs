//! The syslog header of an auth.log / secure line: RFC 3164 (`Nov  6 14:09:18 host tag[pid]:`)
//! and rsyslog's ISO 8601 form.

use std::fmt;

use super::parse_digits;

/// The syslog header of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// As written: `Nov 26 14:09:18`, `Nov  6 14:09:18` or `2026-11-26T14:09:18.123456+00:00`.
    pub timestamp: &'a str,
    pub host: &'a str,
    /// The tag without `[pid]`, as written (may be a path).
    pub program: &'a str,
    pub pid: Option<u32>,
    /// After `tag: ` (one space removed; sudo's padding kept).
    pub message: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a syslog line at all (no timestamp, host and tag): the caller counts it.
    NotSyslog,
    /// An empty or whitespace-only line (e.g. a trailing newline): not an error worth counting.
    Empty,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotSyslog => f.write_str("not a syslog line"),
            ParseError::Empty => f.write_str("empty line"),
        }
    }
}

impl std::error::Error for ParseError {}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Length of the timestamp at the start of `b`: RFC 3164 `Mmm dd hh:mm:ss` (day space-padded)
/// or ISO 8601 `YYYY-MM-DDThh:mm:ss[.frac][Z|±hh:mm]`.
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let time_at = |i: usize| {
        digit(i)
            && digit(i + 1)
            && is(i + 2, b':')
            && digit(i + 3)
            && digit(i + 4)
            && is(i + 5, b':')
            && digit(i + 6)
            && digit(i + 7)
    };
    if b.len() >= 15
        && MONTHS.iter().any(|m| b[..3] == m[..])
        && is(3, b' ')
        && (is(4, b' ') || digit(4))
        && digit(5)
        && is(6, b' ')
        && time_at(7)
    {
        return Some(15);
    }
    if (0..4).all(digit)
        && is(4, b'-')
        && digit(5)
        && digit(6)
        && is(7, b'-')
        && digit(8)
        && digit(9)
        && is(10, b'T')
        && time_at(11)
    {
        let extra = b[19..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b':' | b'+' | b'-' | b'Z'))
            .count();
        return Some(19 + extra);
    }
    None
}

/// Splits one line into its syslog header. A trailing `\n` / `\r\n` is ignored.
pub fn split_syslog(line: &str) -> Result<SyslogLine<'_>, ParseError> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let ts_len = timestamp_len(line.as_bytes()).ok_or(ParseError::NotSyslog)?;
    let timestamp = &line[..ts_len];
    let rest = line[ts_len..]
        .strip_prefix(' ')
        .ok_or(ParseError::NotSyslog)?
        .trim_start_matches(' ');
    let (host, rest) = rest.split_once(' ').ok_or(ParseError::NotSyslog)?;
    let colon = rest.find(':').ok_or(ParseError::NotSyslog)?;
    let tag = &rest[..colon];
    if host.is_empty() || tag.is_empty() || tag.contains(char::is_whitespace) {
        return Err(ParseError::NotSyslog);
    }
    let message = &rest[colon + 1..];
    let message = message.strip_prefix(' ').unwrap_or(message);
    let (program, pid) = match tag.strip_suffix(']').and_then(|t| t.rsplit_once('[')) {
        Some((program, pid)) => (program, parse_digits(pid)),
        None => (tag, None),
    };
    if program.is_empty() {
        return Err(ParseError::NotSyslog);
    }
    Ok(SyslogLine {
        timestamp,
        host,
        program,
        pid,
        message,
    })
}
