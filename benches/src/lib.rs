//! Fixtures for datdot's criterion benches (`cargo bench -p datdot-benches`).
//!
//! [`hoster_proc`] runs a real `datdot-hoster` for the bench binaries.
//!
//! Feeds are built with `datdot_protocol::tree::build` (cross-checked against the
//! `hypercore` crate in the protocol crate's tests), so benches need neither the
//! `hypercore` crate nor a tokio runtime.

pub mod hoster_proc;

use datdot_protocol::identity::{PublicKey, Signature};
use datdot_protocol::tree::{BlockProof, TreeNode, build};
use ed25519_dalek::{Signer, SigningKey};

/// A feed of `blocks` blocks of `size` bytes (distinct contents), signed by a fixed key:
/// returns the feed key, the proof of block `index` and that block's bytes.
pub fn feed_proof(blocks: usize, size: usize, index: usize) -> (PublicKey, BlockProof, Vec<u8>) {
    let sk = SigningKey::from_bytes(&[42; 32]);
    let data = |i: usize| -> Vec<u8> { (0..size).map(|j| (i * 31 + j * 7) as u8).collect() };
    let leaves: Vec<TreeNode> = (0..blocks)
        .map(|i| build::leaf(i as u64, &data(i)))
        .collect();
    let proof = build::block_proof(&leaves, index as u64, 0, |m| {
        Signature(sk.sign(m).to_bytes())
    })
    .expect("fixture index is inside the feed");
    let key = PublicKey::from_bytes(sk.verifying_key().as_bytes())
        .expect("a dalek verifying key is a valid point");
    (key, proof, data(index))
}
