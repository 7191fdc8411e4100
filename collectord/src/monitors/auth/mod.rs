//! Auth monitor: logins, sudo, su, account changes.

pub mod parse;

use super::{Monitor, MonitorContext, MonitorFuture};

pub const NAME: &str = "auth_monitor";

pub struct AuthMonitor;

impl Monitor for AuthMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        super::unavailable(ctx)
    }
}
