//! Fuzzes what gives a process its context and a file change its author: `/proc/<pid>/cgroup`
//! (v1 and v2, every runtime's naming), `/proc/<pid>/stat`'s start time after a hostile command
//! name, the audit ids, and fanotify's records in names mode (directory handle and name).
#![no_main]

use collectord::monitors::file::parse_named_events;
use collectord::monitors::process::context::{parse_audit_id, parse_cgroup, parse_starttime};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let c = parse_cgroup(data);
    if let Some(k) = &c.container {
        // An id comes out of the text as it was, never made up.
        assert!(!k.id.is_empty());
        assert!(data.windows(k.id.len()).any(|w| w == k.id.as_bytes()));
    }
    if !c.unit.is_empty() {
        assert!(
            c.unit.ends_with(".service") || c.unit.ends_with(".scope") || c.unit.ends_with(".slice")
        );
    }
    if parse_starttime(data).is_some() {
        assert!(data.contains(&b')'));
    }
    if let Some(id) = parse_audit_id(data) {
        assert_ne!(id, u32::MAX);
    }
    let mut events = Vec::new();
    let malformed = parse_named_events(data, &mut events);
    assert!(malformed <= 1);
    // Each event takes at least its 24-byte header.
    assert!(events.len() * 24 <= data.len());
});
