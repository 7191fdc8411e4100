//! The queue's error type, and how SQLite failures are told apart from a full disk.

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// What can go wrong with the durable queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQLite failed for a reason other than a full disk.
    #[error("queue store: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The store could not grow: the disk is full (SQLITE_FULL, ENOSPC) or a file size limit was
    /// reached (EFBIG). Nothing of the failed call was applied; keep running, report it, retry later.
    #[error("queue store is out of space (disk full or file size limit): {0}")]
    DiskFull(#[source] rusqlite::Error),
    /// The batch id names no batch in the queue (already acknowledged, split or set aside).
    #[error("no batch {0:?} in the queue")]
    UnknownBatch(String),
    /// `max_events` was zero; the queue must be allowed to hold at least one event.
    #[error("the queue bound must be at least one event")]
    ZeroBound,
    /// SQLite refused WAL journal mode for the store (e.g. on a file system without shared memory).
    #[error("the queue store cannot use WAL journal mode (SQLite chose {0:?})")]
    NoWal(String),
    /// A queue operation could not run to its end (e.g. the thread running it panicked).
    #[error("queue: {0}")]
    Internal(String),
    /// A file operation around the store (moving a corrupt store aside) failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "moving aside".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A store freshly created after moving a corrupt one aside failed its check too.
    #[error("fresh queue store at {} is unusable: {problem}", path.display())]
    FreshStoreUnusable {
        /// The store's path.
        path: PathBuf,
        /// What the check found.
        problem: String,
    },
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Sqlite(e)
    }
}

/// How close (bytes) a store file must be to `RLIMIT_FSIZE`, or how little room the file system
/// may have left, for an SQLite I/O error to count as "disk full".
const SPACE_SLACK: u64 = 64 * 1024;

/// Turns an SQLite error that means "no room" into [`QueueError::DiskFull`].
///
/// SQLITE_FULL is unambiguous (SQLite maps ENOSPC to it). EFBIG (`RLIMIT_FSIZE`) and EDQUOT surface
/// as a generic I/O error because rusqlite cannot reach the errno without `unsafe`; for those the
/// store's files are compared with the file size limit and the file system's free space.
pub(super) fn reclassify(err: QueueError, db: &Path) -> QueueError {
    match err {
        QueueError::Sqlite(e) if is_out_of_space(&e, db) => QueueError::DiskFull(e),
        other => other,
    }
}

fn is_out_of_space(e: &rusqlite::Error, db: &Path) -> bool {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => true,
        Some(ErrorCode::SystemIoFailure) => near_file_size_limit(db) || file_system_nearly_full(db),
        _ => false,
    }
}

/// The store's files: the database and its WAL and shared-memory files.
pub(super) fn store_files(db: &Path) -> [PathBuf; 3] {
    [
        db.to_path_buf(),
        with_suffix(db, "-wal"),
        with_suffix(db, "-shm"),
    ]
}

/// `path` with `suffix` appended to its file name.
pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn near_file_size_limit(db: &Path) -> bool {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let Ok((soft, _hard)) = getrlimit(Resource::RLIMIT_FSIZE) else {
        return false;
    };
    if soft == RLIM_INFINITY {
        return false;
    }
    store_files(db)
        .iter()
        .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len().saturating_add(SPACE_SLACK) >= soft))
}

fn file_system_nearly_full(db: &Path) -> bool {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(st) = nix::sys::statvfs::statvfs(dir) else {
        return false;
    };
    // `c_ulong` and `fsblkcnt_t` are u64 on 64-bit Linux but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    let (frag, avail) = (st.fragment_size() as u64, st.blocks_available() as u64);
    avail.saturating_mul(frag.max(1)) < SPACE_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_err(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_full_is_disk_full_and_other_errors_are_not() {
        let db = Path::new("/nonexistent-dir/q.db");
        let e = reclassify(
            QueueError::Sqlite(sqlite_err(rusqlite::ffi::SQLITE_FULL)),
            db,
        );
        assert!(matches!(e, QueueError::DiskFull(_)), "{e:?}");
        let e = reclassify(
            QueueError::Sqlite(sqlite_err(rusqlite::ffi::SQLITE_CONSTRAINT)),
            db,
        );
        assert!(matches!(e, QueueError::Sqlite(_)), "{e:?}");
        let e = reclassify(QueueError::UnknownBatch("x".into()), db);
        assert!(matches!(e, QueueError::UnknownBatch(_)), "{e:?}");
    }

    #[test]
    fn io_error_with_room_and_no_limit_is_not_disk_full() {
        // The test process has no RLIMIT_FSIZE and the temp dir has room: a plain I/O error.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let e = reclassify(
            QueueError::Sqlite(sqlite_err(rusqlite::ffi::SQLITE_IOERR_WRITE)),
            &db,
        );
        assert!(matches!(e, QueueError::Sqlite(_)), "{e:?}");
    }
}
