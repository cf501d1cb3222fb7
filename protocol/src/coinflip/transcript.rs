//! The record of one completed coin-flip round and the result it determines.

use alloc::vec::Vec;

use super::msg::{MAX_COMMITTEE, SessionId, SignedCommit, SignedReveal};
use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::hash::{Hash, blake2b256};
use crate::identity::Verifier;

/// The signed commits and reveals of every active member of one round, in committee
/// order. It determines the result `R = H(x_1 || … || x_n)` and is what an attestor
/// digests into its report and what a divergent-result fraud proof carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The coin flip.
    pub session: SessionId,
    /// The round that completed.
    pub round: u32,
    /// One commit per active member, committee order.
    pub commits: Vec<SignedCommit>,
    /// One reveal per active member, same order.
    pub reveals: Vec<SignedReveal>,
}

/// Why a transcript does not determine a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// Empty, too large, or commits and reveals differ in number.
    #[error("transcript shape: {0}")]
    Shape(&'static str),
    /// Entry `0` names another session or round, or another signer than its commit.
    #[error("entry {0} belongs to another session, round or signer")]
    Mismatch(usize),
    /// A signer appears twice.
    #[error("entry {0} repeats a signer")]
    Duplicate(usize),
    /// Entry's commit or reveal signature does not verify.
    #[error("entry {0} has a bad signature")]
    Signature(usize),
    /// Entry's reveal does not hash to its commit.
    #[error("entry {0}: reveal does not hash to the commit")]
    Reveal(usize),
}

/// `y = H(x)`: the commit value for secret `x`.
pub fn commit_value(x: &[u8; 32]) -> Hash {
    blake2b256(&[x])
}

/// A member's contribution `x = BLAKE2b-256("datdot/v1/coinflip/own" || s)` for its own
/// secret `s` ([`crate::coinflip::round_secret`]): revealing `x` to the committee does not
/// reveal `s`, and opening `s` later (in the report) proves which `x` it belongs to.
pub fn x_of(own: &[u8; 32]) -> [u8; 32] {
    blake2b256(&[b"datdot/v1/coinflip/own", own])
}

/// `R = H(x_1 || … || x_n)`.
pub fn result_of<'a>(xs: impl Iterator<Item = &'a [u8; 32]>) -> Hash {
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::default();
    for x in xs {
        blake2::Digest::update(&mut h, x);
    }
    blake2::Digest::finalize(h).into()
}

/// Digest of a round's commit set: what a confirmation signs to bind itself to exactly
/// these commits (hence these `x`s, hence one `R`).
pub fn commits_digest<'a>(
    session: &SessionId,
    round: u32,
    commits: impl Iterator<Item = &'a SignedCommit>,
) -> Hash {
    let mut h = blake2::Blake2b::<blake2::digest::consts::U32>::default();
    blake2::Digest::update(&mut h, b"datdot/v1/commit-set");
    blake2::Digest::update(&mut h, session);
    blake2::Digest::update(&mut h, round.to_le_bytes());
    for c in commits {
        blake2::Digest::update(&mut h, c.signer.as_bytes());
        blake2::Digest::update(&mut h, c.y);
    }
    blake2::Digest::finalize(h).into()
}

impl Transcript {
    /// The commit-set digest (see [`commits_digest`]).
    pub fn commits_digest(&self) -> Hash {
        commits_digest(&self.session, self.round, self.commits.iter())
    }

    /// Check every entry (signatures with `v`) and return `R`.
    pub fn verify(&self, v: &impl Verifier) -> Result<Hash, TranscriptError> {
        let n = self.commits.len();
        if n == 0 || n > MAX_COMMITTEE {
            return Err(TranscriptError::Shape("member count"));
        }
        if self.reveals.len() != n {
            return Err(TranscriptError::Shape(
                "reveals and commits differ in number",
            ));
        }
        for (i, (c, r)) in self.commits.iter().zip(&self.reveals).enumerate() {
            if c.session != self.session
                || r.session != self.session
                || c.round != self.round
                || r.round != self.round
                || c.signer != r.signer
            {
                return Err(TranscriptError::Mismatch(i));
            }
            if self.commits[..i].iter().any(|o| o.signer == c.signer) {
                return Err(TranscriptError::Duplicate(i));
            }
            if commit_value(&r.x) != c.y {
                return Err(TranscriptError::Reveal(i));
            }
            if !c.verify(v) || !r.verify(v) {
                return Err(TranscriptError::Signature(i));
            }
        }
        Ok(result_of(self.reveals.iter().map(|r| &r.x)))
    }

    /// Digest of the whole transcript, quoted in reports.
    pub fn digest(&self) -> Hash {
        let mut w = Writer::new();
        self.encode(&mut w);
        blake2b256(&[b"datdot/v1/transcript", &w.into_bytes()])
    }
}

impl Encode for Transcript {
    fn encode(&self, w: &mut Writer) {
        w.array(&self.session);
        w.u32(self.round);
        w.list(&self.commits);
        w.list(&self.reveals);
    }
}

impl Decode for Transcript {
    const MIN_SIZE: usize = 32 + 4 + 4 + 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Transcript {
            session: r.array()?,
            round: r.u32()?,
            commits: r.list("transcript commits", MAX_COMMITTEE)?,
            reveals: r.list("transcript reveals", MAX_COMMITTEE)?,
        })
    }
}

impl Transcript {
    /// Largest encoding.
    pub const MAX_ENCODED: usize =
        32 + 4 + 4 + 4 + 2 * MAX_COMMITTEE * <SignedCommit as Decode>::MIN_SIZE;
}
