//! The baseline: what every watched file looked like (size, mode, owner, mtime, hash), kept in
//! collectord's state directory (see [`super::store`]) so that a change made while the agent was
//! down is reported at its next start.
//!
//! A restart re-hashes only files whose metadata (size, mtime, ctime, inode) changed — ctime
//! cannot be set from user space, so content changes are not missed — which keeps a restart over
//! `/usr/bin` cheap.

use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::hash::{from_hex, sha256_file, Hashed, Sha256Digest};
pub(super) use super::store::Baseline;
use super::tree::{self, Meta, Trees};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileState {
    pub size: u64,
    /// Full st_mode, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub sha256: Option<Sha256Digest>,
    pub hash_skipped: bool,
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

impl FileState {
    pub fn kind(&self) -> &'static str {
        match self.mode & S_IFMT {
            S_IFREG => "file",
            S_IFDIR => "directory",
            S_IFLNK => "symlink",
            _ => "other",
        }
    }

    pub fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Same content as far as metadata can tell.
    pub fn same_content_metadata(&self, other: &FileState) -> bool {
        self.size == other.size
            && self.mtime_ns == other.mtime_ns
            && self.ctime_ns == other.ctime_ns
            && self.ino == other.ino
    }

    /// Permission bits and ownership.
    pub fn same_attributes(&self, other: &FileState) -> bool {
        self.mode == other.mode && self.uid == other.uid && self.gid == other.gid
    }
}

/// The state of a name with its metadata `meta`, hashing a regular file up to `limit` bytes
/// through a descriptor checked to be that same file (see [`Trees`]).
fn hashed(trees: &Trees, path: &[u8], meta: &Meta, limit: u64) -> FileState {
    let mut s = FileState::from_meta(meta);
    if s.is_regular() {
        let hashed = if meta.size > limit {
            Hashed::TooLarge
        } else {
            match trees.open_regular(path, meta) {
                Ok(file) => sha256_file(file, meta.size, limit),
                Err(_) => Hashed::Unavailable,
            }
        };
        match hashed {
            Hashed::Digest(d) => s.sha256 = Some(d),
            Hashed::TooLarge => s.hash_skipped = true,
            Hashed::Unavailable => {}
        }
    }
    s
}

/// A name's state (a link is described, not followed), reusing `previous`'s hash when the
/// metadata says the content is unchanged.
pub(super) fn restat(
    trees: &Trees,
    path: &[u8],
    previous: Option<&FileState>,
    limit: u64,
) -> Option<FileState> {
    let meta = trees.lstat(path).ok()?;
    let quick = FileState::from_meta(&meta);
    match previous {
        Some(p) if p.same_content_metadata(&quick) && p.mode & S_IFMT == quick.mode & S_IFMT => {
            Some(FileState {
                sha256: p.sha256,
                hash_skipped: p.hash_skipped,
                ..quick
            })
        }
        _ => Some(hashed(trees, path, &meta, limit)),
    }
}

impl FileState {
    fn from_meta(m: &Meta) -> FileState {
        FileState {
            size: m.size,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime_ns: m.mtime_ns,
            ctime_ns: m.ctime_ns,
            ino: m.ino,
            sha256: None,
            hash_skipped: false,
        }
    }
}

/// Whether `path` is excluded (equal to or below an excluded path).
pub(super) fn excluded(path: &[u8], excludes: &[Vec<u8>]) -> bool {
    excludes
        .iter()
        .any(|e| path == e.as_slice() || (path.starts_with(e) && path.get(e.len()) == Some(&b'/')))
}

/// Told of each entry a scan visits: its path, what the baseline kept, what is there now.
pub(super) type Visit<'a> = dyn FnMut(&[u8], Option<FileState>, &FileState) + 'a;

/// What a scan found besides the baseline.
#[derive(Debug, Default)]
pub(super) struct ScanReport {
    /// Directories walked.
    pub(super) dirs: usize,
    /// Files past `max_files` were left out; the first directory where that happened.
    pub(super) capped_at: Option<Vec<u8>>,
}

/// What a scan walks and keeps.
pub(super) struct ScanLimits<'a> {
    pub(super) excludes: &'a [Vec<u8>],
    /// Files larger than this are not hashed.
    pub(super) hash_limit: u64,
    /// Entries kept at most.
    pub(super) max_files: usize,
    /// Called every few hundred entries (the monitor's liveness).
    pub(super) progress: &'a dyn Fn(),
}

/// Walks the directories `from` (every root, or a directory that just appeared) through
/// [`Trees`] (no link followed, no other filesystem entered), comparing each entry with what
/// `store` kept (its hash reused where the metadata is unchanged) and storing what is there now;
/// `visit(path, before, now)` is told of each. Keeps at most `max_files` entries. Returns what
/// the walk found, and the entries at or below `from` that it did not visit (gone), removed
/// from the store.
pub(super) fn scan(
    trees: &Trees,
    from: &[Vec<u8>],
    store: &mut Baseline,
    lim: &ScanLimits<'_>,
    visit: &mut Visit<'_>,
) -> (ScanReport, Vec<(Vec<u8>, FileState)>) {
    let (excludes, limit, max_files, progress) =
        (lim.excludes, lim.hash_limit, lim.max_files, lim.progress);
    let mut report = ScanReport::default();
    let mut entries_seen = 0usize;
    store.begin_scan();
    // Directories are always kept (the bound is on files, as before the store).
    let mut one =
        |store: &mut Baseline, path: &[u8], report: &mut ScanReport, dir: &[u8], bounded: bool| {
            let before = store.get(path);
            if bounded && before.is_none() && store.len() >= max_files {
                report.capped_at.get_or_insert_with(|| dir.to_vec());
                return;
            }
            if let Some(now) = restat(trees, path, before.as_ref(), limit) {
                store.insert_known(path, &now, before.is_some());
                visit(path, before, &now);
            }
        };
    for root in from {
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            if excluded(&dir, excludes) {
                continue;
            }
            one(store, &dir, &mut report, &dir, false);
            report.dirs += 1;
            let Ok(entries) = trees.open_dir(&dir).and_then(tree::list) else {
                continue;
            };
            for entry in entries {
                entries_seen += 1;
                if entries_seen % 256 == 0 {
                    progress();
                }
                let mut path = dir.clone();
                if !path.ends_with(b"/") {
                    path.push(b'/');
                }
                path.extend_from_slice(entry.name.as_bytes());
                if excluded(&path, excludes) {
                    continue;
                }
                if entry.is_dir {
                    stack.push(path);
                    continue;
                }
                one(store, &path, &mut report, &dir, true);
            }
        }
    }
    let mut gone = Vec::new();
    for root in from {
        gone.extend(store.take_unseen(root));
    }
    (report, gone)
}

/// One line of the baseline as versions before the store kept it (`file-baseline.jsonl`): a
/// path that is UTF-8 as text under `p`, any other as hex under `px`.
#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    p: Option<String>,
    #[serde(default)]
    px: Option<String>,
    s: u64,
    m: u32,
    u: u32,
    g: u32,
    t: i64,
    c: i64,
    i: u64,
    #[serde(default)]
    h: Option<String>,
    #[serde(default)]
    k: bool,
}

impl Line {
    fn into_entry(self) -> Option<(Vec<u8>, FileState)> {
        let path = match (self.p, self.px) {
            (Some(p), _) => p.into_bytes(),
            (None, Some(hexed)) => (0..hexed.len())
                .step_by(2)
                .map(|i| {
                    hexed
                        .get(i..i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()?,
            _ => return None,
        };
        Some((
            path,
            FileState {
                size: self.s,
                mode: self.m,
                uid: self.u,
                gid: self.g,
                mtime_ns: self.t,
                ctime_ns: self.c,
                ino: self.i,
                sha256: self.h.as_deref().and_then(from_hex),
                hash_skipped: self.k,
            },
        ))
    }
}

/// Moves a baseline saved as JSON lines by an earlier version into `store`, marked complete (a
/// change made while the agent was down across the upgrade is still reported). Unreadable lines
/// are skipped and counted: a damaged baseline costs some "changed while down" accuracy, never
/// the monitor.
pub(super) fn import_jsonl(path: &Path, store: &mut Baseline) -> std::io::Result<usize> {
    let f = std::fs::File::open(path)?;
    let mut bad = 0;
    for line in std::io::BufReader::new(f).lines() {
        let entry = line
            .ok()
            .and_then(|l| serde_json::from_str::<Line>(&l).ok())
            .and_then(Line::into_entry);
        match entry {
            Some((p, s)) => store.insert(&p, &s),
            None => bad += 1,
        }
    }
    store.mark_complete();
    store.commit();
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_files: usize) -> ScanLimits<'static> {
        ScanLimits {
            excludes: &[],
            hash_limit: 1024,
            max_files,
            progress: &|| {},
        }
    }

    #[test]
    fn a_scan_keeps_every_entry_and_a_rescan_finds_what_changed_and_went() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a"), b"hello").unwrap();
        std::fs::write(root.join("sub").join("new\nline"), b"x").unwrap();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"y").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let (trees, _) = Trees::open(std::slice::from_ref(&root));
        let from = [root.as_os_str().as_bytes().to_vec()];
        let mut store = Baseline::in_memory();
        let mut visited = 0;
        let (report, gone) = scan(
            &trees,
            &from,
            &mut store,
            &limits(usize::MAX),
            &mut |_, before, _| {
                assert!(before.is_none());
                visited += 1;
            },
        );
        assert_eq!(report.dirs, 2);
        assert!(report.capped_at.is_none() && gone.is_empty());
        assert_eq!((visited, store.len()), (6, 6), "{:?}", store.entries());
        let link = store.get(root.join("link").as_os_str().as_bytes()).unwrap();
        assert_eq!(link.kind(), "symlink");
        assert!(link.sha256.is_none(), "symlinks are not followed");

        std::fs::write(root.join("a"), b"changed").unwrap();
        std::fs::remove_file(root.join("sub").join("new\nline")).unwrap();
        let mut changed = Vec::new();
        let (_, gone) = scan(
            &trees,
            &from,
            &mut store,
            &limits(usize::MAX),
            &mut |p, before, now| {
                if before.is_some_and(|b| b.sha256 != now.sha256) {
                    changed.push(p.to_vec());
                }
            },
        );
        assert_eq!(
            changed,
            vec![root.join("a").as_os_str().as_bytes().to_vec()]
        );
        let gone: Vec<Vec<u8>> = gone.into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            gone,
            vec![root.join("sub/new\nline").as_os_str().as_bytes().to_vec()]
        );
        assert_eq!(store.len(), 5);
    }

    #[test]
    fn a_baseline_saved_as_json_lines_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.jsonl");
        std::fs::write(
            &p,
            concat!(
                "{\"p\":\"/x\",\"s\":1,\"m\":33188,\"u\":0,\"g\":0,\"t\":1,\"c\":1,\"i\":5,",
                "\"h\":\"0101010101010101010101010101010101010101010101010101010101010101\"}\n",
                "{\"px\":\"2f62ff\",\"s\":2,\"m\":33188,\"u\":0,\"g\":0,\"t\":1,\"c\":1,\"i\":6,\"k\":true}\n",
            ),
        )
        .unwrap();
        let mut store = Baseline::in_memory();
        assert_eq!(import_jsonl(&p, &mut store).unwrap(), 0);
        assert!(store.is_complete());
        assert_eq!(store.get(b"/x").unwrap().sha256, Some([1; 32]));
        assert!(store.get(b"/b\xff").unwrap().hash_skipped);
    }

    #[test]
    fn unchanged_files_are_not_rehashed_and_changed_ones_are() {
        let dir = tempfile::tempdir().unwrap();
        let (trees, _) = Trees::open(&[dir.path().to_owned()]);
        let file = dir.path().join("f");
        std::fs::write(&file, b"one").unwrap();
        let f = file.as_os_str().as_bytes();
        let first = restat(&trees, f, None, 1024).unwrap();
        let mut fake = first.clone();
        fake.sha256 = Some([7; 32]);
        // Same metadata: the (fake) stored hash is trusted.
        assert_eq!(
            restat(&trees, f, Some(&fake), 1024).unwrap().sha256,
            Some([7; 32])
        );
        std::fs::write(&file, b"two!").unwrap();
        let after = restat(&trees, f, Some(&fake), 1024).unwrap();
        assert_ne!(after.sha256, Some([7; 32]));
        assert_eq!(after.sha256, restat(&trees, f, None, 1024).unwrap().sha256);
    }

    #[test]
    fn a_tree_past_the_bound_keeps_the_bound_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("d")).unwrap();
        for i in 0..50 {
            std::fs::write(root.join("d").join(format!("f{i}")), b"x").unwrap();
        }
        let (trees, _) = Trees::open(std::slice::from_ref(&root));
        let from = [root.as_os_str().as_bytes().to_vec()];
        let mut b = Baseline::in_memory();
        let (report, _) = scan(&trees, &from, &mut b, &limits(20), &mut |_, _, _| {});
        assert_eq!(b.len(), 20);
        assert_eq!(
            report.capped_at.as_deref(),
            Some(root.join("d").as_os_str().as_bytes())
        );
    }

    #[test]
    fn exclusion_is_by_path_component() {
        let ex = vec![b"/var/log/sec-tracker".to_vec()];
        assert!(excluded(b"/var/log/sec-tracker", &ex));
        assert!(excluded(b"/var/log/sec-tracker/agent.log", &ex));
        assert!(!excluded(b"/var/log/sec-tracker2", &ex));
        assert!(!excluded(b"/var/log/syslog", &ex));
    }

    #[test]
    fn a_damaged_baseline_line_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.jsonl");
        std::fs::write(&p, "{\"p\":\"/x\",\"s\":1,\"m\":33188,\"u\":0,\"g\":0,\"t\":1,\"c\":1,\"i\":5}\ngarbage\n{\"p\":\"/y\"}\n").unwrap();
        let mut b = Baseline::in_memory();
        assert_eq!(import_jsonl(&p, &mut b).unwrap(), 2);
        assert_eq!(b.len(), 1);
    }
}
