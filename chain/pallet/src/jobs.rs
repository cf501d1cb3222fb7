//! Execution jobs (DESIGN §18.6): modules, executor offers, jobs and their executor draw,
//! output commits, single-call fraud proofs re-run with `datdot-exec`, settlement.
//!
//! A job runs a module's entry once per block of a published feed. The executor is
//! drawn among the feed's active hosters that offer execution (they hold the input),
//! weighted by score; it registers an output feed key, commits that feed's signed root
//! as it goes and at the end, and is paid for the calls it logged once the fraud window
//! after its final commit has passed. Anyone holding a wrong call record and the two
//! tree proofs can prove it within that window: the chain re-runs that one call.

use datdot_exec::monitor::{self, CallCheck, MonitorReport};
use datdot_exec::{CallFraudProof, CallProofError, CallVerdict, JobTerms, Program};
use datdot_protocol::identity::PublicKey;
use datdot_protocol::tree::SignedTreeRoot;
use frame::prelude::*;
use frame::token::Preservation;
use frame::token::fungible::Mutate;

use crate::draw::{self, Stream};
use crate::logic::decode_exact;
use crate::pallet::*;
use crate::types::*;

/// A job's id.
pub type JobId = u64;
/// A module's id: [`datdot_exec::module_hash`] of its bytes.
pub type ModuleHash = [u8; 32];

/// Largest module accepted (`datdot_exec::vm::MAX_MODULE_BYTES`).
pub const MAX_MODULE_BYTES: u32 = datdot_exec::vm::MAX_MODULE_BYTES as u32;
/// Longest entry name (`datdot_exec::vm::MAX_ENTRY_NAME`).
pub const MAX_ENTRY_NAME: u32 = datdot_exec::vm::MAX_ENTRY_NAME as u32;
/// Largest monitor report accepted (`MonitorReport::MAX_SIZE`).
pub const MAX_MONITOR_REPORT_BYTES: u32 =
    <MonitorReport as datdot_protocol::codec::Message>::MAX_SIZE as u32;
/// Largest call fraud proof accepted (`CallFraudProof::MAX_SIZE`).
pub const MAX_CALL_PROOF_BYTES: u32 =
    <CallFraudProof as datdot_protocol::codec::Message>::MAX_SIZE as u32;

/// An uploaded module's facts (its bytes are in [`ModuleCode`]).
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct ModuleInfo<AccountId, Balance> {
    /// Who uploaded it and holds its deposit.
    pub owner: AccountId,
    /// The deposit held (`ModuleByteDeposit` per byte).
    pub deposit: Balance,
    /// Its size in bytes.
    pub len: u32,
}

/// How a job's log ended.
#[derive(
    Encode,
    Decode,
    DecodeWithMemTracking,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum JobEnd {
    /// One call per input block was logged.
    Done,
    /// A call ran out of its fuel, or the job out of its total: the log ends with it.
    OutOfFuel,
}

/// Where a job is.
#[derive(
    Encode,
    Decode,
    DecodeWithMemTracking,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    TypeInfo,
    MaxEncodedLen,
)]
pub enum JobState<BlockNumber> {
    /// Drawn; the executor registers its output feed with `accept_job` (the sponsor
    /// may cancel from `deadline` on).
    Assigned {
        /// From this block on the sponsor may cancel.
        deadline: BlockNumber,
    },
    /// Accepted: the executor runs calls and commits its output feed's roots.
    Running,
    /// The final commit is in; call fraud proofs are accepted until `settle_at`, then
    /// anyone may settle.
    Ended {
        /// How the log ended.
        end: JobEnd,
        /// First block `settle_job` is accepted.
        settle_at: BlockNumber,
    },
}

/// The output feed root last committed.
#[derive(
    Encode,
    Decode,
    DecodeWithMemTracking,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    TypeInfo,
    MaxEncodedLen,
)]
pub struct Committed {
    /// Calls logged (blocks of the output feed).
    pub length: u64,
    /// Tree hash of the signed root.
    pub tree_hash: [u8; 32],
    /// Fuel the executor says the logged calls used, in total.
    pub fuel_used: u64,
}

/// What one monitor reported: per position in its sample, a bit in one of the masks.
#[derive(
    Encode,
    Decode,
    DecodeWithMemTracking,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    TypeInfo,
    MaxEncodedLen,
)]
pub struct MonitorResult {
    /// The member's position in the round.
    pub member: u8,
    /// Sample positions it found right.
    pub agrees: u64,
    /// Sample positions it found wrong.
    pub mismatches: u64,
    /// Sample positions it could not fetch.
    pub unavailable: u64,
}

/// The monitoring round drawn at a job's final commit.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct MonitorRound<AccountId, BlockNumber> {
    /// Seed of the members' samples (`datdot_exec::monitor::member_seed`).
    pub seed: [u8; 32],
    /// The monitors (attestors; never the executor or the sponsor).
    pub members: BoundedVec<AccountId, ConstU32<MAX_COMMITTEE>>,
    /// Their signing keys when drawn.
    pub keys: BoundedVec<[u8; 32], ConstU32<MAX_COMMITTEE>>,
    /// Last block a report is accepted.
    pub report_deadline: BlockNumber,
    /// Reports so far.
    pub reports: BoundedVec<MonitorResult, ConstU32<MAX_COMMITTEE>>,
}

/// A job.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Job<AccountId, Balance, BlockNumber> {
    /// Who pays (the payment is in escrow).
    pub sponsor: AccountId,
    /// The module.
    pub module: ModuleHash,
    /// The entry function.
    pub entry: BoundedVec<u8, ConstU32<MAX_ENTRY_NAME>>,
    /// The input feed, and its key, length and tree hash when the job was submitted.
    pub feed: FeedId,
    /// The input feed's key.
    pub input_key: [u8; 32],
    /// Calls the job has: one per input block.
    pub input_length: u64,
    /// The published tree the inputs are proven against.
    pub input_tree: [u8; 32],
    /// Fuel cap of one call.
    pub fuel_per_call: u64,
    /// Fuel cap of the whole job.
    pub fuel_total: u64,
    /// The escrowed payment.
    pub payment: Balance,
    /// The drawn executor.
    pub executor: AccountId,
    /// Its protocol signing key when drawn (call records are signed with it).
    pub executor_key: [u8; 32],
    /// Its output feed's key, from `accept_job`.
    pub output_key: Option<[u8; 32]>,
    /// The last committed output root.
    pub committed: Option<Committed>,
    /// Where the job is.
    pub state: JobState<BlockNumber>,
    /// The monitoring round, from the final commit on (none if too few attestors).
    pub round: Option<MonitorRound<AccountId, BlockNumber>>,
}

impl<T: Config> Pallet<T> {
    pub(crate) fn do_upload_module(who: T::AccountId, code: &[u8]) -> DispatchResult {
        let hash = datdot_exec::module_hash(code);
        ensure!(!Modules::<T>::contains_key(hash), Error::<T>::ModuleExists);
        Program::new(code).map_err(|_| Error::<T>::InvalidModule)?;
        let len = code.len() as u32;
        let deposit = T::ModuleByteDeposit::get().saturating_mul(len.into());
        T::Currency::transfer(&who, &Self::account(), deposit, Preservation::Preserve)?;
        let code: BoundedVec<u8, ConstU32<MAX_MODULE_BYTES>> = code
            .to_vec()
            .try_into()
            .map_err(|_| Error::<T>::InvalidModule)?;
        ModuleCode::<T>::insert(hash, code);
        Modules::<T>::insert(
            hash,
            ModuleInfo {
                owner: who.clone(),
                deposit,
                len,
            },
        );
        Self::deposit_event(Event::ModuleUploaded {
            module: hash,
            owner: who,
            len,
        });
        Ok(())
    }

    pub(crate) fn do_offer_execution(who: T::AccountId, offer: bool) -> DispatchResult {
        let p = Participants::<T>::get(&who).ok_or(Error::<T>::NotRegistered)?;
        ensure!(p.role == Role::Hoster, Error::<T>::NotAHoster);
        if offer {
            ensure!(p.status == Status::Active, Error::<T>::Unbonding);
            ExecOffers::<T>::insert(&who, ());
        } else {
            ExecOffers::<T>::remove(&who);
        }
        Self::deposit_event(Event::ExecutionOffered { who, offer });
        Ok(())
    }

    fn program(module: &ModuleHash) -> Result<Program, DispatchError> {
        let code = ModuleCode::<T>::get(module).ok_or(Error::<T>::NoSuchModule)?;
        // Stored modules passed the same check at upload.
        Ok(Program::new(&code).map_err(|_| Error::<T>::InvalidModule)?)
    }

    /// The feed's active hosters that offer execution, drawn weighted by score + 1.
    fn draw_executor(feed: &FeedOf<T>, job: JobId, exclude: &T::AccountId) -> Option<T::AccountId> {
        let candidates: alloc::vec::Vec<(T::AccountId, u64)> = feed
            .contracts
            .iter()
            .filter_map(Contracts::<T>::get)
            .filter(|c| c.state == ContractState::Active && c.hoster != *exclude)
            .filter(|c| ExecOffers::<T>::contains_key(&c.hoster))
            .filter_map(|c| {
                let p = Participants::<T>::get(&c.hoster)?;
                (p.status == Status::Active)
                    .then(|| (c.hoster, u64::from(p.score.saturating_add(1))))
            })
            .collect();
        let weights: alloc::vec::Vec<u64> = candidates.iter().map(|(_, w)| *w).collect();
        let subject = (b"datdot/executor", job).encode();
        let mut stream = Stream::new(Self::seed(&subject));
        let i = *draw::weighted(&mut stream, &weights, 1).first()?;
        Some(candidates[i].0.clone())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn do_submit_job(
        who: T::AccountId,
        module: ModuleHash,
        feed_id: FeedId,
        entry: &[u8],
        fuel_per_call: u64,
        fuel_total: u64,
        payment: BalanceOf<T>,
    ) -> DispatchResult {
        ensure!(
            fuel_per_call >= 1 && fuel_per_call <= T::MaxFuelPerCall::get(),
            Error::<T>::InvalidFuel
        );
        ensure!(fuel_total >= fuel_per_call, Error::<T>::InvalidFuel);
        ensure!(!payment.is_zero(), Error::<T>::ZeroPayment);
        ensure!(
            ActiveJobs::<T>::get() < T::MaxJobs::get(),
            Error::<T>::TooManyJobs
        );
        let name = core::str::from_utf8(entry).map_err(|_| Error::<T>::InvalidEntry)?;
        Self::program(&module)?
            .check_entry(name)
            .map_err(|_| Error::<T>::InvalidEntry)?;
        let feed = Feeds::<T>::get(feed_id).ok_or(Error::<T>::NoSuchFeed)?;
        ensure!(!feed.ending, Error::<T>::PlanEnding);
        ensure!(feed.length > 0, Error::<T>::EmptyInput);
        let id = NextJobId::<T>::get();
        let executor = Self::draw_executor(&feed, id, &who).ok_or(Error::<T>::NoExecutor)?;
        let executor_key = Participants::<T>::get(&executor)
            .ok_or(Error::<T>::NoExecutor)?
            .endpoint
            .signing_key;
        T::Currency::transfer(&who, &Self::account(), payment, Preservation::Preserve)?;
        NextJobId::<T>::put(id.saturating_add(1));
        ActiveJobs::<T>::mutate(|n| *n = n.saturating_add(1));
        ExecutorJobs::<T>::mutate(&executor, |n| *n = n.saturating_add(1));
        let accept_by = Self::now().saturating_add(T::ConfirmWindow::get());
        Jobs::<T>::insert(
            id,
            Job {
                sponsor: who.clone(),
                module,
                entry: entry
                    .to_vec()
                    .try_into()
                    .map_err(|_| Error::<T>::InvalidEntry)?,
                feed: feed_id,
                input_key: feed.key,
                input_length: feed.length,
                input_tree: feed.tree_hash,
                fuel_per_call,
                fuel_total,
                payment,
                executor: executor.clone(),
                executor_key,
                output_key: None,
                committed: None,
                state: JobState::Assigned {
                    deadline: accept_by,
                },
                round: None,
            },
        );
        Self::deposit_event(Event::JobSubmitted {
            job: id,
            sponsor: who,
            feed: feed_id,
            module,
            executor,
            accept_by,
        });
        Ok(())
    }

    pub(crate) fn do_accept_job(
        who: T::AccountId,
        id: JobId,
        output_key: [u8; 32],
    ) -> DispatchResult {
        let mut job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        ensure!(job.executor == who, Error::<T>::NotTheExecutor);
        ensure!(
            matches!(job.state, JobState::Assigned { .. }),
            Error::<T>::NotAssigned
        );
        PublicKey::from_bytes(&output_key).map_err(|_| Error::<T>::InvalidFeedKey)?;
        job.output_key = Some(output_key);
        job.state = JobState::Running;
        Jobs::<T>::insert(id, job);
        Self::deposit_event(Event::JobAccepted {
            job: id,
            output_key,
        });
        Ok(())
    }

    pub(crate) fn do_commit_output(
        who: T::AccountId,
        id: JobId,
        signed_root: &[u8],
        fuel_used: u64,
        end: Option<JobEnd>,
    ) -> DispatchResult {
        let mut job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        ensure!(job.executor == who, Error::<T>::NotTheExecutor);
        ensure!(job.state == JobState::Running, Error::<T>::NotRunning);
        let key = job.output_key.ok_or(Error::<T>::NotRunning)?;
        let key = PublicKey::from_bytes(&key).map_err(|_| Error::<T>::InvalidFeedKey)?;
        let root =
            decode_exact::<SignedTreeRoot>(signed_root).ok_or(Error::<T>::MalformedSignedRoot)?;
        let tree_hash = root.verify(&key).map_err(|_| Error::<T>::RootNotSigned)?;
        let before = job.committed.map_or(0, |c| c.length);
        ensure!(
            root.length >= before && root.length <= job.input_length,
            Error::<T>::BadOutputLength
        );
        ensure!(fuel_used <= job.fuel_total, Error::<T>::InvalidFuel);
        match end {
            Some(JobEnd::Done) => {
                ensure!(root.length == job.input_length, Error::<T>::BadOutputLength)
            }
            Some(JobEnd::OutOfFuel) => ensure!(root.length >= 1, Error::<T>::BadOutputLength),
            None => {}
        }
        job.committed = Some(Committed {
            length: root.length,
            tree_hash,
            fuel_used,
        });
        if let Some(end) = end {
            let settle_at = Self::now().saturating_add(T::FraudWindow::get());
            job.state = JobState::Ended { end, settle_at };
            job.round = Self::draw_monitors(id, &job);
            if let Some(r) = &job.round {
                Self::deposit_event(Event::MonitorsDrawn {
                    job: id,
                    monitors: r.members.clone(),
                    report_deadline: r.report_deadline,
                });
            }
            ExecutorJobs::<T>::mutate(&who, |n| *n = n.saturating_sub(1));
            Self::deposit_event(Event::JobEnded {
                job: id,
                end,
                calls: root.length,
                settle_at,
            });
        }
        Self::deposit_event(Event::OutputCommitted {
            job: id,
            length: root.length,
            fuel_used,
        });
        Jobs::<T>::insert(id, job);
        Ok(())
    }

    /// Judge a call fraud proof; returns the fuel cap of the re-run (for the actual
    /// weight).
    pub(crate) fn do_call_proof(
        who: T::AccountId,
        id: JobId,
        bytes: &[u8],
    ) -> Result<u64, DispatchError> {
        let job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        ensure!(who != job.executor, Error::<T>::SelfAccusation);
        let output_key = match job.state {
            JobState::Assigned { .. } => None,
            JobState::Running | JobState::Ended { .. } => job.output_key,
        }
        .ok_or(Error::<T>::NotRunning)?;
        let proof = CallFraudProof::from_wire(bytes).map_err(|_| Error::<T>::MalformedCallProof)?;
        let program = Self::program(&job.module)?;
        let entry = core::str::from_utf8(&job.entry).map_err(|_| Error::<T>::InvalidEntry)?;
        let bad_key = |_| Error::<T>::InvalidFeedKey;
        let (input_feed, output_feed, executor) = (
            PublicKey::from_bytes(&job.input_key).map_err(bad_key)?,
            PublicKey::from_bytes(&output_key).map_err(bad_key)?,
            PublicKey::from_bytes(&job.executor_key).map_err(bad_key)?,
        );
        let terms = JobTerms {
            chain: Self::chain_id(),
            job: id,
            program: &program,
            entry,
            fuel_per_call: job.fuel_per_call,
            input_feed: &input_feed,
            input_length: job.input_length,
            input_tree: job.input_tree,
            output_feed: &output_feed,
            executor: &executor,
        };
        let (verdict, _) = proof.verify(&terms).map_err(|e| match e {
            CallProofError::NotThePublishedTree => Error::<T>::NotThePublishedTree,
            CallProofError::NotTheExecutors | CallProofError::WrongJob => {
                Error::<T>::NotTheExecutorsRecord
            }
            _ => Error::<T>::InvalidCallProof,
        })?;
        let CallVerdict::Fraud { index, .. } = verdict else {
            return Err(Error::<T>::NoFraud.into());
        };
        // Proven: slash the executor, reward the submitter, refund the sponsor in full.
        let stake = Participants::<T>::get(&job.executor).map_or(Zero::zero(), |p| p.stake);
        let slashed = Self::take_stake(
            &job.executor,
            T::FraudSlash::get().mul_floor(stake),
            PenaltyReason::Fraud,
        );
        let reward = T::FraudReward::get().mul_floor(slashed);
        Self::pay(&who, reward)?;
        // The monitors that reported without vouching for the wrong call are paid
        // their share of the job out of the slash; those that vouched are not.
        let calls = job.committed.map_or(0, |c| c.length);
        let share = crate::settle::job_payouts(
            job.payment,
            calls,
            job.input_length,
            T::ExecutorShare::get(),
        )
        .monitors
        .min(slashed.saturating_sub(reward));
        let (monitors, contradicted) = Self::monitors_paid(&job, Some(index));
        let unpaid = Self::pay_equally(&monitors, share)?;
        for m in contradicted {
            Self::adjust_score(&m, false);
        }
        Self::burn(
            slashed
                .saturating_sub(reward)
                .saturating_sub(share)
                .saturating_add(unpaid),
        );
        Self::adjust_score(&job.executor, false);
        Self::pay(&job.sponsor, job.payment)?;
        if job.state == JobState::Running {
            ExecutorJobs::<T>::mutate(&job.executor, |n| *n = n.saturating_sub(1));
        }
        Self::remove_job(id);
        Self::deposit_event(Event::CallFraudProven {
            job: id,
            index,
            offender: job.executor,
            submitter: who,
            slashed,
            reward,
            refund: job.payment,
        });
        Ok(job.fuel_per_call)
    }

    pub(crate) fn do_settle_job(id: JobId) -> DispatchResult {
        let job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        let JobState::Ended { end, settle_at } = job.state else {
            return Err(Error::<T>::NotEnded.into());
        };
        ensure!(Self::now() >= settle_at, Error::<T>::TooEarly);
        let calls = job.committed.map_or(0, |c| c.length);
        let p = crate::settle::job_payouts(
            job.payment,
            calls,
            job.input_length,
            T::ExecutorShare::get(),
        );
        Self::pay(&job.executor, p.executor)?;
        let (monitors, _) = Self::monitors_paid(&job, None);
        let unpaid = Self::pay_equally(&monitors, p.monitors)?;
        let refund = p.refund.saturating_add(unpaid);
        Self::pay(&job.sponsor, refund)?;
        let executor_pay = p.executor;
        Self::adjust_score(&job.executor, true);
        Self::remove_job(id);
        Self::deposit_event(Event::JobSettled {
            job: id,
            end,
            calls,
            executor_paid: executor_pay,
            refund,
        });
        Ok(())
    }

    pub(crate) fn do_cancel_job(who: T::AccountId, id: JobId) -> DispatchResult {
        let job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        ensure!(job.sponsor == who, Error::<T>::NotSponsor);
        let JobState::Assigned { deadline } = job.state else {
            return Err(Error::<T>::NotAssigned.into());
        };
        ensure!(Self::now() >= deadline, Error::<T>::TooEarly);
        Self::pay(&who, job.payment)?;
        ExecutorJobs::<T>::mutate(&job.executor, |n| *n = n.saturating_sub(1));
        Self::adjust_score(&job.executor, false);
        Self::remove_job(id);
        Self::deposit_event(Event::JobCancelled {
            job: id,
            refund: job.payment,
        });
        Ok(())
    }

    /// The monitoring round of a job that just ended: `AttestorsPerChallenge` active
    /// attestors other than the executor and the sponsor, drawn uniformly (none if
    /// fewer than `MinAttestors` are eligible), and the seed of their samples.
    fn draw_monitors(
        id: JobId,
        job: &JobOf<T>,
    ) -> Option<MonitorRound<T::AccountId, BlockNumberFor<T>>> {
        let eligible: alloc::vec::Vec<(T::AccountId, [u8; 32])> = Attestors::<T>::get()
            .into_iter()
            .filter(|a| *a != job.executor && *a != job.sponsor)
            .filter_map(|a| {
                let p = Participants::<T>::get(&a)?;
                (p.status == Status::Active).then_some((a, p.endpoint.signing_key))
            })
            .collect();
        if (eligible.len() as u32) < T::MinAttestors::get() {
            return None;
        }
        let seed = Self::seed(&(b"datdot/monitors", id).encode());
        let mut stream = Stream::new(seed);
        let picked = draw::uniform(
            &mut stream,
            eligible.len(),
            T::AttestorsPerChallenge::get() as usize,
        );
        let members: alloc::vec::Vec<_> = picked.iter().map(|i| eligible[*i].0.clone()).collect();
        let keys: alloc::vec::Vec<_> = picked.iter().map(|i| eligible[*i].1).collect();
        Some(MonitorRound {
            seed,
            members: members.try_into().ok()?,
            keys: keys.try_into().ok()?,
            report_deadline: Self::now().saturating_add(T::ReportWindow::get()),
            reports: BoundedVec::new(),
        })
    }

    pub(crate) fn do_monitor_report(who: T::AccountId, id: JobId, bytes: &[u8]) -> DispatchResult {
        let mut job = Jobs::<T>::get(id).ok_or(Error::<T>::NoSuchJob)?;
        ensure!(
            matches!(job.state, JobState::Ended { .. }),
            Error::<T>::NotEnded
        );
        let committed = job.committed.ok_or(Error::<T>::NotEnded)?;
        let round = job.round.as_mut().ok_or(Error::<T>::NotInCommittee)?;
        let member = round
            .members
            .iter()
            .position(|m| *m == who)
            .ok_or(Error::<T>::NotInCommittee)?;
        ensure!(Self::now() <= round.report_deadline, Error::<T>::TooLate);
        ensure!(
            !round
                .reports
                .iter()
                .any(|r| usize::from(r.member) == member),
            Error::<T>::AlreadyReported
        );
        let report: MonitorReport =
            datdot_protocol::codec::from_bytes(bytes).map_err(|_| Error::<T>::MalformedReport)?;
        ensure!(report.chain == Self::chain_id(), Error::<T>::WrongChain);
        ensure!(report.job == id, Error::<T>::WrongJob);
        ensure!(
            report.monitor.as_bytes() == &round.keys[member],
            Error::<T>::WrongSigningKey
        );
        report
            .verify_signature()
            .map_err(|_| Error::<T>::InvalidReport)?;
        ensure!(
            report.output_length == committed.length && report.output_tree == committed.tree_hash,
            Error::<T>::WrongOutputRoot
        );
        let sample = monitor::sample(
            &monitor::member_seed(&round.seed, member as u8),
            committed.length,
            T::MonitorSamples::get() as usize,
        );
        ensure!(
            report.checks.len() == sample.len(),
            Error::<T>::NotTheScheduledSample
        );
        let mut result = MonitorResult {
            member: member as u8,
            agrees: 0,
            mismatches: 0,
            unavailable: 0,
        };
        for (pos, check) in report.checks.iter().enumerate() {
            let bit = 1u64 << pos;
            match check {
                CallCheck::Agrees => result.agrees |= bit,
                CallCheck::Mismatch => result.mismatches |= bit,
                CallCheck::Unavailable => result.unavailable |= bit,
            }
        }
        round
            .reports
            .try_push(result)
            .map_err(|_| Error::<T>::AlreadyReported)?;
        Jobs::<T>::insert(id, job);
        Self::deposit_event(Event::MonitorReported {
            job: id,
            monitor: who,
            agrees: result.agrees.count_ones(),
            mismatches: result.mismatches.count_ones(),
            unavailable: result.unavailable.count_ones(),
        });
        Ok(())
    }

    /// The round's members that reported and did not say "agrees" for `wrong` (a call
    /// proven wrong), and those that did.
    fn monitors_paid(
        job: &JobOf<T>,
        wrong: Option<u64>,
    ) -> (alloc::vec::Vec<T::AccountId>, alloc::vec::Vec<T::AccountId>) {
        let (mut paid, mut contradicted) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
        let (Some(round), Some(committed)) = (&job.round, job.committed) else {
            return (paid, contradicted);
        };
        for r in &round.reports {
            let who = round.members[usize::from(r.member)].clone();
            let agreed_with_a_lie = wrong.is_some_and(|i| {
                let sample = monitor::sample(
                    &monitor::member_seed(&round.seed, r.member),
                    committed.length,
                    T::MonitorSamples::get() as usize,
                );
                sample
                    .iter()
                    .position(|s| *s == i)
                    .is_some_and(|pos| r.agrees & (1u64 << pos) != 0)
            });
            if agreed_with_a_lie {
                contradicted.push(who);
            } else {
                paid.push(who);
            }
        }
        (paid, contradicted)
    }

    /// Pay `pool` in equal parts to `to` (the rounding rest is returned).
    fn pay_equally(to: &[T::AccountId], pool: BalanceOf<T>) -> Result<BalanceOf<T>, DispatchError> {
        if to.is_empty() {
            return Ok(pool);
        }
        let each = pool / (to.len() as u32).into();
        for who in to {
            Self::pay(who, each)?;
            Self::deposit_event(Event::Rewarded {
                who: who.clone(),
                amount: each,
            });
        }
        Ok(pool.saturating_sub(each.saturating_mul((to.len() as u32).into())))
    }

    fn remove_job(id: JobId) {
        Jobs::<T>::remove(id);
        ActiveJobs::<T>::mutate(|n| *n = n.saturating_sub(1));
    }
}
