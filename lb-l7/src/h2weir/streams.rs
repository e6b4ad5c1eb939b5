//! The streams of one connection, polled by the connection's task itself: a slot per stream
//! (reused), each with a waker of its own that queues the slot on the connection's [`Ready`]
//! list and wakes the task (like `FuturesUnordered`, but the task decides what a woken slot
//! polls: the request's future, or the response body only while the stream can take more).
//! A request body consumed (or dropped) queues its slot for `release_capacity` the same way.

use super::recv::RecvShared;
use crate::h2conn::StreamId;
use crate::http2::service::ResponseBody;
use http::Response;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Release};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

/// A request's phases through the pipeline (`crate::http2::service::handle`).
pub(super) type RequestFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

/// What the connection's task must look at, filled by wakers (any task of the worker).
#[derive(Default)]
pub(super) struct Ready {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    /// Slots whose future or body was woken.
    poll: Vec<usize>,
    /// Slots whose request body consumed bytes or was dropped.
    release: Vec<usize>,
    /// The connection task's waker, while it is not running.
    task: Option<Waker>,
    /// The connection task is running and will look at the lists before it sleeps.
    running: bool,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, idx: usize, release: bool) {
        let mut r = self.lock();
        if release {
            r.release.push(idx);
        } else {
            r.poll.push(idx);
        }
        if !r.running
            && let Some(w) = r.task.take()
        {
            drop(r);
            w.wake();
        }
    }

    /// A slot's request body consumed bytes or was dropped.
    pub(super) fn release(&self, idx: usize) {
        self.push(idx, true);
    }

    /// The task starts a turn: wakes during it are seen by the turn itself.
    pub(super) fn begin(&self) {
        self.lock().running = true;
    }

    /// Moves the queued slots into `poll` and `release`; when both stay empty, the task goes to
    /// sleep with `waker` (a wake from now on wakes it).
    pub(super) fn take_or_sleep(
        &self,
        poll: &mut Vec<usize>,
        release: &mut Vec<usize>,
        waker: Option<&Waker>,
    ) {
        let mut r = self.lock();
        poll.append(&mut r.poll);
        release.append(&mut r.release);
        if let Some(w) = waker
            && poll.is_empty()
            && release.is_empty()
        {
            r.running = false;
            match &r.task {
                Some(t) if t.will_wake(w) => {}
                _ => r.task = Some(w.clone()),
            }
        }
    }
}

/// The waker of one slot.
struct SlotWaker {
    idx: usize,
    ready: Arc<Ready>,
    /// Queued and not polled yet (one entry per wake-up burst).
    queued: AtomicBool,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, AcqRel) {
            self.ready.push(self.idx, false);
        }
    }
}

/// Where a stream's response is. `Sending` holds the response body inline (a target's body
/// is not boxed: `ResponseBody`), larger than the rest: one per stream slot, reused.
#[allow(clippy::large_enum_variant)]
pub(super) enum Phase {
    /// The request is in the pipeline.
    Handling(RequestFuture),
    /// The head was sent; the body is pulled while the stream can take more.
    Sending(ResponseBody),
    /// The response's data is all queued; its END_STREAM waits for the request to end (or its
    /// body to be dropped). The protocol core resets a stream whose response ends while its
    /// request body still comes (RFC 9113 §8.1), and a response of weir's own may leave the
    /// body to be read away first (`crate::http2::unread`), as hyper's path does: so a client
    /// that sends its whole body is not reset.
    Ended,
    /// The response ended (or the stream was reset by weir).
    Done,
}

pub(super) struct Stream {
    pub id: StreamId,
    pub phase: Phase,
    /// The request body's shared state while the body exists and may get more bytes.
    pub recv: Option<Arc<RecvShared>>,
    /// The client ended the request (END_STREAM seen).
    pub recv_ended: bool,
}

struct Slot {
    stream: Option<Stream>,
    waker: Arc<SlotWaker>,
}

/// Stream ids are distinct small integers: hashing them is a waste.
#[derive(Default)]
pub(super) struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0 << 8 | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

/// The streams of a connection.
pub(super) struct Streams {
    slots: Vec<Slot>,
    free: Vec<usize>,
    by_id: HashMap<StreamId, usize, BuildHasherDefault<IdHasher>>,
    pub ready: Arc<Ready>,
}

impl Streams {
    pub fn new() -> Streams {
        Streams {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::default(),
            ready: Arc::new(Ready::default()),
        }
    }

    /// The slot a new stream goes into (its index, for the request body's notifications).
    pub fn vacant(&mut self) -> usize {
        if let Some(i) = self.free.last() {
            return *i;
        }
        let idx = self.slots.len();
        self.slots.push(Slot {
            stream: None,
            waker: Arc::new(SlotWaker {
                idx,
                ready: self.ready.clone(),
                queued: AtomicBool::new(false),
            }),
        });
        self.free.push(idx);
        idx
    }

    /// Puts `s` into the slot `vacant` returned.
    pub fn insert(&mut self, idx: usize, s: Stream) {
        if self.free.last() == Some(&idx) {
            self.free.pop();
        } else {
            self.free.retain(|&i| i != idx);
        }
        self.by_id.insert(s.id, idx);
        self.slots[idx].stream = Some(s);
    }

    pub fn index_of(&self, id: StreamId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The stream in `idx` and its waker (cleared of its queued mark: a wake from now on
    /// queues it again).
    pub fn get(&mut self, idx: usize) -> Option<(&mut Stream, Waker)> {
        let slot = self.slots.get_mut(idx)?;
        let s = slot.stream.as_mut()?;
        slot.waker.queued.store(false, Release);
        Some((s, Waker::from(slot.waker.clone())))
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Stream> {
        self.slots.get_mut(idx)?.stream.as_mut()
    }

    /// Drops the stream in its slot (its future and body with it) and frees the slot.
    pub fn remove(&mut self, idx: usize) {
        let Some(slot) = self.slots.get_mut(idx) else {
            return;
        };
        let Some(id) = slot.stream.as_ref().map(|s| s.id) else {
            return;
        };
        slot.stream = None;
        self.by_id.remove(&id);
        self.free.push(idx);
    }

    /// Every stream, taken out (the connection ends).
    pub fn drain(&mut self) -> Vec<Stream> {
        self.by_id.clear();
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(s) = slot.stream.take() {
                out.push(s);
                self.free.push(i);
            }
        }
        out
    }
}
