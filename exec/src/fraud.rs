//! A fraud proof for one call, and the pure check the chain (and a monitor, before it
//! submits) runs on it.
//!
//! The proof carries the input block with its proof against the input feed's
//! *published* tree, and the executor's output block with its proof against a root its
//! output feed key signed. The check verifies both, the record's signature and fields,
//! re-runs that one call with the job's per-call fuel cap, and compares output hash,
//! fuel and status. The cost of the check is bounded by the fuel cap (DESIGN §18.5).

use alloc::vec::Vec;

use datdot_protocol::codec::{Decode, DecodeError, Encode, Message, Reader, Writer, from_bytes};
use datdot_protocol::hash::Hash;
use datdot_protocol::identity::{ChainId, PublicKey};
use datdot_protocol::tree::{BlockProof, TreeError, leaf_hash, tree_hash};

use crate::record::{CallRecord, OutputBlock, output_hash};
use crate::vm::{CallOutcome, MAX_INPUT_BYTES, Program};

/// Evidence that call `index` of a job was logged wrongly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFraudProof {
    /// The input block's bytes.
    pub input: Vec<u8>,
    /// Its proof in the input feed, against the published tree.
    pub input_proof: BlockProof,
    /// The executor's output block `index` (an encoded [`OutputBlock`]).
    pub output: Vec<u8>,
    /// Its proof in the executor's output feed, against a root that feed's key signed.
    pub output_proof: BlockProof,
}

impl Encode for CallFraudProof {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.input);
        self.input_proof.encode(w);
        w.bytes(&self.output);
        self.output_proof.encode(w);
    }
}

impl Decode for CallFraudProof {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CallFraudProof {
            input: r.bytes("call input", MAX_INPUT_BYTES)?.to_vec(),
            input_proof: BlockProof::decode(r)?,
            output: r.bytes("output block", OutputBlock::MAX_SIZE)?.to_vec(),
            output_proof: BlockProof::decode(r)?,
        })
    }
}

impl Message for CallFraudProof {
    const TAG: u8 = 0x61;
    const MAX_SIZE: usize =
        2 + 4 + MAX_INPUT_BYTES + 4 + OutputBlock::MAX_SIZE + 2 * BlockProof::MAX_ENCODED;
}

/// What the chain knows of the job a proof is checked against.
#[derive(Debug)]
pub struct JobTerms<'a> {
    /// The chain's id.
    pub chain: ChainId,
    /// The job.
    pub job: u64,
    /// The compiled module.
    pub program: &'a Program,
    /// The entry function.
    pub entry: &'a str,
    /// Fuel cap of one call.
    pub fuel_per_call: u64,
    /// The input feed's key.
    pub input_feed: &'a PublicKey,
    /// Its published length.
    pub input_length: u64,
    /// Its published tree hash.
    pub input_tree: Hash,
    /// The executor's output feed key (registered with the job).
    pub output_feed: &'a PublicKey,
    /// The executor's protocol signing key.
    pub executor: &'a PublicKey,
}

/// What a re-run showed the record got wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The record names another input block than the published one at its index.
    Input,
    /// The output block's bytes do not hash to the record's output hash.
    OutputNotAsRecorded,
    /// The re-run ended another way (ok / trap / out of fuel).
    Status,
    /// The re-run used another amount of fuel.
    Fuel,
    /// The re-run gave another output.
    Output,
}

/// The verdict on a well-formed proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallVerdict {
    /// The record is wrong: the executor cheated (or its log is corrupt, the same
    /// thing to a sponsor).
    Fraud {
        /// The call.
        index: u64,
        /// The first field found wrong.
        mismatch: Mismatch,
    },
    /// The record is right: the re-run gives what it says.
    NoFraud {
        /// The call.
        index: u64,
    },
}

/// Why a proof could not be judged: every variant is the submitter's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallProofError {
    /// The input block's proof does not verify against the input feed.
    #[error("input block proof: {0}")]
    InputProof(TreeError),
    /// The input proof is against another tree than the one published.
    #[error("the input proof is not against the published tree")]
    NotThePublishedTree,
    /// The output block's proof does not verify against the output feed key.
    #[error("output block proof: {0}")]
    OutputProof(TreeError),
    /// The output block does not decode.
    #[error("output block: {0}")]
    MalformedOutput(DecodeError),
    /// The record is not signed by the job's executor.
    #[error("the call record is not the executor's")]
    NotTheExecutors,
    /// The record is of another chain or job.
    #[error("the call record is of another chain or job")]
    WrongJob,
    /// Input block, output block and record name different calls.
    #[error("input block {input}, output block {output} and record {record} differ")]
    IndexMismatch {
        /// The input proof's block.
        input: u64,
        /// The output proof's block.
        output: u64,
        /// The record's call.
        record: u64,
    },
}

impl CallFraudProof {
    /// Decode a proof from our wire bytes (size-limited, strict).
    pub fn from_wire(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_bytes(bytes)
    }

    /// Judge the proof against `job` (pure; the cost is the two tree proofs, one
    /// signature and one call of at most `job.fuel_per_call` fuel). Returns the
    /// verdict and the re-run's outcome.
    pub fn verify(&self, job: &JobTerms<'_>) -> Result<(CallVerdict, CallOutcome), CallProofError> {
        let p = &self.input_proof;
        p.verify_block(job.input_feed, &self.input)
            .map_err(CallProofError::InputProof)?;
        if p.root.length != job.input_length || tree_hash(&p.root.roots) != job.input_tree {
            return Err(CallProofError::NotThePublishedTree);
        }
        self.output_proof
            .verify_block(job.output_feed, &self.output)
            .map_err(CallProofError::OutputProof)?;
        let block: OutputBlock =
            from_bytes(&self.output).map_err(CallProofError::MalformedOutput)?;
        let record: &CallRecord = &block.record;
        if record.executor != *job.executor || block.verify_signature().is_err() {
            return Err(CallProofError::NotTheExecutors);
        }
        if record.chain != job.chain || record.job != job.job {
            return Err(CallProofError::WrongJob);
        }
        let (input, output) = (p.index, self.output_proof.index);
        if input != output || input != record.index {
            return Err(CallProofError::IndexMismatch {
                input,
                output,
                record: record.index,
            });
        }
        let index = record.index;
        let fraud = |mismatch| CallVerdict::Fraud { index, mismatch };
        let outcome = job.program.call(job.entry, &self.input, job.fuel_per_call);
        let verdict = if record.input_leaf != leaf_hash(&self.input) {
            fraud(Mismatch::Input)
        } else if !block.output_matches_record() {
            fraud(Mismatch::OutputNotAsRecorded)
        } else if record.status != outcome.status {
            fraud(Mismatch::Status)
        } else if record.fuel_used != outcome.fuel_used {
            fraud(Mismatch::Fuel)
        } else if record.output_hash != output_hash(&outcome.output) {
            fraud(Mismatch::Output)
        } else {
            CallVerdict::NoFraud { index }
        };
        Ok((verdict, outcome))
    }
}
