//! Who made a file change: fanotify reports, for each change in a marked directory, the pid of
//! the process that made it. inotify cannot say who; this is the part of "whodata" that fanotify
//! gives without audit (so it never competes with auditd for the audit socket).
//!
//! Two modes, the better one the kernel allows:
//!
//! - **Names** (`FAN_REPORT_DFID_NAME`, Linux ≥ 5.9): every creation, deletion, rename (both
//!   names), attribute change and close-after-write comes with the directory's file handle and
//!   the entry's name. Directory handles are learned when a directory is marked (by descriptor),
//!   so an event names its path without opening anything.
//! - **Descriptors** (older kernels): only close-after-write, with an open descriptor of the
//!   file, from which its path is read. Deletions, renames and attribute changes then say why
//!   they are not attributed.
//!
//! Needs CAP_SYS_ADMIN at start (the group is opened then); without it every event says why.
//! Pairing with inotify: both are queued by the same kernel call, so the fanotify events drained
//! just before an inotify batch is read (and, for the last moment, while it is processed) belong
//! to that batch. Each inotify event takes the oldest fanotify event of its kind and path; those
//! left over from an earlier batch are dropped rather than pinned on a later, unrelated change.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use crate::monitors::process::context::ContextReader;
use crate::monitors::process::proc_reader::ProcReader;

const MAX_PENDING: usize = 65_536;
/// How long one inotify batch may wait, in all, for fanotify events that are late: a flood that
/// overflows fanotify's queue must not slow the file monitor down.
const WAIT_BUDGET: Duration = Duration::from_millis(6);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    pub pid: u32,
    pub exe: Vec<u8>,
    pub uid: u32,
    pub user: String,
    /// Read with the rest, while the process most likely still lives.
    pub entity_id: String,
}

/// Which kind of change an attribution is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Write,
    Create,
    Delete,
    MovedFrom,
    MovedTo,
    Attrib,
}

impl Kind {
    fn from_mask(mask: u64) -> impl Iterator<Item = Kind> {
        [
            (MaskFlags::FAN_CLOSE_WRITE, Kind::Write),
            (MaskFlags::FAN_CREATE, Kind::Create),
            (MaskFlags::FAN_DELETE, Kind::Delete),
            (MaskFlags::FAN_MOVED_FROM, Kind::MovedFrom),
            (MaskFlags::FAN_MOVED_TO, Kind::MovedTo),
            (MaskFlags::FAN_ATTRIB, Kind::Attrib),
        ]
        .into_iter()
        .filter(move |(m, _)| mask & m.bits() != 0)
        .map(|(_, k)| k)
    }
}

/// The marks of each mode.
fn names_mask() -> MaskFlags {
    MaskFlags::FAN_CLOSE_WRITE
        | MaskFlags::FAN_CREATE
        | MaskFlags::FAN_DELETE
        | MaskFlags::FAN_MOVED_FROM
        | MaskFlags::FAN_MOVED_TO
        | MaskFlags::FAN_ATTRIB
        | MaskFlags::FAN_EVENT_ON_CHILD
        | MaskFlags::FAN_ONDIR
}
fn descriptors_mask() -> MaskFlags {
    MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_EVENT_ON_CHILD
}

/// An opened fanotify group and the mode it reports in.
pub struct Group {
    fan: Fanotify,
    names: bool,
}

/// The fanotify group (needs CAP_SYS_ADMIN; marks on directories later need only read access):
/// in names mode where the kernel has it, else in descriptors mode.
pub(super) fn init() -> nix::Result<Group> {
    let base = InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK;
    let names = InitFlags::from_bits_retain(base.bits() | libc::FAN_REPORT_DFID_NAME);
    if let Ok(fan) = Fanotify::init(names, EventFFlags::O_RDONLY | EventFFlags::O_CLOEXEC) {
        return Ok(Group { fan, names: true });
    }
    Fanotify::init(
        base,
        EventFFlags::O_RDONLY | EventFFlags::O_CLOEXEC | EventFFlags::O_LARGEFILE,
    )
    .map(|fan| Group { fan, names: false })
}

/// One event of a names-mode group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEvent {
    pub mask: u64,
    pub pid: i32,
    /// The directory's file handle: its type, then its bytes (as [`crate::kernel::dir_handle`]).
    pub dir: Vec<u8>,
    pub name: Vec<u8>,
}

/// Parses what a names-mode group read: `fanotify_event_metadata` records, each followed by
/// info records of which the directory-and-name one is used. Returns how many records were
/// malformed (the rest of the buffer is then skipped). Pure: fuzzed.
pub fn parse_named_events(buf: &[u8], out: &mut Vec<NamedEvent>) -> usize {
    const METADATA: usize = 24;
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut off = 0;
    while off + METADATA <= buf.len() {
        let event_len = u32_at(buf, off) as usize;
        let metadata_len = u16_at(buf, off + 6);
        if event_len < METADATA
            || metadata_len < METADATA
            || metadata_len > event_len
            || off + event_len > buf.len()
        {
            return 1;
        }
        let event = &buf[off..off + event_len];
        let mut mask_bytes = [0u8; 8];
        mask_bytes.copy_from_slice(&event[8..16]);
        let mask = u64::from_ne_bytes(mask_bytes);
        let pid = u32_at(event, 20) as i32;
        let (mut dir, mut name) = (Vec::new(), Vec::new());
        let mut i = metadata_len;
        while i + 4 <= event.len() {
            let (info_type, len) = (event[i], u16_at(event, i + 2));
            if len < 4 || i + len > event.len() {
                return 1;
            }
            // FAN_EVENT_INFO_TYPE_DFID_NAME: fsid (8), handle_bytes (4), handle_type (4),
            // the handle, then the entry's name, NUL-terminated and padded.
            if info_type == libc::FAN_EVENT_INFO_TYPE_DFID_NAME {
                let rec = &event[i + 4..i + len];
                if rec.len() >= 16 {
                    let bytes = u32_at(rec, 8) as usize;
                    if let Some(handle) = rec.get(16..16 + bytes) {
                        dir = rec[12..16].to_vec();
                        dir.extend_from_slice(handle);
                        let rest = &rec[16 + bytes..];
                        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                        name = rest[..end].to_vec();
                    }
                }
            }
            i += len;
        }
        out.push(NamedEvent {
            mask,
            pid,
            dir,
            name,
        });
        off += event_len;
    }
    0
}

/// Attributions of one kind and path waiting for their inotify event, with their batch.
type Pending = VecDeque<(Attribution, u64)>;

pub(super) struct Attributor {
    fan: Fanotify,
    names: bool,
    recent: HashMap<(Kind, Vec<u8>), Pending>,
    batch: u64,
    marked: HashSet<Vec<u8>>,
    /// Names mode: each marked directory's handle → its path.
    dirs: HashMap<Vec<u8>, Vec<u8>>,
    own_pid: i32,
    users: crate::users::UserNames,
    proc: ProcReader,
    context: ContextReader,
    /// Who each pid is, for the current batch: a flood from one process is read once.
    described: HashMap<i32, Attribution>,
    waited: Duration,
    buf: Vec<u8>,
    pub mark_errors: u64,
    /// fanotify's own queue overflowed: some changes went unattributed.
    pub overflows: u64,
}

impl Attributor {
    pub(super) fn new(group: Group) -> Attributor {
        Attributor {
            fan: group.fan,
            names: group.names,
            recent: HashMap::new(),
            batch: 0,
            marked: HashSet::new(),
            dirs: HashMap::new(),
            own_pid: std::process::id() as i32,
            users: crate::users::UserNames::new(),
            proc: ProcReader::new(0),
            context: ContextReader::new(),
            described: HashMap::new(),
            waited: Duration::ZERO,
            buf: vec![0; 64 * 1024],
            mark_errors: 0,
            overflows: 0,
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fan.as_fd()
    }

    /// Whether changes of `kind` can be attributed at all.
    pub(super) fn covers(&self, kind: Kind) -> bool {
        self.names || kind == Kind::Write
    }

    /// "names" or "writes only", for status.
    pub(super) fn mode(&self) -> &'static str {
        if self.names {
            "every change"
        } else {
            "writes only (kernel before 5.9)"
        }
    }

    /// Changes to the entries of the directory open at `fd` (named `dir`) will be attributed.
    /// Marked by descriptor: the name is never looked up again.
    pub(super) fn mark_dir(&mut self, dir: &[u8], fd: BorrowedFd<'_>) {
        if self.marked.contains(dir) {
            return;
        }
        let mask = if self.names {
            names_mask()
        } else {
            descriptors_mask()
        };
        match self
            .fan
            .mark::<_, std::path::Path>(MarkFlags::FAN_MARK_ADD, mask, fd, None)
        {
            Ok(()) => {
                self.marked.insert(dir.to_vec());
                if self.names {
                    match crate::kernel::dir_handle(fd) {
                        Ok(h) => {
                            self.dirs.insert(h, dir.to_vec());
                        }
                        Err(_) => self.mark_errors += 1,
                    }
                }
            }
            Err(_) => self.mark_errors += 1,
        }
    }

    /// The directory is gone or no longer watched; its mark goes with its inode, or here when
    /// it can still be opened beneath its root (`fd`).
    pub(super) fn unmark_dir(&mut self, dir: &[u8], fd: Option<OwnedFd>) {
        if self.marked.remove(dir) {
            self.dirs.retain(|_, p| p.as_slice() != dir);
            if let Some(fd) = fd {
                let mask = if self.names {
                    names_mask()
                } else {
                    descriptors_mask()
                };
                let _ = self.fan.mark::<_, std::path::Path>(
                    MarkFlags::FAN_MARK_REMOVE,
                    mask,
                    &fd,
                    None,
                );
            }
        }
    }

    /// A directory renamed: its mark (and handle) stay with the inode; only our bookkeeping moves.
    pub(super) fn renamed_dir(&mut self, old: &[u8], new: &[u8]) {
        let moved = |p: &[u8]| {
            let mut n = new.to_vec();
            n.extend_from_slice(&p[old.len()..]);
            n
        };
        let marked: Vec<Vec<u8>> = self
            .marked
            .iter()
            .filter(|p| p.starts_with(old))
            .cloned()
            .collect();
        for p in marked {
            self.marked.remove(&p);
            self.marked.insert(moved(&p));
        }
        for p in self.dirs.values_mut() {
            if p.starts_with(old) {
                *p = moved(p);
            }
        }
    }

    /// Call just before reading an inotify batch.
    pub(super) fn begin_batch(&mut self) {
        self.batch += 1;
        self.waited = Duration::ZERO;
        self.described.clear();
        let batch = self.batch;
        self.recent.retain(|_, q| {
            q.retain(|(_, b)| *b >= batch);
            !q.is_empty()
        });
        self.drain(batch);
    }

    /// Reads every queued fanotify event, tagging it with `batch`.
    fn drain(&mut self, batch: u64) {
        if self.names {
            self.drain_named(batch);
        } else {
            self.drain_descriptors(batch);
        }
    }

    fn drain_named(&mut self, batch: u64) {
        let mut events = Vec::new();
        loop {
            let n = match nix::unistd::read(self.fan.as_fd(), &mut self.buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            events.clear();
            if parse_named_events(&self.buf[..n], &mut events) > 0 {
                tracing::debug!("malformed fanotify record skipped");
            }
            for e in events.drain(..) {
                if e.mask & MaskFlags::FAN_Q_OVERFLOW.bits() != 0 {
                    self.overflows += 1;
                    continue;
                }
                if e.pid == self.own_pid || e.pid <= 0 {
                    continue;
                }
                let Some(dir) = self.dirs.get(&e.dir) else {
                    continue;
                };
                let path = join(dir, &e.name);
                let who = self.describe(e.pid);
                for kind in Kind::from_mask(e.mask) {
                    self.push(kind, path.clone(), who.clone(), batch);
                }
            }
        }
    }

    fn drain_descriptors(&mut self, batch: u64) {
        loop {
            let events = match self.fan.read_events() {
                Ok(e) if !e.is_empty() => e,
                _ => break,
            };
            for e in events {
                if e.mask().contains(MaskFlags::FAN_Q_OVERFLOW) {
                    self.overflows += 1;
                    continue;
                }
                let Some(fd) = e.fd() else { continue };
                let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                else {
                    continue;
                };
                let pid = e.pid();
                if pid == self.own_pid {
                    continue;
                }
                let who = self.describe(pid);
                self.push(
                    Kind::Write,
                    path.as_os_str().as_bytes().to_vec(),
                    who,
                    batch,
                );
            }
        }
    }

    fn push(&mut self, kind: Kind, path: Vec<u8>, who: Attribution, batch: u64) {
        if self.recent.len() >= MAX_PENDING {
            self.recent.clear();
        }
        self.recent
            .entry((kind, path))
            .or_default()
            .push_back((who, batch));
    }

    /// Who made the change of `kind` to `path`, for one inotify event of the current batch.
    pub(super) fn take(&mut self, kind: Kind, path: &[u8]) -> Option<Attribution> {
        if !self.covers(kind) {
            return None;
        }
        let key = (kind, path.to_vec());
        if let Some(a) = self.pop(&key) {
            return Some(a);
        }
        // Made between our drain and the inotify read, or fanotify's copy of the event is a few
        // microseconds behind inotify's (the kernel queues them one after the other): wait
        // briefly, where a mark says one is coming. What this also brings in belongs to this
        // batch or the next, so it is tagged for the next.
        let dir_marked = path
            .iter()
            .rposition(|b| *b == b'/')
            .is_some_and(|i| self.marked.contains(&path[..i.max(1)]));
        for attempt in 0..3 {
            if attempt > 0 {
                if !dir_marked || self.waited >= WAIT_BUDGET {
                    break;
                }
                let start = Instant::now();
                let mut fds = [PollFd::new(self.fan.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(2u8));
                self.waited += start.elapsed();
            }
            self.drain(self.batch + 1);
            if let Some(a) = self.pop(&key) {
                return Some(a);
            }
        }
        None
    }

    /// Why a change of `kind` to `path` has no process named, when [`Attributor::take`] found none.
    pub(super) fn why_not(&self, kind: Kind, path: &[u8]) -> &'static str {
        let dir = path
            .iter()
            .rposition(|b| *b == b'/')
            .map(|i| &path[..i.max(1)]);
        if !self.covers(kind) {
            "this kernel's fanotify reports only writes (names need Linux 5.9)"
        } else if !dir.is_some_and(|d| self.marked.contains(d)) {
            "its directory could not be marked (fanotify mark limit)"
        } else if self.overflows > 0 {
            "fanotify did not report it (its queue overflowed under load)"
        } else {
            "fanotify did not report it"
        }
    }

    fn pop(&mut self, key: &(Kind, Vec<u8>)) -> Option<Attribution> {
        let q = self.recent.get_mut(key)?;
        let a = q.pop_front().map(|(a, _)| a);
        if q.is_empty() {
            self.recent.remove(key);
        }
        a
    }

    /// The process's identity, read at once: it may exit right after its change.
    fn describe(&mut self, pid: i32) -> Attribution {
        if let Some(a) = self.described.get(&pid) {
            return a.clone();
        }
        let upid = pid as u32;
        let exe = self.proc.exe(upid);
        let (uid, user) = match self.proc.status(upid) {
            Some(s) => (s.uid, self.users.name(s.uid)),
            None => (u32::MAX, String::new()),
        };
        let a = Attribution {
            pid: upid,
            exe,
            uid,
            user,
            entity_id: self.context.entity_id_of(upid).unwrap_or_default(),
        };
        if self.described.len() < 4096 {
            self.described.insert(pid, a.clone());
        }
        a
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the kernel lays it out: metadata, then one DFID_NAME info record.
    fn record(mask: u64, pid: i32, handle_type: i32, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut info = vec![0u8; 8]; // fsid
        info.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        info.extend_from_slice(&handle_type.to_ne_bytes());
        info.extend_from_slice(handle);
        info.extend_from_slice(name);
        info.push(0);
        while (info.len() + 4) % 4 != 0 {
            info.push(0);
        }
        let info_len = info.len() + 4;
        let event_len = 24 + info_len;
        let mut r = Vec::new();
        r.extend_from_slice(&(event_len as u32).to_ne_bytes());
        r.extend_from_slice(&[3, 0]);
        r.extend_from_slice(&24u16.to_ne_bytes());
        r.extend_from_slice(&mask.to_ne_bytes());
        r.extend_from_slice(&(-1i32).to_ne_bytes());
        r.extend_from_slice(&pid.to_ne_bytes());
        r.extend_from_slice(&[libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0]);
        r.extend_from_slice(&(info_len as u16).to_ne_bytes());
        r.extend_from_slice(&info);
        r
    }

    #[test]
    fn named_events_parse_and_bad_lengths_stop() {
        let mut buf = record(
            libc::FAN_DELETE,
            42,
            1,
            &[9, 8, 7, 6, 5, 4, 3, 2],
            b"secret.txt",
        );
        buf.extend(record(
            libc::FAN_MOVED_FROM | libc::FAN_ONDIR,
            43,
            1,
            &[1; 8],
            b"d",
        ));
        let mut out = Vec::new();
        assert_eq!(parse_named_events(&buf, &mut out), 0);
        assert_eq!(out.len(), 2);
        let mut dir = 1i32.to_ne_bytes().to_vec();
        dir.extend_from_slice(&[9, 8, 7, 6, 5, 4, 3, 2]);
        assert_eq!(
            out[0],
            NamedEvent {
                mask: libc::FAN_DELETE,
                pid: 42,
                dir,
                name: b"secret.txt".to_vec()
            }
        );
        assert_eq!(
            Kind::from_mask(out[1].mask).collect::<Vec<_>>(),
            [Kind::MovedFrom]
        );
        // Lengths that point past the buffer, or are too small, stop the parse.
        for (cut, parsed) in [(buf.len() - 1, 1), (30, 0)] {
            let mut out = Vec::new();
            assert_eq!(parse_named_events(&buf[..cut], &mut out), 1, "cut at {cut}");
            assert_eq!(out.len(), parsed);
        }
        assert_eq!(
            parse_named_events(&buf[..23], &mut Vec::new()),
            0,
            "no whole header"
        );
        let mut zero = buf.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_named_events(&zero, &mut Vec::new()), 1);
    }
}
