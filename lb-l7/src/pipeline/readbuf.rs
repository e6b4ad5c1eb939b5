//! Read buffers for targets' responses, kept for the worker's next request instead of one
//! allocated per request. A response head and a small body are split off the front of the
//! buffer (`codec::parse_response`, the HTTP/2 path's `TargetBody`) as `Bytes` that share
//! it; once those are gone (sent to the client), the whole buffer is reclaimed in place. So a
//! request costs no buffer allocation (and no promotion of a fresh `BytesMut` to shared
//! storage, which is a second one) as long as buffers come back. The HTTP/1.1 engine reads its
//! clients' requests into these too, and gives a client's back whenever it is empty (an idle
//! connection holds none).
//!
//! Per thread (a worker is one thread; `crate::spares`), at most [`SPARES`] of [`HEAD_READ`]'s
//! size or the size a larger body grew them to: a spare costs memory per worker, never per
//! connection, and those an idle second did not use go at the worker's sweep ([`trim`]).

use super::relay::HEAD_READ;
use crate::spares::Spares;
use bytes::BytesMut;

/// Spare buffers kept per thread (most of them `HEAD_READ`'s 4 KB, so ~0.5 MB per worker after
/// a burst; one a large body grew is kept up to `MAX_KEPT` and counts more): HTTP/2 clients keep
/// hundreds of streams in flight and their responses end in bursts, more at once than 32
/// spares held: under `h2load -c16 -m32` about a third of the requests took a new buffer (and
/// a second allocation when its first response was split off it).
const SPARES: usize = 128;
/// Room a buffer must offer to be used as it is (below this, the read path would grow it).
const MIN_ROOM: usize = 1024;
/// A buffer larger than this (a large body grew it) is not kept.
const MAX_KEPT: usize = 64 * 1024;
/// Spares a trim keeps however idle the worker (32 KB).
const FLOOR: usize = 8;

thread_local! {
    static SPARE: Spares<BytesMut> = const { Spares::new(SPARES, FLOOR) };
}

/// A buffer to read a target's response into: a spare one, reclaimed in place when what was
/// split off it is gone, else a new one of [`HEAD_READ`].
pub fn take() -> BytesMut {
    let spare = SPARE.with(Spares::take);
    if let Some(mut b) = spare
        && (b.capacity() >= MIN_ROOM || b.try_reclaim(HEAD_READ))
    {
        return b;
    }
    BytesMut::with_capacity(HEAD_READ)
}

/// Gives back a buffer whose response was read to its end (empty: anything left in it is
/// the target's, and the buffer goes with its connection). One without room (`BytesMut::new`,
/// a buffer already given back and taken out again by `mem::take`) is not kept: it would hold
/// a spare's place for nothing.
pub fn give_back(b: BytesMut) {
    if !b.is_empty() || b.capacity() == 0 || b.capacity() > MAX_KEPT {
        return;
    }
    SPARE.with(|s| s.give_back(b));
}

/// The worker's sweep: releases the spares not used since the last one, down to what that
/// period used at its busiest (or [`FLOOR`]). Returns the bytes released (nominally
/// [`HEAD_READ`] each).
pub fn trim() -> usize {
    SPARE.with(Spares::trim) * HEAD_READ
}

/// Spares held on this thread.
#[cfg(test)]
pub(crate) fn held() -> usize {
    SPARE.with(Spares::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_and_is_reclaimed_once_its_parts_are_gone() {
        let mut b = take();
        let base = b.as_ptr();
        b.extend_from_slice(&[b'x'; 3500]);
        let part = b.split().freeze();
        // Little room left, and a part still shares it: not reclaimable yet.
        give_back(b);
        let mut again = take();
        assert_ne!(again.as_ptr(), base, "a new buffer while the part lives");
        assert!(again.capacity() >= HEAD_READ);
        again.extend_from_slice(b"y");
        give_back(again); // not empty: not kept
        drop(part);
        // The first one was dropped (no room, shared); the next take allocates again, and
        // that buffer, split and released, is reclaimed in place.
        let mut c = take();
        let cbase = c.as_ptr();
        c.extend_from_slice(&[b'z'; 3500]);
        drop(c.split().freeze());
        give_back(c);
        let d = take();
        assert_eq!(d.as_ptr(), cbase, "reclaimed in place");
        assert!(d.capacity() >= HEAD_READ);
    }

    #[test]
    fn a_buffer_a_large_body_grew_past_the_limit_is_not_kept() {
        let mut grown = take();
        let before = held();
        grown.reserve(MAX_KEPT + 1);
        give_back(grown);
        assert_eq!(held(), before);
        let mut kept = take();
        let before = held();
        kept.reserve(MAX_KEPT / 2);
        give_back(kept);
        assert_eq!(held(), before + 1, "one below the limit is kept");
        assert!(take().capacity() >= MAX_KEPT / 2);
    }

    /// An engine gives back whatever its read buffer is at a request's end, sometimes one
    /// already taken out (`mem::take` leaves `BytesMut::new()`): it takes no spare's place.
    #[test]
    fn a_buffer_without_room_is_not_kept() {
        let before = held();
        give_back(BytesMut::new());
        assert_eq!(held(), before);
    }
}
