//! Hypercore (v10 format) block proofs, verified against the feed author's signed root.
//!
//! The chain uses this to judge *bad-data* fraud proofs: a hoster signed that block `i`
//! has leaf hash `h`, and a [`BlockProof`] shows that the feed's signed tree says
//! otherwise. Everything here is `no_std` and pure.
//!
//! # The tree, exactly as Hypercore builds it
//! All integers are 8-byte **little-endian** (compact-encoding's fixed-width `uint64`);
//! all hashes are BLAKE2b-256.
//! - leaf: `H(0x00 || u64 len(data) || data)`
//! - parent: `H(0x01 || u64 (left.size + right.size) || left.hash || right.hash)`, where
//!   `left` is the child with the lower node index and sizes are byte lengths;
//! - tree: `H(0x02 || for each root in index order: root.hash || u64 root.index || u64 root.size)`;
//! - signable: `TREE || tree_hash || u64 length || u64 fork` (80 bytes), where
//!   `TREE = H(H("hypercore") || 0x00)` ([`TREE_NAMESPACE`]); the feed key signs it with
//!   plain ed25519 (no datdot domain prefix).
//!
//! Nodes use flat-tree indexing: block `i` is node `2i`, a node at depth `d` covers
//! `2^d` blocks, and a tree of `length` blocks is summarised by its *full roots*, one
//! per set bit of `length`, left to right.

use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use crate::hash::{Hash, blake2b256};
use crate::identity::{PublicKey, Signature};

/// At most this many roots are accepted (one per set bit of a length below 2^62).
pub const MAX_ROOTS: usize = 64;
/// At most this many siblings are accepted (the height of a tree below 2^62 blocks).
pub const MAX_SIBLINGS: usize = 64;
/// The largest feed length accepted: keeps every flat-tree index below 2^63.
pub const MAX_LENGTH: u64 = 1 << 62;

/// Hypercore's `TREE` namespace: `BLAKE2b-256(BLAKE2b-256("hypercore") || 0x00)`.
pub const TREE_NAMESPACE: Hash = [
    0x9f, 0xac, 0x70, 0xb5, 0x0c, 0xa1, 0x4e, 0xfc, 0x4e, 0x91, 0xc8, 0x33, 0xb2, 0x04, 0xe7, 0x5b,
    0x8b, 0x5a, 0xad, 0x8b, 0x58, 0x81, 0xbf, 0xc0, 0xad, 0xb5, 0xef, 0x38, 0xa3, 0x27, 0x5b, 0x9c,
];

/// Hash of a block: `H(0x00 || u64le len || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    blake2b256(&[&[0x00], &(data.len() as u64).to_le_bytes(), data])
}

/// Hash of a parent whose children (lower index first) cover `size` bytes together:
/// `H(0x01 || u64le size || left || right)`.
pub fn parent_hash(size: u64, left: &Hash, right: &Hash) -> Hash {
    blake2b256(&[&[0x01], &size.to_le_bytes(), left, right])
}

/// Hash of a tree's roots (in index order): `H(0x02 || (hash || u64le index || u64le size)*)`.
pub fn tree_hash(roots: &[TreeNode]) -> Hash {
    let mut buf = Vec::with_capacity(1 + roots.len() * 48);
    buf.push(0x02);
    for r in roots {
        buf.extend_from_slice(&r.hash);
        buf.extend_from_slice(&r.index.to_le_bytes());
        buf.extend_from_slice(&r.size.to_le_bytes());
    }
    blake2b256(&[&buf])
}

/// The 80 bytes the feed key signs: `TREE || tree_hash || u64le length || u64le fork`.
pub fn signable(tree_hash: &Hash, length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(&TREE_NAMESPACE);
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..].copy_from_slice(&fork.to_le_bytes());
    out
}

/// Flat-tree index arithmetic. Callers keep indices below 2^63 (see [`MAX_LENGTH`]).
pub mod build;

/// The number of siblings on block `index`'s path to the full root of a `length`-block
/// tree that covers it (what a reader holding only the roots asks a peer for); `None`
/// if `index` is not below `length` or `length` exceeds [`MAX_LENGTH`].
pub fn path_len(index: u64, length: u64) -> Option<u32> {
    if index >= length || length > MAX_LENGTH {
        return None;
    }
    let leaf = 2 * index;
    flat::full_roots(length)
        .find(|r| {
            let (lo, hi) = flat::span(*r);
            (lo..=hi).contains(&leaf)
        })
        .map(flat::depth)
}

pub(crate) mod flat {
    /// Depth of node `i` (0 for leaves): its number of trailing one bits.
    pub(crate) fn depth(i: u64) -> u32 {
        i.trailing_ones()
    }

    /// Whether `i` is the left child of its parent.
    fn is_left(i: u64) -> bool {
        (i >> (depth(i) + 1)) & 1 == 0
    }

    /// The parent of `i`.
    pub(crate) fn parent(i: u64) -> u64 {
        let half = 1u64 << depth(i);
        if is_left(i) { i + half } else { i - half }
    }

    /// The other child of `i`'s parent.
    pub(crate) fn sibling(i: u64) -> u64 {
        let width = 2u64 << depth(i);
        if is_left(i) { i + width } else { i - width }
    }

    /// The lowest and highest leaf node indices under `i` (inclusive).
    pub(crate) fn span(i: u64) -> (u64, u64) {
        let reach = (1u64 << depth(i)) - 1;
        (i - reach, i + reach)
    }

    /// The full roots of a tree of `length` blocks, left to right.
    pub(crate) fn full_roots(length: u64) -> impl Iterator<Item = u64> {
        let mut done = 0u64;
        let mut left = length;
        core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            // The largest power of two not above `left` blocks is the next root's width.
            let width = 1u64 << (63 - left.leading_zeros());
            let root = 2 * done + width - 1;
            done += width;
            left -= width;
            Some(root)
        })
    }
}

/// A node of the merkle tree: its flat-tree index, the bytes it covers and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// Flat-tree index (block `i` is node `2i`).
    pub index: u64,
    /// Number of data bytes under this node.
    pub size: u64,
    /// The node's hash.
    pub hash: Hash,
}

/// The feed author's signature over a tree of `length` blocks at `fork`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTreeRoot {
    /// Number of blocks in the signed tree.
    pub length: u64,
    /// Hypercore fork id (0 unless the feed was truncated).
    pub fork: u64,
    /// The full roots of the tree, left to right.
    pub roots: Vec<TreeNode>,
    /// ed25519 signature of [`signable`] by the feed key.
    pub signature: Signature,
}

/// Proof that block `index` of a feed has leaf `leaf`: the uncle path up to one of the
/// roots the feed author signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockProof {
    /// The block index.
    pub index: u64,
    /// The block's leaf: node `2 * index`, size = block length, hash = [`leaf_hash`].
    pub leaf: TreeNode,
    /// Siblings from the leaf's up to the child of the covering root.
    pub siblings: Vec<TreeNode>,
    /// The signed tree the path leads into.
    pub root: SignedTreeRoot,
}

/// Why a tree proof was rejected. Every variant is evidence against whoever produced
/// the proof (none means "data missing": a proof is complete or it is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The signed length is beyond what this verifier handles.
    #[error("signed length {length} exceeds the limit of {max}", max = MAX_LENGTH)]
    LengthTooLarge {
        /// The signed length.
        length: u64,
    },
    /// The roots are not exactly the full roots of a tree of the signed length.
    #[error(
        "signed roots do not fit a tree of {length} blocks: root #{position} should be node {expected:?}, is {got:?}"
    )]
    WrongRoots {
        /// The signed length.
        length: u64,
        /// Position in the root list.
        position: usize,
        /// The node index that belongs there (`None`: no more roots).
        expected: Option<u64>,
        /// The node index found there (`None`: list too short).
        got: Option<u64>,
    },
    /// The feed key's signature over the roots does not verify.
    #[error("feed signature over the tree of {length} blocks (fork {fork}) does not verify")]
    BadSignature {
        /// The signed length.
        length: u64,
        /// The signed fork.
        fork: u64,
    },
    /// The proven block is not in the signed tree.
    #[error("block {block} is beyond the signed length {length}")]
    IndexOutOfRange {
        /// The block index.
        block: u64,
        /// The signed length.
        length: u64,
    },
    /// The leaf node is not block `block`'s node.
    #[error("block {block}: leaf is node {got}, should be node {}", 2 * block)]
    LeafIndexMismatch {
        /// The block index.
        block: u64,
        /// The leaf's node index.
        got: u64,
    },
    /// A sibling is not the node the path needs at that height.
    #[error("block {block}: sibling #{position} is node {got}, should be node {expected}")]
    SiblingIndexMismatch {
        /// The block index.
        block: u64,
        /// Position in the sibling list.
        position: usize,
        /// The node index the path needs.
        expected: u64,
        /// The node index found.
        got: u64,
    },
    /// The path ends below the covering root.
    #[error("block {block}: path ends at node {reached}, below its root node {root}")]
    MissingSiblings {
        /// The block index.
        block: u64,
        /// Where the path ended.
        reached: u64,
        /// The covering root.
        root: u64,
    },
    /// The path goes on after reaching the covering root.
    #[error("block {block}: {extra} siblings beyond its root node {root}")]
    ExtraSiblings {
        /// The block index.
        block: u64,
        /// How many siblings are left over.
        extra: usize,
        /// The covering root.
        root: u64,
    },
    /// Node sizes add up past `u64::MAX`.
    #[error("block {block}: node sizes overflow")]
    SizeOverflow {
        /// The block index.
        block: u64,
    },
    /// The path's top does not equal the signed root: leaf or siblings are wrong.
    #[error("block {block}: leaf and siblings do not hash to the signed root node {root}")]
    RootMismatch {
        /// The block index.
        block: u64,
        /// The covering root.
        root: u64,
    },
    /// The block's length differs from the proven leaf's size.
    #[error("block {block}: data is {got} bytes, the proven leaf covers {proven}")]
    LeafSizeMismatch {
        /// The block index.
        block: u64,
        /// The leaf's size.
        proven: u64,
        /// The data's length.
        got: u64,
    },
    /// The block's data does not hash to the proven leaf.
    #[error("block {block}: data does not hash to the proven leaf hash")]
    LeafHashMismatch {
        /// The block index.
        block: u64,
    },
}

impl SignedTreeRoot {
    /// Check that the roots are the full roots of `length` blocks and that `feed`
    /// signed them; returns the tree hash.
    pub fn verify(&self, feed: &PublicKey) -> Result<Hash, TreeError> {
        self.check_roots()?;
        self.check_signature(feed)
    }

    fn check_roots(&self) -> Result<(), TreeError> {
        let length = self.length;
        if length > MAX_LENGTH {
            return Err(TreeError::LengthTooLarge { length });
        }
        let mut got = self.roots.iter().map(|r| r.index);
        let mut expected = flat::full_roots(length);
        let mut position = 0;
        loop {
            match (expected.next(), got.next()) {
                (None, None) => return Ok(()),
                (e, g) if e == g => position += 1,
                (expected, got) => {
                    return Err(TreeError::WrongRoots {
                        length,
                        position,
                        expected,
                        got,
                    });
                }
            }
        }
    }

    fn check_signature(&self, feed: &PublicKey) -> Result<Hash, TreeError> {
        let tree = tree_hash(&self.roots);
        let msg = signable(&tree, self.length, self.fork);
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        // Strict: honest (libsodium or dalek) signatures pass, malleated ones do not.
        feed.verifying_key()
            .verify_strict(&msg, &sig)
            .map_err(|_| TreeError::BadSignature {
                length: self.length,
                fork: self.fork,
            })?;
        Ok(tree)
    }
}

impl BlockProof {
    /// Check that `leaf` is block `index`'s leaf in the tree `feed` signed: the path
    /// hashes up to a signed root, and the signature verifies.
    pub fn verify(&self, feed: &PublicKey) -> Result<(), TreeError> {
        self.verify_path()?;
        self.root.check_signature(feed).map(|_| ())
    }

    /// Everything [`verify`](Self::verify) checks but the feed's signature: that the
    /// roots are the full roots of the signed length and that the leaf's path hashes up
    /// to one of them. For a reader that verified `root` once
    /// ([`SignedTreeRoot::verify`]) and checks many blocks against it.
    pub fn verify_path(&self) -> Result<(), TreeError> {
        let block = self.index;
        let length = self.root.length;
        self.root.check_roots()?;
        if block >= length {
            return Err(TreeError::IndexOutOfRange { block, length });
        }
        let leaf = 2 * block;
        if self.leaf.index != leaf {
            return Err(TreeError::LeafIndexMismatch {
                block,
                got: self.leaf.index,
            });
        }
        let root = self
            .root
            .roots
            .iter()
            .find(|r| {
                let (lo, hi) = flat::span(r.index);
                (lo..=hi).contains(&leaf)
            })
            .expect("the full roots of `length` cover every block below `length`");

        let mut top = self.leaf.clone();
        for (position, sib) in self.siblings.iter().enumerate() {
            if top.index == root.index {
                return Err(TreeError::ExtraSiblings {
                    block,
                    extra: self.siblings.len() - position,
                    root: root.index,
                });
            }
            let expected = flat::sibling(top.index);
            if sib.index != expected {
                return Err(TreeError::SiblingIndexMismatch {
                    block,
                    position,
                    expected,
                    got: sib.index,
                });
            }
            let size = top
                .size
                .checked_add(sib.size)
                .ok_or(TreeError::SizeOverflow { block })?;
            let (l, r) = if top.index < sib.index {
                (&top, sib)
            } else {
                (sib, &top)
            };
            top = TreeNode {
                index: flat::parent(top.index),
                size,
                hash: parent_hash(size, &l.hash, &r.hash),
            };
        }
        if top.index != root.index {
            return Err(TreeError::MissingSiblings {
                block,
                reached: top.index,
                root: root.index,
            });
        }
        if top != *root {
            return Err(TreeError::RootMismatch {
                block,
                root: root.index,
            });
        }
        Ok(())
    }

    /// [`verify`](Self::verify), and check that `data` is the proven block.
    pub fn verify_block(&self, feed: &PublicKey, data: &[u8]) -> Result<(), TreeError> {
        let block = self.index;
        if self.leaf.size != data.len() as u64 {
            return Err(TreeError::LeafSizeMismatch {
                block,
                proven: self.leaf.size,
                got: data.len() as u64,
            });
        }
        if leaf_hash(data) != self.leaf.hash {
            return Err(TreeError::LeafHashMismatch { block });
        }
        self.verify(feed)
    }
}

impl Encode for TreeNode {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.index);
        w.u64(self.size);
        w.array(&self.hash);
    }
}

impl Decode for TreeNode {
    const MIN_SIZE: usize = 8 + 8 + 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TreeNode {
            index: r.u64()?,
            size: r.u64()?,
            hash: r.array()?,
        })
    }
}

impl SignedTreeRoot {
    /// The largest encoding of a signed root.
    pub const MAX_ENCODED: usize = 8 + 8 + 4 + MAX_ROOTS * TreeNode::MIN_SIZE + 64;
}

impl Encode for SignedTreeRoot {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.length);
        w.u64(self.fork);
        w.list(&self.roots);
        self.signature.encode(w);
    }
}

impl Decode for SignedTreeRoot {
    const MIN_SIZE: usize = 8 + 8 + 4 + 64;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedTreeRoot {
            length: r.u64()?,
            fork: r.u64()?,
            roots: r.list("tree roots", MAX_ROOTS)?,
            signature: Signature::decode(r)?,
        })
    }
}

impl Encode for BlockProof {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.index);
        self.leaf.encode(w);
        w.list(&self.siblings);
        self.root.encode(w);
    }
}

impl Decode for BlockProof {
    const MIN_SIZE: usize = 8 + TreeNode::MIN_SIZE + 4 + SignedTreeRoot::MIN_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockProof {
            index: r.u64()?,
            leaf: TreeNode::decode(r)?,
            siblings: r.list("proof siblings", MAX_SIBLINGS)?,
            root: SignedTreeRoot::decode(r)?,
        })
    }
}

impl BlockProof {
    /// Largest encoding (without version and tag).
    pub const MAX_ENCODED: usize = 8
        + TreeNode::MIN_SIZE
        + 4
        + MAX_SIBLINGS * TreeNode::MIN_SIZE
        + SignedTreeRoot::MAX_ENCODED;
}

impl Message for BlockProof {
    const TAG: u8 = 0x40;
    const MAX_SIZE: usize = 2 + Self::MAX_ENCODED;
}

#[cfg(test)]
mod tests;
