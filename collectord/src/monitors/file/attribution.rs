//! Who modified a file: fanotify reports, for each close-after-write in a marked directory, the
//! pid of the process that closed it and an open descriptor of the file (from which we read its
//! path). The watcher asks for the attribution of each modification it reports. inotify cannot
//! say who made a change; this is the part of "whodata" that fanotify gives without audit (so
//! it never competes with auditd for the audit socket).
//!
//! Needs CAP_SYS_ADMIN; without it (or on a kernel without fanotify) every event says
//! `attribution_unavailable`. Only modifications (close-write) are attributed: creations,
//! deletions and renames would need fanotify's FID mode.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use crate::monitors::process::proc_reader::ProcReader;

const MAX_PENDING: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attribution {
    pub pid: u32,
    pub exe: Vec<u8>,
    pub uid: u32,
    pub user: String,
}

/// Pairing fanotify's closes with inotify's: both are queued by the same kernel call, so the
/// closes drained just before an inotify batch is read (and, for the last moment, while it is
/// processed) belong to that batch. Each close-write in the batch takes the oldest close of its
/// path; closes left over from an earlier batch (inotify merges back-to-back identical events)
/// are dropped rather than pinned on a later, unrelated write.
pub(super) struct Attributor {
    fan: Fanotify,
    recent: HashMap<Vec<u8>, VecDeque<(Attribution, u64)>>,
    batch: u64,
    marked: HashSet<Vec<u8>>,
    own_pid: i32,
    users: crate::users::UserNames,
    proc: ProcReader,
    pub mark_errors: u64,
}

/// The fanotify group (needs CAP_SYS_ADMIN; marks on directories later need only read access).
pub(super) fn init() -> nix::Result<Fanotify> {
    Fanotify::init(
        InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
        EventFFlags::O_RDONLY | EventFFlags::O_CLOEXEC | EventFFlags::O_LARGEFILE,
    )
}

impl Attributor {
    pub(super) fn new(fan: Fanotify) -> Attributor {
        Attributor {
            fan,
            recent: HashMap::new(),
            batch: 0,
            marked: HashSet::new(),
            own_pid: std::process::id() as i32,
            users: crate::users::UserNames::new(),
            proc: ProcReader::new(0),
            mark_errors: 0,
        }
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fan.as_fd()
    }

    /// Close-writes of the entries of the directory open at `fd` (named `dir`) will be
    /// attributed. Marked by descriptor: the name is never looked up again.
    pub(super) fn mark_dir(&mut self, dir: &[u8], fd: BorrowedFd<'_>) {
        if self.marked.contains(dir) {
            return;
        }
        match self.fan.mark::<_, std::path::Path>(
            MarkFlags::FAN_MARK_ADD,
            MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_EVENT_ON_CHILD,
            fd,
            None,
        ) {
            Ok(()) => {
                self.marked.insert(dir.to_vec());
            }
            Err(_) => self.mark_errors += 1,
        }
    }

    /// The directory is gone or no longer watched; its mark goes with its inode, or here when
    /// it can still be opened beneath its root (`fd`).
    pub(super) fn unmark_dir(&mut self, dir: &[u8], fd: Option<OwnedFd>) {
        if self.marked.remove(dir) {
            if let Some(fd) = fd {
                let _ = self.fan.mark::<_, std::path::Path>(
                    MarkFlags::FAN_MARK_REMOVE,
                    MaskFlags::FAN_CLOSE_WRITE | MaskFlags::FAN_EVENT_ON_CHILD,
                    &fd,
                    None,
                );
            }
        }
    }

    /// A directory renamed: its mark stays on the inode; only our bookkeeping moves.
    pub(super) fn renamed_dir(&mut self, old: &[u8], new: &[u8]) {
        let moved: Vec<Vec<u8>> = self
            .marked
            .iter()
            .filter(|p| p.starts_with(old))
            .cloned()
            .collect();
        for p in moved {
            self.marked.remove(&p);
            let mut n = new.to_vec();
            n.extend_from_slice(&p[old.len()..]);
            self.marked.insert(n);
        }
    }

    /// Call just before reading an inotify batch.
    pub(super) fn begin_batch(&mut self) {
        self.batch += 1;
        let batch = self.batch;
        self.recent.retain(|_, q| {
            q.retain(|(_, b)| *b >= batch);
            !q.is_empty()
        });
        self.drain(batch);
    }

    /// Reads every queued fanotify event, tagging it with `batch`.
    fn drain(&mut self, batch: u64) {
        loop {
            let events = match self.fan.read_events() {
                Ok(e) if !e.is_empty() => e,
                _ => break,
            };
            for e in events {
                let Some(fd) = e.fd() else { continue };
                let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                else {
                    continue;
                };
                let pid = e.pid();
                if pid == self.own_pid {
                    continue;
                }
                let attribution = self.describe(pid as u32);
                if self.recent.len() >= MAX_PENDING {
                    self.recent.clear();
                }
                self.recent
                    .entry(path.as_os_str().as_bytes().to_vec())
                    .or_default()
                    .push_back((attribution, batch));
            }
        }
    }

    /// Who closed `path` after writing it, for one close-write of the current batch.
    pub(super) fn take(&mut self, path: &[u8]) -> Option<Attribution> {
        if let Some(a) = self.pop(path) {
            return Some(a);
        }
        // Closed between our drain and the inotify read, or fanotify's copy of the event is a
        // few microseconds behind inotify's (the kernel queues them one after the other): wait
        // briefly, where a mark says one is coming. What this also brings in belongs to this
        // batch or the next, so it is tagged for the next.
        let dir_marked = path
            .iter()
            .rposition(|b| *b == b'/')
            .is_some_and(|i| self.marked.contains(&path[..i.max(1)]));
        for attempt in 0..3 {
            if attempt > 0 {
                if !dir_marked {
                    break;
                }
                let mut fds = [PollFd::new(self.fan.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(2u8));
            }
            self.drain(self.batch + 1);
            if let Some(a) = self.pop(path) {
                return Some(a);
            }
        }
        None
    }

    fn pop(&mut self, path: &[u8]) -> Option<Attribution> {
        let q = self.recent.get_mut(path)?;
        let a = q.pop_front().map(|(a, _)| a);
        if q.is_empty() {
            self.recent.remove(path);
        }
        a
    }
}

impl Attributor {
    /// The writer's identity, read at once: it may exit right after its close().
    fn describe(&mut self, pid: u32) -> Attribution {
        let exe = self.proc.exe(pid);
        let (uid, user) = match self.proc.status(pid) {
            Some(s) => (s.uid, self.users.name(s.uid)),
            None => (u32::MAX, String::new()),
        };
        Attribution {
            pid,
            exe,
            uid,
            user,
        }
    }
}
