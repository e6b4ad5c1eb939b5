//! The Internet checksum (RFC 1071) and the TCP/UDP/ICMPv6 pseudo-headers.

use std::net::IpAddr;

/// Adds `data` as big-endian 16-bit words to a 32-bit accumulator (odd tail padded with zero).
pub fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// Folds the accumulator to 16 bits and returns its one's complement: the value to store.
pub fn finish(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data` (e.g. an IPv4 header with its checksum field zeroed).
///
/// ```
/// use weir_tests::packet::checksum::internet_checksum;
/// // RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
/// assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
/// ```
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(sum_words(0, data))
}

/// Accumulator preloaded with the pseudo-header of `src`/`dst` (both of one family), upper-layer
/// protocol `proto` and upper-layer length `len` (RFC 793 for IPv4, RFC 8200 §8.1 for IPv6).
/// Mixed families return the sum of the address bytes anyway (the caller built a broken packet).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u32 {
    let mut acc = 0;
    for a in [src, dst] {
        acc = match a {
            IpAddr::V4(a) => sum_words(acc, &a.octets()),
            IpAddr::V6(a) => sum_words(acc, &a.octets()),
        };
    }
    match src {
        IpAddr::V4(_) => {
            acc = sum_words(acc, &[0, proto]);
            sum_words(acc, &(len as u16).to_be_bytes())
        }
        IpAddr::V6(_) => {
            acc = sum_words(acc, &len.to_be_bytes());
            sum_words(acc, &[0, 0, 0, proto])
        }
    }
}

/// Checksum of an upper-layer segment (TCP, UDP, ICMPv6) with its checksum field zeroed.
pub fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, segment: &[u8]) -> u16 {
    finish(sum_words(
        pseudo_header_sum(src, dst, proto, segment.len() as u32),
        segment,
    ))
}

/// True when `data`, checksum field included, sums to the all-ones value (it verifies).
pub fn verifies(acc: u32, data: &[u8]) -> bool {
    finish(sum_words(acc, data)) == 0
}

/// A value that is certainly *not* a valid encoding of `correct` (one's complement has two
/// zeros, 0x0000 and 0xffff, so flipping a single bit pattern is not enough) and never 0,
/// which means "no checksum" for UDP over IPv4.
pub fn wrong(correct: u16) -> u16 {
    let w = correct ^ 0x00ff;
    if w == 0 { correct ^ 0xff00 } else { w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_and_odd_length() {
        assert_eq!(
            finish(sum_words(
                0,
                &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
            )),
            0x220d
        );
        // An odd tail byte counts as the high byte of a word.
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn known_ipv4_header() {
        // Well-known example header (Wikipedia "IPv4 header checksum"): checksum b861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
        let mut full = h;
        full[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verifies(0, &full));
    }

    #[test]
    fn wrong_never_verifies() {
        for c in [0u16, 0xffff, 0x00ff, 0xff00, 0x1234] {
            let w = wrong(c);
            assert_ne!(w, 0);
            assert_ne!(w, c);
            assert!(!(c == 0 && w == 0xffff || c == 0xffff && w == 0));
        }
    }
}
