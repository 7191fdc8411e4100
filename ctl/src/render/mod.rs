//! Output: the seed's human layout (with colour on a terminal) or JSON lines.

mod human;

use std::io::{self, Write};

use sec_tracker_proto::json::{system_info_json, EventJson};
use sec_tracker_proto::v1::{Event, Gap, GapReason, SystemInfo};
use serde_json::json;

#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub json: bool,
    pub compact: bool,
    pub color: bool,
    pub show_timestamp: bool,
}

pub struct Printer<W: Write> {
    out: W,
    style: Style,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, style: Style) -> Self {
        Printer { out, style }
    }

    /// One-shot system information: the seed's object (JSON) or block (human).
    pub fn system_info(&mut self, info: &SystemInfo) -> io::Result<()> {
        if self.style.json {
            serde_json::to_writer_pretty(&mut self.out, &system_info_json(info))?;
            writeln!(self.out)?;
        } else {
            human::system_block(&mut self.out, info, self.style)?;
        }
        self.out.flush()
    }

    /// One event: a JSON line, a compact line, or the seed's block. Flushed, so `watch | tool`
    /// sees each event as it happens.
    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        if self.style.json {
            serde_json::to_writer(&mut self.out, &EventJson(e))?;
            writeln!(self.out)?;
        } else if self.style.compact {
            human::compact_line(&mut self.out, e, self.style)?;
        } else {
            human::event_block(&mut self.out, e, self.style)?;
        }
        self.out.flush()
    }

    /// Missed events, announced in the output itself so a reader of a saved log sees the hole.
    pub fn gap(&mut self, g: &Gap) -> io::Result<()> {
        let reason = gap_reason(g.reason());
        if self.style.json {
            let v = json!({
                "type": "gap",
                "reason": reason,
                "missed": g.missed,
                "first_missed_seq": g.first_missed_seq,
                "last_missed_seq": g.last_missed_seq,
                "previous_stream_id": g.previous_stream_id,
            });
            serde_json::to_writer(&mut self.out, &v)?;
            writeln!(self.out)?;
        } else {
            human::gap_line(&mut self.out, g, reason, self.style)?;
        }
        self.out.flush()
    }
}

pub fn gap_reason(r: GapReason) -> &'static str {
    match r {
        GapReason::RingOverrun => "ring_overrun",
        GapReason::CollectorRestarted => "collector_restarted",
        GapReason::SlowSubscriber => "slow_subscriber",
        GapReason::Unspecified => "unknown",
    }
}

pub use human::{format_bytes, format_uptime};
