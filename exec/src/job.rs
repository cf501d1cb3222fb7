//! An executor's run of one job as a sans-IO machine: which call comes next, the fuel it
//! runs with, the block it appends to the output feed, when the output's root is
//! committed, how the log ends, and how a restart resumes from the log on disk without
//! ever writing a different block for a call already logged.
//!
//! The machine decides; its driver does (fetching input blocks from the hoster's store,
//! appending to the output feed, committing on chain). Calls are run by the machine
//! itself ([`JobRun::handle_input`], with [`Program::call`]): that is what makes the
//! log the one a monitor or the chain gets when it re-runs a call.
//!
//! ## Rules
//! - Every call runs with exactly the job's `fuel_per_call`: a proof re-runs a call
//!   with that cap ([`crate::CallFraudProof::check`]), so a call capped lower (say, at
//!   what is left of the job's total) would be logged out of fuel where the re-run
//!   succeeds, and be proven a fraud.
//! - A call that traps is logged, and the job goes on. A call that runs out of its fuel
//!   is logged and ends the log ([`End::OutOfFuel`]).
//! - The job's `fuel_total` ends the log *between* calls: the call whose fuel would
//!   take the sum past it is not logged, and the log ends with the call before it
//!   ([`End::OutOfFuel`]; the chain refuses a commit claiming more than the total, and
//!   the claim stays the true sum). The first call always fits: the chain takes no job
//!   with `fuel_total < fuel_per_call`.
//! - One call per input block, in order; after the last, the log ends ([`End::Done`]).
//! - The root is committed every `commit_every` calls and when the log ends (the final
//!   commit carries the end).
//!
//! ## Driving it (call order)
//! Create with [`JobRun::new`], or [`JobRun::resume`] with the records of the output
//! feed as it is on disk and the length the chain has committed. Then drain
//! [`JobRun::poll_step`] and carry out each step in order: [`Step::Run`] → fetch that
//! input block (verified) and call [`JobRun::handle_input`]; [`Step::Append`] → append
//! the block to the output feed durably before the next step; [`Step::Commit`] →
//! commit the feed's signed root at that length (retrying until the chain takes it) and
//! call [`JobRun::handle_committed`]. The run is over after [`Step::Finished`].
//!
//! The hoster's driver (fetching inputs from its store, a Hypercore output feed,
//! `accept_job` / `commit_output`) is not written yet (DESIGN §18.9).

use alloc::boxed::Box;
use alloc::string::String;

use datdot_protocol::identity::{ChainId, Keypair};

use crate::record::{CallRecord, CallStatus, OutputBlock};
use crate::vm::Program;

/// The job, as the chain has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSpec {
    /// The chain.
    pub chain: ChainId,
    /// The job's id.
    pub job: u64,
    /// The entry function.
    pub entry: String,
    /// Fuel of each call.
    pub fuel_per_call: u64,
    /// Fuel of the whole job.
    pub fuel_total: u64,
    /// Input blocks (one call each).
    pub input_length: u64,
}

/// How a log ended (the chain's `JobEnd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// One call per input block was logged.
    Done,
    /// A call ran out of its fuel, or the next would have taken the job past its total.
    OutOfFuel,
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Fetch input block `index` and hand it to [`JobRun::handle_input`].
    Run {
        /// The call (= input block) index.
        index: u64,
    },
    /// Append this block to the output feed (it becomes block `record.index`), durably.
    Append(Box<OutputBlock>),
    /// Commit the output feed's signed root at `length` with `fuel_used`; `end` on the
    /// final commit. Answer with [`JobRun::handle_committed`].
    Commit {
        /// Calls logged.
        length: u64,
        /// Their fuel, summed.
        fuel_used: u64,
        /// How the log ended, on the final commit.
        end: Option<End>,
    },
    /// Nothing left to do.
    Finished,
}

/// What the chain has of the job when the run resumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnChain {
    /// Calls committed.
    pub committed: u64,
    /// The final commit (with its end) was taken.
    pub ended: bool,
}

/// Why a log on disk cannot be resumed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// Record `at` is not call `at` of this job, by this executor, on this chain.
    #[error("output block {at} is not call {at} of this job by this executor")]
    Foreign {
        /// Its position in the log.
        at: u64,
    },
    /// A record follows one that ended the log (out of fuel), or the log is longer than
    /// the input.
    #[error("output block {at} follows the end of the log")]
    PastTheEnd {
        /// Its position.
        at: u64,
    },
    /// The records' fuel sums past the job's total.
    #[error("the log's fuel ({used}) is past the job's total ({total})")]
    OverTotal {
        /// The sum.
        used: u64,
        /// The total.
        total: u64,
    },
    /// The chain has more committed than the log on disk holds, or ended the job at
    /// another length than the log's end.
    #[error("the chain has {committed} calls committed, the log on disk {logged}")]
    BehindTheChain {
        /// Committed on chain.
        committed: u64,
        /// In the log.
        logged: u64,
    },
}

/// One job's run ([module docs](self)).
#[derive(Debug)]
pub struct JobRun {
    spec: JobSpec,
    key: Keypair,
    commit_every: u64,
    /// Calls logged (the next call's index).
    logged: u64,
    fuel_used: u64,
    end: Option<End>,
    /// Length the chain has committed.
    committed: u64,
    /// The chain took the final commit.
    finished: bool,
    /// A commit (of `logged`) is out.
    committing: bool,
    /// An append not yet handed out.
    append: Option<Box<OutputBlock>>,
    /// Input block `logged` was asked for.
    running: bool,
}

impl JobRun {
    /// A new run: nothing logged. `commit_every` ≥ 1 calls between commits.
    pub fn new(spec: JobSpec, key: Keypair, commit_every: u64) -> Self {
        JobRun {
            key,
            commit_every: commit_every.max(1),
            logged: 0,
            fuel_used: 0,
            // The chain takes no job over an empty feed; nothing to run if it did.
            end: (spec.input_length == 0).then_some(End::Done),
            committed: 0,
            finished: false,
            committing: false,
            append: None,
            running: false,
            spec,
        }
    }

    /// Resume from the records of the output feed on disk (blocks `0..`, in order) and
    /// what the chain has of the job. Every record must be this job's call at its
    /// position, by our key; the run goes on after the last one and never writes
    /// another block for a call that is logged.
    pub fn resume(
        spec: JobSpec,
        key: Keypair,
        commit_every: u64,
        log: &[CallRecord],
        chain: OnChain,
    ) -> Result<Self, ResumeError> {
        let mut run = JobRun::new(spec, key, commit_every);
        for (at, r) in (0u64..).zip(log) {
            if run.end.is_some() || at >= run.spec.input_length {
                return Err(ResumeError::PastTheEnd { at });
            }
            if r.chain != run.spec.chain
                || r.job != run.spec.job
                || r.index != at
                || r.executor != run.key.public()
            {
                return Err(ResumeError::Foreign { at });
            }
            run.fuel_used = run.fuel_used.saturating_add(r.fuel_used);
            if run.fuel_used > run.spec.fuel_total {
                return Err(ResumeError::OverTotal {
                    used: run.fuel_used,
                    total: run.spec.fuel_total,
                });
            }
            run.logged = at + 1;
            if r.status == CallStatus::OutOfFuel {
                run.end = Some(End::OutOfFuel);
            }
        }
        if run.end.is_none() && run.logged == run.spec.input_length {
            run.end = Some(End::Done);
        }
        let behind = chain.committed > run.logged
            || (chain.ended && (chain.committed != run.logged || run.end.is_none()));
        if behind {
            return Err(ResumeError::BehindTheChain {
                committed: chain.committed,
                logged: run.logged,
            });
        }
        run.committed = chain.committed;
        run.finished = chain.ended;
        Ok(run)
    }

    /// The job.
    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// Calls logged so far.
    pub fn logged(&self) -> u64 {
        self.logged
    }

    /// Their fuel, summed.
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// How the log ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// The next step, or `None` while waiting for the driver (an input block, a
    /// commit).
    pub fn poll_step(&mut self) -> Option<Step> {
        if let Some(b) = self.append.take() {
            return Some(Step::Append(b));
        }
        if self.committing || self.running {
            return None;
        }
        if self.finished {
            return Some(Step::Finished);
        }
        if let Some(end) = self.end {
            return Some(self.commit(Some(end)));
        }
        if self.logged - self.committed >= self.commit_every {
            return Some(self.commit(None));
        }
        self.running = true;
        Some(Step::Run { index: self.logged })
    }

    fn commit(&mut self, end: Option<End>) -> Step {
        self.committing = true;
        Step::Commit {
            length: self.logged,
            fuel_used: self.fuel_used,
            end,
        }
    }

    /// Input block `index` (verified against the job's input root by the driver): run
    /// the call and log it, or end the log if it would take the job past its total.
    /// A block for another index than the one asked for is ignored.
    pub fn handle_input(&mut self, index: u64, input: &[u8], program: &Program) {
        if !self.running || index != self.logged {
            return;
        }
        self.running = false;
        let outcome = program.call(&self.spec.entry, input, self.spec.fuel_per_call);
        let Some(sum) = self
            .fuel_used
            .checked_add(outcome.fuel_used)
            .filter(|s| *s <= self.spec.fuel_total)
        else {
            self.end = Some(End::OutOfFuel);
            return;
        };
        let record = CallRecord::of(
            self.spec.chain,
            self.spec.job,
            index,
            input,
            &outcome,
            self.key.public(),
        );
        self.fuel_used = sum;
        self.logged = index + 1;
        if outcome.status == CallStatus::OutOfFuel {
            self.end = Some(End::OutOfFuel);
        } else if self.logged == self.spec.input_length {
            self.end = Some(End::Done);
        }
        self.append = Some(Box::new(OutputBlock::sign(
            record,
            outcome.output,
            &self.key,
        )));
    }

    /// The chain took the commit of `length`.
    pub fn handle_committed(&mut self, length: u64) {
        if !self.committing || length != self.logged {
            return;
        }
        self.committing = false;
        self.committed = length;
        self.finished = self.end.is_some() && length == self.logged;
    }
}
