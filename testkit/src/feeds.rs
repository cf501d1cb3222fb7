//! Fixtures of execution-job tests: a small job module and feeds signed with a plain
//! ed25519 key (an input feed, an executor's output feed), with their block proofs.

use datdot_protocol::codec::{Encode, Writer};
use datdot_protocol::identity::{PublicKey, Signature};
use datdot_protocol::tree::{self, BlockProof, SignedTreeRoot, TreeNode, build};
use ed25519_dalek::{Signer, SigningKey};

/// A module in the call ABI (`datdot-exec`): 8 pages of memory, a bump `datdot_alloc`,
/// the items `extra`, and `process(ptr, len) -> i64` with `body` as its body (which may
/// open with its own locals).
pub fn abi_module(extra: &str, body: &str) -> Vec<u8> {
    let src = format!(
        r#"(module
  (memory (export "memory") 8)
  (global $next (mut i32) (i32.const 1024))
  (func (export "datdot_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $next))
    (global.set $next (i32.add (global.get $next) (local.get $n)))
    (local.get $p))
  {extra}
  (func (export "process") (param $ptr i32) (param $len i32) (result i64)
    {body}))"#
    );
    wat::parse_str(&src).expect("test module parses")
}

/// The locals of `process` in [`reverse_wasm`].
const REVERSE_LOCALS: &str = "(local $i i32) (local $j i32) (local $t i32)";

/// `process`'s code in [`reverse_wasm`]: reverses its input in place (one loop
/// iteration per byte pair, so fuel grows with the input).
const REVERSE_CODE: &str = r#"
    (local.set $i (local.get $ptr))
    (local.set $j (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.const 1)))
    (block $done (loop $next
      (br_if $done (i32.ge_s (local.get $i) (local.get $j)))
      (local.set $t (i32.load8_u (local.get $i)))
      (i32.store8 (local.get $i) (i32.load8_u (local.get $j)))
      (i32.store8 (local.get $j) (local.get $t))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $j (i32.sub (local.get $j) (i32.const 1)))
      (br $next)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len)))"#;

/// A job module ([`abi_module`]) whose `process` reverses its input in place.
pub fn reverse_wasm() -> Vec<u8> {
    reverse_wasm_after("")
}

/// [`reverse_wasm`] with `guard` run first (e.g. a trap on some inputs).
pub fn reverse_wasm_after(guard: &str) -> Vec<u8> {
    abi_module("", &format!("{REVERSE_LOCALS}\n    {guard}{REVERSE_CODE}"))
}

/// A feed of `blocks` signed by `author`: what a Hypercore author (or an executor for
/// its output feed) signs, built with `datdot_protocol::tree::build`.
#[derive(Debug, Clone)]
pub struct SignedFeed {
    /// The feed key's secret.
    pub author: SigningKey,
    /// The blocks.
    pub blocks: Vec<Vec<u8>>,
    /// Their leaves.
    pub leaves: Vec<TreeNode>,
}

impl SignedFeed {
    /// `blocks` signed by the key of seed `[seed; 32]`.
    pub fn new(seed: u8, blocks: Vec<Vec<u8>>) -> Self {
        let leaves = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| build::leaf(i as u64, b))
            .collect();
        SignedFeed {
            author: SigningKey::from_bytes(&[seed; 32]),
            blocks,
            leaves,
        }
    }

    /// The feed key.
    pub fn key(&self) -> [u8; 32] {
        self.author.verifying_key().to_bytes()
    }

    /// The feed key as a protocol key.
    pub fn public(&self) -> PublicKey {
        PublicKey::from_bytes(&self.key()).expect("a dalek key is a valid point")
    }

    /// The proof of block `i` (panics past the end: a fixture misuse).
    pub fn proof(&self, i: u64) -> BlockProof {
        self.proof_signed_by(i, &self.author)
    }

    /// The proof of block `i` with the root signed by `signer` (a forger).
    pub fn proof_signed_by(&self, i: u64, signer: &SigningKey) -> BlockProof {
        build::block_proof(&self.leaves, i, 0, |m| Signature(signer.sign(m).to_bytes()))
            .expect("block within the feed")
    }

    /// The signed root of the whole feed.
    pub fn root(&self) -> SignedTreeRoot {
        self.proof(0).root
    }

    /// [`root`](Self::root) in our wire encoding (what `publish` and `commit_output` take).
    pub fn root_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.root().encode(&mut w);
        w.into_bytes()
    }

    /// The tree hash the feed key signs.
    pub fn tree_hash(&self) -> [u8; 32] {
        tree::tree_hash(&build::roots(&self.leaves))
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift64; `seed` ≠ 0): raw pixels or any
/// input a test wants reproducible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
