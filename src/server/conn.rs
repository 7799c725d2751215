//! One connection's shared state and its writer task.
//!
//! Each connection has a reader task (in `worker.rs`, it feeds the engines) and a writer
//! task (here). What goes out next is decided by the connection's [`SendQueue`]
//! (`crate::conn::queue`: frame order, interruption and fairness); the writer takes its
//! bytes, `Bytes` shared with the read buffers they came from, and writes them with
//! `writev`. The queue's size and the frame on the wire are mirrored into the cross-core
//! [`Gauges`] for backpressure.
//!
//! A connection is closed from outside by `shutdown(2)` on its socket: the reader's
//! pending read then returns end-of-file, so no in-flight read is ever cancelled.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes};
use monoio::io::{AsyncWriteRent, CancelHandle, Canceller};

use super::hop::HopHistogram;
use super::mesh::Gauges;
use crate::conn::{ConnId, Origin, Part, QueueEvent, SendQueue};

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Bytes taken from the queue for one `writev`: a frame queued while a write is blocked on
/// a slow peer waits for all of it, so not the whole high-water mark at once
/// (msrpd-fairness showed ~1 MiB batches ahead of small frames).
const WRITE_BATCH: usize = 256 * 1024;

/// A connection as the worker sees it.
pub struct ConnHandle {
    pub id: ConnId,
    pub peer: String,
    /// An outbound connection (to a next hop), for the side of its close reasons.
    pub outbound: bool,
    /// An outbound connection the user agent opened (its frames are the user agent's).
    pub for_ua: Cell<bool>,
    /// Counted in `connections_open` by the worker (a user agent connection; the relay
    /// counts its own).
    pub ua_counted: Cell<bool>,
    queue: RefCell<SendQueue>,
    /// Bytes taken from the queue whose write has not finished.
    in_flight: Cell<usize>,
    writer: RefCell<Option<Waker>>,
    closing: Cell<bool>,
    /// The worker has forgotten this connection (its slot is free again).
    finished: Cell<bool>,
    fd: Cell<Option<RawFd>>,
    /// Halves of the socket still alive (the fd is open while this is > 0).
    halves: Cell<u8>,
    /// Source address counted by the connection limiter (inbound connections).
    pub limit_ip: Cell<Option<IpAddr>>,
    /// Since when a header block has been arriving without being complete.
    pub head_since: Cell<Option<Instant>>,
    /// Since when the reader has been waiting for more of a frame's body.
    pub body_wait_since: Cell<Option<Instant>>,
    /// Since when the reader has waited on an empty buffer (no part of a frame held),
    /// when it can give that wait up ([`ConnHandle::park`]).
    pub idle_since: Cell<Option<Instant>>,
    /// Cancels the reader's wait on an empty buffer.
    park: RefCell<Canceller>,
    /// Whether the gauges show a frame on the wire: when neither the queue nor they do,
    /// nothing needs publishing (small frames go on and off the wire in one take).
    shown_active: Cell<bool>,
    /// A sampled frame queued here (see [`super::hop`]): when its read completed, and how
    /// many queued bytes (its own included) must still be written before it is out.
    hop_mark: Cell<Option<(Instant, usize)>>,
}

impl ConnHandle {
    pub fn new(id: ConnId, peer: String, outbound: bool) -> ConnHandle {
        ConnHandle {
            id,
            peer,
            outbound,
            for_ua: Cell::new(false),
            ua_counted: Cell::new(false),
            queue: RefCell::new(SendQueue::new()),
            in_flight: Cell::new(0),
            writer: RefCell::new(None),
            closing: Cell::new(false),
            finished: Cell::new(false),
            fd: Cell::new(None),
            halves: Cell::new(0),
            limit_ip: Cell::new(None),
            head_since: Cell::new(None),
            body_wait_since: Cell::new(None),
            idle_since: Cell::new(None),
            park: RefCell::new(Canceller::new()),
            shown_active: Cell::new(false),
            hop_mark: Cell::new(None),
        }
    }

    /// Records the socket once connected; both halves are alive from here on.
    pub fn attach(&self, fd: RawFd) {
        self.fd.set(Some(fd));
        self.halves.set(2);
    }

    /// A task dropped its half of the socket.
    pub fn half_done(&self) {
        let h = self.halves.get().saturating_sub(1);
        self.halves.set(h);
        if h == 0 {
            self.fd.set(None);
        }
    }

    /// What the reader's cancelable wait on an empty buffer is given.
    pub fn park_handle(&self) -> CancelHandle {
        self.park.borrow().handle()
    }

    /// Gives up the reader's wait on an empty buffer: the read returns `ECANCELED` (or
    /// what it read, if that came first: nothing is lost) and the reader waits again
    /// on a buffer of a few bytes. An idle connection then holds no read buffer.
    pub fn park(&self) {
        self.idle_since.set(None);
        let c = std::mem::take(&mut *self.park.borrow_mut());
        *self.park.borrow_mut() = c.cancel();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Marks the connection forgotten by the worker; `false` if it already was.
    pub fn finish(&self) -> bool {
        !self.finished.replace(true)
    }

    /// Bytes waiting to be written (queued or being written).
    pub fn queued(&self) -> usize {
        self.queue.borrow().queued() + self.in_flight.get()
    }

    /// Queues one part of a frame ([`SendQueue::push`]). Dropped when the connection is
    /// closing.
    pub fn push(&self, gauges: &Gauges, bytes: Bytes, part: Part) {
        if self.closing.get() {
            return;
        }
        let n = bytes.len();
        let mut q = self.queue.borrow_mut();
        let origin = match part {
            Part::Start(o, _) | Part::Middle(o) | Part::End(o) => Some(o),
            Part::Whole => None,
        };
        if !q.push(bytes, part) {
            // A piece of a frame whose head never came here: nothing to attach to.
            tracing::debug!(slot = self.id.slot, "stray frame piece dropped");
            return;
        }
        gauges.add(self.id.core, self.id.slot, n);
        match origin {
            None => gauges.set_whole(self.id.core, self.id.slot, q.whole_bytes()),
            // Only bytes for the frame on the wire change what its reader may read.
            Some(o) => {
                if let Some((active, _)) = q.active()
                    && o == active
                {
                    self.show_active(gauges, q.active());
                }
            }
        }
        // A busy writer takes the bytes on its next round; only an idle one is woken.
        if self.writer.borrow().is_some() && q.has_work() {
            drop(q);
            self.wake_writer();
        }
    }

    fn wake_writer(&self) {
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    /// Stops reading now; the writer flushes what is queued, then closes the socket.
    pub fn close(&self) {
        self.closing.set(true);
        self.shutdown(libc::SHUT_RD);
        self.wake_writer();
    }

    /// Marks the connection finished from the reader's side; the writer drains and exits.
    pub fn reader_done(&self) {
        self.closing.set(true);
        self.wake_writer();
    }

    /// Closes both directions now, waking a pending read.
    pub fn abort(&self) {
        self.closing.set(true);
        self.shutdown(libc::SHUT_RDWR);
        self.wake_writer();
    }

    /// Acknowledges what was read now instead of after the delayed-ACK timer
    /// (TCP_QUICKACK, which the kernel clears again by itself). For a read that ended
    /// inside a frame: a peer with Nagle's algorithm on (no TCP_NODELAY) holds the rest
    /// of the frame until its first part is acknowledged, and the relay has nothing to
    /// send back before the end-line (its 200 comes then, RFC 4975 §7.1), so without this
    /// every such frame waits out the peer's delayed ACK, about 40 ms on Linux.
    pub fn ack_now(&self) {
        if self.halves.get() > 0
            && let Some(fd) = self.fd.get()
        {
            // SAFETY: as in `shutdown`: the socket is open while a half is alive, and
            // the borrow ends with this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = socket2::SockRef::from(&fd).set_tcp_quickack(true);
        }
    }

    fn shutdown(&self, how: i32) {
        if self.halves.get() > 0
            && let Some(fd) = self.fd.get()
        {
            // SAFETY: `fd` belongs to a socket that is still open: at least one of its
            // halves is alive (`halves > 0`), and they close it only when dropped.
            unsafe {
                libc::shutdown(fd, how);
            }
        }
    }

    /// Drops whatever is still queued (the peer is gone) and settles the gauges.
    fn discard_queue(&self, gauges: &Gauges) {
        self.hop_mark.set(None);
        let n = self.queue.borrow_mut().clear();
        if n > 0 {
            gauges.sub(self.id.core, self.id.slot, n);
        }
        gauges.set_whole(self.id.core, self.id.slot, 0);
        self.show_active(gauges, None);
    }

    /// Marks the frame just queued as the sampled one of its read (`at`), unless a
    /// sampled frame is still waiting here; it counts as written once every byte queued
    /// up to now has been written (responses that jump the queue make this an upper
    /// bound).
    pub fn mark_hop(&self, at: Instant) {
        let queued = self.queued();
        if self.hop_mark.get().is_none() && queued > 0 {
            self.hop_mark.set(Some((at, queued)));
        }
    }

    /// Takes the next bytes to write into `out`; returns the queue's bytes taken (now in
    /// flight) and what the queue did that the engines must hear of.
    fn take(
        &self,
        gauges: &Gauges,
        out: &mut Vec<Bytes>,
        max_bufs: usize,
        max_bytes: usize,
    ) -> (usize, Option<Vec<QueueEvent>>) {
        let mut q = self.queue.borrow_mut();
        let whole = q.whole_bytes();
        let n = q.fill(out, max_bufs, max_bytes);
        self.in_flight.set(self.in_flight.get() + n);
        if q.whole_bytes() != whole {
            gauges.set_whole(self.id.core, self.id.slot, q.whole_bytes());
        }
        self.show_active(gauges, q.active());
        let events = q.has_events().then(|| q.take_events());
        (n, events)
    }

    /// Publishes the frame on the wire to the gauges, unless neither side has one.
    fn show_active(&self, gauges: &Gauges, active: Option<(Origin, usize)>) {
        if active.is_some() || self.shown_active.get() {
            self.shown_active.set(active.is_some());
            gauges.set_active(self.id.core, self.id.slot, active);
        }
    }

    /// A write of `n` taken bytes finished (or failed).
    /// `n` bytes taken from the queue were written; the read instant of a sampled frame
    /// they completed.
    fn written(&self, gauges: &Gauges, n: usize) -> Option<Instant> {
        self.in_flight.set(self.in_flight.get() - n);
        gauges.sub(self.id.core, self.id.slot, n);
        let (at, left) = self.hop_mark.get()?;
        if n >= left {
            self.hop_mark.set(None);
            Some(at)
        } else {
            self.hop_mark.set(Some((at, left - n)));
            None
        }
    }
}

/// Buffers for one `writev`, owned while the kernel reads them.
struct IoVecs {
    iov: Vec<libc::iovec>,
    bufs: Vec<Bytes>,
}

// SAFETY: every iovec points into a `Bytes` held in `bufs`; `Bytes` memory never moves,
// and neither vector is touched while the runtime owns this value (during `writev`).
unsafe impl monoio::buf::IoVecBuf for IoVecs {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iov.as_ptr()
    }
    fn read_iovec_len(&self) -> usize {
        self.iov.len()
    }
}

impl IoVecs {
    fn rebuild(&mut self) {
        self.iov.clear();
        for b in &self.bufs {
            self.iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            });
        }
    }

    /// Drops the first `n` written bytes.
    fn advance(&mut self, mut n: usize) {
        let mut done = 0;
        for b in &mut self.bufs {
            if n >= b.len() {
                n -= b.len();
                done += 1;
            } else {
                b.advance(n);
                break;
            }
        }
        self.bufs.drain(..done);
    }
}

/// What the writer reports back: chunks its queue interrupted (the engine expects a
/// response for each new piece).
pub type OnEvents<'a> = &'a dyn Fn(Vec<QueueEvent>);

/// Writes the queue out until the connection closes. Returns when the writer is done;
/// the socket's write half is dropped by the caller.
///
/// Plain and TLS connections alike write with `writev`: msrpd's TLS stream
/// (`tls_stream.rs`) encrypts all the buffers of one `writev` together, so a frame's
/// head, body pieces and end-line share TLS records instead of each becoming one.
pub async fn write_loop<W: AsyncWriteRent>(
    h: &ConnHandle,
    gauges: &Arc<Gauges>,
    hop: &HopHistogram,
    w: &mut W,
    on_events: OnEvents<'_>,
) {
    writev_loop(h, gauges, hop, w, on_events).await;
    h.closing.set(true);
    h.discard_queue(gauges);
    let _ = w.shutdown().await;
    h.shutdown(libc::SHUT_RDWR);
}

/// Waits until there is something to write or the connection is closing.
async fn wait_for_work(h: &ConnHandle) {
    poll_fn(|cx| {
        if h.queue.borrow().has_work() || h.closing.get() {
            Poll::Ready(())
        } else {
            *h.writer.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
}

async fn writev_loop<W: AsyncWriteRent>(
    h: &ConnHandle,
    gauges: &Arc<Gauges>,
    hop: &HopHistogram,
    w: &mut W,
    on_events: OnEvents<'_>,
) {
    // Grown on first use: an idle connection holds no iovec space.
    let mut v = IoVecs {
        iov: Vec::new(),
        bufs: Vec::new(),
    };
    loop {
        wait_for_work(h).await;
        let (taken, events) = h.take(gauges, &mut v.bufs, MAX_IOVECS, WRITE_BATCH);
        if let Some(events) = events {
            on_events(events);
        }
        if v.bufs.is_empty() {
            if h.closing.get() && !h.queue.borrow().has_work() {
                break; // closing and nothing left
            }
            continue;
        }
        let ok = loop {
            v.rebuild();
            let (res, back) = w.writev(v).await;
            v = back;
            match res {
                Ok(0) | Err(_) => break false,
                Ok(n) => {
                    v.advance(n);
                    if v.bufs.is_empty() {
                        break true;
                    }
                }
            }
        };
        if let Some(at) = h.written(gauges, taken)
            && ok
        {
            hop.record(at.elapsed());
        }
        if !ok {
            v.bufs.clear();
            break;
        }
    }
}
