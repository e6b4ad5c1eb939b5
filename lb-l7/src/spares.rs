//! A per-thread bounded pool of spares: things a request needs (a read buffer, a header map,
//! a send queue) kept once it is done with them, for the next request instead of an
//! allocation each. A worker is one thread, so a pool is a `thread_local!` [`Spares`] and
//! needs no lock; each owner declares its own and decides what may be given back (how large a
//! spare it keeps, emptied how): `pipeline::readbuf`, `pipeline::codec`'s field lists, header
//! maps and request heads, `headers`' carving block, `h2weir::send_queues`, the blocks of
//! `h1::slot`.
//!
//! A burst leaves a pool full (up to its bound) and an idle worker has no use for that, so
//! the worker's once-a-second sweep calls [`Spares::trim`] on every pool of its thread
//! (`worker::trim_spares`): what was not taken since the previous trim goes, down to the
//! pool's floor. What the last period drew at its busiest (a high-water mark) stays, so a
//! steady load keeps its spares and only an idle or quieter period gives memory back.
//!
//! Taking and giving back cost a `RefCell` borrow and a `Vec` pop or push (the `Vec` grows to
//! the bound once and keeps its room); a take also lowers the period's low-water mark.

use std::cell::{Cell, RefCell};

/// A bounded stack of spares, one per thread (declare it in `thread_local!`, `const`).
pub struct Spares<T> {
    items: RefCell<Vec<T>>,
    /// The fewest spares held since the last trim: those below it (the stack's bottom) were
    /// not taken in the period.
    low: Cell<usize>,
    /// Spares kept at most; one given back beyond is dropped.
    bound: usize,
    /// Spares a trim keeps even when the period took none.
    floor: usize,
}

impl<T> Spares<T> {
    /// A pool that keeps up to `bound` spares, and at least `floor` (of those it holds) through
    /// a trim.
    pub const fn new(bound: usize, floor: usize) -> Self {
        Spares {
            items: RefCell::new(Vec::new()),
            low: Cell::new(0),
            bound,
            floor,
        }
    }

    /// The spare given back last, if any.
    #[inline]
    pub fn take(&self) -> Option<T> {
        let mut items = self.items.borrow_mut();
        let t = items.pop();
        if items.len() < self.low.get() {
            self.low.set(items.len());
        }
        t
    }

    /// Keeps `t` for a later [`take`](Self::take) if fewer than the bound are held, else
    /// drops it. What may be kept (its size, emptied) is the owner's to check before.
    #[inline]
    pub fn give_back(&self, t: T) {
        let mut items = self.items.borrow_mut();
        if items.len() < self.bound {
            items.push(t);
            return;
        }
        drop(items);
        drop(t);
    }

    /// Drops the spares not taken since the last trim, keeping at least the floor; returns how
    /// many went. Called once a period (the worker's sweep): what stays is what the period
    /// drew at its busiest, or the floor.
    pub fn trim(&self) -> usize {
        let released = {
            let mut items = self.items.borrow_mut();
            let held = items.len();
            let unused = self.low.get().min(held);
            let keep = (held - unused).max(self.floor.min(held));
            // The unused ones are at the bottom (taking and giving back work at the top).
            let gone: Vec<T> = items.drain(..held - keep).collect();
            if items.is_empty() {
                // Nothing left to keep room for (the room comes back with the next burst).
                *items = Vec::new();
            }
            self.low.set(items.len());
            gone
        };
        // Dropped outside the borrow.
        released.len()
    }

    /// Spares held now.
    pub fn len(&self) -> usize {
        self.items.borrow().len()
    }

    /// No spare held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives back `n` new spares (numbered from `from`).
    fn fill(p: &Spares<u32>, from: u32, n: u32) {
        for i in from..from + n {
            p.give_back(i);
        }
    }

    #[test]
    fn keeps_at_most_its_bound_and_hands_back_the_last_given() {
        let p = Spares::new(3, 0);
        assert_eq!(p.take(), None);
        fill(&p, 0, 5);
        assert_eq!(p.len(), 3, "two dropped beyond the bound");
        assert_eq!(p.take(), Some(2));
        p.give_back(7);
        assert_eq!(p.take(), Some(7));
        assert_eq!(p.take(), Some(1));
        assert_eq!(p.take(), Some(0));
        assert!(p.is_empty());
    }

    #[test]
    fn a_trim_releases_what_the_period_did_not_take_down_to_the_floor() {
        let p = Spares::new(128, 4);
        // A burst: 100 out at once, all back.
        let out: Vec<u32> = (0..100).map(|i| p.take().unwrap_or(i)).collect();
        for t in out {
            p.give_back(t);
        }
        assert_eq!(p.len(), 100);
        // The burst's period drew all 100: a trim keeps them.
        assert_eq!(p.trim(), 0);
        assert_eq!(p.len(), 100);
        // A quieter period: at most 10 out at once.
        for _ in 0..50 {
            let out: Vec<u32> = (0..10).filter_map(|_| p.take()).collect();
            assert_eq!(out.len(), 10);
            for t in out {
                p.give_back(t);
            }
        }
        assert_eq!(p.trim(), 90, "the high-water mark (10) stays");
        assert_eq!(p.len(), 10);
        // Idle: down to the floor, and no lower however long.
        assert_eq!(p.trim(), 6);
        assert_eq!(p.len(), 4);
        assert_eq!(p.trim(), 0);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn the_spares_released_are_those_not_taken() {
        let p = Spares::new(8, 0);
        fill(&p, 0, 8);
        p.trim(); // a new period
        // 3 taken (7, 6, 5), one of them not given back, one new one given back.
        let a = p.take();
        let b = p.take();
        let _lost = p.take();
        p.give_back(a.unwrap());
        p.give_back(b.unwrap());
        p.give_back(100);
        assert_eq!(p.trim(), 5, "0..=4 were never taken");
        let kept: Vec<u32> = std::iter::from_fn(|| p.take()).collect();
        assert_eq!(kept, vec![100, 6, 7]);
    }

    #[test]
    fn a_floor_above_what_is_held_keeps_everything_held() {
        let p = Spares::new(8, 4);
        fill(&p, 0, 2);
        assert_eq!(p.trim(), 0);
        assert_eq!(p.trim(), 0);
        assert_eq!(p.len(), 2);
        let empty: Spares<u32> = Spares::new(8, 0);
        assert_eq!(empty.trim(), 0);
        fill(&empty, 0, 3);
        empty.trim();
        assert_eq!(
            empty.trim(),
            3,
            "an idle period empties a pool without a floor"
        );
        assert!(empty.is_empty());
    }
}
