//! Reads what the connector does not carry from `/proc/<pid>`, as fast as possible after the
//! exec: a process that lives for a millisecond is gone (or a zombie with no command line) by
//! the time a slow reader gets to it. The parsers are pure functions over the file contents.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// One process's `/proc/<pid>` directory, opened once for everything read at its exec: each file
/// is opened relative to it (one pid lookup in the kernel instead of one per file), and if the
/// process exits and its pid is reused meanwhile, reads fail instead of reading the newcomer.
pub struct ProcDir(OwnedFd);

impl ProcDir {
    pub fn open(pid: u32) -> Option<ProcDir> {
        nix::fcntl::open(
            format!("/proc/{pid}").as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(ProcDir)
    }

    /// Reads the file `name` into `buf` (cleared first), at most `limit` bytes. /proc files are
    /// read whole by one read into a big enough buffer; the read that would return 0 after it
    /// is saved (a short read from /proc is its end).
    pub fn read(&self, name: &str, limit: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        let fd = nix::fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut f = File::from(fd);
        let mut chunk = 4096.min(limit.max(1));
        loop {
            let len = buf.len();
            let want = chunk.min(limit - len);
            buf.resize(len + want, 0);
            let n = match f.read(&mut buf[len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    buf.truncate(len);
                    return Err(e);
                }
            };
            buf.truncate(len + n);
            if n < want || buf.len() >= limit {
                return Ok(());
            }
            chunk = chunk.saturating_mul(2);
        }
    }

    /// The target of the link `name` (`exe`, `cwd`, `fd/0`, `ns/pid`), empty when unreadable.
    pub fn link(&self, name: &str) -> Vec<u8> {
        nix::fcntl::readlinkat(&self.0, name)
            .map(|p| p.into_vec())
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    pub ppid: u32,
    pub uid: u32,
    pub euid: u32,
    /// The saved set-user-id: root kept there can be taken back at any moment.
    pub suid: u32,
    pub gid: u32,
    pub egid: u32,
    pub zombie: bool,
}

/// Parses the fields we use from `/proc/<pid>/status`. Missing fields stay 0 / empty; the
/// result is None only when the text has no `Name:` (not a status file).
pub fn parse_status(text: &[u8]) -> Option<Status> {
    let mut s = Status::default();
    let mut has_name = false;
    for line in text.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (key, value) = (&line[..colon], &line[colon + 1..]);
        let value = trim(value);
        match key {
            b"Name" => {
                s.name = String::from_utf8_lossy(value).into_owned();
                has_name = true;
            }
            b"State" => s.zombie = value.first() == Some(&b'Z') || value.first() == Some(&b'X'),
            b"PPid" => s.ppid = parse_u32(value).unwrap_or(0),
            b"Uid" => {
                let mut it = value
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|f| !f.is_empty());
                s.uid = it.next().and_then(parse_u32).unwrap_or(0);
                s.euid = it.next().and_then(parse_u32).unwrap_or(0);
                s.suid = it.next().and_then(parse_u32).unwrap_or(0);
            }
            b"Gid" => {
                let mut it = value
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|f| !f.is_empty());
                s.gid = it.next().and_then(parse_u32).unwrap_or(0);
                s.egid = it.next().and_then(parse_u32).unwrap_or(0);
            }
            _ => {}
        }
    }
    has_name.then_some(s)
}

/// Splits `/proc/<pid>/cmdline` into arguments. A process that rewrote its title
/// (setproctitle) may have no NULs: then it is one argument.
pub fn split_cmdline(raw: &[u8]) -> Vec<Vec<u8>> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect()
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Environments are read this far at most: past what exec accepts for arguments and environment
/// together on any usual stack limit, so padding cannot push a variable out of sight.
const MAX_ENVIRON: usize = 8 * 1024 * 1024;

/// The value of `name` in a NUL-separated `environ` block (the first, as the loader takes it).
pub fn find_env<'a>(environ: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    environ.split(|&b| b == 0).find_map(|var| {
        var.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(b"="))
    })
}

/// What we could read of a process.
#[derive(Debug, Default, Clone)]
pub struct Details {
    pub argv: Vec<Vec<u8>>,
    pub argv_truncated: bool,
    pub status: Option<Status>,
    pub exe: Vec<u8>,
    pub cwd: Vec<u8>,
}

impl Details {
    /// True when the process was gone (or already a zombie) before its command line was read.
    pub fn missing(&self) -> bool {
        self.status.is_none()
            || (self.argv.is_empty() && self.status.as_ref().is_some_and(|s| s.zombie))
    }
}

/// A reader with reusable buffers: the exec path allocates only for the results.
pub struct ProcReader {
    max_cmdline: usize,
    buf: Vec<u8>,
}

impl ProcReader {
    pub fn new(max_cmdline: usize) -> ProcReader {
        ProcReader {
            max_cmdline,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Reads cmdline first (the most perishable), then status, exe and cwd.
    pub fn read(&mut self, pid: u32) -> Details {
        match ProcDir::open(pid) {
            Some(dir) => self.read_in(&dir),
            None => Details::default(),
        }
    }

    /// [`ProcReader::read`] of a process whose directory is open.
    pub fn read_in(&mut self, dir: &ProcDir) -> Details {
        let mut d = Details::default();
        if dir
            .read("cmdline", self.max_cmdline + 1, &mut self.buf)
            .is_ok()
        {
            d.argv_truncated = self.buf.len() > self.max_cmdline;
            self.buf.truncate(self.max_cmdline);
            d.argv = split_cmdline(&self.buf);
        }
        if dir.read("status", 64 * 1024, &mut self.buf).is_ok() {
            d.status = parse_status(&self.buf);
        }
        d.exe = dir.link("exe");
        d.cwd = dir.link("cwd");
        d
    }

    /// `/proc/<pid>/status` alone.
    pub fn status(&mut self, pid: u32) -> Option<Status> {
        self.read_file(&PathBuf::from(format!("/proc/{pid}/status")), 64 * 1024)
            .ok()?;
        parse_status(&self.buf)
    }

    /// The executable's path, empty when it cannot be read.
    pub fn exe(&self, pid: u32) -> Vec<u8> {
        read_link(&PathBuf::from(format!("/proc/{pid}/exe")))
    }

    /// Only the short name, for parents and processes seen at start.
    pub fn comm(&mut self, pid: u32) -> Option<String> {
        self.read_file(&PathBuf::from(format!("/proc/{pid}/comm")), 64)
            .ok()?;
        Some(String::from_utf8_lossy(trim(&self.buf)).into_owned())
    }

    /// The value of `name` in the environment `pid` started with, None when it is not set or
    /// the environment cannot be read (it takes ptrace read access: CAP_SYS_PTRACE).
    pub fn env_var_in(&mut self, dir: &ProcDir, name: &[u8]) -> Option<Vec<u8>> {
        dir.read("environ", MAX_ENVIRON, &mut self.buf).ok()?;
        let found = find_env(&self.buf, name).map(<[u8]>::to_vec);
        // A huge environment is not kept in the reusable buffer.
        self.buf.clear();
        self.buf.shrink_to(64 * 1024);
        found
    }

    fn read_file(&mut self, path: &std::path::Path, limit: usize) -> std::io::Result<()> {
        self.buf.clear();
        let f = File::open(path)?;
        f.take(limit as u64).read_to_end(&mut self.buf)?;
        Ok(())
    }
}

fn read_link(path: &std::path::Path) -> Vec<u8> {
    std::fs::read_link(path)
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &[u8] = b"Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1234\nNgid:\t0\nPid:\t1234\nPPid:\t1000\nTracerPid:\t0\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t100\t100\nFDSize:\t256\n";

    /// The one-read-per-file reader gives what a plain read of the whole file gives, past its
    /// first 4 KiB too, and stops at the limit.
    #[test]
    fn a_proc_directory_reads_files_whole_and_within_the_limit() {
        let me = std::process::id();
        let dir = ProcDir::open(me).unwrap();
        let mut buf = Vec::new();
        // The environment is fixed for the life of the process (a test's is several KiB).
        let whole = std::fs::read(format!("/proc/{me}/environ")).unwrap();
        dir.read("environ", usize::MAX, &mut buf).unwrap();
        assert_eq!(buf, whole);
        dir.read("environ", 10, &mut buf).unwrap();
        assert_eq!(buf, whole[..10.min(whole.len())]);
        let big = std::fs::read(format!("/proc/{me}/auxv")).unwrap();
        dir.read("auxv", usize::MAX, &mut buf).unwrap();
        assert_eq!(buf, big);
        dir.read("status", 64 * 1024, &mut buf).unwrap();
        assert_eq!(
            parse_status(&buf).unwrap().ppid,
            nix::unistd::getppid().as_raw() as u32
        );
        assert_eq!(
            dir.link("exe"),
            std::fs::read_link("/proc/self/exe")
                .unwrap()
                .into_os_string()
                .into_vec()
        );
        assert!(dir.read("no-such-file", 10, &mut buf).is_err());
        assert!(ProcDir::open(u32::MAX).is_none());
    }

    #[test]
    fn environment_variables_are_found_whole_and_first() {
        let env = b"PATH=/usr/bin\0LD_PRELOAD_X=no\0LD_PRELOAD=/tmp/evil.so\0LD_PRELOAD=/second\0";
        assert_eq!(find_env(env, b"LD_PRELOAD"), Some(&b"/tmp/evil.so"[..]));
        assert_eq!(find_env(b"XLD_PRELOAD=a\0", b"LD_PRELOAD"), None);
        assert_eq!(find_env(b"LD_PRELOAD=", b"LD_PRELOAD"), Some(&b""[..]));
        assert_eq!(find_env(b"", b"LD_PRELOAD"), None);
    }

    #[test]
    fn status_fields() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!(
            s,
            Status {
                name: "bash".into(),
                ppid: 1000,
                uid: 1000,
                euid: 0,
                suid: 0,
                gid: 100,
                egid: 101,
                zombie: false
            }
        );
        let z = parse_status(b"Name:\tx\nState:\tZ (zombie)\n").unwrap();
        assert!(z.zombie);
        assert_eq!(parse_status(b"garbage\n\xff\xfe"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(
            split_cmdline(b"ls\0-l\0/tmp\0"),
            vec![b"ls".to_vec(), b"-l".to_vec(), b"/tmp".to_vec()]
        );
        assert_eq!(
            split_cmdline(b"nginx: worker process"),
            vec![b"nginx: worker process".to_vec()]
        );
        assert_eq!(
            split_cmdline(b"a\0\0b\0"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn reads_itself() {
        let mut r = ProcReader::new(4096);
        let d = r.read(std::process::id());
        assert!(!d.missing());
        assert!(!d.argv.is_empty());
        assert_eq!(
            d.status.unwrap().ppid,
            nix::unistd::getppid().as_raw() as u32
        );
        assert_eq!(
            d.exe,
            std::env::current_exe().unwrap().as_os_str().as_bytes()
        );
    }

    #[test]
    fn long_cmdline_is_cut_and_marked() {
        let mut r = ProcReader::new(256);
        let long = "y".repeat(10_000);
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "sh", &long])
            .spawn()
            .unwrap();
        // spawn() returns once exec has closed the CLOEXEC pipe, a moment before the kernel has
        // set up the new argument area: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut d = r.read(child.id());
        while d.argv.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            d = r.read(child.id());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(d.argv_truncated, "{d:?}");
        assert_eq!(d.argv.iter().map(|a| a.len() + 1).sum::<usize>() - 1, 256);
    }

    #[test]
    fn a_vanished_process_is_missing() {
        let mut r = ProcReader::new(4096);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(r.read(pid).missing());
    }
}
