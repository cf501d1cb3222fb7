//! Execution jobs: modules, offers, jobs, commits, call fraud proofs (the chain re-runs
//! the disputed call with `datdot-exec`), settlement and every refusal.

use datdot_exec::record::CallRecord;
use datdot_exec::{CallFraudProof, CallStatus, OutputBlock, Program, output_hash};
use datdot_protocol::codec::{self, Encode as _, Writer};
use datdot_protocol::tree::{BlockProof, TreeNode, build};
use datdot_testkit::SignedFeed;
use ed25519_dalek::SigningKey;
use frame::testing_prelude::*;

use crate::jobs::{JobEnd, JobState, MAX_CALL_PROOF_BYTES, MAX_MODULE_BYTES};
use crate::mock::*;
use crate::{ActiveJobs, Error, Event, ExecutorJobs, Jobs, ModuleCode, Modules};

const SPONSOR: u64 = 2;
const PAYMENT: u64 = 6_400;
const FUEL: u64 = 100_000;

use datdot_testkit::reverse_wasm;

fn module_hash() -> [u8; 32] {
    datdot_exec::module_hash(&reverse_wasm())
}

fn upload() -> DispatchResult {
    Datdot::upload_module(
        RuntimeOrigin::signed(SPONSOR),
        reverse_wasm().try_into().expect("small"),
    )
}

fn entry(name: &str) -> BoundedVec<u8, ConstU32<{ crate::jobs::MAX_ENTRY_NAME }>> {
    name.as_bytes().to_vec().try_into().expect("short")
}

fn submit(fuel_per_call: u64, fuel_total: u64, payment: u64) -> DispatchResultWithPostInfo {
    Datdot::submit_job(
        RuntimeOrigin::signed(SPONSOR),
        module_hash(),
        0,
        entry("process"),
        fuel_per_call,
        fuel_total,
        payment,
    )
}

/// Three hosters, feed 0 published with two replicas, both confirmed and offering
/// execution; the module uploaded.
fn exec_world() {
    register_hosters(3, 2);
    register_attestors(3);
    assert_ok!(publish(PUBLISHER, 2, 4));
    for c in 0..2 {
        let hoster = crate::Contracts::<Test>::get(c).expect("contract").hoster;
        assert_ok!(Datdot::confirm_hosting(RuntimeOrigin::signed(hoster), c));
        assert_ok!(Datdot::offer_execution(RuntimeOrigin::signed(hoster), true));
    }
    assert_ok!(upload());
}

const OUTPUT_SEED: u8 = 55;

fn output_signer() -> SigningKey {
    SigningKey::from_bytes(&[OUTPUT_SEED; 32])
}

fn output_key() -> [u8; 32] {
    output_signer().verifying_key().to_bytes()
}

/// The executor's log: one signed block per input block (calls `0..n`), with
/// `tamper(index, record, output)` applied, in an output feed of key [`output_key`].
struct Log(SignedFeed);

impl Log {
    fn run(
        job: u64,
        n: usize,
        fuel: u64,
        mut tamper: impl FnMut(u64, &mut CallRecord, &mut Vec<u8>),
    ) -> Self {
        let executor = Jobs::<Test>::get(job).expect("job").executor;
        let program = Program::new(&reverse_wasm()).expect("valid");
        let blocks: Vec<Vec<u8>> = blocks()[..n]
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let outcome = program.call("process", input, fuel);
                let mut record = CallRecord::of(
                    chain(),
                    job,
                    i as u64,
                    input,
                    &outcome,
                    kp(executor).public(),
                );
                let mut output = outcome.output;
                tamper(i as u64, &mut record, &mut output);
                codec::to_bytes(&OutputBlock::sign(record, output, &kp(executor)))
            })
            .collect();
        Log(SignedFeed::new(OUTPUT_SEED, blocks))
    }

    fn proof(&self, i: u64, signer: &SigningKey) -> BlockProof {
        self.0.proof_signed_by(i, signer)
    }

    fn root(&self) -> BoundedVec<u8, ConstU32<{ crate::MAX_ROOT_BYTES }>> {
        self.0.root_bytes().try_into().expect("small")
    }

    fn call_proof(&self, i: u64) -> BoundedVec<u8, ConstU32<MAX_CALL_PROOF_BYTES>> {
        let input_proof =
            build::block_proof(&leaves(), i, 0, |m| feed_sign(&feed_signing_key(), m))
                .expect("input block");
        let p = CallFraudProof {
            input: blocks()[i as usize].clone(),
            input_proof,
            output: self.0.blocks[i as usize].clone(),
            output_proof: self.proof(i, &output_signer()),
        };
        codec::to_bytes(&p).try_into().expect("below MAX_SIZE")
    }
}

fn executor_of(job: u64) -> u64 {
    Jobs::<Test>::get(job).expect("job").executor
}

/// Submit, accept, log every call honestly (or as `tamper` says) and commit `end`.
fn run_job(
    fuel_per_call: u64,
    tamper: impl FnMut(u64, &mut CallRecord, &mut Vec<u8>),
    calls: usize,
    end: JobEnd,
) -> (u64, Log) {
    let job = crate::NextJobId::<Test>::get();
    assert_ok!(submit(fuel_per_call, 64 * FUEL, PAYMENT));
    let ex = executor_of(job);
    assert_ok!(Datdot::accept_job(
        RuntimeOrigin::signed(ex),
        job,
        output_key()
    ));
    let log = Log::run(job, calls, fuel_per_call, tamper);
    assert_ok!(Datdot::commit_output(
        RuntimeOrigin::signed(ex),
        job,
        log.root(),
        1,
        Some(end)
    ));
    (job, log)
}

#[test]
fn modules_are_validated_and_held_with_a_deposit() {
    new_test_ext().execute_with(|| {
        let before = free(SPONSOR);
        assert_ok!(upload());
        let len = reverse_wasm().len() as u64;
        assert_eq!(free(SPONSOR), before - len);
        assert_eq!(Modules::<Test>::get(module_hash()).expect("stored").len as u64, len);
        assert_eq!(ModuleCode::<Test>::get(module_hash()).expect("code").to_vec(), reverse_wasm());
        assert_noop!(upload(), Error::<Test>::ModuleExists);
        for bad in [
            r#"(module (memory (export "memory") 1) (func (export "datdot_alloc") (param i32) (result i32) (i32.trunc_f32_s (f32.const 1))))"#,
            r#"(module (import "env" "now" (func)) (memory (export "memory") 1))"#,
            r#"(module (memory (export "memory") 100) (func (export "datdot_alloc") (param i32) (result i32) (i32.const 0)))"#,
        ] {
            let code = wat::parse_str(bad).expect("parses");
            assert_noop!(
                Datdot::upload_module(RuntimeOrigin::signed(SPONSOR), code.try_into().expect("small")),
                Error::<Test>::InvalidModule
            );
        }
        assert_noop!(
            Datdot::upload_module(RuntimeOrigin::signed(SPONSOR), b"not wasm".to_vec().try_into().expect("small")),
            Error::<Test>::InvalidModule
        );
        // The bound on the call's argument is the crate's limit.
        assert_eq!(MAX_MODULE_BYTES as usize, datdot_exec::vm::MAX_MODULE_BYTES);
    });
}

#[test]
fn only_registered_hosters_offer_execution() {
    new_test_ext().execute_with(|| {
        register_hosters(1, 1);
        register_attestors(1);
        assert_noop!(
            Datdot::offer_execution(RuntimeOrigin::signed(ATTESTORS[0]), true),
            Error::<Test>::NotAHoster
        );
        assert_noop!(
            Datdot::offer_execution(RuntimeOrigin::signed(3), true),
            Error::<Test>::NotRegistered
        );
        assert_ok!(Datdot::offer_execution(
            RuntimeOrigin::signed(HOSTERS[0]),
            true
        ));
        assert!(crate::ExecOffers::<Test>::contains_key(HOSTERS[0]));
        assert_ok!(Datdot::offer_execution(
            RuntimeOrigin::signed(HOSTERS[0]),
            false
        ));
        assert!(!crate::ExecOffers::<Test>::contains_key(HOSTERS[0]));
    });
}

#[test]
fn submit_job_escrows_and_draws_an_executor_among_the_feeds_hosters() {
    new_test_ext().execute_with(|| {
        exec_world();
        let before = free(SPONSOR);
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        assert_eq!(free(SPONSOR), before - PAYMENT);
        let job = Jobs::<Test>::get(0).expect("job");
        let hosters: Vec<u64> = (0..2)
            .map(|c| crate::Contracts::<Test>::get(c).expect("contract").hoster)
            .collect();
        assert!(hosters.contains(&job.executor));
        assert_eq!(job.executor_key, key_of(job.executor));
        assert_eq!(
            (job.input_length, job.state),
            (64, JobState::Assigned { deadline: 6 })
        );
        assert_eq!(ActiveJobs::<Test>::get(), 1);
        assert_eq!(ExecutorJobs::<Test>::get(job.executor), 1);
    });
}

#[test]
fn submit_job_refusals() {
    new_test_ext().execute_with(|| {
        exec_world();
        let with = |module: [u8; 32], feed: u64, name: &str, per: u64, total: u64, pay: u64| {
            Datdot::submit_job(
                RuntimeOrigin::signed(SPONSOR),
                module,
                feed,
                entry(name),
                per,
                total,
                pay,
            )
            .map_err(|e| e.error)
        };
        let m = module_hash();
        let err = |e: Error<Test>| Err(DispatchError::from(e));
        assert_eq!(
            with([0; 32], 0, "process", FUEL, FUEL, 1),
            err(Error::NoSuchModule)
        );
        assert_eq!(
            with(m, 0, "missing", FUEL, FUEL, 1),
            err(Error::InvalidEntry)
        );
        assert_eq!(
            with(m, 0, "datdot_alloc", FUEL, FUEL, 1),
            err(Error::InvalidEntry)
        );
        assert_eq!(
            with(m, 0, "pro cess", FUEL, FUEL, 1),
            err(Error::InvalidEntry)
        );
        assert_eq!(with(m, 0, "process", 0, FUEL, 1), err(Error::InvalidFuel));
        assert_eq!(
            with(m, 0, "process", 10_000_001, 20_000_000, 1),
            err(Error::InvalidFuel)
        );
        assert_eq!(
            with(m, 0, "process", FUEL, FUEL - 1, 1),
            err(Error::InvalidFuel)
        );
        assert_eq!(
            with(m, 0, "process", FUEL, FUEL, 0),
            err(Error::ZeroPayment)
        );
        assert_eq!(with(m, 9, "process", FUEL, FUEL, 1), err(Error::NoSuchFeed));
        // Nobody offers execution: no executor.
        for c in 0..2 {
            let hoster = crate::Contracts::<Test>::get(c).expect("contract").hoster;
            assert_ok!(Datdot::offer_execution(
                RuntimeOrigin::signed(hoster),
                false
            ));
        }
        assert_eq!(with(m, 0, "process", FUEL, FUEL, 1), err(Error::NoExecutor));
    });
}

#[test]
fn the_sponsor_is_never_its_own_executor() {
    new_test_ext().execute_with(|| {
        exec_world();
        // Only one hoster offers, and it sponsors the job.
        let c0 = crate::Contracts::<Test>::get(0).expect("contract").hoster;
        let c1 = crate::Contracts::<Test>::get(1).expect("contract").hoster;
        assert_ok!(Datdot::offer_execution(RuntimeOrigin::signed(c1), false));
        assert_noop!(
            Datdot::submit_job(
                RuntimeOrigin::signed(c0),
                module_hash(),
                0,
                entry("process"),
                FUEL,
                FUEL,
                10
            ),
            Error::<Test>::NoExecutor
        );
    });
}

#[test]
fn open_jobs_are_bounded() {
    new_test_ext().execute_with(|| {
        exec_world();
        for _ in 0..4 {
            assert_ok!(submit(FUEL, FUEL, 10));
        }
        assert_noop!(submit(FUEL, FUEL, 10), Error::<Test>::TooManyJobs);
    });
}

#[test]
fn accept_and_commit_refusals() {
    new_test_ext().execute_with(|| {
        exec_world();
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        let ex = executor_of(0);
        let other = if ex == HOSTERS[0] {
            HOSTERS[1]
        } else {
            HOSTERS[0]
        };
        let log = Log::run(0, 10, FUEL, |_, _, _| {});
        assert_noop!(
            Datdot::commit_output(RuntimeOrigin::signed(ex), 0, log.root(), 1, None),
            Error::<Test>::NotRunning
        );
        assert_noop!(
            Datdot::accept_job(RuntimeOrigin::signed(other), 0, output_key()),
            Error::<Test>::NotTheExecutor
        );
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_noop!(
            Datdot::accept_job(RuntimeOrigin::signed(ex), 0, not_a_point),
            Error::<Test>::InvalidFeedKey
        );
        assert_ok!(Datdot::accept_job(
            RuntimeOrigin::signed(ex),
            0,
            output_key()
        ));
        assert_noop!(
            Datdot::accept_job(RuntimeOrigin::signed(ex), 0, output_key()),
            Error::<Test>::NotAssigned
        );
        assert_noop!(
            Datdot::commit_output(RuntimeOrigin::signed(other), 0, log.root(), 1, None),
            Error::<Test>::NotTheExecutor
        );
        // A root the output key did not sign.
        let mut w = Writer::new();
        log.proof(0, &SigningKey::from_bytes(&[56; 32]))
            .root
            .encode(&mut w);
        assert_noop!(
            Datdot::commit_output(
                RuntimeOrigin::signed(ex),
                0,
                w.into_bytes().try_into().unwrap(),
                1,
                None
            ),
            Error::<Test>::RootNotSigned
        );
        assert_noop!(
            Datdot::commit_output(
                RuntimeOrigin::signed(ex),
                0,
                b"junk".to_vec().try_into().unwrap(),
                1,
                None
            ),
            Error::<Test>::MalformedSignedRoot
        );
        assert_noop!(
            Datdot::commit_output(
                RuntimeOrigin::signed(ex),
                0,
                log.root(),
                64 * FUEL + 1,
                None
            ),
            Error::<Test>::InvalidFuel
        );
        // Done before every call is logged.
        assert_noop!(
            Datdot::commit_output(
                RuntimeOrigin::signed(ex),
                0,
                log.root(),
                1,
                Some(JobEnd::Done)
            ),
            Error::<Test>::BadOutputLength
        );
        assert_ok!(Datdot::commit_output(
            RuntimeOrigin::signed(ex),
            0,
            log.root(),
            1,
            None
        ));
        // The log never shrinks.
        let shorter = Log::run(0, 5, FUEL, |_, _, _| {});
        assert_noop!(
            Datdot::commit_output(RuntimeOrigin::signed(ex), 0, shorter.root(), 1, None),
            Error::<Test>::BadOutputLength
        );
        let all = Log::run(0, 64, FUEL, |_, _, _| {});
        assert_ok!(Datdot::commit_output(
            RuntimeOrigin::signed(ex),
            0,
            all.root(),
            9,
            Some(JobEnd::Done)
        ));
        assert_noop!(
            Datdot::commit_output(RuntimeOrigin::signed(ex), 0, all.root(), 9, None),
            Error::<Test>::NotRunning
        );
        assert_eq!(ExecutorJobs::<Test>::get(ex), 0);
    });
}

#[test]
fn an_honest_job_settles_and_nobody_is_penalised() {
    new_test_ext().execute_with(|| {
        exec_world();
        let (job, log) = run_job(FUEL, |_, _, _| {}, 64, JobEnd::Done);
        let ex = executor_of(job);
        let (stake0, free0, sponsor0) = (stake(ex), free(ex), free(SPONSOR));
        // A "proof" of a correct call is refused: the chain re-ran it and agrees.
        for i in [0, 31, 63] {
            assert_noop!(
                Datdot::submit_call_proof(RuntimeOrigin::signed(3), job, log.call_proof(i)),
                Error::<Test>::NoFraud
            );
        }
        assert_noop!(
            Datdot::settle_job(RuntimeOrigin::signed(3), job),
            Error::<Test>::TooEarly
        );
        run_to(System::block_number() + 20);
        assert_ok!(Datdot::settle_job(RuntimeOrigin::signed(3), job));
        // 90 % of the pay to the executor, the monitors' 10 % back to the sponsor.
        assert_eq!(free(ex), free0 + PAYMENT * 9 / 10);
        assert_eq!(free(SPONSOR), sponsor0 + PAYMENT / 10);
        assert_eq!(stake(ex), stake0);
        // (The hosting challenges running meanwhile penalise attestors that never
        // report; nobody in the job is penalised.)
        assert!(
            !events().iter().any(
                |e| matches!(e, Event::Penalised { who, .. } if *who == ex || *who == SPONSOR)
            )
        );
        assert!(Jobs::<Test>::get(job).is_none());
        assert_eq!(
            (ActiveJobs::<Test>::get(), ExecutorJobs::<Test>::get(ex)),
            (0, 0)
        );
        assert_noop!(
            Datdot::settle_job(RuntimeOrigin::signed(3), job),
            Error::<Test>::NoSuchJob
        );
    });
}

#[test]
fn a_tampered_output_is_proven_and_the_executor_slashed() {
    new_test_ext().execute_with(|| {
        exec_world();
        let (job, log) = run_job(
            FUEL,
            |i, r, o| {
                if i == 17 {
                    o[0] ^= 0xff;
                    r.output_hash = output_hash(o);
                }
            },
            64,
            JobEnd::Done,
        );
        let ex = executor_of(job);
        let (stake0, sponsor0, submitter0) = (stake(ex), free(SPONSOR), free(3));
        // Call 16 is right; the executor cannot accuse itself.
        assert_noop!(
            Datdot::submit_call_proof(RuntimeOrigin::signed(3), job, log.call_proof(16)),
            Error::<Test>::NoFraud
        );
        assert_noop!(
            Datdot::submit_call_proof(RuntimeOrigin::signed(ex), job, log.call_proof(17)),
            Error::<Test>::SelfAccusation
        );
        assert_ok!(Datdot::submit_call_proof(
            RuntimeOrigin::signed(3),
            job,
            log.call_proof(17)
        ));
        let slashed = stake0 / 2;
        assert_eq!(stake(ex), stake0 - slashed);
        assert_eq!(free(3), submitter0 + slashed / 5);
        assert_eq!(free(SPONSOR), sponsor0 + PAYMENT);
        assert!(events().contains(&Event::CallFraudProven {
            job,
            index: 17,
            offender: ex,
            submitter: 3,
            slashed,
            reward: slashed / 5,
            refund: PAYMENT,
        }));
        assert!(Jobs::<Test>::get(job).is_none());
        assert_eq!(ActiveJobs::<Test>::get(), 0);
    });
}

#[test]
fn a_cheat_is_provable_while_the_job_runs() {
    new_test_ext().execute_with(|| {
        exec_world();
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        let ex = executor_of(0);
        assert_ok!(Datdot::accept_job(
            RuntimeOrigin::signed(ex),
            0,
            output_key()
        ));
        // Fuel under-reported on call 2; the root is not even committed yet.
        let log = Log::run(0, 4, FUEL, |i, r, _| {
            if i == 2 {
                r.fuel_used -= 1;
            }
        });
        assert_ok!(Datdot::submit_call_proof(
            RuntimeOrigin::signed(3),
            0,
            log.call_proof(2)
        ));
        assert_eq!(ExecutorJobs::<Test>::get(ex), 0);
    });
}

#[test]
fn malformed_and_misdirected_call_proofs_are_refused() {
    new_test_ext().execute_with(|| {
        exec_world();
        let (job, log) = run_job(FUEL, |_, r, _| r.fuel_used += 1, 64, JobEnd::Done);
        assert_noop!(
            Datdot::submit_call_proof(
                RuntimeOrigin::signed(3),
                job,
                b"junk".to_vec().try_into().unwrap()
            ),
            Error::<Test>::MalformedCallProof
        );
        assert_noop!(
            Datdot::submit_call_proof(RuntimeOrigin::signed(3), 9, log.call_proof(1)),
            Error::<Test>::NoSuchJob
        );
        let mut p: CallFraudProof = codec::from_bytes(&log.call_proof(1)).unwrap();
        // Output proven in a feed of another key than the registered output feed.
        p.output_proof = log.proof(1, &SigningKey::from_bytes(&[57; 32]));
        assert_noop!(
            Datdot::submit_call_proof(
                RuntimeOrigin::signed(3),
                job,
                codec::to_bytes(&p).try_into().unwrap()
            ),
            Error::<Test>::InvalidCallProof
        );
        // An input tree other than the published one (the author signed a fork).
        let mut p: CallFraudProof = codec::from_bytes(&log.call_proof(1)).unwrap();
        let fork: Vec<TreeNode> = (0..3u64)
            .map(|i| build::leaf(i, &blocks()[i as usize]))
            .collect();
        p.input_proof =
            build::block_proof(&fork, 1, 0, |m| feed_sign(&feed_signing_key(), m)).unwrap();
        assert_noop!(
            Datdot::submit_call_proof(
                RuntimeOrigin::signed(3),
                job,
                codec::to_bytes(&p).try_into().unwrap()
            ),
            Error::<Test>::NotThePublishedTree
        );
        // A record some other key signed, in the executor's log: not the executor's word.
        let framed = Log::run(job, 64, FUEL, |_, r, _| r.executor = kp(3).public());
        assert_noop!(
            Datdot::submit_call_proof(RuntimeOrigin::signed(3), job, framed.call_proof(1)),
            Error::<Test>::NotTheExecutorsRecord
        );
    });
}

#[test]
fn running_out_of_fuel_ends_the_job_and_the_sponsor_pays_for_the_work_done() {
    new_test_ext().execute_with(|| {
        exec_world();
        let program = Program::new(&reverse_wasm()).unwrap();
        let need = program.call("process", &blocks()[0], u64::MAX).fuel_used;
        let cap = need / 2;
        assert_eq!(
            program.call("process", &blocks()[0], cap).status,
            CallStatus::OutOfFuel
        );
        // The first call runs out of fuel: the log ends with it.
        let (job, log) = run_job(cap, |_, _, _| {}, 1, JobEnd::OutOfFuel);
        let ex = executor_of(job);
        assert_noop!(
            Datdot::submit_call_proof(RuntimeOrigin::signed(3), job, log.call_proof(0)),
            Error::<Test>::NoFraud
        );
        let (free0, sponsor0, stake0) = (free(ex), free(SPONSOR), stake(ex));
        run_to(System::block_number() + 20);
        assert_ok!(Datdot::settle_job(RuntimeOrigin::signed(3), job));
        let work = PAYMENT / 64;
        assert_eq!(free(ex), free0 + work * 9 / 10);
        assert_eq!(free(SPONSOR), sponsor0 + PAYMENT - work * 9 / 10);
        assert_eq!(stake(ex), stake0);
        // (The hosting challenges running meanwhile penalise attestors that never
        // report; nobody in the job is penalised.)
        assert!(
            !events().iter().any(
                |e| matches!(e, Event::Penalised { who, .. } if *who == ex || *who == SPONSOR)
            )
        );
    });
}

#[test]
fn a_false_out_of_fuel_claim_is_proven() {
    new_test_ext().execute_with(|| {
        exec_world();
        // The executor stops after one call claiming it ran out of fuel; it did not.
        let (job, log) = run_job(
            FUEL,
            |_, r, o| {
                o.clear();
                r.output_hash = output_hash(o);
                r.status = CallStatus::OutOfFuel;
                r.fuel_used = FUEL;
            },
            1,
            JobEnd::OutOfFuel,
        );
        assert_ok!(Datdot::submit_call_proof(
            RuntimeOrigin::signed(3),
            job,
            log.call_proof(0)
        ));
    });
}

#[test]
fn an_executor_cannot_leave_mid_job_and_an_unaccepted_job_can_be_cancelled() {
    new_test_ext().execute_with(|| {
        exec_world();
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        let ex = executor_of(0);
        // Its contracts end with the plan; its job keeps it.
        assert_ok!(Datdot::end_plan(RuntimeOrigin::signed(PUBLISHER), 0));
        run_to(40);
        assert_eq!(
            crate::Participants::<Test>::get(ex)
                .expect("registered")
                .hosting,
            0,
            "no contract keeps it"
        );
        assert_noop!(
            Datdot::unregister(RuntimeOrigin::signed(ex)),
            Error::<Test>::StillExecuting
        );
        assert_noop!(
            Datdot::cancel_job(RuntimeOrigin::signed(3), 0),
            Error::<Test>::NotSponsor
        );
        let sponsor0 = free(SPONSOR);
        assert_ok!(Datdot::cancel_job(RuntimeOrigin::signed(SPONSOR), 0));
        assert_eq!(free(SPONSOR), sponsor0 + PAYMENT);
        assert_eq!(ExecutorJobs::<Test>::get(ex), 0);
    });
}

#[test]
fn a_job_cannot_be_cancelled_before_its_accept_deadline_or_once_running() {
    new_test_ext().execute_with(|| {
        exec_world();
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        assert_noop!(
            Datdot::cancel_job(RuntimeOrigin::signed(SPONSOR), 0),
            Error::<Test>::TooEarly
        );
        assert_ok!(Datdot::accept_job(
            RuntimeOrigin::signed(executor_of(0)),
            0,
            output_key()
        ));
        run_to(10);
        assert_noop!(
            Datdot::cancel_job(RuntimeOrigin::signed(SPONSOR), 0),
            Error::<Test>::NotAssigned
        );
    });
}

#[test]
fn the_call_proof_weight_is_bounded_by_the_fuel_cap_and_refunded_to_the_jobs() {
    use crate::weights::WeightInfo;
    let max =
        <() as WeightInfo>::submit_call_proof(MAX_CALL_PROOF_BYTES, MAX_MODULE_BYTES, 10_000_000);
    let small = <() as WeightInfo>::submit_call_proof(MAX_CALL_PROOF_BYTES, MAX_MODULE_BYTES, FUEL);
    assert!(small.ref_time() < max.ref_time());
    assert_eq!(
        max.ref_time() - small.ref_time(),
        (10_000_000 - FUEL) * crate::weights::PS_PER_FUEL
    );
}

/// Member `m`'s report on job `job`: its sample, each call judged by `check`.
fn monitor_report(
    job: u64,
    m: usize,
    check: impl Fn(u64) -> datdot_exec::CallCheck,
) -> (
    u64,
    BoundedVec<u8, ConstU32<{ crate::jobs::MAX_MONITOR_REPORT_BYTES }>>,
) {
    let j = Jobs::<Test>::get(job).expect("job");
    let round = j.round.expect("monitors drawn");
    let committed = j.committed.expect("committed");
    let sample = datdot_exec::monitor::sample(
        &datdot_exec::monitor::member_seed(&round.seed, m as u8),
        committed.length,
        8,
    );
    let who = round.members[m];
    let report = datdot_exec::MonitorReport::sign(
        chain(),
        job,
        committed.length,
        committed.tree_hash,
        sample.iter().map(|i| check(*i)).collect(),
        &kp(who),
    );
    (who, codec::to_bytes(&report).try_into().expect("small"))
}

#[test]
fn monitors_who_report_share_the_monitors_part_of_the_pay() {
    new_test_ext().execute_with(|| {
        exec_world();
        let (job, _) = run_job(FUEL, |_, _, _| {}, 64, JobEnd::Done);
        let round = Jobs::<Test>::get(job).unwrap().round.expect("drawn");
        assert_eq!(round.members.len(), 3);
        let ex = executor_of(job);
        assert!(!round.members.contains(&ex) && !round.members.contains(&SPONSOR));
        let before: Vec<u64> = round.members.iter().map(|m| free(*m)).collect();
        for m in 0..2 {
            let (who, bytes) = monitor_report(job, m, |_| datdot_exec::CallCheck::Agrees);
            assert_ok!(Datdot::submit_monitor_report(
                RuntimeOrigin::signed(who),
                job,
                bytes
            ));
        }
        run_to(System::block_number() + 20);
        let sponsor0 = free(SPONSOR);
        assert_ok!(Datdot::settle_job(RuntimeOrigin::signed(3), job));
        // The monitors' 10 % (640) in two: the third did not report and gets nothing;
        // the sponsor gets only the rounding rest (0).
        let after: Vec<u64> = round.members.iter().map(|m| free(*m)).collect();
        assert_eq!(after[0] - before[0], 320);
        assert_eq!(after[1] - before[1], 320);
        assert_eq!(after[2], before[2]);
        assert_eq!(free(SPONSOR), sponsor0);
    });
}

#[test]
fn monitor_report_refusals() {
    new_test_ext().execute_with(|| {
        exec_world();
        assert_ok!(submit(FUEL, 64 * FUEL, PAYMENT));
        let ex = executor_of(0);
        assert_ok!(Datdot::accept_job(
            RuntimeOrigin::signed(ex),
            0,
            output_key()
        ));
        let log = Log::run(0, 64, FUEL, |_, _, _| {});
        assert_ok!(Datdot::commit_output(
            RuntimeOrigin::signed(ex),
            0,
            log.root(),
            1,
            None
        ));
        // Not ended yet.
        let junk: BoundedVec<u8, _> = b"x".to_vec().try_into().unwrap();
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(ATTESTORS[0]), 0, junk.clone()),
            Error::<Test>::NotEnded
        );
        assert_ok!(Datdot::commit_output(
            RuntimeOrigin::signed(ex),
            0,
            log.root(),
            1,
            Some(JobEnd::Done)
        ));
        let (who, good) = monitor_report(0, 0, |_| datdot_exec::CallCheck::Agrees);
        let (other, good1) = monitor_report(0, 1, |_| datdot_exec::CallCheck::Agrees);
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(ex), 0, good.clone()),
            Error::<Test>::NotInCommittee
        );
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, junk),
            Error::<Test>::MalformedReport
        );
        // Member 1's report submitted by member 0: not its key.
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, good1.clone()),
            Error::<Test>::WrongSigningKey
        );
        // Another sample (one check short), another root, tampered after signing.
        let mut r: datdot_exec::MonitorReport = codec::from_bytes(&good).unwrap();
        let sign = |r: &datdot_exec::MonitorReport| -> BoundedVec<u8, _> {
            let s = datdot_exec::MonitorReport::sign(
                r.chain,
                r.job,
                r.output_length,
                r.output_tree,
                r.checks.clone(),
                &kp(who),
            );
            codec::to_bytes(&s).try_into().unwrap()
        };
        r.checks.pop();
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, sign(&r)),
            Error::<Test>::NotTheScheduledSample
        );
        let mut r: datdot_exec::MonitorReport = codec::from_bytes(&good).unwrap();
        r.output_length -= 1;
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, sign(&r)),
            Error::<Test>::WrongOutputRoot
        );
        let mut r: datdot_exec::MonitorReport = codec::from_bytes(&good).unwrap();
        r.job = 5;
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, sign(&r)),
            Error::<Test>::WrongJob
        );
        let mut r: datdot_exec::MonitorReport = codec::from_bytes(&good).unwrap();
        r.checks[0] = datdot_exec::CallCheck::Mismatch;
        assert_noop!(
            Datdot::submit_monitor_report(
                RuntimeOrigin::signed(who),
                0,
                codec::to_bytes(&r).try_into().unwrap()
            ),
            Error::<Test>::InvalidReport
        );
        assert_ok!(Datdot::submit_monitor_report(
            RuntimeOrigin::signed(who),
            0,
            good.clone()
        ));
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(who), 0, good),
            Error::<Test>::AlreadyReported
        );
        run_to(System::block_number() + 6);
        assert_noop!(
            Datdot::submit_monitor_report(RuntimeOrigin::signed(other), 0, good1),
            Error::<Test>::TooLate
        );
    });
}

#[test]
fn a_monitor_that_vouched_for_a_proven_lie_is_not_paid() {
    new_test_ext().execute_with(|| {
        exec_world();
        // Every record under-reports its fuel.
        let (job, log) = run_job(FUEL, |_, r, _| r.fuel_used -= 1, 64, JobEnd::Done);
        let round = Jobs::<Test>::get(job).unwrap().round.expect("drawn");
        let (lazy, lazy_report) = monitor_report(job, 0, |_| datdot_exec::CallCheck::Agrees);
        let (careful, careful_report) =
            monitor_report(job, 1, |_| datdot_exec::CallCheck::Mismatch);
        assert_ok!(Datdot::submit_monitor_report(
            RuntimeOrigin::signed(lazy),
            job,
            lazy_report
        ));
        assert_ok!(Datdot::submit_monitor_report(
            RuntimeOrigin::signed(careful),
            job,
            careful_report
        ));
        // The proof is for a call in the lazy monitor's sample.
        let committed = Jobs::<Test>::get(job).unwrap().committed.unwrap();
        let wrong = datdot_exec::monitor::sample(
            &datdot_exec::monitor::member_seed(&round.seed, 0),
            committed.length,
            8,
        )[0];
        let (lazy0, careful0, sponsor0) = (free(lazy), free(careful), free(SPONSOR));
        assert_ok!(Datdot::submit_call_proof(
            RuntimeOrigin::signed(careful),
            job,
            log.call_proof(wrong)
        ));
        let slashed = HOSTER_STAKE / 2;
        // The careful monitor: the fraud reward (100), and the monitors' share (640) out
        // of the rest of the slash (400, so capped at 400); the lazy one nothing; the
        // sponsor all its payment back.
        let reward = slashed / 5;
        assert_eq!(free(careful), careful0 + reward + 640.min(slashed - reward));
        assert_eq!(free(lazy), lazy0);
        assert_eq!(free(SPONSOR), sponsor0 + PAYMENT);
    });
}
