//! Native logging to the systemd journal, for daemons that systemd started.
//!
//! A line on stderr reaches the journal as PRIORITY=6 with a second timestamp, so
//! `journalctl -p warning` would never show a warning. When systemd connected stderr to the
//! journal (`JOURNAL_STREAM` names stderr's device and inode), each event is sent instead over
//! journald's native protocol: one datagram per event with `PRIORITY` from the level,
//! `SYSLOG_IDENTIFIER`, a `MESSAGE` that reads like the stderr line without the timestamp and
//! level (`batch not delivered … attempts=3 reason="…"`), and every field of the event also as a
//! field of its own, `ST_<NAME>` (`ST_ATTEMPTS=3`, `ST_REASON=…`), for `journalctl ST_REASON=…`
//! and `-o json`. The prefix keeps an event's field from ever posing as one of the journal's own
//! (`PRIORITY`, `_PID`, …).

use std::fmt::Write as _;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Where journald takes native messages.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Is stderr the journal? systemd sets `JOURNAL_STREAM=<dev>:<inode>` for a service whose
/// stderr it connected to journald; a child that inherited the variable but not the stream
/// (stderr redirected) must keep writing to stderr.
pub fn stderr_is_journal() -> bool {
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stat.st_dev,
        stat.st_ino,
    )
}

/// Does a `JOURNAL_STREAM` value (`<dev>:<inode>`) name this device and inode?
fn names_stream(value: Option<&std::ffi::OsStr>, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value
        .and_then(|v| v.to_str())
        .and_then(|s| s.split_once(':'))
    else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// A `tracing` layer sending each event to journald.
pub struct JournalLayer {
    socket: UnixDatagram,
    identifier: String,
}

impl JournalLayer {
    /// Connects to journald's socket; `identifier` becomes `SYSLOG_IDENTIFIER` (the program).
    pub fn connect(identifier: &str) -> io::Result<JournalLayer> {
        Self::connect_to(Path::new(JOURNAL_SOCKET), identifier)
    }

    /// As [`connect`](Self::connect), to another socket (tests).
    pub fn connect_to(path: &Path, identifier: &str) -> io::Result<JournalLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(JournalLayer {
            socket,
            identifier: identifier.to_owned(),
        })
    }
}

/// journald's priorities (syslog's): what `journalctl -p` filters on.
fn priority(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "6",
        Level::DEBUG | Level::TRACE => "7",
    }
}

/// The event's message and its fields, in the order given.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

impl Fields {
    /// As the stderr line reads after its timestamp and level: `message key=value …`, a value
    /// with a space or a quote quoted.
    fn line(&self) -> String {
        let mut line = self.message.clone();
        for (name, value) in &self.fields {
            let sep = if line.is_empty() { "" } else { " " };
            if value.is_empty() || value.contains([' ', '"', '=', '\n']) {
                let _ = write!(line, "{sep}{name}={value:?}");
            } else {
                let _ = write!(line, "{sep}{name}={value}");
            }
        }
        line
    }
}

/// `ST_` and the name in journald's alphabet: upper-case ASCII letters, digits and `_`.
fn field_name(name: &str) -> String {
    let mut out = String::from("ST_");
    out.extend(name.chars().map(|c| match c {
        'a'..='z' => c.to_ascii_uppercase(),
        'A'..='Z' | '0'..='9' => c,
        _ => '_',
    }));
    out
}

/// One field in journald's native format: `NAME=value\n`, or, for a value with a newline,
/// `NAME\n`, its length as 64-bit little-endian, the bytes, `\n`.
fn put(datagram: &mut Vec<u8>, name: &str, value: &str) {
    datagram.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        datagram.push(b'\n');
        datagram.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        datagram.push(b'=');
    }
    datagram.extend_from_slice(value.as_bytes());
    datagram.push(b'\n');
}

impl JournalLayer {
    fn datagram(&self, level: &Level, fields: &Fields) -> Vec<u8> {
        let mut d = Vec::with_capacity(256);
        put(&mut d, "PRIORITY", priority(level));
        put(&mut d, "SYSLOG_IDENTIFIER", &self.identifier);
        put(&mut d, "MESSAGE", &fields.line());
        for (name, value) in &fields.fields {
            put(&mut d, &field_name(name), value);
        }
        d
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level();
        if let Err(e) = self.socket.send(&self.datagram(level, &fields)) {
            // journald gone or the entry too large for one datagram: the line still reaches the
            // journal through stderr (as PRIORITY=6), never lost.
            eprintln!("{} {} (journal: {e})", level.as_str(), fields.line());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Parses native-format datagrams back into (name, value) pairs, as journald does.
    fn parse(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let end = d.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
            let name = String::from_utf8(d[..end].to_vec()).unwrap();
            if d[end] == b'=' {
                let nl = end + 1 + d[end + 1..].iter().position(|&b| b == b'\n').unwrap();
                out.push((name, String::from_utf8(d[end + 1..nl].to_vec()).unwrap()));
                d = &d[nl + 1..];
            } else {
                let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
                let value = &d[end + 9..end + 9 + len];
                assert_eq!(d[end + 9 + len], b'\n');
                out.push((name, String::from_utf8(value.to_vec()).unwrap()));
                d = &d[end + 10 + len..];
            }
        }
        out
    }

    #[test]
    fn an_event_becomes_one_entry_with_its_priority_message_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let journald = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::connect_to(&path, "shipperd").unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                attempts = 3,
                reason = "connection refused",
                "batch not delivered"
            );
            tracing::info!(error = "two\nlines", "odd");
        });
        let mut buf = vec![0u8; 65536];
        let n = journald.recv(&mut buf).unwrap();
        let entry = parse(&buf[..n]);
        let get = |k: &str| entry.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRIORITY"), Some("4"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("shipperd"));
        assert_eq!(
            get("MESSAGE"),
            Some("batch not delivered attempts=3 reason=\"connection refused\"")
        );
        assert_eq!(get("ST_ATTEMPTS"), Some("3"));
        assert_eq!(get("ST_REASON"), Some("connection refused"));

        let n = journald.recv(&mut buf).unwrap();
        let entry = parse(&buf[..n]);
        let get = |k: &str| entry.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRIORITY"), Some("6"));
        assert_eq!(get("ST_ERROR"), Some("two\nlines"));
        assert_eq!(get("MESSAGE"), Some("odd error=\"two\\nlines\""));
    }

    #[test]
    fn field_names_cannot_pose_as_the_journals_own() {
        assert_eq!(field_name("priority"), "ST_PRIORITY");
        assert_eq!(field_name("_pid"), "ST__PID");
        assert_eq!(field_name("peer.uid"), "ST_PEER_UID");
        assert_eq!(field_name("é"), "ST__");
    }

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        fn v(s: &str) -> Option<&std::ffi::OsStr> {
            Some(std::ffi::OsStr::new(s))
        }
        assert!(names_stream(v("64770:1234"), 64770, 1234));
        assert!(!names_stream(v("64770:1235"), 64770, 1234));
        assert!(!names_stream(v("64771:1234"), 64770, 1234));
        assert!(!names_stream(v("garbage"), 64770, 1234));
        assert!(!names_stream(v(":"), 0, 0));
        assert!(!names_stream(None, 64770, 1234));
        let stat = nix::sys::stat::fstat(std::io::stderr()).unwrap();
        let mine = format!("{}:{}", stat.st_dev, stat.st_ino);
        assert!(names_stream(v(&mine), stat.st_dev, stat.st_ino));
    }
}
