//! The baseline: what every watched file looked like (size, mode, owner, mtime, hash), kept in
//! collectord's state directory so that a change made while the agent was down is reported at
//! its next start.
//!
//! A restart re-hashes only files whose metadata (size, mtime, ctime, inode) changed — ctime
//! cannot be set from user space, so content changes are not missed — which keeps a restart over
//! `/usr/bin` cheap. The file is JSON lines, replaced atomically.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::hash::{from_hex, hex, sha256_file, Hashed, Sha256Digest};

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

/// Reads a path's state without following a symlink, hashing regular files up to `limit`.
pub(super) fn stat(path: &Path, limit: u64) -> Option<FileState> {
    let mut s = metadata_state(path)?;
    if s.is_regular() {
        match sha256_file(path, s.size, limit) {
            Hashed::Digest(d) => s.sha256 = Some(d),
            Hashed::TooLarge => s.hash_skipped = true,
            Hashed::Unavailable => {}
        }
    }
    Some(s)
}

/// Like [`stat`], but reuses `previous`'s hash when the metadata says the content is unchanged.
pub(super) fn restat(path: &Path, previous: Option<&FileState>, limit: u64) -> Option<FileState> {
    let quick = metadata_state(path)?;
    match previous {
        Some(p) if p.same_content_metadata(&quick) && p.mode & S_IFMT == quick.mode & S_IFMT => {
            Some(FileState {
                sha256: p.sha256,
                hash_skipped: p.hash_skipped,
                ..quick
            })
        }
        _ => stat(path, limit),
    }
}

/// The path's metadata (not following a symlink), without a hash.
fn metadata_state(path: &Path) -> Option<FileState> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(FileState {
        size: m.size(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        ino: m.ino(),
        sha256: None,
        hash_skipped: false,
    })
}

pub(super) type Baseline = BTreeMap<Vec<u8>, FileState>;

/// Whether `path` is excluded (equal to or below an excluded path).
pub(super) fn excluded(path: &[u8], excludes: &[Vec<u8>]) -> bool {
    excludes
        .iter()
        .any(|e| path == e.as_slice() || (path.starts_with(e) && path.get(e.len()) == Some(&b'/')))
}

/// Walks `roots` without following symlinks, staying on each root's filesystem, reusing hashes
/// from `previous` where metadata is unchanged. Returns the new baseline and the directories seen.
pub(super) fn scan(
    roots: &[PathBuf],
    excludes: &[Vec<u8>],
    previous: &Baseline,
    limit: u64,
) -> (Baseline, Vec<PathBuf>) {
    let mut out = Baseline::new();
    let mut dirs = Vec::new();
    for root in roots {
        let Ok(root_meta) = std::fs::symlink_metadata(root) else {
            continue;
        };
        let dev = root_meta.dev();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            if excluded(dir.as_os_str().as_bytes(), excludes) {
                continue;
            }
            if let Some(s) = restat(&dir, previous.get(dir.as_os_str().as_bytes()), limit) {
                out.insert(dir.as_os_str().as_bytes().to_vec(), s);
            }
            dirs.push(dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let key = path.as_os_str().as_bytes();
                if excluded(key, excludes) {
                    continue;
                }
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    // Another filesystem mounted inside a watched tree is not ours to walk.
                    if entry.metadata().map(|m| m.dev() == dev).unwrap_or(false) {
                        stack.push(path);
                    }
                    continue;
                }
                if let Some(s) = restat(&path, previous.get(key), limit) {
                    out.insert(key.to_vec(), s);
                }
            }
        }
    }
    (out, dirs)
}

/// One line of the saved baseline. A path that is UTF-8 is stored as text under `p`, any other as
/// hex under `px`; the short keys keep a baseline of 100k files small.
#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    px: Option<String>,
    s: u64,
    m: u32,
    u: u32,
    g: u32,
    t: i64,
    c: i64,
    i: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    h: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    k: bool,
}

impl Line {
    fn new(path: &[u8], s: &FileState) -> Line {
        let (p, px) = match std::str::from_utf8(path) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(path.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        Line {
            p,
            px,
            s: s.size,
            m: s.mode,
            u: s.uid,
            g: s.gid,
            t: s.mtime_ns,
            c: s.ctime_ns,
            i: s.ino,
            h: s.sha256.as_ref().map(hex),
            k: s.hash_skipped,
        }
    }

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

/// One JSON object per line, written atomically (see [`sec_tracker_proto::fsutil`]).
pub(super) fn save(path: &Path, baseline: &Baseline) -> std::io::Result<()> {
    sec_tracker_proto::fsutil::write_atomic(path, |w| {
        for (p, s) in baseline {
            serde_json::to_writer(&mut *w, &Line::new(p, s))?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Loads a saved baseline. Unreadable lines are skipped and counted: a damaged baseline costs
/// some "changed while down" accuracy, never the monitor.
pub(super) fn load(path: &Path) -> std::io::Result<(Baseline, usize)> {
    let f = std::fs::File::open(path)?;
    let mut out = Baseline::new();
    let mut bad = 0;
    for line in std::io::BufReader::new(f).lines() {
        let entry = line
            .ok()
            .and_then(|l| serde_json::from_str::<Line>(&l).ok())
            .and_then(Line::into_entry);
        match entry {
            Some((p, s)) => {
                out.insert(p, s);
            }
            None => bad += 1,
        }
    }
    Ok((out, bad))
}

pub(super) fn os(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_load_round_trip_including_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a"), b"hello").unwrap();
        std::fs::write(root.join("sub").join("new\nline"), b"x").unwrap();
        std::fs::write(root.join(OsStr::from_bytes(b"bad\xffname")), b"y").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let (b, dirs) = scan(std::slice::from_ref(&root), &[], &Baseline::new(), 1024);
        assert_eq!(dirs.len(), 2);
        assert_eq!(
            b.len(),
            6,
            "{:?}",
            b.keys()
                .map(|k| String::from_utf8_lossy(k))
                .collect::<Vec<_>>()
        );
        let link = &b[root.join("link").as_os_str().as_bytes()];
        assert_eq!(link.kind(), "symlink");
        assert!(link.sha256.is_none(), "symlinks are not followed");
        let state = dir.path().join("state").join("baseline.jsonl");
        save(&state, &b).unwrap();
        let (loaded, bad) = load(&state).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(loaded, b);
    }

    #[test]
    fn unchanged_files_are_not_rehashed_and_changed_ones_are() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"one").unwrap();
        let first = stat(&f, 1024).unwrap();
        let mut fake = first.clone();
        fake.sha256 = Some([7; 32]);
        // Same metadata: the (fake) stored hash is trusted.
        assert_eq!(restat(&f, Some(&fake), 1024).unwrap().sha256, Some([7; 32]));
        std::fs::write(&f, b"two!").unwrap();
        let after = restat(&f, Some(&fake), 1024).unwrap();
        assert_ne!(after.sha256, Some([7; 32]));
        assert_eq!(after.sha256, stat(&f, 1024).unwrap().sha256);
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
        let (b, bad) = load(&p).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(bad, 2);
    }
}
