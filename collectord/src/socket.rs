//! The collector's Unix socket: a stale one is removed (a live one is not: a second collectord
//! refuses to start), the new one is created 0660 and given to the socket group.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{umask, Mode};
use nix::unistd::{chown, Gid};
use std::os::unix::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another collector is already serving {0}")]
    InUse(String),
    #[error("{0} exists and is not a socket; refusing to remove it")]
    NotASocket(String),
    #[error("cannot prepare socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A socket bound and ready under a temporary name. It appears at its real path only when
/// [`Staged::publish`] is called, once the daemon can serve it (signal handlers in place): a
/// client that can connect can rely on the daemon being up.
pub struct Staged {
    listener: UnixListener,
    staged: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Staged {
    /// Moves the socket to its real path (an atomic rename) and hands over the listener.
    pub fn publish(self) -> Result<UnixListener, SocketError> {
        std::fs::rename(&self.staged, &self.path).map_err(|source| SocketError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        Ok(self.listener)
    }
}

/// Binds a std listener (no runtime needed, so that privileges can be dropped before any
/// runtime thread exists); publish it, then turn it into a tokio one with [`into_tokio`].
pub fn bind(path: &Path, group: Option<Gid>) -> Result<Staged, SocketError> {
    let shown = path.display().to_string();
    let io_err = |source| SocketError::Io {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io_err)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(io_err)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse(shown));
            }
            std::fs::remove_file(path).map_err(io_err)?;
            tracing::info!(socket = %shown, "removed a stale socket");
        }
        Ok(_) => return Err(SocketError::NotASocket(shown)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let staged = path.with_file_name(format!(
        ".{}.{}.staged",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&staged);
    // Created 0660 from the start, so no other user can connect in the window before chmod.
    let old = umask(Mode::from_bits_truncate(0o117));
    let listener = UnixListener::bind(&staged);
    umask(old);
    let listener = listener.map_err(io_err)?;
    let path_for_perms = path;
    let path = staged.as_path();
    if let Some(gid) = group {
        // Not fatal: without it only root can connect, which is safe, and the log says why.
        if let Err(e) = chown(path, None, Some(gid)) {
            tracing::warn!(socket = %shown, error = %e, "cannot give the socket to its group; only root can read the stream");
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io_err)?;
    listener.set_nonblocking(true).map_err(io_err)?;
    Ok(Staged {
        listener,
        staged: staged.clone(),
        path: path_for_perms.to_owned(),
    })
}

/// The listener for tokio; must be called inside a runtime.
pub fn into_tokio(listener: UnixListener) -> io::Result<tokio::net::UnixListener> {
    tokio::net::UnixListener::from_std(listener)
}
