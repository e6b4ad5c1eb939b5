//! Follows the frame boundaries of what an HTTP/2 client sends (the 24-byte preface, then each
//! frame's 9-byte header and payload length; nothing is decoded), so an engine (hyper's
//! I/O wrapper, weir's driver) can tell two things its protocol layer does not:
//! - whether a frame other than DATA, or a header block (HEADERS … CONTINUATION with
//!   END_HEADERS), is incomplete: a request head in progress, which must be finished within
//!   `header_read_timeout` (HTTP/2 slowloris);
//! - whether bytes were more than PING acknowledgements: the answers to weir's own keep-alive
//!   PINGs must not count as client activity for the idle timeout.
//!
//! Pure: fed byte slices as they are read, tested deterministically.

const PREFACE_LEN: u8 = 24;
const HEAD_LEN: u8 = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const CONTINUATION: u8 = 0x9;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

#[derive(Debug, Clone)]
pub struct Inbound {
    preface_left: u8,
    head: [u8; HEAD_LEN as usize],
    head_len: u8,
    /// Type and flags of the frame whose payload is being read.
    ty: u8,
    flags: u8,
    payload_left: u32,
    /// A header block was started and its END_HEADERS not seen yet.
    block_open: bool,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            preface_left: PREFACE_LEN,
            head: [0; HEAD_LEN as usize],
            head_len: 0,
            ty: DATA,
            flags: 0,
            payload_left: 0,
            block_open: false,
        }
    }
}

impl Inbound {
    /// Takes the next bytes the client sent; returns whether any of them was client activity
    /// (anything but a PING acknowledgement; a frame header counts once it is whole).
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let mut activity = false;
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let k = bytes.len().min(self.preface_left as usize);
                self.preface_left -= k as u8;
                bytes = &bytes[k..];
                activity = true;
            } else if self.head_len < HEAD_LEN {
                let k = bytes.len().min((HEAD_LEN - self.head_len) as usize);
                let at = self.head_len as usize;
                self.head[at..at + k].copy_from_slice(&bytes[..k]);
                self.head_len += k as u8;
                bytes = &bytes[k..];
                if self.head_len == HEAD_LEN {
                    self.start_frame();
                    activity |= !self.is_ping_ack();
                }
            } else {
                let k = bytes.len().min(self.payload_left as usize);
                self.payload_left -= k as u32;
                bytes = &bytes[k..];
                activity |= !self.is_ping_ack();
                if self.payload_left == 0 {
                    self.end_frame();
                }
            }
        }
        activity
    }

    /// A request head (or another non-DATA frame) has begun and is not complete yet.
    pub fn mid_head(&self) -> bool {
        let partial_head = self.preface_left > 0 && self.preface_left < PREFACE_LEN
            || self.preface_left == 0 && self.head_len > 0 && self.head_len < HEAD_LEN;
        let partial_frame = self.head_len == HEAD_LEN && self.ty != DATA;
        partial_head || partial_frame || self.block_open
    }

    fn start_frame(&mut self) {
        let h = &self.head;
        self.payload_left = u32::from(h[0]) << 16 | u32::from(h[1]) << 8 | u32::from(h[2]);
        self.ty = h[3];
        self.flags = h[4];
        if self.payload_left == 0 {
            self.end_frame();
        }
    }

    fn end_frame(&mut self) {
        if matches!(self.ty, HEADERS | PUSH_PROMISE | CONTINUATION) {
            self.block_open = self.flags & END_HEADERS == 0;
        }
        self.head_len = 0;
    }

    fn is_ping_ack(&self) -> bool {
        self.ty == PING && self.flags & ACK != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    fn frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            ty,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    /// Feeds `bytes` in pieces of `step`, returning `mid_head` after each piece.
    fn states(bytes: &[u8], step: usize) -> Vec<bool> {
        let mut t = Inbound::default();
        bytes
            .chunks(step)
            .map(|c| {
                t.feed(c);
                t.mid_head()
            })
            .collect()
    }

    #[test]
    fn whole_frames_leave_nothing_in_progress() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(0x4, 0, &[0; 6]));
        bytes.extend(frame(HEADERS, END_HEADERS | 0x1, b"abc"));
        bytes.extend(frame(DATA, 0, &[1; 100]));
        let mut t = Inbound::default();
        assert!(!t.mid_head(), "nothing read yet");
        assert!(t.feed(&bytes));
        assert!(!t.mid_head());
    }

    #[test]
    fn a_dribbled_head_is_in_progress_until_it_ends() {
        // The preface itself, byte by byte, is in progress until its last byte.
        let s = states(PREFACE, 1);
        assert!(s[..23].iter().all(|&m| m) && !s[23], "{s:?}");
        let mut bytes = frame(HEADERS, 0, b"abcd"); // no END_HEADERS
        bytes.extend(frame(CONTINUATION, 0, b"ef"));
        bytes.extend(frame(CONTINUATION, END_HEADERS, b"g"));
        let mut t = Inbound::default();
        t.feed(PREFACE);
        let s: Vec<bool> = bytes
            .iter()
            .map(|b| {
                t.feed(&[*b]);
                t.mid_head()
            })
            .collect();
        // In progress from the block's first byte to its last, then done.
        assert!(s[..s.len() - 1].iter().all(|&m| m), "{s:?}");
        assert!(!s[s.len() - 1]);
    }

    #[test]
    fn a_slow_data_frame_is_a_body_not_a_head() {
        let mut t = Inbound::default();
        t.feed(PREFACE);
        let f = frame(DATA, 0, &[7; 50]);
        t.feed(&f[..20]);
        assert!(!t.mid_head());
        // A partial frame header is in progress (its type is not known yet).
        let mut u = Inbound::default();
        u.feed(PREFACE);
        u.feed(&f[..4]);
        assert!(u.mid_head());
        // So is a control frame's payload.
        let mut v = Inbound::default();
        v.feed(PREFACE);
        v.feed(&frame(0x4, 0, &[0; 12])[..12]);
        assert!(v.mid_head());
    }

    #[test]
    fn ping_acks_are_not_activity() {
        let mut t = Inbound::default();
        t.feed(PREFACE);
        let ack = frame(PING, ACK, &[0; 8]);
        assert!(!t.feed(&ack));
        // Split anywhere, still not activity.
        for cut in 1..ack.len() {
            let mut u = t.clone();
            assert!(!u.feed(&ack[..cut]) && !u.feed(&ack[cut..]), "cut at {cut}");
        }
        // A PING from the client (not an ACK) is.
        assert!(t.feed(&frame(PING, 0, &[0; 8])));
        let mut both = ack.clone();
        both.extend(frame(0x8, 0, &[0, 0, 1, 0]));
        assert!(t.feed(&both));
    }

    #[test]
    fn any_split_gives_the_same_state() {
        let mut bytes = PREFACE.to_vec();
        for i in 0..20u8 {
            bytes.extend(frame(
                i % 10,
                if i % 3 == 0 { END_HEADERS } else { 0 },
                &vec![i; i as usize * 7],
            ));
        }
        let whole = {
            let mut t = Inbound::default();
            t.feed(&bytes);
            t.mid_head()
        };
        for step in [1, 2, 3, 8, 9, 10, 64] {
            assert_eq!(*states(&bytes, step).last().unwrap(), whole, "step {step}");
        }
    }
}
