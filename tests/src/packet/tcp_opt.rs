//! TCP options: the one type used both to build and to report parsed options.

use std::fmt;

/// TCP flag bits (byte 13 of the header).
pub mod flags {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
    /// ECE
    pub const ECE: u8 = 0x40;
    /// CWR
    pub const CWR: u8 = 0x80;

    /// tcpdump-like rendering: `S`, `S.` (SYN+ACK), `R.`, `FP.`, `SEW`…
    pub fn render(f: u8) -> String {
        let mut s = String::new();
        for (bit, c) in [
            (FIN, 'F'),
            (SYN, 'S'),
            (RST, 'R'),
            (PSH, 'P'),
            (URG, 'U'),
            (ECE, 'E'),
            (CWR, 'W'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
        if f & ACK != 0 {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

/// One TCP option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// End of option list (kind 0). The parser stops at it and does not report it.
    Eol,
    /// No-operation (kind 1).
    Nop,
    /// Maximum segment size (kind 2, length 4).
    Mss(u16),
    /// Window scale shift (kind 3, length 3).
    WScale(u8),
    /// SACK permitted (kind 4, length 2).
    SackPerm,
    /// SACK blocks (kind 5): (left edge, right edge) pairs.
    Sack(Vec<(u32, u32)>),
    /// Timestamps (kind 8, length 10): TSval, TSecr.
    Timestamp(u32, u32),
    /// Any other kind: `kind`, `len` = 2 + data length, data.
    Other {
        /// Option kind.
        kind: u8,
        /// Option data (without kind and length bytes).
        data: Vec<u8>,
    },
}

impl TcpOpt {
    /// Appends the wire encoding of this option.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TcpOpt::Eol => out.push(0),
            TcpOpt::Nop => out.push(1),
            TcpOpt::Mss(m) => {
                out.extend([2, 4]);
                out.extend(m.to_be_bytes());
            }
            TcpOpt::WScale(s) => out.extend([3, 3, *s]),
            TcpOpt::SackPerm => out.extend([4, 2]),
            TcpOpt::Sack(blocks) => {
                out.extend([5, (2 + 8 * blocks.len()) as u8]);
                for (l, r) in blocks {
                    out.extend(l.to_be_bytes());
                    out.extend(r.to_be_bytes());
                }
            }
            TcpOpt::Timestamp(v, e) => {
                out.extend([8, 10]);
                out.extend(v.to_be_bytes());
                out.extend(e.to_be_bytes());
            }
            TcpOpt::Other { kind, data } => {
                out.extend([*kind, (2 + data.len()) as u8]);
                out.extend(data);
            }
        }
    }

    /// Parses an option list (the bytes between the fixed header and the data offset).
    /// Stops at EOL; padding after it is ignored. A length byte that is missing, below 2 or
    /// runs past the end is an error.
    pub fn parse_list(mut b: &[u8]) -> Result<Vec<TcpOpt>, String> {
        let mut out = Vec::new();
        while let Some(&kind) = b.first() {
            match kind {
                0 => break,
                1 => {
                    out.push(TcpOpt::Nop);
                    b = &b[1..];
                    continue;
                }
                _ => {}
            }
            let len = *b
                .get(1)
                .ok_or_else(|| format!("option kind {kind}: missing length"))?
                as usize;
            if len < 2 || len > b.len() {
                return Err(format!(
                    "option kind {kind}: bad length {len} ({} bytes left)",
                    b.len()
                ));
            }
            let d = &b[2..len];
            let be32 = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
            out.push(match (kind, len) {
                (2, 4) => TcpOpt::Mss(u16::from_be_bytes([d[0], d[1]])),
                (3, 3) => TcpOpt::WScale(d[0]),
                (4, 2) => TcpOpt::SackPerm,
                (5, l) if l >= 10 && (l - 2) % 8 == 0 => TcpOpt::Sack(
                    (0..(l - 2) / 8)
                        .map(|i| (be32(8 * i), be32(8 * i + 4)))
                        .collect(),
                ),
                (8, 10) => TcpOpt::Timestamp(be32(0), be32(4)),
                _ => TcpOpt::Other {
                    kind,
                    data: d.to_vec(),
                },
            });
            b = &b[len..];
        }
        Ok(out)
    }
}

impl fmt::Display for TcpOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpOpt::Eol => write!(f, "eol"),
            TcpOpt::Nop => write!(f, "nop"),
            TcpOpt::Mss(m) => write!(f, "mss {m}"),
            TcpOpt::WScale(s) => write!(f, "wscale {s}"),
            TcpOpt::SackPerm => write!(f, "sackOK"),
            TcpOpt::Sack(b) => {
                write!(f, "sack")?;
                for (l, r) in b {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            TcpOpt::Timestamp(v, e) => write!(f, "TS val {v} ecr {e}"),
            TcpOpt::Other { kind, data } => write!(f, "opt-{kind} {data:02x?}"),
        }
    }
}
