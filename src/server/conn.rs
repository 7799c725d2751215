//! One connection's shared state and its writer task.
//!
//! Each connection has a reader task (in `worker.rs`, it feeds the relay) and a writer
//! task (here). The write queue is ours, not monoio's `BufWriter`: it holds `Bytes`
//! shared with the read buffers they came from and writes them with `writev`. Its size
//! is mirrored into the cross-core [`Gauges`] for backpressure.
//!
//! A connection is closed from outside by `shutdown(2)` on its socket: the reader's
//! pending read then returns end-of-file, so no in-flight read is ever cancelled.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes};
use monoio::io::AsyncWriteRent;

use super::mesh::Gauges;
use crate::relay::{ConnId, Origin, Part};

/// Most buffers handed to one `writev`.
const MAX_IOVECS: usize = 64;
/// Bytes gathered into one write on a TLS connection: one full TLS record.
const TLS_WRITE: usize = 16 * 1024;

/// A connection as the worker sees it.
pub struct ConnHandle {
    pub id: ConnId,
    pub peer: String,
    queue: RefCell<VecDeque<Bytes>>,
    queued: Cell<usize>,
    writer: RefCell<Option<Waker>>,
    closing: Cell<bool>,
    fd: Cell<Option<RawFd>>,
    /// Halves of the socket still alive (the fd is open while this is > 0).
    halves: Cell<u8>,
    /// Source address counted by the connection limiter (inbound connections).
    pub limit_ip: Cell<Option<IpAddr>>,
    /// Since when a header block has been arriving without being complete.
    pub head_since: Cell<Option<Instant>>,
    /// Since when the reader has been waiting for more of a frame's body.
    pub body_wait_since: Cell<Option<Instant>>,
    /// The frame being streamed to this connection (between its Start and End).
    active: Cell<Option<Origin>>,
    /// Frames that arrived while another was being streamed, in order.
    held: RefCell<VecDeque<Held>>,
    held_bytes: Cell<usize>,
}

/// A frame held back until the one being streamed to the connection ends.
struct Held {
    /// `None` for a whole frame.
    key: Option<Origin>,
    bufs: Vec<Bytes>,
    done: bool,
}

impl ConnHandle {
    pub fn new(id: ConnId, peer: String) -> ConnHandle {
        ConnHandle {
            id,
            peer,
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            writer: RefCell::new(None),
            closing: Cell::new(false),
            fd: Cell::new(None),
            halves: Cell::new(0),
            limit_ip: Cell::new(None),
            head_since: Cell::new(None),
            body_wait_since: Cell::new(None),
            active: Cell::new(None),
            held: RefCell::new(VecDeque::new()),
            held_bytes: Cell::new(0),
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

    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.get()
    }

    /// Bytes held back behind the frame being streamed.
    pub fn held(&self) -> usize {
        self.held_bytes.get()
    }

    /// Queues one part of a frame for the writer, never letting two frames interleave:
    /// while a frame is being streamed here, parts of other frames are held and follow
    /// once it ends (RFC 4975 §7.1: a frame ends only at its own end-line). Dropped when
    /// the connection is closing.
    pub fn push(&self, gauges: &Gauges, bytes: Bytes, part: Part) {
        if self.closing.get() {
            return;
        }
        let busy = self.active.get().is_some() || !self.held.borrow().is_empty();
        match part {
            Part::Middle(k) | Part::End(k) if self.active.get() == Some(k) => {
                self.enqueue(gauges, bytes);
                if matches!(part, Part::End(_)) {
                    self.set_active(gauges, None);
                    self.promote(gauges);
                }
            }
            Part::Whole if !busy => self.enqueue(gauges, bytes),
            Part::Start(k) if !busy => {
                self.enqueue(gauges, bytes);
                self.set_active(gauges, Some(k));
            }
            _ => self.hold(gauges, bytes, part),
        }
    }

    fn enqueue(&self, gauges: &Gauges, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let n = bytes.len();
        self.queue.borrow_mut().push_back(bytes);
        self.queued.set(self.queued.get() + n);
        gauges.add(self.id.core, self.id.slot, n);
        self.wake_writer();
    }

    fn set_active(&self, gauges: &Gauges, key: Option<Origin>) {
        self.active.set(key);
        gauges.set_active(self.id.core, self.id.slot, key);
    }

    fn hold(&self, gauges: &Gauges, bytes: Bytes, part: Part) {
        let n = bytes.len();
        {
            let mut held = self.held.borrow_mut();
            match part {
                Part::Whole => held.push_back(Held {
                    key: None,
                    bufs: vec![bytes],
                    done: true,
                }),
                Part::Start(k) => held.push_back(Held {
                    key: Some(k),
                    bufs: vec![bytes],
                    done: false,
                }),
                Part::Middle(k) | Part::End(k) => {
                    let Some(h) = held.iter_mut().rev().find(|h| h.key == Some(k) && !h.done)
                    else {
                        // A piece of a frame whose head never came here: nothing to attach to.
                        tracing::debug!(slot = self.id.slot, "stray frame piece dropped");
                        return;
                    };
                    h.bufs.push(bytes);
                    h.done = matches!(part, Part::End(_));
                }
            }
        }
        self.held_bytes.set(self.held_bytes.get() + n);
        gauges.add_held(self.id.core, self.id.slot, n);
    }

    /// The streamed frame ended: release held frames in order, up to the next one that
    /// is still incomplete, which becomes the frame being streamed.
    fn promote(&self, gauges: &Gauges) {
        loop {
            let Some(front) = self.held.borrow_mut().pop_front() else {
                break;
            };
            let n: usize = front.bufs.iter().map(Bytes::len).sum();
            self.held_bytes.set(self.held_bytes.get() - n);
            gauges.sub_held(self.id.core, self.id.slot, n);
            for b in front.bufs {
                self.enqueue(gauges, b);
            }
            if !front.done {
                self.set_active(gauges, front.key);
                break;
            }
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

    /// Drops whatever is still queued or held (the peer is gone) and settles the gauges.
    fn discard_queue(&self, gauges: &Gauges) {
        self.queue.borrow_mut().clear();
        let n = self.queued.replace(0);
        if n > 0 {
            gauges.sub(self.id.core, self.id.slot, n);
        }
        self.held.borrow_mut().clear();
        let h = self.held_bytes.replace(0);
        if h > 0 {
            gauges.sub_held(self.id.core, self.id.slot, h);
        }
        self.set_active(gauges, None);
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

/// Writes the queue out until the connection closes. Returns when the writer is done;
/// the socket's write half is dropped by the caller.
///
/// With `gather` (TLS streams, whose `writev` writes only the first buffer), queued
/// pieces are copied into one buffer of up to a TLS record and written at once, so a
/// frame's head, body pieces and end-line do not each become a record and a syscall.
pub async fn write_loop<W: AsyncWriteRent>(
    h: &ConnHandle,
    gauges: &Arc<Gauges>,
    w: &mut W,
    gather: bool,
) {
    if gather {
        gather_loop(h, gauges, w).await;
    } else {
        writev_loop(h, gauges, w).await;
    }
    h.closing.set(true);
    h.discard_queue(gauges);
    let _ = w.shutdown().await;
    h.shutdown(libc::SHUT_RDWR);
}

/// Waits until there is something to write or the connection is closing.
async fn wait_for_work(h: &ConnHandle) {
    poll_fn(|cx| {
        if !h.queue.borrow().is_empty() || h.closing.get() {
            Poll::Ready(())
        } else {
            *h.writer.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
}

async fn gather_loop<W: AsyncWriteRent>(h: &ConnHandle, gauges: &Arc<Gauges>, w: &mut W) {
    use monoio::io::AsyncWriteRentExt;
    // Grown on first use, like the iovecs.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        wait_for_work(h).await;
        buf.clear();
        {
            let mut q = h.queue.borrow_mut();
            while buf.len() < TLS_WRITE {
                let Some(mut b) = q.pop_front() else { break };
                let room = TLS_WRITE - buf.len();
                if b.len() > room {
                    buf.extend_from_slice(&b.split_to(room));
                    q.push_front(b);
                } else {
                    buf.extend_from_slice(&b);
                }
            }
        }
        let total = buf.len();
        if total == 0 {
            break; // closing and nothing left
        }
        let (res, back) = w.write_all(buf).await;
        buf = back;
        h.queued.set(h.queued.get() - total);
        gauges.sub(h.id.core, h.id.slot, total);
        if res.is_err() {
            break;
        }
    }
}

async fn writev_loop<W: AsyncWriteRent>(h: &ConnHandle, gauges: &Arc<Gauges>, w: &mut W) {
    // Grown on first use: an idle connection holds no iovec space.
    let mut v = IoVecs {
        iov: Vec::new(),
        bufs: Vec::new(),
    };
    loop {
        wait_for_work(h).await;
        let mut total = 0;
        {
            let mut q = h.queue.borrow_mut();
            while v.bufs.len() < MAX_IOVECS {
                let Some(b) = q.pop_front() else { break };
                total += b.len();
                v.bufs.push(b);
            }
        }
        if total == 0 {
            break; // closing and nothing left
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
        h.queued.set(h.queued.get() - total);
        gauges.sub(h.id.core, h.id.slot, total);
        if !ok {
            v.bufs.clear();
            break;
        }
    }
}
