//! The attestor's signed report on one challenge (SPEC §3.7).
//!
//! It is what the chain settles on: the sample the attestor requested, a merkle root
//! over what it received, the hoster's receipts, the metric summary, the failures, and
//! the coin flip it took part in: the successful round's signed transcript and the
//! member's own secret (from which the chain recomputes `R` and this member's sample),
//! or, for a flip that failed, the signed commits of the members it accuses of
//! withholding. Encoding: the wire codec with tag `0x50`; a typical report (32 samples,
//! one 32-entry receipt, no failures, a 10-member transcript) is ≈ 5.5 KB, and decoders
//! reject anything above [`Report::MAX_SIZE`] (64 KiB).

use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use crate::coinflip::{SignedCommit, Transcript};
use crate::hash::{Hash, merkle_root};
use crate::identity::{ChainId, Domain, Keypair, PublicKey, Signature, Verifier};
use crate::metrics::{Failure, MetricSummary};
use crate::receipt::{ReceiptError, SignedReceipt};

/// Most sampled blocks in one report.
pub const MAX_SAMPLES: usize = 1024;
/// Most receipts in one report.
pub const MAX_RECEIPTS: usize = 32;
/// Most failures listed in one report.
pub const MAX_FAILURES: usize = 64;
/// Most accused members in one report.
pub const MAX_ACCUSED: usize = 64;

/// Most members in a report's transcript (the chain's committee bound).
pub const MAX_TRANSCRIPT: usize = 32;

/// The coin flip as the attestor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinFlipRecord {
    /// The round that produced `R` (or the last one tried).
    pub round: u32,
    /// The successful round's signed commits and reveals (`None`: no agreed `R`, the
    /// member audited with a private one, which nobody can check).
    pub transcript: Option<Transcript>,
    /// The member's own secret `s` for `round` ([`crate::coinflip::round_secret`]):
    /// [`crate::coinflip::x_of`]`(s)` is its reveal in the transcript, and `R` with `s`
    /// gives its sample ([`crate::schedule::sample`]). Zeros without a transcript.
    pub own_secret: [u8; 32],
    /// Withholding accusations: the signed commits of the members whose echo or reveal
    /// never arrived in a round that ended offline, each naming its round (the evidence
    /// the chain checks a published reveal against, and proof the round was real; a
    /// member that never committed is offline, not accused).
    pub accused: Vec<SignedCommit>,
}

/// A report, signed by its attestor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The chain the challenge is on (its [`ChainId`]): a report for a dev chain before
    /// a reset, where challenge ids repeat, is refused by the new one.
    pub chain: ChainId,
    /// The chain's challenge id.
    pub challenge: u64,
    /// The reporting attestor.
    pub attestor: PublicKey,
    /// The audited hoster's signing key.
    pub hoster: PublicKey,
    /// The feed key.
    pub feed: [u8; 32],
    /// Block indices requested, in request order.
    pub sampled: Vec<u64>,
    /// [`received_root`] over the leaf hashes received for `sampled`.
    pub received_root: Hash,
    /// The hoster's receipts collected on the audit connection.
    pub receipts: Vec<SignedReceipt>,
    /// The measurements.
    pub metrics: MetricSummary,
    /// Blocks that failed and why.
    pub failures: Vec<Failure>,
    /// The coin flip.
    pub coinflip: CoinFlipRecord,
    /// The attestor's signature (domain `report`).
    pub sig: Signature,
}

/// Why a report is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The attestor's signature does not verify.
    #[error("report signature does not verify")]
    Signature,
    /// A receipt is invalid or not the audited hoster's for this feed.
    #[error("receipt {index}: {error}")]
    Receipt {
        /// Which receipt.
        index: usize,
        /// Why.
        error: ReceiptError,
    },
    /// The metric summary is self-contradictory.
    #[error("metric summary is not well formed")]
    Metrics,
}

/// Why a report is not the audit its schedule demanded ([`Report::check_audit`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditCheckError {
    /// The transcript does not verify.
    #[error("transcript: {0}")]
    Transcript(#[from] crate::coinflip::TranscriptError),
    /// The transcript is of another session or round than the report names.
    #[error("transcript of another challenge or round")]
    WrongFlip,
    /// A transcript entry is signed by someone outside the committee.
    #[error("transcript entry signed outside the committee")]
    Stranger,
    /// The reporter is not in its own transcript.
    #[error("the reporter is not in the transcript")]
    NotInTranscript,
    /// The opened secret is not the preimage of the reporter's reveal.
    #[error("the own secret does not open the reporter's reveal")]
    OwnSecret,
    /// The sampled blocks are not the sample `R` and the own secret give.
    #[error("sampled blocks are not the scheduled sample")]
    Sample,
    /// The receipts are not one connection's, in sequence from 0.
    #[error("receipts of more than one connection, or out of sequence")]
    Receipts,
    /// The report counts more blocks as verified than its receipts cover.
    #[error("{verified} blocks counted as verified, receipts cover {covered}")]
    Uncovered {
        /// `metrics.ok_blocks`.
        verified: u32,
        /// Sampled blocks some receipt entry names.
        covered: u32,
    },
}

/// How a report relates to the committee's schedule ([`Report::check_audit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tie {
    /// The transcript determines `R`, the reporter's secret opens its reveal, and (for a
    /// conclusive audit) the sample is the scheduled one. `absent`: committee indices
    /// the transcript leaves out — the chain pays the report only if each was proven
    /// malicious or a majority of reports accuse it (an excluded or benched member);
    /// otherwise a subset may have drawn an `R` of its choosing.
    Tied {
        /// Committee indices not in the transcript, ascending.
        absent: Vec<usize>,
    },
    /// No transcript (the flip failed; the member audited with a private `R`): it counts
    /// towards the verdict, since it cannot be told from an honest one, and is not paid.
    NoTranscript,
}

/// Merkle root (rs_merkle, BLAKE2b-256) over the leaf hashes received for each sampled
/// block, in sample order; a block not received contributes 32 zero bytes.
pub fn received_root(received: &[Option<Hash>]) -> Hash {
    let leaves: Vec<Hash> = received.iter().map(|h| h.unwrap_or([0; 32])).collect();
    merkle_root(&leaves)
}

impl Report {
    fn payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_body(&mut w);
        w.into_bytes()
    }

    fn encode_body(&self, w: &mut Writer) {
        w.array(&self.chain);
        w.u64(self.challenge);
        self.attestor.encode(w);
        self.hoster.encode(w);
        w.array(&self.feed);
        w.list(&self.sampled);
        w.array(&self.received_root);
        w.list(&self.receipts);
        self.metrics.encode(w);
        w.list(&self.failures);
        let c = &self.coinflip;
        w.u32(c.round);
        match &c.transcript {
            None => w.u8(0),
            Some(t) => {
                w.u8(1);
                t.encode(w);
            }
        }
        w.array(&c.own_secret);
        w.list(&c.accused);
    }

    /// Set `attestor` to `kp`'s key and sign.
    pub fn sign(mut self, kp: &Keypair) -> Self {
        self.attestor = kp.public();
        self.sig = kp.sign(Domain::Report, &self.payload());
        self
    }

    /// Check the attestor's signature, every receipt (signed by `hoster`, on `chain`, for
    /// `feed`), and the metric summary's consistency. Pure; the chain calls it on submission.
    pub fn verify(&self, v: &impl Verifier) -> Result<(), ReportError> {
        if !v.verify(&self.attestor, Domain::Report, &self.payload(), &self.sig) {
            return Err(ReportError::Signature);
        }
        for (index, r) in self.receipts.iter().enumerate() {
            let bad = |error| ReportError::Receipt { index, error };
            if r.chain != self.chain {
                return Err(bad(ReceiptError::WrongChain));
            }
            if r.hoster != self.hoster {
                return Err(bad(ReceiptError::WrongHoster));
            }
            if r.feed != self.feed {
                return Err(bad(ReceiptError::WrongFeed));
            }
            r.verify(v).map_err(bad)?;
        }
        if !self.metrics.well_formed() {
            return Err(ReportError::Metrics);
        }
        Ok(())
    }
}

impl Report {
    /// Whether this report is the audit the schedule demanded: the transcript verifies
    /// for `session` and the report's round, every entry is signed by a member of
    /// `committee` (keys in committee order), the reporter's own secret opens its
    /// reveal, and a conclusive audit sampled exactly
    /// [`crate::schedule::sample`]`(R, s, feed_length, k)` with `k` the number of blocks
    /// sampled. Whatever the transcript, the receipts are one connection's, in sequence,
    /// and cover every block a conclusive audit counts as verified (a member that did
    /// not download holds no receipt for it). Returns who the transcript leaves out.
    /// Pure; the chain calls it on submission.
    pub fn check_audit(
        &self,
        v: &impl Verifier,
        session: &crate::coinflip::SessionId,
        committee: &[[u8; 32]],
        feed_length: u64,
    ) -> Result<Tie, AuditCheckError> {
        let connection = self.receipts.first().map(|r| r.remote);
        let in_sequence = self
            .receipts
            .iter()
            .enumerate()
            .all(|(i, r)| Some(r.remote) == connection && r.seq == i as u64);
        if !in_sequence {
            return Err(AuditCheckError::Receipts);
        }
        if self.metrics.conclusive() {
            let covered = self.covered();
            if self.metrics.ok_blocks > covered {
                return Err(AuditCheckError::Uncovered {
                    verified: self.metrics.ok_blocks,
                    covered,
                });
            }
        }
        let Some(t) = &self.coinflip.transcript else {
            return Ok(Tie::NoTranscript);
        };
        if &t.session != session || t.round != self.coinflip.round {
            return Err(AuditCheckError::WrongFlip);
        }
        let r = t.verify(v)?;
        let mut present = alloc::vec![false; committee.len()];
        for c in &t.commits {
            let i = committee
                .iter()
                .position(|k| k == c.signer.as_bytes())
                .ok_or(AuditCheckError::Stranger)?;
            present[i] = true;
        }
        let mine = t
            .reveals
            .iter()
            .find(|rv| rv.signer == self.attestor)
            .ok_or(AuditCheckError::NotInTranscript)?;
        if crate::coinflip::x_of(&self.coinflip.own_secret) != mine.x {
            return Err(AuditCheckError::OwnSecret);
        }
        if self.metrics.conclusive() {
            let k = u32::try_from(self.sampled.len()).unwrap_or(u32::MAX);
            let expect = crate::schedule::sample(&r, &self.coinflip.own_secret, feed_length, k);
            if expect != self.sampled {
                return Err(AuditCheckError::Sample);
            }
        }
        Ok(Tie::Tied {
            absent: (0..committee.len()).filter(|&i| !present[i]).collect(),
        })
    }

    /// Sampled blocks some receipt entry names.
    pub fn covered(&self) -> u32 {
        let receipted: alloc::collections::BTreeSet<u64> = self
            .receipts
            .iter()
            .flat_map(|r| r.entries.iter().map(|e| e.index))
            .collect();
        let n = self
            .sampled
            .iter()
            .filter(|i| receipted.contains(i))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Count as verified only blocks the receipts cover: the rest move from `ok_blocks`
    /// to `misbehaved` (the hoster served them without signing for them, or its receipt
    /// did not fit the report). Returns how many moved. The attestor calls it before
    /// signing, so its report passes [`Self::check_audit`].
    pub fn count_only_receipted(&mut self) -> u32 {
        if !self.metrics.conclusive() {
            return 0;
        }
        let moved = self.metrics.ok_blocks.saturating_sub(self.covered());
        self.metrics.ok_blocks -= moved;
        self.metrics.misbehaved = self.metrics.misbehaved.saturating_add(moved);
        moved
    }
}

impl Encode for Report {
    fn encode(&self, w: &mut Writer) {
        self.encode_body(w);
        self.sig.encode(w);
    }
}

impl Decode for Report {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Report {
            chain: r.array()?,
            challenge: r.u64()?,
            attestor: PublicKey::decode(r)?,
            hoster: PublicKey::decode(r)?,
            feed: r.array()?,
            sampled: r.list("sampled blocks", MAX_SAMPLES)?,
            received_root: r.array()?,
            receipts: r.list("receipts", MAX_RECEIPTS)?,
            metrics: MetricSummary::decode(r)?,
            failures: r.list("failures", MAX_FAILURES)?,
            coinflip: CoinFlipRecord {
                round: r.u32()?,
                transcript: match r.u8()? {
                    0 => None,
                    1 => {
                        let t = Transcript::decode(r)?;
                        if t.commits.len() > MAX_TRANSCRIPT || t.reveals.len() > MAX_TRANSCRIPT {
                            return Err(DecodeError::Invalid("transcript too long"));
                        }
                        Some(t)
                    }
                    _ => return Err(DecodeError::Invalid("transcript flag")),
                },
                own_secret: r.array()?,
                accused: r.list("accused members", MAX_ACCUSED)?,
            },
            sig: Signature::decode(r)?,
        })
    }
}

impl Message for Report {
    const TAG: u8 = 0x50;
    const MAX_SIZE: usize = 64 * 1024;
}
