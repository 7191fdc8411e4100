//! Fuzzes the wtmp/btmp record parser with arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

use collectord::monitors::auth::utmp;

fuzz_target!(|data: &[u8]| {
    let (records, rest) = utmp::parse_records(data);
    assert_eq!(records.len(), data.len() / utmp::RECORD_SIZE);
    assert_eq!(rest, data.len() % utmp::RECORD_SIZE);
    for r in &records {
        let _ = format!("{r:?} {}", r.kind.is_known());
    }
});
