//! `metrics`: both daemons' counters in Prometheus' text format, the same text shipperd serves
//! at `/metrics` when `agent.metrics_listen` is set (e.g. for node_exporter's textfile
//! collector: `sec-trackerctl metrics > /var/lib/node_exporter/sec-tracker.prom`). A daemon that
//! does not answer is `…_up 0`; the exit code is 0 either way, the numbers say it.

use sec_tracker_proto::local::client::Probe;
use sec_tracker_proto::metrics::{self, Exposition};
use sec_tracker_proto::v1::StatusRequest;

use crate::commands::status::shipper_status;
use crate::commands::Context;
use crate::source::{connect, probe};

pub(crate) async fn run(ctx: &Context) -> anyhow::Result<u8> {
    let collector = match probe(&ctx.socket)? {
        Probe::Absent(_) | Probe::Untrusted(_) => None,
        Probe::Up => match connect(&ctx.socket).await {
            Ok(mut client) => client
                .status(StatusRequest {})
                .await
                .ok()
                .map(|r| r.into_inner()),
            Err(_) => None,
        },
    };
    let shipper = shipper_status(ctx).await.ok();
    let mut out = Exposition::new();
    metrics::collector(&mut out, collector.as_ref());
    metrics::shipper(&mut out, shipper.as_ref());
    print!("{}", out.into_string());
    Ok(0)
}
