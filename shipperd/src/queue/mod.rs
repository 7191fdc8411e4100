//! The durable queue: every event shipperd receives is written here before it counts as received,
//! and leaves only when the server acknowledged the batch that held it (or the bound pushed it out,
//! counted, or the server rejected it for good and it was set aside in the dead-letter table).
//!
//! The store is one SQLite file (WAL journal, `synchronous=FULL`) with four tables:
//!
//! * `events(id INTEGER PRIMARY KEY AUTOINCREMENT, stream_id, seq, timestamp_ns, payload BLOB,
//!   severity)`: the queue in id (arrival) order, indexed by severity so that the bound can drop
//!   the least severe first;
//! * `batches(batch_id PRIMARY KEY, first_id, last_id, handed_out, created_ns)`: batches handed out
//!   and not yet acknowledged. A batch is every event with an id in `[first_id, last_id]`; batches
//!   always cover a prefix of the queue, so the events after the last batch are the waiting ones;
//! * `dead_letter(..., batch_id, status, reason, dead_at_ns, <the event>)`: events the server
//!   refused for good, the newest `max_events` kept;
//! * `meta`: one row with the counters (received, sent, dropped in all and by severity,
//!   dead-lettered, gaps) and the resume point, each changed in the same transaction as what it
//!   counts.
//!
//! Depth, bytes and in-flight counts are computed from the tables at open and then kept in memory.
//! One connection per store; [`Queue`] is `Send` and meant to be owned by one task or thread.

mod error;
mod open;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use sec_tracker_proto::v1::{Severity, SeverityCounts};

pub use error::QueueError;

/// An event to append to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The collector stream the event came from.
    pub stream_id: String,
    /// The event's sequence number within that stream.
    pub seq: u64,
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The event as JSON bytes; the queue does not look inside.
    pub payload: Vec<u8>,
    /// Decides what the bound drops first: INFO, then WARNING, then CRITICAL.
    pub severity: Severity,
}

/// An event stored in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    /// The queue's id for the event: increases with arrival order and is never reused.
    pub id: i64,
    /// The collector stream the event came from.
    pub stream_id: String,
    /// The event's sequence number within that stream.
    pub seq: u64,
    /// When the event happened, in nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    /// The event as JSON bytes, as pushed.
    pub payload: Vec<u8>,
}

/// A batch of events to send to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The batch's id: the same each time this batch is handed out, across crashes and restarts,
    /// so the server can drop a resent duplicate.
    pub batch_id: String,
    /// The events, oldest first.
    pub events: Vec<QueuedEvent>,
    /// How many times this batch was handed out before this time: 0 for a fresh batch (also each
    /// half of a split one), 1 or more for a batch sent before and not acknowledged.
    pub attempts: u32,
}

/// What [`Queue::open`] found wrong with the store, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Where a corrupt or foreign store was renamed to before a fresh one was started.
    pub moved_aside: Option<PathBuf>,
    /// What was wrong with it.
    pub problem: Option<String>,
}

/// Counters and gauges of the queue, for health metrics and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events in the queue, in flight or waiting.
    pub depth: u64,
    /// Sum of the payload sizes of the events in the queue.
    pub bytes: u64,
    /// Timestamp of the first event in queue order, if any.
    pub oldest_timestamp_ns: Option<i64>,
    /// Events ever pushed (durably) into this store.
    pub received_total: u64,
    /// Events ever acknowledged by the server.
    pub sent_total: u64,
    /// Events ever pushed out by the bound.
    pub dropped_total: u64,
    /// The same by severity (counted since schema version 2).
    pub dropped: SeverityCounts,
    /// Events ever set aside because the server refused them for good.
    pub dead_lettered_total: u64,
    /// Events the collector said were lost before they reached shipperd.
    pub gaps_missed_total: u64,
    /// Events in batches handed out and not yet acknowledged.
    pub in_flight: u64,
}

/// An event the server refused for good, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event as it was queued.
    pub event: QueuedEvent,
    /// The batch it was sent in.
    pub batch_id: String,
    /// The HTTP status the server answered.
    pub status: u16,
    /// The reason given by the caller (e.g. the server's error text).
    pub reason: String,
    /// When it was set aside, in nanoseconds since the Unix epoch.
    pub dead_at_ns: i64,
}

/// The durable, bounded, at-least-once queue (see the module documentation).
#[derive(Debug)]
pub struct Queue {
    conn: Connection,
    path: PathBuf,
    max_events: u64,
    state: State,
    /// The last write failed for lack of space.
    out_of_space: bool,
    /// Batches this `Queue` handed out and that are not settled yet (acknowledged, split or
    /// dead-lettered): [`Queue::next_batch`] skips them, so several can be in flight at once.
    /// Not persisted: after a restart every unsettled batch is handed out again.
    claimed: HashSet<String>,
}

/// What is ready to be sent: see [`Queue::waiting`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    /// Events not in any batch yet.
    pub events: u64,
    /// Timestamp of the oldest of them.
    pub oldest_timestamp_ns: Option<i64>,
    /// Batches recorded but not handed out by this `Queue`: from before a restart, or the
    /// halves of a split batch. They go out before any new batch.
    pub unclaimed_batches: u64,
}

/// What the queue keeps in memory; changed only after the transaction that changes it commits.
#[derive(Debug, Clone, Default)]
struct State {
    depth: u64,
    bytes: u64,
    in_flight: u64,
    /// Highest event id in a batch (0 when none ever): the events after it are waiting.
    batched_upto: i64,
    received: u64,
    sent: u64,
    dropped: u64,
    dropped_by: [u64; 3],
    dead_lettered: u64,
    gaps: u64,
    resume: Option<(String, u64)>,
}

const INSERT_EVENT: &str =
    "INSERT INTO events (stream_id, seq, timestamp_ns, payload, severity) VALUES (?1, ?2, ?3, ?4, ?5)";
/// The oldest waiting events (after id ?1) of one severity (?2), at most ?3 of them.
const OLDEST_WAITING_OF: &str =
    "SELECT id FROM events WHERE severity = ?2 AND id > ?1 ORDER BY severity, id LIMIT ?3";
const SELECT_EVENTS_RANGE: &str = "SELECT id, stream_id, seq, timestamp_ns, payload FROM events \
     WHERE id BETWEEN ?1 AND ?2 ORDER BY id";
const SELECT_WAITING: &str = "SELECT id, stream_id, seq, timestamp_ns, payload FROM events \
     WHERE id > ?1 ORDER BY id LIMIT ?2";
const SIZE_OF_RANGE: &str =
    "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events WHERE id BETWEEN ?1 AND ?2";
const DELETE_RANGE: &str = "DELETE FROM events WHERE id BETWEEN ?1 AND ?2";
const SELECT_BATCH: &str = "SELECT first_id, last_id FROM batches WHERE batch_id = ?1";
const DELETE_BATCH: &str = "DELETE FROM batches WHERE batch_id = ?1";
const INSERT_BATCH: &str =
    "INSERT INTO batches (batch_id, first_id, last_id, handed_out, created_ns) \
     VALUES (?1, ?2, ?3, ?4, ?5)";

impl Queue {
    /// Opens the store at `path`, creating it if needed, holding at most `max_events` events.
    /// A store that fails `PRAGMA quick_check` (corrupt, truncated, not SQLite, or not a queue) is
    /// renamed to `<path>.corrupt-<unix time>` with its -wal/-shm files, reported in the
    /// [`OpenReport`], and a fresh store is started.
    pub fn open(path: &Path, max_events: u64) -> Result<(Queue, OpenReport), QueueError> {
        if max_events == 0 {
            return Err(QueueError::ZeroBound);
        }
        let (conn, report) = open::open_store(path)?;
        let state = load_state(&conn).map_err(|e| error::reclassify(e.into(), path))?;
        tracing::debug!(
            store = %path.display(),
            depth = state.depth,
            in_flight = state.in_flight,
            "queue opened"
        );
        let queue = Queue {
            conn,
            path: path.to_path_buf(),
            max_events,
            state,
            out_of_space: false,
            claimed: HashSet::new(),
        };
        Ok((queue, report))
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bound given to [`Queue::open`].
    pub fn max_events(&self) -> u64 {
        self.max_events
    }

    /// Appends `events` in one transaction: when this returns Ok they are on disk. Past the bound
    /// events not in flight are deleted and counted as dropped in that same transaction: the
    /// oldest INFO events first, WARNING events only when no INFO event waits, CRITICAL events
    /// last (the queue can exceed the bound only by events in flight). Records the last event's
    /// (stream_id, seq) as the resume point. Returns how many events were dropped.
    pub fn push(&mut self, events: &[NewEvent]) -> Result<u64, QueueError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.write(|q| q.push_inner(events))
    }

    fn push_inner(&mut self, events: &[NewEvent]) -> Result<u64, QueueError> {
        let mut next = self.state.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            for ev in events {
                // Sequence numbers are stored bit for bit in SQLite's signed integer.
                insert.execute(params![
                    ev.stream_id,
                    ev.seq as i64,
                    ev.timestamp_ns,
                    ev.payload,
                    ev.severity as i32
                ])?;
                next.bytes += ev.payload.len() as u64;
            }
        }
        let n = events.len() as u64;
        next.depth += n;
        next.received += n;
        let waiting = next.depth - next.in_flight;
        let excess = next.depth.saturating_sub(self.max_events).min(waiting);
        let mut dropped = 0;
        let mut dropped_by = [0u64; 3];
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            if dropped == excess {
                break;
            }
            let floor = next.batched_upto;
            let want = sql_int(excess - dropped);
            let (count, bytes): (u64, u64) = tx
                .prepare_cached(&format!(
                    "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events \
                     WHERE id IN ({OLDEST_WAITING_OF})"
                ))?
                .query_row(params![floor, severity as i32, want], |r| {
                    Ok((get_count(r, 0)?, get_count(r, 1)?))
                })?;
            if count == 0 {
                continue;
            }
            tx.prepare_cached(&format!(
                "DELETE FROM events WHERE id IN ({OLDEST_WAITING_OF})"
            ))?
            .execute(params![floor, severity as i32, want])?;
            dropped += count;
            dropped_by[severity as usize] += count;
            next.depth -= count;
            next.bytes -= bytes;
        }
        next.dropped += dropped;
        for (total, now) in next.dropped_by.iter_mut().zip(dropped_by) {
            *total += now;
        }
        let last = &events[events.len() - 1];
        tx.prepare_cached(
            "UPDATE meta SET received_total = received_total + ?1, \
             dropped_total = dropped_total + ?2, resume_stream_id = ?3, resume_seq = ?4, \
             dropped_info = dropped_info + ?5, dropped_warning = dropped_warning + ?6, \
             dropped_critical = dropped_critical + ?7 WHERE id = 1",
        )?
        .execute(params![
            sql_int(n),
            sql_int(dropped),
            last.stream_id,
            last.seq as i64,
            sql_int(dropped_by[0]),
            sql_int(dropped_by[1]),
            sql_int(dropped_by[2])
        ])?;
        tx.commit()?;
        next.resume = Some((last.stream_id.clone(), last.seq));
        self.state = next;
        if dropped > 0 {
            tracing::debug!(
                dropped,
                bound = self.max_events,
                by_severity = ?dropped_by,
                "queue full: dropped the oldest of the least severe events"
            );
        }
        Ok(dropped)
    }

    /// The (stream_id, seq) of the last event pushed, persisted: where to resume the collector's
    /// stream (`Subscribe{after_seq, stream_id}`) after a restart.
    pub fn resume_point(&self) -> Result<Option<(String, u64)>, QueueError> {
        Ok(self.state.resume.clone())
    }

    /// Adds `missed` to the persisted count of events the collector reported lost (gaps).
    pub fn add_gap(&mut self, missed: u64) -> Result<(), QueueError> {
        if missed == 0 {
            return Ok(());
        }
        self.write(|q| {
            q.conn
                .prepare_cached("UPDATE meta SET gaps_total = gaps_total + ?1 WHERE id = 1")?
                .execute(params![sql_int(missed)])?;
            q.state.gaps += missed;
            Ok(())
        })
    }

    /// The batch to send next. A recorded batch this `Queue` has not handed out (one from before a
    /// crash or restart, or half of a split one) comes first: same id, same events, `attempts` one
    /// more, whatever `max`. Otherwise the oldest `max` (at least 1) events not in any batch, under a
    /// new random id, recorded before this returns. None when every event is already in a batch
    /// handed out (in flight) or the queue is empty. A batch stays handed out until it is settled
    /// with [`Queue::ack`], [`Queue::split`] or [`Queue::dead_letter`], or given back with
    /// [`Queue::release`].
    pub fn next_batch(&mut self, max: usize) -> Result<Option<Batch>, QueueError> {
        self.write(|q| q.next_batch_inner(max.max(1)))
    }

    fn next_batch_inner(&mut self, max: usize) -> Result<Option<Batch>, QueueError> {
        if let Some(batch) = self.resume_batch()? {
            return Ok(Some(batch));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let events = tx
            .prepare_cached(SELECT_WAITING)?
            .query_map(params![self.state.batched_upto, max as i64], event_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let (first_id, last_id) = (first.id, last.id);
        let batch_id = new_batch_id();
        tx.prepare_cached(INSERT_BATCH)?.execute(params![
            batch_id,
            first_id,
            last_id,
            1, // handed out once: this time
            now_ns()
        ])?;
        tx.commit()?;
        self.claimed.insert(batch_id.clone());
        self.state.in_flight += events.len() as u64;
        self.state.batched_upto = last_id;
        Ok(Some(Batch {
            batch_id,
            events,
            attempts: 0,
        }))
    }

    /// The oldest recorded batch not claimed by this `Queue`, counted as handed out once more.
    fn resume_batch(&mut self) -> Result<Option<Batch>, QueueError> {
        loop {
            let found = self.oldest_unclaimed()?;
            let Some((batch_id, first, last, attempts)) = found else {
                return Ok(None);
            };
            let events = self
                .conn
                .prepare_cached(SELECT_EVENTS_RANGE)?
                .query_map(params![first, last], event_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            if events.is_empty() {
                // Cannot happen while the invariant holds; an empty batch would block the queue.
                tracing::warn!(%batch_id, "removing an empty batch from the queue");
                self.conn
                    .prepare_cached(DELETE_BATCH)?
                    .execute(params![batch_id])?;
                continue;
            }
            // The count is advisory: when the disk is full the batch still goes out.
            let counted = self
                .conn
                .prepare_cached("UPDATE batches SET handed_out = ?2 WHERE batch_id = ?1")
                .and_then(|mut s| s.execute(params![batch_id, attempts.saturating_add(1)]));
            if let Err(e) = counted {
                match error::reclassify(e.into(), &self.path) {
                    QueueError::DiskFull(e) => {
                        tracing::warn!(%batch_id, error = %e, "could not record a send attempt")
                    }
                    other => return Err(other),
                }
            }
            self.claimed.insert(batch_id.clone());
            return Ok(Some(Batch {
                batch_id,
                events,
                attempts,
            }));
        }
    }

    /// (batch_id, first_id, last_id, handed_out) of the oldest recorded batch not claimed.
    fn oldest_unclaimed(&self) -> Result<Option<(String, i64, i64, u32)>, QueueError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT batch_id, first_id, last_id, handed_out FROM batches ORDER BY first_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u32>(3)?,
            ))
        })?;
        for row in rows {
            let row = row?;
            if !self.claimed.contains(&row.0) {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    /// Gives a handed-out batch back unsettled: the next [`Queue::next_batch`] hands it out again
    /// (same id). For a sender that stops trying (shutdown) while the queue lives on.
    pub fn release(&mut self, batch_id: &str) {
        self.claimed.remove(batch_id);
    }

    /// What is ready to be sent: events in no batch (and the oldest one's timestamp), and batches
    /// recorded but not handed out. Reads one row from disk at most.
    pub fn waiting(&self) -> Result<Waiting, QueueError> {
        let r = (|| {
            let oldest = self
                .conn
                .prepare_cached(
                    "SELECT timestamp_ns FROM events WHERE id > ?1 ORDER BY id LIMIT 1",
                )?
                .query_row(params![self.state.batched_upto], |r| r.get(0))
                .optional()?;
            let recorded: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM batches")?
                .query_row([], |r| r.get(0))?;
            Ok(Waiting {
                events: self.state.depth - self.state.in_flight,
                oldest_timestamp_ns: oldest,
                unclaimed_batches: (recorded as u64).saturating_sub(self.claimed.len() as u64),
            })
        })();
        self.finish(r)
    }

    /// The server took the batch (2xx): its events leave the queue and count as sent.
    pub fn ack(&mut self, batch_id: &str) -> Result<(), QueueError> {
        self.write(|q| q.ack_inner(batch_id))
    }

    fn ack_inner(&mut self, batch_id: &str) -> Result<(), QueueError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (first, last) = batch_range(&tx, batch_id)?;
        let (count, bytes) = size_of_range(&tx, first, last)?;
        tx.prepare_cached(DELETE_RANGE)?
            .execute(params![first, last])?;
        tx.prepare_cached(DELETE_BATCH)?
            .execute(params![batch_id])?;
        tx.prepare_cached("UPDATE meta SET sent_total = sent_total + ?1 WHERE id = 1")?
            .execute(params![sql_int(count)])?;
        tx.commit()?;
        self.claimed.remove(batch_id);
        self.remove_batch_events(count, bytes);
        self.state.sent += count;
        Ok(())
    }

    /// The server said the batch is too large (413): splits it into two halves, each under a new id;
    /// the first half (⌈n/2⌉ events) is what [`Queue::next_batch`] returns next, the second after it.
    /// Returns false, changing nothing, when the batch holds one event (dead-letter it instead).
    pub fn split(&mut self, batch_id: &str) -> Result<bool, QueueError> {
        self.write(|q| q.split_inner(batch_id))
    }

    fn split_inner(&mut self, batch_id: &str) -> Result<bool, QueueError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (first, last) = batch_range(&tx, batch_id)?;
        let (count, _) = size_of_range(&tx, first, last)?;
        if count < 2 {
            return Ok(false);
        }
        let first_half = count.div_ceil(2);
        let second_start: i64 = tx
            .prepare_cached("SELECT id FROM events WHERE id >= ?1 ORDER BY id LIMIT 1 OFFSET ?2")?
            .query_row(params![first, sql_int(first_half)], |r| r.get(0))?;
        tx.prepare_cached(DELETE_BATCH)?
            .execute(params![batch_id])?;
        let now = now_ns();
        let mut insert = tx.prepare_cached(INSERT_BATCH)?;
        insert.execute(params![new_batch_id(), first, second_start - 1, 0, now])?;
        insert.execute(params![new_batch_id(), second_start, last, 0, now])?;
        drop(insert);
        tx.commit()?;
        self.claimed.remove(batch_id);
        Ok(true)
    }

    /// The server refused the batch for good (a 4xx that is not retried): its events move to the
    /// dead-letter table with `status` and `reason` and count as dead-lettered. The table keeps the
    /// newest `max_events` entries.
    pub fn dead_letter(
        &mut self,
        batch_id: &str,
        status: u16,
        reason: &str,
    ) -> Result<(), QueueError> {
        self.write(|q| q.dead_letter_inner(batch_id, status, reason))
    }

    fn dead_letter_inner(
        &mut self,
        batch_id: &str,
        status: u16,
        reason: &str,
    ) -> Result<(), QueueError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (first, last) = batch_range(&tx, batch_id)?;
        let (count, bytes) = size_of_range(&tx, first, last)?;
        tx.prepare_cached(
            "INSERT INTO dead_letter (event_id, batch_id, status, reason, dead_at_ns, \
             stream_id, seq, timestamp_ns, payload) \
             SELECT id, ?3, ?4, ?5, ?6, stream_id, seq, timestamp_ns, payload FROM events \
             WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
        )?
        .execute(params![first, last, batch_id, status, reason, now_ns()])?;
        tx.prepare_cached(
            "DELETE FROM dead_letter WHERE id <= (SELECT max(id) FROM dead_letter) - ?1",
        )?
        .execute(params![sql_int(self.max_events)])?;
        tx.prepare_cached(DELETE_RANGE)?
            .execute(params![first, last])?;
        tx.prepare_cached(DELETE_BATCH)?
            .execute(params![batch_id])?;
        tx.prepare_cached(
            "UPDATE meta SET dead_lettered_total = dead_lettered_total + ?1 WHERE id = 1",
        )?
        .execute(params![sql_int(count)])?;
        tx.commit()?;
        self.claimed.remove(batch_id);
        self.remove_batch_events(count, bytes);
        self.state.dead_lettered += count;
        tracing::warn!(%batch_id, status, reason, events = count, "batch set aside (dead letter)");
        Ok(())
    }

    /// The newest `limit` dead-lettered events, oldest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let r = (|| {
            let mut stmt = self.conn.prepare_cached(
                "SELECT event_id, stream_id, seq, timestamp_ns, payload, batch_id, status, reason, \
                 dead_at_ns FROM dead_letter ORDER BY id DESC LIMIT ?1",
            )?;
            let mut out = stmt
                .query_map(params![limit as i64], |r| {
                    Ok(DeadLetter {
                        event: event_from_row(r)?,
                        batch_id: r.get(5)?,
                        status: r.get(6)?,
                        reason: r.get(7)?,
                        dead_at_ns: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })();
        self.finish(r)
    }

    /// The queue's counters and gauges; reads only the first event's timestamp from disk.
    pub fn stats(&self) -> Result<Stats, QueueError> {
        let oldest = self
            .conn
            .prepare_cached("SELECT timestamp_ns FROM events ORDER BY id LIMIT 1")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(QueueError::from);
        let s = &self.state;
        Ok(Stats {
            depth: s.depth,
            bytes: s.bytes,
            oldest_timestamp_ns: self.finish(oldest)?,
            received_total: s.received,
            sent_total: s.sent,
            dropped_total: s.dropped,
            dropped: SeverityCounts {
                info: s.dropped_by[0],
                warning: s.dropped_by[1],
                critical: s.dropped_by[2],
            },
            dead_lettered_total: s.dead_lettered,
            gaps_missed_total: s.gaps,
            in_flight: s.in_flight,
        })
    }

    fn remove_batch_events(&mut self, count: u64, bytes: u64) {
        self.state.depth -= count;
        self.state.bytes -= bytes;
        self.state.in_flight -= count;
    }

    fn finish<T>(&self, r: Result<T, QueueError>) -> Result<T, QueueError> {
        r.map_err(|e| error::reclassify(e, &self.path))
    }

    /// Runs a writing operation. After the store ran out of space, each write first tries to
    /// checkpoint the WAL, which stops it growing and is often all it takes to go on.
    fn write<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        if self.out_of_space {
            self.checkpoint();
        }
        let r = op(self).map_err(|e| error::reclassify(e, &self.path));
        match &r {
            Err(QueueError::DiskFull(e)) => {
                if !self.out_of_space {
                    tracing::warn!(store = %self.path.display(), error = %e, "queue store is out of space");
                }
                self.out_of_space = true;
                self.checkpoint();
            }
            Ok(_) if self.out_of_space => {
                tracing::info!(store = %self.path.display(), "queue store has room again");
                self.out_of_space = false;
            }
            _ => {}
        }
        r
    }

    /// Copies the WAL into the database and restarts it, so later writes reuse the WAL's space
    /// instead of growing it. Best effort: failing (e.g. for lack of space) changes nothing.
    fn checkpoint(&self) {
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        tracing::debug!(result = ?r, "WAL checkpoint (busy, log frames, checkpointed)");
    }
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<QueuedEvent> {
    Ok(QueuedEvent {
        id: r.get(0)?,
        stream_id: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        timestamp_ns: r.get(3)?,
        payload: r.get(4)?,
    })
}

fn batch_range(conn: &Connection, batch_id: &str) -> Result<(i64, i64), QueueError> {
    conn.prepare_cached(SELECT_BATCH)?
        .query_row(params![batch_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| QueueError::UnknownBatch(batch_id.to_owned()))
}

/// Number of events and payload bytes with ids in `[first, last]`.
fn size_of_range(conn: &Connection, first: i64, last: i64) -> rusqlite::Result<(u64, u64)> {
    conn.prepare_cached(SIZE_OF_RANGE)?
        .query_row(params![first, last], |r| {
            Ok((get_count(r, 0)?, get_count(r, 1)?))
        })
}

fn load_state(conn: &Connection) -> rusqlite::Result<State> {
    let (depth, bytes): (u64, u64) = conn.query_row(
        "SELECT count(*), coalesce(sum(length(payload)), 0) FROM events",
        [],
        |r| Ok((get_count(r, 0)?, get_count(r, 1)?)),
    )?;
    let batched_upto: i64 =
        conn.query_row("SELECT coalesce(max(last_id), 0) FROM batches", [], |r| {
            r.get(0)
        })?;
    let in_flight: u64 = conn.query_row(
        "SELECT count(*) FROM events WHERE id <= ?1",
        params![batched_upto],
        |r| get_count(r, 0),
    )?;
    conn.query_row(
        "SELECT received_total, sent_total, dropped_total, dead_lettered_total, gaps_total, \
         resume_stream_id, resume_seq, dropped_info, dropped_warning, dropped_critical \
         FROM meta WHERE id = 1",
        [],
        |r| {
            let resume = match (r.get::<_, Option<String>>(5)?, r.get::<_, Option<i64>>(6)?) {
                (Some(stream), Some(seq)) => Some((stream, seq as u64)),
                _ => None,
            };
            Ok(State {
                depth,
                bytes,
                in_flight,
                batched_upto,
                received: get_count(r, 0)?,
                sent: get_count(r, 1)?,
                dropped: get_count(r, 2)?,
                dropped_by: [get_count(r, 7)?, get_count(r, 8)?, get_count(r, 9)?],
                dead_lettered: get_count(r, 3)?,
                gaps: get_count(r, 4)?,
                resume,
            })
        },
    )
}

/// A count as SQLite's signed integer (counts never come near `i64::MAX`).
fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Column `idx` of `r` as a count.
fn get_count(r: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = r.get(idx)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, v))
}

/// 128 random bits in hex.
fn new_batch_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> NewEvent {
        NewEvent {
            stream_id: "s1".into(),
            seq,
            timestamp_ns: 1_000 + seq as i64,
            payload: format!("{{\"n\":{seq}}}").into_bytes(),
            severity: Severity::Info,
        }
    }

    fn open(dir: &tempfile::TempDir, max: u64) -> Queue {
        let (q, report) = Queue::open(&dir.path().join("q.db"), max).unwrap();
        assert_eq!(report, OpenReport::default());
        q
    }

    fn seqs(b: &Batch) -> Vec<u64> {
        b.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn zero_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = Queue::open(&dir.path().join("q.db"), 0);
        assert!(matches!(r, Err(QueueError::ZeroBound)), "{r:?}");
    }

    #[test]
    fn split_halves_keep_order_and_get_new_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = open(&dir, 100);
        q.push(&(1..=5).map(ev).collect::<Vec<_>>()).unwrap();
        let b = q.next_batch(10).unwrap().unwrap();
        assert!(q.split(&b.batch_id).unwrap());
        let first = q.next_batch(10).unwrap().unwrap();
        assert_eq!(seqs(&first), [1, 2, 3]);
        assert_ne!(first.batch_id, b.batch_id);
        assert_eq!(first.attempts, 0);
        assert!(matches!(
            q.ack(&b.batch_id),
            Err(QueueError::UnknownBatch(_))
        ));
        assert_eq!(q.stats().unwrap().in_flight, 5);
        q.ack(&first.batch_id).unwrap();
        let second = q.next_batch(1).unwrap().unwrap();
        assert_eq!(seqs(&second), [4, 5]);
        assert_ne!(second.batch_id, first.batch_id);
        assert!(q.split(&second.batch_id).unwrap());
        let one = q.next_batch(10).unwrap().unwrap();
        assert_eq!(seqs(&one), [4]);
        // A batch of one cannot be split, and stays as it is (handed out, so not handed again
        // until given back).
        assert!(!q.split(&one.batch_id).unwrap());
        let other_half = q.next_batch(10).unwrap().unwrap();
        assert_eq!(seqs(&other_half), [5]);
        assert!(q.next_batch(10).unwrap().is_none());
        q.release(&one.batch_id);
        assert_eq!(q.next_batch(10).unwrap().unwrap().batch_id, one.batch_id);
    }

    #[test]
    fn dead_letters_keep_event_status_and_reason_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = open(&dir, 3);
        q.push(&(1..=3).map(ev).collect::<Vec<_>>()).unwrap();
        let b = q.next_batch(2).unwrap().unwrap();
        q.dead_letter(&b.batch_id, 400, "bad payload").unwrap();
        let dl = q.dead_letters(10).unwrap();
        assert_eq!(dl.len(), 2);
        assert_eq!(dl[0].event, b.events[0]);
        assert_eq!((dl[1].status, dl[1].reason.as_str()), (400, "bad payload"));
        assert_eq!(dl[1].batch_id, b.batch_id);
        let s = q.stats().unwrap();
        assert_eq!((s.depth, s.dead_lettered_total, s.in_flight), (1, 2, 0));
        // More dead letters than the bound: the newest 3 are kept, all are counted.
        q.push(&(4..=5).map(ev).collect::<Vec<_>>()).unwrap();
        let b = q.next_batch(10).unwrap().unwrap();
        q.dead_letter(&b.batch_id, 422, "nope").unwrap();
        let kept: Vec<u64> = q
            .dead_letters(10)
            .unwrap()
            .iter()
            .map(|d| d.event.seq)
            .collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(q.stats().unwrap().dead_lettered_total, 5);
        assert!(matches!(
            q.dead_letter(&b.batch_id, 400, "again"),
            Err(QueueError::UnknownBatch(_))
        ));
    }

    #[test]
    fn counters_resume_point_gaps_and_attempts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = open(&dir, 4);
        assert_eq!(q.resume_point().unwrap(), None);
        assert_eq!(q.push(&(1..=6).map(ev).collect::<Vec<_>>()).unwrap(), 2);
        q.add_gap(7).unwrap();
        let b = q.next_batch(2).unwrap().unwrap();
        assert_eq!(seqs(&b), [3, 4]);
        // Several batches in flight: the next one is new; a given-back one comes again.
        let c = q.next_batch(2).unwrap().unwrap();
        assert_eq!((seqs(&c), c.attempts), (vec![5, 6], 0));
        assert!(q.next_batch(2).unwrap().is_none());
        q.release(&b.batch_id);
        assert_eq!(q.next_batch(2).unwrap().unwrap().attempts, 1);
        q.release(&c.batch_id);
        assert_eq!(q.next_batch(2).unwrap().unwrap().attempts, 1);
        let before = q.stats().unwrap();
        drop(q);
        let mut q = open(&dir, 4);
        assert_eq!(q.stats().unwrap(), before);
        assert_eq!(q.resume_point().unwrap(), Some(("s1".into(), 6)));
        let again = q.next_batch(100).unwrap().unwrap();
        assert_eq!(
            (again.batch_id.as_str(), again.attempts),
            (b.batch_id.as_str(), 2)
        );
        let s = q.stats().unwrap();
        assert_eq!(
            (
                s.depth,
                s.received_total,
                s.dropped_total,
                s.gaps_missed_total
            ),
            (4, 6, 2, 7)
        );
        assert_eq!(s.oldest_timestamp_ns, Some(1_003));
        assert_eq!(
            s.bytes,
            (3..=6).map(|n| ev(n).payload.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn overflow_spares_the_batch_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = open(&dir, 3);
        q.push(&(1..=3).map(ev).collect::<Vec<_>>()).unwrap();
        let b = q.next_batch(3).unwrap().unwrap();
        // Everything is in flight: the new events themselves go, counted.
        assert_eq!(q.push(&[ev(4), ev(5)]).unwrap(), 2);
        q.ack(&b.batch_id).unwrap();
        assert_eq!(q.next_batch(10).unwrap(), None);
        let s = q.stats().unwrap();
        assert_eq!((s.sent_total, s.dropped_total, s.depth), (3, 2, 0));
    }

    #[test]
    fn foreign_sqlite_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE accounts(id INTEGER PRIMARY KEY);")
            .unwrap();
        drop(other);
        let (q, report) = Queue::open(&path, 10).unwrap();
        let moved = report.moved_aside.unwrap();
        assert!(moved.exists());
        assert!(report.problem.unwrap().contains("not a shipperd queue"));
        assert_eq!(q.stats().unwrap().depth, 0);
    }

    /// Under pressure the bound drops waiting INFO events before any WARNING, and WARNING before
    /// CRITICAL, and counts each.
    #[test]
    fn the_bound_drops_the_least_severe_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = open(&dir, 4);
        let with = |seq: u64, severity: Severity| NewEvent {
            severity,
            ..ev(seq)
        };
        q.push(&[
            with(1, Severity::Critical),
            with(2, Severity::Info),
            with(3, Severity::Warning),
            with(4, Severity::Info),
        ])
        .unwrap();
        assert_eq!(
            q.push(&[with(5, Severity::Info), with(6, Severity::Info)])
                .unwrap(),
            2
        );
        assert_eq!(q.push(&[with(7, Severity::Critical)]).unwrap(), 1);
        assert_eq!(
            q.push(&[with(8, Severity::Warning), with(9, Severity::Critical)])
                .unwrap(),
            2
        );
        let kept: Vec<u64> = drain_all(&mut q);
        assert_eq!(kept, [1, 7, 8, 9]);
        let s = q.stats().unwrap();
        assert_eq!(
            (
                s.dropped_total,
                s.dropped.info,
                s.dropped.warning,
                s.dropped.critical
            ),
            (5, 4, 1, 0)
        );
    }

    fn drain_all(q: &mut Queue) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(b) = q.next_batch(100).unwrap() {
            q.ack(&b.batch_id).unwrap();
            out.extend(seqs(&b));
        }
        out
    }

    /// A store of schema version 1 (before severities) is upgraded in place: its events stay,
    /// counted as INFO, and nothing is moved aside.
    #[test]
    fn a_version_1_store_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL,
                 seq INTEGER NOT NULL, timestamp_ns INTEGER NOT NULL, payload BLOB NOT NULL);
             CREATE TABLE batches (batch_id TEXT PRIMARY KEY, first_id INTEGER NOT NULL,
                 last_id INTEGER NOT NULL, handed_out INTEGER NOT NULL, created_ns INTEGER NOT NULL);
             CREATE TABLE dead_letter (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL,
                 batch_id TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL,
                 dead_at_ns INTEGER NOT NULL, stream_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 timestamp_ns INTEGER NOT NULL, payload BLOB NOT NULL);
             CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), received_total INTEGER NOT NULL,
                 sent_total INTEGER NOT NULL, dropped_total INTEGER NOT NULL,
                 dead_lettered_total INTEGER NOT NULL, gaps_total INTEGER NOT NULL,
                 resume_stream_id TEXT, resume_seq INTEGER);
             INSERT INTO meta VALUES (1, 2, 0, 1, 0, 0, 's1', 2);
             INSERT INTO events (stream_id, seq, timestamp_ns, payload) VALUES ('s1', 2, 1, x'7b7d');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(old);
        let mut q = open(&dir, 2);
        let s = q.stats().unwrap();
        assert_eq!((s.depth, s.received_total, s.dropped_total), (1, 2, 1));
        assert_eq!(q.resume_point().unwrap(), Some(("s1".into(), 2)));
        q.push(&[
            NewEvent {
                severity: Severity::Critical,
                ..ev(3)
            },
            ev(4),
        ])
        .unwrap();
        assert_eq!(
            drain_all(&mut q),
            [3, 4],
            "the old event went first: it counts as INFO"
        );
        assert_eq!(q.stats().unwrap().dropped.info, 1);
    }
}
