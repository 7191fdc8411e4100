//! The client side: a tonic channel over a daemon's Unix socket, opened only after the kernel has
//! told us who serves it. A collector must run as root; a shipper as root or the shipper's user
//! (`agent.shipper_user`); either may also be our own user (we trust ourselves). A socket served
//! by anyone else (a group member who bound the name first, a socket planted in a shared
//! directory) is refused before a byte of it is read.

use std::io;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use nix::unistd::User;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::LocalService;

/// Who may serve a socket to this client.
#[derive(Clone, Debug)]
pub struct Trust {
    service: LocalService,
    /// Besides root and our own uid: a user's name and, when it exists, its uid.
    user: Option<(String, Option<u32>)>,
}

impl Trust {
    /// collectord: root (or ourselves).
    pub fn collector() -> Trust {
        Trust {
            service: LocalService::Collector,
            user: None,
        }
    }

    /// shipperd: root, ourselves, or `user` (`agent.shipper_user`), looked up now.
    pub fn shipper(user: &str) -> Trust {
        let uid = User::from_name(user).ok().flatten().map(|u| u.uid.as_raw());
        Trust {
            service: LocalService::Shipper,
            user: Some((user.to_owned(), uid)),
        }
    }

    /// Whether `uid` may serve to a client running as `own_uid`.
    pub fn allows(&self, uid: u32, own_uid: u32) -> bool {
        uid == 0 || uid == own_uid || self.user.as_ref().is_some_and(|(_, u)| *u == Some(uid))
    }

    fn expected(&self) -> String {
        match &self.user {
            None => "root".to_owned(),
            Some((name, _)) => format!("root or {name}"),
        }
    }
}

/// Connects to `path` and checks who serves it.
pub async fn connect_stream(path: &Path, trust: &Trust) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(path).await?;
    check_server(path, stream.peer_cred()?.uid(), trust)?;
    Ok(stream)
}

/// Refuses a server whose uid `trust` does not allow, saying who serves it and who should.
fn check_server(path: &Path, uid: u32, trust: &Trust) -> io::Result<()> {
    if trust.allows(uid, nix::unistd::geteuid().as_raw()) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is served by uid {uid}, not by {}: refusing to trust it (it is not {})",
            path.display(),
            trust.expected(),
            trust.service.daemon()
        ),
    ))
}

/// A channel over the socket (the URI is a placeholder the connector ignores). Every
/// reconnection of the channel checks the server again.
pub async fn connect(path: &Path, trust: &Trust) -> io::Result<Channel> {
    let path: PathBuf = path.to_owned();
    let trust = trust.clone();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            let trust = trust.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(connect_stream(&path, &trust).await?)) }
        }))
        .await
        .map_err(|e| {
            // tonic wraps the connector's error: give the caller the io::Error back.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<io::Error>() {
                    return io::Error::new(io.kind(), io.to_string());
                }
                source = s.source();
            }
            io::Error::other(e.to_string())
        })
}

/// How a daemon's socket answered a quick, synchronous probe.
#[derive(Debug)]
pub enum Probe {
    Up,
    /// No daemon: the socket is missing or nobody listens on it.
    Absent(String),
    /// Someone listens, but not who `trust` allows: the reason, to show as an error.
    Untrusted(String),
}

/// Whether the expected daemon listens at `path`. The server is checked on this first
/// connection already, so an impostor is refused before anything is read from it. A socket we
/// may not open is an error, not absence.
pub fn probe(path: &Path, trust: &Trust) -> io::Result<Probe> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(stream) => {
            let uid =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                    .map_err(io::Error::from)?
                    .uid();
            Ok(match check_server(path, uid, trust) {
                Ok(()) => Probe::Up,
                Err(e) => Probe::Untrusted(e.to_string()),
            })
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(Probe::Absent(format!("{}: {e}", path.display())))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_serve() {
        let c = Trust::collector();
        assert!(c.allows(0, 1000));
        assert!(c.allows(1000, 1000));
        assert!(!c.allows(65534, 1000));
        assert!(!c.allows(65534, 0));
        let s = Trust::shipper("nobody");
        assert!(s.allows(0, 0));
        assert!(s.allows(65534, 0), "nobody is 65534 on Debian");
        assert!(!s.allows(1234, 0));
        assert!(!Trust::shipper("no-such-user-here").allows(65534, 0));
    }

    #[tokio::test]
    async fn a_socket_served_by_ourselves_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = tokio::net::UnixListener::bind(&path).unwrap();
        assert!(connect_stream(&path, &Trust::collector()).await.is_ok());
        assert!(matches!(
            probe(&path, &Trust::collector()).unwrap(),
            Probe::Up
        ));
        assert!(matches!(
            probe(&dir.path().join("none"), &Trust::collector()).unwrap(),
            Probe::Absent(_)
        ));
    }
}
