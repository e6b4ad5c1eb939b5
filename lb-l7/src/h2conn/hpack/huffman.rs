//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B): decoding only (the encoder sends strings
//! raw). Our own, not loona-hpack's: that one builds a hash map of all 257 codes for every
//! string it decodes (~20 µs a string), so a 16 KB header block of one-byte strings cost the
//! worker 130 ms, and a client can send such blocks at will.
//!
//! Two steps, as zlib's `inflate` decodes its codes:
//! - **A code of at most 8 bits** (every letter, digit and most punctuation: most of what a
//!   client sends) is looked up by the next 8 bits in a 256-entry table ([`SHORT`]): one step
//!   a symbol. The bit-at-a-time decoder alone cost ~1 % of weir's CPU per HTTP/2 request
//!   under h2load, whose `:path` is Huffman-coded in every request.
//! - **A longer code, or the string's last bits**, go one bit at a time ([`long`]). The code is
//!   canonical: codes of one length are consecutive, in symbol order, and shorter codes come
//!   first. So this step needs, per length, only the first code and where that length's
//!   symbols start in the list sorted by (length, symbol) — zlib's `puff` way, no tree.
//!   `tests::the_code_is_canonical` checks the table against that rule.
//!
//! `tests::the_table_decodes_as_the_bit_at_a_time_decoder` checks the two steps against the
//! bit-at-a-time decoder alone, on valid and invalid strings.

/// (code, length in bits) of each symbol; 256 is EOS (RFC 7541 Appendix B).
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// The longest code (EOS's).
const MAX_LEN: usize = 30;

/// Per length: how many symbols, the first code, and where its symbols start in [`SYMBOLS`].
struct Lengths {
    count: [u32; MAX_LEN + 1],
    first: [u32; MAX_LEN + 1],
    start: [u32; MAX_LEN + 1],
}

const LENGTHS: Lengths = lengths();
/// The symbols sorted by (code length, symbol).
const SYMBOLS: [u16; 257] = symbols();

const fn lengths() -> Lengths {
    let mut count = [0u32; MAX_LEN + 1];
    let mut i = 0;
    while i < CODES.len() {
        count[CODES[i].1 as usize] += 1;
        i += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut start = [0u32; MAX_LEN + 1];
    let mut len = 1;
    while len < MAX_LEN {
        first[len + 1] = (first[len] + count[len]) << 1;
        start[len + 1] = start[len] + count[len];
        len += 1;
    }
    Lengths {
        count,
        first,
        start,
    }
}

const fn symbols() -> [u16; 257] {
    let mut out = [0u16; 257];
    let mut k = 0;
    let mut len = 1;
    while len <= MAX_LEN {
        let mut s = 0;
        while s < CODES.len() {
            if CODES[s].1 as usize == len {
                out[k] = s as u16;
                k += 1;
            }
            s += 1;
        }
        len += 1;
    }
    out
}

/// Why a Huffman string is not one (RFC 7541 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// More than 7 bits of padding, or padding that is not the most significant bits of EOS.
    Padding,
}

/// The codes of at most 8 bits, by the 8 bits that start with one: (symbol, length); length 0
/// where a longer code starts.
const SHORT: [(u8, u8); 256] = short();

const fn short() -> [(u8, u8); 256] {
    let mut table = [(0u8, 0u8); 256];
    // EOS (256) is 30 bits: never in the table.
    let mut s = 0;
    while s < 256 {
        let (code, len) = CODES[s];
        if len <= 8 {
            let first = (code as usize) << (8 - len);
            let mut k = 0;
            while k < 1 << (8 - len) {
                table[first + k] = (s as u8, len);
                k += 1;
            }
        }
        s += 1;
    }
    table
}

/// Appends the decoding of `raw` to `out`.
pub(super) fn decode(raw: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    out.reserve(raw.len() * 8 / 5);
    // The bits not decoded yet, the first at the top; `avail` of them.
    let (mut bits, mut avail) = (0u64, 0u32);
    let mut rest = raw;
    loop {
        while avail <= 56 {
            let Some((&byte, more)) = rest.split_first() else {
                break;
            };
            bits |= u64::from(byte) << (56 - avail);
            avail += 8;
            rest = more;
        }
        if avail == 0 {
            return Ok(());
        }
        let short = match SHORT[(bits >> 56) as usize] {
            (symbol, len) if len != 0 && u32::from(len) <= avail => Some((symbol, u32::from(len))),
            _ => None,
        };
        let (symbol, len) = match short {
            Some(code) => code,
            None => match long(bits, avail)? {
                Some(code) => code,
                // Valid padding: the end.
                None => return Ok(()),
            },
        };
        out.push(symbol);
        bits <<= len;
        avail -= len;
    }
}

/// The code at the top of `bits` (`avail` bits, more than 8 unless the string ends there), one
/// bit at a time: (symbol, length), or `None` when the bits are the string's padding.
fn long(bits: u64, avail: u32) -> Result<Option<(u8, u32)>, HuffmanError> {
    let mut code = 0u32;
    let mut len = 0;
    while len < avail.min(MAX_LEN as u32) {
        len += 1;
        code = code << 1 | (bits >> (64 - len) & 1) as u32;
        let at = code.wrapping_sub(LENGTHS.first[len as usize]);
        if at < LENGTHS.count[len as usize] {
            let symbol = SYMBOLS[(LENGTHS.start[len as usize] + at) as usize];
            if symbol == 256 {
                return Err(HuffmanError::Eos);
            }
            return Ok(Some((symbol as u8, len)));
        }
    }
    if avail >= MAX_LEN as u32 {
        // Unreachable with this (complete) code: every 30 bits end a symbol.
        return Err(HuffmanError::Eos);
    }
    // The string's last bits, and no symbol: padding, at most 7 bits, all ones (EOS's first
    // bits).
    if avail > 7 || code != (1 << avail) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(None)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Huffman-encodes `s` (for tests: weir's encoder sends strings raw).
    pub fn encode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &b in s {
            let (code, len) = CODES[b as usize];
            acc = acc << len | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8 | (0xff >> bits));
        }
        out
    }

    /// The decoder before the table: one bit at a time.
    fn bit_at_a_time(raw: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
        let (mut code, mut len) = (0u32, 0usize);
        for &byte in raw {
            for shift in (0..8).rev() {
                code = code << 1 | u32::from(byte >> shift & 1);
                len += 1;
                let at = code.wrapping_sub(LENGTHS.first[len]);
                if at < LENGTHS.count[len] {
                    let symbol = SYMBOLS[(LENGTHS.start[len] + at) as usize];
                    if symbol == 256 {
                        return Err(HuffmanError::Eos);
                    }
                    out.push(symbol as u8);
                    code = 0;
                    len = 0;
                } else if len == MAX_LEN {
                    return Err(HuffmanError::Eos);
                }
            }
        }
        if len > 7 || code != (1 << len) - 1 {
            return Err(HuffmanError::Padding);
        }
        Ok(())
    }

    #[test]
    fn the_table_decodes_as_the_bit_at_a_time_decoder() {
        let mut rng = fastrand::Rng::with_seed(15);
        let (mut ok, mut bad) = (0, 0);
        for round in 0..20_000 {
            let len = rng.usize(0..40);
            let raw: Vec<u8> = match round % 4 {
                // Valid: text of any bytes, of short codes only, or of long ones.
                0 => encode(&(0..len).map(|_| rng.u8(..)).collect::<Vec<_>>()),
                1 => encode(&(0..len).map(|_| rng.u8(b'a'..=b'z')).collect::<Vec<_>>()),
                2 => encode(&(0..len).map(|_| rng.u8(128..)).collect::<Vec<_>>()),
                // Anything: bad padding, EOS, cut-off codes.
                _ => (0..len).map(|_| rng.u8(..)).collect(),
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (ra, rb) = (decode(&raw, &mut a), bit_at_a_time(&raw, &mut b));
            assert_eq!(ra, rb, "{raw:02x?}");
            if ra.is_ok() {
                assert_eq!(a, b, "{raw:02x?}");
                ok += 1;
            } else {
                bad += 1;
            }
        }
        // Both kinds were tried.
        assert!(ok > 10_000 && bad > 1_000, "{ok} valid, {bad} invalid");
    }

    #[test]
    fn the_code_is_canonical() {
        let mut order: Vec<usize> = (0..257).collect();
        order.sort_by_key(|&s| (CODES[s].1, s));
        let mut code = 0u32;
        for (k, &s) in order.iter().enumerate() {
            if k > 0 {
                code = (code + 1) << (CODES[s].1 - CODES[order[k - 1]].1);
            }
            assert_eq!(CODES[s].0, code, "symbol {s}");
            assert_eq!(SYMBOLS[k] as usize, s);
        }
    }

    #[test]
    fn every_byte_and_the_rfc_examples_decode() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
        // RFC 7541 C.4.1: "www.example.com".
        let raw = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        out.clear();
        decode(&raw, &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        // C.4.2: "no-cache".
        out.clear();
        decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], &mut out).unwrap();
        assert_eq!(out, b"no-cache");
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        let mut out = Vec::new();
        // 'a' (00011) padded with zeros, not ones.
        assert_eq!(decode(&[0x18], &mut out), Err(HuffmanError::Padding));
        // A whole byte of padding (8 ones) after 'a' + 3 ones.
        assert_eq!(decode(&[0x1f, 0xff], &mut out), Err(HuffmanError::Padding));
        // EOS itself (30 ones), padded.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut out),
            Err(HuffmanError::Eos)
        );
        // The empty string and one of pure padding within 7 bits.
        out.clear();
        assert_eq!(decode(&[], &mut out), Ok(()));
        assert!(out.is_empty());
    }
}
