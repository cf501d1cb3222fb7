//! Receipts: the hoster's signed statement of what it served on a connection
//! (SPEC §3.6).
//!
//! A receipt names the chain the hoster serves for (its chain id), the feed, the
//! connection's remote Noise key (so it cannot be
//! replayed to another reader), a per-connection sequence number, and the block
//! indices with their Hypercore leaf hashes (`BLAKE2b-256(0x00 || u64_le(len) || data)`).
//! A receipt for a hash that the feed's signed merkle tree contradicts is a bad-data
//! fraud proof.

use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use crate::hash::Hash;
use crate::identity::{ChainId, Domain, Keypair, PublicKey, Signature, Verifier};

/// Most entries in one receipt.
pub const MAX_RECEIPT_ENTRIES: usize = 1024;

/// One served block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptEntry {
    /// Block index.
    pub index: u64,
    /// Hypercore leaf hash of the bytes served.
    pub hash: Hash,
}

/// A hoster-signed receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The chain the hoster serves for ([`ChainId`]; zeros for a hoster without one).
    pub chain: ChainId,
    /// The hoster's signing key.
    pub hoster: PublicKey,
    /// The feed's public key.
    pub feed: [u8; 32],
    /// The reader's Noise static key on this connection.
    pub remote: [u8; 32],
    /// 0, 1, 2, … per connection.
    pub seq: u64,
    /// What was served since the previous receipt.
    pub entries: Vec<ReceiptEntry>,
    /// The hoster's signature (domain `receipt`).
    pub sig: Signature,
}

/// Why a receipt is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Signature does not verify for the hoster key.
    #[error("receipt signature does not verify")]
    Signature,
    /// Signed by another key than the hoster we audit.
    #[error("receipt signed by another hoster")]
    WrongHoster,
    /// For another feed.
    #[error("receipt is for another feed")]
    WrongFeed,
    /// For another connection (replayed).
    #[error("receipt names another connection's remote key (replay)")]
    WrongConnection,
    /// Sequence number not the expected one.
    #[error("receipt sequence {got}, expected {expected}")]
    Sequence {
        /// What we expected.
        expected: u64,
        /// What came.
        got: u64,
    },
    /// Empty or over-long entry list.
    #[error("receipt has {0} entries")]
    Entries(usize),
    /// Signed for another chain (or a dev chain before a reset).
    #[error("receipt is for another chain")]
    WrongChain,
}

fn payload(r: &SignedReceipt) -> Vec<u8> {
    let mut w = Writer::new();
    w.array(&r.chain);
    r.hoster.encode(&mut w);
    w.array(&r.feed);
    w.array(&r.remote);
    w.u64(r.seq);
    w.list(&r.entries);
    w.into_bytes()
}

impl SignedReceipt {
    /// Sign a receipt.
    pub fn sign(
        kp: &Keypair,
        chain: ChainId,
        feed: [u8; 32],
        remote: [u8; 32],
        seq: u64,
        entries: Vec<ReceiptEntry>,
    ) -> Self {
        let mut r = SignedReceipt {
            chain,
            hoster: kp.public(),
            feed,
            remote,
            seq,
            entries,
            sig: Signature([0; 64]),
        };
        r.sig = kp.sign(Domain::Receipt, &payload(&r));
        r
    }

    /// Check the signature and entry count only (what the chain checks).
    pub fn verify(&self, v: &impl Verifier) -> Result<(), ReceiptError> {
        if self.entries.is_empty() || self.entries.len() > MAX_RECEIPT_ENTRIES {
            return Err(ReceiptError::Entries(self.entries.len()));
        }
        if !v.verify(&self.hoster, Domain::Receipt, &payload(self), &self.sig) {
            return Err(ReceiptError::Signature);
        }
        Ok(())
    }

    /// Check everything a reader expects of the next receipt on its connection.
    pub fn verify_for(
        &self,
        v: &impl Verifier,
        chain: &ChainId,
        hoster: &PublicKey,
        feed: &[u8; 32],
        my_key: &[u8; 32],
        expected_seq: u64,
    ) -> Result<(), ReceiptError> {
        if &self.chain != chain {
            return Err(ReceiptError::WrongChain);
        }
        if &self.hoster != hoster {
            return Err(ReceiptError::WrongHoster);
        }
        if &self.feed != feed {
            return Err(ReceiptError::WrongFeed);
        }
        if &self.remote != my_key {
            return Err(ReceiptError::WrongConnection);
        }
        if self.seq != expected_seq {
            return Err(ReceiptError::Sequence {
                expected: expected_seq,
                got: self.seq,
            });
        }
        self.verify(v)
    }
}

/// The hoster side: counts blocks served on one connection and produces a signed
/// receipt every `every` blocks and when the session ends. Sans-IO: the caller sends
/// what it returns.
#[derive(Debug)]
pub struct ReceiptSigner {
    chain: ChainId,
    feed: [u8; 32],
    remote: [u8; 32],
    every: usize,
    seq: u64,
    pending: Vec<ReceiptEntry>,
}

impl ReceiptSigner {
    /// For `feed` served on `chain` to the peer with Noise key `remote`; a receipt every
    /// `every` blocks (clamped to `1..=MAX_RECEIPT_ENTRIES`; SPEC default 100).
    pub fn new(chain: ChainId, feed: [u8; 32], remote: [u8; 32], every: usize) -> Self {
        ReceiptSigner {
            chain,
            feed,
            remote,
            every: every.clamp(1, MAX_RECEIPT_ENTRIES),
            seq: 0,
            pending: Vec::new(),
        }
    }

    /// Record a served block; returns a receipt when `every` blocks are pending.
    pub fn served(&mut self, kp: &Keypair, index: u64, hash: Hash) -> Option<SignedReceipt> {
        self.pending.push(ReceiptEntry { index, hash });
        (self.pending.len() >= self.every)
            .then(|| self.flush(kp))
            .flatten()
    }

    /// End of session: a receipt for whatever is pending, if anything.
    pub fn flush(&mut self, kp: &Keypair) -> Option<SignedReceipt> {
        if self.pending.is_empty() {
            return None;
        }
        let entries = core::mem::take(&mut self.pending);
        let r = SignedReceipt::sign(kp, self.chain, self.feed, self.remote, self.seq, entries);
        self.seq += 1;
        Some(r)
    }
}

impl Encode for ReceiptEntry {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.index);
        w.array(&self.hash);
    }
}
impl Decode for ReceiptEntry {
    const MIN_SIZE: usize = 40;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReceiptEntry {
            index: r.u64()?,
            hash: r.array()?,
        })
    }
}

impl Encode for SignedReceipt {
    fn encode(&self, w: &mut Writer) {
        w.array(&self.chain);
        self.hoster.encode(w);
        w.array(&self.feed);
        w.array(&self.remote);
        w.u64(self.seq);
        w.list(&self.entries);
        self.sig.encode(w);
    }
}
impl Decode for SignedReceipt {
    const MIN_SIZE: usize = 32 * 4 + 8 + 4 + 64;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedReceipt {
            chain: r.array()?,
            hoster: PublicKey::decode(r)?,
            feed: r.array()?,
            remote: r.array()?,
            seq: r.u64()?,
            entries: r.list("receipt entries", MAX_RECEIPT_ENTRIES)?,
            sig: Signature::decode(r)?,
        })
    }
}

impl SignedReceipt {
    /// Largest encoding.
    pub const MAX_ENCODED: usize = <Self as Decode>::MIN_SIZE + MAX_RECEIPT_ENTRIES * 40;
}

impl Message for SignedReceipt {
    const TAG: u8 = 0x20;
    const MAX_SIZE: usize = 2 + Self::MAX_ENCODED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{from_bytes, to_bytes};
    use crate::identity::Ed25519Verifier;

    #[test]
    fn signer_emits_every_n_and_at_end() {
        let kp = Keypair::from_seed(&[3; 32]);
        let mut s = ReceiptSigner::new([6; 32], [1; 32], [2; 32], 3);
        let mut out = Vec::new();
        for i in 0..7 {
            out.extend(s.served(&kp, i, [i as u8; 32]));
        }
        out.extend(s.flush(&kp));
        assert_eq!(s.flush(&kp), None);
        let sizes: Vec<usize> = out.iter().map(|r| r.entries.len()).collect();
        assert_eq!(sizes, [3, 3, 1]);
        for (seq, r) in out.iter().enumerate() {
            r.verify_for(
                &Ed25519Verifier,
                &[6; 32],
                &kp.public(),
                &[1; 32],
                &[2; 32],
                seq as u64,
            )
            .unwrap();
            assert_eq!(from_bytes::<SignedReceipt>(&to_bytes(r)).as_ref(), Ok(r));
        }
    }

    #[test]
    fn rejects_replay_wrong_feed_tamper() {
        let kp = Keypair::from_seed(&[3; 32]);
        let e = vec![ReceiptEntry {
            index: 5,
            hash: [9; 32],
        }];
        let r = SignedReceipt::sign(&kp, [6; 32], [1; 32], [2; 32], 0, e);
        let v = Ed25519Verifier;
        let pk = kp.public();
        assert_eq!(
            r.verify_for(&v, &[6; 32], &pk, &[1; 32], &[7; 32], 0),
            Err(ReceiptError::WrongConnection)
        );
        assert_eq!(
            r.verify_for(&v, &[6; 32], &pk, &[8; 32], &[2; 32], 0),
            Err(ReceiptError::WrongFeed)
        );
        assert!(matches!(
            r.verify_for(&v, &[6; 32], &pk, &[1; 32], &[2; 32], 1),
            Err(ReceiptError::Sequence { .. })
        ));
        let mut t = r.clone();
        t.entries[0].index = 6;
        assert_eq!(t.verify(&v), Err(ReceiptError::Signature));
    }

    /// Replay across chains: a receipt a hoster signed on a dev chain before its reset
    /// (same keys, same feed, same reader) is refused on the new chain, and relabelling
    /// it breaks the signature.
    #[test]
    fn a_receipt_from_another_chain_is_refused() {
        let kp = Keypair::from_seed(&[3; 32]);
        let e = vec![ReceiptEntry {
            index: 5,
            hash: [9; 32],
        }];
        let (old, new) = ([6; 32], [7; 32]);
        let r = SignedReceipt::sign(&kp, old, [1; 32], [2; 32], 0, e);
        let v = Ed25519Verifier;
        let pk = kp.public();
        assert_eq!(r.verify_for(&v, &old, &pk, &[1; 32], &[2; 32], 0), Ok(()));
        assert_eq!(
            r.verify_for(&v, &new, &pk, &[1; 32], &[2; 32], 0),
            Err(ReceiptError::WrongChain)
        );
        let mut relabelled = r;
        relabelled.chain = new;
        assert_eq!(
            relabelled.verify_for(&v, &new, &pk, &[1; 32], &[2; 32], 0),
            Err(ReceiptError::Signature)
        );
    }
}
