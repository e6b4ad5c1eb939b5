//! The frame codec (RFC 9113 §4, §6): the 9-byte frame header, frame types and flags, the
//! payload checks that need no connection state (padding), and writers for the frames the
//! server sends, appending straight to the output buffer.

/// The length of a frame header.
pub(super) const HEAD_LEN: usize = 9;
/// The client connection preface (§3.4).
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest flow-control window (§6.9.1).
pub(super) const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The highest stream id (2^31-1): a GOAWAY's last id that refuses nothing yet (§6.8).
pub(super) const MAX_STREAM_ID: u32 = (1 << 31) - 1;
/// The largest SETTINGS_MAX_FRAME_SIZE (§6.5.2).
pub(super) const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;
/// The initial SETTINGS_MAX_FRAME_SIZE and its smallest allowed value.
pub(super) const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The initial flow-control window of streams and of the connection.
pub(super) const DEFAULT_WINDOW: u32 = 65_535;

/// Frame types.
pub(super) mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub(super) mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (§6.5.2, RFC 8441, RFC 9218).
pub(super) mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
    pub const NO_RFC7540_PRIORITIES: u16 = 0x9;
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, reserved bit cleared.
    pub stream: u32,
}

impl Head {
    /// Parses the first 9 bytes of `b` (the caller checked the length).
    pub fn parse(b: &[u8]) -> Head {
        Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: read_u31(&b[5..9]),
        }
    }

    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// A big-endian u32 with the top (reserved) bit cleared.
pub(super) fn read_u31(b: &[u8]) -> u32 {
    read_u32(b) & 0x7fff_ffff
}

pub(super) fn read_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// What is wrong with a padded (or prioritised) frame's fixed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadPadding {
    /// Shorter than its mandatory fields — the pad length byte, a HEADERS frame's priority —
    /// (§4.2: a frame too small to contain mandatory frame data is a FRAME_SIZE_ERROR).
    TooShort,
    /// The padding is as long as what follows the fields or longer (§6.1, §6.2: a connection
    /// PROTOCOL_ERROR).
    TooLong,
}

impl BadPadding {
    /// The connection error's code (§4.2, §6.1).
    pub fn reason(self) -> super::Reason {
        match self {
            BadPadding::TooShort => super::Reason::FRAME_SIZE_ERROR,
            BadPadding::TooLong => super::Reason::PROTOCOL_ERROR,
        }
    }
}

/// The range of `payload` that remains once the pad length byte, `skip` more bytes (the
/// priority fields of a HEADERS frame) and the padding are taken off.
pub(super) fn unpad(
    payload: &[u8],
    padded: bool,
    skip: usize,
) -> Result<std::ops::Range<usize>, BadPadding> {
    let start = usize::from(padded) + skip;
    if payload.len() < start {
        return Err(BadPadding::TooShort);
    }
    let pad = if padded { usize::from(payload[0]) } else { 0 };
    match payload.len().checked_sub(pad) {
        Some(end) if end >= start => Ok(start..end),
        _ => Err(BadPadding::TooLong),
    }
}

/// Appends a frame header.
pub(super) fn write_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

pub(super) fn write_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    write_head(out, values.len() * 6, kind::SETTINGS, 0, 0);
    for (id, v) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub(super) fn write_settings_ack(out: &mut Vec<u8>) {
    write_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub(super) fn write_ping_ack(out: &mut Vec<u8>, opaque: &[u8]) {
    write_head(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(opaque);
}

pub(super) fn write_ping(out: &mut Vec<u8>, opaque: &[u8; 8]) {
    write_head(out, 8, kind::PING, 0, 0);
    out.extend_from_slice(opaque);
}

pub(super) fn write_goaway(out: &mut Vec<u8>, last: u32, code: u32) {
    write_head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

pub(super) fn write_rst(out: &mut Vec<u8>, stream: u32, code: u32) {
    write_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_be_bytes());
}

pub(super) fn write_window_update(out: &mut Vec<u8>, stream: u32, inc: u32) {
    write_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(inc & 0x7fff_ffff).to_be_bytes());
}

/// Appends a header block as a HEADERS frame and as many CONTINUATION frames as `max`
/// (the peer's SETTINGS_MAX_FRAME_SIZE) needs.
pub(super) fn write_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    block: &[u8],
    max: usize,
) {
    let es = if end_stream { flag::END_STREAM } else { 0 };
    let mut chunks = block.chunks(max.max(1)).peekable();
    let mut kind = kind::HEADERS;
    let mut flags = es;
    if block.is_empty() {
        write_head(out, 0, kind, flags | flag::END_HEADERS, stream);
        return;
    }
    while let Some(c) = chunks.next() {
        let last = chunks.peek().is_none();
        let f = if last {
            flags | flag::END_HEADERS
        } else {
            flags
        };
        write_head(out, c.len(), kind, f, stream);
        out.extend_from_slice(c);
        kind = kind::CONTINUATION;
        flags = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trips_and_clears_the_reserved_bit() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            0x01_0203,
            kind::DATA,
            flag::END_STREAM,
            0x8000_0005,
        );
        let h = Head::parse(&out);
        assert_eq!(h.len, 0x01_0203);
        assert_eq!(h.stream, 5);
        assert!(h.has(flag::END_STREAM));
    }

    #[test]
    fn padding_longer_than_the_payload_is_refused() {
        assert_eq!(unpad(&[3, b'a', 0, 0, 0], true, 0), Ok(1..2));
        assert_eq!(unpad(&[4, b'a', 0, 0, 0], true, 0), Ok(1..1));
        assert_eq!(unpad(&[5, 0, 0, 0, 0], true, 0), Err(BadPadding::TooLong));
        assert_eq!(unpad(&[], true, 0), Err(BadPadding::TooShort));
        assert_eq!(unpad(&[0, 1, 2, 3, 4, 5], true, 5), Ok(6..6));
        assert_eq!(
            unpad(&[1, 1, 2, 3, 4, 5], true, 5),
            Err(BadPadding::TooLong)
        );
        assert_eq!(unpad(&[1, 2, 3], false, 5), Err(BadPadding::TooShort));
        assert_eq!(unpad(&[0, 1, 2, 3], true, 5), Err(BadPadding::TooShort));
    }

    #[test]
    fn a_large_block_is_split_into_continuations() {
        let mut out = Vec::new();
        write_header_block(&mut out, 1, true, &[7u8; 25], 10);
        let h1 = Head::parse(&out);
        assert_eq!(
            (h1.len, h1.kind, h1.flags),
            (10, kind::HEADERS, flag::END_STREAM)
        );
        let h2 = Head::parse(&out[19..]);
        assert_eq!((h2.len, h2.kind, h2.flags), (10, kind::CONTINUATION, 0));
        let h3 = Head::parse(&out[38..]);
        assert_eq!(
            (h3.len, h3.kind, h3.flags),
            (5, kind::CONTINUATION, flag::END_HEADERS)
        );
        assert_eq!(out.len(), 3 * 9 + 25);
    }
}
