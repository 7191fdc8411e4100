//! Serving a local socket safely: the directory is checked (or made) so that no other user can
//! plant or swap a name in it, a stale socket is removed and a live one refused, and the socket
//! is bound under an unpredictable staged name, given its mode and group without following a
//! link, and renamed into place only when the daemon is ready to serve.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, umask, Mode, SFlag};
use nix::unistd::{fchown, fchownat, unlinkat, Gid, UnlinkatFlags};

use super::LocalService;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another {daemon} is already serving {path}")]
    InUse { daemon: &'static str, path: String },
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(String),
    #[error("{path}: {why}; refusing to serve a socket there (a local user could replace it)")]
    UnsafeDirectory { path: String, why: String },
    #[error("cannot prepare socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A socket bound under a staged name in its (checked) directory. It appears at its real path
/// only at [`Staged::publish`], once the daemon can serve it (signal handlers in place): a client
/// that can connect can rely on the daemon being up.
pub struct Staged {
    listener: Option<UnixListener>,
    dir: OwnedFd,
    staged: OsString,
    published: Option<Published>,
}

/// The socket at its real path; [`Published::remove`] unlinks it (relative to its directory,
/// which cannot have been swapped since it was checked).
pub struct Published {
    dir: OwnedFd,
    name: OsString,
    path: PathBuf,
}

impl Staged {
    /// Moves the socket to its real path (an atomic rename) and hands over the listener.
    pub fn publish(mut self) -> Result<(UnixListener, Published), SocketError> {
        let (Some(listener), Some(published)) = (self.listener.take(), self.published.take())
        else {
            unreachable!("taken only here, by value");
        };
        renameat(
            &self.dir,
            self.staged.as_os_str(),
            &self.dir,
            published.name.as_os_str(),
        )
        .map_err(|e| io_error(&published.path, e.into()))?;
        Ok((listener, published))
    }
}

impl Published {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn remove(&self) -> io::Result<()> {
        unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir).map_err(Into::into)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Never published (start-up failed after binding): leave no staged name behind. After
        // publishing the name is gone and this finds nothing.
        let _ = unlinkat(
            &self.dir,
            self.staged.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

fn io_error(path: &Path, source: io::Error) -> SocketError {
    SocketError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Binds a std listener for `service` at `path` (no runtime needed, so that privileges can be
/// dropped before any runtime thread exists). The socket is mode 0660 and, when `group` is given,
/// belongs to that group; its directory must be (or is made) the daemon's own.
pub fn bind(path: &Path, service: LocalService, group: Option<Gid>) -> Result<Staged, SocketError> {
    let name = path
        .file_name()
        .ok_or_else(|| io_error(path, io::Error::other("the socket path has no file name")))?
        .to_owned();
    let dir_path = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let dir = own_directory(&dir_path, group)?;
    match fstatat(
        &dir,
        name.as_os_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    daemon: service.daemon(),
                    path: path.display().to_string(),
                });
            }
            unlinkat(&dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| io_error(path, e.into()))?;
            tracing::info!(socket = %path.display(), "removed a stale socket");
        }
        Ok(_) => return Err(SocketError::NotASocket(path.display().to_string())),
        Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(io_error(path, e.into())),
    }
    let staged = staged_name(&name);
    let staged_path = dir_path.join(&staged);
    // Created 0660 from the start (umask), so no other user can connect before it has its
    // group; no chmod by path afterwards.
    let old = umask(Mode::from_bits_truncate(0o117));
    let listener = UnixListener::bind(&staged_path);
    umask(old);
    let listener = listener.map_err(|e| io_error(path, e))?;
    let published = Published {
        dir: dir.try_clone().map_err(|e| io_error(path, e))?,
        name,
        path: path.to_owned(),
    };
    let staged_guard = Staged {
        listener: Some(listener),
        dir,
        staged,
        published: Some(published),
    };
    if let Some(gid) = group {
        let st = fstatat(
            &staged_guard.dir,
            staged_guard.staged.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_error(path, e.into()))?;
        // A daemon whose own group is the socket group creates it with that group already:
        // chown only when it differs (the shipper's sandbox forbids chown, and needs none).
        if st.st_gid != gid.as_raw() {
            fchownat(
                &staged_guard.dir,
                staged_guard.staged.as_os_str(),
                None,
                Some(gid),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| {
                io_error(
                    path,
                    io::Error::other(format!(
                        "cannot give the socket to group {gid}: {e}; only its owner could connect"
                    )),
                )
            })?;
        }
    }
    if let Some(l) = &staged_guard.listener {
        l.set_nonblocking(true).map_err(|e| io_error(path, e))?;
    }
    Ok(staged_guard)
}

/// `.collector.sock.3f9a…`: random, so nobody can prepare anything under it in advance.
fn staged_name(name: &OsStr) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    let r: [u8; 8] = rand::random();
    s.push(format!(
        ".{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    s
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(Into::into)
}

/// Opens the socket's directory, creating it (0750, given to `group`) when missing, and checks
/// that nobody but this daemon's user (or root) can add or replace names in it: owned by us or
/// root, and not writable by group or others unless sticky (where nobody can rename over a
/// name they do not own).
fn own_directory(dir: &Path, group: Option<Gid>) -> Result<OwnedFd, SocketError> {
    let shown = || dir.display().to_string();
    let fd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(p) = parent {
                std::fs::create_dir_all(p).map_err(|e| io_error(p, e))?;
            }
            let parent_fd =
                open_dir(parent.unwrap_or(Path::new("/"))).map_err(|e| io_error(dir, e))?;
            let leaf = dir.file_name().unwrap_or(dir.as_os_str());
            match mkdirat(&parent_fd, leaf, Mode::from_bits_truncate(0o750)) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(io_error(dir, e.into())),
            }
            let fd = open_dir(dir).map_err(|e| io_error(dir, e))?;
            // mkdir's mode went through the umask: set it exactly, on the descriptor.
            fchmod(fd.as_fd(), Mode::from_bits_truncate(0o750))
                .map_err(|e| io_error(dir, e.into()))?;
            if let Some(gid) = group {
                // Not fatal: without it group members cannot reach the socket, and say so.
                if let Err(e) = fchown(fd.as_fd(), None, Some(gid)) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot give the socket directory to its group");
                }
            }
            fd
        }
        Err(e)
            if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Err(SocketError::UnsafeDirectory {
                path: shown(),
                why: "is a symbolic link or not a directory".into(),
            })
        }
        Err(e) => return Err(io_error(dir, e)),
    };
    let st = fstat(fd.as_fd()).map_err(|e| io_error(dir, e.into()))?;
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != 0 && st.st_uid != me {
        return Err(SocketError::UnsafeDirectory {
            path: shown(),
            why: format!(
                "is owned by uid {}, not by root or this daemon's user",
                st.st_uid
            ),
        });
    }
    let writable_by_others = st.st_mode & 0o022 != 0;
    let sticky = st.st_mode & 0o1000 != 0;
    if writable_by_others && !sticky {
        return Err(SocketError::UnsafeDirectory {
            path: shown(),
            why: format!(
                "is writable by group or others (mode {:o})",
                st.st_mode & 0o7777
            ),
        });
    }
    Ok(fd)
}

/// The listener for tokio; must be called inside a runtime.
pub fn into_tokio(listener: UnixListener) -> io::Result<tokio::net::UnixListener> {
    tokio::net::UnixListener::from_std(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    #[test]
    fn binds_staged_publishes_and_refuses_a_second_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("collector.sock");
        let staged = bind(&path, LocalService::Collector, None).unwrap();
        assert!(!path.exists(), "not visible before publish");
        let (listener, published) = staged.publish().unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o750);
        match bind(&path, LocalService::Collector, None) {
            Err(SocketError::InUse { daemon, .. }) => assert_eq!(daemon, "collectord"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a live socket was replaced"),
        }
        drop((listener, published));
        // Stale now: replaced.
        let again = bind(&path, LocalService::Collector, None).unwrap();
        assert!(!path.exists(), "the stale socket is gone");
        let (_listener, published) = again.publish().unwrap();
        assert!(path.exists());
        published.remove().unwrap();
        assert!(!path.exists());
        // Nothing staged left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            0
        );
    }

    #[test]
    fn refuses_a_directory_others_can_write_or_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = bind(&open.join("s.sock"), LocalService::Shipper, None)
            .err()
            .unwrap();
        assert!(matches!(e, SocketError::UnsafeDirectory { .. }), "{e}");
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let e = bind(&link.join("s.sock"), LocalService::Shipper, None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            bind(&file, LocalService::Shipper, None),
            Err(SocketError::NotASocket(_))
        ));
    }
}
