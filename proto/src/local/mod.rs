//! The local transport: gRPC over Unix sockets between collectord, shipperd and sec-trackerctl,
//! trusted in both directions.
//!
//! A daemon serves its socket through [`socket::bind`] (its own directory, a staged name, mode
//! and group set without following links) and [`peer::serve_incoming`] (every connection's
//! credentials taken from the kernel at accept, connections capped per user, idle handshakes
//! cut); [`peer::PeerPolicy`] then authorises each call. A client connects through
//! [`client::connect`], which checks who serves the socket before it reads a byte
//! ([`client::Trust`]): a collector must be root, a shipper root or the shipper's user.

pub mod client;
pub mod peer;
pub mod socket;
mod sys;

/// Which daemon serves a socket: names it in messages, and says whom a client may trust as its
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalService {
    /// collectord's event stream; served by root.
    Collector,
    /// shipperd's status; served by the shipper's user.
    Shipper,
}

impl LocalService {
    /// The daemon's program name.
    pub fn daemon(self) -> &'static str {
        match self {
            LocalService::Collector => "collectord",
            LocalService::Shipper => "shipperd",
        }
    }

    /// What a client of this socket gets, for refusals: "read … from collectord".
    pub fn what(self) -> &'static str {
        match self {
            LocalService::Collector => "read sec-tracker events",
            LocalService::Shipper => "read shipperd's status",
        }
    }
}
