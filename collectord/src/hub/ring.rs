//! The ring of recent events: each kept once, encoded, bounded in bytes, least severe out first.
//!
//! Events are kept per severity in three seq-ordered queues. When the ring is over its bound the
//! oldest INFO event goes; a WARNING goes only when no INFO is left, a CRITICAL only when nothing
//! else is. A flood of INFO events therefore cannot push the evidence out before a reader (a
//! restarting shipper) comes back for it. The agent's own accounts of a loss (flood summaries)
//! are INFO events kept like WARNINGs: the flood they summarise must not evict them. Readers move a cursor over the merged queues; whatever
//! was evicted under a cursor shows up as missing seqs, counted exactly.

use std::collections::VecDeque;

use prost::bytes::Bytes;
use sec_tracker_proto::v1::{Severity, SeverityCounts};

/// Bytes counted per event besides its encoding: its entry in a queue and the allocator's due.
const PER_EVENT_OVERHEAD: usize = 64;

/// What the ring may hold.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    /// Kept whatever their size (`agent.buffer_size`).
    pub min_events: usize,
    /// Beyond `min_events`, kept while they fit (`agent.buffer_bytes`).
    pub max_bytes: usize,
}

/// One event as kept: its encoding, and what readers filter on.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) seq: u64,
    pub(super) r#type: i32,
    pub(super) severity: i32,
    /// The agent's own account of a loss (a flood summary, a monitor's lost events): evicted
    /// no sooner than a WARNING, since without it the loss it counts goes unexplained.
    pub(super) accounting: bool,
    pub(super) encoded: Bytes,
}

/// Seqs a reader found missing: evicted before it got there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Missing {
    pub(super) count: u64,
    pub(super) first: u64,
    pub(super) last: u64,
}

impl Missing {
    fn add(&mut self, from: u64, to: u64) {
        if from > to {
            return;
        }
        if self.count == 0 {
            self.first = from;
        }
        self.last = to;
        self.count += to - from + 1;
    }
}

/// What a read hands over, in seq order: events, and the runs of seqs gone between them.
#[derive(Debug, Clone)]
pub(super) enum Piece {
    Gone(Missing),
    Event(Stored),
}

/// What one read found.
#[derive(Debug, Default)]
pub(super) struct Read {
    /// Where the next read starts.
    pub(super) next: u64,
    /// Every seq the read found gone (the sum of its `Gone` pieces): what the tests check.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) missing: Missing,
    /// The read reached the newest event.
    pub(super) caught_up: bool,
}

#[derive(Debug)]
pub(super) struct Ring {
    limits: RingLimits,
    /// INFO, WARNING, CRITICAL; each in seq order.
    by_severity: [VecDeque<Stored>; 3],
    len: usize,
    bytes: usize,
    next_seq: u64,
    /// The highest seq any reader has been handed: an event evicted at or below it was seen.
    read_upto: u64,
    /// Evicted before any reader had them, by severity: what no one will ever see.
    evicted: [u64; 3],
}

fn class(severity: i32) -> usize {
    match Severity::try_from(severity) {
        Ok(Severity::Critical) => 2,
        Ok(Severity::Warning) => 1,
        _ => 0,
    }
}

impl Ring {
    pub(super) fn new(limits: RingLimits) -> Ring {
        Ring {
            limits: RingLimits {
                min_events: limits.min_events.max(1),
                max_bytes: limits.max_bytes,
            },
            by_severity: Default::default(),
            len: 0,
            bytes: 0,
            next_seq: 1,
            read_upto: 0,
            evicted: [0; 3],
        }
    }

    pub(super) fn limits(&self) -> RingLimits {
        self.limits
    }

    /// The seq the next event will get.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Takes the next seq for an event about to be pushed.
    pub(super) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Keeps `event` (whose seq came from [`Ring::take_seq`]), evicting what the bound requires.
    pub(super) fn push(&mut self, event: Stored) {
        self.bytes += event.encoded.len() + PER_EVENT_OVERHEAD;
        self.len += 1;
        let queue = if event.accounting {
            class(event.severity).max(1)
        } else {
            class(event.severity)
        };
        self.by_severity[queue].push_back(event);
        while self.len > self.limits.min_events && self.bytes > self.limits.max_bytes {
            let Some(c) = (0..3).find(|&c| !self.by_severity[c].is_empty()) else {
                break;
            };
            if let Some(gone) = self.by_severity[c].pop_front() {
                self.bytes -= gone.encoded.len() + PER_EVENT_OVERHEAD;
                self.len -= 1;
                if gone.seq > self.read_upto {
                    self.evicted[class(gone.severity)] += 1;
                }
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The oldest seq still held, if any.
    pub(super) fn oldest(&self) -> Option<u64> {
        self.by_severity
            .iter()
            .filter_map(|q| q.front().map(|e| e.seq))
            .min()
    }

    /// Events evicted since start before any reader had them, by severity.
    pub(super) fn evicted(&self) -> SeverityCounts {
        SeverityCounts {
            info: self.evicted[0],
            warning: self.evicted[1],
            critical: self.evicted[2],
        }
    }

    /// Appends to `out` up to `max` events with seq ≥ `from`, in seq order, and says which seqs
    /// in between (and up to the newest, when the read reaches it) are gone.
    pub(super) fn read(&mut self, from: u64, max: usize, out: &mut Vec<Piece>) -> Read {
        let mut at = self
            .by_severity
            .each_ref()
            .map(|q| q.partition_point(|e| e.seq < from));
        let mut expect = from.max(1);
        let mut missing = Missing::default();
        let mut taken = 0;
        let gone = |out: &mut Vec<Piece>, from: u64, to: u64, missing: &mut Missing| {
            if from <= to {
                let mut run = Missing::default();
                run.add(from, to);
                missing.add(from, to);
                out.push(Piece::Gone(run));
            }
        };
        while taken < max {
            let next = (0..3)
                .filter_map(|c| self.by_severity[c].get(at[c]).map(|e| (e.seq, c)))
                .min();
            let Some((seq, c)) = next else { break };
            gone(out, expect, seq - 1, &mut missing);
            out.push(Piece::Event(self.by_severity[c][at[c]].clone()));
            at[c] += 1;
            expect = seq + 1;
            taken += 1;
        }
        let exhausted = (0..3).all(|c| at[c] >= self.by_severity[c].len());
        if exhausted {
            // Nothing held past here: every seq up to the newest that was not read is gone.
            gone(out, expect, self.next_seq - 1, &mut missing);
            expect = expect.max(self.next_seq);
        }
        self.read_upto = self.read_upto.max(expect - 1);
        Read {
            next: expect,
            missing,
            caught_up: exhausted,
        }
    }

    /// Gives back queue memory a flood left behind once the ring is mostly empty again.
    pub(super) fn trim(&mut self) {
        for q in &mut self.by_severity {
            if q.capacity() > 4096 && q.capacity() > 4 * q.len() {
                q.shrink_to(q.len() * 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ring: &mut Ring, severity: Severity, len: usize) -> u64 {
        let seq = ring.take_seq();
        ring.push(Stored {
            seq,
            r#type: 0,
            severity: severity as i32,
            accounting: false,
            encoded: Bytes::from(vec![0u8; len]),
        });
        seq
    }

    fn events(out: &[Piece]) -> Vec<u64> {
        out.iter()
            .filter_map(|p| match p {
                Piece::Event(e) => Some(e.seq),
                Piece::Gone(_) => None,
            })
            .collect()
    }

    fn seqs(ring: &mut Ring, from: u64) -> (Vec<u64>, Read) {
        let mut out = Vec::new();
        let read = ring.read(from, usize::MAX, &mut out);
        (events(&out), read)
    }

    #[test]
    fn a_flood_of_info_evicts_info_only_and_every_missing_seq_is_counted() {
        // Room for 10 events of 36 bytes (100 with the overhead).
        let mut ring = Ring::new(RingLimits {
            min_events: 1,
            max_bytes: 1000,
        });
        stored(&mut ring, Severity::Info, 36);
        let warning = stored(&mut ring, Severity::Warning, 36);
        let critical = stored(&mut ring, Severity::Critical, 36);
        for _ in 0..1000 {
            stored(&mut ring, Severity::Info, 36);
        }
        assert_eq!(ring.len(), 10);
        assert!(ring.bytes() <= 1000);
        assert_eq!(
            ring.evicted(),
            SeverityCounts {
                info: 993,
                warning: 0,
                critical: 0
            }
        );
        let (held, read) = seqs(&mut ring, 1);
        assert_eq!(held[..2], [warning, critical]);
        assert_eq!(held[2..], (996..=1003).collect::<Vec<_>>());
        assert_eq!(read.missing.count, 993);
        assert_eq!((read.missing.first, read.missing.last), (1, 995));
        assert_eq!(held.len() as u64 + read.missing.count, 1003);
        assert!(read.caught_up);
        assert_eq!(read.next, 1004);
    }

    #[test]
    fn a_flood_summary_outlives_the_flood_it_summarises() {
        let mut ring = Ring::new(RingLimits {
            min_events: 1,
            max_bytes: 1000,
        });
        let seq = ring.take_seq();
        ring.push(Stored {
            seq,
            r#type: 0,
            severity: Severity::Info as i32,
            accounting: true,
            encoded: Bytes::from(vec![0u8; 36]),
        });
        for _ in 0..1000 {
            stored(&mut ring, Severity::Info, 36);
        }
        let (held, _) = seqs(&mut ring, 1);
        assert_eq!(held[0], seq);
        assert_eq!(ring.evicted().info, 991);
    }

    #[test]
    fn warnings_go_before_criticals_when_no_info_is_left() {
        let mut ring = Ring::new(RingLimits {
            min_events: 1,
            max_bytes: 300,
        });
        let c1 = stored(&mut ring, Severity::Critical, 36);
        stored(&mut ring, Severity::Warning, 36);
        stored(&mut ring, Severity::Warning, 36);
        let c2 = stored(&mut ring, Severity::Critical, 36);
        let c3 = stored(&mut ring, Severity::Critical, 36);
        assert_eq!(ring.evicted().warning, 2);
        let c4 = stored(&mut ring, Severity::Critical, 36);
        assert_eq!(
            ring.evicted().critical,
            1,
            "{c1} went, when nothing else was left"
        );
        assert_eq!(seqs(&mut ring, 0).0, [c2, c3, c4]);
    }

    #[test]
    fn the_event_floor_holds_however_large_the_events() {
        let mut ring = Ring::new(RingLimits {
            min_events: 5,
            max_bytes: 100,
        });
        for _ in 0..8 {
            stored(&mut ring, Severity::Info, 10_000);
        }
        assert_eq!(seqs(&mut ring, 0).0, [4, 5, 6, 7, 8]);
    }

    #[test]
    fn reads_in_pieces_see_every_seq_once() {
        let mut ring = Ring::new(RingLimits {
            min_events: 1,
            max_bytes: 2000,
        });
        for i in 0..50 {
            let sev = [Severity::Info, Severity::Warning, Severity::Critical][i % 3];
            stored(&mut ring, sev, 36);
        }
        let mut from = 1;
        let (mut seen, mut missing) = (Vec::new(), 0);
        loop {
            let mut out = Vec::new();
            let read = ring.read(from, 3, &mut out);
            missing += read.missing.count;
            // Pieces come in seq order: each gone run ends just before the next event.
            let mut last = from.saturating_sub(1);
            for p in &out {
                match p {
                    Piece::Gone(m) => {
                        assert_eq!(m.first, last + 1);
                        last = m.last;
                    }
                    Piece::Event(e) => {
                        assert_eq!(e.seq, last + 1);
                        last = e.seq;
                    }
                }
            }
            seen.extend(events(&out));
            from = read.next;
            if read.caught_up {
                break;
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(seen.len() as u64 + missing, 50);
        assert_eq!(missing, ring.evicted().info + ring.evicted().warning);
        // Nothing new: an empty read at the head.
        let mut out = Vec::new();
        let read = ring.read(from, 3, &mut out);
        assert!(out.is_empty() && read.caught_up && read.missing.count == 0);
        assert_eq!(read.next, 51);
    }

    #[test]
    fn letting_go_of_what_a_reader_had_is_no_loss() {
        let mut ring = Ring::new(RingLimits {
            min_events: 1,
            max_bytes: 2000,
        });
        for _ in 0..30 {
            stored(&mut ring, Severity::Info, 36);
        }
        assert_eq!(ring.evicted().info, 10, "never read");
        let (held, _) = seqs(&mut ring, 0);
        assert_eq!(held.len(), 20);
        for _ in 0..15 {
            stored(&mut ring, Severity::Info, 36);
        }
        assert_eq!(ring.evicted().info, 10, "the 15 that went had been read");
        for _ in 0..10 {
            stored(&mut ring, Severity::Info, 36);
        }
        assert_eq!(ring.evicted().info, 15, "5 read, 5 not");
    }
}
