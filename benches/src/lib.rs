//! Fixtures for datdot's criterion benches (`cargo bench -p datdot-benches`).
//!
//! Builds signed Hypercore-format trees with the public helpers of
//! `datdot_protocol::tree`, so benches need neither the `hypercore` crate nor a tokio
//! runtime. The protocol crate's tests cross-check those helpers against the real crate.

use datdot_protocol::hash::Hash;
use datdot_protocol::identity::Signature;
use datdot_protocol::tree::{
    BlockProof, SignedTreeRoot, TreeNode, leaf_hash, parent_hash, signable, tree_hash,
};
use ed25519_dalek::{Signer, SigningKey};

/// The leaf node of block `index` holding `data`.
pub fn leaf(index: u64, data: &[u8]) -> TreeNode {
    TreeNode {
        index: 2 * index,
        size: data.len() as u64,
        hash: leaf_hash(data),
    }
}

/// The node over the `width` (a power of two) leaves starting at leaf `lo`.
fn subtree(leaves: &[TreeNode], lo: usize, width: usize) -> TreeNode {
    if width == 1 {
        return leaves[lo].clone();
    }
    let half = width / 2;
    let (l, r) = (subtree(leaves, lo, half), subtree(leaves, lo + half, half));
    let size = l.size + r.size;
    let hash: Hash = parent_hash(size, &l.hash, &r.hash);
    TreeNode {
        index: (2 * lo + width - 1) as u64,
        size,
        hash,
    }
}

/// A proof for block `index` of the feed whose leaves are `leaves`, signed by `feed`.
///
/// Panics if `index` is not below `leaves.len()` (fixtures only).
pub fn block_proof(feed: &SigningKey, leaves: &[TreeNode], index: usize, fork: u64) -> BlockProof {
    assert!(index < leaves.len(), "block {index} not in the feed");
    let (mut roots, mut lo, mut covering) = (Vec::new(), 0, (0, 0));
    let mut left = leaves.len();
    while left > 0 {
        let width = 1 << left.ilog2();
        if (lo..lo + width).contains(&index) {
            covering = (lo, width);
        }
        roots.push(subtree(leaves, lo, width));
        lo += width;
        left -= width;
    }
    // Walk down from the covering root, collecting the other child at each level.
    let (mut lo, mut width) = covering;
    let mut siblings = Vec::new();
    while width > 1 {
        let half = width / 2;
        if index < lo + half {
            siblings.push(subtree(leaves, lo + half, half));
        } else {
            siblings.push(subtree(leaves, lo, half));
            lo += half;
        }
        width = half;
    }
    siblings.reverse();
    let length = leaves.len() as u64;
    let msg = signable(&tree_hash(&roots), length, fork);
    BlockProof {
        index: index as u64,
        leaf: leaves[index].clone(),
        siblings,
        root: SignedTreeRoot {
            length,
            fork,
            roots,
            signature: Signature(feed.sign(&msg).to_bytes()),
        },
    }
}
