//! The `Collector` gRPC service over the Unix socket.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use sec_tracker_proto::v1::{
    CollectorStatus, SnapshotRequest, StatusRequest, SubscribeRequest, SubscribeResponseEncoded,
    SystemInfo,
};
// The Collector service of the contract, streaming each event as it was encoded at publish.
use sec_tracker_proto::wire::collector_server::{Collector as CollectorApi, CollectorServer};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::collector::Collector;
use sec_tracker_proto::local::peer::PeerPolicy;

pub struct CollectorService {
    collector: Arc<Collector>,
}

/// The service with peer authorisation in front of every call.
pub fn service(
    collector: Arc<Collector>,
    policy: PeerPolicy,
) -> InterceptedService<CollectorServer<CollectorService>, PeerPolicy> {
    CollectorServer::with_interceptor(CollectorService { collector }, policy)
}

#[tonic::async_trait]
impl CollectorApi for CollectorService {
    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<SystemInfo>, Status> {
        Ok(Response::new(self.collector.snapshot().await))
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<SubscribeResponseEncoded, Status>> + Send>>;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let stream = self.collector.hub().subscribe_encoded(req.into_inner());
        let stop = self.collector.shutdown_token().cancelled_owned();
        let stream = stream.map(Ok).take_until(stop);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<CollectorStatus>, Status> {
        Ok(Response::new(self.collector.status()))
    }
}
