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

/// A feed's whole tree, every node computed once: block proofs in `O(log n)` each
/// (where [`block_proof`] recomputes the subtrees it needs). For servers of a fixed
/// feed in benches and the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    nodes: Vec<Option<TreeNode>>,
    length: u64,
}

impl Tree {
    /// The tree over `leaves` (leaf `j` is node `2j`).
    pub fn new(leaves: &[TreeNode]) -> Self {
        let length = leaves.len() as u64;
        let width = 2 * leaves.len();
        let mut nodes: Vec<Option<TreeNode>> = alloc::vec![None; width];
        for (j, l) in leaves.iter().enumerate() {
            nodes[2 * j] = Some(l.clone());
        }
        // Depth by depth: the nodes of depth `d` are `2^d − 1 + k · 2^(d+1)`.
        let mut d = 1u32;
        while (1usize << d) - 1 < width {
            let half = 1usize << (d - 1);
            let mut i = (1usize << d) - 1;
            while i + half < width {
                if let (Some(l), Some(r)) = (&nodes[i - half], &nodes[i + half])
                    && let Some(size) = l.size.checked_add(r.size)
                {
                    nodes[i] = Some(TreeNode {
                        index: i as u64,
                        size,
                        hash: parent_hash(size, &l.hash, &r.hash),
                    });
                }
                i += 2 << d;
            }
            d += 1;
        }
        Tree { nodes, length }
    }

    /// Blocks in the tree.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Node `i`, if the tree covers it.
    pub fn node(&self, i: u64) -> Option<&TreeNode> {
        self.nodes.get(usize::try_from(i).ok()?)?.as_ref()
    }

    /// The full roots.
    pub fn roots(&self) -> Vec<TreeNode> {
        flat::full_roots(self.length)
            .filter_map(|r| self.node(r).cloned())
            .collect()
    }

    /// The uncle path of block `index` up to its full root (what a block proof carries).
    pub fn siblings(&self, index: u64) -> Option<Vec<TreeNode>> {
        if index >= self.length {
            return None;
        }
        let covering = flat::full_roots(self.length).find(|r| {
            let (lo, hi) = flat::span(*r);
            (lo..=hi).contains(&(2 * index))
        })?;
        let mut out = Vec::new();
        let mut at = 2 * index;
        while at != covering {
            out.push(self.node(flat::sibling(at))?.clone());
            at = flat::parent(at);
        }
        Some(out)
    }
}
