//! The durable queue as shipperd uses it: nothing lost except what the bound drops (counted), the
//! same batch id after a crash, corrupt stores moved aside, a full disk survived.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sec_tracker_proto::v1::{Severity, SeverityCounts};
use shipperd::queue::{
    Batch, NewEvent, OpenReport, Queue, QueueError, QueuedEvent, Stats, Waiting,
};

/// Set in a child copy of this test binary to select what it does (see `child_process`).
const CHILD_MODE: &str = "SHIPPERD_QUEUE_TEST_CHILD";
const CHILD_PATH: &str = "SHIPPERD_QUEUE_TEST_PATH";
/// Starts what a child process reports on its stdout (after whatever the test harness printed).
const MARK: &str = "@@ ";

fn event(stream: &str, seq: u64, len: usize) -> NewEvent {
    let mut payload = format!("{{\"seq\":{seq},\"pad\":\"").into_bytes();
    payload.resize(len.max(payload.len() + 2) - 2, b'x');
    payload.extend_from_slice(b"\"}");
    NewEvent {
        stream_id: stream.to_owned(),
        seq,
        timestamp_ns: 1_700_000_000_000_000_000 + seq as i64,
        payload,
        severity: severity_of(len),
    }
}

/// A mix of severities, decided by the payload size so that the model can vary it.
fn severity_of(len: usize) -> Severity {
    match len % 7 {
        0 => Severity::Critical,
        1 | 2 => Severity::Warning,
        _ => Severity::Info,
    }
}

fn events(seqs: std::ops::Range<u64>, len: usize) -> Vec<NewEvent> {
    seqs.map(|s| event("stream-a", s, len)).collect()
}

fn same_event(q: &QueuedEvent, n: &NewEvent) -> bool {
    q.stream_id == n.stream_id
        && q.seq == n.seq
        && q.timestamp_ns == n.timestamp_ns
        && q.payload == n.payload
}

/// Takes and acknowledges everything left, returning it in order.
fn drain(q: &mut Queue) -> Vec<QueuedEvent> {
    let mut out = Vec::new();
    while let Some(b) = q.next_batch(1000).unwrap() {
        q.ack(&b.batch_id).unwrap();
        out.extend(b.events);
    }
    out
}

fn open_clean(path: &Path, max: u64) -> Queue {
    let (q, report) = Queue::open(path, max).unwrap();
    assert_eq!(
        report,
        OpenReport::default(),
        "a healthy store was reported"
    );
    q
}

/// What a killed process leaves on disk: copies of the store's files taken between calls.
fn crash_copy(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = PathBuf::from(format!("{}{suffix}", from.display()));
        if src.exists() {
            std::fs::copy(&src, format!("{}{suffix}", to.display())).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model-based property test.

#[derive(Debug, Clone)]
enum Op {
    /// Push events with these payload sizes.
    Push(Vec<usize>),
    NextBatch(usize),
    /// Acknowledge one of the batches whose id is known, chosen by the index (or an unknown id
    /// when there is none).
    Ack(usize),
    Split(usize),
    DeadLetter(usize, u16),
    /// Give a handed-out batch back unsettled.
    Release(usize),
    Gap(u64),
    /// Carry on from a copy of the files, as after kill -9, leaving the old queue open meanwhile.
    Crash,
    /// Close cleanly and open the same path again, perhaps with another bound.
    Reopen(Option<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..80, 0..6).prop_map(Op::Push),
        3 => (1usize..6).prop_map(Op::NextBatch),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Split),
        1 => (any::<usize>(), prop::sample::select(vec![400u16, 404, 422]))
            .prop_map(|(i, status)| Op::DeadLetter(i, status)),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (0u64..5).prop_map(Op::Gap),
        1 => Just(Op::Crash),
        1 => prop::option::of(1u64..12).prop_map(Op::Reopen),
    ]
}

#[derive(Debug)]
struct ModelBatch {
    /// Known once the queue handed it out.
    id: Option<String>,
    len: usize,
    /// Times handed out so far.
    handed_out: u32,
    /// Handed out by the current `Queue` and not settled or released.
    claimed: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// The queue in order, with the queue's id once seen.
    events: VecDeque<(NewEvent, Option<i64>)>,
    /// Batches over a prefix of `events`, oldest first.
    batches: VecDeque<ModelBatch>,
    seen_batch_ids: HashSet<String>,
    next_seq: u64,
    received: u64,
    sent: u64,
    dropped: u64,
    dropped_by: [u64; 3],
    dead_lettered: u64,
    gaps: u64,
    resume: Option<(String, u64)>,
}

impl Model {
    fn in_flight(&self) -> usize {
        self.batches.iter().map(|b| b.len).sum()
    }

    /// The index and id of one of the batches whose id is known, chosen by `pick`.
    fn known(&self, pick: usize) -> Option<(usize, String)> {
        let known: Vec<usize> = (0..self.batches.len())
            .filter(|&i| self.batches[i].id.is_some())
            .collect();
        let i = *known.get(pick % known.len().max(1))?;
        Some((i, self.batches[i].id.clone().unwrap()))
    }

    /// Where batch `i`'s events start in `events`.
    fn offset(&self, i: usize) -> usize {
        self.batches.iter().take(i).map(|b| b.len).sum()
    }

    fn remove_batch(&mut self, i: usize) -> u64 {
        let at = self.offset(i);
        let b = self.batches.remove(i).unwrap();
        self.events.drain(at..at + b.len);
        b.len as u64
    }

    fn unclaim_all(&mut self) {
        for b in &mut self.batches {
            b.claimed = false;
        }
    }

    fn expect_waiting(&self) -> Waiting {
        let in_flight = self.in_flight();
        Waiting {
            events: (self.events.len() - in_flight) as u64,
            oldest_timestamp_ns: self.events.get(in_flight).map(|(e, _)| e.timestamp_ns),
            unclaimed_batches: self.batches.iter().filter(|b| !b.claimed).count() as u64,
        }
    }

    fn expect_stats(&self) -> Stats {
        Stats {
            depth: self.events.len() as u64,
            bytes: self
                .events
                .iter()
                .map(|(e, _)| e.payload.len() as u64)
                .sum(),
            oldest_timestamp_ns: self.events.front().map(|(e, _)| e.timestamp_ns),
            received_total: self.received,
            sent_total: self.sent,
            dropped_total: self.dropped,
            dropped: SeverityCounts {
                info: self.dropped_by[0],
                warning: self.dropped_by[1],
                critical: self.dropped_by[2],
            },
            dead_lettered_total: self.dead_lettered,
            gaps_missed_total: self.gaps,
            in_flight: self.in_flight() as u64,
        }
    }

    /// Checks a batch's events against the model's events from `at`, learning their ids.
    fn check_events(&mut self, batch: &Batch, at: usize, len: usize) -> Result<(), TestCaseError> {
        prop_assert_eq!(batch.events.len(), len);
        let mut last_id = i64::MIN;
        for (got, (want, id)) in batch.events.iter().zip(self.events.iter_mut().skip(at)) {
            prop_assert!(same_event(got, want), "got {:?}, want {:?}", got, want);
            prop_assert!(got.id > last_id, "ids out of order");
            last_id = got.id;
            match id {
                Some(id) => prop_assert_eq!(*id, got.id, "an event's id changed"),
                None => *id = Some(got.id),
            }
        }
        Ok(())
    }
}

struct Harness {
    dir: tempfile::TempDir,
    path: PathBuf,
    generation: u32,
    queue: Queue,
    max: u64,
}

impl Harness {
    fn new(max: u64) -> Harness {
        // fsync is not what this test checks (a crash is a copy of the files): use memory when
        // there is a tmpfs, so that many cases run in seconds.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let path = dir.path().join("q0.db");
        let queue = open_clean(&path, max);
        Harness {
            dir,
            path,
            generation: 0,
            queue,
            max,
        }
    }

    fn crash(&mut self) {
        self.generation += 1;
        let next = self.dir.path().join(format!("q{}.db", self.generation));
        crash_copy(&self.path, &next);
        // The crashed copy is opened while the old connection still exists, then the old one goes.
        let queue = open_clean(&next, self.max);
        self.queue = queue;
        self.path = next;
    }

    fn reopen(&mut self, max: Option<u64>) {
        self.max = max.unwrap_or(self.max);
        let fresh_dir = tempfile::tempdir().unwrap();
        // Replace with a throwaway queue first so the old connection closes before reopening.
        let placeholder = open_clean(&fresh_dir.path().join("x.db"), 1);
        drop(std::mem::replace(&mut self.queue, placeholder));
        self.queue = open_clean(&self.path, self.max);
    }
}

fn run_model(max: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::new(max);
    // The bound can change at a reopen, which can leave more events in flight than it allows.
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Push(sizes) => {
                let new: Vec<NewEvent> = sizes
                    .iter()
                    .map(|&len| {
                        let n = m.next_seq;
                        m.next_seq += 1;
                        // Every third event uses the top of the u64 range.
                        let (stream, seq) = if n % 3 == 0 {
                            ("stream-b", u64::MAX - n)
                        } else {
                            ("stream-a", n)
                        };
                        event(stream, seq, len)
                    })
                    .collect();
                let dropped = h.queue.push(&new).unwrap();
                // An empty push is a no-op, even when a lowered bound is exceeded (the next
                // push trims).
                let mut expect = 0;
                if let Some(last) = new.last() {
                    m.resume = Some((last.stream_id.clone(), last.seq));
                    m.received += new.len() as u64;
                    m.events.extend(new.into_iter().map(|e| (e, None)));
                    let in_flight = m.in_flight();
                    let excess = (m.events.len() as u64).saturating_sub(h.max) as usize;
                    expect = excess.min(m.events.len() - in_flight);
                    // The oldest waiting INFO events go first, then WARNING, then CRITICAL.
                    let mut left = expect;
                    for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
                        let mut i = in_flight;
                        while left > 0 && i < m.events.len() {
                            if m.events[i].0.severity == severity {
                                m.events.remove(i);
                                m.dropped_by[severity as usize] += 1;
                                left -= 1;
                            } else {
                                i += 1;
                            }
                        }
                    }
                    m.dropped += expect as u64;
                }
                prop_assert_eq!(dropped, expect as u64, "drop count");
            }
            Op::NextBatch(max_events) => {
                let got = h.queue.next_batch(max_events).unwrap();
                let in_flight = m.in_flight();
                if let Some(i) = m.batches.iter().position(|b| !b.claimed) {
                    let batch = got.expect("a recorded, unclaimed batch must be handed out");
                    let (len, handed_out) = (m.batches[i].len, m.batches[i].handed_out);
                    match &m.batches[i].id {
                        Some(id) => prop_assert_eq!(&batch.batch_id, id, "resent batch id"),
                        None => prop_assert!(
                            m.seen_batch_ids.insert(batch.batch_id.clone()),
                            "a split half reused a batch id"
                        ),
                    }
                    prop_assert_eq!(batch.attempts, handed_out);
                    let at = m.offset(i);
                    m.check_events(&batch, at, len)?;
                    let b = &mut m.batches[i];
                    b.id = Some(batch.batch_id.clone());
                    b.handed_out += 1;
                    b.claimed = true;
                } else if m.events.len() == in_flight {
                    prop_assert!(got.is_none(), "batch with nothing waiting: {:?}", got);
                } else {
                    let batch = got.expect("events are waiting");
                    let len = max_events.min(m.events.len() - in_flight);
                    prop_assert!(
                        m.seen_batch_ids.insert(batch.batch_id.clone()),
                        "a new batch reused an id"
                    );
                    prop_assert_eq!(batch.attempts, 0);
                    m.check_events(&batch, in_flight, len)?;
                    m.batches.push_back(ModelBatch {
                        id: Some(batch.batch_id.clone()),
                        len,
                        handed_out: 1,
                        claimed: true,
                    });
                }
            }
            Op::Ack(pick) => match m.known(pick) {
                Some((i, id)) => {
                    h.queue.ack(&id).unwrap();
                    m.sent += m.remove_batch(i);
                }
                None => {
                    let r = h.queue.ack("0123456789abcdef");
                    prop_assert!(matches!(r, Err(QueueError::UnknownBatch(_))), "{:?}", r);
                }
            },
            Op::Split(pick) => match m.known(pick) {
                Some((i, id)) => {
                    let split = h.queue.split(&id).unwrap();
                    let len = m.batches[i].len;
                    prop_assert_eq!(split, len > 1);
                    if split {
                        m.batches.remove(i);
                        for half in [len / 2, len.div_ceil(2)] {
                            m.batches.insert(
                                i,
                                ModelBatch {
                                    id: None,
                                    len: half,
                                    handed_out: 0,
                                    claimed: false,
                                },
                            );
                        }
                    }
                }
                None => {
                    let r = h.queue.split("nope");
                    prop_assert!(matches!(r, Err(QueueError::UnknownBatch(_))), "{:?}", r);
                }
            },
            Op::DeadLetter(pick, status) => match m.known(pick) {
                Some((i, id)) => {
                    h.queue.dead_letter(&id, status, "rejected").unwrap();
                    m.dead_lettered += m.remove_batch(i);
                }
                None => {
                    let r = h.queue.dead_letter("nope", status, "rejected");
                    prop_assert!(matches!(r, Err(QueueError::UnknownBatch(_))), "{:?}", r);
                }
            },
            Op::Release(pick) => {
                if let Some((i, id)) = m.known(pick) {
                    h.queue.release(&id);
                    m.batches[i].claimed = false;
                }
            }
            Op::Gap(n) => {
                h.queue.add_gap(n).unwrap();
                m.gaps += n;
            }
            Op::Crash => {
                h.crash();
                m.unclaim_all();
            }
            Op::Reopen(max) => {
                h.reopen(max);
                m.unclaim_all();
            }
        }
        prop_assert_eq!(h.queue.stats().unwrap(), m.expect_stats());
        prop_assert_eq!(h.queue.waiting().unwrap(), m.expect_waiting());
        prop_assert_eq!(h.queue.resume_point().unwrap(), m.resume.clone());
    }
    // Nothing lost: what is left comes out in order, once, and then the queue stays empty.
    for b in &m.batches {
        if let Some(id) = &b.id {
            h.queue.release(id);
        }
    }
    let sent_before = m.sent;
    let rest = drain(&mut h.queue);
    prop_assert_eq!(rest.len(), m.events.len());
    for (got, (want, id)) in rest.iter().zip(&m.events) {
        prop_assert!(same_event(got, want), "got {:?}, want {:?}", got, want);
        if let Some(id) = id {
            prop_assert_eq!(got.id, *id);
        }
    }
    let stats = h.queue.stats().unwrap();
    prop_assert_eq!(stats.sent_total, sent_before + rest.len() as u64);
    prop_assert_eq!(
        stats.received_total,
        stats.sent_total + stats.dropped_total + stats.dead_lettered_total
    );
    h.crash();
    prop_assert!(h.queue.next_batch(10).unwrap().is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_a_vecdeque_model(
        max in 1u64..12,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run_model(max, ops)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupt stores.

fn assert_moved_aside(path: &Path, report: &OpenReport) -> PathBuf {
    let moved = report
        .moved_aside
        .clone()
        .expect("the store should be moved aside");
    assert!(moved.exists(), "{} does not exist", moved.display());
    let name = moved.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("q.db.corrupt-"), "{name}");
    assert_eq!(moved.parent(), path.parent());
    assert!(report.problem.as_deref().is_some_and(|p| !p.is_empty()));
    moved
}

fn assert_fresh_and_usable(q: &mut Queue) {
    let s = q.stats().unwrap();
    assert_eq!((s.depth, s.received_total, s.sent_total), (0, 0, 0));
    assert_eq!(q.resume_point().unwrap(), None);
    assert!(q.next_batch(10).unwrap().is_none());
    q.push(&events(0..3, 100)).unwrap();
    assert_eq!(drain(q).len(), 3);
}

#[test]
fn garbage_file_is_moved_aside_and_a_fresh_store_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let (mut q, report) = Queue::open(&path, 100).unwrap();
    let moved = assert_moved_aside(&path, &report);
    assert_eq!(
        std::fs::read(&moved).unwrap(),
        garbage,
        "the old file is kept as it was"
    );
    assert_fresh_and_usable(&mut q);
    drop(q);
    // The fresh store is healthy: nothing more is moved aside.
    let q = open_clean(&path, 100);
    assert_eq!(q.stats().unwrap().received_total, 3);
}

#[test]
fn truncated_store_is_moved_aside_and_a_fresh_store_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut q = open_clean(&path, 100_000);
    for chunk in 0..10 {
        q.push(&events(chunk * 200..(chunk + 1) * 200, 300))
            .unwrap();
    }
    drop(q); // a clean close checkpoints everything into the main file
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 500_000, "store is only {len} bytes");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let (mut q, report) = Queue::open(&path, 100_000).unwrap();
    let moved = assert_moved_aside(&path, &report);
    assert_eq!(std::fs::metadata(&moved).unwrap().len(), len / 2);
    assert_fresh_and_usable(&mut q);
}

// ---------------------------------------------------------------------------------------------
// Restarts and crashes.

#[test]
fn restart_twice_with_nothing_new_resends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut q = open_clean(&path, 1000);
    q.push(&events(0..5, 200)).unwrap();
    let b = q.next_batch(100).unwrap().unwrap();
    assert_eq!(b.events.len(), 5);
    q.ack(&b.batch_id).unwrap();
    drop(q);
    for _ in 0..2 {
        let mut q = open_clean(&path, 1000);
        assert!(q.next_batch(100).unwrap().is_none(), "a batch was re-sent");
        let s = q.stats().unwrap();
        assert_eq!((s.depth, s.received_total, s.sent_total), (0, 5, 5));
        assert_eq!(q.resume_point().unwrap(), Some(("stream-a".into(), 4)));
    }
}

#[test]
fn batch_in_flight_at_kill_9_comes_back_with_the_same_id_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, "push-forever")
        .env(CHILD_PATH, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut batch: Option<(String, u64, u64)> = None;
    let mut pushed_upto = None;
    let mut pushes = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let Some((_, said)) = line.split_once(MARK) else {
            continue;
        };
        let words: Vec<&str> = said.split_whitespace().collect();
        match words.as_slice() {
            ["batch", id, first, last] => {
                batch = Some((
                    id.to_string(),
                    first.parse().unwrap(),
                    last.parse().unwrap(),
                ))
            }
            ["pushed", last] => {
                pushed_upto = Some(last.parse::<u64>().unwrap());
                pushes += 1;
                if pushes == 40 {
                    child.kill().unwrap(); // SIGKILL, most likely in the middle of a push
                    break;
                }
            }
            _ => {}
        }
    }
    child.wait().unwrap();
    let (batch_id, first, last) = batch.expect("the child handed out a batch");
    let pushed_upto = pushed_upto.expect("the child pushed");
    let mut q = open_clean(&path, u64::MAX);
    let again = q.next_batch(7).unwrap().unwrap();
    assert_eq!(again.batch_id, batch_id);
    assert_eq!(again.attempts, 1);
    let seqs: Vec<u64> = again.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (first..=last).collect::<Vec<_>>());
    q.ack(&again.batch_id).unwrap();
    // Every push that returned before the kill is there, in order, with no hole.
    let rest = drain(&mut q);
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert!(seqs.last().copied() >= Some(pushed_upto));
    assert_eq!(seqs, (last + 1..=*seqs.last().unwrap()).collect::<Vec<_>>());
    let s = q.stats().unwrap();
    assert_eq!(s.received_total, s.sent_total);
    assert_eq!(s.received_total, seqs.last().unwrap() + 1);
}

/// Not a test on its own: the body of the child processes the tests above and below start.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let path = PathBuf::from(std::env::var_os(CHILD_PATH).unwrap());
    match mode.as_str() {
        "push-forever" => {
            let mut q = open_clean(&path, u64::MAX);
            q.push(&events(0..500, 300)).unwrap();
            let b = q.next_batch(50).unwrap().unwrap();
            let (first, last) = (b.events[0].seq, b.events.last().unwrap().seq);
            println!("{MARK}batch {} {first} {last}", b.batch_id);
            let started = Instant::now();
            let mut next = 500;
            while started.elapsed() < Duration::from_secs(60) {
                q.push(&events(next..next + 100, 300)).unwrap();
                next += 100;
                println!("{MARK}pushed {}", next - 1);
            }
        }
        "file-size-limit" => {
            use nix::sys::resource::{setrlimit, Resource};
            use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
            // As shipperd must: without this, SIGXFSZ kills the process instead of EFBIG.
            let mut set = SigSet::empty();
            set.add(Signal::SIGXFSZ);
            pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).unwrap();
            setrlimit(Resource::RLIMIT_FSIZE, 256 * 1024, 256 * 1024).unwrap();
            let mut q = open_clean(&path, u64::MAX);
            let mut pushed = 0;
            let outcome = loop {
                match q.push(&events(pushed..pushed + 20, 300)) {
                    Ok(_) => pushed += 20,
                    Err(e) => break e,
                }
                assert!(pushed < 100_000, "never hit the limit");
            };
            let depth = q.stats().unwrap().depth;
            match outcome {
                QueueError::DiskFull(_) => {
                    println!("{MARK}outcome disk-full pushed {pushed} depth {depth}")
                }
                other => println!("{MARK}outcome other {other:?}"),
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk.

/// Whether the tests must not skip what the machine cannot do.
fn require_all() -> bool {
    std::env::var_os("SEC_TRACKER_REQUIRE_ALL").is_some()
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(!require_all(), "cannot mount a tmpfs: {why}");
                eprintln!("skipped: cannot mount a tmpfs ({why}); needs root");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
fn disk_full_is_reported_survived_and_recovered_from() {
    let Some(fs) = Tmpfs::mount("256k") else {
        return;
    };
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![0u8; 128 * 1024]).unwrap();
    let path = fs.path().join("q.db");
    let mut q = open_clean(&path, u64::MAX);
    let mut pushed = 0u64;
    let full = loop {
        match q.push(&events(pushed..pushed + 20, 300)) {
            Ok(dropped) => {
                assert_eq!(dropped, 0);
                pushed += 20;
            }
            Err(e) => break e,
        }
        assert!(pushed < 100_000, "a 256 KiB file system never filled up");
    };
    assert!(matches!(full, QueueError::DiskFull(_)), "{full:?}");
    assert!(pushed > 0);
    // The queue still answers, and the failed push left no trace.
    let s = q.stats().unwrap();
    assert_eq!((s.depth, s.received_total), (pushed, pushed));
    assert_eq!(
        q.resume_point().unwrap(),
        Some(("stream-a".into(), pushed - 1))
    );
    let taken = q.next_batch(10);
    eprintln!(
        "disk full after {pushed} events; next_batch: {:?}",
        taken.as_ref().map(|b| b.as_ref().map(|b| b.events.len()))
    );
    match taken {
        Ok(Some(b)) => {
            assert_eq!(b.events.len(), 10);
            assert_eq!(b.events[0].seq, 0);
            let acked = q.ack(&b.batch_id);
            eprintln!("ack on a full disk: {acked:?}");
            match acked {
                Ok(()) => assert_eq!(q.stats().unwrap().depth, pushed - 10),
                // Unsettled: the sender gives it back, to be sent again under the same id.
                Err(QueueError::DiskFull(_)) => q.release(&b.batch_id),
                Err(e) => panic!("ack on a full disk: {e}"),
            }
        }
        Ok(None) => panic!("the queue lost its events"),
        Err(QueueError::DiskFull(_)) => {}
        Err(e) => panic!("next_batch on a full disk: {e}"),
    }
    // Pushing fails again while the disk is full, unless the ack just made room inside the store.
    match q.push(&events(pushed..pushed + 20, 300)) {
        Ok(_) => pushed += 20,
        Err(QueueError::DiskFull(_)) => {}
        Err(e) => panic!("push on a full disk: {e}"),
    }
    // Room again: pushing works, and every event pushed successfully is still there, in order.
    std::fs::remove_file(&filler).unwrap();
    q.push(&events(pushed..pushed + 20, 300)).unwrap();
    pushed += 20;
    let sent_before = q.stats().unwrap().sent_total;
    let rest = drain(&mut q);
    let seqs: Vec<u64> = rest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (sent_before..pushed).collect::<Vec<_>>());
    let s = q.stats().unwrap();
    assert_eq!(
        (s.depth, s.received_total, s.sent_total),
        (0, pushed, pushed)
    );
    drop(q);
    // And the store is healthy afterwards.
    let q = open_clean(&path, u64::MAX);
    assert_eq!(q.stats().unwrap().sent_total, pushed);
}

#[test]
fn file_size_limit_is_reported_as_disk_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, "file-size-limit")
        .env(CHILD_PATH, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(MARK).map(|(_, said)| said))
        .unwrap_or_else(|| panic!("no outcome in {stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[1], "disk-full", "{line}");
    assert_eq!(
        words[3], words[5],
        "depth differs from what was pushed: {line}"
    );
    // Without the limit, everything pushed is there.
    let mut q = open_clean(&path, u64::MAX);
    let pushed: u64 = words[3].parse().unwrap();
    assert_eq!(drain(&mut q).len() as u64, pushed);
}

// ---------------------------------------------------------------------------------------------
// Throughput.

#[test]
#[ignore = "benchmark: cargo test -p shipperd --release --test queue -- --ignored --nocapture"]
fn push_throughput() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("q.db");
    let mut q = open_clean(&path, 10_000_000);
    const TOTAL: u64 = 200_000;
    const GROUP: u64 = 500;
    let groups: Vec<Vec<NewEvent>> = (0..TOTAL / GROUP)
        .map(|g| events(g * GROUP..(g + 1) * GROUP, 300))
        .collect();
    let started = Instant::now();
    for g in &groups {
        q.push(g).unwrap();
    }
    let push = started.elapsed();
    let started = Instant::now();
    let mut taken = 0;
    while let Some(b) = q.next_batch(500).unwrap() {
        taken += b.events.len();
        q.ack(&b.batch_id).unwrap();
    }
    let drain = started.elapsed();
    assert_eq!(taken as u64, TOTAL);
    println!(
        "push: {TOTAL} events of ~300 bytes in groups of {GROUP}: {:.0} events/s ({:.2} s); \
         next_batch(500)+ack: {:.0} events/s",
        TOTAL as f64 / push.as_secs_f64(),
        push.as_secs_f64(),
        TOTAL as f64 / drain.as_secs_f64()
    );
}
