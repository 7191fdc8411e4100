//! Recursive inotify watching and the translation of raw inotify events into file changes.
//!
//! inotify is per directory, so every directory below a watch path gets its own watch, added
//! when the directory appears (its contents, which may have been written before the watch was
//! in place, are picked up at the same time) and dropped when it goes. Renames are paired by
//! cookie; a `MOVED_FROM` without its `MOVED_TO` means the file left the tree (a deletion). A
//! regular file's creation is reported when its writer closes it, with its hash, so `cp` or a
//! download is one event rather than a create followed by a modify. When the kernel's event
//! queue overflows, the tree is rescanned against the baseline, so nothing is silently missed.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::attribution::{Attribution, Attributor, Kind};
use super::baseline::{self, Baseline, FileState, ScanLimits};
use super::tree::{self, Trees};
use sec_tracker_proto::v1::FileAction;

/// How long a `MOVED_FROM` waits for its `MOVED_TO` before it counts as a move out of the tree.
const MOVE_PAIRING: Duration = Duration::from_millis(500);
/// A created file still open for writing after this is reported as created anyway.
const CREATE_SETTLE: Duration = Duration::from_secs(2);
/// A file at least this large is hashed at most once per [`REHASH_EVERY`]: a writer closing a
/// 64 MiB file in a loop would otherwise have collectord read all of it every time. The writes in
/// between are folded into one report when the interval ends; none is lost.
const BIG_FILE: u64 = 1024 * 1024;
const REHASH_EVERY: Duration = Duration::from_secs(5);
/// Changes [`Watcher::read`] returns at most (give or take one inotify read) before the caller
/// emits them: about 10 ms of stat and hashing.
const EMIT_EVERY: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: FileAction,
    pub path: Vec<u8>,
    pub old_path: Vec<u8>,
    pub before: Option<FileState>,
    pub after: Option<FileState>,
    pub while_down: bool,
    /// Who wrote it (modifications, where fanotify is available).
    pub by: Option<Attribution>,
    /// Further writes folded into this one (a large file rewritten faster than it is re-hashed).
    pub coalesced: u32,
    /// Why `by` is empty, when it is.
    pub attribution_note: String,
}

impl Change {
    fn new(
        action: FileAction,
        path: &[u8],
        before: Option<FileState>,
        after: Option<FileState>,
    ) -> Change {
        Change {
            action,
            path: path.to_vec(),
            old_path: Vec::new(),
            before,
            after,
            while_down: false,
            by: None,
            coalesced: 0,
            attribution_note: String::new(),
        }
    }
}

/// What a scan found changed in `path` since the baseline kept `before` (at start, for changes
/// made while the agent was down, and after a queue overflow). Directories only count when they
/// appear or change mode/owner: their mtime moves with every entry.
pub(super) fn compare(path: &[u8], before: Option<FileState>, after: &FileState) -> Option<Change> {
    let Some(before) = before else {
        return Some(Change::new(
            FileAction::Created,
            path,
            None,
            Some(after.clone()),
        ));
    };
    let content_changed = !after.is_dir()
        && (before.mode & 0o170000 != after.mode & 0o170000
            || if before.sha256.is_some() && after.sha256.is_some() {
                before.sha256 != after.sha256
            } else {
                !before.same_content_metadata(after)
            });
    let action = if content_changed {
        FileAction::Modified
    } else if !before.same_attributes(after) {
        FileAction::Attributes
    } else {
        return None;
    };
    Some(Change::new(action, path, Some(before), Some(after.clone())))
}

/// The deletions a scan found: what the baseline kept that is no longer there.
fn deletions(gone: Vec<(Vec<u8>, FileState)>) -> impl Iterator<Item = Change> {
    gone.into_iter()
        .map(|(p, before)| Change::new(FileAction::Deleted, &p, Some(before), None))
}

/// Things worth telling the operator once.
#[derive(Debug)]
pub(super) enum Notice {
    WatchLimit {
        path: Vec<u8>,
        limit: String,
    },
    /// The baseline holds `monitoring.max_files` entries: files past it are reported but not
    /// kept (a change made to them while the agent is down is not seen at its next start).
    BaselineFull {
        limit: usize,
        at: Vec<u8>,
    },
    QueueOverflow,
    RootGone(Vec<u8>),
}

pub(super) struct Watcher {
    inotify: Inotify,
    trees: Trees,
    /// The roots that could be opened, as paths.
    roots: Vec<Vec<u8>>,
    wd_paths: HashMap<WatchDescriptor, Vec<u8>>,
    path_wds: HashMap<Vec<u8>, WatchDescriptor>,
    pub baseline: Baseline,
    excludes: Vec<Vec<u8>>,
    hash_limit: u64,
    /// Entries the baseline keeps at most; past it new files are reported but not kept.
    max_files: usize,
    baseline_full_reported: bool,
    /// Called during long walks: the monitor's liveness.
    progress: Box<dyn Fn() + Send>,
    pending_creates: HashMap<Vec<u8>, Instant>,
    /// Files whose creation was reported in the last [`CREATE_SETTLE`], and when: their state was
    /// taken when the creation was read, which may be after a `chmod u+s` that followed it.
    recently_created: HashMap<Vec<u8>, Instant>,
    pending_moves: HashMap<u32, (Vec<u8>, Instant)>,
    /// Large files hashed lately, and when.
    hashed_big: HashMap<Vec<u8>, Instant>,
    /// Large files written again before their next hash is due: when it is, the writes so far,
    /// and the first writer.
    deferred: HashMap<Vec<u8>, (Instant, u32, Option<Attribution>)>,
    watch_limit_reported: bool,
    pub notices: Vec<Notice>,
    pub dirty: bool,
    buf: Vec<u8>,
    attributor: Option<Attributor>,
    /// The last read returned early with events still queued: the attribution batch goes on.
    mid_batch: bool,
}

/// Watches are added through `/proc/self/fd/N` of a descriptor opened beneath the root, so no
/// `DONT_FOLLOW` (that magic link must be followed to the directory it stands for).
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

fn join(dir: &[u8], name: &OsStr) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

impl Watcher {
    /// A watcher of `roots`; also returns the roots that could not be opened, and why.
    pub(super) fn new(
        roots: &[PathBuf],
        excludes: Vec<Vec<u8>>,
        hash_limit: u64,
        max_files: usize,
    ) -> io::Result<(Watcher, Vec<(PathBuf, io::Error)>)> {
        let (trees, failed) = Trees::open(roots);
        let roots = trees.root_paths().map(<[u8]>::to_vec).collect();
        let w = Watcher {
            inotify: Inotify::init()?,
            trees,
            roots,
            wd_paths: HashMap::new(),
            path_wds: HashMap::new(),
            baseline: Baseline::in_memory(),
            excludes,
            hash_limit,
            max_files,
            baseline_full_reported: false,
            progress: Box::new(|| {}),
            pending_creates: HashMap::new(),
            recently_created: HashMap::new(),
            pending_moves: HashMap::new(),
            hashed_big: HashMap::new(),
            deferred: HashMap::new(),
            watch_limit_reported: false,
            notices: Vec::new(),
            dirty: false,
            buf: vec![0u8; 64 * 1024],
            attributor: None,
            mid_batch: false,
        };
        Ok((w, failed))
    }

    /// Called every few hundred entries of a long walk (start, overflow rescans).
    pub(super) fn on_progress(&mut self, f: impl Fn() + Send + 'static) {
        self.progress = Box::new(f);
    }

    /// Walks `from` against the baseline, storing what is there now; `visit` is told of each
    /// entry. Notes once when the baseline bound cut it short. Returns the entries that went.
    fn scan(
        &mut self,
        from: &[Vec<u8>],
        visit: &mut baseline::Visit<'_>,
    ) -> Vec<(Vec<u8>, FileState)> {
        let limits = ScanLimits {
            excludes: &self.excludes,
            hash_limit: self.hash_limit,
            max_files: self.max_files,
            progress: &*self.progress,
        };
        let (report, gone) = baseline::scan(&self.trees, from, &mut self.baseline, &limits, visit);
        if let Some(at) = report.capped_at {
            self.baseline_full(at);
        }
        gone
    }

    /// Walks `from` against the baseline; returns what changed (nothing when `report` is false:
    /// a first start has nothing to compare with).
    fn rescan(&mut self, from: &[Vec<u8>], report: bool) -> Vec<Change> {
        let mut out = Vec::new();
        let gone = self.scan(from, &mut |p, before, now| {
            if report {
                out.extend(compare(p, before, now));
            }
        });
        if report {
            out.extend(deletions(gone));
        }
        out
    }

    fn baseline_full(&mut self, at: Vec<u8>) {
        if !self.baseline_full_reported {
            self.baseline_full_reported = true;
            self.notices.push(Notice::BaselineFull {
                limit: self.max_files,
                at,
            });
        }
    }

    /// Keeps `s` as `path`'s state, unless the baseline is full and `path` is new to it.
    fn keep(&mut self, path: &[u8], s: FileState) {
        if self.baseline.len() >= self.max_files && !self.baseline.contains_key(path) {
            self.baseline_full(path.to_vec());
            return;
        }
        self.baseline.insert(path, &s);
    }

    /// Turns on attribution of modifications (call before [`Watcher::start`]).
    pub(super) fn attribute_with(&mut self, a: Attributor) {
        self.attributor = Some(a);
    }

    pub(super) fn attribution_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.attributor.as_ref().map(Attributor::fd)
    }

    /// What the attribution covers, for status.
    pub(super) fn attribution_mode(&self) -> &'static str {
        self.attributor.as_ref().map_or("none", Attributor::mode)
    }

    pub(super) fn attribution_on(&self) -> bool {
        self.attributor.is_some()
    }

    /// Directories whose modifications could not be attributed (fanotify mark limit).
    pub(super) fn attribution_mark_errors(&self) -> u64 {
        self.attributor.as_ref().map_or(0, |a| a.mark_errors)
    }

    pub(super) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.inotify)
    }

    pub(super) fn watch_count(&self) -> usize {
        self.wd_paths.len()
    }

    /// Watches every root and scans it against the baseline; returns what changed since a
    /// complete baseline was stored (nothing on a first start), and stores what is there now.
    pub(super) fn start(&mut self) -> Vec<Change> {
        for root in self.roots.clone() {
            self.watch_tree(&root);
        }
        let roots = self.roots.clone();
        let report = self.baseline.is_complete();
        let changes = self.rescan(&roots, report);
        self.baseline.mark_complete();
        self.baseline.commit();
        changes
    }

    /// Makes the baseline's changes durable (call every few seconds and at the end).
    pub(super) fn commit(&mut self) {
        self.baseline.commit();
        self.dirty = false;
    }

    /// Watches the directory open at `fd` (named `dir`) and marks it for attribution.
    fn watch_dir(&mut self, dir: &[u8], fd: BorrowedFd<'_>) {
        if self.path_wds.contains_key(dir) {
            return;
        }
        match self.inotify.watches().add(tree::fd_path(fd), mask()) {
            Ok(wd) => {
                self.wd_paths.insert(wd.clone(), dir.to_vec());
                self.path_wds.insert(dir.to_vec(), wd);
                if let Some(a) = self.attributor.as_mut() {
                    a.mark_dir(dir, fd);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if !self.watch_limit_reported {
                    self.watch_limit_reported = true;
                    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                        .map(|s| s.trim().to_owned())
                        .unwrap_or_else(|_| "?".into());
                    self.notices.push(Notice::WatchLimit {
                        path: dir.to_vec(),
                        limit,
                    });
                }
            }
            // Gone already, or not a directory any more: nothing to watch.
            Err(_) => {}
        }
    }

    /// Watches `dir` and every directory below it, each opened beneath its root (a link is
    /// never followed, another filesystem never entered).
    fn watch_tree(&mut self, dir: &[u8]) {
        let mut stack = vec![dir.to_vec()];
        while let Some(d) = stack.pop() {
            if baseline::excluded(&d, &self.excludes) {
                continue;
            }
            let Ok(fd) = self.trees.open_dir(&d) else {
                continue;
            };
            self.watch_dir(&d, fd.as_fd());
            let Ok(entries) = tree::list(fd) else {
                continue;
            };
            for e in entries.into_iter().filter(|e| e.is_dir) {
                stack.push(join(&d, &e.name));
            }
        }
    }

    fn unwatch_tree(&mut self, dir: &[u8]) {
        let gone: Vec<Vec<u8>> = self
            .path_wds
            .keys()
            .filter(|p| p.as_slice() == dir || is_under(p, dir))
            .cloned()
            .collect();
        for p in gone {
            if let Some(wd) = self.path_wds.remove(&p) {
                let _ = self.inotify.watches().remove(wd.clone());
                self.wd_paths.remove(&wd);
            }
            if let Some(a) = self.attributor.as_mut() {
                a.unmark_dir(&p, self.trees.open_dir(&p).ok());
            }
        }
    }

    /// A directory moved inside the tree: its watches stay, their paths change.
    fn rename_tree(&mut self, old: &[u8], new: &[u8]) {
        let rewrite = |p: &[u8]| -> Option<Vec<u8>> {
            if p == old {
                Some(new.to_vec())
            } else if is_under(p, old) {
                let mut n = new.to_vec();
                n.extend_from_slice(&p[old.len()..]);
                Some(n)
            } else {
                None
            }
        };
        let moved: Vec<(Vec<u8>, WatchDescriptor)> = self
            .path_wds
            .iter()
            .filter(|(p, _)| rewrite(p).is_some())
            .map(|(p, w)| (p.clone(), w.clone()))
            .collect();
        if let Some(a) = self.attributor.as_mut() {
            a.renamed_dir(old, new);
        }
        for (p, wd) in moved {
            let n = rewrite(&p).expect("filtered");
            self.path_wds.remove(&p);
            self.path_wds.insert(n.clone(), wd.clone());
            self.wd_paths.insert(wd, n);
        }
        self.baseline.rename_below(old, new);
    }

    /// Everything below a newly appeared directory: watched, and its files reported as created.
    fn adopt_tree(&mut self, dir: &[u8], out: &mut Vec<Change>) {
        self.watch_tree(dir);
        // What the baseline did not know is new; what it kept below a name that was just made
        // (a tree deleted and made again between two reads) went.
        let gone = self.scan(&[dir.to_vec()], &mut |p, before, now| {
            if before.is_none() {
                out.push(Change::new(FileAction::Created, p, None, Some(now.clone())));
            }
        });
        out.extend(deletions(gone));
        self.dirty = true;
    }

    fn stat(&self, path: &[u8]) -> Option<FileState> {
        baseline::restat(&self.trees, path, None, self.hash_limit)
    }

    /// Reads queued events (non-blocking) and returns the changes they make: all of them, or
    /// the first [`EMIT_EVERY`] or so when a writer keeps the queue full. The caller emits them
    /// and calls again at once (the descriptor is still readable): events are not held back
    /// until the writer pauses, and the stream gets them in steady steps rather than one burst.
    pub(super) fn read(&mut self, out: &mut Vec<Change>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let result = self.read_into(&mut buf, out);
        self.buf = buf;
        result
    }

    fn read_into(&mut self, buf: &mut [u8], out: &mut Vec<Change>) -> io::Result<()> {
        // fanotify first: the attribution of a close is queued with its inotify event. One
        // attribution batch lasts until the inotify queue has been emptied, across calls.
        if !self.mid_batch {
            if let Some(a) = self.attributor.as_mut() {
                a.begin_batch();
            }
        }
        let first = out.len();
        loop {
            let events: Vec<(WatchDescriptor, EventMask, u32, Option<Vec<u8>>)> =
                match self.inotify.read_events(buf) {
                    Ok(evs) => evs
                        .map(|e| {
                            (
                                e.wd,
                                e.mask,
                                e.cookie,
                                e.name.map(|n| n.as_bytes().to_vec()),
                            )
                        })
                        .collect(),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
                    Err(e) => return Err(e),
                };
            if events.is_empty() {
                self.mid_batch = false;
                return Ok(());
            }
            for (wd, mask, cookie, name) in events {
                let at = out.len();
                self.handle(wd, mask, cookie, name.as_deref(), out);
                // The event's own change (not what adopting a moved-in tree adds after it).
                if let Some(c) = out.get_mut(at) {
                    attribute(self.attributor.as_mut(), mask, c);
                }
            }
            if out.len() - first >= EMIT_EVERY {
                // Still mid-batch only if more is queued: an emptied queue ends the batch, as
                // the next read would.
                self.mid_batch = self.inotify_readable();
                return Ok(());
            }
        }
    }

    fn inotify_readable(&self) -> bool {
        let mut fds = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    fn handle(
        &mut self,
        wd: WatchDescriptor,
        mask: EventMask,
        cookie: u32,
        name: Option<&[u8]>,
        out: &mut Vec<Change>,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.notices.push(Notice::QueueOverflow);
            self.resync(out);
            return;
        }
        let Some(dir) = self.wd_paths.get(&wd).cloned() else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            self.wd_paths.remove(&wd);
            self.path_wds.remove(&dir);
            return;
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
            if self.roots.contains(&dir) {
                self.notices.push(Notice::RootGone(dir));
            }
            return;
        }
        let Some(name) = name else { return };
        let path = join(&dir, OsStr::from_bytes(name));
        if baseline::excluded(&path, &self.excludes) {
            return;
        }
        let is_dir = mask.contains(EventMask::ISDIR);
        self.dirty = true;
        if mask.contains(EventMask::CREATE) {
            if is_dir {
                let after = self.stat(&path);
                if let Some(s) = &after {
                    self.keep(&path, s.clone());
                }
                out.push(Change::new(FileAction::Created, &path, None, after));
                self.adopt_tree(&path, out);
            } else {
                match self.stat(&path) {
                    Some(s) if s.is_regular() => {
                        self.pending_creates.insert(path.clone(), Instant::now());
                        self.keep(&path, s);
                    }
                    after => {
                        if let Some(s) = &after {
                            self.keep(&path, s.clone());
                        }
                        out.push(Change::new(FileAction::Created, &path, None, after));
                    }
                }
            }
        } else if mask.contains(EventMask::CLOSE_WRITE) {
            let by = self
                .attributor
                .as_mut()
                .and_then(|a| a.take(Kind::Write, &path));
            if self.pending_creates.remove(&path).is_some() {
                let after = self.stat(&path);
                if let Some(s) = &after {
                    self.keep(&path, s.clone());
                }
                self.recently_created.insert(path.clone(), Instant::now());
                out.push(Change {
                    by,
                    ..Change::new(FileAction::Created, &path, None, after)
                });
            } else if let Some(due) = self.rehash_due(&path) {
                let d = self.deferred.entry(path).or_insert((due, 0, None));
                d.1 += 1;
                if d.2.is_none() {
                    d.2 = by;
                }
            } else {
                self.modified(&path, by, 0, out);
            }
        } else if mask.contains(EventMask::DELETE) {
            let before = self.baseline.remove(&path);
            self.pending_creates.remove(&path);
            self.deferred.remove(&path);
            if is_dir {
                self.unwatch_tree(&path);
                self.baseline.remove_below(&path);
            }
            out.push(Change::new(FileAction::Deleted, &path, before, None));
        } else if mask.contains(EventMask::MOVED_FROM) {
            self.pending_moves.insert(cookie, (path, Instant::now()));
        } else if mask.contains(EventMask::MOVED_TO) {
            match self.pending_moves.remove(&cookie) {
                Some((old, _)) => {
                    let replaced = self.baseline.get(&path);
                    let moved = self.baseline.remove(&old);
                    self.pending_creates.remove(&old);
                    self.deferred.remove(&old);
                    if is_dir {
                        self.rename_tree(&old, &path);
                    }
                    let after = self.stat(&path).or(moved.clone());
                    if let Some(s) = &after {
                        self.keep(&path, s.clone());
                    }
                    // Replacing an existing file by rename (an editor's save) changes that file's
                    // content: the "before" is what was replaced.
                    let before = replaced.or(moved);
                    out.push(Change {
                        action: FileAction::Renamed,
                        path,
                        old_path: old,
                        before,
                        after,
                        while_down: false,
                        by: None,
                        coalesced: 0,
                        attribution_note: String::new(),
                    });
                }
                None => {
                    // Moved in from outside the tree: new to us.
                    if is_dir {
                        let after = self.stat(&path);
                        if let Some(s) = &after {
                            self.keep(&path, s.clone());
                        }
                        out.push(Change::new(FileAction::Created, &path, None, after));
                        self.adopt_tree(&path, out);
                    } else {
                        let after = self.stat(&path);
                        let before = self.baseline.get(&path);
                        if let Some(s) = &after {
                            self.keep(&path, s.clone());
                        }
                        let action = if before.is_some() {
                            FileAction::Modified
                        } else {
                            FileAction::Created
                        };
                        out.push(Change::new(action, &path, before, after));
                    }
                }
            }
        } else if mask.contains(EventMask::ATTRIB) {
            let before = self.baseline.get(&path);
            let Some(after) =
                baseline::restat(&self.trees, &path, before.as_ref(), self.hash_limit)
            else {
                // Renamed or deleted before this event was read (a busy host, or a chmod u+s
                // then mv to hide it): the change is still reported, without its new values.
                if before.is_some() && !self.pending_creates.contains_key(&path) {
                    out.push(Change::new(FileAction::Attributes, &path, before, None));
                }
                return;
            };
            self.keep(&path, after.clone());
            if let Some(b) = before {
                // A time set into the past is reported too (timestomping); one moved forward
                // (touch) is what every write does, and is not.
                let time_set_back = after.mtime_ns < b.mtime_ns;
                // A set-id bit set right after the file was made may already be in the state its
                // creation was reported with (`: > f && chmod 4755 f`, read as one batch): the
                // change is reported all the same, its "before" then being that state.
                let set_id_after_create =
                    after.mode & 0o6000 != 0 && self.recently_created.remove(&path).is_some();
                if (!b.same_attributes(&after) || time_set_back || set_id_after_create)
                    && !self.pending_creates.contains_key(&path)
                {
                    out.push(Change::new(
                        FileAction::Attributes,
                        &path,
                        Some(b),
                        Some(after),
                    ));
                }
            }
        }
    }

    /// A close-write of `path`, hashed now: reported when its content changed.
    fn modified(
        &mut self,
        path: &[u8],
        by: Option<Attribution>,
        coalesced: u32,
        out: &mut Vec<Change>,
    ) {
        let before = self.baseline.get(path);
        let after = self.stat(path);
        if let Some(s) = &after {
            if s.size >= BIG_FILE {
                self.hashed_big.insert(path.to_vec(), Instant::now());
            }
            self.keep(path, s.clone());
        }
        let unchanged = match (&before, &after) {
            (Some(b), Some(a)) if b.sha256.is_some() && a.sha256.is_some() => b.sha256 == a.sha256,
            (Some(b), Some(a)) => b.same_content_metadata(a),
            _ => false,
        };
        if !unchanged {
            out.push(Change {
                by,
                coalesced,
                ..Change::new(FileAction::Modified, path, before, after)
            });
        }
    }

    /// When a large file hashed less than [`REHASH_EVERY`] ago may be hashed again; None when it
    /// may be now (small, or not hashed lately).
    fn rehash_due(&self, path: &[u8]) -> Option<Instant> {
        if let Some(d) = self.deferred.get(path) {
            return Some(d.0);
        }
        let last = *self.hashed_big.get(path)?;
        let due = last + REHASH_EVERY;
        (Instant::now() < due).then_some(due)
    }

    /// Expires rename halves and long-open creations, and hashes the large files whose deferred
    /// re-hash is due; call regularly.
    pub(super) fn tick(&mut self, out: &mut Vec<Change>) {
        let now = Instant::now();
        let due: Vec<Vec<u8>> = self
            .deferred
            .iter()
            .filter(|(_, (at, _, _))| now >= *at)
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            if let Some((_, writes, by)) = self.deferred.remove(&p) {
                self.modified(&p, by, writes.saturating_sub(1), out);
            }
        }
        self.hashed_big
            .retain(|_, at| now.duration_since(*at) < REHASH_EVERY);
        self.recently_created
            .retain(|_, at| now.duration_since(*at) < CREATE_SETTLE);
        let expired: Vec<u32> = self
            .pending_moves
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= MOVE_PAIRING)
            .map(|(c, _)| *c)
            .collect();
        for cookie in expired {
            if let Some((old, _)) = self.pending_moves.remove(&cookie) {
                // Moved out of the watched tree.
                let before = self.baseline.remove(&old);
                self.pending_creates.remove(&old);
                if before.as_ref().is_some_and(FileState::is_dir)
                    || self.path_wds.contains_key(&old)
                {
                    self.unwatch_tree(&old);
                    self.baseline.remove_below(&old);
                }
                self.dirty = true;
                out.push(Change::new(FileAction::Deleted, &old, before, None));
            }
        }
        let settled: Vec<Vec<u8>> = self
            .pending_creates
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= CREATE_SETTLE)
            .map(|(p, _)| p.clone())
            .collect();
        for p in settled {
            self.pending_creates.remove(&p);
            let after = self.stat(&p);
            if let Some(s) = &after {
                self.keep(&p, s.clone());
            }
            out.push(Change::new(FileAction::Created, &p, None, after));
        }
    }

    /// After a queue overflow: rescan everything and report the difference.
    /// Files whose creation was seen but not yet reported (still open for writing) are already in
    /// the baseline, so the rescan alone would find nothing new about them: they are taken out of
    /// it first, so that each is reported as created (or, if gone since, as created and deleted).
    /// Otherwise flooding the queue while a file is written would hide its creation.
    pub(super) fn resync(&mut self, out: &mut Vec<Change>) {
        for root in self.roots.clone() {
            self.watch_tree(&root);
        }
        let unreported: Vec<(Vec<u8>, Option<FileState>)> = self
            .pending_creates
            .drain()
            .map(|(p, _)| {
                let kept = self.baseline.remove(&p);
                (p, kept)
            })
            .collect();
        let roots = self.roots.clone();
        let changes = self.rescan(&roots, true);
        let reported: HashSet<&[u8]> = changes.iter().map(|c| c.path.as_slice()).collect();
        let mut gone = Vec::new();
        for (p, kept) in unreported {
            if !reported.contains(p.as_slice()) {
                // Gone before the rescan reached it: it was still created.
                gone.push(Change::new(FileAction::Created, &p, None, None));
                if kept.is_some() {
                    gone.push(Change::new(FileAction::Deleted, &p, kept, None));
                }
            }
        }
        out.extend(changes);
        out.extend(gone);
        self.dirty = true;
    }
}

/// Names the process behind `c` (the change one inotify event made), or says why none is named.
/// A close-write was attributed when it was handled; it only gets the reason here.
fn attribute(attributor: Option<&mut Attributor>, mask: EventMask, c: &mut Change) {
    if c.by.is_some() {
        return;
    }
    let Some(a) = attributor else {
        c.attribution_note = "fanotify unavailable (needs CAP_SYS_ADMIN at start)".into();
        return;
    };
    let kind = if mask.contains(EventMask::CLOSE_WRITE) {
        Kind::Write
    } else if mask.contains(EventMask::CREATE) {
        Kind::Create
    } else if mask.contains(EventMask::DELETE) {
        Kind::Delete
    } else if mask.contains(EventMask::MOVED_TO) {
        Kind::MovedTo
    } else if mask.contains(EventMask::ATTRIB) {
        Kind::Attrib
    } else {
        return;
    };
    if kind != Kind::Write {
        c.by = a.take(kind, &c.path);
    }
    if c.by.is_none() {
        c.attribution_note = a.why_not(kind, &c.path).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mode change whose file is renamed before the watcher reads the event (a busy host, or
    /// `chmod u+s` then `mv` to hide it) is still reported, and so is the rename.
    #[test]
    fn an_attribute_change_is_reported_when_the_file_is_gone_before_it_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::write(root.join("f"), b"x").unwrap();
        let (mut w, _) =
            Watcher::new(std::slice::from_ref(&root), Vec::new(), 1 << 20, usize::MAX).unwrap();
        w.start();
        // Both happen before the watcher reads anything.
        std::fs::set_permissions(root.join("f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::rename(root.join("f"), root.join("g")).unwrap();
        let mut out = Vec::new();
        for _ in 0..10 {
            w.read(&mut out).unwrap();
        }
        let attrib = out
            .iter()
            .find(|c| c.action == FileAction::Attributes)
            .expect("the mode change");
        assert!(
            attrib.path.ends_with(b"/f") && attrib.after.is_none(),
            "{attrib:?}"
        );
        let renamed = out
            .iter()
            .find(|c| c.action == FileAction::Renamed)
            .expect("the rename");
        assert_eq!(renamed.after.as_ref().unwrap().mode & 0o7777, 0o4755);
    }

    /// A writer that keeps the queue full does not hold events back until it pauses: with far
    /// more than EMIT_EVERY changes queued, one read returns a step of them, and reading on
    /// until the queue is empty returns every change exactly once.
    #[test]
    fn a_full_queue_is_returned_in_steps_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (mut w, _) =
            Watcher::new(std::slice::from_ref(&root), Vec::new(), 1 << 20, usize::MAX).unwrap();
        w.start();
        // Two events (create, close-write) of ~32 bytes per file: 4,000 files are ~4 reads of
        // the 64 KiB buffer, and half of the kernel's default queue of 16,384 events.
        let n = 4_000;
        for i in 0..n {
            std::fs::write(root.join(format!("f{i}")), b"x").unwrap();
        }

        let mut first = Vec::new();
        w.read(&mut first).unwrap();
        assert!(
            first.len() >= EMIT_EVERY && first.len() < n,
            "first step: {} changes",
            first.len()
        );
        let mut all = first;
        loop {
            let mut step = Vec::new();
            w.read(&mut step).unwrap();
            if step.is_empty() {
                break;
            }
            all.extend(step);
        }
        assert!(w.notices.is_empty(), "no overflow expected");
        let mut created: Vec<&[u8]> = all
            .iter()
            .filter(|c| c.action == FileAction::Created)
            .map(|c| c.path.as_slice())
            .collect();
        assert_eq!(created.len(), n, "one created event per file");
        created.sort();
        created.dedup();
        assert_eq!(created.len(), n, "no file twice");
    }

    /// The attack: a file is created and kept open while it is written, and the writer floods the
    /// watched tree until the kernel's queue overflows, so that the close-write is lost. The
    /// rescan that follows still reports the file as created, once, and so every flood file.
    #[test]
    fn a_creation_pending_when_the_queue_overflows_is_still_reported() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let (mut w, _) =
            Watcher::new(std::slice::from_ref(&root), Vec::new(), 1 << 20, usize::MAX).unwrap();
        w.start();
        let mut held = std::fs::File::create(root.join("held")).unwrap();
        held.write_all(b"payload").unwrap();
        let mut out = Vec::new();
        w.read(&mut out).unwrap();
        assert!(out.is_empty(), "not reported while open: {out:?}");

        let queue: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let n = queue; // two events each: twice the queue
        for i in 0..n {
            std::fs::write(root.join(format!("f{i}")), b"x").unwrap();
        }
        drop(held);
        loop {
            let mut step = Vec::new();
            w.read(&mut step).unwrap();
            if step.is_empty() {
                break;
            }
            out.extend(step);
        }
        assert!(
            w.notices.iter().any(|n| matches!(n, Notice::QueueOverflow)),
            "the flood overflowed the queue"
        );
        let created = |name: &str| {
            out.iter()
                .filter(|c| c.action == FileAction::Created && c.path.ends_with(name.as_bytes()))
                .count()
        };
        assert_eq!(created("/held"), 1, "the held file, once");
        let flood = out
            .iter()
            .filter(|c| c.action == FileAction::Created)
            .count();
        assert_eq!(flood, n + 1, "every flood file once, and the held one");
    }
}
