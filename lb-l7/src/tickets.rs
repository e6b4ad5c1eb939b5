//! TLS session tickets: sealed with AES-256-GCM under a key every worker shares, so a session
//! resumes on whichever worker gets the connection; the keys rotate.
//!
//! Under `weir run` the control plane makes a new key every rotation interval and sends every
//! worker the current and the previous key over its control channel (the worker's stdin, a
//! pipe): new tickets are sealed under the current key, tickets sealed under either key are
//! accepted, so a ticket stays valid for at least one interval and at most two. A restarted
//! worker gets both keys at start. The message is `crate::control::ControlMsg::TicketKeys`.

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use rustls::server::ProducesTickets;
use std::sync::Arc;

/// Bytes of a key's name in front of every ticket (which key sealed it).
const NAME_LEN: usize = 8;
/// The longest ticket lifetime TLS 1.3 allows (RFC 8446 §4.6.1).
const MAX_LIFETIME: u32 = 7 * 24 * 3600;

/// The keys a worker holds: plain data, what the control channel carries.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TicketKeys {
    pub current: [u8; 32],
    pub previous: Option<[u8; 32]>,
    /// The ticket lifetime announced to clients, seconds (the rotation interval).
    pub lifetime: u32,
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKeys")
            .field("previous", &self.previous.is_some())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// A fresh random key, no previous one.
    pub fn random(lifetime: u32) -> TicketKeys {
        TicketKeys {
            current: random_key(),
            previous: None,
            lifetime,
        }
    }

    /// The next keys: a new random current key, this current key as the previous one.
    pub fn rotated(&self) -> TicketKeys {
        TicketKeys {
            current: random_key(),
            previous: Some(self.current),
            lifetime: self.lifetime,
        }
    }
}

/// A random 32-byte key.
pub fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut k);
    k
}

/// One key, ready to seal and open.
struct Sealer {
    name: [u8; NAME_LEN],
    key: LessSafeKey,
}

impl Sealer {
    fn new(key: &[u8; 32]) -> Sealer {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&digest.as_ref()[..NAME_LEN]);
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM takes a 32-byte key");
        Sealer {
            name,
            key: LessSafeKey::new(unbound),
        }
    }
}

struct Sealers {
    current: Sealer,
    previous: Option<Sealer>,
    lifetime: u32,
}

impl Sealers {
    fn new(k: &TicketKeys) -> Sealers {
        Sealers {
            current: Sealer::new(&k.current),
            previous: k.previous.as_ref().map(Sealer::new),
            lifetime: k.lifetime.clamp(1, MAX_LIFETIME),
        }
    }
}

/// rustls's ticketer over the shared keys; [`SharedTicketer::set`] swaps them while it serves.
pub struct SharedTicketer {
    keys: ArcSwap<Sealers>,
}

impl std::fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTicketer")
    }
}

impl SharedTicketer {
    /// One fixed key (no rotation), a 12-hour lifetime.
    pub fn new(key: &[u8; 32]) -> SharedTicketer {
        Self::with_keys(&TicketKeys {
            current: *key,
            previous: None,
            lifetime: 12 * 3600,
        })
    }

    pub fn with_keys(k: &TicketKeys) -> SharedTicketer {
        SharedTicketer {
            keys: ArcSwap::from_pointee(Sealers::new(k)),
        }
    }

    /// Takes new keys (a rotation).
    pub fn set(&self, k: &TicketKeys) {
        self.keys.store(Arc::new(Sealers::new(k)));
    }
}

impl ProducesTickets for SharedTicketer {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        self.keys.load().lifetime
    }
    /// `name ‖ nonce ‖ AES-256-GCM(plain)`, under the current key.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut buf = plain.to_vec();
        keys.current
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + buf.len());
        out.extend_from_slice(&keys.current.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Some(out)
    }
    /// Opens a ticket sealed under the current or the previous key; anything else is `None`
    /// (the client gets a full handshake).
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (n, c) = rest.split_at(NONCE_LEN);
        let keys = self.keys.load();
        let sealer = [Some(&keys.current), keys.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|s| s.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut buf = c.to_vec();
        let plain = sealer
            .key
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_across_instances_and_reject_tampering() {
        let key = random_key();
        let (a, b) = (SharedTicketer::new(&key), SharedTicketer::new(&key));
        let t = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&t).unwrap(), b"session state");
        let mut bad = t.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.decrypt(&bad).is_none());
        assert!(SharedTicketer::new(&random_key()).decrypt(&t).is_none());
        assert!(b.decrypt(b"short").is_none());
    }

    #[test]
    fn a_ticket_survives_one_rotation_not_two() {
        let k0 = TicketKeys::random(60);
        let t = SharedTicketer::with_keys(&k0);
        let ticket = t.encrypt(b"s").unwrap();
        let k1 = k0.rotated();
        t.set(&k1);
        assert_eq!(
            t.decrypt(&ticket).unwrap(),
            b"s",
            "previous key still opens it"
        );
        let fresh = t.encrypt(b"f").unwrap();
        t.set(&k1.rotated());
        assert!(
            t.decrypt(&ticket).is_none(),
            "two rotations later it is refused"
        );
        assert_eq!(t.decrypt(&fresh).unwrap(), b"f");
        assert_eq!(t.lifetime(), 60);
    }
}
