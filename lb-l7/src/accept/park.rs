//! Parking: idle plain HTTP/1.1 keep-alive connections without a task.
//!
//! Why: an idle plain connection's task (~400–500 B), its tokio registration (~256 B) and its
//! `ConnInfo` are what a keep-alive connection costs the worker while it waits, twice what
//! nginx's connection struct costs. nginx frees everything but that struct while a keep-alive
//! connection waits; this does the same: once a plain connection sat idle for
//! `h1::server::PARK_AFTER` with no byte buffered, its task hands the socket here and ends.
//! The lot keeps a small [`Entry`] per socket in a slab, watched by an epoll instance of its
//! own (EPOLLIN | EPOLLRDHUP | EPOLLONESHOT; tokio's `AsyncFd` on the epoll fd), the socket
//! deregistered from tokio. When a parked socket turns readable it is registered with tokio
//! again and a fresh connection task picks it up in its idle wait (`h1::server::resume`):
//! the next request, pipelined bytes, or the client's FIN alike. A hang-up or error closes it
//! here.
//!
//! What an operator relies on holds for parked connections as for waiting tasks:
//! - the idle timeout (and `client_keep_alive`) close them on time: each entry keeps the
//!   deadline its task computed, checked by the worker's ticker (`tick`) in deadline order;
//! - the worker's stop closes them all at once (`stop`), and the lot takes no more;
//! - a reload that removes their listener closes them (`close_removed`), as a poked idle
//!   task would close; many at once close a batch at a time, as the ticker's do (`Closing`);
//!   other generations' connections wait on, and a resumed one moves to the newest
//!   generation at its next request as any connection does;
//! - an entry keeps the connection's `Active` guard: the gauges, `max_connections` and the
//!   drain's token count it until it is closed or resumed.
//!
//! At the connection limit the lot also makes room (`make_room`): as nginx at its
//! `worker_connections` (`ngx_drain_connections`), idle keep-alive connections close, those
//! waiting longest first, [`CLOSE_BATCH`] at a time, so that a new client is served rather
//! than reset while a crowd of idle connections holds every place (an attacker's thousand,
//! one request each, then silence: every new client was reset for as long as the idle
//! timeout). Parked connections and those still waiting in their tasks (`IdleDeadlines`'
//! reusable slots: plain ones in their first `PARK_AFTER`, TLS ones) alike, after one request;
//! a connection that has sent none is held to its header timeout, as nginx and ALB hold it.
//! HTTP/2 connections with no stream in flight, after one, are among them (their engines
//! register them with `IdleDeadlines`, `idle::IdleMark`): asked to close, they send GOAWAY
//! (see docs/l7.md, "Idle connections").
//!
//! Closing is the engine's quiet close: FIN, then unread bytes read away, then close(2).
//!
//! Why `libc` and not a crate: the three epoll calls are all this needs; `mio` (tokio's) only
//! registers edge-triggered without EPOLLONESHOT and would be a second poller with its own
//! token and event types, and `nix`'s epoll needs a feature the workspace does not enable. The
//! epoll fd is made in `Worker::bind`, before the worker's sandbox (which does not allow
//! `epoll_create1`).

use super::{Active, h2c};
use crate::h1::server::{Idle, Resumed};
use crate::h1::stream::ClientStream;
use crate::pipeline::{ConnInfo, Shared, stopped};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

/// Events taken from the epoll instance per `epoll_wait`.
const BATCH: usize = 64;
/// Events handled per wake-up before the lot's task yields to the connections' tasks.
const PER_WAKE: usize = 1024;
/// Slots per chunk of the slab: it grows a chunk at a time (no doubling, no copy).
const CHUNK: usize = 256;
/// Parked connections closed in one go before the worker's other tasks run again (`Closing`):
/// a close costs ~12 µs (FIN, the read, close(2)), so 32 hold the worker ~0.4 ms. Closed all at
/// once, the 3,000 of `tests/parking.rs`'s reload held every other connection 36 ms.
const CLOSE_BATCH: usize = 32;
/// The allocator is asked to give freed memory back once this many connections parked since
/// it last was ...
const RELEASE_AFTER: usize = 64;
/// ... and at most this often.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A parked connection: what its next task needs, 64 bytes with its slot. Its peer (and, on a
/// wildcard listener, local) address is asked of the kernel again at resume, and its generation and listener are found again from
/// the guard's (the newest generation, the listener on its port), so the entry holds neither.
struct Entry {
    tcp: std::net::TcpStream,
    /// Its place in the worker's counts, the drain's token and its listener's port.
    active: Active,
    /// The end of its keep-alive lifetime, in milliseconds from the lot's `base`.
    life_until: u64,
    /// When it closes unless a byte arrives (idle timeout or keep-alive lifetime, the
    /// earlier), in milliseconds from the lot's `base`.
    deadline: u64,
}

#[derive(Default)]
struct Slot {
    /// Bumped at every take, so a stale epoll event or deadline of a slot's earlier occupant
    /// finds nothing.
    generation: u32,
    entry: Option<Entry>,
}

#[derive(Default)]
struct Inner {
    /// The slab, in chunks of `CHUNK`.
    chunks: Vec<Box<[Slot]>>,
    free: Vec<u32>,
    /// (deadline, slot, generation), the earliest first; an item whose slot moved on is stale
    /// and skipped (rebuilt when stale ones outnumber the live).
    deadlines: BinaryHeap<Reverse<(u64, u32, u32)>>,
    parked: usize,
    /// The worker stops (or the lot cannot watch its sockets): nothing parks any more.
    stopped: bool,
    /// Connections parked since the allocator last gave memory back, and when that was.
    parked_since_release: usize,
    last_release: Option<Instant>,
}

impl Inner {
    fn slot(&mut self, i: u32) -> Option<&mut Slot> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    /// A vacant slot's index, the slab grown by a chunk when none is.
    fn vacant(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        let first = (self.chunks.len() * CHUNK) as u32;
        self.chunks
            .push((0..CHUNK).map(|_| Slot::default()).collect());
        self.free.extend((first + 1..first + CHUNK as u32).rev());
        first
    }
}

/// The worker's parking lot.
pub struct Lot {
    epoll: OwnedFd,
    inner: Mutex<Inner>,
    /// What entries' times count from.
    base: Instant,
    /// `WorkerOptions::release_memory`: a parked connection's task and registration are freed
    /// memory, which an allocator keeps (and RSS counts) until asked to give it back.
    release: Option<fn()>,
    /// New connections the accept loops may still take over the limit for idle connections
    /// `make_room` woke to close and that have not closed yet (their tasks close them at
    /// their next turn): one batch makes room for a batch of new connections, not one each.
    room: AtomicUsize,
}

fn key(slot: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(slot)
}

impl Lot {
    /// A lot with its epoll instance (made before the worker's sandbox, which forbids it).
    pub fn new(release: Option<fn()>) -> std::io::Result<Lot> {
        // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Lot {
            // SAFETY: a fresh descriptor owned by nothing else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            inner: Mutex::new(Inner::default()),
            base: Instant::now(),
            release,
            room: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    fn instant(&self, ms: u64) -> Instant {
        self.base + std::time::Duration::from_millis(ms)
    }

    /// Connections parked now.
    pub fn parked(&self) -> usize {
        self.lock().parked
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32,
            u64: data,
        };
        // SAFETY: both descriptors are open (the lot's and a socket it owns); `ev` outlives the call.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Parks `idle` with its guard; gives both back when the lot takes no more (the worker
    /// stops). A socket that cannot be moved from tokio to the lot is closed (counted out).
    pub(super) fn park(&self, active: Active, idle: Idle) -> Result<(), (Active, Idle)> {
        let mut t = self.lock();
        if t.stopped {
            return Err((active, idle));
        }
        let Idle {
            ci,
            tcp,
            life_until,
            deadline,
        } = idle;
        let tcp = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = %ci.peer, error = %e, "cannot park an idle connection: closed");
                return Ok(());
            }
        };
        let slot = t.vacant();
        let Some(s) = t.slot(slot) else {
            return Ok(());
        };
        let generation = s.generation;
        if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, tcp.as_raw_fd(), key(slot, generation)) {
            t.free.push(slot);
            tracing::debug!(peer = %ci.peer, error = %e, "cannot watch a parked connection: closed");
            drop(t);
            close(tcp);
            return Ok(());
        }
        let deadline = self.ms(deadline);
        s.entry = Some(Entry {
            tcp,
            active,
            life_until: self.ms(life_until),
            deadline,
        });
        t.parked += 1;
        t.parked_since_release += 1;
        t.deadlines.push(Reverse((deadline, slot, generation)));
        if t.deadlines.len() > 2 * t.parked + 64 {
            let mut heap = std::mem::take(&mut t.deadlines).into_vec();
            heap.retain(|Reverse((_, s, g))| {
                t.slot(*s)
                    .is_some_and(|s| s.generation == *g && s.entry.is_some())
            });
            t.deadlines = heap.into();
        }
        Ok(())
    }

    /// Takes the entry of `slot` if it still is the one of `generation`.
    fn take(t: &mut Inner, slot: u32, generation: u32) -> Option<Entry> {
        let s = t.slot(slot)?;
        if s.generation != generation {
            return None;
        }
        let e = s.entry.take()?;
        s.generation = s.generation.wrapping_add(1);
        t.free.push(slot);
        t.parked -= 1;
        Some(e)
    }

    /// Every entry `close_it` picks, taken out.
    fn take_where(&self, mut close_it: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let mut t = self.lock();
        let mut out = Vec::new();
        for i in 0..(t.chunks.len() * CHUNK) as u32 {
            let Some(s) = t.slot(i) else { break };
            if s.entry.as_ref().is_some_and(&mut close_it) {
                let g = s.generation;
                out.extend(Self::take(&mut t, i, g));
            }
        }
        out
    }

    /// Takes out the parked connections whose deadline is at or before `now`, to be closed (the
    /// worker's ticker calls this every `idle::TICK`).
    pub fn tick(&self, now: Instant) -> Closing {
        let at = now;
        let now = self.ms(now);
        let mut due = Vec::new();
        let mut release = None;
        {
            let mut t = self.lock();
            if t.parked_since_release >= RELEASE_AFTER
                && t.last_release.is_none_or(|l| at >= l + RELEASE_EVERY)
            {
                t.parked_since_release = 0;
                t.last_release = Some(at);
                release = self.release;
            }
            while let Some(&Reverse((d, slot, g))) = t.deadlines.peek() {
                if d > now {
                    break;
                }
                t.deadlines.pop();
                due.extend(Self::take(&mut t, slot, g));
            }
        }
        if let Some(release) = release {
            release();
        }
        Closing(due.into_iter())
    }

    /// When the idle waits of the `n` parked connections that wait longest end, the earliest
    /// first.
    fn earliest(&self, n: usize) -> Vec<Instant> {
        let t = self.lock();
        let mut v: Vec<Instant> = t
            .deadlines
            .iter()
            .filter(|Reverse((_, s, g))| {
                t.chunks
                    .get(*s as usize / CHUNK)
                    .and_then(|c| c.get(*s as usize % CHUNK))
                    .is_some_and(|x| x.generation == *g && x.entry.is_some())
            })
            .map(|Reverse((d, _, _))| self.instant(*d))
            .collect();
        crate::idle::earliest(&mut v, n);
        v
    }

    /// Takes out the `n` parked connections whose idle wait ends first.
    fn take_earliest(&self, n: usize) -> Vec<Entry> {
        let mut t = self.lock();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(Reverse((_, slot, g))) = t.deadlines.pop() else {
                break;
            };
            out.extend(Self::take(&mut t, slot, g));
        }
        out
    }

    /// The worker is at its connection limit and a new connection came: closes up to
    /// [`CLOSE_BATCH`] idle keep-alive connections, parked ones and those waiting in their
    /// tasks or idle on HTTP/2 (`idle`) together, the ones whose idle wait ends first (the
    /// oldest), and says
    /// whether the new connection may be taken. Parked ones close here; woken ones close in
    /// their tasks a moment later, and the room they will leave is kept for the next new
    /// connections (`room`). `false`: no connection was idle; the new one is rejected.
    pub fn make_room(&self, idle: &crate::idle::IdleDeadlines) -> MadeRoom {
        if self
            .room
            .fetch_update(Relaxed, Relaxed, |r| r.checked_sub(1))
            .is_ok()
        {
            return MadeRoom {
                closed: 0,
                take: true,
            };
        }
        let parked = self.earliest(CLOSE_BATCH);
        let waiting = idle.earliest_reusable(CLOSE_BATCH);
        // The CLOSE_BATCH earliest of both lists (each sorted): how many from each.
        let (mut p, mut w) = (0, 0);
        while p + w < CLOSE_BATCH && (p < parked.len() || w < waiting.len()) {
            if w == waiting.len() || (p < parked.len() && parked[p] <= waiting[w]) {
                p += 1;
            } else {
                w += 1;
            }
        }
        let closing = self.take_earliest(p);
        let closed = closing.len();
        closing.into_iter().for_each(close_entry);
        let woken = idle.reclaim(w);
        match (closed, woken) {
            (0, 0) => MadeRoom {
                closed: 0,
                take: false,
            },
            // A parked one's place is free now; the woken ones' are kept for the next.
            (1.., _) => {
                self.room.fetch_add(woken, Relaxed);
                MadeRoom {
                    closed: closed + woken,
                    take: true,
                }
            }
            (0, 1..) => {
                self.room.fetch_add(woken - 1, Relaxed);
                MadeRoom {
                    closed: woken,
                    take: true,
                }
            }
        }
    }

    /// The worker stops: every parked connection closes now, and nothing parks any more.
    pub fn stop(&self) {
        self.lock().stopped = true;
        let all = self.take_where(|_| true);
        if !all.is_empty() {
            tracing::debug!(closed = all.len(), "parked idle connections closed at stop");
        }
        all.into_iter().for_each(close_entry);
    }

    /// A reload made `sh` the newest generation: parked connections of listeners it no longer
    /// has close now (idle connections of a removed listener close, as at shutdown), a batch
    /// at a time (`Closing::start`).
    pub fn close_removed(&self, sh: &Shared) {
        let gone = self.take_where(|e| sh.listener_on(e.active.port).is_none());
        Closing(gone.into_iter()).start();
    }

    /// Handles the ready sockets: a hang-up or error closes its entry, anything else (bytes,
    /// the client's FIN) resumes it. Returns whether the epoll instance was found empty.
    fn poll_events(&self, events: &mut [libc::epoll_event]) -> bool {
        let mut handled = 0;
        while handled < PER_WAKE {
            // SAFETY: `events` is a valid buffer of `events.len()` entries; timeout 0.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    0,
                )
            };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return true;
            }
            let n = n as usize;
            let mut ready = Vec::with_capacity(n);
            {
                let mut t = self.lock();
                for ev in &events[..n] {
                    let (data, flags) = (ev.u64, ev.events);
                    if let Some(e) = Self::take(&mut t, data as u32, (data >> 32) as u32) {
                        ready.push((e, flags));
                    }
                }
            }
            for (e, flags) in ready {
                if flags & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    close_entry(e);
                } else {
                    // Out of the lot's epoll before tokio's registration (a one-shot entry
                    // stays in the set, disarmed, until removed or closed).
                    let _ = self.ctl(libc::EPOLL_CTL_DEL, e.tcp.as_raw_fd(), 0);
                    self.resume(e);
                }
            }
            handled += n;
            if n < events.len() {
                return true;
            }
        }
        false
    }

    /// A fresh connection task for a parked connection that turned readable, in the newest
    /// generation; one whose listener a reload removed closes (as it would at its next idle
    /// wait).
    fn resume(&self, e: Entry) {
        let Entry {
            tcp,
            active,
            life_until,
            deadline,
        } = e;
        let sh = active.sh.newest().unwrap_or_else(|| active.sh.clone());
        let Some(listener) = sh.listener_on(active.port).cloned() else {
            close(tcp);
            return;
        };
        let peer = match tcp.peer_addr() {
            Ok(p) => p,
            // Reset by the client meanwhile: closed, counted out.
            Err(_) => return,
        };
        let tcp = match tokio::net::TcpStream::from_std(tcp) {
            Ok(t) => t,
            Err(err) => {
                // Dropping the socket and its guard closes it and counts it out.
                tracing::debug!(%peer, error = %err, "cannot resume a parked connection: closed");
                return;
            }
        };
        let local = crate::pipeline::local_ip(&listener.config, || tcp.local_addr());
        let ci = Arc::new(ConnInfo::new(
            &sh,
            listener,
            peer,
            local,
            None,
            sh.h1_state.clone(),
        ));
        let r = Resumed {
            life_until: self.instant(life_until),
            deadline: self.instant(deadline),
        };
        tokio::spawn(crate::h1::server::resume(
            sh,
            ci,
            ClientStream::Plain(tcp),
            active,
            h2c,
            r,
        ));
    }
}

/// What [`Lot::make_room`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadeRoom {
    /// Idle connections closed (parked) or woken to close (waiting in their tasks).
    pub closed: usize,
    /// Whether the new connection may be taken.
    pub take: bool,
}

/// Parked connections taken out of the lot, closed [`CLOSE_BATCH`] at a time with the worker's
/// other tasks run in between, so that a mass close (thousands reaching their idle timeout in
/// one tick, a reload removing their listener) does not stall the connections still served.
/// They no longer count as parked; each counts as active until it is closed.
#[must_use = "the connections close when `start` is called, or when dropped"]
pub struct Closing(std::vec::IntoIter<Entry>);

impl Closing {
    fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Closes the first batch now and the rest in a task of their own (outside a runtime, all
    /// now: dropped, a `Closing` closes what it holds).
    pub fn start(mut self) {
        self.close_batch();
        if !self.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(self.close());
        }
    }

    /// Closes them all, yielding to the worker's other tasks after every batch.
    async fn close(mut self) {
        loop {
            self.close_batch();
            if self.is_empty() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    fn close_batch(&mut self) {
        self.0.by_ref().take(CLOSE_BATCH).for_each(close_entry);
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        // Each entry left closes quietly, as `close_entry` does (dropping the socket alone
        // would not send the FIN before unread bytes).
        self.0.by_ref().for_each(close_entry);
    }
}

fn close_entry(e: Entry) {
    close(e.tcp);
    // `e.active` drops here: the connection is counted out.
}

/// The engine's quiet close: FIN, unread bytes read away (so the kernel does not answer them
/// with a reset), close(2).
fn close(tcp: std::net::TcpStream) {
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match (&tcp).read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// The lot's epoll descriptor, as `AsyncFd` wants it: the lot owns it, and this keeps the lot.
struct EpollFd(Arc<Lot>);
impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.epoll.as_raw_fd()
    }
}

/// The lot's task: resumes parked connections as they turn readable, until the worker stops
/// (then closes every parked connection).
pub async fn run(lot: Arc<Lot>, mut shutdown: watch::Receiver<bool>) {
    // SAFETY: the descriptor is the lot's, open until the lot drops, and `EpollFd` keeps the
    // lot for as long as the `AsyncFd` lives.
    let registered =
        unsafe { AsyncFd::register_with_interest(EpollFd(lot.clone()), Interest::READABLE) };
    let afd = match registered {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "parking lot: cannot watch its epoll instance; idle connections keep their tasks");
            lot.stop();
            return;
        }
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    loop {
        tokio::select! {
            r = afd.readable() => match r {
                Ok(mut g) => {
                    if lot.poll_events(&mut events) {
                        g.clear_ready();
                    } else {
                        drop(g);
                        tokio::task::yield_now().await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "parking lot: epoll readiness failed; parked connections closed");
                    lot.stop();
                    return;
                }
            },
            _ = stopped(&mut shutdown) => {
                lot.stop();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parked connection costs the worker is its slot (and a deadline in the heap).
    #[test]
    fn a_parked_connection_is_a_64_byte_slot() {
        assert!(
            std::mem::size_of::<Slot>() <= 64,
            "{}",
            std::mem::size_of::<Slot>()
        );
        assert_eq!(std::mem::size_of::<Reverse<(u64, u32, u32)>>(), 16);
    }

    static RELEASED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn count_release() {
        RELEASED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// The allocator is asked to give memory back after connections parked in bulk, at most
    /// once a second, from the ticker.
    #[test]
    fn memory_is_released_after_parking_in_bulk_at_most_once_a_second() {
        let released = || RELEASED.load(std::sync::atomic::Ordering::SeqCst);
        let lot = Lot::new(Some(count_release)).unwrap();
        let t0 = Instant::now();
        lot.lock().parked_since_release = RELEASE_AFTER - 1;
        assert!(lot.tick(t0).is_empty());
        assert_eq!(released(), 0, "not for a few");
        lot.lock().parked_since_release = RELEASE_AFTER;
        lot.tick(t0).start();
        assert_eq!(released(), 1);
        lot.lock().parked_since_release = RELEASE_AFTER;
        lot.tick(t0 + RELEASE_EVERY / 2).start();
        assert_eq!(released(), 1, "not twice within RELEASE_EVERY");
        lot.tick(t0 + RELEASE_EVERY).start();
        assert_eq!(released(), 2);
    }

    #[test]
    fn the_slab_grows_by_chunks_and_reuses_freed_slots() {
        let mut t = Inner::default();
        let first: Vec<u32> = (0..CHUNK + 1).map(|_| t.vacant()).collect();
        assert_eq!(t.chunks.len(), 2);
        assert_eq!(first[..3], [0, 1, 2], "in order");
        assert!(t.slot(first[CHUNK]).is_some());
        t.free.push(7);
        assert_eq!(t.vacant(), 7);
        assert!(t.slot((2 * CHUNK) as u32).is_none());
    }
}
