//! Flood summaries: one source may publish `monitoring.flood_limit` events per
//! `monitoring.flood_window`; past that its INFO and WARNING events are counted instead of
//! published, and when the window ends one event says how many were held back, from where.
//!
//! A source is what an operator would name as the origin of a flood: the program (process and
//! network events), the directory (file events), the remote address or user (auth events). An
//! attacker can still make noise, but not push other sources' events out of the ring, and the
//! summary keeps the count. CRITICAL events and the agent's own notices are never held back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sec_tracker_proto::json::escape_bytes;
use sec_tracker_proto::v1::{event, Event, EventType, Severity, SeverityCounts};

use crate::monitors::agent_notice;

/// Sources tracked per window at most; past it, new sources share one entry (a flood spread
/// over many directories is still one flood).
const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct FloodLimits {
    pub per_source: u64,
    pub window: Duration,
}

#[derive(Default)]
struct Source {
    published: u64,
    held: [u64; 3],
    /// The first held-back event's message, as an example.
    example: String,
    r#type: i32,
    /// The monitor that produced them.
    monitor: String,
}

pub(super) struct Flood {
    limits: FloodLimits,
    window_start: Instant,
    sources: HashMap<Vec<u8>, Source>,
    suppressed: [u64; 3],
    summaries: u64,
}

impl Flood {
    pub(super) fn new(limits: FloodLimits, now: Instant) -> Flood {
        Flood {
            limits: FloodLimits {
                per_source: limits.per_source.max(1),
                window: limits.window.max(Duration::from_secs(1)),
            },
            window_start: now,
            sources: HashMap::new(),
            suppressed: [0; 3],
            summaries: 0,
        }
    }

    /// Whether `event` may be published now; if not, it is counted against its source.
    pub(super) fn admit(&mut self, event: &Event) -> bool {
        let severity = event.severity();
        if severity == Severity::Critical {
            return true;
        }
        let Some(key) = source_key(event) else {
            return true;
        };
        let key = if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&key) {
            b"(many sources)".to_vec()
        } else {
            key
        };
        let limit = self.limits.per_source;
        let source = self.sources.entry(key).or_default();
        if source.published < limit {
            source.published += 1;
            return true;
        }
        let class = if severity == Severity::Warning { 1 } else { 0 };
        if source.held == [0; 3] {
            source.example = event.message.clone();
            source.r#type = event.r#type;
            source.monitor.clone_from(&event.source);
        }
        source.held[class] += 1;
        self.suppressed[class] += 1;
        false
    }

    /// When the window is over: one summary event per source that was held back, and a new
    /// window. Empty before that.
    pub(super) fn summaries_due(&mut self, now: Instant) -> Vec<Event> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < self.limits.window {
            return Vec::new();
        }
        self.window_start = now;
        let mut out = Vec::new();
        for (key, source) in self.sources.drain() {
            let held: u64 = source.held.iter().sum();
            if held == 0 {
                continue;
            }
            out.push(summary(&key, &source, held, elapsed));
        }
        self.summaries += out.len() as u64;
        out
    }

    /// Events held back since start, by severity.
    pub(super) fn suppressed(&self) -> SeverityCounts {
        SeverityCounts {
            info: self.suppressed[0],
            warning: self.suppressed[1],
            critical: self.suppressed[2],
        }
    }

    pub(super) fn summaries(&self) -> u64 {
        self.summaries
    }

    /// Events held back in the current window, not in a summary yet.
    pub(super) fn pending(&self) -> u64 {
        self.sources
            .values()
            .map(|s| s.held.iter().sum::<u64>())
            .sum()
    }
}

/// Whose flood this event would be part of; None for events never held back.
fn source_key(event: &Event) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(64);
    match event.details.as_ref()? {
        event::Details::Process(p) => {
            key.extend_from_slice(b"program ");
            key.extend_from_slice(if p.exe.is_empty() {
                p.name.as_bytes()
            } else {
                &p.exe
            });
        }
        event::Details::File(f) => {
            key.extend_from_slice(b"directory ");
            let dir = match f.path.iter().rposition(|&b| b == b'/') {
                Some(0) => &f.path[..1],
                Some(i) => &f.path[..i],
                None => &f.path[..],
            };
            key.extend_from_slice(dir);
        }
        event::Details::Network(n) => {
            key.extend_from_slice(b"program ");
            key.extend_from_slice(if n.exe.is_empty() {
                n.process_name.as_bytes()
            } else {
                &n.exe
            });
        }
        event::Details::Auth(a) => {
            if a.source_address.is_empty() {
                key.extend_from_slice(b"user ");
                key.extend_from_slice(a.user.as_bytes());
            } else {
                key.extend_from_slice(b"address ");
                key.extend_from_slice(a.source_address.as_bytes());
            }
        }
        event::Details::System(_) | event::Details::Agent(_) => return None,
    }
    Some(key)
}

fn summary(key: &[u8], source: &Source, held: u64, over: Duration) -> Event {
    let severity = if source.held[1] > 0 {
        Severity::Warning
    } else {
        Severity::Info
    };
    let kind = EventType::try_from(source.r#type)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("EVENT_TYPE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| "other".into());
    let mut message = format!(
        "{held} similar {kind} events from {} suppressed in the last {}s",
        escape_bytes(key),
        over.as_secs()
    );
    if source.held[1] > 0 {
        message.push_str(&format!(" ({} of them WARNING)", source.held[1]));
    }
    message.push_str(&format!(
        "; {} were published first; the first held back: {}",
        source.published, source.example
    ));
    let monitor = if source.monitor.is_empty() {
        "collector"
    } else {
        &source.monitor
    };
    agent_notice(monitor, "flood_summary", severity, held, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sec_tracker_proto::v1::{FileEvent, ProcessEvent};

    fn file(path: &str, severity: Severity) -> Event {
        Event {
            r#type: EventType::File as i32,
            severity: severity as i32,
            message: format!("File renamed: {path}"),
            details: Some(event::Details::File(FileEvent {
                path: path.as_bytes().to_vec(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn one_noisy_directory_is_summarised_and_the_others_pass() {
        let start = Instant::now();
        let mut flood = Flood::new(
            FloodLimits {
                per_source: 3,
                window: Duration::from_secs(10),
            },
            start,
        );
        let passed = (0..10)
            .filter(|i| flood.admit(&file(&format!("/srv/up/f{i}"), Severity::Info)))
            .count();
        assert_eq!(passed, 3);
        assert!(flood.admit(&file("/etc/passwd", Severity::Info)));
        assert!(flood.admit(&file("/srv/up/x", Severity::Critical)));
        assert!(!flood.admit(&file("/srv/up/y", Severity::Warning)));
        let process = Event {
            severity: Severity::Info as i32,
            details: Some(event::Details::Process(ProcessEvent {
                exe: b"/usr/bin/true".to_vec(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(flood.admit(&process));
        assert!(flood
            .summaries_due(start + Duration::from_secs(9))
            .is_empty());
        let due = flood.summaries_due(start + Duration::from_secs(10));
        assert_eq!(due.len(), 1);
        let s = &due[0];
        assert_eq!(s.severity(), Severity::Warning);
        assert!(
            s.message.starts_with(
                "8 similar file events from directory /srv/up suppressed in the last 10s (1 of them WARNING)"
            ),
            "{}",
            s.message
        );
        match &s.details {
            Some(event::Details::Agent(a)) => {
                assert_eq!((a.kind.as_str(), a.lost), ("flood_summary", 8))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            flood.suppressed(),
            SeverityCounts {
                info: 7,
                warning: 1,
                critical: 0
            }
        );
        // A new window: the source may publish again.
        assert!(flood.admit(&file("/srv/up/z", Severity::Info)));
    }
}
