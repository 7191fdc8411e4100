//! Network monitor: listening sockets and TCP connections, diffed every scan.

use super::{Monitor, MonitorContext, MonitorFuture};

pub const NAME: &str = "network_monitor";

pub struct NetworkMonitor;

impl Monitor for NetworkMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        super::unavailable(ctx)
    }
}
