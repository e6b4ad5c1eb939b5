//! HPACK (RFC 7541) for the server: the request decoder and the response encoder.
//!
//! **Decoding** is our own (`decode`, with its Huffman code in `huffman`): each field is handed
//! to a callback as a borrow (of the block, a table, or a scratch buffer: no allocation per
//! field), a dynamic table size update above what we allow or after a field is refused, and the
//! header list limit stops handing fields over past the limit while the rest of the block is
//! still decoded (or the dynamic table would fall out of step with the client's). The block's
//! own length is bounded by the connection before it gets here. loona-hpack's decoder, used
//! until session 15, built a hash map of the Huffman code for every string it decoded: a 16 KB
//! block of one-byte Huffman strings took 130 ms of the worker's thread. It stays as a
//! dev-dependency, the reference our decoder is checked against (`decode::tests`).
//!
//! **Encoding** is our own, small: loona-hpack's encoder scans the whole static and dynamic
//! table linearly for every field, never indexes a field whose name is in the static table
//! (so `content-type: text/html` is a literal in every response), and cannot signal a dynamic
//! table size update. Ours: `:status` by static index, names by a static match, a dynamic
//! table for repeated fields (values that change per response — `content-length`, `date`,
//! `set-cookie`, … — are literals without indexing), strings raw (no Huffman: CPU over bytes),
//! and the size updates the client's SETTINGS_HEADER_TABLE_SIZE asks for.

use std::collections::VecDeque;

/// The dynamic table size we use at most (also the decoder's: we do not advertise another).
pub(super) const TABLE_SIZE: usize = 4096;

mod decode;
mod huffman;

pub(super) use decode::Decoder;

/// Why a header block could not be decoded: a connection COMPRESSION_ERROR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HPACK decoding failed: {0}")]
pub(super) struct CompressionError(&'static str);

/// A dynamic table entry: (name, value).
type Entry = (Box<[u8]>, Box<[u8]>);

/// The response side, with its dynamic table.
pub(super) struct Encoder {
    table: VecDeque<Entry>,
    size: usize,
    max: usize,
    /// Size updates to signal at the start of the next block: (smallest, final).
    pending: Option<(usize, usize)>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            table: VecDeque::new(),
            size: 0,
            max: TABLE_SIZE,
            pending: None,
        }
    }

    /// The client's SETTINGS_HEADER_TABLE_SIZE: we use at most `TABLE_SIZE` of it.
    pub fn set_peer_table_size(&mut self, n: u32) {
        let new = (n as usize).min(TABLE_SIZE);
        if new == self.max && self.pending.is_none() {
            return;
        }
        let smallest = self.pending.map_or(new, |(s, _)| s.min(new));
        self.pending = Some((smallest, new));
        self.max = new;
        self.evict();
    }

    /// Starts a block: the pending size updates (RFC 7541 §4.2).
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if let Some((smallest, fin)) = self.pending.take() {
            if smallest < fin {
                int(out, 0x20, 5, smallest);
            }
            int(out, 0x20, 5, fin);
        }
    }

    /// `:status`.
    pub fn status(&mut self, code: u16, out: &mut Vec<u8>) {
        let idx = match code {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if idx != 0 {
            out.push(0x80 | idx);
            return;
        }
        // Literal without indexing, name index 8; three digits.
        out.push(0x08);
        out.push(3);
        out.extend_from_slice(code.to_string().as_bytes());
    }

    /// One field (name already lowercase, as `http::HeaderName`s are).
    pub fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        if let Some(i) = self.find(name, value) {
            int(out, 0x80, 7, 62 + i);
            return;
        }
        let name_idx = static_name(name);
        let entry = name.len() + value.len() + 32;
        let (first, prefix) = if never_index(name) {
            (0x10, 4)
        } else if varies(name) || entry > self.max / 4 {
            (0x00, 4)
        } else {
            (0x40, 6)
        };
        int(out, first, prefix, name_idx);
        if name_idx == 0 {
            string(out, name);
        }
        string(out, value);
        if first == 0x40 {
            self.insert(name, value);
        }
    }

    fn find(&self, name: &[u8], value: &[u8]) -> Option<usize> {
        self.table
            .iter()
            .position(|(n, v)| **n == *name && **v == *value)
    }

    fn insert(&mut self, name: &[u8], value: &[u8]) {
        self.size += name.len() + value.len() + 32;
        self.table.push_front((name.into(), value.into()));
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => self.size = 0,
            }
        }
    }
}

/// Fields whose value changes from one response to the next: not worth a table entry.
fn varies(name: &[u8]) -> bool {
    matches!(
        name,
        b"content-length"
            | b"date"
            | b"etag"
            | b"last-modified"
            | b"expires"
            | b"age"
            | b"location"
            | b"content-range"
            | b"x-request-id"
            | b"x-amzn-trace-id"
    )
}

/// Fields never indexed, here or by any intermediary (RFC 7541 §7.1.3).
fn never_index(name: &[u8]) -> bool {
    matches!(
        name,
        b"set-cookie" | b"authorization" | b"proxy-authorization" | b"cookie"
    )
}

/// An integer with an N-bit prefix (RFC 7541 §5.1), the first byte's other bits `first`.
fn int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A raw (not Huffman-coded) string literal.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// The static table's index for a name (its first entry with that name), 0 if none.
fn static_name(name: &[u8]) -> usize {
    match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut got = Vec::new();
        let over = d
            .decode(block, 1 << 20, |n, v| got.push((n.to_vec(), v.to_vec())))
            .expect("decodes");
        assert!(!over);
        got
    }

    #[test]
    fn what_we_encode_decodes_to_the_same_fields_and_repeats_shrink() {
        let mut e = Encoder::new();
        let mut d = Decoder::new();
        let fields: &[(&[u8], &[u8])] = &[
            (b"content-type", b"text/html"),
            (b"x-custom", b"v1"),
            (b"content-length", b"12"),
            (b"set-cookie", b"a=b"),
            (b"server", b"weir"),
        ];
        let mut sizes = Vec::new();
        for status in [200u16, 503, 200] {
            let mut out = Vec::new();
            e.begin(&mut out);
            e.status(status, &mut out);
            for (n, v) in fields {
                e.field(n, v, &mut out);
            }
            let got = decode_all(&mut d, &out);
            assert_eq!(
                got[0],
                (b":status".to_vec(), status.to_string().into_bytes())
            );
            let rest: Vec<_> = got[1..].iter().map(|(n, v)| (&n[..], &v[..])).collect();
            assert_eq!(rest, fields);
            sizes.push(out.len());
        }
        assert!(
            sizes[2] < sizes[0],
            "the second response is smaller: {sizes:?}"
        );
    }

    #[test]
    fn a_smaller_peer_table_is_signalled_and_obeyed() {
        let mut e = Encoder::new();
        let mut d = Decoder::new();
        let mut out = Vec::new();
        e.begin(&mut out);
        e.field(b"x-a", b"1", &mut out);
        decode_all(&mut d, &out);
        e.set_peer_table_size(0);
        e.set_peer_table_size(100);
        let mut out = Vec::new();
        e.begin(&mut out);
        assert_eq!(&out[..2], &[0x20, 0x3f], "0 then 100 (0x3f 0x45)");
        e.field(b"x-a", b"1", &mut out);
        assert_eq!(
            decode_all(&mut d, &out),
            vec![(b"x-a".to_vec(), b"1".to_vec())]
        );
    }

    #[test]
    fn the_list_limit_stops_the_fields_but_not_the_decoding() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.field(b"x-a", &[b'a'; 100], &mut out);
        e.field(b"x-b", b"1", &mut out);
        let mut d = Decoder::new();
        let mut n = 0;
        assert_eq!(d.decode(&out, 140, |_, _| n += 1), Ok(true));
        assert_eq!(n, 1);
        // The table kept both: the next block can refer to the second entry.
        let mut out2 = Vec::new();
        e.field(b"x-b", b"1", &mut out2);
        assert_eq!(out2, vec![0x80 | 62]);
        assert_eq!(d.decode(&out2, 1000, |_, _| n += 1), Ok(false));
    }

    #[test]
    fn garbage_is_a_compression_error_and_integers_encode_per_the_rfc() {
        let mut d = Decoder::new();
        assert!(
            d.decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1000, |_, _| {})
                .is_err()
        );
        // An out-of-range index.
        assert!(d.decode(&[0x80 | 70], 1000, |_, _| {}).is_err());
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        int(&mut out, 0, 5, 1337);
        assert_eq!(out, vec![31, 154, 10]);
    }
}
