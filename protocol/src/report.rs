//! The attestor's signed report on one challenge (SPEC §3.7).
//!
//! It is what the chain settles on: the sample the attestor requested, a merkle root
//! over what it received, the hoster's receipts, the metric summary, the failures, and
//! the coin flip it took part in (round, transcript digest, and the members it accuses
//! of withholding). Encoding: the wire codec with tag `0x50`; a typical report (32
//! samples, one 32-entry receipt, no failures) is 2,063 bytes, and decoders reject
//! anything above [`Report::MAX_SIZE`] (64 KiB).

use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use crate::hash::{Hash, merkle_root};
use crate::identity::{Domain, Keypair, PublicKey, Signature, Verifier};
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

/// The coin flip as the attestor saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinFlipRecord {
    /// The round that produced `R` (or the last one tried).
    pub round: u32,
    /// [`crate::coinflip::Transcript::digest`] of the successful round; zeros if none.
    pub transcript_digest: Hash,
    /// Members whose commit, echo or reveal never arrived (withholding accusations).
    pub accused: Vec<PublicKey>,
}

/// A report, signed by its attestor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
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
        w.u64(self.challenge);
        self.attestor.encode(w);
        self.hoster.encode(w);
        w.array(&self.feed);
        w.list(&self.sampled);
        w.array(&self.received_root);
        w.list(&self.receipts);
        self.metrics.encode(w);
        w.list(&self.failures);
        w.u32(self.coinflip.round);
        w.array(&self.coinflip.transcript_digest);
        w.list(&self.coinflip.accused);
    }

    /// Set `attestor` to `kp`'s key and sign.
    pub fn sign(mut self, kp: &Keypair) -> Self {
        self.attestor = kp.public();
        self.sig = kp.sign(Domain::Report, &self.payload());
        self
    }

    /// Check the attestor's signature, every receipt (signed by `hoster`, for `feed`),
    /// and the metric summary's consistency. Pure; the chain calls it on submission.
    pub fn verify(&self, v: &impl Verifier) -> Result<(), ReportError> {
        if !v.verify(&self.attestor, Domain::Report, &self.payload(), &self.sig) {
            return Err(ReportError::Signature);
        }
        for (index, r) in self.receipts.iter().enumerate() {
            let bad = |error| ReportError::Receipt { index, error };
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

impl Encode for Report {
    fn encode(&self, w: &mut Writer) {
        self.encode_body(w);
        self.sig.encode(w);
    }
}

impl Decode for Report {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Report {
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
                transcript_digest: r.array()?,
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
