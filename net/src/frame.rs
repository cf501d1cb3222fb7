//! Length-prefixed framing (`uint24le`, what JS `@hyperswarm/secret-stream` puts on a
//! TCP stream) with limits, and the out-of-band error slot that works around
//! `hypercore_handshake`'s `Cipher`, which panics (`todo!`) on any I/O error other than
//! EOF / reset that its transport returns.
//!
//! Reading: frames larger than [`crate::Limits::max_frame`] (before the handshake,
//! [`HANDSHAKE_MAX_FRAME`]) are refused as soon as their length prefix is read. The read
//! buffer grows only as bytes arrive (each read asks for at most as many bytes as are
//! already buffered, and at least 64 KiB), so a claimed length costs nothing until its
//! bytes come. At most `frames_per_poll` frames are handed out per poll (then the task
//! yields), so a peer that floods cannot keep the protocol reading forever while the
//! driver's queues grow. While the driver has paused reading
//! ([`FrameShared::pause_reads`], its queues are full) no frame is handed out and no byte
//! is read, so TCP backpressure reaches the peer; writing goes on. Empty frames (JS
//! keep-alives) are skipped. Any error (EOF,
//! oversized, I/O) is stored in [`FrameShared`] and the stream then stays pending: the
//! connection driver waits on [`FrameShared::failed`] and ends the session with it.
//!
//! Writing: frames are appended to one buffer; `poll_ready` applies backpressure once
//! `max_unsent` bytes are waiting for the socket.

use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::error::FrameError;

/// Largest length a `uint24le` prefix can carry.
pub const MAX_UINT24: usize = (1 << 24) - 1;

/// Largest frame accepted before the handshake is done (Noise XX messages with their
/// payloads are under 300 bytes).
pub const HANDSHAKE_MAX_FRAME: usize = 4096;

/// State shared between the framing (owned by the cipher inside the protocol) and the
/// connection driver.
#[derive(Debug, Default)]
pub struct FrameShared {
    error: Mutex<Option<FrameError>>,
    notify: Notify,
    /// Notified whenever bytes reach the socket (wakes a driver under backpressure).
    pub progress: Notify,
    /// Bytes written to the socket so far (framing included).
    pub written: AtomicU64,
    /// Bytes read from the socket so far.
    pub read: AtomicU64,
    /// Set once the Noise handshake is done: until then frames are limited to
    /// [`HANDSHAKE_MAX_FRAME`].
    pub established: AtomicBool,
    /// When the session last did useful work ([`crate::listen::clock_ms`]); the
    /// listener evicts the least recently useful session when it is full.
    pub useful_ms: AtomicU64,
    read_paused: AtomicBool,
    read_waker: AtomicWaker,
}

impl FrameShared {
    pub(crate) fn fail(&self, e: FrameError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        drop(slot);
        self.notify.notify_one();
    }

    /// Stop reading from the socket (the driver's queues are full); frames already
    /// buffered wait too. Writing is not affected.
    pub fn pause_reads(&self) {
        self.read_paused.store(true, Ordering::Release);
    }

    /// Read again after [`FrameShared::pause_reads`].
    pub fn resume_reads(&self) {
        if self.read_paused.swap(false, Ordering::AcqRel) {
            self.read_waker.wake();
        }
    }

    /// Whether reading is paused.
    pub fn reads_paused(&self) -> bool {
        self.read_paused.load(Ordering::Acquire)
    }

    /// The error that ended the stream, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves once the stream has failed (EOF, oversized frame, I/O error).
    pub async fn failed(&self) -> FrameError {
        loop {
            if let Some(e) = self.error() {
                return e;
            }
            self.notify.notified().await;
        }
    }
}

/// `uint24le` framing over a TCP stream. See the module docs.
#[derive(Debug)]
pub struct Framed {
    io: TcpStream,
    shared: std::sync::Arc<FrameShared>,
    max_frame: usize,
    frames_per_poll: usize,
    max_unsent: usize,
    read_chunk: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    handed_out: usize,
    wbuf: Vec<u8>,
    wstart: usize,
    dead: bool,
}

/// The read size of a dialer (which reads blocks): 64 KiB.
pub const READ_CHUNK: usize = 64 * 1024;
/// The read size of a listener (whose peers send requests): 16 KiB.
pub const REQUEST_READ_CHUNK: usize = 16 * 1024;

impl Framed {
    /// Wrap `io`. `max_frame` ≤ [`MAX_UINT24`]; each read asks for at least
    /// `read_chunk` bytes (and, past that, at most as many as are buffered), so the read
    /// buffer holds less than one frame and a chunk: ≤ `max_frame + 3 + read_chunk` bytes.
    pub fn new(
        io: TcpStream,
        shared: std::sync::Arc<FrameShared>,
        max_frame: usize,
        frames_per_poll: usize,
        max_unsent: usize,
        read_chunk: usize,
    ) -> Self {
        Framed {
            io,
            shared,
            max_frame: max_frame.min(MAX_UINT24),
            frames_per_poll: frames_per_poll.max(1),
            max_unsent,
            read_chunk: read_chunk.max(1024),
            rbuf: Vec::new(),
            rstart: 0,
            handed_out: 0,
            wbuf: Vec::new(),
            wstart: 0,
            dead: false,
        }
    }

    fn die(&mut self, e: FrameError) -> Poll<Option<io::Result<Vec<u8>>>> {
        self.dead = true;
        self.shared.fail(e);
        Poll::Pending
    }

    /// A complete frame from the buffer, if one is there.
    fn take_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            let avail = &self.rbuf[self.rstart..];
            if avail.len() < 3 {
                return Ok(None);
            }
            let len =
                usize::from(avail[0]) | usize::from(avail[1]) << 8 | usize::from(avail[2]) << 16;
            let max = if self.shared.established.load(Ordering::Relaxed) {
                self.max_frame
            } else {
                HANDSHAKE_MAX_FRAME.min(self.max_frame)
            };
            if len > max {
                return Err(FrameError::Oversized { len, max });
            }
            if avail.len() < 3 + len {
                return Ok(None);
            }
            let frame = avail[3..3 + len].to_vec();
            self.rstart += 3 + len;
            if self.rstart == self.rbuf.len() {
                self.rbuf.clear();
                self.rstart = 0;
            }
            if len == 0 {
                continue; // keep-alive
            }
            return Ok(Some(frame));
        }
    }

    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wstart < self.wbuf.len() {
            let n = match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wstart..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.wstart += n;
            self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
            self.shared.progress.notify_one();
        }
        self.wbuf.clear();
        self.wstart = 0;
        if self.wbuf.capacity() > 4 * READ_CHUNK {
            self.wbuf.shrink_to(READ_CHUNK);
        }
        Poll::Ready(Ok(()))
    }
}

impl Stream for Framed {
    type Item = io::Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.dead {
            return Poll::Pending;
        }
        if this.shared.reads_paused() {
            this.shared.read_waker.register(cx.waker());
            // Resumed between the check and the registration: go on.
            if this.shared.reads_paused() {
                this.handed_out = 0;
                return Poll::Pending;
            }
        }
        if this.handed_out >= this.frames_per_poll {
            // Cooperative budget: let the driver drain what we handed out.
            this.handed_out = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            match this.take_frame() {
                Ok(Some(frame)) => {
                    this.handed_out += 1;
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(e) => return this.die(e),
            }
            // Need more bytes. Compact, then read.
            if this.rstart > 0 {
                this.rbuf.drain(..this.rstart);
                this.rstart = 0;
            }
            let old = this.rbuf.len();
            // The buffer grows only as bytes arrive (at most doubling per read), never
            // to the size a length prefix claims.
            let want = if old >= 3 {
                let len = usize::from(this.rbuf[0])
                    | usize::from(this.rbuf[1]) << 8
                    | usize::from(this.rbuf[2]) << 16;
                (3 + len).saturating_sub(old).min(old).max(this.read_chunk)
            } else {
                this.read_chunk
            };
            this.rbuf.resize(old + want, 0);
            let mut rb = ReadBuf::new(&mut this.rbuf[old..]);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    this.rbuf.truncate(old + n);
                    if n == 0 {
                        let e = if old == 0 {
                            FrameError::Closed
                        } else {
                            FrameError::Truncated { have: old }
                        };
                        return this.die(e);
                    }
                    this.shared.read.fetch_add(n as u64, Ordering::Relaxed);
                }
                Poll::Ready(Err(e)) => {
                    this.rbuf.truncate(old);
                    return this.die(FrameError::Io(e.kind()));
                }
                Poll::Pending => {
                    this.rbuf.truncate(old);
                    this.handed_out = 0;
                    if this.rbuf.is_empty() && this.rbuf.capacity() > 4 * this.read_chunk {
                        this.rbuf.shrink_to(this.read_chunk);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Sink<Vec<u8>> for Framed {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.wbuf.len() - this.wstart < this.max_unsent {
            return Poll::Ready(Ok(()));
        }
        match this.poll_write_buf(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => {
                this.shared.fail(FrameError::Io(e.kind()));
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> io::Result<()> {
        let this = self.get_mut();
        if item.len() > MAX_UINT24 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame larger than a uint24 length",
            ));
        }
        let len = item.len() as u32;
        this.wbuf.extend_from_slice(&len.to_le_bytes()[..3]);
        this.wbuf.extend_from_slice(&item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_write_buf(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            Poll::Ready(Err(e)) => {
                this.shared.fail(FrameError::Io(e.kind()));
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_write_buf(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}
