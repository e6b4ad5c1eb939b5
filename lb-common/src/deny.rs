//! The IPv4 deny-list's fast path: two bitmaps with one bit per /24.
//!
//! An LPM trie lookup is a helper call that walks nodes (≈ 8 ns); a flood from a deny-listed
//! prefix pays it per packet, and so does every legitimate packet to a VIP. Instead the XDP
//! program reads one bit per /24 (array reads, inlined by the verifier):
//!
//! - `DENY_V4_FULL`: every address of this /24 is denied (a prefix of length ≤ 24 covers it):
//!   drop, no trie walk.
//! - `DENY_V4_PARTIAL`: a longer prefix (/25 … /32) lies inside this /24: ask the `DENY_V4`
//!   trie, which holds every prefix and stays the source of truth.
//! - neither: not denied, no trie walk.
//!
//! 2²⁴ bits per bitmap = 2¹⁸ `u64` words = 2 MiB each.

/// Words in each bitmap.
pub const V4_BITMAP_WORDS: u32 = 1 << 18;

/// The /24 index of an IPv4 source (its first three octets).
#[inline(always)]
pub const fn v4_block(octets: [u8; 4]) -> u32 {
    (octets[0] as u32) << 16 | (octets[1] as u32) << 8 | octets[2] as u32
}

/// (word index, bit mask) of a /24 index in the bitmaps.
#[inline(always)]
pub const fn bitmap_slot(block: u32) -> (u32, u64) {
    (block >> 6, 1u64 << (block & 63))
}

/// The /24 blocks `[first, first + count)` a prefix of length ≤ 24 covers.
pub const fn v4_blocks_covered(network: [u8; 4], prefix_len: u8) -> (u32, u32) {
    let len = if prefix_len > 24 { 24 } else { prefix_len };
    let count = 1u32 << (24 - len);
    let first = v4_block(network) & !(count - 1);
    (first, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_slots() {
        assert_eq!(v4_block([192, 0, 2, 99]), 0xc00002);
        assert_eq!(v4_blocks_covered([192, 0, 2, 0], 24), (0xc00002, 1));
        assert_eq!(v4_blocks_covered([10, 0, 0, 0], 8), (0x0a0000, 65536));
        assert_eq!(v4_blocks_covered([0, 0, 0, 0], 0), (0, 1 << 24));
        let (w, m) = bitmap_slot(0xc00002);
        assert_eq!((w, m), (0xc00002 >> 6, 1 << 2));
        assert!(w < V4_BITMAP_WORDS);
    }
}
