//! The contract between sec-tracker's three programs, and the local plumbing they share.
//!
//! `collectord` produces [`v1::Event`]s and serves them through the [`v1`] `Collector` gRPC
//! service on a Unix socket; `shipperd` and `sec-trackerctl` consume them, and shipperd serves its
//! own `Shipper` status the same way. This crate holds what all three must agree on and do alike:
//!
//! - the protobuf messages and services ([`v1`], compiled at build time with a pure-Rust protobuf
//!   compiler, so no system `protoc` is needed), the configuration file ([`config`]) and the JSON
//!   shapes scripts and the management server read ([`json`]);
//! - the local transport ([`local`]): binding and publishing a socket, authorising its peers,
//!   and connecting to one only after checking who serves it;
//! - what every program does at start and stop ([`daemon`]: logging, the config or exit 64,
//!   stop signals), retry pacing ([`backoff`]) and crash-safe state files ([`fsutil`]).

pub mod backoff;
pub mod config;
pub mod daemon;
pub mod fsutil;
pub mod json;
pub mod local;

/// Generated protobuf types and the `Collector` and `Shipper` clients and servers.
#[allow(clippy::all, unreachable_pub, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("sectracker.v1");
}

pub use config::Config;
