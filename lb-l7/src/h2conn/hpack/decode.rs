//! HPACK decoding (RFC 7541 §3, §6) of the client's header blocks. Our own since session 15
//! (loona-hpack's decoder before): its Huffman decoding built a hash map per string, a CPU
//! cost a client could multiply at will (see `huffman`). This one hands each field to a
//! callback as a borrow — of the block, of the static or dynamic table, or of one of two
//! scratch buffers for Huffman strings — so a field costs no allocation; only an entry added
//! to the dynamic table is copied (one allocation).

use super::huffman::{self, HuffmanError};
use super::{CompressionError, TABLE_SIZE};
use crate::h2conn::IDLE_KEEP;
use std::collections::VecDeque;

/// RFC 7541 Appendix A.
const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

fn err(why: &'static str) -> CompressionError {
    CompressionError(why)
}

/// A dynamic table entry: name and value in one allocation.
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn new(name: &[u8], value: &[u8]) -> Entry {
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        }
    }
    fn field(&self) -> (&[u8], &[u8]) {
        self.bytes.split_at(self.name_len)
    }
    /// Its size as §4.1 counts it.
    fn size(&self) -> usize {
        self.bytes.len() + 32
    }
}

/// The dynamic table (§2.3.2): newest first.
struct Table {
    entries: VecDeque<Entry>,
    size: usize,
    max: usize,
}

impl Table {
    /// Index `i` of the address space (§2.3.3): static 1–61, then dynamic.
    fn get(&self, i: usize) -> Result<(&[u8], &[u8]), CompressionError> {
        match i {
            0 => Err(err("index 0")),
            1..=61 => Ok(STATIC[i - 1]),
            _ => self
                .entries
                .get(i - 62)
                .map(Entry::field)
                .ok_or(err("an index past the tables")),
        }
    }

    /// §4.4: evicts what the entry needs room for; an entry larger than the table empties it
    /// and is not added.
    fn insert(&mut self, e: Entry) {
        let need = e.size();
        self.evict_to(self.max.saturating_sub(need));
        if need <= self.max {
            self.size += need;
            self.entries.push_front(e);
        }
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some(e) => self.size -= e.size(),
                None => break,
            }
        }
    }
}

/// The request side: one per connection.
pub(in crate::h2conn) struct Decoder {
    table: Table,
    /// Huffman-decoded name and value of the field being decoded.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            table: Table {
                entries: VecDeque::new(),
                size: 0,
                max: TABLE_SIZE,
            },
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Decodes a whole block, handing `field` each (name, value) while the header list stays
    /// within `limit` bytes (§6.5.2 of RFC 9113: name + value + 32 each). True if it went past
    /// the limit. The rest of the block is still decoded, so the dynamic table stays in step
    /// with the client's.
    pub fn decode(
        &mut self,
        block: &[u8],
        limit: usize,
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<bool, CompressionError> {
        let mut list = 0usize;
        let mut over = false;
        let mut hand = |name: &[u8], value: &[u8]| {
            list = list.saturating_add(name.len() + value.len() + 32);
            if list > limit {
                over = true;
            } else {
                field(name, value);
            }
        };
        let mut pos = 0;
        let mut fields = false;
        let mut last_update = false;
        let result = loop {
            let Some(&first) = block.get(pos) else {
                // A block may not end with a size update (h2spec hpack/4.2, as nghttp2 and
                // loona-hpack refuse it).
                break if last_update {
                    Err(err("a block ending with a table size update"))
                } else {
                    Ok(())
                };
            };
            last_update = first & 0xe0 == 0x20;
            let rest = &block[pos..];
            if first & 0x80 != 0 {
                // §6.1: an indexed field.
                let (i, n) = match int(rest, 7) {
                    Ok(v) => v,
                    Err(e) => break Err(e),
                };
                pos += n;
                match self.table.get(i) {
                    Ok((name, value)) => hand(name, value),
                    Err(e) => break Err(e),
                }
            } else if first & 0xe0 == 0x20 {
                // §6.3: a table size update, only before the block's first field (§4.2).
                if fields {
                    break Err(err("a table size update after a field"));
                }
                let (max, n) = match int(rest, 5) {
                    Ok(v) => v,
                    Err(e) => break Err(e),
                };
                if max > TABLE_SIZE {
                    break Err(err("a table size update above SETTINGS_HEADER_TABLE_SIZE"));
                }
                pos += n;
                self.table.max = max;
                self.table.evict_to(max);
                continue;
            } else {
                // §6.2: a literal; with incremental indexing (01), without (0000) or never
                // indexed (0001).
                let (prefix, indexing) = if first & 0xc0 == 0x40 {
                    (6, true)
                } else {
                    (4, false)
                };
                match self.literal(block, pos, prefix, indexing, &mut hand) {
                    Ok(end) => pos = end,
                    Err(e) => break Err(e),
                }
            }
            fields = true;
        };
        // A scratch buffer a long string grew is let go, as the connection's own buffers are
        // when idle (a connection keeps its decoder for its life).
        if self.name.capacity() > IDLE_KEEP {
            self.name = Vec::new();
        }
        if self.value.capacity() > IDLE_KEEP {
            self.value = Vec::new();
        }
        result.map(|()| over)
    }

    /// One literal field at `block[pos..]`: hands it over, adds it to the table if
    /// `indexing`; returns where the next representation starts.
    fn literal(
        &mut self,
        block: &[u8],
        pos: usize,
        prefix: u8,
        indexing: bool,
        hand: &mut impl FnMut(&[u8], &[u8]),
    ) -> Result<usize, CompressionError> {
        let (i, n) = int(&block[pos..], prefix)?;
        let mut pos = pos + n;
        let name = if i == 0 {
            let (s, n) = string(&block[pos..], &mut self.name)?;
            pos += n;
            s
        } else {
            self.table.get(i)?.0
        };
        let (value, n) = string(&block[pos..], &mut self.value)?;
        pos += n;
        hand(name, value);
        if indexing {
            let e = Entry::new(name, value);
            self.table.insert(e);
        }
        Ok(pos)
    }
}

/// An integer with an `prefix`-bit prefix (§5.1): (value, bytes it took). At most four
/// continuation bytes: no length or index here needs more than 2^28.
fn int(buf: &[u8], prefix: u8) -> Result<(usize, usize), CompressionError> {
    let max = (1usize << prefix) - 1;
    let mut v = usize::from(buf[0]) & max;
    if v < max {
        return Ok((v, 1));
    }
    let mut shift = 0;
    for (k, &b) in buf[1..].iter().enumerate() {
        if shift > 21 {
            return Err(err("an integer over 2^28"));
        }
        v += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((v, k + 2));
        }
        shift += 7;
    }
    Err(err("an integer cut off by the block's end"))
}

/// A string literal (§5.2): its bytes (of the block, or Huffman-decoded into `scratch`) and
/// the bytes it took.
fn string<'a>(
    buf: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<(&'a [u8], usize), CompressionError> {
    let Some(&first) = buf.first() else {
        return Err(err("a string cut off by the block's end"));
    };
    let (len, n) = int(buf, 7)?;
    let raw = buf
        .get(n..n + len)
        .ok_or(err("a string longer than the block"))?;
    if first & 0x80 == 0 {
        return Ok((raw, n + len));
    }
    scratch.clear();
    huffman::decode(raw, scratch).map_err(|e| match e {
        HuffmanError::Eos => err("EOS in a Huffman string"),
        HuffmanError::Padding => err("bad padding in a Huffman string"),
    })?;
    Ok((&scratch[..], n + len))
}

#[cfg(test)]
mod tests {
    use super::super::huffman::tests::encode as huffman;
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn ours(d: &mut Decoder, block: &[u8]) -> Result<Fields, CompressionError> {
        let mut got = Vec::new();
        d.decode(block, usize::MAX, |n, v| got.push((n.to_vec(), v.to_vec())))
            .map(|_| got)
    }

    fn reference(d: &mut loona_hpack::Decoder<'static>, block: &[u8]) -> Option<Fields> {
        let mut got = Vec::new();
        d.decode_with_cb(block, |n, v| got.push((n.to_vec(), v.to_vec())))
            .ok()
            .map(|_| got)
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn pairs(f: &[(&str, &str)]) -> Fields {
        f.iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_static_table_is_the_rfcs() {
        // loona-hpack's table is the reference: index i of each, through a block.
        let mut r = loona_hpack::Decoder::new();
        let mut d = Decoder::new();
        for i in 1..=61u8 {
            assert_eq!(
                ours(&mut d, &[0x80 | i]).ok(),
                reference(&mut r, &[0x80 | i])
            );
        }
    }

    /// The encoder's name → index match (`hpack::static_name`) is this table's: each name's
    /// first entry, and 0 for a name not in it.
    #[test]
    fn the_encoders_static_names_are_this_table() {
        for (i, (name, _)) in STATIC.iter().enumerate() {
            let first = STATIC.iter().position(|(n, _)| n == name).unwrap() + 1;
            assert_eq!(super::super::static_name(name), first, "entry {}", i + 1);
        }
        assert_eq!(super::super::static_name(b"x-not-static"), 0);
    }

    #[test]
    fn the_rfc_request_examples_decode_with_their_table() {
        // RFC 7541 C.4: three requests on one connection, Huffman-coded.
        let mut d = Decoder::new();
        let c41 = hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
        assert_eq!(
            ours(&mut d, &c41).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        let c42 = hex("8286 84be 5886 a8eb 1064 9cbf");
        assert_eq!(
            ours(&mut d, &c42).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache")
            ])
        );
        let c43 = hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf");
        assert_eq!(
            ours(&mut d, &c43).unwrap(),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.table.size, 164, "C.4.3's table size");
    }

    /// Blocks of random fields in every representation (raw and Huffman strings, indexed and
    /// new names, the three literal kinds, size updates at the start) decode as loona-hpack
    /// decodes them, block after block on one connection's tables.
    #[test]
    fn random_blocks_decode_as_the_reference_does() {
        let mut rng = fastrand::Rng::with_seed(15);
        let mut d = Decoder::new();
        let mut r = loona_hpack::Decoder::new();
        r.set_max_allowed_table_size(TABLE_SIZE);
        let names: [&[u8]; 6] = [b"x-a", b"accept", b"cookie", b"x-long-name-here", b"", b"b"];
        for round in 0..1500 {
            let mut block = Vec::new();
            if rng.u8(..) < 20 {
                int_into(&mut block, 5, 0x20, rng.usize(0..=TABLE_SIZE));
            }
            for _ in 0..rng.usize(0..8) {
                let kind = rng.u8(0..4);
                if kind == 0 {
                    let i = rng.usize(1..=61 + d.table.entries.len());
                    int_into(&mut block, 7, 0x80, i);
                    continue;
                }
                let (prefix, high) = match kind {
                    1 => (6, 0x40),
                    2 => (4, 0x00),
                    _ => (4, 0x10),
                };
                let idx = if rng.bool() { rng.usize(1..=61) } else { 0 };
                int_into(&mut block, prefix, high, idx);
                if idx == 0 {
                    str_into(&mut block, names[rng.usize(..names.len())], rng.bool());
                }
                let v: Vec<u8> = (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect();
                str_into(&mut block, &v, rng.bool());
            }
            let want = reference(&mut r, &block);
            let got = ours(&mut d, &block).ok();
            assert_eq!(got, want, "round {round}: {block:02x?}");
        }
    }

    /// Bytes no encoder made: every prefix and single-byte change of valid blocks. Neither
    /// may panic, and where ours accepts a block the reference gives the same fields.
    #[test]
    fn mangled_blocks_are_refused_or_decode_as_the_reference_does() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut base = Vec::new();
        str_into(&mut base, b"", false);
        let mut blocks = vec![hex(
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        )];
        let mut b = vec![0x40];
        str_into(&mut b, b"x-key", true);
        str_into(&mut b, b"some value", true);
        b.push(0xbe);
        blocks.push(b);
        for block in &blocks {
            for cut in 0..=block.len() {
                check(&block[..cut]);
            }
            for _ in 0..2000 {
                let mut m = block.clone();
                let at = rng.usize(..m.len());
                m[at] = rng.u8(..);
                check(&m);
            }
        }
        fn check(block: &[u8]) {
            let mut d = Decoder::new();
            let mut r = loona_hpack::Decoder::new();
            r.set_max_allowed_table_size(TABLE_SIZE);
            if let Ok(got) = ours(&mut d, block) {
                assert_eq!(Some(got), reference(&mut r, block), "{block:02x?}");
            }
        }
    }

    #[test]
    fn table_size_updates_follow_the_rules() {
        let mut d = Decoder::new();
        // Above what we advertise (4096): refused.
        let mut b = Vec::new();
        int_into(&mut b, 5, 0x20, TABLE_SIZE + 1);
        assert!(ours(&mut d, &b).is_err());
        // After a field: refused (§4.2).
        assert!(ours(&mut Decoder::new(), &[0x82, 0x20]).is_err());
        // Two at the start, then a field: fine; the table is emptied by the 0.
        let mut d = Decoder::new();
        let mut b = vec![0x40];
        str_into(&mut b, b"x-a", false);
        str_into(&mut b, b"1", false);
        ours(&mut d, &b).unwrap();
        assert_eq!(d.table.entries.len(), 1);
        assert_eq!(ours(&mut d, &[0x20, 0x3f, 0x45, 0x82]).unwrap().len(), 1);
        assert!(d.table.entries.is_empty());
        assert!(ours(&mut d, &[0x80 | 62]).is_err(), "evicted");
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it_and_is_not_added() {
        let mut d = Decoder::new();
        let mut b = vec![0x40];
        str_into(&mut b, b"x-a", false);
        str_into(&mut b, b"1", false);
        b.push(0x40);
        str_into(&mut b, b"x-big", false);
        str_into(&mut b, &[b'v'; 5000], false);
        assert_eq!(ours(&mut d, &b).unwrap().len(), 2);
        assert!(d.table.entries.is_empty());
        assert_eq!(d.table.size, 0);
    }

    /// The attack loona-hpack's decoder fell to: a 16 KB block of one-byte Huffman names and
    /// values (6,552 strings). It took 130 ms there (release build); here well under
    /// the bound even in a debug build.
    #[test]
    fn a_block_of_tiny_huffman_strings_is_cheap() {
        let mut block = Vec::new();
        while block.len() + 5 <= 16 * 1024 {
            block.extend_from_slice(&[0x00, 0x81, 0x1f, 0x81, 0x1f]);
        }
        let mut d = Decoder::new();
        let t = std::time::Instant::now();
        let mut n = 0;
        let over = d.decode(&block, 16 << 10, |_, _| n += 1).unwrap();
        let took = t.elapsed();
        assert!(over, "the list limit stops handing fields");
        assert_eq!(n, (16 << 10) / 34);
        assert!(
            took < std::time::Duration::from_millis(30),
            "{took:?} for {} bytes",
            block.len()
        );
    }

    fn int_into(out: &mut Vec<u8>, prefix: u8, high: u8, v: usize) {
        let max = (1usize << prefix) - 1;
        if v < max {
            out.push(high | v as u8);
        } else {
            out.push(high | max as u8);
            out.extend(enc_int_rest(v - max));
        }
    }

    fn enc_int_rest(mut v: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
        out
    }

    fn str_into(out: &mut Vec<u8>, s: &[u8], huff: bool) {
        if huff {
            let h = huffman(s);
            int_into(out, 7, 0x80, h.len());
            out.extend_from_slice(&h);
        } else {
            int_into(out, 7, 0, s.len());
            out.extend_from_slice(s);
        }
    }
}
