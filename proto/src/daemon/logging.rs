//! The programs' logs: to stderr, natively to the journal when systemd started the daemon, or
//! with `--log-file` to a file (`/var/log/sec-tracker/agent.log`) for hosts without journald,
//! rotated by size with the old files gzipped, so it can never fill the disk: at most `keep`
//! compressed files beside the current one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

/// Rotate when the current file would grow past this.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Compressed files kept: `agent.log.1.gz` (newest) … `agent.log.5.gz`.
pub const DEFAULT_KEEP: usize = 5;

pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes,
            keep: keep.max(1),
            file,
            size,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}.gz"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(self.numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = self.numbered(n);
            if from.exists() {
                std::fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        let mut gz = GzEncoder::new(File::create(self.numbered(1))?, Compression::default());
        io::copy(&mut File::open(&self.path)?, &mut gz)?;
        gz.finish()?.sync_all()?;
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            // A log that cannot rotate keeps logging rather than lose lines.
            if let Err(e) = self.rotate() {
                let _ = writeln!(self.file, "log rotation failed: {e}");
            }
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Logging for the daemons: `RUST_LOG` or `LOG_LEVEL` (default `info`); with `log_file`, to a
/// rotating file; started by systemd with stderr on the journal, natively to the journal
/// ([`journal`](super::journal): priorities and fields, no own timestamp); else to stderr.
pub fn init_daemon(program: &str, log_file: Option<&Path>) -> io::Result<()> {
    if log_file.is_none() && super::journal::stderr_is_journal() {
        match super::journal::JournalLayer::connect(program) {
            Ok(layer) => {
                use tracing_subscriber::layer::SubscriberExt;
                use tracing_subscriber::util::SubscriberInitExt;
                tracing_subscriber::registry()
                    .with(filter("info"))
                    .with(layer)
                    .init();
                return Ok(());
            }
            // The stream still reaches the journal, without priorities.
            Err(e) => {
                eprintln!("{program}: cannot reach journald's socket ({e}); logging to stderr")
            }
        }
    }
    init(log_file, "info")
}

/// Logging for the command-line client: warnings and errors on stderr unless `RUST_LOG` or
/// `LOG_LEVEL` say otherwise.
pub fn init_cli() {
    let _ = init(None, "warn");
}

fn filter(default_level: &str) -> tracing_subscriber::EnvFilter {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("LOG_LEVEL"))
        .unwrap_or_else(|_| default_level.into());
    tracing_subscriber::EnvFilter::new(level)
}

fn init(log_file: Option<&Path>, default_level: &str) -> io::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(default_level))
        .with_target(false);
    match log_file {
        Some(path) => {
            let file = RotatingFile::open(path, DEFAULT_MAX_BYTES, DEFAULT_KEEP)?;
            builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn rotates_by_size_gzips_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        let mut f = RotatingFile::open(&path, 1000, 3).unwrap();
        for i in 0..100 {
            writeln!(f, "line {i:04} {}", "x".repeat(90)).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
        let gz: Vec<_> = (1..=4)
            .map(|n| dir.path().join(format!("agent.log.{n}.gz")))
            .collect();
        assert!(gz[0].exists() && gz[1].exists() && gz[2].exists());
        assert!(!gz[3].exists(), "only 3 kept");
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(&gz[0]).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        // The newest archive ends right where the current file begins.
        let last_archived: u32 = text.lines().last().unwrap()[5..9].parse().unwrap();
        let first_current: u32 = current.lines().next().unwrap()[5..9].parse().unwrap();
        assert_eq!(last_archived + 1, first_current);
        assert!(current.lines().last().unwrap().starts_with("line 0099"));
    }
}
