//! A structural check of every decrypted frame *before* `hypercore-protocol` decodes it,
//! and the cipher wrapper that applies it (DESIGN §12.6).
//!
//! `hypercore-protocol` 0.7.2 decodes a plaintext frame with `compact-encoding` 2.2.0 and
//! `hypercore_schema` 0.2.0, whose list decoders call `Vec::with_capacity(count)` with a
//! count read from the wire. One 30-byte `Data` message that declares 2^40 tree nodes asks
//! for 80 TiB and the allocation failure aborts the whole process (it cannot be caught).
//! The same decode path panics (shift overflow in `flat-tree`, with overflow checks on) on
//! a tree node whose index has 62 or more trailing one bits, and the protocol resizes a
//! vector to the channel id of every channel open it receives.
//!
//! [`check_frame`] walks the framing exactly as `hypercore-protocol`'s
//! `decode_unframed_channel_messages` does (one frame may hold several units, each a
//! single message, a batch, a channel open or a channel close), and every field of every
//! message type, without allocating. It refuses a frame
//! - where a list count times the smallest encoding of one element, or a byte length,
//!   exceeds the bytes that remain (so an accepted frame makes the decoder allocate at
//!   most a small multiple of its own size),
//! - that is truncated, has an unknown message type or special prefix, or a string that
//!   is not UTF-8 (the decoder would fail on these too),
//! - with a tree node index that overflows `flat-tree`,
//! - with a channel open for a channel id above [`MAX_CHANNEL_ID`] or a discovery key
//!   that is not 32 bytes,
//! - with more than [`MAX_MESSAGES_PER_FRAME`] messages.
//!
//! [`GuardedCipher`] wraps the Noise cipher under the protocol: a refused frame is recorded
//! as [`FrameError::Refused`] in the connection's [`FrameShared`] and the stream then stays
//! pending, so the session ends with "peer misbehaved" and only that connection is hurt.
//!
//! Upstream quirk mirrored here, not fixed: in a batch, `hypercore-protocol` 0.7.2 reads the
//! channel-change separator `0x00` *as* the new channel id (it does not skip it), so a batch
//! that spans channels (which its own encoder writes under backpressure, and JS protomux
//! writes when corked) is misread. The check follows the decoder, not the intent: what it
//! accepts is what the decoder will actually walk.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use hypercore_handshake::state_machine::PUBLIC_KEYLEN;
use hypercore_handshake::{Cipher, CipherEvent, CipherTrait};
use tracing::warn;

use crate::error::FrameError;
use crate::frame::FrameShared;

/// Most messages one frame may carry (open and close included).
pub const MAX_MESSAGES_PER_FRAME: usize = 1024;
/// Messages a listener's guard hands to the protocol per poll before it yields (the
/// frame that crosses it is handed out whole): the messages the protocol decodes before
/// the session driver can count them and pause reading are then fewer than
/// `REQUEST_POLL_BUDGET + MAX_MESSAGES_PER_FRAME`.
pub const REQUEST_POLL_BUDGET: usize = 256;
/// Largest channel id a peer may open: the protocol sizes a vector by it. JS protomux
/// numbers channels from 1 up, reusing freed ids, so real ids stay small.
pub const MAX_CHANNEL_ID: u64 = 1024;
/// Smallest encoding of a tree node: index and length varints (1 byte each) + 32-byte hash.
pub const MIN_NODE_SIZE: usize = 34;
/// Encoding of one bitfield word (a fixed-width `u32`).
pub const BITFIELD_WORD_SIZE: usize = 4;
/// A node index with this many trailing one bits (depth) overflows `flat-tree`'s
/// `parent()`, which `hypercore_schema::Node::new` calls on every decoded node.
const MAX_NODE_DEPTH_EXCLUSIVE: u32 = 62;

/// Why [`check_frame`] refused a frame. Offsets count from the start of the plaintext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// One message is larger than this side takes ([`check_frame_limited`]): a
    /// server's readers send requests, not blocks or large extension messages.
    #[error("a message of {len} bytes at byte {at}, more than {max}")]
    MessageTooLarge {
        /// Its encoded size (type and body).
        len: usize,
        /// The limit.
        max: usize,
        /// Where it starts.
        at: usize,
    },
    /// The frame ends inside a field (or a unit is shorter than the decoder requires).
    #[error("frame ends inside {what} at byte {at}")]
    Truncated {
        /// The field.
        what: &'static str,
        /// Where it starts.
        at: usize,
    },
    /// A list declares more elements than the remaining bytes can hold.
    #[error(
        "{what} at byte {at} declares {count} elements of at least {min_size} bytes, \
         only {remaining} bytes remain"
    )]
    CountTooLarge {
        /// The list.
        what: &'static str,
        /// Where its count starts.
        at: usize,
        /// Declared count.
        count: u64,
        /// Smallest encoding of one element.
        min_size: usize,
        /// Bytes after the count.
        remaining: usize,
    },
    /// A byte string or batched message declares more bytes than remain.
    #[error("{what} at byte {at} declares {len} bytes, only {remaining} remain")]
    LengthTooLarge {
        /// The field.
        what: &'static str,
        /// Where its length starts.
        at: usize,
        /// Declared length.
        len: u64,
        /// Bytes after the length.
        remaining: usize,
    },
    /// A message type the protocol does not know (0..=9 are known).
    #[error("unknown message type {typ} at byte {at}")]
    UnknownType {
        /// The type.
        typ: u64,
        /// Where it starts.
        at: usize,
    },
    /// A `[0, x]` prefix other than batch `[0, 0]`, open `[0, 1]` and close `[0, 3]`.
    #[error("unknown special prefix [0, {prefix}] at byte {at}")]
    UnknownSpecial {
        /// Second byte.
        prefix: u8,
        /// Where the unit starts.
        at: usize,
    },
    /// More than [`MAX_MESSAGES_PER_FRAME`] messages.
    #[error("more than {max} messages in one frame")]
    TooManyMessages {
        /// The limit.
        max: usize,
    },
    /// A channel open with a channel id above [`MAX_CHANNEL_ID`].
    #[error("channel open for channel id {channel} (at most {max})")]
    ChannelIdTooLarge {
        /// Declared id.
        channel: u64,
        /// The limit.
        max: u64,
    },
    /// A channel open whose discovery key is not 32 bytes.
    #[error("channel open with a discovery key of {len} bytes (must be 32)")]
    DiscoveryKeyLength {
        /// Its length.
        len: usize,
    },
    /// A tree node index too deep for `flat-tree` arithmetic.
    #[error("tree node index {index} at byte {at} is too deep for flat-tree")]
    NodeIndexTooDeep {
        /// The index.
        index: u64,
        /// Where it starts.
        at: usize,
    },
    /// A string that is not UTF-8.
    #[error("{what} at byte {at} is not UTF-8")]
    NotUtf8 {
        /// The field.
        what: &'static str,
        /// Where its length starts.
        at: usize,
    },
}

/// Check one decrypted frame; see the module docs for what is refused. Never panics,
/// never allocates, runs in time linear in the frame.
pub fn check_frame(plaintext: &[u8]) -> Result<(), GuardError> {
    check_frame_limited(plaintext, usize::MAX)
}

/// [`check_frame`], and also refuse any one message (its type and body) larger than
/// `max_message` bytes. A listener uses this: the decoded messages wait in the
/// protocol's queues (counted in messages, [`crate::Limits::max_queued`]), so this
/// bounds them in bytes.
pub fn check_frame_limited(plaintext: &[u8], max_message: usize) -> Result<(), GuardError> {
    count_messages(plaintext, max_message).map(drop)
}

/// [`check_frame_limited`], returning how many messages (open and close included) the
/// frame carries.
pub fn count_messages(plaintext: &[u8], max_message: usize) -> Result<usize, GuardError> {
    let mut w = Walker {
        r: Reader {
            buf: plaintext,
            pos: 0,
        },
        messages: 0,
        max_message,
    };
    // `Vec<ChannelMessage>::vec_decode`: units until the frame is used up.
    while !w.r.is_empty() {
        w.unit()?;
    }
    Ok(w.messages)
}

/// A cursor over the frame mirroring `compact-encoding`'s decoders.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.buf.get(self.pos.checked_add(ahead)?).copied()
    }

    /// `n` raw bytes (`take_array`, `get_slices_checked`).
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], GuardError> {
        let at = self.pos;
        let end = at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(GuardError::Truncated { what, at })?;
        self.pos = end;
        Ok(self.buf.get(at..end).unwrap_or_default())
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, GuardError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    /// `decode_u64_var` / `decode_usize`: `< 0xfd` is the value, `0xfd` a `u16`, `0xfe` a
    /// `u32`, `0xff` a `u64` follow (little endian).
    fn varint(&mut self, what: &'static str) -> Result<u64, GuardError> {
        let at = self.pos;
        let first = self.byte(what)?;
        let width = match first {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            x => return Ok(u64::from(x)),
        };
        let bytes = self
            .take(width, what)
            .map_err(|_| GuardError::Truncated { what, at })?;
        let mut le = [0u8; 8];
        for (dst, src) in le.iter_mut().zip(bytes) {
            *dst = *src;
        }
        Ok(u64::from_le_bytes(le))
    }

    /// A `Vec<u8>` / `String`: varint length, then that many bytes.
    fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], GuardError> {
        let at = self.pos;
        let len = self.varint(what)?;
        let remaining = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => self.take(n, what),
            _ => Err(GuardError::LengthTooLarge {
                what,
                at,
                len,
                remaining,
            }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<(), GuardError> {
        let at = self.pos;
        let s = self.buffer(what)?;
        std::str::from_utf8(s).map_err(|_| GuardError::NotUtf8 { what, at })?;
        Ok(())
    }

    /// A list count (`decode_vec`, `Vec<u32>::vec_decode`), refused when `count` elements
    /// of at least `min_size` bytes cannot fit in what remains.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<u64, GuardError> {
        let at = self.pos;
        let count = self.varint(what)?;
        let remaining = self.remaining();
        let fits = remaining / min_size.max(1);
        if count > fits as u64 {
            return Err(GuardError::CountTooLarge {
                what,
                at,
                count,
                min_size,
                remaining,
            });
        }
        Ok(count)
    }
}

struct Walker<'a> {
    r: Reader<'a>,
    messages: usize,
    max_message: usize,
}

impl Walker<'_> {
    fn counted(&mut self) -> Result<(), GuardError> {
        self.messages += 1;
        if self.messages > MAX_MESSAGES_PER_FRAME {
            return Err(GuardError::TooManyMessages {
                max: MAX_MESSAGES_PER_FRAME,
            });
        }
        Ok(())
    }

    /// `decode_unframed_channel_messages`.
    fn unit(&mut self) -> Result<(), GuardError> {
        let at = self.r.pos;
        let len = self.r.remaining();
        if len >= 3 && self.r.peek(0) == Some(0) {
            let prefix = self.r.peek(1).unwrap_or_default();
            match prefix {
                0 => {
                    self.r.take(2, "batch prefix")?;
                    self.batch()
                }
                1 => {
                    self.r.take(2, "open prefix")?;
                    self.open()
                }
                3 => {
                    self.r.take(2, "close prefix")?;
                    self.close()
                }
                prefix => Err(GuardError::UnknownSpecial { prefix, at }),
            }
        } else if len >= 2 {
            // A single message: channel, then type and body.
            self.r.varint("channel")?;
            self.message()
        } else {
            Err(GuardError::Truncated {
                what: "message",
                at,
            })
        }
    }

    /// A batch runs to the end of the frame.
    fn batch(&mut self) -> Result<(), GuardError> {
        self.r.varint("batch channel")?;
        while !self.r.is_empty() {
            let at = self.r.pos;
            let len = self.r.varint("batched message length")?;
            let remaining = self.r.remaining();
            if len > remaining as u64 {
                return Err(GuardError::LengthTooLarge {
                    what: "batched message",
                    at,
                    len,
                    remaining,
                });
            }
            // `decode_with_channel` wants more than one byte left; it then decodes from
            // everything left, not from `len` bytes.
            if remaining <= 1 {
                return Err(GuardError::Truncated {
                    what: "batched message",
                    at: self.r.pos,
                });
            }
            self.message()?;
            // The decoder reads the `0x00` separator itself as the new channel id.
            if self.r.peek(0) == Some(0) {
                self.r.varint("channel change")?;
            }
        }
        Ok(())
    }

    /// `decode_open_message` + `Open::decode`.
    fn open(&mut self) -> Result<(), GuardError> {
        let at = self.r.pos;
        if self.r.remaining() <= 5 {
            return Err(GuardError::Truncated {
                what: "channel open",
                at,
            });
        }
        self.counted()?;
        let channel = self.r.varint("open channel")?;
        if channel > MAX_CHANNEL_ID {
            return Err(GuardError::ChannelIdTooLarge {
                channel,
                max: MAX_CHANNEL_ID,
            });
        }
        self.r.string("open protocol")?;
        let dk = self.r.buffer("open discovery key")?;
        if dk.len() != 32 {
            return Err(GuardError::DiscoveryKeyLength { len: dk.len() });
        }
        if !self.r.is_empty() {
            self.r.take(1, "open flags")?;
            self.r.take(32, "open capability")?;
        }
        Ok(())
    }

    /// `decode_close_message` + `Close::decode`.
    fn close(&mut self) -> Result<(), GuardError> {
        self.counted()?;
        self.r.varint("close channel")?;
        Ok(())
    }

    /// `<Message as CompactEncoding>::decode`: type, then the body of that type.
    fn message(&mut self) -> Result<(), GuardError> {
        let at = self.r.pos;
        let typ = self.r.varint("message type")?;
        self.counted()?;
        let r = &mut self.r;
        match typ {
            // Synchronize: flags, fork, length, remote length.
            0 => {
                r.byte("synchronize flags")?;
                for what in ["fork", "length", "remote length"] {
                    r.varint(what)?;
                }
            }
            1 => request(r)?,
            // Cancel, NoData: a request id.
            2 | 4 => {
                r.varint("request id")?;
            }
            3 => data(r)?,
            // Want, Unwant: start, length.
            5 | 6 => {
                r.varint("start")?;
                r.varint("length")?;
            }
            // Bitfield: start, then fixed-width u32 words.
            7 => {
                r.varint("bitfield start")?;
                let words = r.count("bitfield words", BITFIELD_WORD_SIZE)?;
                for _ in 0..words {
                    r.take(BITFIELD_WORD_SIZE, "bitfield word")?;
                }
            }
            // Range: flags, start, length unless flag 2 ("length 1").
            8 => {
                let flags = r.byte("range flags")?;
                r.varint("range start")?;
                if flags & 2 == 0 {
                    r.varint("range length")?;
                }
            }
            // Extension: name, message buffer.
            9 => {
                r.string("extension name")?;
                r.buffer("extension message")?;
            }
            typ => return Err(GuardError::UnknownType { typ, at }),
        }
        let len = self.r.pos - at;
        if len > self.max_message {
            return Err(GuardError::MessageTooLarge {
                len,
                max: self.max_message,
                at,
            });
        }
        Ok(())
    }
}

/// `Request::decode`.
fn request(r: &mut Reader<'_>) -> Result<(), GuardError> {
    let flags = r.byte("request flags")?;
    r.varint("request id")?;
    r.varint("request fork")?;
    if flags & 1 != 0 {
        r.varint("request block index")?;
        r.varint("request block nodes")?;
    }
    if flags & 2 != 0 {
        r.varint("request hash index")?;
        r.varint("request hash nodes")?;
    }
    if flags & 4 != 0 {
        r.varint("request seek bytes")?;
    }
    if flags & 8 != 0 {
        r.varint("request upgrade start")?;
        r.varint("request upgrade length")?;
    }
    if flags & 32 != 0 {
        r.varint("request priority")?;
    }
    Ok(())
}

/// `Data::decode` with `DataBlock`, `DataHash`, `DataSeek`, `DataUpgrade`.
fn data(r: &mut Reader<'_>) -> Result<(), GuardError> {
    let flags = r.byte("data flags")?;
    r.varint("data request")?;
    r.varint("data fork")?;
    if flags & 1 != 0 {
        r.varint("block index")?;
        r.buffer("block value")?;
        nodes(r, "block nodes")?;
    }
    if flags & 2 != 0 {
        r.varint("hash index")?;
        nodes(r, "hash nodes")?;
    }
    if flags & 4 != 0 {
        r.varint("seek bytes")?;
        nodes(r, "seek nodes")?;
    }
    if flags & 8 != 0 {
        r.varint("upgrade start")?;
        r.varint("upgrade length")?;
        nodes(r, "upgrade nodes")?;
        nodes(r, "upgrade additional nodes")?;
        r.buffer("upgrade signature")?;
    }
    Ok(())
}

/// A `Vec<Node>`: count, then (index, length, 32-byte hash) each.
fn nodes(r: &mut Reader<'_>, what: &'static str) -> Result<(), GuardError> {
    let n = r.count(what, MIN_NODE_SIZE)?;
    for _ in 0..n {
        let at = r.pos;
        let index = r.varint("node index")?;
        if (!index).trailing_zeros() >= MAX_NODE_DEPTH_EXCLUSIVE {
            return Err(GuardError::NodeIndexTooDeep { index, at });
        }
        r.varint("node length")?;
        r.take(32, "node hash")?;
    }
    Ok(())
}

/// The Noise cipher with [`check_frame`] applied to every decrypted message. See the
/// module docs.
pub struct GuardedCipher<C = Cipher> {
    inner: C,
    shared: Arc<FrameShared>,
    refused: bool,
    max_message: usize,
    poll_budget: usize,
    handed: usize,
}

impl<C> GuardedCipher<C> {
    /// Guard `inner`; refusals are recorded in `shared` (the connection's framing state).
    pub fn new(inner: C, shared: Arc<FrameShared>) -> Self {
        Self::limited(inner, shared, usize::MAX)
    }

    /// [`GuardedCipher::new`] that also refuses messages over `max_message` bytes
    /// ([`check_frame_limited`]).
    pub fn limited(inner: C, shared: Arc<FrameShared>, max_message: usize) -> Self {
        GuardedCipher {
            inner,
            shared,
            refused: false,
            max_message,
            poll_budget: usize::MAX,
            handed: 0,
        }
    }

    /// Yield after handing out `messages` messages in one poll (at least one frame is
    /// handed out per poll), so the session driver sees them before more are decoded.
    pub fn with_poll_budget(mut self, messages: usize) -> Self {
        self.poll_budget = messages.max(1);
        self
    }

    /// Whether a frame has been refused (the stream is then pending for good).
    pub fn refused(&self) -> bool {
        self.refused
    }
}

impl<C> fmt::Debug for GuardedCipher<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedCipher")
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl<C: CipherTrait> Stream for GuardedCipher<C> {
    type Item = CipherEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Pending;
        }
        if this.handed >= this.poll_budget {
            this.handed = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(CipherEvent::Message(frame))) => {
                match count_messages(&frame, this.max_message) {
                    Ok(n) => {
                        this.handed = this.handed.saturating_add(n);
                        Poll::Ready(Some(CipherEvent::Message(frame)))
                    }
                    Err(e) => {
                        if crate::listen::peer_log_allowed() {
                            warn!(error = %e, len = frame.len(), "refused a frame from the peer");
                        }
                        this.refused = true;
                        this.shared.fail(FrameError::Refused(e));
                        Poll::Pending
                    }
                }
            }
            Poll::Pending => {
                this.handed = 0;
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<C: CipherTrait> Sink<Vec<u8>> for GuardedCipher<C> {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> io::Result<()> {
        Pin::new(&mut self.get_mut().inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<C: CipherTrait> CipherTrait for GuardedCipher<C> {
    fn remote_public_key(&self) -> Option<[u8; PUBLIC_KEYLEN]> {
        self.inner.remote_public_key()
    }

    fn local_public_key(&self) -> [u8; PUBLIC_KEYLEN] {
        self.inner.local_public_key()
    }

    fn handshake_hash(&self) -> Option<Vec<u8>> {
        self.inner.handshake_hash()
    }

    fn is_initiator(&self) -> bool {
        self.inner.is_initiator()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// compact-encoding varint.
    fn var(out: &mut Vec<u8>, v: u64) {
        match v {
            0..=0xfc => out.push(v as u8),
            0xfd..=0xffff => {
                out.push(0xfd);
                out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xfe);
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            _ => {
                out.push(0xff);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Channel 1, `Data { request 0, fork 0, block { index 0, value [], nodes: n × ... } }`
    /// with `present` nodes actually encoded.
    fn data_with_nodes(n: u64, present: u64, index: u64) -> Vec<u8> {
        let mut f = vec![1, 3, 1, 0, 0, 0, 0];
        var(&mut f, n);
        for _ in 0..present {
            var(&mut f, index);
            var(&mut f, 10);
            f.extend_from_slice(&[7; 32]);
        }
        f
    }

    #[test]
    fn node_count_beyond_the_frame_is_refused() {
        let bomb = data_with_nodes(1 << 40, 0, 0);
        assert_eq!(bomb.len(), 16);
        assert!(matches!(
            check_frame(&bomb),
            Err(GuardError::CountTooLarge { count, min_size: MIN_NODE_SIZE, remaining: 0, .. })
                if count == 1 << 40
        ));
        // Exactly as many as fit is fine, one more is not.
        assert_eq!(check_frame(&data_with_nodes(3, 3, 0)), Ok(()));
        assert!(matches!(
            check_frame(&data_with_nodes(4, 3, 0)),
            Err(GuardError::CountTooLarge { count: 4, .. })
        ));
        // Room for the count at the smallest node size, but the nodes are larger (3-byte
        // index varints) and the last one is cut short.
        let mut short = data_with_nodes(3, 3, 0xfd);
        short.truncate(short.len() - 2);
        assert!(matches!(
            check_frame(&short),
            Err(GuardError::Truncated {
                what: "node hash",
                ..
            })
        ));
    }

    #[test]
    fn deep_node_index_is_refused() {
        assert_eq!(check_frame(&data_with_nodes(1, 1, (1 << 61) - 1)), Ok(()));
        for index in [(1 << 62) - 1, u64::MAX >> 1, u64::MAX] {
            assert!(matches!(
                check_frame(&data_with_nodes(1, 1, index)),
                Err(GuardError::NodeIndexTooDeep { .. })
            ));
        }
    }

    #[test]
    fn bitfield_words_must_fit() {
        // Channel 1, Bitfield { start 0, words }.
        let mut f = vec![1, 7, 0];
        var(&mut f, 1 << 40);
        assert!(matches!(
            check_frame(&f),
            Err(GuardError::CountTooLarge { min_size: 4, .. })
        ));
        let ok = [1, 7, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(check_frame(&ok), Ok(()));
        assert!(matches!(
            check_frame(&ok[..ok.len() - 1]),
            Err(GuardError::CountTooLarge { count: 2, .. })
        ));
    }

    fn open(channel: u64, dk_len: usize, capability: bool) -> Vec<u8> {
        let mut f = vec![0, 1];
        var(&mut f, channel);
        f.push(15);
        f.extend_from_slice(b"hypercore/alpha");
        var(&mut f, dk_len as u64);
        f.extend(std::iter::repeat_n(9, dk_len));
        if capability {
            f.push(0);
            f.extend_from_slice(&[5; 32]);
        }
        f
    }

    #[test]
    fn channel_opens_are_bounded() {
        assert_eq!(check_frame(&open(1, 32, true)), Ok(()));
        assert_eq!(check_frame(&open(MAX_CHANNEL_ID, 32, false)), Ok(()));
        assert_eq!(
            check_frame(&open(1 << 40, 32, true)),
            Err(GuardError::ChannelIdTooLarge {
                channel: 1 << 40,
                max: MAX_CHANNEL_ID
            })
        );
        assert_eq!(
            check_frame(&open(1, 31, false)),
            Err(GuardError::DiscoveryKeyLength { len: 31 })
        );
        // A capability must be flags + 32 bytes once anything follows the key.
        let mut f = open(1, 32, false);
        f.push(0);
        assert!(matches!(
            check_frame(&f),
            Err(GuardError::Truncated {
                what: "open capability",
                ..
            })
        ));
        // The decoder wants more than five bytes after the prefix.
        assert!(matches!(
            check_frame(&[0, 1, 1, 0, 0]),
            Err(GuardError::Truncated {
                what: "channel open",
                ..
            })
        ));
        assert_eq!(check_frame(&[0, 3, 1]), Ok(()));
        assert!(matches!(
            check_frame(&[0, 2, 1]),
            Err(GuardError::UnknownSpecial { prefix: 2, .. })
        ));
    }

    #[test]
    fn framing_units_and_limits() {
        assert_eq!(check_frame(&[]), Ok(()));
        assert!(matches!(
            check_frame(&[1]),
            Err(GuardError::Truncated { .. })
        ));
        assert!(matches!(
            check_frame(&[1, 10, 0]),
            Err(GuardError::UnknownType { typ: 10, at: 1 })
        ));
        // Two single messages in one frame (Cancel 5, NoData 6): the decoder loops.
        assert_eq!(check_frame(&[1, 2, 5, 1, 4, 6]), Ok(()));
        // A batch on channel 1: Want{0,1}, then Range{start 3, length 1}.
        let batch = [0, 0, 1, 3, 5, 0, 1, 3, 8, 2, 3];
        assert_eq!(check_frame(&batch), Ok(()));
        assert!(matches!(
            check_frame(&[0, 0, 1, 9, 5, 0, 1]),
            Err(GuardError::LengthTooLarge {
                what: "batched message",
                len: 9,
                ..
            })
        ));
        // Extension names are UTF-8.
        assert!(matches!(
            check_frame(&[1, 9, 1, 0xff, 0]),
            Err(GuardError::NotUtf8 { .. })
        ));
        // MAX_MESSAGES_PER_FRAME Cancels pass, one more does not.
        let cancels = |n: usize| [1u8, 2, 0].repeat(n);
        assert_eq!(check_frame(&cancels(MAX_MESSAGES_PER_FRAME)), Ok(()));
        assert_eq!(
            check_frame(&cancels(MAX_MESSAGES_PER_FRAME + 1)),
            Err(GuardError::TooManyMessages {
                max: MAX_MESSAGES_PER_FRAME
            })
        );
    }

    proptest! {
        /// Peer input never panics the check, whatever the bytes.
        #[test]
        fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = check_frame(&frame);
        }

        /// Likely-looking frames (known prefixes and types, then noise) never panic it.
        #[test]
        fn structured_noise_never_panics(
            head in prop_oneof![
                Just(vec![0u8, 0, 1]), Just(vec![0u8, 1]), Just(vec![0u8, 3]),
                (1u8..4, 0u8..12).prop_map(|(c, t)| vec![c, t]),
            ],
            tail in proptest::collection::vec(
                prop_oneof![3 => 0u8..12, 1 => Just(0xffu8), 1 => Just(0xfdu8), 1 => any::<u8>()],
                0..256,
            ),
        ) {
            let mut frame = head;
            frame.extend(tail);
            let _ = check_frame(&frame);
        }
    }
}
