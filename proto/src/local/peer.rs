//! Who may use a daemon's socket, decided from what the kernel recorded when the peer connected
//! (`SO_PEERCRED`, `SO_PEERGROUPS`), which a peer cannot forge and which cannot change under us.
//!
//! Allowed: root, the daemon's own uid, and members (primary or supplementary) of the socket
//! group. Everyone else gets PERMISSION_DENIED, naming the daemon, and a log line.
//!
//! Before authorisation, at accept: each non-root user may hold at most
//! [`Limits::per_user`] connections and all non-root users together [`Limits::total`], so a
//! group member holding a thousand idle connections cannot use up the daemon's descriptors or
//! lock root out; a connection that sends nothing within [`Limits::handshake`] is closed.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use nix::unistd::{Gid, Group};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tonic::transport::server::Connected;
use tonic::{Request, Status};

use super::LocalService;

/// A connected peer, as the kernel recorded it at `connect()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let cred = stream.peer_cred()?;
        Ok(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: super::sys::peer_groups(stream.as_fd())?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct PeerPolicy {
    service: LocalService,
    group: Option<(String, u32)>,
    own_uid: u32,
}

impl PeerPolicy {
    /// `group_name` may not exist (a development machine): then only root and our own uid pass.
    pub fn new(service: LocalService, group_name: &str) -> PeerPolicy {
        let group = Group::from_name(group_name)
            .ok()
            .flatten()
            .map(|g| (g.name, g.gid.as_raw()));
        PeerPolicy {
            service,
            group,
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn group_gid(&self) -> Option<Gid> {
        self.group.as_ref().map(|(_, g)| Gid::from_raw(*g))
    }

    pub fn check(&self, peer: &Peer) -> Result<(), String> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            return Ok(());
        }
        let who = match peer.pid {
            Some(pid) => format!("uid {} (pid {pid})", peer.uid),
            None => format!("uid {}", peer.uid),
        };
        match &self.group {
            Some((_, gid)) if peer.gid == *gid || peer.groups.contains(gid) => Ok(()),
            Some((name, _)) => Err(format!("{who} is not root and not in group {name}")),
            None => Err(format!("{who} is not root")),
        }
    }
}

/// Runs in front of every call of the service.
impl tonic::service::Interceptor for PeerPolicy {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let verdict = match req.extensions().get::<Peer>() {
            Some(peer) => self.check(peer),
            None => Err("peer credentials unavailable".into()),
        };
        match verdict {
            Ok(()) => Ok(req),
            Err(why) => {
                tracing::warn!(reason = %why, "refused a connection to {}'s socket", self.service.daemon());
                Err(Status::permission_denied(format!(
                    "not authorised to {} from {}: {why}; run as root or join the socket group",
                    self.service.what(),
                    self.service.daemon()
                )))
            }
        }
    }
}

/// Bounds on connections, per non-root user and in all.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub per_user: usize,
    pub total: usize,
    pub handshake: Duration,
}

impl Default for Limits {
    /// 32 per user, 256 in all: far above what `watch`, `status` and shipperd need, far below
    /// collectord's descriptor limit.
    fn default() -> Limits {
        Limits {
            per_user: 32,
            total: 256,
            handshake: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Counts {
    by_uid: HashMap<u32, usize>,
    total: usize,
    refused: u64,
    last_warning: Option<Instant>,
}

/// Accepts connections for tonic, each carrying its [`Peer`]; over-limit ones are closed at once.
pub fn serve_incoming(
    listener: UnixListener,
    service: LocalService,
    limits: Limits,
) -> impl Stream<Item = io::Result<PeerStream>> + Send + 'static {
    let counts = Arc::new(Mutex::new(Counts::default()));
    futures_util::stream::unfold(listener, move |listener| {
        let counts = Arc::clone(&counts);
        async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    // EMFILE and friends: not the listener's end; wait a moment and go on.
                    Err(e) => {
                        tracing::warn!(error = %e, daemon = service.daemon(), "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let peer = match Peer::of(&stream) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read a peer's credentials; closing it");
                        continue;
                    }
                };
                let Some(slot) = Slot::take(&counts, peer.uid, &limits, service) else {
                    continue;
                };
                let deadline = Box::pin(tokio::time::sleep(limits.handshake));
                return Some((
                    Ok(PeerStream {
                        inner: stream,
                        peer,
                        handshake: Some(deadline),
                        _slot: slot,
                    }),
                    listener,
                ));
            }
        }
    })
}

/// One counted connection; released when the connection is dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
}

impl Slot {
    fn take(
        counts: &Arc<Mutex<Counts>>,
        uid: u32,
        limits: &Limits,
        service: LocalService,
    ) -> Option<Slot> {
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.by_uid.get(&uid).copied().unwrap_or(0);
        // Root is never refused: it must be able to run `status` whatever others hold.
        if uid != 0 && (mine >= limits.per_user || c.total >= limits.total) {
            c.refused += 1;
            if c.last_warning
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                c.last_warning = Some(Instant::now());
                tracing::warn!(
                    uid,
                    held = mine,
                    per_user = limits.per_user,
                    total = c.total,
                    refused_so_far = c.refused,
                    daemon = service.daemon(),
                    "connection limit reached: closing new connections of this user"
                );
            }
            return None;
        }
        *c.by_uid.entry(uid).or_default() += 1;
        if uid != 0 {
            c.total += 1;
        }
        Some(Slot {
            counts: Arc::clone(counts),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = c.by_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.by_uid.remove(&self.uid);
            }
        }
        if self.uid != 0 {
            c.total -= 1;
        }
    }
}

/// An accepted connection with its peer's credentials; closed with `TimedOut` if it sends
/// nothing before its handshake deadline.
pub struct PeerStream {
    inner: UnixStream,
    peer: Peer,
    handshake: Option<Pin<Box<tokio::time::Sleep>>>,
    _slot: Slot,
}

impl Connected for PeerStream {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.handshake = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = self
                    .handshake
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer sent nothing before the handshake deadline",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: Some(42),
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_own_uid_and_group_members_pass() {
        let p = PeerPolicy {
            service: LocalService::Collector,
            group: Some(("readers".into(), 990)),
            own_uid: 0,
        };
        assert!(p.check(&peer(0, 0, &[])).is_ok());
        assert!(p.check(&peer(1000, 990, &[])).is_ok(), "primary group");
        assert!(
            p.check(&peer(1000, 1000, &[4, 990])).is_ok(),
            "supplementary"
        );
        let e = p.check(&peer(65534, 65534, &[])).unwrap_err();
        assert!(
            e.contains("uid 65534 (pid 42) is not root and not in group readers"),
            "{e}"
        );
        let no_group = PeerPolicy { group: None, ..p };
        assert!(no_group.check(&peer(1000, 990, &[990])).is_err());
    }

    #[tokio::test]
    async fn the_kernel_reports_our_own_credentials_and_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = Peer::of(&a).unwrap();
        assert_eq!(p.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(p.gid, nix::unistd::getegid().as_raw());
        let mut mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .iter()
            .map(|g| g.as_raw())
            .collect();
        let mut got = p.groups.clone();
        mine.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, mine);
    }

    #[test]
    fn a_user_past_the_limit_is_refused_root_never() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = Limits {
            per_user: 2,
            total: 3,
            handshake: Duration::from_secs(1),
        };
        let svc = LocalService::Collector;
        let a1 = Slot::take(&counts, 1000, &limits, svc).unwrap();
        let _a2 = Slot::take(&counts, 1000, &limits, svc).unwrap();
        assert!(
            Slot::take(&counts, 1000, &limits, svc).is_none(),
            "per user"
        );
        let _b1 = Slot::take(&counts, 1001, &limits, svc).unwrap();
        assert!(Slot::take(&counts, 1002, &limits, svc).is_none(), "total");
        let roots: Vec<Slot> = (0..10)
            .map(|_| Slot::take(&counts, 0, &limits, svc).unwrap())
            .collect();
        drop(a1);
        assert!(
            Slot::take(&counts, 1002, &limits, svc).is_some(),
            "a slot came free"
        );
        drop(roots);
        assert_eq!(counts.lock().unwrap().refused, 2);
    }
}
