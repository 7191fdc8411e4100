//! Opening the store: integrity check, moving a corrupt store aside, pragmas and schema.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode};

use super::error::{reclassify, store_files, with_suffix};
use super::{OpenReport, QueueError};

/// The schema version kept in `PRAGMA user_version`. 2: events carry their severity, drops are
/// counted by severity (a version 1 store is upgraded in place at open).
pub(super) const SCHEMA_VERSION: i64 = 2;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables. Invariant: the events that belong to batches are a prefix of `events` in id order,
/// and each batch holds exactly the events whose id lies in `[first_id, last_id]`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id    TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    severity     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_severity ON events (severity, id);
CREATE TABLE IF NOT EXISTS batches (
    batch_id   TEXT    PRIMARY KEY,
    first_id   INTEGER NOT NULL,
    last_id    INTEGER NOT NULL,
    handed_out INTEGER NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letter (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL,
    batch_id     TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    dead_at_ns   INTEGER NOT NULL,
    stream_id    TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    timestamp_ns INTEGER NOT NULL,
    payload      BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    received_total      INTEGER NOT NULL,
    sent_total          INTEGER NOT NULL,
    dropped_total       INTEGER NOT NULL,
    dead_lettered_total INTEGER NOT NULL,
    gaps_total          INTEGER NOT NULL,
    resume_stream_id    TEXT,
    resume_seq          INTEGER,
    dropped_info        INTEGER NOT NULL DEFAULT 0,
    dropped_warning     INTEGER NOT NULL DEFAULT 0,
    dropped_critical    INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO meta (id, received_total, sent_total, dropped_total, dead_lettered_total,
    gaps_total) VALUES (1, 0, 0, 0, 0, 0);
";

/// Tables a store of ours may contain (besides SQLite's own).
const OUR_TABLES: [&str; 4] = ["events", "batches", "dead_letter", "meta"];

/// Why a store could not be opened as it is.
enum Failure {
    /// The file is not a healthy store of ours: move it aside and start afresh.
    Unusable(String),
    /// Anything else (permissions, locks, I/O, disk full): report to the caller, touch nothing.
    Error(QueueError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Failure::Unusable(e.to_string())
            }
            _ => Failure::Error(QueueError::Sqlite(e)),
        }
    }
}

/// Opens the store at `path`, moving it aside first if it fails its check.
pub(super) fn open_store(path: &Path) -> Result<(Connection, OpenReport), QueueError> {
    let problem = match try_open(path) {
        Ok(conn) => return Ok((conn, OpenReport::default())),
        Err(Failure::Error(e)) => return Err(reclassify(e, path)),
        Err(Failure::Unusable(problem)) => problem,
    };
    let moved = move_aside(path)?;
    tracing::warn!(
        store = %path.display(),
        moved_aside = %moved.display(),
        %problem,
        "queue store failed its check; moved it aside and started a fresh one"
    );
    match try_open(path) {
        Ok(conn) => Ok((
            conn,
            OpenReport {
                moved_aside: Some(moved),
                problem: Some(problem),
            },
        )),
        Err(Failure::Error(e)) => Err(reclassify(e, path)),
        Err(Failure::Unusable(problem)) => Err(QueueError::FreshStoreUnusable {
            path: path.to_path_buf(),
            problem,
        }),
    }
}

fn try_open(path: &Path) -> Result<Connection, Failure> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    quick_check(&conn)?;
    let version = check_schema(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Failure::Error(QueueError::NoWal(mode)));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The queue appends at one end and reads at the other: a small page cache (512 KiB rather
    // than SQLite's 2 MiB) costs no speed and keeps shipperd's memory small.
    conn.pragma_update(None, "cache_size", -512)?;
    // Keep up to 32 MiB of WAL file after a checkpoint: reusing it avoids growing files when the
    // disk is nearly full; anything beyond that is given back.
    conn.pragma_update(None, "journal_size_limit", 32 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(32);
    let tx = conn.unchecked_transaction()?;
    if version == 1 {
        // Events queued before the upgrade count as INFO; earlier drops only in the total.
        tx.execute_batch(
            "ALTER TABLE events ADD COLUMN severity INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE meta ADD COLUMN dropped_info INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE meta ADD COLUMN dropped_warning INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE meta ADD COLUMN dropped_critical INTEGER NOT NULL DEFAULT 0;",
        )?;
        tracing::info!("queue store upgraded to schema version {SCHEMA_VERSION}");
    }
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

/// Runs `PRAGMA quick_check`; anything but a single "ok" makes the store unusable.
fn quick_check(conn: &Connection) -> Result<(), Failure> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let lines = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if lines.len() == 1 && lines[0] == "ok" {
        return Ok(());
    }
    let mut problem = lines.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if lines.len() > 3 {
        problem.push_str(&format!("; and {} more", lines.len() - 3));
    }
    Err(Failure::Unusable(format!("quick_check: {problem}")))
}

/// A store of another version, or a database that is not a queue, is unusable as well. Returns
/// the store's version (0 for a new file).
fn check_schema(conn: &Connection) -> Result<i64, Failure> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Failure::Unusable(format!(
            "schema version {version} is newer than this shipperd's ({SCHEMA_VERSION})"
        )));
    }
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(other) = tables.iter().find(|t| !OUR_TABLES.contains(&t.as_str())) {
        return Err(Failure::Unusable(format!(
            "not a shipperd queue (has a table {other:?})"
        )));
    }
    if version == 0 && !tables.is_empty() {
        return Err(Failure::Unusable("tables without a schema version".into()));
    }
    Ok(version)
}

/// Renames the store (and its -wal/-shm files) to `<path>.corrupt-<unix time>[-n]`.
fn move_aside(path: &Path) -> Result<PathBuf, QueueError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut target = with_suffix(path, &format!(".corrupt-{secs}"));
    let mut n = 1;
    while target.exists() {
        target = with_suffix(path, &format!(".corrupt-{secs}-{n}"));
        n += 1;
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| QueueError::Io {
            action: "moving aside",
            path,
            source,
        }
    };
    let [db, wal, shm] = store_files(path);
    std::fs::rename(&db, &target).map_err(io(&db))?;
    for (side, suffix) in [(wal, "-wal"), (shm, "-shm")] {
        if side.exists() {
            std::fs::rename(&side, with_suffix(&target, suffix)).map_err(io(&side))?;
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(target)
}
