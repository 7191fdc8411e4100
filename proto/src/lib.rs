//! The contract between sec-tracker's three programs.
//!
//! `collectord` produces [`v1::Event`]s and serves them through the [`v1`] `Collector` gRPC
//! service; `shipperd` and `sec-trackerctl` consume them. This crate holds what all three must
//! agree on: the protobuf messages and service (compiled at build time with a pure-Rust protobuf
//! compiler, so no system `protoc` is needed), the configuration file ([`config`]), and the JSON
//! shapes that scripts and the management server read ([`json`]).

pub mod config;
pub mod json;

/// Generated protobuf types and the `Collector` client and server.
#[allow(clippy::all, unreachable_pub, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("sectracker.v1");
}

pub use config::Config;
