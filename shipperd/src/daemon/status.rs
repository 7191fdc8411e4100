//! The `Shipper` status service on shipperd's own socket (0660, group sec-tracker, in its own
//! directory), peers checked as collectord's are.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sec_tracker_proto::local::peer::{self, Limits, PeerPolicy};
use sec_tracker_proto::local::{socket, LocalService};
use sec_tracker_proto::v1::shipper_server::{Shipper, ShipperServer};
use sec_tracker_proto::v1::{ShipperStatus, ShipperStatusRequest};
use tonic::{Request, Response, Status};

use super::Shared;

struct StatusService {
    lanes: Vec<Arc<Shared>>,
}

#[tonic::async_trait]
impl Shipper for StatusService {
    async fn status(
        &self,
        _req: Request<ShipperStatusRequest>,
    ) -> Result<Response<ShipperStatus>, Status> {
        Ok(Response::new(super::health::snapshot(&self.lanes).await))
    }
}

/// Serves until shutdown; the task removes the socket when it ends.
pub(super) fn serve(
    lanes: Vec<Arc<Shared>>,
    socket: &Path,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let shared = Arc::clone(&lanes[0]);
    let policy = PeerPolicy::new(LocalService::Shipper, &shared.config.agent.socket_group);
    let staged = socket::bind(socket, LocalService::Shipper, policy.group_gid())
        .context("binding the status socket")?;
    let (listener, published) = staged.publish()?;
    let listener = socket::into_tokio(listener).context("registering the status socket")?;
    let stop = shared.shutdown.clone();
    let service = ShipperServer::with_interceptor(StatusService { lanes }, policy);
    Ok(tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                peer::serve_incoming(listener, LocalService::Shipper, Limits::default()),
                stop.cancelled_owned(),
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "status server ended");
        }
        if let Err(e) = published.remove() {
            tracing::warn!(error = %e, "cannot remove the status socket");
        }
    }))
}
