//! Call records and single-call fraud proofs: an honest log holds, every lie in a
//! record is caught by re-running the call, and malformed or misdirected proofs are
//! refused without a verdict.
#![allow(clippy::unwrap_used)] // test fixtures: a failed step is a failed test

use datdot_exec::record::CallRecord;
use datdot_exec::vm::MAX_OUTPUT_BYTES;
use datdot_exec::{
    CallFraudProof, CallProofError, CallStatus, CallVerdict, JobTerms, Mismatch, MonitorReport,
    OutputBlock, Program, output_hash,
};
use datdot_protocol::codec::{from_bytes, to_bytes};
use datdot_protocol::identity::{Keypair, PublicKey};
use datdot_protocol::tree;
use proptest::prelude::*;

const CHAIN: [u8; 32] = [3; 32];
const JOB: u64 = 7;
const FUEL: u64 = 1_000_000;

use datdot_testkit::{SignedFeed as Feed, reverse_wasm as reverse};

struct Fixture {
    program: Program,
    input: Feed,
    executor: Keypair,
    executor_key: PublicKey,
}

impl Fixture {
    fn new() -> Self {
        let blocks = (0..5u8).map(|i| vec![i; 10 + 7 * i as usize]).collect();
        let executor = Keypair::from_seed(&[9; 32]);
        Fixture {
            program: Program::new(&reverse()).unwrap(),
            input: Feed::new(1, blocks),
            executor_key: executor.public(),
            executor,
        }
    }
    /// The honest output block of call `i`, then `tamper` applied to it.
    fn block(&self, i: u64, tamper: impl FnOnce(&mut CallRecord, &mut Vec<u8>)) -> OutputBlock {
        let input = &self.input.blocks[i as usize];
        let outcome = self.program.call("process", input, FUEL);
        let mut record = CallRecord::of(CHAIN, JOB, i, input, &outcome, self.executor.public());
        let mut output = outcome.output;
        tamper(&mut record, &mut output);
        OutputBlock::sign(record, output, &self.executor)
    }
    /// The executor's output feed holding `blocks`, and the proof of call `i`.
    fn proof(&self, blocks: Vec<OutputBlock>, i: u64) -> (CallFraudProof, Feed) {
        let out = Feed::new(2, blocks.iter().map(to_bytes).collect());
        let proof = CallFraudProof {
            input: self.input.blocks[i as usize].clone(),
            input_proof: self.input.proof(i),
            output: out.blocks[i as usize].clone(),
            output_proof: out.proof(i),
        };
        (proof, out)
    }
    fn judge(&self, proof: &CallFraudProof, out: &Feed) -> Result<CallVerdict, CallProofError> {
        let (input_feed, output_feed) = (self.input.public(), out.public());
        let terms = JobTerms {
            chain: CHAIN,
            job: JOB,
            program: &self.program,
            entry: "process",
            fuel_per_call: FUEL,
            input_feed: &input_feed,
            input_length: self.input.blocks.len() as u64,
            input_tree: self.input.tree_hash(),
            output_feed: &output_feed,
            executor: &self.executor_key,
        };
        // A proof that crossed the wire is judged the same.
        let wire: CallFraudProof = from_bytes(&to_bytes(proof)).unwrap();
        assert_eq!(&wire, proof);
        wire.verify(&terms).map(|(v, _)| v)
    }
    /// Call 2 of an honest log, with call 2's record tampered.
    fn judge_tampered(
        &self,
        tamper: impl FnOnce(&mut CallRecord, &mut Vec<u8>),
    ) -> Result<CallVerdict, CallProofError> {
        let mut blocks: Vec<_> = (0..5).map(|i| self.block(i, |_, _| {})).collect();
        blocks[2] = self.block(2, tamper);
        let (proof, out) = self.proof(blocks, 2);
        self.judge(&proof, &out)
    }
}

#[test]
fn an_honest_record_is_no_fraud() {
    let f = Fixture::new();
    let blocks: Vec<_> = (0..5).map(|i| f.block(i, |_, _| {})).collect();
    for i in 0..5 {
        let (proof, out) = f.proof(blocks.clone(), i);
        assert_eq!(f.judge(&proof, &out), Ok(CallVerdict::NoFraud { index: i }));
    }
}

#[test]
fn every_lie_in_a_record_is_caught_by_the_re_run() {
    let f = Fixture::new();
    let fraud = |mismatch| Ok(CallVerdict::Fraud { index: 2, mismatch });
    // A wrong output, consistently recorded.
    assert_eq!(
        f.judge_tampered(|r, o| {
            o[0] ^= 1;
            r.output_hash = output_hash(o);
        }),
        fraud(Mismatch::Output)
    );
    // The right output recorded, other bytes served.
    assert_eq!(
        f.judge_tampered(|_, o| o.push(0)),
        fraud(Mismatch::OutputNotAsRecorded)
    );
    assert_eq!(
        f.judge_tampered(|r, _| r.fuel_used += 1),
        fraud(Mismatch::Fuel)
    );
    assert_eq!(
        f.judge_tampered(|r, _| r.fuel_used -= 1),
        fraud(Mismatch::Fuel)
    );
    // Claiming the call ran out of fuel (to be paid without doing it).
    assert_eq!(
        f.judge_tampered(|r, o| {
            o.clear();
            r.output_hash = output_hash(o);
            r.status = CallStatus::OutOfFuel;
            r.fuel_used = FUEL;
        }),
        fraud(Mismatch::Status)
    );
    assert_eq!(
        f.judge_tampered(|r, o| {
            o.clear();
            r.output_hash = output_hash(o);
            r.status = CallStatus::Trap;
        }),
        fraud(Mismatch::Status)
    );
    // Ran the call over another input.
    assert_eq!(
        f.judge_tampered(|r, _| r.input_leaf = tree::leaf_hash(b"other")),
        fraud(Mismatch::Input)
    );
}

#[test]
fn misdirected_or_broken_proofs_get_no_verdict() {
    let f = Fixture::new();
    let blocks: Vec<_> = (0..5)
        .map(|i| f.block(i, |r, _| r.fuel_used += 1))
        .collect();
    let (good, out) = f.proof(blocks.clone(), 1);
    assert!(matches!(
        f.judge(&good, &out),
        Ok(CallVerdict::Fraud { .. })
    ));

    // Input bytes that are not the proven block.
    let mut p = good.clone();
    p.input[0] ^= 1;
    assert!(matches!(
        f.judge(&p, &out),
        Err(CallProofError::InputProof(_))
    ));
    // Another tree of the input feed (its author signed a fork): not the executor's fault.
    let fork = Feed::new(1, vec![vec![1; 17], vec![2; 3]]);
    let mut p = good.clone();
    p.input = fork.blocks[1].clone();
    p.input_proof = fork.proof(1);
    p.output = out.blocks[1].clone();
    assert_eq!(f.judge(&p, &out), Err(CallProofError::NotThePublishedTree));
    // Output bytes that are not in the executor's log.
    let mut p = good.clone();
    p.output.push(0);
    assert!(matches!(
        f.judge(&p, &out),
        Err(CallProofError::OutputProof(_))
    ));
    // A log signed by another key than the executor's output feed.
    let stranger = Feed::new(5, blocks.iter().map(to_bytes).collect());
    let mut p = good.clone();
    p.output_proof = stranger.proof(1);
    assert!(matches!(
        f.judge(&p, &out),
        Err(CallProofError::OutputProof(_))
    ));
    // A record signed by someone else (framing the executor).
    let framer = Keypair::from_seed(&[8; 32]);
    let mut forged = f.block(1, |r, _| r.fuel_used += 1);
    forged.signature =
        OutputBlock::sign(forged.record.clone(), forged.output.clone(), &framer).signature;
    let mut bs = blocks.clone();
    bs[1] = forged;
    let (p, o) = f.proof(bs, 1);
    assert_eq!(f.judge(&p, &o), Err(CallProofError::NotTheExecutors));
    // A record of another job or chain.
    let mut bs = blocks.clone();
    bs[1] = f.block(1, |r, _| r.job += 1);
    let (p, o) = f.proof(bs, 1);
    assert_eq!(f.judge(&p, &o), Err(CallProofError::WrongJob));
    // Output block 1 against input block 2.
    let (p2, _) = f.proof(blocks.clone(), 2);
    let mut p = good.clone();
    p.input = p2.input;
    p.input_proof = p2.input_proof;
    assert_eq!(
        f.judge(&p, &out),
        Err(CallProofError::IndexMismatch {
            input: 2,
            output: 1,
            record: 1
        })
    );
    // Garbage where the output block should be (in a log the executor signed).
    let junk = Feed::new(2, vec![b"not a block".to_vec(); 5]);
    let mut p = good.clone();
    p.output = junk.blocks[1].clone();
    p.output_proof = junk.proof(1);
    assert!(matches!(
        f.judge(&p, &junk),
        Err(CallProofError::MalformedOutput(_))
    ));
}

#[test]
fn size_limits_are_the_documented_ones() {
    // docs/DESIGN.md §3 and §18.
    use datdot_protocol::codec::Message;
    assert_eq!(CallRecord::SIZE, 153);
    assert_eq!(OutputBlock::MAX_SIZE, 262_367);
    assert_eq!(CallFraudProof::MAX_SIZE, 537_097);
    assert_eq!(MonitorReport::MAX_SIZE, 246);
}

#[test]
fn encodings_reject_every_prefix_and_trailing_bytes() {
    let f = Fixture::new();
    let blocks: Vec<_> = (0..5).map(|i| f.block(i, |_, _| {})).collect();
    let (proof, _) = f.proof(blocks.clone(), 3);
    let b = to_bytes(&blocks[3]);
    assert_eq!(from_bytes::<OutputBlock>(&b).unwrap(), blocks[3]);
    let p = to_bytes(&proof);
    for cut in 0..b.len() {
        assert!(from_bytes::<OutputBlock>(&b[..cut]).is_err());
    }
    for cut in (0..p.len()).step_by(7) {
        assert!(from_bytes::<CallFraudProof>(&p[..cut]).is_err());
    }
    let mut t = b.clone();
    t.push(0);
    assert!(from_bytes::<OutputBlock>(&t).is_err());
    // A status byte out of range.
    let mut s = b.clone();
    s[2 + 32 + 8 + 8 + 32 + 32 + 8] = 3;
    assert!(from_bytes::<OutputBlock>(&s).is_err());
    // An output over the limit is refused before it is read.
    let big = OutputBlock {
        output: vec![0; MAX_OUTPUT_BYTES + 1],
        ..blocks[0].clone()
    };
    assert!(from_bytes::<OutputBlock>(&to_bytes(&big)).is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = from_bytes::<OutputBlock>(&bytes);
        let _ = from_bytes::<CallFraudProof>(&bytes);
        let _ = from_bytes::<MonitorReport>(&bytes);
        let mut framed = vec![1, 0x60];
        framed.extend_from_slice(&bytes);
        let _ = from_bytes::<OutputBlock>(&framed);
        framed[1] = 0x61;
        let _ = from_bytes::<CallFraudProof>(&framed);
        framed[1] = 0x63;
        let _ = from_bytes::<MonitorReport>(&framed);
    }

    #[test]
    fn output_blocks_round_trip(
        job in any::<u64>(), index in any::<u64>(), fuel in any::<u64>(), status in 0u8..3,
        output in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let kp = Keypair::from_seed(&[4; 32]);
        let status = [CallStatus::Ok, CallStatus::Trap, CallStatus::OutOfFuel][status as usize];
        let record = CallRecord {
            chain: CHAIN, job, index, input_leaf: [1; 32], output_hash: output_hash(&output),
            fuel_used: fuel, status, executor: kp.public(),
        };
        let block = OutputBlock::sign(record, output, &kp);
        prop_assert!(block.verify_signature().is_ok());
        let back: OutputBlock = from_bytes(&to_bytes(&block)).unwrap();
        prop_assert_eq!(back, block);
    }
}
