//! Who may read the event stream: decided per connection from the kernel's `SO_PEERCRED`,
//! which a peer cannot forge. Allowed: root, the collector's own uid, and members (primary or
//! supplementary) of the socket group. Everyone else gets PERMISSION_DENIED and a log line.

use nix::unistd::{Gid, Group};
use tokio::net::unix::UCred;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

#[derive(Clone, Debug)]
pub struct PeerPolicy {
    group: Option<(String, u32)>,
    own_uid: u32,
}

impl PeerPolicy {
    /// `group_name` may not exist (a development machine): then only root and our own uid pass.
    pub fn new(group_name: &str) -> PeerPolicy {
        let group = Group::from_name(group_name)
            .ok()
            .flatten()
            .map(|g| (g.name, g.gid.as_raw()));
        PeerPolicy {
            group,
            own_uid: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn group_gid(&self) -> Option<Gid> {
        self.group.as_ref().map(|(_, g)| Gid::from_raw(*g))
    }

    pub fn check(&self, cred: Option<&UCred>) -> Result<(), String> {
        let Some(cred) = cred else {
            return Err("peer credentials unavailable".into());
        };
        let uid = cred.uid();
        if uid == 0 || uid == self.own_uid {
            return Ok(());
        }
        if let Some((name, gid)) = &self.group {
            if cred.gid() == *gid || cred.pid().is_some_and(|pid| process_in_group(pid, *gid)) {
                return Ok(());
            }
            return Err(format!(
                "uid {uid} (pid {:?}) is not root and not in group {name}",
                cred.pid()
            ));
        }
        Err(format!("uid {uid} (pid {:?}) is not root", cred.pid()))
    }
}

/// Runs in front of every call of the service.
impl tonic::service::Interceptor for PeerPolicy {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred.as_ref());
        match self.check(cred) {
            Ok(()) => Ok(req),
            Err(why) => {
                tracing::warn!(reason = %why, "refused a connection to the collector socket");
                Err(Status::permission_denied(format!(
                    "not authorised to read sec-tracker events: {why}; run as root or join the socket group"
                )))
            }
        }
    }
}

/// The peer process's supplementary groups, read from `/proc/<pid>/status` (`Groups:`): the
/// groups it really runs with, not what the user database says today.
fn process_in_group(pid: i32, gid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|groups| groups.split_whitespace().any(|g| g.parse() == Ok(gid)))
}
