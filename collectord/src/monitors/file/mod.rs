//! File monitor.

use super::{Monitor, MonitorContext, MonitorFuture};

pub const NAME: &str = "file_monitor";

pub struct FileMonitor;

impl Monitor for FileMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        super::unavailable(ctx)
    }
}
