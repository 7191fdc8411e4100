//! shipperd: the unprivileged half of sec-tracker. It subscribes to collectord's event stream,
//! writes every event to a durable on-disk queue before counting it as received, and delivers
//! the queue to the management server in batches over TLS, at least once, through restarts,
//! crashes and outages.
//!
//! Where to look: [`queue`] is the durable queue (SQLite); [`sender`] is the HTTPS client
//! (TLS, gzip, retries, status handling); [`daemon`] wires them to collectord's stream (the
//! receiver), to the server (the delivery loop, health reports) and to the status socket.
//! [`memory`] is the one module with `unsafe` (an allocator setting).

pub mod daemon;
pub mod memory;
pub mod queue;
pub mod sender;

#[cfg(feature = "testing")]
pub mod testing;
