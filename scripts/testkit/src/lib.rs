//! sec-tracker's test kit: the doubles and load the tests, the benchmarks and the soak drive the
//! real programs with, kept out of the product crates.
//!
//! - [`server`]: the management-server double (HTTPS with a throwaway CA, failure modes, a record
//!   of what it accepted); the `test-server` binary serves it to scripts.
//! - [`collectord`]: a real collectord as a child process, and a client for it.
//! - [`support`]: deadlines, root, the readers' group, the workspace's binaries.
//! - Binaries: `synthetic-collector` (the real Collector service publishing synthetic events, for
//!   shipping benchmarks), `load-gen` (paced processes and file writes), `exec-storm` (short-lived
//!   processes as fast as possible), `poll-collector` (a naive agent listing `/proc`, for
//!   comparison), and the attackers of the attack tests (`swap-race`).

pub mod collectord;
pub mod otlp;
pub mod rsyslog;
pub mod server;
pub mod support;

pub use collectord::{connect, Daemon};
pub use support::{
    as_nobody, eventually, require_root, runnable_by_anyone, socket_group_gid, under_test,
    wait_for, workspace_bin, BIN_DIR_ENV, REQUIRE_ALL_ENV,
};
