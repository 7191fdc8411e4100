//! shipperd: the unprivileged half of sec-tracker. It subscribes to collectord's event stream,
//! writes every event to a durable on-disk queue before counting it as received, and delivers
//! the queue to the management server in batches over TLS, at least once, through restarts,
//! crashes and outages.
//!
//! Where to look: [`sender`] is the HTTPS client (TLS, gzip, answers, `Retry-After`);
//! [`outputs`] puts it beside the other outputs (syslog over TLS, OTLP logs); with the
//! `daemon` feature (the default), [`queue`] is the durable queue (SQLite) and [`daemon`] wires
//! them to collectord's stream (the receiver), to the server (the delivery loop, health reports)
//! and to the status socket. [`memory`] is the one module with `unsafe` (an allocator setting).
//! Without the feature the crate is the sender alone: `sec-trackerctl test-connection` checks
//! the way to the server with the very code that delivers, without linking the queue.
//! [`cli`] is the daemon's command line (here so that `sec-trackerctl manpages` renders
//! shipperd(8) from it).

pub mod cli;
pub mod outputs;
pub mod sender;

#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod memory;
#[cfg(feature = "daemon")]
pub mod queue;
