//! Socket inode → owning process, from the `socket:[INODE]` links in `/proc/<pid>/fd`.
//!
//! Walking every fd of every process costs a readlink per open file on the host, so it is done
//! only when a scan brings a socket whose inode the cache does not know, and then once for all of
//! them. The cache holds only inodes that are still present (the caller prunes it after each
//! scan), so it is bounded by the number of tracked sockets. An inode that a walk could not find
//! (its process already closed it, or lives where our /proc cannot see) is tried once more and
//! then left alone, so it cannot force a walk on every scan.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Walks that may be spent on one inode that is never found.
pub(super) const MAX_TRIES: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Owner {
    pub pid: u32,
    pub name: String,
    pub exe: Vec<u8>,
}

/// Where owners come from: `/proc`, or a fake in tests.
pub(super) trait OwnerSource {
    /// The owners of those of `wanted` that can be found; the lowest pid when several processes
    /// share a socket (a pre-forking server's listener: the parent).
    fn find(&mut self, wanted: &HashSet<u64>) -> HashMap<u64, Arc<Owner>>;
}

pub(super) struct OwnerCache<S> {
    source: S,
    by_inode: HashMap<u64, Arc<Owner>>,
    misses: HashMap<u64, u8>,
    /// Walks of the source so far.
    pub walks: u64,
}

impl<S: OwnerSource> OwnerCache<S> {
    pub(super) fn new(source: S) -> Self {
        OwnerCache {
            source,
            by_inode: HashMap::new(),
            misses: HashMap::new(),
            walks: 0,
        }
    }

    /// Makes sure the owners of `inodes` are known where they can be: one walk, and only when
    /// one of them is neither cached nor already given up on. Returns whether it walked.
    pub(super) fn resolve(&mut self, inodes: impl IntoIterator<Item = u64>) -> bool {
        let wanted: HashSet<u64> = inodes
            .into_iter()
            .filter(|i| {
                *i != 0
                    && !self.by_inode.contains_key(i)
                    && self.misses.get(i).copied().unwrap_or(0) < MAX_TRIES
            })
            .collect();
        if wanted.is_empty() {
            return false;
        }
        self.walks += 1;
        let found = self.source.find(&wanted);
        for inode in wanted {
            match found.get(&inode) {
                Some(o) => {
                    self.misses.remove(&inode);
                    self.by_inode.insert(inode, Arc::clone(o));
                }
                None => *self.misses.entry(inode).or_insert(0) += 1,
            }
        }
        true
    }

    pub(super) fn get(&self, inode: u64) -> Option<Arc<Owner>> {
        self.by_inode.get(&inode).cloned()
    }

    /// Not found by a walk yet, but worth another one.
    pub(super) fn worth_retrying(&self, inode: u64) -> bool {
        inode != 0
            && !self.by_inode.contains_key(&inode)
            && self.misses.get(&inode).copied().unwrap_or(0) < MAX_TRIES
    }

    /// Gives up on `inode` without spending a walk on it (a socket of the baseline).
    pub(super) fn give_up(&mut self, inode: u64) {
        if !self.by_inode.contains_key(&inode) {
            self.misses.insert(inode, MAX_TRIES);
        }
    }

    /// Drops what is not in `present`.
    pub(super) fn retain(&mut self, present: &HashSet<u64>) {
        self.by_inode.retain(|i, _| present.contains(i));
        self.misses.retain(|i, _| present.contains(i));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_inode.len() + self.misses.len()
    }
}

/// The real source: every `/proc/<pid>/fd`.
pub(super) struct ProcFds {
    root: PathBuf,
}

impl Default for ProcFds {
    fn default() -> Self {
        ProcFds {
            root: PathBuf::from("/proc"),
        }
    }
}

impl OwnerSource for ProcFds {
    fn find(&mut self, wanted: &HashSet<u64>) -> HashMap<u64, Arc<Owner>> {
        let mut found: HashMap<u64, Arc<Owner>> = HashMap::new();
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return found;
        };
        let mut pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        let mut fd_path = PathBuf::new();
        for pid in pids {
            if found.len() == wanted.len() {
                break;
            }
            let pid_dir = self.root.join(pid.to_string());
            let Ok(fds) = std::fs::read_dir(pid_dir.join("fd")) else {
                continue; // gone, or a kernel thread we may not read
            };
            let mut owner: Option<Arc<Owner>> = None;
            for fd in fds.flatten() {
                fd_path.clone_from(&pid_dir);
                fd_path.push("fd");
                fd_path.push(fd.file_name());
                let Ok(target) = std::fs::read_link(&fd_path) else {
                    continue;
                };
                let Some(inode) = socket_inode(target.as_os_str().as_bytes()) else {
                    continue;
                };
                if !wanted.contains(&inode) || found.contains_key(&inode) {
                    continue;
                }
                let o = owner.get_or_insert_with(|| Arc::new(read_owner(&pid_dir, pid)));
                found.insert(inode, Arc::clone(o));
            }
        }
        found
    }
}

fn read_owner(pid_dir: &Path, pid: u32) -> Owner {
    let name = std::fs::read(pid_dir.join("comm"))
        .map(|c| String::from_utf8_lossy(c.strip_suffix(b"\n").unwrap_or(&c)).into_owned())
        .unwrap_or_default();
    let exe = std::fs::read_link(pid_dir.join("exe"))
        .map(|p| p.into_os_string().into_vec())
        .unwrap_or_default();
    Owner { pid, name, exe }
}

/// The inode of an fd link `socket:[12345]`.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"socket:[]"), None);
        assert_eq!(socket_inode(b"socket:[12a]"), None);
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/tmp/socket:[1]"), None);
    }

    struct Fake {
        owners: HashMap<u64, Arc<Owner>>,
        calls: usize,
    }

    impl OwnerSource for &mut Fake {
        fn find(&mut self, wanted: &HashSet<u64>) -> HashMap<u64, Arc<Owner>> {
            self.calls += 1;
            wanted
                .iter()
                .filter_map(|i| Some((*i, Arc::clone(self.owners.get(i)?))))
                .collect()
        }
    }

    #[test]
    fn walks_only_for_unknown_inodes_and_gives_up_after_two_misses() {
        let mut fake = Fake {
            owners: HashMap::new(),
            calls: 0,
        };
        let o = |pid| {
            Arc::new(Owner {
                pid,
                name: format!("p{pid}"),
                exe: Vec::new(),
            })
        };
        fake.owners.insert(1, o(10));
        fake.owners.insert(2, o(20));
        {
            let mut c = OwnerCache::new(&mut fake);
            assert!(c.resolve([1, 2, 3, 0]));
            assert_eq!(c.get(1).unwrap().pid, 10);
            assert!(c.get(3).is_none());
            assert!(c.worth_retrying(3));
            // Cached inodes cost nothing; the missing one is tried once more, then never.
            assert!(c.resolve([1, 2, 3]));
            assert!(!c.worth_retrying(3));
            assert!(!c.resolve([1, 2, 3]));
            assert_eq!(c.walks, 2);
            // Pruning forgets what is gone, so the cache stays bounded.
            c.retain(&[2].into_iter().collect());
            assert_eq!(c.len(), 1);
            assert!(c.get(1).is_none());
            c.give_up(9);
            assert!(!c.resolve([2, 9]));
        }
        assert_eq!(fake.calls, 2);
    }

    /// The real /proc: our own listener's inode leads to us.
    #[test]
    fn proc_finds_our_own_socket() {
        use std::os::fd::AsFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = nix::sys::stat::fstat(l.as_fd()).unwrap().st_ino;
        let mut src = ProcFds::default();
        let found = src.find(&[inode, u64::MAX].into_iter().collect());
        let me = found.get(&inode).expect("our socket found");
        assert_eq!(me.pid, std::process::id());
        assert_eq!(
            me.exe,
            std::env::current_exe().unwrap().into_os_string().into_vec()
        );
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(me.name, comm.trim_end());
        assert!(!found.contains_key(&u64::MAX));
    }
}
