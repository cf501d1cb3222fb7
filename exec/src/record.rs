//! The call log: what an executor writes to its output feed, block *i* for call *i*.
//!
//! Wire format (DESIGN §3, §18.4): an [`OutputBlock`] is a top-level message of our
//! codec (tag `0x60`): the [`CallRecord`], the executor's signature over it (context
//! `datdot/v1/call`) and the output bytes. The record commits to the input block (its
//! Hypercore leaf hash), the output (BLAKE2b-256) and the fuel and status of the call,
//! so a monitor holding the input block can re-run the call and hold the executor to
//! every field.

use alloc::vec::Vec;

use datdot_protocol::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use datdot_protocol::hash::{Hash, blake2b256};
use datdot_protocol::identity::{ChainId, Domain, Keypair, PublicKey, Signature, SignatureError};

use crate::vm::{CallOutcome, MAX_OUTPUT_BYTES};

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// The entry returned an output.
    Ok,
    /// The call trapped (a WebAssembly trap or a broken ABI contract).
    Trap,
    /// The call used up its fuel.
    OutOfFuel,
}

impl CallStatus {
    fn to_u8(self) -> u8 {
        match self {
            CallStatus::Ok => 0,
            CallStatus::Trap => 1,
            CallStatus::OutOfFuel => 2,
        }
    }
}

impl Encode for CallStatus {
    fn encode(&self, w: &mut Writer) {
        w.u8(self.to_u8());
    }
}

impl Decode for CallStatus {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(CallStatus::Ok),
            1 => Ok(CallStatus::Trap),
            2 => Ok(CallStatus::OutOfFuel),
            _ => Err(DecodeError::Invalid("call status")),
        }
    }
}

/// The hash a record gives an output: BLAKE2b-256 of `"datdot/v1/output" || output`.
pub fn output_hash(output: &[u8]) -> Hash {
    blake2b256(&[b"datdot/v1/output", output])
}

/// One call of a job, as its executor claims it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The chain the job is on ([`datdot_protocol::identity::chain_id`]).
    pub chain: ChainId,
    /// The job's id on that chain.
    pub job: u64,
    /// The call's index: input block `index`, output block `index`.
    pub index: u64,
    /// The input block's Hypercore leaf hash (`tree::leaf_hash`).
    pub input_leaf: Hash,
    /// [`output_hash`] of the output (of the empty output unless `status` is `Ok`).
    pub output_hash: Hash,
    /// Fuel the call used.
    pub fuel_used: u64,
    /// How it ended.
    pub status: CallStatus,
    /// The executor's protocol signing key.
    pub executor: PublicKey,
}

impl CallRecord {
    /// Encoded size (fixed).
    pub const SIZE: usize = 32 + 8 + 8 + 32 + 32 + 8 + 1 + 32;

    /// The record of `outcome` for call `index` of `job` over `input`.
    pub fn of(
        chain: ChainId,
        job: u64,
        index: u64,
        input: &[u8],
        outcome: &CallOutcome,
        executor: PublicKey,
    ) -> Self {
        CallRecord {
            chain,
            job,
            index,
            input_leaf: datdot_protocol::tree::leaf_hash(input),
            output_hash: output_hash(&outcome.output),
            fuel_used: outcome.fuel_used,
            status: outcome.status,
            executor,
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_bytes()
    }
}

impl Encode for CallRecord {
    fn encode(&self, w: &mut Writer) {
        w.array(&self.chain);
        w.u64(self.job);
        w.u64(self.index);
        w.array(&self.input_leaf);
        w.array(&self.output_hash);
        w.u64(self.fuel_used);
        self.status.encode(w);
        self.executor.encode(w);
    }
}

impl Decode for CallRecord {
    const MIN_SIZE: usize = Self::SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CallRecord {
            chain: r.array()?,
            job: r.u64()?,
            index: r.u64()?,
            input_leaf: r.array()?,
            output_hash: r.array()?,
            fuel_used: r.u64()?,
            status: CallStatus::decode(r)?,
            executor: PublicKey::decode(r)?,
        })
    }
}

/// Block `index` of an executor's output feed: the signed record and the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputBlock {
    /// The call's record.
    pub record: CallRecord,
    /// The executor's signature over the record (context `datdot/v1/call`).
    pub signature: Signature,
    /// The output bytes (empty unless the call ended `Ok`).
    pub output: Vec<u8>,
}

impl OutputBlock {
    /// Sign `record` with the executor's key and attach `output`.
    pub fn sign(record: CallRecord, output: Vec<u8>, executor: &Keypair) -> Self {
        let signature = executor.sign(Domain::CallRecord, &record.payload());
        OutputBlock {
            record,
            signature,
            output,
        }
    }

    /// The record's signature verifies for the key it names.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.record
            .executor
            .verify(Domain::CallRecord, &self.record.payload(), &self.signature)
    }

    /// The output hashes to what the record says.
    pub fn output_matches_record(&self) -> bool {
        output_hash(&self.output) == self.record.output_hash
    }
}

impl Encode for OutputBlock {
    fn encode(&self, w: &mut Writer) {
        self.record.encode(w);
        self.signature.encode(w);
        w.bytes(&self.output);
    }
}

impl Decode for OutputBlock {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OutputBlock {
            record: CallRecord::decode(r)?,
            signature: Signature::decode(r)?,
            output: r.bytes("call output", MAX_OUTPUT_BYTES)?.to_vec(),
        })
    }
}

impl Message for OutputBlock {
    const TAG: u8 = 0x60;
    const MAX_SIZE: usize = 2 + CallRecord::SIZE + 64 + 4 + MAX_OUTPUT_BYTES;
}
