//! Where events come from: a running collectord over its socket, or the collector library run
//! in-process when there is no daemon (standalone local mode).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use sec_tracker_proto::v1::collector_client::CollectorClient;
use sec_tracker_proto::v1::{SnapshotRequest, SubscribeRequest, SubscribeResponse, SystemInfo};
use sec_tracker_proto::Config;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

pub enum Source {
    Daemon(CollectorClient<Channel>),
    InProcess(Arc<collectord::Collector>),
}

/// How the daemon's socket answered a probe.
pub enum Probe {
    Up,
    /// No daemon: the socket is missing or nobody listens on it.
    Absent(String),
}

pub fn probe(path: &Path) -> anyhow::Result<Probe> {
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Ok(Probe::Up),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
            Ok(Probe::Absent(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => bail!(
            "cannot connect to {}: permission denied; run as root or as a member of the sec-tracker group \
             (or use --standalone to collect in-process)",
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot connect to {}", path.display())),
    }
}

/// A channel over a Unix socket (the URI is a placeholder the connector ignores).
pub async fn channel(path: &Path) -> anyhow::Result<Channel> {
    let path: PathBuf = path.to_owned();
    let shown = path.display().to_string();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .with_context(|| format!("cannot connect to {shown}"))
}

/// Connects a Collector client.
pub async fn connect(path: &Path) -> anyhow::Result<CollectorClient<Channel>> {
    let channel = channel(path).await.context("collectord")?;
    Ok(CollectorClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

impl Source {
    /// The daemon when its socket answers (unless `standalone`), else the in-process collector.
    pub async fn open(
        config: &Config,
        config_path: Option<PathBuf>,
        socket: &Path,
        standalone: bool,
    ) -> anyhow::Result<Source> {
        if !standalone {
            match probe(socket)? {
                Probe::Up => return Ok(Source::Daemon(connect(socket).await?)),
                Probe::Absent(why) => eprintln!(
                    "sec-trackerctl: collectord is not running ({why}); running the collector in-process (standalone local mode)"
                ),
            }
        }
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "sec-trackerctl: not running as root: the process connector may be unavailable and \
                 processes of other users only partly visible"
            );
        }
        Ok(Source::InProcess(collectord::Collector::start(
            config.clone(),
            config_path,
            None,
        )))
    }

    pub fn is_daemon(&self) -> bool {
        matches!(self, Source::Daemon(_))
    }

    pub async fn snapshot(&mut self) -> anyhow::Result<SystemInfo> {
        match self {
            Source::Daemon(c) => Ok(c
                .snapshot(SnapshotRequest {})
                .await
                .context("Snapshot")?
                .into_inner()),
            Source::InProcess(c) => Ok(c.snapshot().await),
        }
    }

    pub async fn subscribe(
        &mut self,
        req: SubscribeRequest,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<SubscribeResponse>>> {
        match self {
            Source::Daemon(c) => {
                let s = c.subscribe(req).await.context("Subscribe")?.into_inner();
                Ok(
                    s.map(|r| r.map_err(|s| anyhow::anyhow!("collectord: {}", s.message())))
                        .boxed(),
                )
            }
            Source::InProcess(c) => Ok(c.hub().subscribe(req).map(Ok).boxed()),
        }
    }
}
