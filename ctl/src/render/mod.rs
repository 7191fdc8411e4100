//! Output: the human layout (with colour on a terminal) or JSON lines.

mod human;

use std::io::{self, Write};

use sec_tracker_proto::json::{gap_json, system_info_json, EventJson, Named};
use sec_tracker_proto::v1::{Event, Gap, SystemInfo};

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Style {
    pub json: bool,
    pub compact: bool,
    pub color: bool,
    pub show_timestamp: bool,
}

pub(crate) struct Printer<W: Write> {
    out: W,
    style: Style,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, style: Style) -> Self {
        Printer { out, style }
    }

    /// One-shot system information: the system-info object (JSON) or block (human).
    pub(crate) fn system_info(&mut self, info: &SystemInfo) -> io::Result<()> {
        if self.style.json {
            serde_json::to_writer_pretty(&mut self.out, &system_info_json(info))?;
            writeln!(self.out)?;
        } else {
            human::system_block(&mut self.out, info, self.style)?;
        }
        self.out.flush()
    }

    /// One event: a JSON line, a compact line, or an `>>> EVENT <<<` block. Flushed, so `watch | tool`
    /// sees each event as it happens.
    pub(crate) fn event(&mut self, e: &Event) -> io::Result<()> {
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
    pub(crate) fn gap(&mut self, g: &Gap) -> io::Result<()> {
        if self.style.json {
            serde_json::to_writer(&mut self.out, &gap_json(g))?;
            writeln!(self.out)?;
        } else {
            human::gap_line(&mut self.out, g, g.reason().name(), self.style)?;
        }
        self.out.flush()
    }
}

pub(crate) use human::{format_bytes, format_uptime};
