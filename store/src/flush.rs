//! Our own oplog flush for the `hypercore` 0.17.0-alpha.1 disk storage of one feed.
//!
//! The crate writes every change first as an oplog entry and copies the entries into
//! the `tree` and `bitfield` files ("flush") only every fourth write. Its oplog decoder is
//! wrong for the entries a replicated core writes (docs/DESIGN.md §12.6), so the crate
//! cannot reopen a core with unflushed entries. Before the crate opens a feed,
//! [`flush_oplog`] does the flush itself: it reads the entries with our decoder
//! ([`crate::oplog`]), writes their tree nodes and bitfield bits into the `tree` and
//! `bitfield` files, writes a new header (tree length and signature of the last upgrade,
//! contiguous length) into the other header slot, and cuts the entries off. The crate
//! then opens an oplog without entries and never runs its broken replay.
//!
//! # Crash safety (kill -9 at any point)
//! The writes go in the order the crate's own flush uses, each synced before the next:
//! tree nodes and bitfield pages, then the header, then the truncation. Until the header
//! is written the entries are still current and a rerun applies them again (node and bit
//! writes are idempotent, the upgrade deterministic); once it is written they are stale
//! (their header bit no longer matches) and are skipped. `tests/crash_points.rs` cuts
//! the crate's writes and ours at every write and reopens.
//!
//! # What it checks
//! The oplog holds data from peers, so the flush re-checks what it writes: the last
//! upgrade's signature must verify against the feed key over the roots it implies;
//! upgrades must extend the tree (a truncating or forking upgrade is refused, the hoster
//! never applies one); bitfield ranges must lie inside the tree.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use datdot_protocol::tree::{TreeNode, signable, tree_hash};
use hypercore::{Signature, VerifyingKey};
use thiserror::Error;

use crate::oplog::{self, BitfieldOp, ENTRIES_AT, MAX_OPLOG_BYTES, OplogError};

/// Bytes per tree node in the `tree` file: u64 LE length, then the 32-byte hash.
const NODE_BYTES: u64 = 40;
/// Bytes per bitfield page the crate writes (bit `i` is bit `i % 8` of byte `i / 8`).
const PAGE_BYTES: u64 = 4096;
/// Blocks per bitfield page.
const PAGE_BLOCKS: u64 = PAGE_BYTES * 8;

/// Why a feed's oplog could not be flushed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FlushError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The oplog does not parse.
    #[error(transparent)]
    Oplog(#[from] OplogError),
    /// The oplog belongs to another feed.
    #[error("oplog is for feed {found}, expected {expected}")]
    WrongFeed {
        /// Key in the header.
        found: String,
        /// Key asked for.
        expected: String,
    },
    /// An entry cannot be applied (see the module docs for what is checked).
    #[error("unflushed oplog entry {entry}: {reason}")]
    BadEntry {
        /// Position among the current entries.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One step of a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Write `bytes` at `offset` of `file`.
    At {
        /// `tree`, `bitfield` or `oplog`.
        file: &'static str,
        /// Byte offset.
        offset: u64,
        /// Bytes.
        bytes: Vec<u8>,
    },
    /// Set the length of `file`.
    SetLen {
        /// The file.
        file: &'static str,
        /// New length.
        len: u64,
    },
    /// fsync `file` (orders the steps for power loss too; kill -9 needs only the order).
    Sync {
        /// The file.
        file: &'static str,
    },
}

/// What a flush does (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Current entries applied.
    pub entries: usize,
    /// Stale entries dropped.
    pub stale: usize,
    /// Bytes of a torn tail dropped.
    pub torn_bytes: usize,
    /// Tree length after the flush.
    pub length: u64,
    /// Contiguous length after the flush.
    pub contiguous: u64,
    /// The writes, in order.
    pub writes: Vec<Write>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FlushError + '_ {
    move |source| FlushError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read `len` bytes at `offset` of `file` under `dir`; bytes past the end read as zeros.
fn read_at(dir: &Path, file: &str, offset: u64, len: usize) -> Result<Vec<u8>, FlushError> {
    let path = dir.join(file);
    let mut buf = vec![0; len];
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(buf),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut done = 0;
    while done < len {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(buf)
}

/// The full roots of a tree of `length` blocks, left to right (flat-tree indices).
fn full_roots(length: u64) -> Vec<u64> {
    let (mut done, mut left, mut out) = (0u64, length, Vec::new());
    while left > 0 {
        let width = 1u64 << (63 - left.leading_zeros());
        out.push(2 * done + width - 1);
        done += width;
        left -= width;
    }
    out
}

/// Plan the flush of the feed storage in `dir` (feed `key`); `None` if the oplog holds
/// nothing to flush (or does not exist). Reads only.
pub fn plan(dir: &Path, key: &[u8; 32]) -> Result<Option<Plan>, FlushError> {
    let path = dir.join("oplog");
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    if len > MAX_OPLOG_BYTES as u64 {
        return Err(OplogError::TooLarge(usize::try_from(len).unwrap_or(usize::MAX)).into());
    }
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let op = oplog::parse(&bytes)?;
    if op.header.key != *key {
        return Err(FlushError::WrongFeed {
            found: hex::encode(op.header.key),
            expected: hex::encode(key),
        });
    }
    if !op.needs_flush() {
        return Ok(None);
    }
    if op.entries.is_empty() {
        return Ok(Some(plan_cut(&op)));
    }
    if op.stale > 0 {
        // The crate truncates the entries right after writing a header and we do too, so
        // older entries are never followed by newer ones.
        return Err(FlushError::BadEntry {
            entry: 0,
            reason: format!(
                "{} entries older than the header precede {} newer ones",
                op.stale,
                op.entries.len()
            ),
        });
    }

    // Replay the entries on a model of the header, the new nodes and the bit changes.
    let mut tree = op.header.tree.clone();
    let mut nodes: BTreeMap<u64, oplog::Node> = BTreeMap::new();
    let mut bits: Vec<BitfieldOp> = Vec::new();
    let mut upgraded = false;
    for (i, e) in op.entries.iter().enumerate() {
        let bad = |reason: String| FlushError::BadEntry { entry: i, reason };
        for n in &e.nodes {
            nodes.insert(n.index, n.clone());
        }
        if let Some(u) = &e.upgrade {
            if u.fork != tree.fork || u.ancestors != tree.length || u.length < tree.length {
                return Err(bad(format!(
                    "upgrade (fork {}, ancestors {}, length {}) does not extend the tree (fork {}, length {}); truncation is not supported",
                    u.fork, u.ancestors, u.length, tree.fork, tree.length
                )));
            }
            tree.length = u.length;
            tree.signature = u.signature.clone();
            upgraded = true;
        }
        if let Some(b) = e.bitfield {
            if b.start + b.length > tree.length {
                return Err(bad(format!(
                    "bitfield {}..{} beyond the tree length {}",
                    b.start,
                    b.start + b.length,
                    tree.length
                )));
            }
            bits.push(b);
        }
    }
    for n in nodes.values() {
        if n.index >= 2 * tree.length {
            return Err(FlushError::BadEntry {
                entry: op.entries.len(),
                reason: format!(
                    "tree node {} beyond the tree length {}",
                    n.index, tree.length
                ),
            });
        }
    }

    if upgraded {
        // The roots of the new length: from the entries, else from the tree file.
        let mut roots = Vec::new();
        for r in full_roots(tree.length) {
            let n = match nodes.get(&r) {
                Some(n) => TreeNode {
                    index: r,
                    size: n.length,
                    hash: n.hash,
                },
                None => {
                    let b = read_at(dir, "tree", r * NODE_BYTES, NODE_BYTES as usize)?;
                    let mut hash = [0u8; 32];
                    hash.copy_from_slice(&b[8..]);
                    if hash == [0; 32] {
                        return Err(FlushError::BadEntry {
                            entry: op.entries.len(),
                            reason: format!("root node {r} of the upgraded tree is missing"),
                        });
                    }
                    let mut size = [0u8; 8];
                    size.copy_from_slice(&b[..8]);
                    TreeNode {
                        index: r,
                        size: u64::from_le_bytes(size),
                        hash,
                    }
                }
            };
            roots.push(n);
        }
        let root_hash = tree_hash(&roots);
        let verified = <[u8; 64]>::try_from(&tree.signature[..])
            .ok()
            .map(|s| Signature::from_bytes(&s))
            .zip(VerifyingKey::from_bytes(key).ok())
            .is_some_and(|(sig, vk)| {
                vk.verify_strict(&signable(&root_hash, tree.length, tree.fork), &sig)
                    .is_ok()
            });
        if !verified {
            return Err(FlushError::BadEntry {
                entry: op.entries.len(),
                reason: format!(
                    "the signature of the upgrade to length {} does not verify with the feed key",
                    tree.length
                ),
            });
        }
        tree.root_hash = root_hash.to_vec();
    }

    let mut writes = Vec::new();
    // 1. Tree nodes.
    for n in nodes.values() {
        let mut b = n.length.to_le_bytes().to_vec();
        b.extend_from_slice(&n.hash);
        writes.push(Write::At {
            file: "tree",
            offset: n.index * NODE_BYTES,
            bytes: b,
        });
    }
    if !nodes.is_empty() {
        writes.push(Write::Sync { file: "tree" });
    }
    // 2. Bitfield pages, changed in entry order.
    let mut pages: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for b in &bits {
        for i in b.start..b.start + b.length {
            let page = i / PAGE_BLOCKS;
            let p = match pages.entry(page) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(read_at(
                    dir,
                    "bitfield",
                    page * PAGE_BYTES,
                    PAGE_BYTES as usize,
                )?),
            };
            let bit = i % PAGE_BLOCKS;
            let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
            if b.drop {
                p[byte] &= !mask;
            } else {
                p[byte] |= mask;
            }
        }
    }
    // 3. Contiguous length over the bitfield as it will be.
    let mut contiguous = 0;
    'scan: while contiguous < tree.length {
        let page = contiguous / PAGE_BLOCKS;
        let p = match pages.get(&page) {
            Some(p) => p.clone(),
            None => read_at(dir, "bitfield", page * PAGE_BYTES, PAGE_BYTES as usize)?,
        };
        for bit in contiguous % PAGE_BLOCKS..PAGE_BLOCKS {
            if contiguous >= tree.length || p[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
                break 'scan;
            }
            contiguous += 1;
        }
    }
    let changed_bits = !pages.is_empty();
    for (page, bytes) in pages {
        writes.push(Write::At {
            file: "bitfield",
            offset: page * PAGE_BYTES,
            bytes,
        });
    }
    if changed_bits {
        writes.push(Write::Sync { file: "bitfield" });
    }
    // 4. The header, into the slot that makes it current; 5. cut the entries off.
    let mut header = op.header.clone();
    header.tree = tree;
    header.contiguous_length = contiguous;
    let (slot, bit) = op.next_header_slot();
    writes.push(Write::At {
        file: "oplog",
        offset: slot.offset(),
        bytes: oplog::frame(&header.encode(), bit, false),
    });
    writes.push(Write::Sync { file: "oplog" });
    writes.push(Write::SetLen {
        file: "oplog",
        len: ENTRIES_AT as u64,
    });
    writes.push(Write::Sync { file: "oplog" });
    Ok(Some(Plan {
        entries: op.entries.len(),
        stale: op.stale,
        torn_bytes: op.torn_bytes,
        length: header.tree.length,
        contiguous,
        writes,
    }))
}

/// Nothing to apply: only stale entries (already applied: the writer was killed between
/// a header write and the truncation), a torn tail, or a torn header slot. Cut the
/// entries off first, *then* repair a torn slot: writing a header flips the entry
/// parity, which would make stale entries current again.
fn plan_cut(op: &oplog::Oplog) -> Plan {
    let mut writes = vec![
        Write::SetLen {
            file: "oplog",
            len: ENTRIES_AT as u64,
        },
        Write::Sync { file: "oplog" },
    ];
    if op.slots.contains(&oplog::SlotState::Torn) {
        let (slot, bit) = op.next_header_slot();
        writes.push(Write::At {
            file: "oplog",
            offset: slot.offset(),
            bytes: oplog::frame(&op.header.encode(), bit, false),
        });
        writes.push(Write::Sync { file: "oplog" });
    }
    Plan {
        entries: 0,
        stale: op.stale,
        torn_bytes: op.torn_bytes,
        length: op.header.tree.length,
        contiguous: op.header.contiguous_length,
        writes,
    }
}

/// Carry out `writes` in order on the files under `dir`.
pub fn execute(dir: &Path, writes: &[Write]) -> Result<(), FlushError> {
    let open = |file: &str| {
        let path = dir.join(file);
        File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))
            .map(|f| (f, path))
    };
    for w in writes {
        match w {
            Write::At {
                file,
                offset,
                bytes,
            } => {
                let (f, path) = open(file)?;
                f.write_all_at(bytes, *offset).map_err(io(&path))?;
            }
            Write::SetLen { file, len } => {
                let (f, path) = open(file)?;
                f.set_len(*len).map_err(io(&path))?;
            }
            Write::Sync { file } => {
                let (f, path) = open(file)?;
                f.sync_all().map_err(io(&path))?;
            }
        }
    }
    Ok(())
}

/// Flush the oplog of the feed storage in `dir` if it holds entries (see the module
/// docs); returns what was done, `None` if nothing was needed.
pub fn flush_oplog(dir: &Path, key: &[u8; 32]) -> Result<Option<Plan>, FlushError> {
    let Some(plan) = plan(dir, key)? else {
        return Ok(None);
    };
    execute(dir, &plan.writes)?;
    Ok(Some(plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(full_roots(0), Vec::<u64>::new());
        assert_eq!(full_roots(1), vec![0]);
        assert_eq!(full_roots(3), vec![1, 4]);
        assert_eq!(full_roots(1024), vec![1023]);
        assert_eq!(full_roots(7), vec![3, 9, 12]);
    }
}
