//! msrpd's own TLS stream (MSRP over TLS, RFC 4975 §14, RFC 4976 §6.1): one rustls
//! connection shared by a connection's reader task and writer task, each with its own
//! half of the socket and its own buffer.
//!
//! Why not monoio-rustls's stream split in two: its halves share one buffer, and when
//! rustls fails on a read (a bad record, or the peer's alert rejecting our client
//! certificate right after a TLS 1.3 handshake) the read half writes the alert out
//! through the buffer the writer task is using at that moment, and the worker panics
//! (`buffer ref expected`, monoio-io-wrapper): every connection of that core is lost, and
//! a hostile peer can do it on purpose. Here:
//!
//! - [`TlsReader`] owns the ciphertext it reads from its socket half and feeds it to rustls
//!   (`read_tls`, `process_new_packets`) under a short borrow of the connection, never
//!   held across an `.await`, and hands out plaintext. It never writes to the socket.
//! - [`TlsWriter`] encrypts plaintext and writes out everything rustls has queued, in
//!   order, with its own buffer. `writev` hands all its buffers to rustls at once
//!   (`write_vectored`), so one TLS record carries many small frame parts (a record may
//!   carry any piece of the stream, RFC 8446 §5.1) instead of one record and one syscall
//!   per part.
//! - What rustls sends of its own accord after the handshake, because of what the reader
//!   fed it, goes out with the writer's next write: a KeyUpdate answer may wait that long
//!   (RFC 8446 §4.6.3: before our next application data), and a fatal alert comes with an
//!   error that closes the connection, so the closing writer sends it in `shutdown`.
//!   Nothing waits for the writer to be woken for it, and the writer's wait stays the
//!   send queue's alone.
//! - A rustls error on either half is an `io::Error` (`InvalidData`) to the task, logged
//!   with the connection's side (`inbound` for accepted connections, `outbound` for next
//!   hops); the tasks then close the connection as for any I/O error. Nothing panics.
//!
//! The rustls connection lives in an `Rc<RefCell<..>>`: both halves run on one core, and
//! each borrow is synchronous (`clippy::await_holding_refcell_ref` is denied).

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, IoSlice, Write};
use std::rc::Rc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Split,
    Splitable,
};
use rustls::Connection;

/// Ciphertext read at a time: one full TLS record (16 KiB of plaintext plus overhead).
const CIPHER_READ: usize = 16 * 1024 + 512;
/// Ciphertext read at a time once a read has filled the [`CIPHER_READ`] buffer: a busy
/// connection reads several records per syscall.
const CIPHER_READ_BUSY: usize = 64 * 1024;
/// A big ciphertext buffer goes back to [`CIPHER_READ`] after this many reads in a row
/// that the small one would have held (as the plain read buffer does in `worker.rs`:
/// swapping sizes at every read under load cost a fresh allocation each time).
const SHRINK_AFTER: u32 = 64;
/// The writer keeps its ciphertext buffer between writes up to this capacity; a bigger
/// one (a burst) is freed after its write, so an idle connection holds little.
const KEEP_OUT: usize = 32 * 1024;
/// Buffers of one `writev` handed to rustls at once (the rest: the next `writev`).
const MAX_SLICES: usize = 64;

/// A TLS connection whose handshake is done, and the socket it runs on. Made by
/// [`super::tls::accept`] and [`super::tls::connect`]; split into its two halves for the
/// connection's tasks with [`TlsStream::into_split`].
pub struct TlsStream<IO> {
    io: IO,
    conn: Connection,
    peer: String,
}

impl<IO> TlsStream<IO> {
    /// `conn` has finished its handshake on `io`; `peer` names the other end in logs.
    pub fn new(io: IO, conn: impl Into<Connection>, peer: String) -> TlsStream<IO> {
        TlsStream {
            io,
            conn: conn.into(),
            peer,
        }
    }
}

impl<IO: Split + AsyncReadRent + AsyncWriteRent> TlsStream<IO> {
    /// The reader and writer halves. The socket's own halves are independent (monoio's
    /// `Split`); what they share here is the rustls connection, borrowed briefly.
    pub fn into_split(self) -> (TlsReader<IO>, TlsWriter<IO>) {
        let side = match self.conn {
            Connection::Server(_) => "inbound",
            Connection::Client(_) => "outbound",
        };
        let shared = Rc::new(Shared {
            conn: RefCell::new(self.conn),
            side,
            peer: self.peer,
            failed: Cell::new(false),
        });
        let (rd, wr) = self.io.into_split();
        (
            TlsReader {
                shared: shared.clone(),
                io: rd,
                cipher: Vec::new(),
                pos: 0,
                small_reads: 0,
                eof: false,
                error: None,
            },
            TlsWriter {
                shared,
                io: wr,
                out: Vec::new(),
            },
        )
    }
}

/// What both halves share.
struct Shared {
    conn: RefCell<Connection>,
    /// `inbound` (we accepted) or `outbound` (a next hop), for logs.
    side: &'static str,
    peer: String,
    /// A rustls error was logged (the other half then fails with the same error).
    failed: Cell<bool>,
}

impl Shared {
    /// Logs the first rustls error of the connection, saying which half met it.
    fn failed(&self, on: &str, e: &dyn std::fmt::Display) {
        if !self.failed.replace(true) {
            tracing::info!(peer = %self.peer, side = self.side, error = %e, "TLS error on {on}, closing connection");
        }
    }
}

/// What the reader has without reading the socket.
enum Ready {
    /// This many plaintext bytes were copied out.
    Data(usize),
    /// The peer closed the TLS session (close_notify) and everything before it was read.
    Closed,
    /// Nothing: more ciphertext is needed.
    Nothing,
}

/// The reading half: ciphertext in, plaintext out.
pub struct TlsReader<IO> {
    shared: Rc<Shared>,
    io: OwnedReadHalf<IO>,
    /// Ciphertext read from the socket; `pos` bytes of it are in rustls already.
    cipher: Vec<u8>,
    pos: usize,
    /// Reads in a row that [`CIPHER_READ`] would have held: after [`SHRINK_AFTER`] of
    /// them a big buffer goes back to that size (growing at the first full read).
    small_reads: u32,
    /// The socket reached end-of-file.
    eof: bool,
    /// rustls failed on our input: every read from here on fails with this, once the
    /// plaintext of the records before the bad one is handed out.
    error: Option<rustls::Error>,
}

impl<IO: AsyncReadRent> TlsReader<IO> {
    /// Copies plaintext rustls holds into `dst` (`cap` bytes at `dst`, not necessarily
    /// initialised), feeding it the ciphertext we hold as long as `dst` has room.
    ///
    /// # Safety
    ///
    /// `dst` must be valid for writes of `cap` bytes and not overlap rustls's buffers.
    unsafe fn pump(&mut self, dst: *mut u8, cap: usize) -> io::Result<Ready> {
        let mut conn = self.shared.conn.borrow_mut();
        let mut filled = 0;
        loop {
            let mut rd = conn.reader();
            loop {
                match rd.fill_buf() {
                    Ok([]) if filled == 0 => return Ok(Ready::Closed),
                    Ok([]) => return Ok(Ready::Data(filled)),
                    Ok(chunk) => {
                        let k = chunk.len().min(cap - filled);
                        // SAFETY: `filled + k <= cap`, and the caller guarantees `dst` is
                        // valid for `cap` bytes; `chunk` is rustls's memory, not `dst`.
                        unsafe {
                            std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(filled), k)
                        };
                        rd.consume(k);
                        filled += k;
                        if filled == cap {
                            return Ok(Ready::Data(filled));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if self.pos == self.cipher.len() || self.error.is_some() {
                if filled == 0
                    && let Some(e) = &self.error
                {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
                }
                return Ok(if filled > 0 {
                    Ready::Data(filled)
                } else {
                    Ready::Nothing
                });
            }
            let mut input = &self.cipher[self.pos..];
            match conn.read_tls(&mut input) {
                // The peer's close_notify came: what follows it is not read.
                Ok(0) => self.pos = self.cipher.len(),
                Ok(n) => self.pos += n,
                Err(e) => return Err(e),
            }
            if let Err(e) = conn.process_new_packets() {
                // rustls may have queued an alert: the writer sends it as it closes.
                // Records before the bad one did decrypt: their plaintext goes first.
                self.shared.failed("read", &e);
                self.error = Some(e);
            }
        }
    }

    /// Reads plaintext into `cap` bytes at `dst`, reading the socket when rustls has
    /// nothing yet. `Ok(0)` at the end of the stream.
    ///
    /// # Safety
    ///
    /// As for [`TlsReader::pump`], for as long as the returned future lives.
    async unsafe fn read_raw(&mut self, dst: *mut u8, cap: usize) -> io::Result<usize> {
        if cap == 0 {
            return Ok(0);
        }
        loop {
            // SAFETY: passed on from our caller.
            match unsafe { self.pump(dst, cap) }? {
                Ready::Data(n) => return Ok(n),
                Ready::Closed => return Ok(0),
                Ready::Nothing if self.eof => return Ok(0),
                Ready::Nothing => {}
            }
            let mut v = std::mem::take(&mut self.cipher);
            v.clear();
            // A big buffer is kept while reads need it; otherwise (at first, too) the
            // small one.
            let big = v.capacity() > CIPHER_READ && self.small_reads < SHRINK_AFTER;
            if !big && v.capacity() != CIPHER_READ {
                v = Vec::with_capacity(CIPHER_READ);
            }
            let (r, mut v) = self.io.read(v).await;
            if v.len() == v.capacity() && v.capacity() < CIPHER_READ_BUSY {
                // Full: the next read takes more (this one's bytes are kept).
                v.reserve_exact(CIPHER_READ_BUSY - v.len());
            }
            self.small_reads = if v.len() <= CIPHER_READ {
                self.small_reads.saturating_add(1)
            } else {
                0
            };
            self.cipher = v;
            self.pos = 0;
            if r? == 0 {
                self.eof = true;
            }
        }
    }
}

impl<IO: AsyncReadRent> AsyncReadRent for TlsReader<IO> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let (dst, cap) = (buf.write_ptr(), buf.bytes_total());
        // SAFETY: `buf` is ours until we return it and is not touched meanwhile, and an
        // `IoBufMut`'s `write_ptr` is valid for `bytes_total` bytes of writes.
        let r = unsafe { self.read_raw(dst, cap) }.await;
        if let Ok(n) = r {
            // SAFETY: `read_raw` wrote the first `n` bytes.
            unsafe { buf.set_init(n) };
        }
        (r, buf)
    }

    /// Reads into the first buffer with room (a short read, as `readv` may do).
    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let (ptr, len) = (buf.write_iovec_ptr(), buf.write_iovec_len());
        // SAFETY: an `IoVecBufMut` points at `write_iovec_len` iovecs, valid while we
        // own `buf`.
        let iov = unsafe { raw_slice(ptr.cast_const(), len) };
        let Some(v) = iov.iter().find(|v| v.iov_len > 0) else {
            return (Ok(0), buf);
        };
        let (dst, cap) = (v.iov_base.cast::<u8>(), v.iov_len);
        // SAFETY: each iovec of an `IoVecBufMut` is valid for writes of its length while
        // we own `buf`, and `buf` is not touched meanwhile.
        let r = unsafe { self.read_raw(dst, cap) }.await;
        if let Ok(n) = r {
            // SAFETY: the first `n` bytes were written (into the first non-empty iovec,
            // after only empty ones).
            unsafe { buf.set_init(n) };
        }
        (r, buf)
    }
}

/// The `len` items at `ptr`, for the pointers monoio's buffer traits hand out; empty
/// without looking at `ptr` when `len` is 0 (an empty buffer's pointer may be null, which
/// `from_raw_parts` does not allow).
///
/// # Safety
///
/// For `len > 0`, `ptr` must be valid for reads of `len` items for `'a`, and nothing may
/// write them meanwhile.
unsafe fn raw_slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: passed on from our caller; `len > 0`, so `ptr` is a real one.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// The writing half: plaintext in, records (and rustls's own messages) out.
pub struct TlsWriter<IO: AsyncWriteRent> {
    shared: Rc<Shared>,
    io: OwnedWriteHalf<IO>,
    /// Ciphertext being written; ours alone.
    out: Vec<u8>,
}

impl<IO: AsyncWriteRent> TlsWriter<IO> {
    /// Hands plaintext to rustls: as much as its send buffer takes (it is empty after
    /// each of our writes, so some always fits).
    fn encrypt(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let r = self.shared.conn.borrow_mut().writer().write_vectored(bufs);
        if let Err(e) = &r {
            self.shared.failed("write", e);
        }
        r
    }

    /// Writes out everything rustls has queued: records, alerts, KeyUpdates.
    async fn flush_tls(&mut self) -> io::Result<()> {
        loop {
            let mut out = std::mem::take(&mut self.out);
            {
                let mut conn = self.shared.conn.borrow_mut();
                while conn.wants_write() {
                    conn.write_tls(&mut out)?;
                }
            }
            if out.is_empty() {
                self.out = out;
                return Ok(());
            }
            let (r, mut out) = self.io.write_all(out).await;
            out.clear();
            if out.capacity() > KEEP_OUT {
                out = Vec::new();
            }
            self.out = out;
            r?;
            // The reader may have queued more meanwhile (an alert): round again.
        }
    }
}

impl<IO: AsyncWriteRent> AsyncWriteRent for TlsWriter<IO> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: an `IoBuf`'s `read_ptr` is valid for `bytes_init` bytes while we own it;
        // the slice is gone before the first `.await`.
        let data = unsafe { raw_slice(buf.read_ptr(), buf.bytes_init()) };
        let r = self.encrypt(&[IoSlice::new(data)]);
        let r = match r {
            Ok(n) => self.flush_tls().await.map(|()| n),
            Err(e) => Err(e),
        };
        (r, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let r = {
            // SAFETY: an `IoVecBuf` points at `read_iovec_len` iovecs, each valid for
            // reads of its length while we own `buf`; these slices are gone before the
            // first `.await`.
            let iov = unsafe { raw_slice(buf.read_iovec_ptr(), buf.read_iovec_len()) };
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            for (s, v) in slices.iter_mut().zip(iov) {
                // SAFETY: as above, for this iovec.
                *s = IoSlice::new(unsafe {
                    raw_slice(v.iov_base.cast::<u8>().cast_const(), v.iov_len)
                });
            }
            self.encrypt(&slices[..iov.len().min(MAX_SLICES)])
        };
        let r = match r {
            Ok(n) => self.flush_tls().await.map(|()| n),
            Err(e) => Err(e),
        };
        (r, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    /// Sends close_notify (or the alert a failure queued) and shuts the socket's write
    /// side.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.shared.conn.borrow_mut().send_close_notify();
        let flushed = self.flush_tls().await;
        let shut = self.io.shutdown().await;
        flushed.and(shut)
    }
}
