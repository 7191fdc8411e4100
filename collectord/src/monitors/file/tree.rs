//! The watched trees, opened only beneath their roots.
//!
//! A user who can write inside a watched tree can swap any name in it between two of our system
//! calls: a regular file for a FIFO (an `open` that never returns), for a symbolic link to
//! `/etc/shadow` (whose hash we would then publish as theirs), a directory for a link that leads
//! out of the tree. So nothing below a root is opened by path: every name is resolved from the
//! root's descriptor with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)` (on
//! kernels before 5.6, one `openat(O_NOFOLLOW)` per component, checking the device), a file is
//! read only through a descriptor opened `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` whose `fstat` says
//! it is a regular file and the very inode the metadata was taken from, and a directory is listed
//! and watched through its own descriptor.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// What a name is, from the descriptor that names it (never a second lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) ctime_ns: i64,
}

impl Meta {
    fn of(st: &FileStat) -> Meta {
        Meta {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }
    }

    pub(super) fn is_regular(&self) -> bool {
        self.mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits()
    }
}

/// One directory entry.
pub(super) struct Entry {
    pub(super) name: OsString,
    pub(super) is_dir: bool,
}

struct Root {
    path: Vec<u8>,
    fd: OwnedFd,
    dev: u64,
}

pub(super) struct Trees {
    roots: Vec<Root>,
    /// Cleared at the first ENOSYS: the kernel predates openat2 (5.6).
    openat2: AtomicBool,
}

impl Trees {
    /// Opens each root (following the operator's own path to it, once). Roots that cannot be
    /// opened as directories are left out and returned with why.
    pub(super) fn open(roots: &[PathBuf]) -> (Trees, Vec<(PathBuf, io::Error)>) {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for r in roots {
            let opened = nix::fcntl::open(
                r.as_path(),
                OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
            .and_then(|fd| Ok((fstat(fd.as_fd())?, fd)));
            match opened {
                Ok((st, fd)) => ok.push(Root {
                    path: r.as_os_str().as_bytes().to_vec(),
                    fd,
                    dev: st.st_dev,
                }),
                Err(e) => failed.push((r.clone(), e)),
            }
        }
        (
            Trees {
                roots: ok,
                openat2: AtomicBool::new(true),
            },
            failed,
        )
    }

    pub(super) fn root_paths(&self) -> impl Iterator<Item = &[u8]> {
        self.roots.iter().map(|r| r.path.as_slice())
    }

    /// The root `path` is in, and the rest of `path` below it ("." for the root itself).
    fn locate<'a>(&self, path: &'a [u8]) -> io::Result<(&Root, &'a [u8])> {
        self.roots
            .iter()
            .filter_map(|r| {
                if path == r.path.as_slice() {
                    Some((r, &b"."[..]))
                } else {
                    let rest = path.strip_prefix(r.path.as_slice())?;
                    let rest = if r.path.ends_with(b"/") {
                        rest
                    } else {
                        rest.strip_prefix(b"/")?
                    };
                    (!rest.is_empty()).then_some((r, rest))
                }
            })
            // The deepest root wins when roots nest.
            .max_by_key(|(r, _)| r.path.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not under a watched root"))
    }

    /// Opens `path` (absolute, under a root) with `flags`, never through a symbolic link or
    /// onto another filesystem. `O_NOFOLLOW` and `O_CLOEXEC` are always added.
    fn open_beneath(&self, path: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
        let (root, rel) = self.locate(path)?;
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        if self.openat2.load(Ordering::Relaxed) {
            let how = OpenHow::new().flags(flags).resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
            match openat2(root.fd.as_fd(), OsStr::from_bytes(rel), how) {
                Err(Errno::ENOSYS) => self.openat2.store(false, Ordering::Relaxed),
                // A concurrent rename somewhere in the tree: the kernel asks us to retry.
                Err(Errno::EAGAIN) => {
                    return openat2(root.fd.as_fd(), OsStr::from_bytes(rel), how)
                        .map_err(Into::into)
                }
                r => return r.map_err(Into::into),
            }
        }
        walk(root, rel, flags)
    }

    /// The metadata of `path` itself (a link is not followed), from a descriptor of it.
    pub(super) fn lstat(&self, path: &[u8]) -> io::Result<Meta> {
        let fd = self.open_beneath(path, OFlag::O_PATH)?;
        Ok(Meta::of(&fstat(fd.as_fd())?))
    }

    /// `path` opened for reading, only if it is still the regular file `expected` describes:
    /// a FIFO, device, link or any other inode swapped in meanwhile is refused, never read.
    pub(super) fn open_regular(&self, path: &[u8], expected: &Meta) -> io::Result<File> {
        let fd = self.open_beneath(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?;
        let now = Meta::of(&fstat(fd.as_fd())?);
        if !now.is_regular() || (now.dev, now.ino) != (expected.dev, expected.ino) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the name now refers to another file",
            ));
        }
        Ok(File::from(fd))
    }

    /// A descriptor of the directory `path` (not through a link): to list it, watch it and mark
    /// it by descriptor.
    pub(super) fn open_dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        self.open_beneath(path, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
    }
}

/// Lists the directory open at `fd` (consumed): names and whether each is a directory (from the
/// entry's type; an entry of unknown type is asked with `fstatat`, without following it).
pub(super) fn list(fd: OwnedFd) -> io::Result<Vec<Entry>> {
    let dup = fd.try_clone()?;
    let mut dir = Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            Some(t) => t == Type::Directory,
            None => nix::sys::stat::fstatat(
                dup.as_fd(),
                e.file_name(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()),
        };
        out.push(Entry {
            name: OsString::from_vec(name.to_vec()),
            is_dir,
        });
    }
    Ok(out)
}

/// The path a descriptor can be named by for system calls that take only a path (inotify).
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `openat2` for kernels without it: one component at a time from the root, each directory
/// opened `O_PATH | O_NOFOLLOW` and checked to be on the root's filesystem.
fn walk(root: &Root, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    let parts: Vec<&[u8]> = rel
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    if parts.iter().any(|p| *p == b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "'..' in a watched path",
        ));
    }
    let Some((last, dirs)) = parts.split_last() else {
        return openat(root.fd.as_fd(), ".", flags, Mode::empty()).map_err(Into::into);
    };
    let mut cur: Option<OwnedFd> = None;
    for d in dirs {
        let base = cur.as_ref().map_or(root.fd.as_fd(), |f| f.as_fd());
        let next = openat(
            base,
            OsStr::from_bytes(d),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        if fstat(next.as_fd())?.st_dev != root.dev {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        cur = Some(next);
    }
    let base = cur.as_ref().map_or(root.fd.as_fd(), |f| f.as_fd());
    let fd = openat(base, OsStr::from_bytes(last), flags, Mode::empty())?;
    if fstat(fd.as_fd())?.st_dev != root.dev {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(fd)
}

impl Trees {
    #[cfg(test)]
    fn without_openat2(self) -> Trees {
        self.openat2.store(false, Ordering::Relaxed);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::Path;

    fn b(p: &Path) -> Vec<u8> {
        p.as_os_str().as_bytes().to_vec()
    }

    #[test]
    fn links_fifos_and_escapes_are_refused_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), b"data").unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("dirlink")).unwrap();
        nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        for trees in [
            Trees::open(std::slice::from_ref(&root)).0,
            Trees::open(std::slice::from_ref(&root)).0.without_openat2(),
        ] {
            let f = b(&root.join("sub/f"));
            let m = trees.lstat(&f).unwrap();
            assert!(m.is_regular());
            let mut s = String::new();
            trees
                .open_regular(&f, &m)
                .unwrap()
                .read_to_string(&mut s)
                .unwrap();
            assert_eq!(s, "data");
            // The link itself can be described, never opened for reading or followed.
            let l = b(&root.join("link"));
            let lm = trees.lstat(&l).unwrap();
            assert!(!lm.is_regular());
            assert!(trees.open_regular(&l, &m).is_err());
            assert!(trees.lstat(&b(&root.join("dirlink/outside"))).is_err());
            // A FIFO under a regular file's name: refused without blocking.
            let fifo = b(&root.join("fifo"));
            assert!(trees.open_regular(&fifo, &m).is_err());
            // Another regular file under the expected name: refused (another inode).
            let other = trees.lstat(&f).unwrap();
            std::fs::rename(root.join("sub/f"), root.join("sub/g")).unwrap();
            std::fs::write(root.join("sub/f"), b"new").unwrap();
            assert!(trees.open_regular(&f, &other).is_err());
            std::fs::rename(root.join("sub/g"), root.join("sub/f")).unwrap();
            let names: Vec<(OsString, bool)> = list(trees.open_dir(&b(&root)).unwrap())
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.is_dir))
                .collect();
            assert!(names.contains(&("sub".into(), true)));
            assert!(
                names.contains(&("dirlink".into(), false)),
                "links are not directories"
            );
            assert!(trees.open_dir(&b(&root.join("dirlink"))).is_err());
            assert!(
                trees.lstat(&b(&dir.path().join("outside"))).is_err(),
                "not under a root"
            );
        }
    }
}
