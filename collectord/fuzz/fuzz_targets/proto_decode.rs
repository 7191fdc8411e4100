//! Fuzzes protobuf decoding of the socket API's messages from arbitrary bytes (each message type
//! gets the same bytes), and the JSON rendering of what decodes. Never panics; whatever decodes
//! re-encodes to bytes that decode to the same message, and its JSON is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sec_tracker_proto::json::{details_json, event_json, system_info_json};
use sec_tracker_proto::v1::{
    subscribe_response, CollectorStatus, Event, ShipperStatus, SubscribeRequest, SubscribeResponse,
    SystemInfo,
};

fuzz_target!(|data: &[u8]| {
    if let Some(r) = decode::<SubscribeResponse>(data) {
        if let Some(subscribe_response::Item::Event(ev)) = &r.item {
            render(ev);
        }
    }
    if let Some(ev) = decode::<Event>(data) {
        render(&ev);
    }
    if let Some(s) = decode::<SystemInfo>(data) {
        json_roundtrip(&system_info_json(&s));
    }
    decode::<SubscribeRequest>(data);
    decode::<CollectorStatus>(data);
    decode::<ShipperStatus>(data);
});

/// Decodes `data` as `M`; when it decodes, checks the re-encoding (compared as bytes, so a NaN
/// double does not count as a difference).
fn decode<M: Message + Default + std::fmt::Debug>(data: &[u8]) -> Option<M> {
    let m = M::decode(data).ok()?;
    let bytes = m.encode_to_vec();
    assert_eq!(bytes.len(), m.encoded_len());
    let again = M::decode(bytes.as_slice()).expect("our own encoding decodes");
    assert_eq!(again.encode_to_vec(), bytes);
    let _ = format!("{m:?}");
    Some(m)
}

fn render(ev: &Event) {
    json_roundtrip(&event_json(ev));
    if let Some(d) = &ev.details {
        json_roundtrip(&details_json(d));
    }
}

fn json_roundtrip(v: &serde_json::Value) {
    let bytes = serde_json::to_vec(v).expect("a Value serializes");
    let back: serde_json::Value = serde_json::from_slice(&bytes).expect("our JSON parses");
    // Numbers may come back in another representation (u64 vs f64); the shape must not change.
    assert_eq!(back.is_object(), v.is_object());
}
