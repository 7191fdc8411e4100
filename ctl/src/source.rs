//! Where events come from: a running collectord over its socket, or the collector library run
//! in-process when there is no daemon (standalone local mode).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sec_tracker_proto::local::client::{self, Probe};
use sec_tracker_proto::v1::collector_client::CollectorClient;
use sec_tracker_proto::v1::{SnapshotRequest, SubscribeRequest, SubscribeResponse, SystemInfo};
use sec_tracker_proto::Config;
use tonic::transport::Channel;

pub(crate) enum Source {
    Daemon(CollectorClient<Channel>),
    InProcess(Arc<collectord::Collector>),
}

/// Whether collectord listens at `path`. A socket we may not open is an error, with the fix;
/// so is a socket served by someone other than root.
pub(crate) fn probe(path: &Path) -> anyhow::Result<Probe> {
    probe_for(path, &client::Trust::collector())
}

/// Whether the daemon `trust` describes listens at `path`; an impostor is an error.
pub(crate) fn probe_for(path: &Path, trust: &client::Trust) -> anyhow::Result<Probe> {
    let probe = client::probe(path, trust).or_else(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            bail!(
                "cannot connect to {}: permission denied; run as root or as a member of the sec-tracker group \
                 (or use --standalone to collect in-process)",
                path.display()
            )
        }
        Err(e).with_context(|| format!("cannot connect to {}", path.display()))
    })?;
    if let Probe::Untrusted(why) = probe {
        bail!("cannot connect to {}: {why}", path.display());
    }
    Ok(probe)
}

/// Connects a Collector client, once collectord has proven to be root.
pub(crate) async fn connect(path: &Path) -> anyhow::Result<CollectorClient<Channel>> {
    let channel = client::connect(path, &client::Trust::collector())
        .await
        .with_context(|| format!("cannot connect to collectord at {}", path.display()))?;
    Ok(CollectorClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

impl Source {
    /// The daemon when its socket answers (unless `standalone`), else the in-process collector.
    pub(crate) async fn open(
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
                Probe::Untrusted(why) => bail!(why),
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

    pub(crate) fn is_daemon(&self) -> bool {
        matches!(self, Source::Daemon(_))
    }

    pub(crate) async fn snapshot(&mut self) -> anyhow::Result<SystemInfo> {
        match self {
            Source::Daemon(c) => Ok(c
                .snapshot(SnapshotRequest {})
                .await
                .context("Snapshot")?
                .into_inner()),
            Source::InProcess(c) => Ok(c.snapshot().await),
        }
    }

    pub(crate) async fn subscribe(
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
