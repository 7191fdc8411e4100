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
//!   stop signals), retry pacing ([`backoff`]) and crash-safe state files ([`fsutil`]);
//! - the daemons' counters in Prometheus' text format ([`metrics`]), for shipperd's opt-in
//!   listener and `sec-trackerctl metrics`.

pub mod backoff;
pub mod config;
pub mod daemon;
pub mod fsutil;
pub mod json;
pub mod local;
pub mod metrics;

pub use config::Config;

/// Generated protobuf types and the `Collector` and `Shipper` clients and servers.
#[allow(clippy::all, unreachable_pub, rust_2018_idioms)]
pub mod v1 {
    tonic::include_proto!("sectracker.v1");
}

/// The Collector server as collectord runs it: the service of `v1`, with Subscribe streaming
/// [`v1::SubscribeResponseEncoded`] (each event encoded once, when it is published). Clients use
/// `v1::collector_client` and read the same bytes as [`v1::SubscribeResponse`].
#[allow(clippy::all, unreachable_pub, rust_2018_idioms)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/wire/sectracker.v1.rs"));
}

impl v1::SubscribeResponseEncoded {
    /// The response as a client reads it (for readers inside collectord's process).
    pub fn decode(&self) -> Result<v1::SubscribeResponse, prost::DecodeError> {
        use v1::subscribe_response::Item;
        use v1::subscribe_response_encoded::Item as Encoded;
        let item = match &self.item {
            Some(Encoded::Event(bytes)) => {
                Some(Item::Event(prost::Message::decode(bytes.clone())?))
            }
            Some(Encoded::Gap(g)) => Some(Item::Gap(g.clone())),
            Some(Encoded::Hello(h)) => Some(Item::Hello(h.clone())),
            None => None,
        };
        Ok(v1::SubscribeResponse { item })
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{self, subscribe_response_encoded, Event, SubscribeResponse};
    use prost::Message;

    /// What collectord sends (each event encoded once) is read by every client as the contract
    /// says: the same bytes as a SubscribeResponse holding the event.
    #[test]
    fn an_encoded_response_is_a_subscribe_response_on_the_wire() {
        let event = Event {
            seq: 7,
            stream_id: "abc".into(),
            message: "Process started: id".into(),
            severity: v1::Severity::Warning as i32,
            ..Default::default()
        };
        let sent = v1::SubscribeResponseEncoded {
            item: Some(subscribe_response_encoded::Item::Event(
                event.encode_to_vec().into(),
            )),
        };
        let wire = sent.encode_to_vec();
        let read = SubscribeResponse::decode(wire.as_slice()).unwrap();
        assert_eq!(
            read.item,
            Some(v1::subscribe_response::Item::Event(event.clone()))
        );
        assert_eq!(sent.decode().unwrap(), read);
        let direct = SubscribeResponse {
            item: Some(v1::subscribe_response::Item::Event(event)),
        };
        assert_eq!(direct.encode_to_vec(), wire, "byte for byte");
    }
}
