//! Empty send queues for the protocol core's streams (`h2conn::Config::send_queue`), kept per
//! thread (a worker is one; `crate::spares`): a new queue per stream is an allocation per
//! response, and spares kept per connection went each time it had no stream left (an idle
//! connection keeps none). Streams end in bursts (hundreds in flight per worker), more at
//! once than 64 spares held: under `h2load -c16 -m32` about a third of the responses grew a
//! new queue. Those an idle second did not use go at the worker's sweep ([`trim`]).

use crate::spares::Spares;
use bytes::Bytes;
use std::collections::VecDeque;

/// Spares kept. An empty queue of at most 16 chunks is ≤ 512 bytes: 256 kept are ≤ 128 KB per
/// worker.
const SPARES: usize = 256;
/// A queue that grew beyond this many chunks (a large response) is not kept.
const MAX_KEPT_QUEUE: usize = 16;
/// Spares a trim keeps however idle the worker.
const FLOOR: usize = 16;
/// What a spare holds: room for `MAX_KEPT_QUEUE` chunks (a `Bytes` is 32 bytes).
const SPARE_SIZE: usize = MAX_KEPT_QUEUE * 32;

thread_local! {
    static SPARE: Spares<VecDeque<Bytes>> = const { Spares::new(SPARES, FLOOR) };
}

/// A send queue for a new stream: a spare if any (`Config::send_queue`).
pub fn take() -> VecDeque<Bytes> {
    SPARE.with(Spares::take).unwrap_or_default()
}

/// A closed stream's send queue (`Config::recycle_send_queue`): emptied and kept for the next
/// stream, unless it never grew or grew large.
pub fn give_back(mut q: VecDeque<Bytes>) {
    if q.capacity() == 0 || q.capacity() > MAX_KEPT_QUEUE {
        return;
    }
    q.clear();
    SPARE.with(|s| s.give_back(q));
}

/// The worker's sweep: releases the spares not used since the last one, down to what that
/// period used at its busiest (or [`FLOOR`]). Returns the bytes released (nominally).
pub fn trim() -> usize {
    SPARE.with(Spares::trim) * SPARE_SIZE
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
    fn a_queue_comes_back_emptied_unless_it_never_grew_or_grew_large() {
        let before = held();
        give_back(VecDeque::new());
        assert_eq!(
            held(),
            before,
            "one that never grew costs nothing to make anew"
        );
        let mut large = take();
        let before = held();
        large.extend((0..=MAX_KEPT_QUEUE).map(|_| Bytes::from_static(b"x")));
        give_back(large);
        assert_eq!(held(), before, "one a large response grew is not kept");
        let mut q = take();
        let before = held();
        q.push_back(Bytes::from_static(b"unsent"));
        let room = q.capacity();
        give_back(q);
        assert_eq!(held(), before + 1);
        let again = take();
        assert!(again.is_empty(), "its chunks dropped");
        assert_eq!(again.capacity(), room, "its room kept");
        for _ in 0..SPARES + 10 {
            let mut q = VecDeque::with_capacity(4);
            q.push_back(Bytes::new());
            give_back(q);
        }
        assert_eq!(held(), SPARES, "at most the bound");
    }
}
