//! SHA-256 of regular files, bounded: a file over the limit is not read at all.

use std::fs::File;
use std::io::Read;

use sha2::{Digest, Sha256};

pub(super) type Sha256Digest = [u8; 32];

pub(super) enum Hashed {
    Digest(Sha256Digest),
    /// Larger than the limit: not read.
    TooLarge,
    /// Gone or unreadable by the time we looked.
    Unavailable,
}

/// Hashes an open file (opened by the caller, safely: see `tree`), up to `limit` bytes.
pub(super) fn sha256_file(file: File, size_hint: u64, limit: u64) -> Hashed {
    if size_hint > limit {
        return Hashed::TooLarge;
    }
    let mut hasher = Sha256::new();
    // Sized to the file (most watched files are small): zeroing 64 KiB for each would cost more
    // than hashing it.
    let mut buf = vec![0u8; size_hint.saturating_add(1).clamp(4096, 64 * 1024) as usize];
    // The file may grow while we read it; never read past the limit.
    let mut reader = file.take(limit.saturating_add(1));
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if total > limit {
                    return Hashed::TooLarge;
                }
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Hashed::Unavailable,
        }
    }
    Hashed::Digest(hasher.finalize().into())
}

pub(super) fn hex(d: &Sha256Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn from_hex(s: &str) -> Option<Sha256Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let open = || File::open(&p).unwrap();
        let Hashed::Digest(d) = sha256_file(open(), 3, 1024) else {
            panic!()
        };
        assert_eq!(
            hex(&d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(from_hex(&hex(&d)), Some(d));
        assert!(matches!(sha256_file(open(), 3, 2), Hashed::TooLarge));
        // A file that grew after its size was taken is still read to its end (the buffer is
        // sized from the hint), and one over the limit by then is not hashed.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        let Hashed::Digest(grown) = sha256_file(open(), 3, 1 << 20) else {
            panic!()
        };
        assert_eq!(grown, <[u8; 32]>::from(Sha256::digest(&big)));
        assert!(matches!(sha256_file(open(), 3, 100_000), Hashed::TooLarge));
    }
}
