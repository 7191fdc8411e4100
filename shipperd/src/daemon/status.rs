//! The `Shipper` status service on shipperd's own socket (0660, group sec-tracker, peers
//! checked as collectord's are).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use collectord::peer::PeerPolicy;
use sec_tracker_proto::v1::shipper_server::{Shipper, ShipperServer};
use sec_tracker_proto::v1::{ShipperStatus, ShipperStatusRequest};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::Shared;

struct StatusService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl Shipper for StatusService {
    async fn status(
        &self,
        _req: Request<ShipperStatusRequest>,
    ) -> Result<Response<ShipperStatus>, Status> {
        Ok(Response::new(super::health::snapshot(&self.shared).await))
    }
}

pub(super) fn serve(
    shared: Arc<Shared>,
    socket: &Path,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let policy = PeerPolicy::new(&shared.config.agent.socket_group);
    let listener = collectord::socket::bind(socket, policy.group_gid())
        .context("binding the status socket")?;
    let listener = collectord::socket::into_tokio(listener.publish()?)
        .context("registering the status socket")?;
    let stop = shared.shutdown.clone();
    let service = ShipperServer::with_interceptor(StatusService { shared }, policy);
    Ok(tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop.cancelled_owned())
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "status server ended");
        }
    }))
}
