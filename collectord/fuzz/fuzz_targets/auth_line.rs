//! Fuzzes the auth.log parsers: `parse_line` on the raw bytes, `split_syslog` on their lossy
//! UTF-8 decoding, and `parse_message` with the input split at its first 0 byte into
//! program / message. `describe()` is called on every record produced.
#![no_main]

use libfuzzer_sys::fuzz_target;

use collectord::monitors::auth::parse;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(rec)) = parse::parse_line(data) {
        let _ = rec.describe();
    }

    let text = String::from_utf8_lossy(data);
    let _ = parse::split_syslog(&text);

    let (program, message) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let program = String::from_utf8_lossy(program);
    let message = String::from_utf8_lossy(message);
    // Derive a pid from the input too, so both the Some and None paths are exercised.
    let pid = (data.len() % 2 == 1).then(|| data.len() as u32);
    if let Some(rec) = parse::parse_message(&program, pid, &message) {
        let _ = rec.describe();
    }
});
