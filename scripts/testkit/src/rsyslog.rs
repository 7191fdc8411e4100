//! A real rsyslogd receiving syslog over TLS (imtcp with the gtls driver, from `rsyslog-gnutls`)
//! on 127.0.0.1, as a SIEM relay would: an instance of its own (own config, pid file and work
//! directory, beside any system rsyslog), writing each message it gets to a file as
//! `PRI HOSTNAME APP-NAME MSGID MSG`. Its main queue is direct: a message is in the file before
//! rsyslog reads the next, so a stop loses nothing that it read.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::TestCert;
use crate::support::wait_for;

pub const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS_DRIVER: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

/// Whether rsyslogd and its TLS driver are installed (`rsyslog`, `rsyslog-gnutls`).
pub fn available() -> bool {
    Path::new(RSYSLOGD).exists()
        && (Path::new(GTLS_DRIVER).exists()
            || Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
            || Path::new("/usr/lib64/rsyslog/lmnsd_gtls.so").exists())
}

pub struct Rsyslog {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Rsyslog {
    /// Starts rsyslogd in `dir` with `cert` (for localhost) on a free port, and waits until it
    /// listens.
    pub fn start(dir: &Path, cert: &TestCert, ca_pem: &str) -> io::Result<Rsyslog> {
        std::fs::create_dir_all(dir.join("work"))?;
        let (cert_path, key_path) = cert.write(dir, "rsyslog")?;
        let ca_path = dir.join("rsyslog-ca.pem");
        std::fs::write(&ca_path, ca_pem)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}/work" maxMessageSize="1m"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}")
main_queue(queue.type="Direct")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="fields" type="string" string="%PRI% %HOSTNAME% %APP-NAME% %MSGID% %msg%\n")
action(type="omfile" file="{d}/received.log" template="fields")
"#,
            ca = ca_path.display(),
            cert = cert_path.display(),
            key = key_path.display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), conf)?;
        let mut r = Rsyslog {
            dir: dir.to_owned(),
            port,
            child: None,
            starts: 0,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> io::Result<()> {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.log"))?;
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let port = self.port;
        wait_for("rsyslogd to listen", Duration::from_secs(30), || {
            listening(port).then_some(())
        });
        Ok(())
    }

    /// Stops it (SIGTERM) and waits for it to exit: an outage, until [`Rsyslog::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            wait_for("rsyslogd to stop", Duration::from_secs(30), || {
                c.try_wait().ok().flatten()
            });
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().expect("restarting rsyslogd");
    }

    /// Each message received so far: `PRI HOSTNAME APP-NAME MSGID MSG`.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// rsyslogd's own messages (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
    }
}

/// Whether something listens on 127.0.0.1:`port` (read from /proc, without connecting: a
/// connection that sends no TLS would only add noise to rsyslog's log).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[1]).ends_with(&want) && f[3] == "0A"
        })
}
