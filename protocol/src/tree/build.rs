//! Building a feed's merkle tree and block proofs from its leaves, with the same
//! formulas as [`super`]'s verification. For publishers that want a feed's roots, and
//! for fixtures in tests, benches and the simulator.

use alloc::vec::Vec;

use super::{
    BlockProof, SignedTreeRoot, TreeNode, flat, leaf_hash, parent_hash, signable, tree_hash,
};
use crate::identity::Signature;

/// The leaf node of block `index` holding `data`.
pub fn leaf(index: u64, data: &[u8]) -> TreeNode {
    TreeNode {
        index: 2 * index,
        size: data.len() as u64,
        hash: leaf_hash(data),
    }
}

/// Tree node `i` over `leaves` (leaf `j` is node `2j`); `None` if `leaves` does not
/// cover it.
pub fn node(leaves: &[TreeNode], i: u64) -> Option<TreeNode> {
    let d = flat::depth(i);
    if d == 0 {
        return leaves.get(usize::try_from(i / 2).ok()?).cloned();
    }
    let half = 1u64 << (d - 1);
    let (l, r) = (node(leaves, i - half)?, node(leaves, i + half)?);
    let size = l.size.checked_add(r.size)?;
    Some(TreeNode {
        index: i,
        size,
        hash: parent_hash(size, &l.hash, &r.hash),
    })
}

/// The full roots of the tree over `leaves`.
pub fn roots(leaves: &[TreeNode]) -> Vec<TreeNode> {
    flat::full_roots(leaves.len() as u64)
        .filter_map(|r| node(leaves, r))
        .collect()
}

/// The proof of block `index`, with the root signed by `sign` (which must produce the
/// feed key's plain ed25519 signature over the 80-byte signable). `None` if `index` is
/// not below `leaves.len()`.
pub fn block_proof(
    leaves: &[TreeNode],
    index: u64,
    fork: u64,
    sign: impl FnOnce(&[u8; 80]) -> Signature,
) -> Option<BlockProof> {
    let length = leaves.len() as u64;
    if index >= length {
        return None;
    }
    let roots = roots(leaves);
    let covering = roots
        .iter()
        .find(|r| {
            let (lo, hi) = flat::span(r.index);
            (lo..=hi).contains(&(2 * index))
        })?
        .index;
    let mut siblings = Vec::new();
    let mut at = 2 * index;
    while at != covering {
        siblings.push(node(leaves, flat::sibling(at))?);
        at = flat::parent(at);
    }
    let signature = sign(&signable(&tree_hash(&roots), length, fork));
    Some(BlockProof {
        index,
        leaf: node(leaves, 2 * index)?,
        siblings,
        root: SignedTreeRoot {
            length,
            fork,
            roots,
            signature,
        },
    })
}
