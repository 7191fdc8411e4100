//! Where the baseline lives: an SQLite table in collectord's state directory, not a map in
//! memory, so that collectord's memory does not grow with the number of files it watches (a map
//! cost ~300 bytes a file: 59 MiB for 200,000). SQLite keeps at most [`CACHE_KIB`] of pages in
//! memory; a lookup is one B-tree descent, a few microseconds.
//!
//! The table is the saved baseline too: changes are written as they happen inside one open
//! transaction, committed every few seconds and at shutdown (WAL mode: a crash loses at most the
//! last few seconds, which the next start then reports again as made while the agent was down,
//! never misses). Each full or partial scan stamps the rows it visits with a new generation;
//! rows under the scanned directories left with an older one are the files that went away.
//!
//! A store that cannot be opened (a full or read-only disk, a damaged file) is replaced by a
//! fresh one, and as a last resort by one in memory: the monitor keeps running, and says so.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::baseline::FileState;

/// The page cache SQLite may keep (KiB).
const CACHE_KIB: i64 = 2048;

pub(super) struct Baseline {
    conn: Connection,
    len: usize,
    generation: i64,
    /// Whether a full scan has been stored: only then is a difference at start a change made
    /// while the agent was down (a first start, or one interrupted mid-scan, has nothing to
    /// compare with).
    complete: bool,
    /// The first error is logged at once, later ones counted and logged at the next commit
    /// (a full disk would say it thousands of times).
    errors: u64,
    errors_logged: u64,
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS files (
        path BLOB PRIMARY KEY NOT NULL,
        size INTEGER NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
        sha256 BLOB, hash_skipped INTEGER NOT NULL,
        seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
";

const COLUMNS: &str = "size, mode, uid, gid, mtime_ns, ctime_ns, ino, sha256, hash_skipped";

fn row_state(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FileState> {
    let sha: Option<Vec<u8>> = row.get(at + 7)?;
    Ok(FileState {
        size: row.get::<_, i64>(at)? as u64,
        mode: row.get(at + 1)?,
        uid: row.get(at + 2)?,
        gid: row.get(at + 3)?,
        mtime_ns: row.get(at + 4)?,
        ctime_ns: row.get(at + 5)?,
        ino: row.get::<_, i64>(at + 6)? as u64,
        sha256: sha.and_then(|v| v.try_into().ok()),
        hash_skipped: row.get(at + 8)?,
    })
}

/// The bounds of the keys strictly below directory `dir`: `(dir/, dir0)`, '0' being the byte
/// after '/', so that `/a/b` covers `/a/b/c` but not `/a/bc`.
fn below(dir: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = dir.to_vec();
    if !lo.ends_with(b"/") {
        lo.push(b'/');
    }
    let mut hi = lo.clone();
    *hi.last_mut().expect("not empty") = b'/' + 1;
    (lo, hi)
}

impl Baseline {
    /// Opens (or creates) the store at `path`; a file that is not a usable store is set aside
    /// as `<path>.damaged` and a new one started (the caller logs `note`).
    pub(super) fn open(path: &Path) -> (Baseline, Option<String>) {
        match Self::try_open(path) {
            Ok(b) => (b, None),
            Err(first) => {
                let aside = path.with_extension("db.damaged");
                let _ = std::fs::rename(path, &aside);
                for suffix in ["-wal", "-shm"] {
                    let mut p = path.as_os_str().to_owned();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
                match Self::try_open(path) {
                    Ok(b) => (
                        b,
                        Some(format!(
                            "the file baseline {} could not be used ({first}); set aside as {} and started anew",
                            path.display(),
                            aside.display()
                        )),
                    ),
                    Err(e) => (
                        Self::in_memory(),
                        Some(format!(
                            "the file baseline {} cannot be stored ({e}): kept in memory until collectord stops, so changes made while it is down will not be reported",
                            path.display()
                        )),
                    ),
                }
            }
        }
    }

    fn try_open(path: &Path) -> rusqlite::Result<Baseline> {
        // Only root reads what the baseline says of /root/.ssh and the like: the file is made
        // 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same mode).
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", path.display())),
                )
            })?;
        let conn = Connection::open(path)?;
        Self::init(conn, true)
    }

    /// A store that lives only in memory (tests, or when the state directory is unusable).
    pub(super) fn in_memory() -> Baseline {
        Self::init(
            Connection::open_in_memory().expect("an in-memory database"),
            false,
        )
        .expect("an in-memory database takes the schema")
    }

    fn init(conn: Connection, on_disk: bool) -> rusqlite::Result<Baseline> {
        if on_disk {
            // WAL: commits are appends, readers never block; NORMAL: a power cut may lose the
            // last commit, never corrupt the file.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.execute_batch(SCHEMA)?;
        // Fails on a file that is not a database (and `quick_check` on a damaged one).
        let ok: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(ok),
            ));
        }
        let len: i64 = conn.query_row("SELECT count(*) FROM files", [], |r| r.get(0))?;
        let meta = |key: &str| -> rusqlite::Result<i64> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        };
        let generation = meta("generation")?;
        let complete = meta("complete")? == 1;
        conn.execute_batch("BEGIN")?;
        Ok(Baseline {
            conn,
            len: len as usize,
            generation,
            complete,
            errors: 0,
            errors_logged: 0,
        })
    }

    fn failed(&mut self, e: rusqlite::Error) {
        if self.errors == 0 {
            tracing::warn!(error = %e, "the file baseline store failed (further failures are counted)");
            self.errors_logged = 1;
        }
        self.errors += 1;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_complete(&self) -> bool {
        self.complete
    }

    pub(super) fn get(&mut self, path: &[u8]) -> Option<FileState> {
        let r = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM files WHERE path = ?1"))
            .and_then(|mut st| st.query_row([path], |row| row_state(row, 0)).optional());
        r.unwrap_or_else(|e| {
            self.failed(e);
            None
        })
    }

    pub(super) fn contains_key(&mut self, path: &[u8]) -> bool {
        let r = self
            .conn
            .prepare_cached("SELECT 1 FROM files WHERE path = ?1")
            .and_then(|mut st| st.exists([path]));
        r.unwrap_or_else(|e| {
            self.failed(e);
            false
        })
    }

    /// Keeps `s` as `path`'s state, stamped with the current scan generation.
    pub(super) fn insert(&mut self, path: &[u8], s: &FileState) {
        self.write(path, s, None);
    }

    /// [`Baseline::insert`] for a caller that has just looked `path` up: `known` says whether
    /// it was there, which spares the statement that would find out (a restart's scan does this
    /// for every file).
    pub(super) fn insert_known(&mut self, path: &[u8], s: &FileState, known: bool) {
        self.write(path, s, Some(known));
    }

    fn write(&mut self, path: &[u8], s: &FileState, known: Option<bool>) {
        let g = self.generation;
        let values = params![
            path,
            s.size as i64,
            s.mode,
            s.uid,
            s.gid,
            s.mtime_ns,
            s.ctime_ns,
            s.ino as i64,
            s.sha256.as_ref().map(|d| &d[..]),
            s.hash_skipped,
            g,
        ];
        // One statement when the guess is right, two when it is not; either way `len` is kept
        // without a count. Unless the caller knows, a path is guessed known: most writes
        // (close-writes, attribute changes) are to files the baseline has.
        let conn = &self.conn;
        let update = || {
            conn.prepare_cached(
                "UPDATE files SET size = ?2, mode = ?3, uid = ?4, gid = ?5, mtime_ns = ?6,
                 ctime_ns = ?7, ino = ?8, sha256 = ?9, hash_skipped = ?10, seen = ?11
                 WHERE path = ?1",
            )
            .and_then(|mut st| st.execute(values))
        };
        let insert = || {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO files
                 (path, size, mode, uid, gid, mtime_ns, ctime_ns, ino, sha256, hash_skipped, seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut st| st.execute(values))
        };
        // Ok(true): the path is new to the store.
        let r = if known.unwrap_or(true) {
            update().and_then(|n| {
                if n == 1 {
                    Ok(false)
                } else {
                    insert().map(|_| true)
                }
            })
        } else {
            insert().and_then(|n| {
                if n == 1 {
                    Ok(true)
                } else {
                    update().map(|_| false)
                }
            })
        };
        match r {
            Ok(true) => self.len += 1,
            Ok(false) => {}
            Err(e) => self.failed(e),
        }
    }

    pub(super) fn remove(&mut self, path: &[u8]) -> Option<FileState> {
        let r = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM files WHERE path = ?1 RETURNING {COLUMNS}"
            ))
            .and_then(|mut st| st.query_row([path], |row| row_state(row, 0)).optional());
        match r {
            Ok(Some(s)) => {
                self.len -= 1;
                Some(s)
            }
            Ok(None) => None,
            Err(e) => {
                self.failed(e);
                None
            }
        }
    }

    /// Forgets everything strictly below directory `dir`.
    pub(super) fn remove_below(&mut self, dir: &[u8]) {
        let (lo, hi) = below(dir);
        let r = self
            .conn
            .prepare_cached("DELETE FROM files WHERE path > ?1 AND path < ?2")
            .and_then(|mut st| st.execute([lo, hi]));
        match r {
            Ok(n) => self.len -= n,
            Err(e) => self.failed(e),
        }
    }

    /// Every entry strictly below directory `dir`, removed from the store.
    fn take_below(&mut self, dir: &[u8]) -> rusqlite::Result<Vec<(Vec<u8>, FileState)>> {
        let (lo, hi) = below(dir);
        let taken = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM files WHERE path > ?1 AND path < ?2 RETURNING path, {COLUMNS}"
            ))?
            .query_map([lo, hi], |row| Ok((row.get(0)?, row_state(row, 1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        self.len -= taken.len();
        Ok(taken)
    }

    /// A directory moved inside the tree: what was kept below `old` is now below `new`.
    pub(super) fn rename_below(&mut self, old: &[u8], new: &[u8]) {
        let moved = match self.take_below(old) {
            Ok(m) => m,
            Err(e) => return self.failed(e),
        };
        for (p, s) in moved {
            let mut n = new.to_vec();
            n.extend_from_slice(&p[old.len()..]);
            self.insert(&n, &s);
        }
    }

    /// Starts a scan: what it visits from now on is stamped with a new generation.
    pub(super) fn begin_scan(&mut self) {
        self.generation += 1;
        let g = self.generation;
        if let Err(e) = self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
            [g],
        ) {
            self.failed(e);
        }
    }

    /// After a scan of `root`: the entries at or below it that the scan did not visit (gone),
    /// removed from the store.
    pub(super) fn take_unseen(&mut self, root: &[u8]) -> Vec<(Vec<u8>, FileState)> {
        let (lo, hi) = below(root);
        let r = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM files WHERE (path = ?1 OR (path > ?2 AND path < ?3)) AND seen < ?4
                 RETURNING path, {COLUMNS}"
            ))
            .and_then(|mut st| {
                st.query_map(params![root, lo, hi, self.generation], |row| {
                    Ok((row.get(0)?, row_state(row, 1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            });
        match r {
            Ok(gone) => {
                self.len -= gone.len();
                gone
            }
            Err(e) => {
                self.failed(e);
                Vec::new()
            }
        }
    }

    /// Records that a full scan is stored (see `complete`).
    pub(super) fn mark_complete(&mut self) {
        self.complete = true;
        if let Err(e) = self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('complete', 1)",
            [],
        ) {
            self.failed(e);
        }
    }

    /// Makes what changed since the last commit durable.
    pub(super) fn commit(&mut self) {
        if self.errors > self.errors_logged {
            tracing::warn!(
                failures = self.errors - self.errors_logged,
                "the file baseline store failed again: those entries were not kept"
            );
            self.errors_logged = self.errors;
        }
        if let Err(e) = self.conn.execute_batch("COMMIT; BEGIN") {
            self.failed(e);
            // A failed COMMIT leaves the transaction open; make sure one is.
            if self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("BEGIN");
            }
        }
    }

    /// Every entry, in path order.
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(Vec<u8>, FileState)> {
        self.conn
            .prepare(&format!("SELECT path, {COLUMNS} FROM files ORDER BY path"))
            .and_then(|mut st| {
                st.query_map([], |row| Ok((row.get(0)?, row_state(row, 1)?)))?
                    .collect()
            })
            .expect("the store reads back")
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("COMMIT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(size: u64) -> FileState {
        FileState {
            size,
            mode: 0o100644,
            mtime_ns: 7,
            sha256: Some([size as u8; 32]),
            ..FileState::default()
        }
    }

    #[test]
    fn entries_survive_a_reopen_with_their_hashes_and_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        let names: [&[u8]; 3] = [b"/w/a", b"/w/new\nline", b"/w/bad\xffname"];
        {
            let (mut b, note) = Baseline::open(&db);
            assert!(note.is_none());
            assert!(!b.is_complete());
            b.begin_scan();
            for (i, n) in names.iter().enumerate() {
                b.insert(n, &state(i as u64));
            }
            b.mark_complete();
            b.commit();
        }
        let (mut b, _) = Baseline::open(&db);
        assert!(b.is_complete());
        assert_eq!(b.len(), 3);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(b.get(n), Some(state(i as u64)));
        }
        assert_eq!(b.get(b"/w/other"), None);
    }

    #[test]
    fn below_means_below_a_path_component() {
        let mut b = Baseline::in_memory();
        for p in [
            &b"/a/b"[..],
            b"/a/b/c",
            b"/a/b/d/e",
            b"/a/bc",
            b"/a/b0",
            b"/a/a",
        ] {
            b.insert(p, &state(1));
        }
        b.rename_below(b"/a/b", b"/x");
        let keys: Vec<Vec<u8>> = b.entries().into_iter().map(|(k, _)| k).collect();
        let want: Vec<&[u8]> = vec![b"/a/a", b"/a/b", b"/a/b0", b"/a/bc", b"/x/c", b"/x/d/e"];
        assert_eq!(keys, want);
        b.remove_below(b"/x");
        assert_eq!(b.len(), 4);
        assert_eq!(b.entries().len(), 4);
    }

    #[test]
    fn a_scan_finds_what_it_did_not_visit() {
        let mut b = Baseline::in_memory();
        b.begin_scan();
        for p in [&b"/r"[..], b"/r/kept", b"/r/gone", b"/other/x"] {
            b.insert(p, &state(1));
        }
        b.begin_scan();
        b.insert(b"/r", &state(1));
        b.insert(b"/r/kept", &state(2));
        let gone: Vec<Vec<u8>> = b.take_unseen(b"/r").into_iter().map(|(k, _)| k).collect();
        assert_eq!(gone, vec![b"/r/gone".to_vec()]);
        assert_eq!(b.len(), 3, "/other is not below the scanned root");
    }

    #[test]
    fn a_file_that_is_not_a_store_is_set_aside_and_a_new_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("b.db");
        std::fs::write(
            &db,
            b"this is not an SQLite database, but it is long enough to look at",
        )
        .unwrap();
        let (mut b, note) = Baseline::open(&db);
        assert!(note.unwrap().contains("set aside"), "a note says so");
        b.insert(b"/x", &state(3));
        assert_eq!(b.get(b"/x"), Some(state(3)));
        assert!(dir.path().join("b.db.damaged").exists());
    }
}
