//! One address type for IPv4 and IPv6 map keys.

/// An IP address as 16 bytes in network order. IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`), so
/// one key type serves both families and the two can never collide.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    /// Bytes 10 and 11 of an IPv4-mapped IPv6 address.
    const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

    /// The IPv4-mapped form of `octets` (network order, as in the packet).
    #[inline(always)]
    pub const fn from_v4(octets: [u8; 4]) -> Self {
        let p = Self::V4_MAPPED_PREFIX;
        Addr([
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], octets[0],
            octets[1], octets[2], octets[3],
        ])
    }

    /// From the four 32-bit words of an address as they lie in memory (network order): what the
    /// XDP program reads from a packet with four word loads instead of sixteen byte loads.
    #[inline(always)]
    pub const fn from_words(words: [u32; 4]) -> Self {
        // SAFETY: [u32; 4] and [u8; 16] have the same size and every bit pattern is valid.
        Addr(unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words) })
    }

    /// The IPv4-mapped form of an IPv4 address given as its in-memory 32-bit word.
    #[inline(always)]
    pub const fn from_v4_word(word: u32) -> Self {
        Self::from_words([0, 0, u32::from_ne_bytes([0, 0, 0xff, 0xff]), word])
    }

    #[inline(always)]
    pub const fn from_v6(octets: [u8; 16]) -> Self {
        Addr(octets)
    }

    /// The IPv4 octets when this is an IPv4-mapped address.
    pub fn as_v4(&self) -> Option<[u8; 4]> {
        if self.0[..12] == Self::V4_MAPPED_PREFIX {
            Some([self.0[12], self.0[13], self.0[14], self.0[15]])
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_and_differs_from_v6() {
        let a = Addr::from_v4([192, 0, 2, 1]);
        assert_eq!(a.as_v4(), Some([192, 0, 2, 1]));
        let mut v6 = [0u8; 16];
        v6[12..].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(Addr::from_v6(v6).as_v4(), None);
        assert_ne!(Addr::from_v6(v6), a);
    }

    #[test]
    fn word_constructors_match_byte_constructors() {
        let w = u32::from_ne_bytes([192, 0, 2, 1]);
        assert_eq!(Addr::from_v4_word(w), Addr::from_v4([192, 0, 2, 1]));
        let v6: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        let words: [u32; 4] = core::array::from_fn(|i| {
            u32::from_ne_bytes([v6[4 * i], v6[4 * i + 1], v6[4 * i + 2], v6[4 * i + 3]])
        });
        assert_eq!(Addr::from_words(words), Addr::from_v6(v6));
    }
}
