//! An executor's run of a job (`exec::job::JobRun`): one logged call per input block,
//! commits every k calls and at the end, traps logged, running out of fuel (a call's or
//! the job's total) ending the log, every logged call one a fraud proof cannot fault,
//! and a restart at any point writing exactly the log an uninterrupted run writes.
#![allow(clippy::unwrap_used)] // test fixtures: a failed step is a failed test

use datdot_exec::job::{End, JobRun, JobSpec, OnChain, ResumeError, Step};
use datdot_exec::{CallFraudProof, CallStatus, CallVerdict, JobTerms, OutputBlock, Program};
use datdot_protocol::codec::to_bytes;
use datdot_protocol::identity::Keypair;
use datdot_testkit::{SignedFeed, reverse_wasm_after};
use proptest::prelude::*;

const CHAIN: [u8; 32] = [3; 32];
const JOB: u64 = 11;

/// `process` traps on an input whose first byte is 0, else reverses it (fuel grows
/// with the input's length).
fn module() -> Program {
    Program::new(&reverse_wasm_after(
        "(if (i32.eqz (i32.load8_u (local.get $ptr))) (then unreachable))",
    ))
    .unwrap()
}

/// Input blocks of `lens` bytes (first byte 1: no trap).
fn inputs(lens: &[usize]) -> Vec<Vec<u8>> {
    lens.iter()
        .enumerate()
        .map(|(i, n)| {
            let mut b: Vec<u8> = (0..*n).map(|j| (i * 7 + j) as u8 | 1).collect();
            b[0] = 1;
            b
        })
        .collect()
}

fn executor() -> Keypair {
    Keypair::from_seed(&[5; 32])
}

fn spec(input_length: usize, fuel_per_call: u64, fuel_total: u64) -> JobSpec {
    JobSpec {
        chain: CHAIN,
        job: JOB,
        entry: "process".into(),
        fuel_per_call,
        fuel_total,
        input_length: input_length as u64,
    }
}

/// What a driver saw.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    log: Vec<OutputBlock>,
    commits: Vec<(u64, u64, Option<End>)>,
    finished: bool,
}

/// Drive `run` over `input` until it finishes or `appends` more blocks were appended.
fn drive(run: &mut JobRun, input: &[Vec<u8>], program: &Program, seen: &mut Seen, appends: usize) {
    let stop = seen.log.len().saturating_add(appends);
    while seen.log.len() < stop {
        let Some(step) = run.poll_step() else {
            panic!("the run waits for nothing")
        };
        match step {
            Step::Run { index } => run.handle_input(index, &input[index as usize], program),
            Step::Append(b) => {
                assert_eq!(b.record.index, seen.log.len() as u64, "appended in order");
                seen.log.push(*b);
            }
            Step::Commit {
                length,
                fuel_used,
                end,
            } => {
                seen.commits.push((length, fuel_used, end));
                run.handle_committed(length);
            }
            Step::Finished => {
                seen.finished = true;
                return;
            }
        }
    }
}

fn need(program: &Program, input: &[u8]) -> u64 {
    program.call("process", input, u64::MAX).fuel_used
}

/// A monitor's or the chain's re-run of call `i` finds nothing wrong with it.
fn no_fraud(program: &Program, input: &[Vec<u8>], log: &[OutputBlock], fuel_per_call: u64) {
    let input_feed = SignedFeed::new(1, input.to_vec());
    let out = SignedFeed::new(2, log.iter().map(to_bytes).collect());
    let (inp, outp, ex) = (input_feed.public(), out.public(), executor().public());
    let terms = JobTerms {
        chain: CHAIN,
        job: JOB,
        program,
        entry: "process",
        fuel_per_call,
        input_feed: &inp,
        input_length: input.len() as u64,
        input_tree: input_feed.tree_hash(),
        output_feed: &outp,
        executor: &ex,
    };
    for i in 0..log.len() as u64 {
        let proof = CallFraudProof {
            input: input[i as usize].clone(),
            input_proof: input_feed.proof(i),
            output: out.blocks[i as usize].clone(),
            output_proof: out.proof(i),
        };
        assert_eq!(
            proof.verify(&terms).map(|(v, _)| v),
            Ok(CallVerdict::NoFraud { index: i }),
            "call {i}"
        );
    }
}

#[test]
fn one_call_per_block_committed_every_k_calls_and_at_the_end() {
    let program = module();
    let input = inputs(&[10, 40, 3, 90, 17, 5, 64]);
    let mut run = JobRun::new(spec(7, 1_000_000, 100_000_000), executor(), 3);
    let mut seen = Seen::default();
    drive(&mut run, &input, &program, &mut seen, usize::MAX);
    assert!(seen.finished);
    assert_eq!(seen.log.len(), 7);
    let fuel: u64 = seen.log.iter().map(|b| b.record.fuel_used).sum();
    let at = |n: usize| {
        seen.log[..n]
            .iter()
            .map(|b| b.record.fuel_used)
            .sum::<u64>()
    };
    assert_eq!(
        seen.commits,
        vec![
            (3, at(3), None),
            (6, at(6), None),
            (7, fuel, Some(End::Done))
        ]
    );
    for (i, b) in seen.log.iter().enumerate() {
        assert_eq!(b.record.status, CallStatus::Ok);
        assert_eq!(b.record.fuel_used, need(&program, &input[i]));
        b.verify_signature().unwrap();
        assert!(b.output_matches_record());
        let mut rev = input[i].clone();
        rev.reverse();
        assert_eq!(b.output, rev);
    }
    assert_eq!(
        (run.logged(), run.fuel_used(), run.end()),
        (7, fuel, Some(End::Done))
    );
    assert_eq!(run.poll_step(), Some(Step::Finished));
    no_fraud(&program, &input, &seen.log, 1_000_000);
}

#[test]
fn a_trap_is_logged_and_a_call_out_of_fuel_ends_the_log() {
    let program = module();
    let mut input = inputs(&[10, 10, 400, 10]);
    input[1][0] = 0; // traps
    // Enough for the short calls, not for the long one.
    let cap = need(&program, &input[0]) * 3;
    assert!(need(&program, &input[2]) > cap);
    let mut run = JobRun::new(spec(4, cap, 100 * cap), executor(), 10);
    let mut seen = Seen::default();
    drive(&mut run, &input, &program, &mut seen, usize::MAX);
    let status: Vec<_> = seen.log.iter().map(|b| b.record.status).collect();
    assert_eq!(
        status,
        vec![CallStatus::Ok, CallStatus::Trap, CallStatus::OutOfFuel]
    );
    assert_eq!(seen.log[2].record.fuel_used, cap, "the whole cap");
    assert!(seen.log[1].output.is_empty() && seen.log[2].output.is_empty());
    let fuel = seen.log.iter().map(|b| b.record.fuel_used).sum();
    assert_eq!(seen.commits, vec![(3, fuel, Some(End::OutOfFuel))]);
    assert!(seen.finished);
    // The trapped and the out-of-fuel call are what a re-run with the same cap gives.
    no_fraud(&program, &input, &seen.log, cap);
}

/// The total ends the log between calls: the call that would take the sum past it is
/// not logged, every call ran with the whole per-call cap, and the claim is the sum.
#[test]
fn the_jobs_total_ends_the_log_between_calls() {
    let program = module();
    let input = inputs(&[50, 50, 50, 50]);
    let per = need(&program, &input[0]);
    let total = 2 * per + per / 2;
    let mut run = JobRun::new(spec(4, 10 * per, total), executor(), 1);
    let mut seen = Seen::default();
    drive(&mut run, &input, &program, &mut seen, usize::MAX);
    assert_eq!(seen.log.len(), 2);
    assert!(seen.log.iter().all(|b| b.record.status == CallStatus::Ok));
    assert_eq!(
        seen.commits,
        vec![
            (1, per, None),
            (2, 2 * per, None),
            (2, 2 * per, Some(End::OutOfFuel))
        ]
    );
    assert!(seen.commits.iter().all(|c| c.1 <= total));
    no_fraud(&program, &input, &seen.log, 10 * per);
}

#[test]
fn a_log_that_is_not_this_jobs_is_not_resumed() {
    let program = module();
    let input = inputs(&[10, 20, 30]);
    let s = spec(3, 1_000_000, 100_000_000);
    let mut seen = Seen::default();
    drive(
        &mut JobRun::new(s.clone(), executor(), 1),
        &input,
        &program,
        &mut seen,
        3,
    );
    let records: Vec<_> = seen.log.iter().map(|b| b.record.clone()).collect();
    let resume = |log: &[datdot_exec::CallRecord], chain| {
        JobRun::resume(s.clone(), executor(), 1, log, chain).map(drop)
    };
    assert_eq!(resume(&records, OnChain::default()), Ok(()));
    let mut other = records.clone();
    other[1].job += 1;
    assert_eq!(
        resume(&other, OnChain::default()),
        Err(ResumeError::Foreign { at: 1 })
    );
    let mut gap = records.clone();
    gap.remove(1);
    assert_eq!(
        resume(&gap, OnChain::default()),
        Err(ResumeError::Foreign { at: 1 })
    );
    let mut foreign = records.clone();
    foreign[0].executor = Keypair::from_seed(&[6; 32]).public();
    assert_eq!(
        resume(&foreign, OnChain::default()),
        Err(ResumeError::Foreign { at: 0 })
    );
    let mut long = records.clone();
    long.push(records[0].clone());
    assert_eq!(
        resume(&long, OnChain::default()),
        Err(ResumeError::PastTheEnd { at: 3 })
    );
    let mut after_end = records.clone();
    after_end[0].status = CallStatus::OutOfFuel;
    assert_eq!(
        resume(&after_end, OnChain::default()),
        Err(ResumeError::PastTheEnd { at: 1 })
    );
    let mut greedy = records.clone();
    greedy[2].fuel_used = 100_000_000;
    assert!(matches!(
        resume(&greedy, OnChain::default()),
        Err(ResumeError::OverTotal { .. })
    ));
    let ahead = OnChain {
        committed: 3,
        ended: false,
    };
    assert!(matches!(
        resume(&records[..2], ahead),
        Err(ResumeError::BehindTheChain { .. })
    ));
    let ended_early = OnChain {
        committed: 2,
        ended: true,
    };
    assert!(matches!(
        resume(&records[..2], ended_early),
        Err(ResumeError::BehindTheChain { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Killed after any number of appended blocks, with any prefix of them committed on
    /// chain (and the final commit taken or not), the resumed run appends exactly the
    /// blocks an uninterrupted run appends after those, and ends with the same commit.
    #[test]
    fn a_restart_anywhere_writes_the_same_log(
        lens in prop::collection::vec(1usize..120, 1..9),
        trap in prop::option::of(0usize..9),
        commit_every in 1u64..4,
        tight in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        committed in any::<prop::sample::Index>(),
    ) {
        let program = module();
        let mut input = inputs(&lens);
        if let Some(t) = trap.filter(|t| *t < input.len()) {
            input[t][0] = 0;
        }
        // `tight`: a per-call cap some calls run out of, and a total some logs hit.
        let most = input.iter().map(|b| need(&program, b)).max().unwrap();
        let (per, total) = if tight { (most * 2 / 3 + 1, most * 3) } else { (most, most * 20) };
        let s = spec(input.len(), per, total);
        let mut whole = Seen::default();
        drive(&mut JobRun::new(s.clone(), executor(), commit_every), &input, &program, &mut whole, usize::MAX);
        prop_assert!(whole.finished);

        let k = cut.index(whole.log.len() + 1);
        let mut first = Seen::default();
        let mut run = JobRun::new(s.clone(), executor(), commit_every);
        drive(&mut run, &input, &program, &mut first, k);
        prop_assert_eq!(&first.log[..], &whole.log[..k]);
        // What the chain has: a commit of at most what was appended.
        let on_chain_len = first.commits.last().map_or(0, |c| c.0);
        let c = committed.index(on_chain_len as usize + 1) as u64;
        let ended = first.finished && c == on_chain_len;
        let records: Vec<_> = first.log.iter().map(|b| b.record.clone()).collect();
        let mut resumed = JobRun::resume(
            s, executor(), commit_every, &records, OnChain { committed: c, ended },
        ).unwrap();
        let mut rest = Seen { log: first.log.clone(), ..Seen::default() };
        drive(&mut resumed, &input, &program, &mut rest, usize::MAX);
        prop_assert!(rest.finished);
        prop_assert_eq!(&rest.log, &whole.log, "the same blocks, none rewritten");
        if !ended {
            prop_assert_eq!(rest.commits.last(), whole.commits.last(), "the same final commit");
        }
    }
}
