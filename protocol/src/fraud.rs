//! Fraud proofs: self-contained evidence that a named key broke the protocol.
//!
//! Each proof's [`FraudProof::verify`] is a pure, `no_std` function of the proof alone
//! (plus a signature verifier). It returns the offender and the session; the chain
//! additionally checks that the offender belongs to that session's committee (or is
//! the contract's hoster, for bad data) before slashing.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::coinflip::{
    SessionId, SignedCommit, SignedConfirm, SignedReveal, Transcript, TranscriptError,
    commit_value,
};
use crate::identity::{PublicKey, Verifier};

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
}

/// What a valid proof establishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The kind of fraud.
    pub kind: FraudKind,
    /// Who committed it.
    pub offender: PublicKey,
    /// The coin flip it happened in.
    pub session: SessionId,
    /// The round it happened in.
    pub round: u32,
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
                    session: a.session,
                    round: a.round,
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
                    session: commit.session,
                    round: commit.round,
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
                    session: claim.session,
                    round: claim.round,
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
        }
    }

    /// The accused key, before verification.
    pub fn accused(&self) -> &PublicKey {
        match self {
            FraudProof::Equivocation { a, .. } => &a.signer,
            FraudProof::InvalidReveal { commit, .. } => &commit.signer,
            FraudProof::Divergent { claim, .. } => &claim.signer,
        }
    }

    /// Largest encoding of any proof.
    pub const MAX_ENCODED: usize = 1 + Transcript::MAX_ENCODED + <SignedConfirm as Decode>::MIN_SIZE;
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
            _ => return Err(DecodeError::Invalid("fraud proof kind")),
        })
    }
}

impl crate::codec::Message for FraudProof {
    const TAG: u8 = 0x30;
    const MAX_SIZE: usize = 2 + Self::MAX_ENCODED;
}
