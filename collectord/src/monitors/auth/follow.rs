//! Follows a growing log file the way `tail -F` does, across rotation, without losing or
//! repeating lines:
//!
//! * rename rotation (logrotate's default): the path now names another inode; the old file is
//!   read to its end first, then the new one from its start;
//! * copytruncate: same inode, but shorter than what we have read; read again from the start
//!   (lines written between logrotate's copy and its truncate are lost: inherent to
//!   copytruncate, and why rename rotation is the default);
//! * the file missing for a while: picked up when it reappears.
//!
//! Lines longer than `max_line` are cut (the rest of the line skipped) and counted.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(super) struct Follower {
    path: PathBuf,
    file: Option<File>,
    ino: u64,
    dev: u64,
    offset: u64,
    partial: Vec<u8>,
    skipping_long_line: bool,
    max_line: usize,
    /// Lines cut at `max_line`.
    pub cut_lines: u64,
    /// Rotations seen.
    pub rotations: u64,
}

/// Where to start reading when the file is first opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Start {
    End,
    /// Resume at a saved position when the file is still the same inode and at least that long.
    Resume {
        ino: u64,
        offset: u64,
    },
}

impl Follower {
    pub(super) fn new(path: &Path, start: Start, max_line: usize) -> Follower {
        let mut f = Follower {
            path: path.to_owned(),
            file: None,
            ino: 0,
            dev: 0,
            offset: 0,
            partial: Vec::new(),
            skipping_long_line: false,
            max_line,
            cut_lines: 0,
            rotations: 0,
        };
        if let Ok(file) = open_log(path) {
            if let Ok(m) = file.metadata() {
                let offset = match start {
                    Start::End => m.len(),
                    Start::Resume { ino, offset } if ino == m.ino() && offset <= m.len() => offset,
                    Start::Resume { .. } => 0,
                };
                f.attach(file, m.ino(), m.dev(), offset);
            }
        }
        f
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The position to save for [`Start::Resume`].
    pub(super) fn position(&self) -> (u64, u64) {
        (self.ino, self.offset - self.partial.len() as u64)
    }

    fn attach(&mut self, mut file: File, ino: u64, dev: u64, offset: u64) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            self.file = Some(file);
            self.ino = ino;
            self.dev = dev;
            self.offset = offset;
            self.partial.clear();
            self.skipping_long_line = false;
        }
    }

    /// Reads every complete new line into `out`.
    pub(super) fn poll(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        self.poll_with(out, false)
    }

    /// Binary files (wtmp, btmp): every new byte, in order, across rotation. The caller keeps
    /// incomplete records.
    pub(super) fn poll_bytes(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let mut chunks = Vec::new();
        self.poll_with(&mut chunks, true)?;
        for c in chunks {
            out.extend_from_slice(&c);
        }
        Ok(())
    }

    fn poll_with(&mut self, out: &mut Vec<Vec<u8>>, raw: bool) -> io::Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if self.file.is_none() => {
                // Appeared (or reappeared): a new file is read from its start.
                if let Ok(file) = open_log(&self.path) {
                    self.attach(file, m.ino(), m.dev(), 0);
                }
            }
            Ok(m) if m.ino() != self.ino || m.dev() != self.dev => {
                // Renamed away: finish the old file (over as many polls as that takes), then
                // start the new one.
                if self.drain(out, raw)? {
                    return Ok(());
                }
                self.flush_partial(out);
                self.rotations += 1;
                if let Ok(file) = open_log(&self.path) {
                    self.attach(file, m.ino(), m.dev(), 0);
                }
            }
            Ok(m) if m.len() < self.offset => {
                // Truncated in place (copytruncate).
                self.rotations += 1;
                if let Some(file) = self.file.take() {
                    self.attach(file, m.ino(), m.dev(), 0);
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Between a rename and the new file's creation: finish what we have.
                self.drain(out, raw)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.drain(out, raw).map(|_| ())
    }

    /// Reads what is there, up to [`MAX_PER_POLL`] bytes: true when it stopped there with more
    /// to read (a backlog after a long downtime is taken in steps, never in one allocation).
    fn drain(&mut self, out: &mut Vec<Vec<u8>>, raw: bool) -> io::Result<bool> {
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        let mut buf = [0u8; 64 * 1024];
        let mut budget = MAX_PER_POLL;
        loop {
            if budget == 0 {
                return Ok(true);
            }
            let want = buf.len().min(budget);
            let n = match file.read(&mut buf[..want]) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            budget -= n;
            if raw {
                out.push(buf[..n].to_vec());
                continue;
            }
            let mut chunk = &buf[..n];
            while let Some(nl) = chunk.iter().position(|b| *b == b'\n') {
                if self.skipping_long_line {
                    self.skipping_long_line = false;
                } else {
                    let room = self.max_line.saturating_sub(self.partial.len());
                    self.partial.extend_from_slice(&chunk[..nl.min(room)]);
                    out.push(std::mem::take(&mut self.partial));
                }
                chunk = &chunk[nl + 1..];
            }
            if self.skipping_long_line {
                continue;
            }
            self.partial.extend_from_slice(chunk);
            if self.partial.len() > self.max_line {
                self.partial.truncate(self.max_line);
                out.push(std::mem::take(&mut self.partial));
                self.cut_lines += 1;
                self.skipping_long_line = true;
            }
        }
    }

    /// A rotated-away file whose last line had no newline: deliver it rather than lose it.
    fn flush_partial(&mut self, out: &mut Vec<Vec<u8>>) {
        if !self.partial.is_empty() {
            out.push(std::mem::take(&mut self.partial));
        }
    }
}

/// Bytes read from one log per poll at most.
const MAX_PER_POLL: usize = 1024 * 1024;

/// Opens a log for reading without ever blocking (a FIFO put in its place would) and only if it
/// is a regular file.
fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    fn lines(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        f.poll(&mut out).unwrap();
        out.into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn starts_at_the_end_and_delivers_only_complete_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "old 1\nold 2\n");
        let mut f = Follower::new(&p, Start::End, 1024);
        assert!(lines(&mut f).is_empty());
        append(&p, "new 1\nhalf");
        assert_eq!(lines(&mut f), ["new 1"]);
        append(&p, " done\n");
        assert_eq!(lines(&mut f), ["half done"]);
    }

    #[test]
    fn rename_rotation_loses_and_repeats_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "");
        let mut f = Follower::new(&p, Start::End, 1024);
        append(&p, "a\n");
        assert_eq!(lines(&mut f), ["a"]);
        append(&p, "b\n"); // written just before rotation, not yet read
        std::fs::rename(&p, d.path().join("auth.log.1")).unwrap();
        append(&d.path().join("auth.log.1"), "c\n"); // the writer still holds the old file
        assert_eq!(lines(&mut f), ["b", "c"], "the old file is finished first");
        append(&p, "d\n");
        assert_eq!(lines(&mut f), ["d"]);
        assert_eq!(f.rotations, 1);
    }

    #[test]
    fn copytruncate_starts_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "");
        let mut f = Follower::new(&p, Start::End, 1024);
        append(&p, "first line that is long\n");
        assert_eq!(lines(&mut f), ["first line that is long"]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, "x\n");
        assert_eq!(lines(&mut f), ["x"]);
    }

    #[test]
    fn a_missing_file_is_picked_up_when_it_appears() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secure");
        let mut f = Follower::new(&p, Start::End, 1024);
        assert!(lines(&mut f).is_empty());
        append(&p, "hello\n");
        assert_eq!(lines(&mut f), ["hello"]);
    }

    /// A backlog far larger than one poll's budget comes in steps, every line once, in order.
    #[test]
    fn a_large_backlog_is_read_in_bounded_steps() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        let line = format!("{}\n", "y".repeat(99));
        let n = 3 * MAX_PER_POLL / line.len();
        std::fs::write(&p, line.repeat(n)).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&p).unwrap());
        let mut f = Follower::new(&p, Start::Resume { ino, offset: 0 }, 64 * 1024);
        let mut total = 0;
        let mut polls = 0;
        loop {
            let mut out = Vec::new();
            f.poll(&mut out).unwrap();
            assert!(
                out.len() * line.len() <= MAX_PER_POLL + line.len(),
                "one poll's lines fit the budget"
            );
            if out.is_empty() {
                break;
            }
            total += out.len();
            polls += 1;
        }
        assert_eq!(total, n);
        assert!(polls >= 3, "{polls} polls");
    }

    #[test]
    fn huge_lines_are_cut_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "");
        let mut f = Follower::new(&p, Start::End, 10);
        append(&p, &format!("{}\nshort\n", "y".repeat(100_000)));
        assert_eq!(lines(&mut f), ["y".repeat(10), "short".to_owned()]);
        assert_eq!(f.cut_lines, 1);
    }

    #[test]
    fn resume_continues_where_it_stopped_on_the_same_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("auth.log");
        append(&p, "a\n");
        let mut f = Follower::new(&p, Start::End, 1024);
        append(&p, "b\n");
        assert_eq!(lines(&mut f), ["b"]);
        let (ino, offset) = f.position();
        append(&p, "written while down\n");
        let mut g = Follower::new(&p, Start::Resume { ino, offset }, 1024);
        assert_eq!(lines(&mut g), ["written while down"]);
    }
}

#[cfg(test)]
mod byte_tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bytes_follow_rotation_too() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("wtmp");
        std::fs::write(&p, [1u8; 10]).unwrap();
        let mut f = Follower::new(&p, Start::End, 1024);
        let mut out = Vec::new();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[2u8; 5])
            .unwrap();
        f.poll_bytes(&mut out).unwrap();
        assert_eq!(out, [2u8; 5]);
        std::fs::rename(&p, d.path().join("wtmp.1")).unwrap();
        std::fs::write(&p, [3u8; 4]).unwrap();
        out.clear();
        f.poll_bytes(&mut out).unwrap();
        assert_eq!(out, [3u8; 4]);
    }
}
