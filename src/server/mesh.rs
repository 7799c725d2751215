//! Cross-core plumbing: one channel into each worker, and the write-queue gauges that
//! make backpressure work across cores.
//!
//! The channels are unbounded so that two workers sending to each other can never
//! deadlock; memory stays bounded because every reader checks the gauge of the
//! connection its frame is feeding before it reads more (see `worker.rs`): a gauge is
//! the number of bytes queued on one connection, readable from any core.
//!
//! Each channel has a doorbell: the receiving worker's mesh task registers its waker,
//! and a sender wakes it only when no wake is pending already (an atomic flag says so,
//! re-armed by the receiver before it drains). The waker is monoio's own (its `sync`
//! feature): woken from another thread it queues the task on its runtime and writes
//! that runtime's eventfd only if the runtime is parked, so a busy receiver costs the
//! sender no system call. (A Unix socket pair rang with a byte did this before: a
//! `sendmsg` and a completed read per wake, busy or not, 2026-12-07.) Readers waiting
//! for a queue on another core re-check its gauge on a short timer (such waits only
//! happen while a receiver is slower than its sender); waits on their own core use that
//! core's drain event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_util::task::AtomicWaker;

use bytes::Bytes;

use super::Control;
use crate::conn::{ConnId, Origin, Part};
use crate::relay::RelayMsg;

/// How often a reader re-checks a queue on another core while it waits for it to drain.
const REMOTE_RECHECK: Duration = Duration::from_micros(500);

impl Envelope {
    /// Bytes it will queue on a connection of the receiving core.
    pub fn payload_len(&self) -> usize {
        match self {
            Envelope::Write { bytes, .. } => bytes.len(),
            Envelope::Relay(m) => m.payload_len(),
            Envelope::Ua(UaMsg::Body { bytes, .. }) => bytes.len(),
            Envelope::Ua(_) => 0,
            Envelope::Control(_) | Envelope::HopMark(_) | Envelope::Sip(_) => 0,
        }
    }
}

/// What travels into a worker: the engine-neutral envelope. Bytes for one of its
/// connections, a message for one of its engines, or a command from the main thread.
#[derive(Debug)]
pub enum Envelope {
    /// Bytes for a connection of the receiving core, from an engine of another.
    Write {
        conn: ConnId,
        bytes: Bytes,
        part: Part,
    },
    /// For the receiving core's relay.
    Relay(RelayMsg),
    /// The envelope after this one carries the sampled frame of a read that completed
    /// at this instant on the sending core (see [`super::hop`]).
    HopMark(Instant),
    /// A SIP response that reached this core's socket for a request the receiving
    /// core sent (its branch names that core, see `sip::ids`).
    Sip(Box<(crate::sip::txn::Peer, crate::sip::Message)>),
    /// For the receiving core's user agent: a frame of one of its sessions read on a
    /// connection of the sending core, or a request to close such a connection.
    Ua(UaMsg),
    Control(Control),
}

/// What crosses cores for the user agent: a session lives on the core that took its
/// INVITE, its MSRP connection wherever SO_REUSEPORT put it (ARCHITECTURE.md).
#[derive(Debug)]
pub enum UaMsg {
    Head {
        conn: ConnId,
        head: crate::codec::RawHead,
    },
    Body {
        conn: ConnId,
        bytes: Bytes,
    },
    End {
        conn: ConnId,
        flag: crate::codec::Flag,
    },
    /// The connection (of the sending core) is gone.
    Closed(ConnId),
    /// Close this connection of the receiving core.
    Close(ConnId, crate::conn::CloseReason),
}

struct Bell {
    /// `true` while a ring is pending (the receiver has not drained since).
    rung: AtomicBool,
    /// The receiving worker's mesh task.
    waker: AtomicWaker,
}

/// The sending side of a worker's channel (any thread).
#[derive(Clone)]
pub struct MeshSender {
    tx: mpsc::Sender<Envelope>,
    bell: Arc<Bell>,
}

impl MeshSender {
    /// Queues `env` and rings the doorbell if the receiver may be asleep. Fails only
    /// when the receiving worker is gone.
    pub fn send(&self, env: Envelope) -> Result<(), Envelope> {
        self.tx.send(env).map_err(|e| e.0)?;
        // Look before swapping: while a ring is pending (the common case under load) the
        // flag's cache line stays shared between the cores instead of bouncing for every
        // message. Seeing `true` is as good as swapping it: the receiver has yet to re-arm,
        // and drains after it does, so it finds what was queued above.
        if !self.bell.rung.load(Ordering::SeqCst) && !self.bell.rung.swap(true, Ordering::SeqCst) {
            self.bell.waker.wake();
        }
        Ok(())
    }
}

/// The receiving side, owned by one worker.
pub struct MeshReceiver {
    rx: mpsc::Receiver<Envelope>,
    bell: Arc<Bell>,
}

impl MeshReceiver {
    /// Re-arms the doorbell; call before draining with [`MeshReceiver::try_recv`].
    pub fn rearm(&self) {
        self.bell.rung.store(false, Ordering::SeqCst);
    }

    pub fn try_recv(&self) -> Option<Envelope> {
        self.rx.try_recv().ok()
    }

    /// Ready once a sender has rung since the last [`MeshReceiver::rearm`]. The waker is
    /// registered before the flag is read, so a ring in between is not lost.
    pub fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.bell.waker.register(cx.waker());
        if self.bell.rung.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One channel per worker: every worker gets all senders.
pub fn channels(workers: usize) -> std::io::Result<(Vec<MeshSender>, Vec<MeshReceiver>)> {
    let mut senders = Vec::with_capacity(workers);
    let mut receivers = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, rx) = mpsc::channel();
        let bell = Arc::new(Bell {
            rung: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        senders.push(MeshSender {
            tx,
            bell: bell.clone(),
        });
        receivers.push(MeshReceiver { rx, bell });
    }
    Ok((senders, receivers))
}

/// Queued bytes per connection slot, per core, and a drain event per core.
pub struct Gauges {
    queued: Vec<Box<[AtomicUsize]>>,
    /// Bytes still queued of the frame on the wire of a connection (see
    /// `crate::conn::queue`): its reader is bounded by these alone.
    active_pending: Vec<Box<[AtomicUsize]>>,
    /// The origin of the frame on the wire of a connection, packed (0: none).
    active: Vec<Box<[AtomicU64]>>,
    /// Bytes of whole frames (responses, REPORTs made for the peer) queued on a
    /// connection: what its own reader is bounded by (see [`Gauges::has_room`]).
    whole: Vec<Box<[AtomicUsize]>>,
    /// Bytes sent to each core over its channel and not yet handled there: queued on no
    /// connection yet, so counted here, and readers feeding that core wait while it is
    /// over the high-water mark (a core that falls behind must not let them pile up).
    transit: Vec<AtomicUsize>,
    drained: Vec<Event>,
    /// Readers of each core waiting on its drain event: notifying an event takes its
    /// lock even with nobody listening, and queues change on every write, so it is
    /// notified only when this is non-zero.
    waiting: Vec<AtomicUsize>,
}

/// Counts a reader in [`Gauges::waiting`] while it exists (also when its wait is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Packs an origin into a non-zero word for [`Gauges`].
fn pack(o: Origin) -> u64 {
    match o {
        Origin::Conn(c) => {
            1 << 63
                | u64::from(c.core) << 48
                | u64::from(c.slot) << 16
                | u64::from(c.generation & 0xffff)
        }
        Origin::Internal(core) => 1 << 62 | u64::from(core),
    }
}

impl Gauges {
    pub fn new(workers: usize, slots: usize) -> Gauges {
        let table = || -> Vec<Box<[AtomicUsize]>> {
            (0..workers)
                .map(|_| (0..slots).map(|_| AtomicUsize::new(0)).collect())
                .collect()
        };
        Gauges {
            queued: table(),
            active_pending: table(),
            whole: table(),
            transit: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            active: (0..workers)
                .map(|_| (0..slots).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            drained: (0..workers).map(|_| Event::new()).collect(),
            waiting: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Records the frame on the wire of `(core, slot)` and its bytes still queued. Only
    /// the owning core writes these; a change of frame wakes the core's waiting readers.
    pub fn set_active(&self, core: u16, slot: u32, active: Option<(Origin, usize)>) {
        let (Some(a), Some(p)) = (
            self.active
                .get(usize::from(core))
                .and_then(|q| q.get(slot as usize)),
            self.active_pending
                .get(usize::from(core))
                .and_then(|q| q.get(slot as usize)),
        ) else {
            return;
        };
        let (key, pending) = active.map_or((0, 0), |(o, n)| (pack(o), n));
        p.store(pending, Ordering::Release);
        if a.swap(key, Ordering::AcqRel) != key {
            self.notify(core);
        }
    }

    /// Whether a reader feeding `(core, slot)` may read more: the frame on the wire
    /// there while its own queued bytes are under `high` (so a frame that holds the
    /// others can always finish), anyone else while the whole queue is.
    ///
    /// Without `me` (a connection's reader checking its own queue) only the whole frames
    /// made for that peer count: a peer that sends requests and does not read their
    /// answers is stopped, one that receives a big message from someone else still gets
    /// its own requests read (and answered) meanwhile.
    fn has_room(&self, core: u16, slot: u32, high: usize, me: Option<Origin>) -> bool {
        let Some(me) = me else {
            return self
                .whole
                .get(usize::from(core))
                .and_then(|q| q.get(slot as usize))
                .is_none_or(|w| w.load(Ordering::Acquire) < high);
        };
        let (i, j) = (usize::from(core), slot as usize);
        let on_wire = self
            .active
            .get(i)
            .and_then(|q| q.get(j))
            .is_some_and(|a| a.load(Ordering::Acquire) == pack(me));
        if on_wire {
            self.active_pending
                .get(i)
                .and_then(|q| q.get(j))
                .is_none_or(|p| p.load(Ordering::Acquire) < high)
        } else {
            self.get(core, slot) < high
        }
    }

    /// Records the bytes of whole frames queued on `(core, slot)` (its own core only).
    pub fn set_whole(&self, core: u16, slot: u32, n: usize) {
        if let Some(w) = self
            .whole
            .get(usize::from(core))
            .and_then(|q| q.get(slot as usize))
        {
            w.store(n, Ordering::Release);
        }
    }

    /// `n` bytes are on their way to `core` over its channel.
    pub fn add_transit(&self, core: u16, n: usize) {
        if let Some(t) = self.transit.get(usize::from(core)) {
            t.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// `core` handled `n` bytes that came over its channel.
    pub fn sub_transit(&self, core: u16, n: usize) {
        if let Some(t) = self.transit.get(usize::from(core)) {
            t.fetch_sub(n, Ordering::AcqRel);
        }
    }

    fn transit_of(&self, core: u16) -> usize {
        self.transit
            .get(usize::from(core))
            .map_or(0, |t| t.load(Ordering::Acquire))
    }

    /// Slots per core.
    pub fn capacity(&self) -> usize {
        self.queued.first().map_or(0, |q| q.len())
    }

    /// Bytes queued on `(core, slot)`; 0 for a slot out of range.
    pub fn get(&self, core: u16, slot: u32) -> usize {
        self.queued
            .get(usize::from(core))
            .and_then(|q| q.get(slot as usize))
            .map_or(0, |g| g.load(Ordering::Acquire))
    }

    pub fn add(&self, core: u16, slot: u32, n: usize) {
        if let Some(g) = self.slot(core, slot) {
            g.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// Removes `n` bytes and wakes readers waiting on this core's queues.
    pub fn sub(&self, core: u16, slot: u32, n: usize) {
        if let Some(g) = self.slot(core, slot) {
            g.fetch_sub(n, Ordering::AcqRel);
        }
        self.notify(core);
    }

    fn notify(&self, core: u16) {
        let i = usize::from(core);
        // Pairs with the fence in `wait_below`: either the waiter sees the queue change
        // made before this, or this sees the waiter counted.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self
            .waiting
            .get(i)
            .is_some_and(|w| w.load(Ordering::SeqCst) > 0)
            && let Some(e) = self.drained.get(i)
        {
            e.notify(usize::MAX);
        }
    }

    fn slot(&self, core: u16, slot: u32) -> Option<&AtomicUsize> {
        self.queued.get(usize::from(core))?.get(slot as usize)
    }

    /// Waits until less than `high` bytes are on their way to `core` (a reader handing
    /// frames to another core's engine, whose queues are not a connection's).
    pub async fn wait_transit_below(&self, core: u16, high: usize) {
        while self.transit_of(core) >= high {
            monoio::time::sleep(REMOTE_RECHECK).await;
        }
    }

    /// Waits until `(core, slot)` holds less than `high` bytes. `here` is the calling
    /// worker's core: its own queues wake it through their drain event; a queue on
    /// another core is re-checked on a short timer.
    ///
    /// `me` is the origin whose frame the caller is feeding to `(core, slot)`, if any.
    pub async fn wait_below(
        &self,
        here: u16,
        core: u16,
        slot: u32,
        high: usize,
        me: Option<Origin>,
    ) {
        loop {
            // A queue on another core also waits for what is already on its way there.
            let transit_ok = core == here || self.transit_of(core) < high;
            if transit_ok && self.has_room(core, slot, high, me) {
                return;
            }
            if core != here {
                monoio::time::sleep(REMOTE_RECHECK).await;
                continue;
            }
            let (Some(ev), Some(waiting)) = (
                self.drained.get(usize::from(core)),
                self.waiting.get(usize::from(core)),
            ) else {
                return;
            };
            let listener = ev.listen();
            waiting.fetch_add(1, Ordering::SeqCst);
            let _counted = Waiting(waiting);
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.has_room(core, slot, high, me) {
                return;
            }
            listener.await;
        }
    }
}
