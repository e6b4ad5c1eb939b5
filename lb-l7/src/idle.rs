//! Deadlines of idle client connections, kept in one table per worker and checked by a ticker
//! every `TICK`, instead of a tokio timer per connection.
//!
//! Why: an idle keep-alive connection is waiting for its next request with a deadline (the
//! idle timeout, the connection's lifetime) and the worker's stop. A tokio `Sleep` is 112 bytes
//! in every idle connection's task and a timer-wheel insertion and removal per request; a slot
//! here is a table entry, and arming it is a mutex-guarded store. Deadlines are coarse (`TICK`),
//! which idle timeouts measured in seconds do not notice. Connections with a request in flight
//! use tokio timers as before.

mod mark;

pub use mark::{IdleMark, Reclaimable};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often deadlines are checked; a deadline fires up to this late.
pub const TICK: Duration = Duration::from_millis(100);

/// The time, read from the system clock once per `TICK` by the worker's ticker rather than on
/// every request (deadlines in seconds and the trace id's epoch seconds do not need better).
#[derive(Debug)]
pub struct CoarseClock {
    base: Instant,
    /// Milliseconds since `base` at the last tick.
    ms: AtomicU64,
    /// Seconds since the Unix epoch at the last tick.
    epoch: AtomicU64,
}

impl Default for CoarseClock {
    fn default() -> Self {
        let c = CoarseClock {
            base: Instant::now(),
            ms: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        };
        c.update();
        c
    }
}

impl CoarseClock {
    /// Reads the system clocks (the ticker calls this every `TICK`).
    pub fn update(&self) {
        self.ms
            .store(self.base.elapsed().as_millis() as u64, Relaxed);
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.epoch.store(epoch, Relaxed);
    }
    /// Now, up to one `TICK` late.
    pub fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ms.load(Relaxed))
    }
    /// Seconds since the Unix epoch, up to one `TICK` late.
    pub fn epoch_secs(&self) -> u64 {
        self.epoch.load(Relaxed)
    }
}

#[derive(Debug)]
struct Slot {
    deadline: Instant,
    waker: Option<Waker>,
    fired: bool,
    /// Fired by [`IdleDeadlines::poke_all`], not by its deadline.
    poked: bool,
    /// A keep-alive connection between requests (it served one), which may be closed to make
    /// room at the connection limit: when its idle wait ends (idle timeout or keep-alive
    /// lifetime), the order [`IdleDeadlines::reclaim`] picks them in. `None`: one that has not
    /// sent a request yet, or a table of other waits.
    reusable: Option<Instant>,
    /// Fired by [`IdleDeadlines::reclaim`]: the connection closes.
    reclaimed: bool,
}

#[derive(Debug, Default)]
struct Table {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Set by `expire_all`: every later `arm` fires at once.
    stopped: bool,
    /// HTTP/2 connections, registered for their life (`register`): idle ones (their marks)
    /// are reusable too.
    conns: Vec<Option<Arc<dyn Reclaimable>>>,
    conns_free: Vec<u32>,
}

impl Table {
    /// Puts `slot` in a free place of `owner`'s table (this one, locked).
    fn place<'a>(&mut self, slot: Slot, owner: &'a IdleDeadlines) -> Armed<'a> {
        // The free list may hold indices the table shrank past, or taken again since: skip them.
        while let Some(i) = self.free.pop() {
            if let Some(s @ None) = self.slots.get_mut(i as usize) {
                *s = Some(slot);
                return Armed { owner, index: i };
            }
        }
        self.slots.push(Some(slot));
        let index = (self.slots.len() - 1) as u32;
        Armed { owner, index }
    }

    /// When the waits of the `n` reusable connections that wait longest end, earliest first:
    /// slots and idle HTTP/2 connections together.
    fn earliest_reusable(&self, n: usize) -> Vec<Instant> {
        let slots = self
            .slots
            .iter()
            .flatten()
            .filter(|s| !s.fired)
            .filter_map(|s| s.reusable);
        let conns = self.conns.iter().flatten().filter_map(|c| c.mark().until());
        let mut v: Vec<Instant> = slots.chain(conns).collect();
        earliest(&mut v, n);
        v
    }
}

/// The worker's table of idle deadlines.
#[derive(Debug, Default)]
pub struct IdleDeadlines {
    table: Mutex<Table>,
}

/// A connection's slot while it waits; removed on drop.
pub struct Armed<'a> {
    owner: &'a IdleDeadlines,
    index: u32,
}

/// An HTTP/2 connection's place in the worker's idle list ([`IdleDeadlines::register`]);
/// removed on drop.
pub struct Registered {
    owner: Arc<IdleDeadlines>,
    index: u32,
}

impl IdleDeadlines {
    /// Arms a deadline for the caller's next wait.
    pub fn arm(&self, deadline: Instant) -> Armed<'_> {
        self.arm_idle(deadline, None)
    }

    /// Arms a deadline for an idle connection's wait; `reusable`: it is a keep-alive connection
    /// between requests whose idle wait ends then (see `Slot::reusable`).
    pub fn arm_idle(&self, deadline: Instant, reusable: Option<Instant>) -> Armed<'_> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let slot = Slot {
            deadline,
            waker: None,
            fired: t.stopped,
            poked: false,
            reusable,
            reclaimed: false,
        };
        t.place(slot, self)
    }

    /// Polls the deadline in `slot`, arming it first when `slot` is empty (`arm_idle` with
    /// `deadline()`, `reusable`): arming and the first poll are one lock, not two (a wait that
    /// must sleep arms and polls at once; ~30-45 instructions a wait, callgrind). What a caller
    /// sees is `arm_idle` then `poll_fired`.
    pub fn poll_lazy<'a>(
        &'a self,
        slot: &mut Option<Armed<'a>>,
        deadline: impl FnOnce() -> Instant,
        reusable: Option<Instant>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if let Some(a) = slot {
            return a.poll_fired(cx);
        }
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let fired = t.stopped;
        let s = Slot {
            deadline: deadline(),
            waker: (!fired).then(|| cx.waker().clone()),
            fired,
            poked: false,
            reusable,
            reclaimed: false,
        };
        *slot = Some(t.place(s, self));
        if fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Fires every deadline at or before `now`; returns how many fired.
    pub fn tick(&self, now: Instant) -> usize {
        let mut wake = Vec::new();
        {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            for s in t.slots.iter_mut().flatten() {
                if !s.fired && s.deadline <= now {
                    s.fired = true;
                    wake.extend(s.waker.take());
                }
            }
        }
        let n = wake.len();
        wake.into_iter().for_each(Waker::wake);
        n
    }

    /// Fires every deadline, now and for every later `arm` (the worker stops).
    pub fn expire_all(&self) {
        let mut wake = Vec::new();
        {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            t.stopped = true;
            for s in t.slots.iter_mut().flatten() {
                s.fired = true;
                wake.extend(s.waker.take());
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// Wakes every waiting connection before its deadline, so each looks whether it must
    /// close (a reload removed its listener); one that need not arms again.
    pub fn poke_all(&self) {
        let mut wake = Vec::new();
        {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            for s in t.slots.iter_mut().flatten() {
                if !s.fired {
                    s.fired = true;
                    s.poked = true;
                    wake.extend(s.waker.take());
                }
            }
        }
        wake.into_iter().for_each(Waker::wake);
    }

    /// When the idle waits of the `n` reusable connections that wait longest end, the earliest
    /// first (the connections [`IdleDeadlines::reclaim`] would close).
    pub fn earliest_reusable(&self, n: usize) -> Vec<Instant> {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.earliest_reusable(n)
    }

    /// Wakes the `n` reusable connections whose idle wait ends first, to close (the worker is
    /// at its connection limit: `accept::park::Lot::make_room`): waiting slots, and idle
    /// HTTP/2 connections, which are asked to close (`Reclaimable::close_idle`). Returns how
    /// many it woke. Linear in the table, and only called at the limit, once per batch.
    pub fn reclaim(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut wake = Vec::new();
        let mut close = Vec::new();
        {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let ends = t.earliest_reusable(n);
            let Some(&last) = ends.last() else {
                return 0;
            };
            for s in t.slots.iter_mut().flatten() {
                if wake.len() == n {
                    break;
                }
                if !s.fired && s.reusable.is_some_and(|r| r <= last) {
                    s.fired = true;
                    s.reclaimed = true;
                    wake.push(s.waker.take());
                }
            }
            for c in t.conns.iter().flatten() {
                if wake.len() + close.len() == n {
                    break;
                }
                if c.mark().claim(last) {
                    close.push(c.clone());
                }
            }
        }
        let n = wake.len() + close.len();
        wake.into_iter().flatten().for_each(Waker::wake);
        close.iter().for_each(|c| c.close_idle());
        n
    }

    /// Registers an HTTP/2 connection for its life: while its mark says it is idle, it is
    /// among the connections [`IdleDeadlines::reclaim`] may close.
    pub fn register(self: &Arc<Self>, conn: Arc<dyn Reclaimable>) -> Registered {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let index = match t.conns_free.pop() {
            Some(i) => {
                t.conns[i as usize] = Some(conn);
                i
            }
            None => {
                t.conns.push(Some(conn));
                (t.conns.len() - 1) as u32
            }
        };
        Registered {
            owner: self.clone(),
            index,
        }
    }

    /// Slots in use (for tests and metrics). Counted, not `slots − free`: the free list may
    /// hold stale indices past a shrunk end (see `place`), and that difference underflowed.
    pub fn armed(&self) -> usize {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.slots.iter().filter(|s| s.is_some()).count()
    }
}

impl Armed<'_> {
    /// Whether it fired by [`IdleDeadlines::poke_all`] only (not its deadline, not the stop).
    pub fn poked(&self) -> bool {
        let t = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        t.slots[self.index as usize]
            .as_ref()
            .is_some_and(|s| s.poked && !t.stopped)
    }

    /// Whether it fired by [`IdleDeadlines::reclaim`]: the connection must close.
    pub fn reclaimed(&self) -> bool {
        let t = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        t.slots[self.index as usize]
            .as_ref()
            .is_some_and(|s| s.reclaimed)
    }

    /// Ready once the deadline passed (or the worker stops); else keeps `cx`'s waker.
    pub fn poll_fired(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut t = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = t.slots[self.index as usize].as_mut() else {
            return Poll::Ready(());
        };
        if s.fired {
            return Poll::Ready(());
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Leaves the `n` earliest of `v` in `v`, sorted.
pub(crate) fn earliest(v: &mut Vec<Instant>, n: usize) {
    if v.len() > n {
        if n == 0 {
            v.clear();
            return;
        }
        v.select_nth_unstable(n - 1);
        v.truncate(n);
    }
    v.sort_unstable();
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut t = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        t.conns[self.index as usize] = None;
        t.conns_free.push(self.index);
        // All gone (a crowd left): the memory goes back.
        if t.conns_free.len() == t.conns.len() && t.conns.capacity() > 64 {
            t.conns = Vec::new();
            t.conns_free = Vec::new();
        }
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        let mut t = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        t.slots[self.index as usize] = None;
        if self.index as usize + 1 < t.slots.len() {
            t.free.push(self.index);
            return;
        }
        // The last slot: the table shrinks past its free tail, and gives memory back once
        // mostly empty (idle connections parked after a crowd waited here: `accept::park`).
        while t.slots.last().is_some_and(Option::is_none) {
            t.slots.pop();
        }
        let len = t.slots.len();
        if t.slots.capacity() > 64 && len < t.slots.capacity() / 4 {
            t.slots.shrink_to(len * 2);
        }
        if t.free.len() > 2 * len + 64 {
            let Table { slots, free, .. } = &mut *t;
            free.retain(|&i| slots.get(i as usize).is_some_and(Option::is_none));
            free.sort_unstable();
            free.dedup();
            free.shrink_to(2 * free.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker that counts its wakes.
    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_poke_fires_every_waiting_slot_and_says_so_unless_the_worker_stops() {
        let d = IdleDeadlines::default();
        let t0 = Instant::now();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let a = d.arm(t0 + Duration::from_secs(60));
        assert!(a.poll_fired(&mut cx).is_pending());
        d.poke_all();
        assert!(a.poll_fired(&mut cx).is_ready());
        assert!(a.poked());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        drop(a);
        let b = d.arm(t0 + Duration::from_secs(60));
        assert!(!b.poked());
        d.poke_all();
        d.expire_all();
        assert!(b.poll_fired(&mut cx).is_ready());
        assert!(!b.poked(), "a stop is no poke");
    }

    #[test]
    fn fires_at_its_deadline_once_and_frees_its_slot() {
        let d = IdleDeadlines::default();
        let t0 = Instant::now();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let early = d.arm(t0 + Duration::from_secs(1));
        let late = d.arm(t0 + Duration::from_secs(5));
        assert!(early.poll_fired(&mut cx).is_pending());
        assert!(late.poll_fired(&mut cx).is_pending());
        assert_eq!(d.tick(t0 + Duration::from_millis(999)), 0);
        assert_eq!(d.tick(t0 + Duration::from_secs(1)), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(early.poll_fired(&mut cx).is_ready());
        assert!(late.poll_fired(&mut cx).is_pending());
        assert_eq!(d.tick(t0 + Duration::from_secs(2)), 0, "fires once");
        drop(early);
        assert_eq!(d.armed(), 1);
        let again = d.arm(t0 + Duration::from_secs(9));
        assert_eq!(again.index, 0, "the freed slot is reused");
        assert_eq!(d.armed(), 2);
    }

    #[test]
    fn the_table_shrinks_once_its_tail_is_free_and_reuses_slots_correctly() {
        let d = IdleDeadlines::default();
        let t0 = Instant::now();
        let far = t0 + Duration::from_secs(60);
        let mut crowd: Vec<Armed<'_>> = (0..1000).map(|_| d.arm(far)).collect();
        let cap = |d: &IdleDeadlines| d.table.lock().unwrap().slots.capacity();
        assert!(cap(&d) >= 1000);
        // Dropped from the front (the free list fills), then the tail goes: the table empties.
        let keep = crowd.split_off(990);
        drop(crowd);
        assert_eq!(d.armed(), 10);
        drop(keep);
        assert_eq!(d.armed(), 0);
        assert_eq!(d.table.lock().unwrap().slots.len(), 0);
        assert!(cap(&d) <= 64, "memory given back: capacity {}", cap(&d));
        // Stale free-list entries are skipped: every new slot is distinct and fires alone.
        let a: Vec<Armed<'_>> = (0..50).map(|_| d.arm(far)).collect();
        let mut idx: Vec<u32> = a.iter().map(|x| x.index).collect();
        idx.sort_unstable();
        idx.dedup();
        assert_eq!(idx.len(), 50);
        let soon = d.arm(t0 + Duration::from_secs(1));
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(soon.poll_fired(&mut cx).is_pending());
        assert!(a.iter().all(|x| x.poll_fired(&mut cx).is_pending()));
        assert_eq!(d.tick(t0 + Duration::from_secs(2)), 1);
        assert!(soon.poll_fired(&mut cx).is_ready());
        assert!(a.iter().all(|x| x.poll_fired(&mut cx).is_pending()));
    }

    /// At the connection limit the keep-alive connections waiting longest are woken to close,
    /// never one that has not sent a request (nor one another wake fired already).
    #[test]
    fn reclaim_wakes_the_oldest_reusable_waits_only() {
        let d = IdleDeadlines::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let fresh = d.arm_idle(t0 + s(1), None);
        let newer = d.arm_idle(t0 + s(1), Some(t0 + s(50)));
        let oldest = d.arm_idle(t0 + s(1), Some(t0 + s(10)));
        let older = d.arm_idle(t0 + s(1), Some(t0 + s(20)));
        for a in [&fresh, &newer, &oldest, &older] {
            assert!(a.poll_fired(&mut cx).is_pending());
        }
        assert_eq!(d.earliest_reusable(2), vec![t0 + s(10), t0 + s(20)]);
        assert_eq!(d.reclaim(2), 2);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(oldest.poll_fired(&mut cx).is_ready() && oldest.reclaimed());
        assert!(older.poll_fired(&mut cx).is_ready() && older.reclaimed());
        assert!(newer.poll_fired(&mut cx).is_pending() && !newer.reclaimed());
        assert_eq!(
            d.reclaim(5),
            1,
            "the one left; never the one with no request"
        );
        assert!(fresh.poll_fired(&mut cx).is_pending() && !fresh.reclaimed());
        assert_eq!(d.reclaim(5), 0);
    }

    /// An HTTP/2 connection in the idle list: its mark and how often it was asked to close.
    #[derive(Debug, Default)]
    struct Conn {
        mark: IdleMark,
        asked: AtomicUsize,
    }
    impl Reclaimable for Conn {
        fn mark(&self) -> &IdleMark {
            &self.mark
        }
        fn close_idle(&self) {
            self.asked.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Idle HTTP/2 connections and waiting keep-alive slots are one list, the oldest first;
    /// a busy connection, one that served nothing yet and one already closing are left alone;
    /// a connection leaves the list when its registration drops.
    #[test]
    fn reclaim_takes_idle_http2_connections_and_slots_in_one_order() {
        let d = Arc::new(IdleDeadlines::default());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let conn = |until: Option<Instant>| {
            let c = Arc::new(Conn::default());
            if let Some(u) = until {
                c.mark.idle(u);
            }
            let r = d.register(c.clone());
            (c, r)
        };
        let (h2_oldest, _r1) = conn(Some(t0 + s(10)));
        let slot = d.arm_idle(t0 + s(1), Some(t0 + s(20)));
        let (h2_newer, _r2) = conn(Some(t0 + s(30)));
        let (never, _r3) = conn(None);
        let (busy, _r4) = conn(Some(t0 + s(5)));
        busy.mark.busy();
        let (closing, _r5) = conn(Some(t0 + s(5)));
        assert!(!closing.mark.closing());
        let (gone, r6) = conn(Some(t0 + s(1)));
        drop(r6);
        assert!(slot.poll_fired(&mut cx).is_pending());
        // In seconds after t0 (a mark keeps milliseconds, rounded down).
        let ends: Vec<u64> = d
            .earliest_reusable(5)
            .iter()
            .map(|e| (e.saturating_duration_since(t0) + Duration::from_millis(1)).as_secs())
            .collect();
        assert_eq!(ends, vec![10, 20, 30]);
        assert_eq!(d.reclaim(2), 2);
        assert_eq!(h2_oldest.asked.load(Ordering::SeqCst), 1);
        assert!(h2_oldest.mark.reclaimed());
        assert!(slot.poll_fired(&mut cx).is_ready() && slot.reclaimed());
        assert_eq!(h2_newer.asked.load(Ordering::SeqCst), 0);
        assert_eq!(d.reclaim(5), 1, "the newer one; none of the others");
        assert_eq!(h2_newer.asked.load(Ordering::SeqCst), 1);
        for c in [&never, &busy, &closing, &gone] {
            assert_eq!(c.asked.load(Ordering::SeqCst), 0, "{c:?}");
        }
        assert_eq!(d.reclaim(5), 0);
        assert_eq!(h2_oldest.asked.load(Ordering::SeqCst), 1, "asked once");
    }

    /// `poll_lazy` against what it replaced (`arm_idle` then `poll_fired`, the oracle): two
    /// tables driven by the same random waits, ticks, pokes, reclaims and the stop, every
    /// answer and every wake compared.
    #[test]
    fn poll_lazy_is_arm_then_poll_fired() {
        let (mut fired, mut woken) = (0, 0);
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let (old, new) = (IdleDeadlines::default(), IdleDeadlines::default());
            let t0 = Instant::now();
            let at = |ms: u64| t0 + Duration::from_millis(ms);
            let (wakes_old, waker_old) = counting_waker();
            let (wakes_new, waker_new) = counting_waker();
            let mut cx_old = Context::from_waker(&waker_old);
            let mut cx_new = Context::from_waker(&waker_new);
            let mut waits: Vec<(Armed<'_>, Option<Armed<'_>>)> = Vec::new();
            for step in 0..60 {
                let what = format!("seed {seed} step {step}");
                match rng.u8(..8) {
                    0..=2 => {
                        let deadline = at(rng.u64(0..2000));
                        let reusable = rng.bool().then(|| at(rng.u64(0..5000)));
                        let a = old.arm_idle(deadline, reusable);
                        let p_old = a.poll_fired(&mut cx_old);
                        let mut slot = None;
                        let p_new = new.poll_lazy(&mut slot, || deadline, reusable, &mut cx_new);
                        assert_eq!(p_old, p_new, "{what}");
                        waits.push((a, slot));
                    }
                    3 => {
                        let now = at(rng.u64(0..2000));
                        assert_eq!(old.tick(now), new.tick(now), "{what}");
                    }
                    4 if !waits.is_empty() => {
                        let (a, mut b) = waits.swap_remove(rng.usize(..waits.len()));
                        let p_old = a.poll_fired(&mut cx_old);
                        let p_new = new.poll_lazy(&mut b, || unreachable!(), None, &mut cx_new);
                        assert_eq!(p_old, p_new, "{what}");
                        fired += usize::from(p_new.is_ready());
                        let b = b.expect("armed");
                        assert_eq!(a.poked(), b.poked(), "{what}");
                        assert_eq!(a.reclaimed(), b.reclaimed(), "{what}");
                    }
                    5 => {
                        let n = rng.usize(0..4);
                        assert_eq!(old.reclaim(n), new.reclaim(n), "{what}");
                    }
                    6 if rng.u8(..8) == 0 => {
                        old.expire_all();
                        new.expire_all();
                    }
                    6 => {
                        old.poke_all();
                        new.poke_all();
                    }
                    _ => {}
                }
                // `armed` once underflowed here (the free list held indices past a shrunk end).
                assert_eq!(old.armed(), new.armed(), "{what}");
                assert_eq!(old.earliest_reusable(9), new.earliest_reusable(9), "{what}");
                let w = (
                    wakes_old.0.load(Ordering::SeqCst),
                    wakes_new.0.load(Ordering::SeqCst),
                );
                assert_eq!(w.0, w.1, "{what}");
            }
            woken += wakes_new.0.load(Ordering::SeqCst);
        }
        assert!(
            fired > 1000 && woken > 1000,
            "not vacuous: {fired} fired, {woken} wakes"
        );
    }

    #[test]
    fn registrations_free_their_places() {
        let d = Arc::new(IdleDeadlines::default());
        let regs: Vec<Registered> = (0..100)
            .map(|_| d.register(Arc::new(Conn::default())))
            .collect();
        drop(regs);
        let t = d.table.lock().unwrap();
        assert!(t.conns.is_empty() && t.conns.capacity() == 0);
    }

    #[test]
    fn coarse_clock_moves_on_update_only() {
        let c = CoarseClock::default();
        let t = c.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now(), t, "no clock read between updates");
        c.update();
        assert!(c.now() >= t + Duration::from_millis(5));
        assert!(c.epoch_secs() > 1_700_000_000);
    }

    #[test]
    fn expire_all_fires_every_slot_and_later_ones() {
        let d = IdleDeadlines::default();
        let t0 = Instant::now();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let a = d.arm(t0 + Duration::from_secs(60));
        assert!(a.poll_fired(&mut cx).is_pending());
        d.expire_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(a.poll_fired(&mut cx).is_ready());
        let b = d.arm(t0 + Duration::from_secs(60));
        assert!(b.poll_fired(&mut cx).is_ready(), "armed after the stop");
    }
}
