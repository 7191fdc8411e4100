//! Netlink datagrams as the kernel lays them out: `nlmsghdr` (length, type, flags, sequence,
//! port id; native endian) then the payload, each message 4-byte aligned. One iterator for the
//! process connector and sock_diag, pure so that both decoders can be fuzzed.

pub const NLMSG_HDR_LEN: usize = 16;

/// One message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// What follows the header, up to the message's length.
    pub payload: &'a [u8],
}

/// The messages of one datagram. Stops at the first message whose length is impossible (shorter
/// than a header, or past the end) or at trailing bytes too short for a header, and says so in
/// [`Messages::malformed`].
pub struct Messages<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Messages<'a> {
    pub fn new(datagram: &'a [u8]) -> Self {
        Messages {
            rest: datagram,
            malformed: false,
        }
    }

    /// Whether the datagram ended in something that was not a whole message.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;

    fn next(&mut self) -> Option<Message<'a>> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        let len = if rest.len() >= NLMSG_HDR_LEN {
            u32_ne(rest, 0) as usize
        } else {
            0
        };
        if len < NLMSG_HDR_LEN || len > rest.len() {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let aligned = (len + 3) & !3;
        self.rest = rest.get(aligned..).unwrap_or(&[]);
        Some(Message {
            kind: u16::from_ne_bytes([rest[4], rest[5]]),
            flags: u16::from_ne_bytes([rest[6], rest[7]]),
            seq: u32_ne(rest, 8),
            payload: &rest[NLMSG_HDR_LEN..len],
        })
    }
}

/// The native-endian u32 at `at`; the caller has checked the length.
pub fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR_LEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn aligned_messages_in_a_row_then_garbage() {
        let mut d = msg(3, b"abcde");
        d.extend(msg(20, b""));
        let mut it = Messages::new(&d);
        let a = it.next().unwrap();
        assert_eq!(
            (a.kind, a.flags, a.seq, a.payload),
            (3, 2, 7, &b"abcde"[..])
        );
        assert_eq!(it.next().unwrap().kind, 20);
        assert!(it.next().is_none());
        assert!(!it.malformed());
        d.extend_from_slice(&[1, 2, 3]);
        let mut it = Messages::new(&d);
        assert_eq!(it.by_ref().count(), 2);
        assert!(it.malformed(), "trailing bytes shorter than a header");
        let mut bad = msg(3, b"x");
        bad[0..4].copy_from_slice(&999u32.to_ne_bytes());
        let mut it = Messages::new(&bad);
        assert!(it.next().is_none());
        assert!(it.malformed());
    }
}
