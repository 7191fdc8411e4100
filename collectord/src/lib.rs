//! collectord: the privileged half of sec-tracker.
//!
//! It watches the host — system information, processes, files, logins and network connections —
//! judges every event with the detection rules, numbers it, keeps the recent ones in a ring, and
//! streams them over gRPC on a Unix socket to `shipperd` and `sec-trackerctl`.
//!
//! The monitors live in this library rather than in the binary so that `sec-trackerctl` can run
//! exactly the same code in-process when no daemon is running (standalone local mode):
//! [`Collector::start`] assembles them, [`hub::Hub`] fans their events out.
//!
//! Where to look: each monitor has a folder under [`monitors`]; [`rules`] decides severities
//! (with the stateful signals of [`severity`]); [`hub`] holds the ring, replay, floods and gaps;
//! [`processes`] the live process table every monitor shares; [`server`] is the socket API (the
//! socket itself and who may use it are the shared plumbing in `sec_tracker_proto::local`);
//! [`kernel`] is the only module with `unsafe`; [`cli`] is the daemon's command line (here so that
//! `sec-trackerctl manpages` renders collectord(8) from it).

pub mod cli;
pub mod collector;
pub mod hub;
pub mod kernel;
pub mod monitors;
pub mod netlink;
pub mod privileges;
pub mod processes;
pub mod rules;
pub mod server;
pub mod severity;
pub mod users;

pub use collector::Collector;
