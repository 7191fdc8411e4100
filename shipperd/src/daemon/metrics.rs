//! The opt-in metrics listener (`agent.metrics_listen`): `GET /metrics` answers both daemons'
//! counters in Prometheus' text format, shipperd's own and collectord's, which shipperd asks for
//! over collectord's socket so that collectord itself never opens a network port.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sec_tracker_proto::metrics::{self, Exposition};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{health, Shared};

/// Scrapers at once; more are closed at accept (a scraper needs one).
const MAX_CONNECTIONS: usize = 8;
/// A connection's whole life: a scrape takes milliseconds; a peer that sends nothing is cut.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn serve(
    lanes: Vec<Arc<Shared>>,
    listener: TcpListener,
    collector_socket: PathBuf,
) {
    let shared = Arc::new(lanes);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shared[0].shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let socket = collector_socket.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                let socket = socket.clone();
                async move { Ok::<_, Infallible>(answer(&shared, &socket, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(slot);
        });
    }
}

async fn answer(
    shared: &[Arc<Shared>],
    collector_socket: &Path,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    let own = health::snapshot(shared).await;
    let collector = health::collector_status(collector_socket).await;
    let mut out = Exposition::new();
    metrics::shipper(&mut out, Some(&own));
    metrics::collector(&mut out, collector.as_ref());
    let mut r = Response::new(Full::new(Bytes::from(out.into_string())));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}
