//! Our own reader (and writer) of the oplog file of the `hypercore` 0.17.0-alpha.1 disk
//! storage, written from the format, not from the crate's code (which is not copied).
//!
//! The crate's own decoder is wrong (see `store::open_core` and docs/DESIGN.md §12.6): it
//! reads the tree-upgrade and bitfield parts of an entry under flag bit 2 while the
//! encoder sets bits 4 and 8, so the entries a *replicated* core writes cannot be read
//! back. `store::flush_oplog` uses this module to apply them itself.
//!
//! # Format
//! ```text
//! oplog   = slot1 (4096 B) || slot2 (4096 B) || entry*
//! slot    = frame(header)                    (rest of the slot: ignored)
//! entry   = frame(entry body)
//! frame   = crc32(le u32) || le u32 (len << 2 | partial << 1 | header bit) || body (len B)
//!           crc32 (IEEE) covers the second word and the body.
//! header  = version u8 || flags u8 || key 32 || manifest (version 0, hash 0 = blake2b,
//!           type 1, signer: sig 0 = ed25519, namespace 32, public key 32)
//!           || key pair (buffer public, buffer secret) || user data (string*)
//!           || tree (fork, length, root hash buffer, signature buffer)
//!           || hints (reorgs string*, contiguous length)
//! entry   = flags u8 (1 user data, 2 tree nodes, 4 tree upgrade, 8 bitfield)
//!           || user data (string*) || nodes (count, (index, length, hash 32)*)
//!           || upgrade (fork, ancestors, length, signature buffer)
//!           || bitfield (flags u8: 1 = drop, start, length)      (each part if flagged)
//! ```
//! Integers are compact-encoding varints (< 0xfd: one byte; 0xfd/0xfe/0xff: then a
//! little-endian u16/u32/u64); buffers and strings are a varint length then the bytes;
//! lists a varint count then the items.
//!
//! Which header is current: with `b1`, `b2` the header bits of the two slots, slot 1 if
//! `b1 == b2`, else slot 2; a header write goes to the other slot and flips the parity
//! `b1 != b2`. An entry carries the parity of the header it follows; entries with the
//! other parity are older than the current header (the writer was killed after writing
//! the header and before truncating the entries) and already applied.
//!
//! # Limits
//! Peer-derived data (tree nodes, signatures) is in this file, so decoding is bounded:
//! at most [`MAX_OPLOG_BYTES`], list counts are checked against the bytes left before
//! anything is allocated, block indices stay below [`MAX_BLOCKS`], and decoding never
//! panics (property-tested on random and mutated input).

use thiserror::Error;

/// Bytes of one header slot.
pub const HEADER_SLOT: usize = 4096;
/// Where the entries start.
pub const ENTRIES_AT: usize = 2 * HEADER_SLOT;
/// Largest oplog we read. The crate flushes once its entries reach 64 KiB, so a real
/// oplog is 8 KiB of headers plus a little over 64 KiB.
pub const MAX_OPLOG_BYTES: usize = 16 << 20;
/// Largest feed length (and block index bound) we accept: 2^40 blocks.
pub const MAX_BLOCKS: u64 = 1 << 40;
/// Size of the frame leader (crc32 + length word).
const LEADER: usize = 8;
/// Largest frame body the 30-bit length allows.
const MAX_FRAME_BODY: usize = (1 << 30) - 1;

/// Why an oplog could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OplogError {
    /// The file is over [`MAX_OPLOG_BYTES`].
    #[error("oplog is {0} bytes, over the {MAX_OPLOG_BYTES}-byte limit")]
    TooLarge(usize),
    /// Neither header slot holds a valid header.
    #[error("no valid header in either oplog slot")]
    NoHeader,
    /// A frame whose checksum is right does not decode: not a torn write, a format we
    /// do not know or corrupted storage.
    #[error("malformed oplog {what} at byte {at}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Offset in the file.
        at: usize,
    },
}

/// The tree state a header records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTree {
    /// Fork id.
    pub fork: u64,
    /// Number of blocks.
    pub length: u64,
    /// `tree_hash` of the roots (empty for an empty tree).
    pub root_hash: Vec<u8>,
    /// The feed author's signature of the tree (empty for an empty tree).
    pub signature: Vec<u8>,
}

/// An oplog header. The fields before `tree` are kept as bytes (`prefix`): we never
/// change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Encoded version, flags, key, manifest, key pair and user data.
    pub prefix: Vec<u8>,
    /// The feed's public key (inside `prefix`).
    pub key: [u8; 32],
    /// Tree state.
    pub tree: HeaderTree,
    /// Encoded `reorgs` hint (a string list), kept as is.
    pub reorgs: Vec<u8>,
    /// Number of blocks stored from index 0 without a gap.
    pub contiguous_length: u64,
}

/// A node of the Merkle tree as the oplog stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Flat-tree index.
    pub index: u64,
    /// Bytes under the node.
    pub length: u64,
    /// Hash.
    pub hash: [u8; 32],
}

/// A signed tree upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// Fork id.
    pub fork: u64,
    /// Length the tree is cut to before growing (= the previous length unless truncating).
    pub ancestors: u64,
    /// New length.
    pub length: u64,
    /// Signature of the new tree.
    pub signature: Vec<u8>,
}

/// Blocks set (or, `drop`, cleared) in the bitfield.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitfieldOp {
    /// Clear instead of set.
    pub drop: bool,
    /// First block.
    pub start: u64,
    /// Number of blocks.
    pub length: u64,
}

/// One oplog entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// User data strings (raw bytes).
    pub user_data: Vec<Vec<u8>>,
    /// Tree nodes to store.
    pub nodes: Vec<Node>,
    /// Tree upgrade.
    pub upgrade: Option<Upgrade>,
    /// Bitfield change.
    pub bitfield: Option<BitfieldOp>,
}

/// Which slot a header is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Bytes 0..4096.
    First,
    /// Bytes 4096..8192.
    Second,
}

impl Slot {
    /// Byte offset of the slot.
    pub fn offset(self) -> u64 {
        match self {
            Slot::First => 0,
            Slot::Second => HEADER_SLOT as u64,
        }
    }
}

/// What a header slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Nothing (zeros, short file, or a length that does not fit).
    Empty,
    /// A frame whose checksum fails (a torn header write).
    Torn,
    /// A valid header with its header bit.
    Valid(bool),
}

/// A parsed oplog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oplog {
    /// The current header.
    pub header: Header,
    /// The slot the current header is in.
    pub current: Slot,
    /// State of both slots.
    pub slots: [SlotState; 2],
    /// Entries written after the current header, in order (complete ones only).
    pub entries: Vec<Entry>,
    /// Entries older than the current header (already applied), skipped.
    pub stale: usize,
    /// Bytes after the last complete entry (a torn write, or a trailing partial batch).
    pub torn_bytes: usize,
}

impl Oplog {
    /// Whether the file holds anything but the two header slots, or a torn slot: i.e.
    /// whether the crate would (try to) replay entries or fail to open it.
    pub fn needs_flush(&self) -> bool {
        !self.entries.is_empty()
            || self.stale > 0
            || self.torn_bytes > 0
            || self.slots.contains(&SlotState::Torn)
    }

    /// Where the next header goes and with which bit, so that it becomes the current
    /// one (and flips the entry parity).
    pub fn next_header_slot(&self) -> (Slot, bool) {
        match (&self.slots[0], &self.slots[1]) {
            (SlotState::Valid(b1), SlotState::Valid(b2)) => {
                if b1 != b2 {
                    (Slot::First, !b1)
                } else {
                    (Slot::Second, !b2)
                }
            }
            // Only slot 1 is valid (current): the second slot, differing from slot 1.
            (SlotState::Valid(b1), _) => (Slot::Second, !b1),
            // Only slot 2 is valid (current): the first slot, equal to slot 2.
            (_, SlotState::Valid(b2)) => (Slot::First, *b2),
            // Unreachable for a parsed oplog (it has a header); any choice is valid.
            _ => (Slot::First, false),
        }
    }
}

/// A frame at the start of `buf`.
enum Frame<'a> {
    /// Nothing there: too short, zero length or running past the end.
    None,
    /// Checksum mismatch.
    BadChecksum,
    /// A frame: body, header bit, partial bit, bytes taken.
    Ok {
        body: &'a [u8],
        header_bit: bool,
        partial: bool,
        taken: usize,
    },
}

fn read_frame(buf: &[u8]) -> Frame<'_> {
    let Some((leader, rest)) = buf.split_first_chunk::<LEADER>() else {
        return Frame::None;
    };
    let crc = u32::from_le_bytes([leader[0], leader[1], leader[2], leader[3]]);
    let word = u32::from_le_bytes([leader[4], leader[5], leader[6], leader[7]]);
    let len = (word >> 2) as usize;
    if len == 0 || len > rest.len() {
        return Frame::None;
    }
    let body = &rest[..len];
    let mut h = crc32fast::Hasher::new();
    h.update(&leader[4..]);
    h.update(body);
    if h.finalize() != crc {
        return Frame::BadChecksum;
    }
    Frame::Ok {
        body,
        header_bit: word & 1 == 1,
        partial: word & 2 == 2,
        taken: LEADER + len,
    }
}

/// `body` in a frame.
///
/// # Panics
/// If `body` is longer than a frame can say (2^30 − 1 bytes); callers pass headers and
/// entries of at most a few KiB.
pub fn frame(body: &[u8], header_bit: bool, partial: bool) -> Vec<u8> {
    assert!(body.len() <= MAX_FRAME_BODY, "frame body too long");
    let word = ((body.len() as u32) << 2) | (u32::from(partial) << 1) | u32::from(header_bit);
    let word = word.to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&word);
    h.update(body);
    let mut out = Vec::with_capacity(LEADER + body.len());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&word);
    out.extend_from_slice(body);
    out
}

/// Bounded cursor over one frame body; errors carry the file offset.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn err(&self, what: &'static str) -> OplogError {
        OplogError::Malformed {
            what,
            at: self.base + self.pos,
        }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], OplogError> {
        if n > self.left() {
            return Err(self.err(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, OplogError> {
        Ok(self.bytes(1, what)?[0])
    }

    fn array32(&mut self, what: &'static str) -> Result<[u8; 32], OplogError> {
        let mut out = [0; 32];
        out.copy_from_slice(self.bytes(32, what)?);
        Ok(out)
    }

    fn uint(&mut self, what: &'static str) -> Result<u64, OplogError> {
        let first = self.u8(what)?;
        let width = match first {
            0xfd => 2,
            0xfe => 4,
            0xff => 8,
            x => return Ok(u64::from(x)),
        };
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(self.bytes(width, what)?);
        Ok(u64::from_le_bytes(le))
    }

    /// A count of items of at least `min_item` bytes each, checked against what is left.
    fn count(&mut self, min_item: usize, what: &'static str) -> Result<usize, OplogError> {
        let n = self.uint(what)?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item) <= self.left() => Ok(n),
            _ => Err(self.err(what)),
        }
    }

    fn buffer(&mut self, what: &'static str) -> Result<&'a [u8], OplogError> {
        let n = self.count(1, what)?;
        self.bytes(n, what)
    }

    fn strings(&mut self, what: &'static str) -> Result<Vec<Vec<u8>>, OplogError> {
        let n = self.count(1, what)?;
        (0..n).map(|_| Ok(self.buffer(what)?.to_vec())).collect()
    }

    fn block_index(&mut self, what: &'static str) -> Result<u64, OplogError> {
        let v = self.uint(what)?;
        if v > MAX_BLOCKS {
            return Err(self.err(what));
        }
        Ok(v)
    }

    fn end(&self, what: &'static str) -> Result<(), OplogError> {
        if self.left() != 0 {
            return Err(self.err(what));
        }
        Ok(())
    }
}

fn decode_header(body: &[u8], base: usize) -> Result<Header, OplogError> {
    let mut r = Reader::new(body, base);
    r.bytes(2, "header version and flags")?;
    let key = r.array32("header key")?;
    // Manifest: version 0, blake2b, single signer, ed25519, namespace, public key.
    let m = r.bytes(3, "manifest")?;
    if m != [0, 0, 1] {
        return Err(r.err("manifest (only v0 blake2b single-signer manifests are written)"));
    }
    if r.u8("manifest signer")? != 0 {
        return Err(r.err("manifest signer (only ed25519)"));
    }
    r.bytes(64, "manifest signer keys")?;
    // Key pair: public key buffer (32 B), secret key buffer (empty for a replicated core;
    // secret || public, 64 B, for the author's own core — the `hypercore` crate's
    // `FULL_SIGNING_KEY_LENGTH` with ed25519-dalek's 32-byte secret).
    if r.buffer("header public key")?.len() != 32 {
        return Err(r.err("header public key"));
    }
    if !matches!(r.buffer("header secret key")?.len(), 0 | 64) {
        return Err(r.err("header secret key"));
    }
    r.strings("header user data")?;
    let prefix = body[..r.pos].to_vec();
    let tree = HeaderTree {
        fork: r.uint("tree fork")?,
        length: r.block_index("tree length")?,
        root_hash: r.buffer("tree root hash")?.to_vec(),
        signature: r.buffer("tree signature")?.to_vec(),
    };
    let reorgs_at = r.pos;
    r.strings("reorgs hint")?;
    let reorgs = body[reorgs_at..r.pos].to_vec();
    let contiguous_length = r.block_index("contiguous length hint")?;
    // The crate encodes headers into a buffer sized for two copies: zeros may follow.
    Ok(Header {
        prefix,
        key,
        tree,
        reorgs,
        contiguous_length,
    })
}

fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0xfd {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(0xfd);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(0xfe);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(0xff);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_buffer(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

impl Header {
    /// The header's body (to be framed into a slot).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.prefix.clone();
        put_uint(&mut out, self.tree.fork);
        put_uint(&mut out, self.tree.length);
        put_buffer(&mut out, &self.tree.root_hash);
        put_buffer(&mut out, &self.tree.signature);
        out.extend_from_slice(&self.reorgs);
        put_uint(&mut out, self.contiguous_length);
        out
    }
}

impl Entry {
    /// Decode one entry body; `base` is its offset in the file (for errors).
    pub fn decode(body: &[u8], base: usize) -> Result<Entry, OplogError> {
        let mut r = Reader::new(body, base);
        let flags = r.u8("entry flags")?;
        if flags & !0x0f != 0 {
            return Err(r.err("entry flags (unknown bits)"));
        }
        let mut e = Entry::default();
        if flags & 1 != 0 {
            e.user_data = r.strings("entry user data")?;
        }
        if flags & 2 != 0 {
            // index ≥ 1 B, length ≥ 1 B, hash 32 B
            let n = r.count(34, "entry tree nodes")?;
            e.nodes = (0..n)
                .map(|_| {
                    let index = r.uint("tree node index")?;
                    if index >= 2 * MAX_BLOCKS {
                        return Err(r.err("tree node index"));
                    }
                    Ok(Node {
                        index,
                        length: r.uint("tree node length")?,
                        hash: r.array32("tree node hash")?,
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if flags & 4 != 0 {
            e.upgrade = Some(Upgrade {
                fork: r.uint("upgrade fork")?,
                ancestors: r.block_index("upgrade ancestors")?,
                length: r.block_index("upgrade length")?,
                signature: r.buffer("upgrade signature")?.to_vec(),
            });
        }
        if flags & 8 != 0 {
            let f = r.u8("bitfield flags")?;
            let start = r.block_index("bitfield start")?;
            let length = r.block_index("bitfield length")?;
            if f & !1 != 0 || start + length > MAX_BLOCKS {
                return Err(r.err("bitfield update"));
            }
            e.bitfield = Some(BitfieldOp {
                drop: f & 1 == 1,
                start,
                length,
            });
        }
        r.end("entry (trailing bytes)")?;
        Ok(e)
    }

    /// The entry's body, flagged as the crate's encoder flags it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8];
        if !self.user_data.is_empty() {
            out[0] |= 1;
            put_uint(&mut out, self.user_data.len() as u64);
            for s in &self.user_data {
                put_buffer(&mut out, s);
            }
        }
        if !self.nodes.is_empty() {
            out[0] |= 2;
            put_uint(&mut out, self.nodes.len() as u64);
            for n in &self.nodes {
                put_uint(&mut out, n.index);
                put_uint(&mut out, n.length);
                out.extend_from_slice(&n.hash);
            }
        }
        if let Some(u) = &self.upgrade {
            out[0] |= 4;
            put_uint(&mut out, u.fork);
            put_uint(&mut out, u.ancestors);
            put_uint(&mut out, u.length);
            put_buffer(&mut out, &u.signature);
        }
        if let Some(b) = &self.bitfield {
            out[0] |= 8;
            out.push(u8::from(b.drop));
            put_uint(&mut out, b.start);
            put_uint(&mut out, b.length);
        }
        out
    }
}

fn read_slot(file: &[u8], slot: Slot) -> Result<(SlotState, Option<Header>), OplogError> {
    let at = slot.offset() as usize;
    let Some(bytes) = file.get(at..at + HEADER_SLOT) else {
        // A short file: the crate reads the slot only when it is complete.
        return Ok((SlotState::Empty, None));
    };
    match read_frame(bytes) {
        Frame::None => Ok((SlotState::Empty, None)),
        Frame::BadChecksum => Ok((SlotState::Torn, None)),
        Frame::Ok {
            body, header_bit, ..
        } => Ok((
            SlotState::Valid(header_bit),
            Some(decode_header(body, at + LEADER)?),
        )),
    }
}

/// Parse an oplog file.
pub fn parse(file: &[u8]) -> Result<Oplog, OplogError> {
    if file.len() > MAX_OPLOG_BYTES {
        return Err(OplogError::TooLarge(file.len()));
    }
    let (s1, h1) = read_slot(file, Slot::First)?;
    let (s2, h2) = read_slot(file, Slot::Second)?;
    let (header, current) = match (h1, h2, &s1, &s2) {
        (Some(h1), Some(h2), SlotState::Valid(b1), SlotState::Valid(b2)) => {
            if b1 == b2 {
                (h1, Slot::First)
            } else {
                (h2, Slot::Second)
            }
        }
        (Some(h1), _, _, _) => (h1, Slot::First),
        (None, Some(h2), _, _) => (h2, Slot::Second),
        (None, None, _, _) => return Err(OplogError::NoHeader),
    };
    let slots = [s1, s2];
    // Parity of the current header: the bits differ (slot 2 current) or not (slot 1).
    let parity = match (&slots[0], &slots[1], current) {
        (SlotState::Valid(b1), SlotState::Valid(b2), _) => b1 != b2,
        (_, _, Slot::First) => false,
        (_, _, Slot::Second) => true,
    };
    let mut entries = Vec::new();
    let mut partial_run = 0; // trailing entries of an unfinished atomic batch
    let mut stale = 0;
    let mut at = ENTRIES_AT;
    let mut applied_end = ENTRIES_AT;
    while let Some(rest) = file.get(at..) {
        let Frame::Ok {
            body,
            header_bit,
            partial,
            taken,
        } = read_frame(rest)
        else {
            break;
        };
        if header_bit != parity {
            if !entries.is_empty() {
                // An older entry after newer ones: cannot come from one writer; stop.
                break;
            }
            stale += 1;
            at += taken;
            applied_end = at;
            continue;
        }
        entries.push(Entry::decode(body, at + LEADER)?);
        at += taken;
        if partial {
            partial_run += 1;
        } else {
            partial_run = 0;
            applied_end = at;
        }
    }
    entries.truncate(entries.len() - partial_run);
    let torn_bytes = file.len().saturating_sub(applied_end.max(ENTRIES_AT));
    Ok(Oplog {
        header,
        current,
        slots,
        entries,
        stale,
        torn_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(len: u64, contiguous: u64) -> Header {
        let mut prefix = vec![1, 6];
        prefix.extend_from_slice(&[7; 32]);
        prefix.extend_from_slice(&[0, 0, 1, 0]);
        prefix.extend_from_slice(&[9; 64]);
        put_buffer(&mut prefix, &[7; 32]);
        put_uint(&mut prefix, 0);
        put_uint(&mut prefix, 0);
        Header {
            prefix,
            key: [7; 32],
            tree: HeaderTree {
                fork: 0,
                length: len,
                root_hash: vec![3; 32],
                signature: vec![4; 64],
            },
            reorgs: vec![0],
            contiguous_length: contiguous,
        }
    }

    /// An oplog file: header in slot 1 with bit `b1` (and slot 2 with `b2` if given),
    /// then `entries` framed with the current parity.
    fn file(h: &Header, b1: bool, b2: Option<bool>, entries: &[Entry]) -> Vec<u8> {
        let mut f = vec![0u8; ENTRIES_AT];
        let s1 = frame(&h.encode(), b1, false);
        f[..s1.len()].copy_from_slice(&s1);
        if let Some(b2) = b2 {
            let s2 = frame(&h.encode(), b2, false);
            f[HEADER_SLOT..HEADER_SLOT + s2.len()].copy_from_slice(&s2);
        }
        let parity = b2.is_some_and(|b2| b2 != b1);
        for e in entries {
            f.extend_from_slice(&frame(&e.encode(), parity, false));
        }
        f
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let node = (0..2 * MAX_BLOCKS, any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(index, length, hash)| Node {
                index,
                length,
                hash,
            },
        );
        let upgrade = (
            any::<u64>(),
            0..=MAX_BLOCKS,
            0..=MAX_BLOCKS,
            prop::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(fork, ancestors, length, signature)| Upgrade {
                fork,
                ancestors,
                length,
                signature,
            });
        let bits = (any::<bool>(), 0..MAX_BLOCKS / 2, 0..MAX_BLOCKS / 2).prop_map(
            |(drop, start, length)| BitfieldOp {
                drop,
                start,
                length,
            },
        );
        (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..3),
            prop::collection::vec(node, 0..20),
            prop::option::of(upgrade),
            prop::option::of(bits),
        )
            .prop_map(|(user_data, nodes, upgrade, bitfield)| Entry {
                user_data,
                nodes,
                upgrade,
                bitfield,
            })
    }

    proptest! {
        #[test]
        fn entry_round_trip(e in arb_entry()) {
            prop_assert_eq!(Entry::decode(&e.encode(), 0), Ok(e));
        }

        #[test]
        fn entry_prefixes_and_trailing_bytes_rejected(e in arb_entry(), extra in any::<u8>()) {
            let b = e.encode();
            for n in 0..b.len() {
                prop_assert!(Entry::decode(&b[..n], 0).is_err());
            }
            let mut long = b.clone();
            long.push(extra);
            prop_assert!(Entry::decode(&long, 0).is_err());
        }

        #[test]
        fn random_entry_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = Entry::decode(&b, 0);
        }

        #[test]
        fn oplog_round_trip(entries in prop::collection::vec(arb_entry(), 0..6), second in any::<Option<bool>>(), b1 in any::<bool>()) {
            let h = header(5, 3);
            let f = file(&h, b1, second, &entries);
            let op = parse(&f).unwrap();
            prop_assert_eq!(&op.header, &h);
            prop_assert_eq!(&op.entries, &entries);
            prop_assert_eq!((op.stale, op.torn_bytes), (0, 0));
            prop_assert_eq!(op.needs_flush(), !entries.is_empty());
        }

        /// A write cut anywhere in the entries keeps exactly the complete entries before it.
        #[test]
        fn torn_tail_keeps_complete_entries(entries in prop::collection::vec(arb_entry(), 1..6), cut in any::<prop::sample::Index>()) {
            let f = file(&header(5, 3), true, Some(false), &entries);
            let cut = ENTRIES_AT + cut.index(f.len() - ENTRIES_AT);
            let op = parse(&f[..cut]).unwrap();
            let mut ends = vec![ENTRIES_AT];
            for e in &entries {
                ends.push(ends[ends.len() - 1] + LEADER + e.encode().len());
            }
            let complete = ends.iter().filter(|&&end| end <= cut).count() - 1;
            prop_assert_eq!(&op.entries[..], &entries[..complete]);
            prop_assert_eq!(op.torn_bytes, cut - ends[complete]);
        }

        /// Random bytes and random mutations of a valid oplog never panic.
        #[test]
        fn mutated_oplog_never_panics(
            entries in prop::collection::vec(arb_entry(), 0..4),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            noise in prop::collection::vec(any::<u8>(), 0..9000),
        ) {
            let mut f = file(&header(9, 9), false, Some(false), &entries);
            for (i, b) in flips {
                let i = i.index(f.len());
                f[i] ^= b;
            }
            let _ = parse(&f);
            let _ = parse(&noise);
        }
    }

    #[test]
    fn stale_entries_are_skipped() {
        let e = Entry {
            bitfield: Some(BitfieldOp {
                drop: false,
                start: 0,
                length: 1,
            }),
            ..Entry::default()
        };
        // Current header in slot 2 (bits differ: parity 1); entries with parity 0 are older.
        let h = header(1, 1);
        let mut f = file(&h, true, Some(false), &[]);
        f.extend_from_slice(&frame(&e.encode(), false, false));
        let op = parse(&f).unwrap();
        assert_eq!((op.entries.len(), op.stale), (0, 1));
        assert!(op.needs_flush());
        assert_eq!(op.current, Slot::Second);
        assert_eq!(op.next_header_slot(), (Slot::First, false));
    }

    #[test]
    fn torn_header_slot_falls_back_to_the_other() {
        let h = header(4, 4);
        let mut f = file(&h, false, Some(true), &[]);
        f[HEADER_SLOT + 20] ^= 0xff; // slot 2 (current by the bits) is torn
        let op = parse(&f).unwrap();
        assert_eq!(op.current, Slot::First);
        assert_eq!(op.slots[1], SlotState::Torn);
        assert!(op.needs_flush());
        // Writing slot 2 with a bit differing from slot 1 makes it current.
        assert_eq!(op.next_header_slot(), (Slot::Second, true));
    }

    #[test]
    fn trailing_partial_batch_is_dropped() {
        let e = Entry {
            bitfield: Some(BitfieldOp {
                drop: false,
                start: 2,
                length: 1,
            }),
            ..Entry::default()
        };
        let h = header(4, 0);
        let mut f = file(&h, false, None, std::slice::from_ref(&e));
        f.extend_from_slice(&frame(&e.encode(), false, true));
        let op = parse(&f).unwrap();
        assert_eq!(op.entries, vec![e.clone()]);
        assert!(op.torn_bytes > 0);
    }

    #[test]
    fn limits() {
        assert_eq!(
            parse(&vec![0; MAX_OPLOG_BYTES + 1]),
            Err(OplogError::TooLarge(MAX_OPLOG_BYTES + 1))
        );
        assert_eq!(parse(&[0; ENTRIES_AT]), Err(OplogError::NoHeader));
        // A node count far beyond the bytes is refused before allocating.
        let mut b = vec![2u8, 0xff];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            Entry::decode(&b, 0),
            Err(OplogError::Malformed {
                what: "entry tree nodes",
                ..
            })
        ));
    }

    /// What the crate's buggy decoder cannot read, ours reads: the entries a replicated
    /// core writes (flags 2|8 for a block, 2|4 for an upgrade without a block).
    #[test]
    fn replicated_entry_shapes() {
        let block = Entry {
            nodes: vec![Node {
                index: 504,
                length: 16384,
                hash: [5; 32],
            }],
            bitfield: Some(BitfieldOp {
                drop: false,
                start: 252,
                length: 1,
            }),
            ..Entry::default()
        };
        assert_eq!(block.encode()[0], 2 | 8);
        let upgrade = Entry {
            nodes: vec![Node {
                index: 1023,
                length: 1 << 24,
                hash: [6; 32],
            }],
            upgrade: Some(Upgrade {
                fork: 0,
                ancestors: 0,
                length: 1024,
                signature: vec![1; 64],
            }),
            ..Entry::default()
        };
        assert_eq!(upgrade.encode()[0], 2 | 4);
        let f = file(
            &header(0, 0),
            false,
            None,
            &[upgrade.clone(), block.clone()],
        );
        assert_eq!(parse(&f).unwrap().entries, vec![upgrade, block]);
    }
}
