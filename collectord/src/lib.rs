//! collectord: the privileged half of sec-tracker.
//!
//! It watches the host — system information and processes today, files, logins and network
//! connections as their monitors land — numbers every event, keeps the most recent ones in a
//! ring, and streams them over gRPC on a Unix socket to `shipperd` and `sec-trackerctl`.
//!
//! The monitors live in this library rather than in the binary so that `sec-trackerctl` can run
//! exactly the same code in-process when no daemon is running (standalone local mode):
//! [`Collector::start`] assembles them, [`hub::Hub`] fans their events out.
//!
//! Where to look: each monitor has a folder under [`monitors`]; [`hub`] holds the ring, replay
//! and slow-subscriber handling; [`server`] is the socket API (the socket itself and who may use
//! it are the shared plumbing in `sec_tracker_proto::local`); [`severity`] has the rules;
//! [`kernel`] is the only module with `unsafe`.

pub mod collector;
pub mod hub;
pub mod kernel;
pub mod monitors;
pub mod netlink;
pub mod privileges;
pub mod processes;
pub mod server;
pub mod severity;
pub mod users;

pub use collector::Collector;
