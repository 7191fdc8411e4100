//! Compiles the protobuf contract with `protox`, a pure-Rust compiler, so that a fresh machine
//! builds without a system `protoc`.
//!
//! Two passes: `sectracker.proto` gives every message, both clients and the Shipper server;
//! `collector_wire.proto` gives only the Collector server, whose Subscribe streams each event
//! already encoded (see that file). The second pass maps every message to the first pass's types
//! and must describe the same service, which is checked here.

use std::path::PathBuf;

use prost_types::FileDescriptorSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["sectracker.proto"], ["proto"])?;
    let wire = protox::compile(["collector_wire.proto"], ["proto"])?;
    same_collector_service(&fds, &wire)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".sectracker.v1.SubscribeResponseEncoded")
        .compile_fds(fds)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("wire");
    std::fs::create_dir_all(&out)?;
    let mut wire_build = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&out);
    for message in &wire.file[0].message_type {
        let name = message.name();
        wire_build = wire_build.extern_path(
            format!(".sectracker.v1.{name}"),
            format!("crate::v1::{name}"),
        );
    }
    wire_build.compile_fds(wire)?;
    Ok(())
}

/// The Collector service of both files, method by method, with only Subscribe's response
/// differing (SubscribeResponse and SubscribeResponseEncoded).
fn same_collector_service(
    contract: &FileDescriptorSet,
    wire: &FileDescriptorSet,
) -> Result<(), String> {
    let methods = |set: &FileDescriptorSet| -> Vec<(String, String, String, bool, bool)> {
        set.file
            .iter()
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "Collector")
            .flat_map(|s| &s.method)
            .map(|m| {
                (
                    m.name().to_owned(),
                    m.input_type().to_owned(),
                    m.output_type()
                        .replace("SubscribeResponseEncoded", "SubscribeResponse"),
                    m.client_streaming(),
                    m.server_streaming(),
                )
            })
            .collect()
    };
    let (a, b) = (methods(contract), methods(wire));
    if a.is_empty() || a != b {
        return Err(format!(
            "proto/collector_wire.proto must declare the Collector service of sectracker.proto \
             (with SubscribeResponseEncoded for SubscribeResponse):\n  sectracker.proto: {a:?}\n  collector_wire.proto: {b:?}"
        ));
    }
    Ok(())
}
