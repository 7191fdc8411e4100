//! `snapshot`: a one-shot system scan.

use crate::cli::SnapshotArgs;
use crate::commands::Context;
use crate::render::Printer;
use crate::source::probe;
use sec_tracker_proto::local::client::Probe;

pub(crate) async fn run(ctx: &Context, args: &SnapshotArgs) -> anyhow::Result<()> {
    let info = if !args.standalone && matches!(probe(&ctx.socket)?, Probe::Up) {
        let mut client = crate::source::connect(&ctx.socket).await?;
        client
            .snapshot(sec_tracker_proto::v1::SnapshotRequest {})
            .await
            .map_err(|s| anyhow::anyhow!("collectord refused the snapshot: {}", s.message()))?
            .into_inner()
    } else {
        // No daemon needed, and no monitors either: just read the system now.
        tokio::task::spawn_blocking(|| {
            collectord::monitors::system_info::SystemSampler::new().collect()
        })
        .await?
    };
    let mut printer = Printer::new(std::io::stdout().lock(), ctx.style(&args.output));
    printer.system_info(&info)?;
    Ok(())
}
