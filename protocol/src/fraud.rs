//! Fraud proofs: self-contained evidence that a named key broke the protocol.
//!
//! Each proof's [`FraudProof::verify`] is a pure, `no_std` function of the proof alone
//! (plus a signature verifier). It returns the offender and the scope (coin-flip
//! session and round, or feed); the chain additionally checks that the offender
//! belongs to that session's committee (or is the contract's hoster of that feed, for
//! bad data) before slashing.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::coinflip::{
    SessionId, SignedCommit, SignedConfirm, SignedReveal, Transcript, TranscriptError, commit_value,
};
use crate::identity::{PublicKey, Verifier};
use crate::receipt::{ReceiptError, SignedReceipt};
use crate::tree::{BlockProof, TreeError};

/// A proof of misbehaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FraudProof {
    /// Two different signed commits from one member for one session and round.
    Equivocation {
        /// One commit.
        a: SignedCommit,
        /// Another commit, same signer/session/round, different value.
        b: SignedCommit,
    },
    /// A signed reveal that does not hash to the same member's signed commit.
    InvalidReveal {
        /// The commit.
        commit: SignedCommit,
        /// The reveal that does not match it.
        reveal: SignedReveal,
    },
    /// A signed confirmation of a result that the round's transcript contradicts.
    Divergent {
        /// All commits and reveals of the round, matching the claim's commit digest.
        transcript: Transcript,
        /// The wrong ping or pong.
        claim: SignedConfirm,
    },
    /// A hoster's signed receipt for a block hash that the feed's signed merkle tree
    /// contradicts. The proof carries the *true* leaf of that block with its path to a
    /// root signed by the feed key, so an attestor cannot frame an honest hoster: it
    /// would have to forge the feed author's signature.
    BadData {
        /// The hoster's receipt.
        receipt: SignedReceipt,
        /// Which entry of the receipt is wrong.
        entry: u32,
        /// Proof of that block's true leaf hash against the feed's signed root.
        proof: BlockProof,
    },
}

/// What a valid proof establishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The kind of fraud.
    pub kind: FraudKind,
    /// Who committed it.
    pub offender: PublicKey,
    /// Where it happened.
    pub scope: Scope,
}

/// Where a fraud happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In a coin flip.
    CoinFlip {
        /// The session.
        session: SessionId,
        /// The round.
        round: u32,
    },
    /// While serving a feed.
    Feed {
        /// The chain the hoster's receipt was signed for.
        chain: crate::identity::ChainId,
        /// The feed key.
        feed: [u8; 32],
    },
}

impl Verdict {
    /// The coin-flip session, for coin-flip frauds.
    pub fn session(&self) -> Option<&SessionId> {
        match &self.scope {
            Scope::CoinFlip { session, .. } => Some(session),
            Scope::Feed { .. } => None,
        }
    }
    /// The coin-flip round, for coin-flip frauds.
    pub fn round(&self) -> Option<u32> {
        match self.scope {
            Scope::CoinFlip { round, .. } => Some(round),
            Scope::Feed { .. } => None,
        }
    }
}

/// Kinds of fraud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FraudKind {
    /// Two commits in one round.
    Equivocation,
    /// Reveal not matching commit.
    InvalidReveal,
    /// Wrong result confirmed.
    Divergent,
    /// Hoster signed a receipt for data that is not the feed's.
    BadData,
}

/// Why a fraud proof is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FraudError {
    /// The two parts name different sessions, rounds or signers.
    #[error("the parts of the proof do not refer to the same member, session and round")]
    Unrelated,
    /// A signature in the proof does not verify.
    #[error("a signature in the proof does not verify")]
    Signature,
    /// The parts are consistent: no fraud shown.
    #[error("no fraud: the evidence is consistent")]
    NoFraud,
    /// The transcript of a divergent-result proof is itself invalid.
    #[error("invalid transcript: {0}")]
    Transcript(#[from] TranscriptError),
    /// The receipt of a bad-data proof is invalid.
    #[error("invalid receipt: {0}")]
    Receipt(#[from] ReceiptError),
    /// The block proof of a bad-data proof does not verify against the feed key.
    #[error("invalid block proof: {0}")]
    Tree(#[from] TreeError),
}

impl FraudProof {
    /// Check the proof. Pure; used by nodes and by the chain.
    pub fn verify(&self, v: &impl Verifier) -> Result<Verdict, FraudError> {
        match self {
            FraudProof::Equivocation { a, b } => {
                if a.signer != b.signer || a.session != b.session || a.round != b.round {
                    return Err(FraudError::Unrelated);
                }
                if a.y == b.y {
                    return Err(FraudError::NoFraud);
                }
                if !a.verify(v) || !b.verify(v) {
                    return Err(FraudError::Signature);
                }
                Ok(Verdict {
                    kind: FraudKind::Equivocation,
                    offender: a.signer,
                    scope: Scope::CoinFlip {
                        session: a.session,
                        round: a.round,
                    },
                })
            }
            FraudProof::InvalidReveal { commit, reveal } => {
                if commit.signer != reveal.signer
                    || commit.session != reveal.session
                    || commit.round != reveal.round
                {
                    return Err(FraudError::Unrelated);
                }
                if commit_value(&reveal.x) == commit.y {
                    return Err(FraudError::NoFraud);
                }
                if !commit.verify(v) || !reveal.verify(v) {
                    return Err(FraudError::Signature);
                }
                Ok(Verdict {
                    kind: FraudKind::InvalidReveal,
                    offender: commit.signer,
                    scope: Scope::CoinFlip {
                        session: commit.session,
                        round: commit.round,
                    },
                })
            }
            FraudProof::Divergent { transcript, claim } => {
                if claim.session != transcript.session
                    || claim.round != transcript.round
                    || claim.commits_digest != transcript.commits_digest()
                    || !transcript.commits.iter().any(|c| c.signer == claim.signer)
                {
                    return Err(FraudError::Unrelated);
                }
                let r = transcript.verify(v)?;
                if claim.kind.value_for(&r) == claim.value {
                    return Err(FraudError::NoFraud);
                }
                if !claim.verify(v) {
                    return Err(FraudError::Signature);
                }
                Ok(Verdict {
                    kind: FraudKind::Divergent,
                    offender: claim.signer,
                    scope: Scope::CoinFlip {
                        session: claim.session,
                        round: claim.round,
                    },
                })
            }
            FraudProof::BadData {
                receipt,
                entry,
                proof,
            } => {
                let e = usize::try_from(*entry)
                    .ok()
                    .and_then(|i| receipt.entries.get(i))
                    .ok_or(FraudError::Unrelated)?;
                if e.index != proof.index {
                    return Err(FraudError::Unrelated);
                }
                if e.hash == proof.leaf.hash {
                    return Err(FraudError::NoFraud);
                }
                receipt.verify(v)?;
                let feed =
                    PublicKey::from_bytes(&receipt.feed).map_err(|_| FraudError::Unrelated)?;
                proof.verify(&feed)?;
                Ok(Verdict {
                    kind: FraudKind::BadData,
                    offender: receipt.hoster,
                    scope: Scope::Feed {
                        chain: receipt.chain,
                        feed: receipt.feed,
                    },
                })
            }
        }
    }

    /// The session the proof is about.
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            FraudProof::Equivocation { a, .. } => Some(&a.session),
            FraudProof::InvalidReveal { commit, .. } => Some(&commit.session),
            FraudProof::Divergent { claim, .. } => Some(&claim.session),
            FraudProof::BadData { .. } => None,
        }
    }

    /// The accused key, before verification.
    pub fn accused(&self) -> &PublicKey {
        match self {
            FraudProof::Equivocation { a, .. } => &a.signer,
            FraudProof::InvalidReveal { commit, .. } => &commit.signer,
            FraudProof::Divergent { claim, .. } => &claim.signer,
            FraudProof::BadData { receipt, .. } => &receipt.hoster,
        }
    }

    /// Largest encoding of any proof.
    pub const MAX_ENCODED: usize = {
        let divergent = 1 + Transcript::MAX_ENCODED + <SignedConfirm as Decode>::MIN_SIZE;
        let bad_data = 1 + SignedReceipt::MAX_ENCODED + 4 + BlockProof::MAX_ENCODED;
        if divergent > bad_data {
            divergent
        } else {
            bad_data
        }
    };
}

impl Encode for FraudProof {
    fn encode(&self, w: &mut Writer) {
        match self {
            FraudProof::Equivocation { a, b } => {
                w.u8(0);
                a.encode(w);
                b.encode(w);
            }
            FraudProof::InvalidReveal { commit, reveal } => {
                w.u8(1);
                commit.encode(w);
                reveal.encode(w);
            }
            FraudProof::Divergent { transcript, claim } => {
                w.u8(2);
                transcript.encode(w);
                claim.encode(w);
            }
            FraudProof::BadData {
                receipt,
                entry,
                proof,
            } => {
                w.u8(3);
                receipt.encode(w);
                w.u32(*entry);
                proof.encode(w);
            }
        }
    }
}

impl Decode for FraudProof {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match r.u8()? {
            0 => FraudProof::Equivocation {
                a: SignedCommit::decode(r)?,
                b: SignedCommit::decode(r)?,
            },
            1 => FraudProof::InvalidReveal {
                commit: SignedCommit::decode(r)?,
                reveal: SignedReveal::decode(r)?,
            },
            2 => {
                let transcript = Transcript::decode(r)?;
                let claim = SignedConfirm::decode(r)?;
                FraudProof::Divergent { transcript, claim }
            }
            3 => FraudProof::BadData {
                receipt: SignedReceipt::decode(r)?,
                entry: r.u32()?,
                proof: BlockProof::decode(r)?,
            },
            _ => return Err(DecodeError::Invalid("fraud proof kind")),
        })
    }
}

impl crate::codec::Message for FraudProof {
    const TAG: u8 = 0x30;
    const MAX_SIZE: usize = 2 + Self::MAX_ENCODED;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{from_bytes, to_bytes};
    use crate::coinflip::{ConfirmKind, commits_digest, result_of};
    use crate::identity::{Ed25519Verifier, Keypair, Signature};
    use crate::receipt::ReceiptEntry;
    use crate::tree::{TreeNode, build};
    use ed25519_dalek::{Signer, SigningKey};

    const S: SessionId = [5; 32];
    const V: Ed25519Verifier = Ed25519Verifier;

    fn kp(i: u8) -> Keypair {
        Keypair::from_seed(&[i; 32])
    }

    fn round_trip(p: &FraudProof) {
        assert_eq!(from_bytes::<FraudProof>(&to_bytes(p)).as_ref(), Ok(p));
    }

    #[test]
    fn equivocation() {
        let k = kp(1);
        let a = SignedCommit::sign(&k, S, 0, [1; 32]);
        let b = SignedCommit::sign(&k, S, 0, [2; 32]);
        let p = FraudProof::Equivocation {
            a: a.clone(),
            b: b.clone(),
        };
        let v = p.verify(&V).unwrap();
        assert_eq!(
            (v.kind, v.offender, v.round()),
            (FraudKind::Equivocation, k.public(), Some(0))
        );
        round_trip(&p);
        // Same value twice, other round, other signer, forged signature: no proof.
        let same = FraudProof::Equivocation {
            a: a.clone(),
            b: a.clone(),
        };
        assert_eq!(same.verify(&V), Err(FraudError::NoFraud));
        let other_round = SignedCommit::sign(&k, S, 1, [2; 32]);
        assert_eq!(
            FraudProof::Equivocation {
                a: a.clone(),
                b: other_round
            }
            .verify(&V),
            Err(FraudError::Unrelated)
        );
        let mut forged = b.clone();
        forged.sig = Signature([9; 64]);
        assert_eq!(
            FraudProof::Equivocation { a, b: forged }.verify(&V),
            Err(FraudError::Signature)
        );
    }

    #[test]
    fn invalid_reveal() {
        let k = kp(2);
        let x = [7; 32];
        let c = SignedCommit::sign(&k, S, 3, commit_value(&x));
        let good = SignedReveal::sign(&k, S, 3, x);
        let bad = SignedReveal::sign(&k, S, 3, [8; 32]);
        let p = FraudProof::InvalidReveal {
            commit: c.clone(),
            reveal: bad.clone(),
        };
        assert_eq!(p.verify(&V).unwrap().offender, k.public());
        round_trip(&p);
        assert_eq!(
            FraudProof::InvalidReveal {
                commit: c.clone(),
                reveal: good
            }
            .verify(&V),
            Err(FraudError::NoFraud)
        );
        // A reveal signed by someone else cannot frame the committer.
        let framed = SignedReveal::sign(&kp(3), S, 3, [8; 32]);
        assert_eq!(
            FraudProof::InvalidReveal {
                commit: c,
                reveal: framed
            }
            .verify(&V),
            Err(FraudError::Unrelated)
        );
    }

    fn transcript(n: u8) -> (Vec<Keypair>, Transcript, crate::hash::Hash) {
        let ks: Vec<Keypair> = (10..10 + n).map(kp).collect();
        let xs: Vec<[u8; 32]> = (0..n).map(|i| [i; 32]).collect();
        let commits = ks
            .iter()
            .zip(&xs)
            .map(|(k, x)| SignedCommit::sign(k, S, 0, commit_value(x)))
            .collect();
        let reveals = ks
            .iter()
            .zip(&xs)
            .map(|(k, x)| SignedReveal::sign(k, S, 0, *x))
            .collect();
        let t = Transcript {
            session: S,
            round: 0,
            commits,
            reveals,
        };
        let r = result_of(xs.iter());
        (ks, t, r)
    }

    #[test]
    fn divergent() {
        let (ks, t, r) = transcript(4);
        assert_eq!(t.verify(&V), Ok(r));
        let d = t.commits_digest();
        let wrong = SignedConfirm::sign(&ks[1], ConfirmKind::Ping, S, 0, d, &[0; 32]);
        let p = FraudProof::Divergent {
            transcript: t.clone(),
            claim: wrong.clone(),
        };
        assert_eq!(p.verify(&V).unwrap().offender, ks[1].public());
        round_trip(&p);
        let right = SignedConfirm::sign(&ks[1], ConfirmKind::Pong, S, 0, d, &r);
        assert_eq!(
            FraudProof::Divergent {
                transcript: t.clone(),
                claim: right
            }
            .verify(&V),
            Err(FraudError::NoFraud)
        );
        // Framing an honest pinger with a transcript that drops a member fails: the
        // claim is bound to the full commit set.
        let honest = SignedConfirm::sign(&ks[2], ConfirmKind::Ping, S, 0, d, &r);
        let mut partial = t.clone();
        partial.commits.pop();
        partial.reveals.pop();
        assert_eq!(
            FraudProof::Divergent {
                transcript: partial,
                claim: honest
            }
            .verify(&V),
            Err(FraudError::Unrelated)
        );
        // A transcript with a tampered reveal is rejected.
        let mut bad = t;
        bad.reveals[0].x = [99; 32];
        let claim = SignedConfirm::sign(
            &ks[1],
            ConfirmKind::Ping,
            S,
            0,
            commits_digest(&S, 0, bad.commits.iter()),
            &[0; 32],
        );
        assert!(matches!(
            FraudProof::Divergent {
                transcript: bad,
                claim
            }
            .verify(&V),
            Err(FraudError::Transcript(_))
        ));
    }

    fn feed() -> (SigningKey, Vec<Vec<u8>>, Vec<TreeNode>) {
        let sk = SigningKey::from_bytes(&[77; 32]);
        let blocks: Vec<Vec<u8>> = (0..13u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let leaves = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| build::leaf(i as u64, b))
            .collect();
        (sk, blocks, leaves)
    }

    #[test]
    fn bad_data() {
        let (sk, blocks, leaves) = feed();
        let hoster = kp(30);
        let feed_key = sk.verifying_key().to_bytes();
        let proof =
            build::block_proof(&leaves, 6, 0, |m| Signature(sk.sign(m).to_bytes())).unwrap();
        let corrupted = crate::tree::leaf_hash(b"not block 6");
        let receipt = SignedReceipt::sign(
            &hoster,
            [8; 32],
            feed_key,
            [1; 32],
            0,
            vec![
                ReceiptEntry {
                    index: 5,
                    hash: leaves[5].hash,
                },
                ReceiptEntry {
                    index: 6,
                    hash: corrupted,
                },
            ],
        );
        let p = FraudProof::BadData {
            receipt: receipt.clone(),
            entry: 1,
            proof: proof.clone(),
        };
        let v = p.verify(&V).unwrap();
        assert_eq!((v.kind, v.offender), (FraudKind::BadData, hoster.public()));
        assert_eq!(
            v.scope,
            Scope::Feed {
                chain: [8; 32],
                feed: feed_key
            }
        );
        round_trip(&p);
        // The honest entry is no fraud; the wrong entry index is unrelated.
        let p5 = build::block_proof(&leaves, 5, 0, |m| Signature(sk.sign(m).to_bytes())).unwrap();
        assert_eq!(
            FraudProof::BadData {
                receipt: receipt.clone(),
                entry: 0,
                proof: p5
            }
            .verify(&V),
            Err(FraudError::NoFraud)
        );
        assert_eq!(
            FraudProof::BadData {
                receipt: receipt.clone(),
                entry: 0,
                proof: proof.clone()
            }
            .verify(&V),
            Err(FraudError::Unrelated)
        );
        assert_eq!(
            FraudProof::BadData {
                receipt: receipt.clone(),
                entry: 9,
                proof: proof.clone()
            }
            .verify(&V),
            Err(FraudError::Unrelated)
        );
        // Framing an honest receipt: claim another leaf hash for block 5 with a
        // doctored path. The root signature exposes it.
        let honest = SignedReceipt::sign(
            &hoster,
            [8; 32],
            feed_key,
            [1; 32],
            1,
            vec![ReceiptEntry {
                index: 5,
                hash: leaves[5].hash,
            }],
        );
        let mut doctored =
            build::block_proof(&leaves, 5, 0, |m| Signature(sk.sign(m).to_bytes())).unwrap();
        doctored.leaf.hash = crate::tree::leaf_hash(&blocks[4]);
        assert!(matches!(
            FraudProof::BadData {
                receipt: honest.clone(),
                entry: 0,
                proof: doctored
            }
            .verify(&V),
            Err(FraudError::Tree(_))
        ));
        // A proof signed by another key than the receipt's feed is rejected.
        let other = SigningKey::from_bytes(&[78; 32]);
        let foreign =
            build::block_proof(&leaves, 6, 0, |m| Signature(other.sign(m).to_bytes())).unwrap();
        assert!(matches!(
            FraudProof::BadData {
                receipt: receipt.clone(),
                entry: 1,
                proof: foreign
            }
            .verify(&V),
            Err(FraudError::Tree(_))
        ));
        // A receipt the hoster did not sign is rejected.
        let mut forged = receipt;
        forged.seq = 9;
        assert!(matches!(
            FraudProof::BadData {
                receipt: forged,
                entry: 1,
                proof
            }
            .verify(&V),
            Err(FraudError::Receipt(_))
        ));
    }
}
