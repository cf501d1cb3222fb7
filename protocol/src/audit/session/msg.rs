//! The session's inputs and outputs as values: the parts of a hoster's `Data` answer,
//! the requests and messages to send, and the pure checks of a signed root and a true
//! leaf (which `prove_leaf` in net uses too).

use crate::identity::{PublicKey, Signature};
use crate::tree::{BlockProof, SignedTreeRoot, TreeNode};

/// The upgrade part of an answer: the signed tree of `length` blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeAnswer {
    /// First block the upgrade covers (an audit asks from 0).
    pub start: u64,
    /// Length of the signed tree.
    pub length: u64,
    /// For an upgrade from 0: the tree's full roots.
    pub nodes: Vec<TreeNode>,
    /// The feed's signature over the tree (64 bytes if well formed).
    pub signature: Vec<u8>,
}

/// The block part of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockAnswer<'a> {
    /// The block index.
    pub index: u64,
    /// The block's bytes.
    pub value: &'a [u8],
    /// The block's uncle path, leaf's sibling first.
    pub nodes: Vec<TreeNode>,
}

/// The hash part of an answer: a tree node with its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashAnswer {
    /// Tree index of the node asked for (`2 * block` for a leaf).
    pub index: u64,
    /// The node itself, then its uncle path.
    pub nodes: Vec<TreeNode>,
}

/// One `Data` message from the hoster, as the machine reads it.
///
/// The wire carries node hashes as byte strings. A shell passes an upgrade or hash
/// part with a hash that is not 32 bytes as `None` (it proves nothing), and a block
/// part with one as `malformed` with its `nodes` empty: the block still counts as
/// served, as a bad proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataAnswer<'a> {
    /// The request id answered.
    pub request: u64,
    /// The hoster's fork.
    pub fork: u64,
    /// The block, if any.
    pub block: Option<BlockAnswer<'a>>,
    /// The hash node, if any.
    pub hash: Option<HashAnswer>,
    /// The upgrade, if any.
    pub upgrade: Option<UpgradeAnswer>,
    /// A node hash of the block part was not 32 bytes.
    pub malformed: bool,
}

/// What to ask the hoster for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The signed tree from 0 to `length` (an upgrade with `start: 0`).
    Upgrade {
        /// The hoster's length.
        length: u64,
    },
    /// Block `index` with `nodes` nodes of its uncle path.
    Block {
        /// The block index.
        index: u64,
        /// Uncle-path length.
        nodes: u64,
    },
    /// The true leaf of block `index` (a `hash` request for tree node `2 * index`) with
    /// `nodes` nodes of its path.
    Leaf {
        /// The block index.
        index: u64,
        /// Uncle-path length.
        nodes: u64,
    },
}

/// A message for the shell to send, from [`AuditSession::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// The reader's first `Synchronize`: fork 0, length 0, remote length 0,
    /// downloading, not uploading, can upgrade.
    Hello,
    /// Reply to the hoster's first `Synchronize`: length 0, downloading, can upgrade.
    SyncAck {
        /// The hoster's fork.
        fork: u64,
        /// The hoster's length.
        remote_length: u64,
    },
    /// A request.
    Request {
        /// Request id (1, 2, 3, … in order).
        id: u64,
        /// Fork the request is for.
        fork: u64,
        /// What is asked.
        request: Request,
    },
    /// Cancel request `id` (it timed out).
    Cancel {
        /// Request id.
        id: u64,
    },
    /// The datdot `End` message: the reader is done, the hoster sends its final receipt.
    End,
    /// Close the channel: the session is over.
    Close,
}

/// The signed root carried by an upgrade from 0 (its nodes are the full roots),
/// verified for `feed`.
pub fn signed_root(
    u: &UpgradeAnswer,
    fork: u64,
    feed: &PublicKey,
) -> Result<SignedTreeRoot, &'static str> {
    if u.start != 0 {
        return Err("upgrade does not start at 0");
    }
    let signature: [u8; 64] = u
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| "signature is not 64 bytes")?;
    let root = SignedTreeRoot {
        length: u.length,
        fork,
        roots: u.nodes.clone(),
        signature: Signature(signature),
    };
    root.verify(feed)
        .map_err(|_| "signed root does not verify")?;
    Ok(root)
}

/// The true leaf of block `index` from a hash answer, checked against `root`.
pub fn leaf_proof(h: &HashAnswer, index: u64, root: &SignedTreeRoot) -> Option<BlockProof> {
    if h.index != 2 * index {
        return None;
    }
    let (leaf, siblings) = h.nodes.split_first()?;
    let proof = BlockProof {
        index,
        leaf: leaf.clone(),
        siblings: siblings.to_vec(),
        root: root.clone(),
    };
    proof.verify_path().ok().map(|()| proof)
}
