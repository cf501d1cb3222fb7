//! One committee member's part in one challenge, start to finish, as a sans-IO state
//! machine (SPEC §3): notice → committee → coin flip → schedule → task → report →
//! watch.
//!
//! The machine decides; its driver does. It never reads a clock, the chain or a socket,
//! and draws no randomness: time comes in as [`Instant`] (microseconds since the
//! driver's epoch), chain progress as block numbers, randomness as the `fresh` seed of
//! [`Lifecycle::new`]. What to do next leaves through [`Lifecycle::poll_action`]. The
//! coin flip ([`crate::coinflip::CoinFlip`]) and the task (for hosting,
//! [`crate::audit::session::AuditSession`]) are machines of their own that the driver
//! runs when told to, and whose results it hands back.
//!
//! ## What it decides
//! - **Coin flip**: run within the flip's phase of the window
//!   ([`crate::schedule::phases`]); not started with less than [`Params::min_flip`] left or
//!   when two members share a transport key (no `R`, nobody accused). Its entropy is
//!   persisted before the flip is started, so a restart signs the same commits.
//! - **Schedule**: join time and sample from `R` and our round secret
//!   ([`crate::schedule::assignment`]); without an agreed `R`, a private one derived from
//!   `fresh` (the hoster still cannot predict either; nobody can check them).
//! - **Task**: started at the join time, and every member gets the same time for it:
//!   the window's tail less [`Params::end_margin`], what the last on-time joiner has. An
//!   early joiner is not given more, so that members measure the hoster alike: with the
//!   time left to the window's end instead, members that joined late on a slow hoster
//!   got fewer of their blocks than the early ones and were flagged outliers for a
//!   truthful report (`datdot-sim network`). Skipped as *not done* when less than that
//!   is left: an audit cut short by our own lateness would count against the hoster.
//! - **Report**: built by the task from its output and the flip's record, signed, and
//!   persisted; the task's fraud proofs are submitted first.
//! - **Submission**: from the window's end block to the report deadline, once per block
//!   while refused as too early or lost in transport; refused otherwise, it stops.
//! - **Watch**: until the answer deadline, the challenge is read every
//!   [`WATCH_EVERY`] blocks; a withholding accusation against us is answered with our
//!   signed reveal of that round (the one we sent, or the one our entropy gives).
//!
//! ## Driving it (call order)
//! Create with [`Lifecycle::new`] (a new challenge) or [`Lifecycle::resume`] (from a
//! persisted [`Progress`]). Then drain [`Lifecycle::poll_action`] and carry out each
//! action in order — [`Action::Persist`] durably before the next one — answering with
//! the matching `handle_*`: [`Action::ReadFacts`] → [`Lifecycle::handle_facts`],
//! [`Action::Flip`] → [`Lifecycle::handle_flip_done`], [`Action::RunTask`] →
//! [`Lifecycle::handle_task_done`], [`Action::SubmitReport`] →
//! [`Lifecycle::handle_report_result`], [`Action::ReadChallenge`] →
//! [`Lifecycle::handle_challenge`], [`Action::PublishReveal`] →
//! [`Lifecycle::handle_reveal_result`]. Feed every new chain head to
//! [`Lifecycle::handle_head`] and call [`Lifecycle::handle_timeout`] once the instant of
//! [`Lifecycle::poll_timeout`] has passed; drain the actions after each call. The
//! machine is over after [`Action::Done`].

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::{self, Decode, DecodeError, Encode, Reader, Writer};
use crate::coinflip::{self, Msg, SessionId, SignedCommit, SignedReveal, Transcript};
use crate::fraud::FraudProof;
use crate::hash::{Hash, blake2b256};
use crate::identity::{Ed25519Verifier, Keypair, PublicKey, Signature};
use crate::metrics::{Failure, MetricSummary, Outcome};
use crate::receipt::SignedReceipt;
use crate::report::{self, CoinFlipRecord, Report};
use crate::schedule::{self, Window};
use crate::time::Instant;

/// The watch reads the challenge every this many blocks.
pub const WATCH_EVERY: u64 = 2;
/// Largest persisted [`Progress`] (a report is ≤ 64 KiB).
pub const MAX_PROGRESS: usize = 1 << 18;
/// Most signed reveals kept (one per round the flip ran).
pub const MAX_REVEALS: usize = 64;

/// Values of the challenge that its notice (the chain's event) carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Challenge id.
    pub challenge: u64,
    /// Window start (block).
    pub start: u32,
    /// Window end (block): audits end, reports are taken from here.
    pub end: u32,
    /// Last block a report is taken.
    pub report_deadline: u32,
}

impl Notice {
    /// The last block the chain takes an accused member's reveal: one report window
    /// (the blocks from `end` to the report deadline) after the report deadline.
    pub fn answer_deadline(&self) -> u64 {
        let deadline = u64::from(self.report_deadline);
        deadline + deadline.saturating_sub(u64::from(self.end))
    }
}

/// What the chain says about the committee and the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The members' pinned signing keys, in committee order.
    pub committee: Vec<PublicKey>,
    /// Our position in it.
    pub me: usize,
    /// The feed's length pinned when the challenge was drawn.
    pub feed_length: u64,
    /// Two members share a transport key: they cannot be told apart, no flip is run.
    pub repeated_keys: bool,
}

/// Chain constants and local limits the machine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// The chain's block time (ms).
    pub block_ms: u64,
    /// Blocks (or calls) each member samples — the chain's value, which its report
    /// check recomputes.
    pub samples: u32,
    /// A flip with less time than this left in its phase is not started.
    pub min_flip: Duration,
    /// Margin kept before the window's end when capping the task.
    pub end_margin: Duration,
}

impl Params {
    /// The attestor's values for a chain of `block_ms` and `samples`.
    pub fn new(block_ms: u64, samples: u32) -> Self {
        Params {
            block_ms,
            samples,
            min_flip: Duration::from_millis(300),
            end_margin: Duration::from_millis(500),
        }
    }
}

/// Who runs the machine, on which chain.
pub struct Member {
    /// The chain's identity (sessions and reports are bound to it).
    pub chain: [u8; 32],
    /// Our protocol signing key (reveals, reports).
    pub key: Keypair,
    /// Chain constants and local limits.
    pub params: Params,
}

impl core::fmt::Debug for Member {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Member")
            .field("key", &self.key.public())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// The coin flip's result as the report needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlipRecord {
    /// The round that produced `R` (or the last one tried; 0 if not run).
    pub round: u32,
    /// `R`, if the flip succeeded.
    pub result: Option<Hash>,
    /// The successful round's transcript.
    pub transcript: Option<Transcript>,
    /// Our secret of `round` (the preimage of our `x`), after a success.
    pub own: Option<[u8; 32]>,
    /// Withholding accusations: the accused members' signed commits.
    pub accused: Vec<SignedCommit>,
}

impl FlipRecord {
    /// No flip was run (or it ended without `R`) in `round`.
    pub fn none(round: u32, accused: Vec<SignedCommit>) -> Self {
        FlipRecord {
            round,
            result: None,
            transcript: None,
            own: None,
            accused,
        }
    }
}

/// Everything a member must remember across a restart (persisted at each step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The challenge.
    pub notice: Notice,
    /// The flip's entropy, stored before its first message.
    pub entropy: Option<[u8; 32]>,
    /// The flip's record once it is over.
    pub flip: Option<FlipRecord>,
    /// The signed report (wire bytes) once the task is done.
    pub report: Option<Vec<u8>>,
    /// The chain took the report.
    pub submitted: bool,
    /// Our signed reveals, one per round we revealed in.
    pub reveals: Vec<SignedReveal>,
    /// Rounds whose accusation against us was answered (or cannot be).
    pub answered: Vec<u32>,
}

impl Progress {
    /// A new challenge's record.
    pub fn new(notice: Notice) -> Self {
        Progress {
            notice,
            entropy: None,
            flip: None,
            report: None,
            submitted: false,
            reveals: Vec::new(),
            answered: Vec::new(),
        }
    }
}

/// What the task ran for (a hosting audit, an execution check) — its report.
///
/// The machine knows a task only through this: the sample it is run over (blocks of a
/// feed, calls of a job — drawn by the schedule from `R` over [`Facts::feed_length`]
/// items), what it observed, the proofs of fraud it verified, and the report it signs.
pub trait Task {
    /// What running it observed.
    type Output;
    /// A proof of fraud the task verified (hosting: [`FraudProof`]'s bad data; an
    /// execution check: a single-call proof), submitted before the report.
    type Fraud;
    /// The output of a task that was not run (too late in the window).
    fn not_done(&self) -> Self::Output;
    /// The output says something about the target (the report then names the sample).
    fn conclusive(&self, out: &Self::Output) -> bool;
    /// Verified fraud proofs in the output, submitted before the report.
    fn fraud(&self, out: &Self::Output) -> Vec<Self::Fraud>;
    /// The signed report (wire bytes) of `out` for `sample`, with the flip's record.
    fn report(
        &self,
        out: Self::Output,
        sample: Vec<u64>,
        flip: &FlipRecord,
        key: &Keypair,
    ) -> Result<Vec<u8>, &'static str>;
}

/// What a hosting audit observed, as its report needs it (the audit session's output,
/// with the bad-data proofs other peers completed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFindings {
    /// The measurements.
    pub summary: MetricSummary,
    /// The first failures, in order.
    pub failures: Vec<Failure>,
    /// Per sampled block: the verified leaf hash.
    pub received: Vec<Option<Hash>>,
    /// The hoster's receipts on the audit connection, each verified.
    pub receipts: Vec<SignedReceipt>,
    /// Verified bad-data fraud proofs.
    pub fraud: Vec<FraudProof>,
}

impl AuditFindings {
    /// The findings of an audit that was not run: nothing about the hoster.
    pub fn not_done() -> Self {
        AuditFindings {
            summary: MetricSummary::empty(Outcome::NotAudited),
            failures: Vec::new(),
            received: Vec::new(),
            receipts: Vec::new(),
            fraud: Vec::new(),
        }
    }
}

/// The hosting audit: the task of a storage challenge (SPEC §3.4). Its report is the one
/// `submit_report` checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostingAudit {
    /// The chain's identity.
    pub chain: [u8; 32],
    /// The challenge.
    pub challenge: u64,
    /// The hoster's pinned signing key.
    pub hoster: PublicKey,
    /// The feed's key.
    pub feed: [u8; 32],
}

impl HostingAudit {
    /// The report of `out` for `sampled`, signed with `key`, and how many verified blocks
    /// it counts as misbehaved for want of the hoster's receipt.
    pub fn build(
        &self,
        out: AuditFindings,
        sampled: Vec<u64>,
        flip: &FlipRecord,
        key: &Keypair,
    ) -> (Report, u32) {
        // The secret is opened only with the transcript it belongs to (a private one
        // stays private: it would tell nobody anything they could check).
        let own_secret = match (&flip.transcript, flip.own) {
            (Some(_), Some(s)) => s,
            _ => [0; 32],
        };
        let mut failures = out.failures;
        failures.truncate(report::MAX_FAILURES);
        let mut receipts = out.receipts;
        receipts.truncate(report::MAX_RECEIPTS);
        let mut accused = flip.accused.clone();
        accused.truncate(report::MAX_ACCUSED);
        let mut r = Report {
            chain: self.chain,
            challenge: self.challenge,
            attestor: key.public(),
            hoster: self.hoster,
            feed: self.feed,
            received_root: report::received_root(&out.received),
            sampled,
            receipts,
            metrics: out.summary,
            failures,
            coinflip: CoinFlipRecord {
                round: flip.round,
                transcript: flip.transcript.clone(),
                own_secret,
                accused,
            },
            sig: Signature([0; 64]),
        };
        // Receipts are the bulky part: drop the last ones if the report would not fit.
        while codec::to_bytes(&r).len() > <Report as codec::Message>::MAX_SIZE
            && !r.receipts.is_empty()
        {
            r.receipts.pop();
        }
        // The chain counts as verified only blocks a receipt covers.
        let moved = r.count_only_receipted();
        (r.sign(key), moved)
    }
}

impl Task for HostingAudit {
    type Output = AuditFindings;
    type Fraud = FraudProof;
    fn not_done(&self) -> AuditFindings {
        AuditFindings::not_done()
    }
    fn conclusive(&self, out: &AuditFindings) -> bool {
        out.summary.conclusive()
    }
    fn fraud(&self, out: &AuditFindings) -> Vec<FraudProof> {
        out.fraud.clone()
    }
    fn report(
        &self,
        out: AuditFindings,
        sample: Vec<u64>,
        flip: &FlipRecord,
        key: &Keypair,
    ) -> Result<Vec<u8>, &'static str> {
        let (r, _) = self.build(out, sample, flip, key);
        r.verify(&Ed25519Verifier)
            .map_err(|_| "our own report does not verify")?;
        Ok(codec::to_bytes(&r))
    }
}

/// How the chain answered a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Included.
    Accepted,
    /// Refused: before the window's end.
    TooEarly,
    /// Refused: the chain already holds our report.
    AlreadyReported,
    /// Refused for another reason (final).
    Refused,
    /// Not answered (the node dropped it, the connection broke): try again.
    Lost,
}

/// An accusation on chain, as the watch needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accusation {
    /// The accused member's position in the committee.
    pub member: usize,
    /// The round.
    pub round: u32,
    /// Already cleared by a published reveal.
    pub cleared: bool,
}

/// The challenge as the chain holds it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    /// Settled.
    pub settled: bool,
    /// Our position in its committee.
    pub me: Option<usize>,
    /// Withholding accusations.
    pub accusations: Vec<Accusation>,
}

/// How the machine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Reported (or not) and watched to the end.
    Watched,
    /// The report deadline passed before the chain took our report.
    DeadlinePassed,
    /// The chain refused our report.
    Refused,
    /// The challenge is gone from the chain.
    Gone,
}

/// Why the flip was not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlipSkipped {
    /// Its phase was (nearly) over when we got to it.
    PhaseOver,
    /// Two members share a transport key.
    RepeatedKeys,
}

/// What the driver does next; `F` is the task's [`Task::Fraud`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<F = FraudProof> {
    /// Store [`Lifecycle::progress`] durably before carrying out the next action.
    Persist,
    /// Read the committee and the feed's length: answer with [`Lifecycle::handle_facts`].
    ReadFacts,
    /// The flip was not run (no `R`, nobody accused).
    FlipSkipped(FlipSkipped),
    /// Run the coin flip within `budget`: answer with [`Lifecycle::handle_flip_done`].
    Flip {
        /// Its session.
        session: SessionId,
        /// The committee's signing keys.
        committee: Vec<PublicKey>,
        /// Our position in it.
        me: usize,
        /// The time left in the flip's phase ([`coinflip::Config::within`]).
        budget: Duration,
        /// Its entropy (already persisted).
        entropy: [u8; 32],
    },
    /// The task is scheduled: it starts at `at` (a timeout).
    Scheduled {
        /// When.
        at: Instant,
        /// How many blocks (or calls).
        sampled: usize,
    },
    /// Run the task over `sample` within `cap`: answer with
    /// [`Lifecycle::handle_task_done`].
    RunTask {
        /// Block (or call) indices, ascending.
        sample: Vec<u64>,
        /// The time it may take.
        cap: Duration,
    },
    /// Too late in the window to run the task: it reports *not done*.
    TooLate {
        /// Time left.
        left: Duration,
        /// Time an on-time member gets.
        needed: Duration,
    },
    /// Submit a verified fraud proof (no answer needed).
    SubmitFraud(Box<F>),
    /// Submit the report: answer with [`Lifecycle::handle_report_result`].
    SubmitReport(Vec<u8>),
    /// Read the challenge: answer with [`Lifecycle::handle_challenge`].
    ReadChallenge,
    /// Publish our reveal of `round` (wire bytes of a `coinflip::Msg::Reveal`): answer
    /// with [`Lifecycle::handle_reveal_result`].
    PublishReveal {
        /// The accused round.
        round: u32,
        /// The reveal.
        bytes: Vec<u8>,
    },
    /// Accused of withholding in `round`, with nothing to answer it with.
    CannotAnswer {
        /// The round.
        round: u32,
    },
    /// Over.
    Done(Ended),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    Facts,
    Flipping,
    Joining { at: Instant, sample: Vec<u64> },
    Tasking { sample: Vec<u64> },
    Submitting { in_flight: bool, next: u64 },
    Watching { reading: bool, next: u64 },
    Done,
}

/// One member's challenge ([module docs](self)).
pub struct Lifecycle<T: Task> {
    task: T,
    key: Keypair,
    params: Params,
    chain: [u8; 32],
    fresh: [u8; 32],
    progress: Progress,
    facts: Option<Facts>,
    anchor: Instant,
    stage: Stage,
    head: u64,
    reveals_in_flight: Vec<u32>,
    actions: VecDeque<Action<T::Fraud>>,
}

impl<T: Task> core::fmt::Debug for Lifecycle<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("challenge", &self.progress.notice.challenge)
            .field("stage", &self.stage)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

fn ms(d: u64) -> Duration {
    Duration::from_millis(d)
}

fn after(t: Instant, d: Duration) -> Instant {
    Instant(t.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
}

fn until(now: Instant, t: Instant) -> Duration {
    Duration::from_micros(t.0.saturating_sub(now.0))
}

impl<T: Task> Lifecycle<T> {
    /// A new challenge, learned of at `now` with the chain at `head`. `fresh`: 32 random
    /// bytes (the flip's entropy; a private `R` if there is none).
    pub fn new(
        notice: Notice,
        member: Member,
        task: T,
        fresh: [u8; 32],
        now: Instant,
        head: u64,
    ) -> Self {
        let mut l = Self::resume(Progress::new(notice), member, task, fresh, now, head);
        l.actions.push_front(Action::Persist);
        l
    }

    /// Resume from `progress` (restored after a restart), at `now` with the chain at
    /// `head`.
    pub fn resume(
        progress: Progress,
        member: Member,
        task: T,
        fresh: [u8; 32],
        now: Instant,
        head: u64,
    ) -> Self {
        let Member { chain, key, params } = member;
        let behind = head.saturating_sub(u64::from(progress.notice.start));
        let anchor = Instant(
            now.0
                .saturating_sub(behind.saturating_mul(params.block_ms).saturating_mul(1000)),
        );
        let mut l = Lifecycle {
            task,
            key,
            params,
            chain,
            fresh,
            progress,
            facts: None,
            anchor,
            stage: Stage::Facts,
            head,
            reveals_in_flight: Vec::new(),
            actions: VecDeque::new(),
        };
        if l.progress.submitted {
            l.watch();
        } else if l.progress.report.is_some() {
            l.stage = Stage::Submitting {
                in_flight: false,
                next: 0,
            };
            l.step_submit();
        } else {
            l.actions.push_back(Action::ReadFacts);
        }
        l
    }

    /// What to persist.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The challenge.
    pub fn notice(&self) -> &Notice {
        &self.progress.notice
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<T::Fraud>> {
        self.actions.pop_front()
    }

    /// When [`Lifecycle::handle_timeout`] is due (the task's start).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Joining { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// Over.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    fn window_ms(&self) -> u64 {
        let n = &self.progress.notice;
        u64::from(n.end.saturating_sub(n.start)) * self.params.block_ms
    }

    fn session(&self) -> SessionId {
        coinflip::challenge_session(&self.chain, self.progress.notice.challenge)
    }

    fn private(&self, what: &[u8]) -> [u8; 32] {
        blake2b256(&[b"datdot/v1/lifecycle/private", what, &self.fresh])
    }

    /// The committee and feed as the chain holds them.
    pub fn handle_facts(&mut self, now: Instant, facts: Facts) {
        if self.stage != Stage::Facts {
            return;
        }
        self.facts = Some(facts);
        if self.progress.flip.is_some() {
            self.schedule(now);
            return;
        }
        let phase = schedule::phases(self.window_ms());
        let budget = until(now, after(self.anchor, ms(phase.flip_end)));
        let facts = self.facts.as_ref().expect("set above");
        let skip = if budget < self.params.min_flip {
            Some(FlipSkipped::PhaseOver)
        } else if facts.repeated_keys {
            Some(FlipSkipped::RepeatedKeys)
        } else {
            None
        };
        if let Some(why) = skip {
            self.progress.flip = Some(FlipRecord::none(0, Vec::new()));
            self.actions.push_back(Action::FlipSkipped(why));
            self.actions.push_back(Action::Persist);
            self.schedule(now);
            return;
        }
        let entropy = match self.progress.entropy {
            Some(e) => e,
            None => {
                let e = self.private(b"entropy");
                self.progress.entropy = Some(e);
                self.actions.push_back(Action::Persist);
                e
            }
        };
        self.stage = Stage::Flipping;
        self.actions.push_back(Action::Flip {
            session: self.session(),
            committee: facts.committee.clone(),
            me: facts.me,
            budget,
            entropy,
        });
    }

    /// The flip ended with `outcome`; `reveals` are the reveals we signed, `accused`
    /// the signed commits of the members its offline rounds named.
    pub fn handle_flip_done(
        &mut self,
        now: Instant,
        outcome: &coinflip::Outcome,
        last_round: u32,
        reveals: Vec<SignedReveal>,
        accused: Vec<SignedCommit>,
    ) {
        if self.stage != Stage::Flipping {
            return;
        }
        let mut rec = match outcome {
            coinflip::Outcome::Success {
                round,
                result,
                transcript,
            } => {
                let entropy = self.progress.entropy.unwrap_or_default();
                FlipRecord {
                    round: *round,
                    result: Some(*result),
                    transcript: Some(transcript.clone()),
                    own: Some(coinflip::round_secret(&entropy, &self.session(), *round)),
                    accused,
                }
            }
            coinflip::Outcome::Offline { round, .. } => FlipRecord::none(*round, accused),
            coinflip::Outcome::Malicious { .. } => FlipRecord::none(last_round, accused),
        };
        // The report carries at most this many (and the record decodes no more).
        rec.accused.truncate(crate::report::MAX_ACCUSED);
        self.progress.flip = Some(rec);
        self.progress.reveals = reveals;
        self.progress.reveals.truncate(MAX_REVEALS);
        self.actions.push_back(Action::Persist);
        self.schedule(now);
    }

    fn schedule(&mut self, now: Instant) {
        let (Some(flip), Some(facts)) = (&self.progress.flip, &self.facts) else {
            return;
        };
        let r = flip.result.unwrap_or_else(|| self.private(b"r"));
        let own = flip.own.unwrap_or_else(|| self.private(b"s"));
        let phase = schedule::phases(self.window_ms());
        let w = Window {
            start: phase.flip_end,
            end: phase.joins_end.max(phase.flip_end + 1),
            feed_length: facts.feed_length,
            samples: self.params.samples,
        };
        let (at, sample) = match schedule::assignment(&r, &own, &w) {
            Ok(a) => (after(self.anchor, ms(a.join_at)), a.indices),
            // An empty feed or window: nothing to sample, report at once.
            Err(_) => (now, Vec::new()),
        };
        self.actions.push_back(Action::Scheduled {
            at,
            sampled: sample.len(),
        });
        self.stage = Stage::Joining { at, sample };
        if at <= now {
            self.handle_timeout(now);
        }
    }

    /// Time passed: the task starts at its join time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Stage::Joining { at, sample } = &self.stage else {
            return;
        };
        if now < *at {
            return;
        }
        let sample = sample.clone();
        let window_ms = self.window_ms();
        let end = after(self.anchor, ms(window_ms));
        let cap = until(now, end).saturating_sub(self.params.end_margin);
        let phase = schedule::phases(window_ms);
        let on_time = ms(window_ms - phase.joins_end).saturating_sub(self.params.end_margin);
        if cap < on_time {
            self.actions.push_back(Action::TooLate {
                left: cap,
                needed: on_time,
            });
            let out = self.task.not_done();
            self.stage = Stage::Tasking { sample };
            self.handle_task_done(now, out);
        } else {
            self.actions.push_back(Action::RunTask {
                sample: sample.clone(),
                cap: on_time,
            });
            self.stage = Stage::Tasking { sample };
        }
    }

    /// The task is over.
    pub fn handle_task_done(&mut self, _now: Instant, out: T::Output) {
        let Stage::Tasking { sample } = &self.stage else {
            return;
        };
        let sampled = if self.task.conclusive(&out) {
            sample.clone()
        } else {
            Vec::new()
        };
        for p in self.task.fraud(&out) {
            self.actions.push_back(Action::SubmitFraud(Box::new(p)));
        }
        let flip = self
            .progress
            .flip
            .clone()
            .unwrap_or_else(|| FlipRecord::none(0, Vec::new()));
        match self.task.report(out, sampled, &flip, &self.key) {
            Ok(bytes) => {
                self.progress.report = Some(bytes);
                self.actions.push_back(Action::Persist);
                self.stage = Stage::Submitting {
                    in_flight: false,
                    next: 0,
                };
                self.step_submit();
            }
            Err(_) => self.watch(),
        }
    }

    /// The chain's head moved to `head`.
    pub fn handle_head(&mut self, _now: Instant, head: u64) {
        self.head = self.head.max(head);
        match self.stage {
            Stage::Submitting { .. } => self.step_submit(),
            Stage::Watching { .. } => self.step_watch(),
            _ => {}
        }
    }

    fn step_submit(&mut self) {
        let Stage::Submitting { in_flight, next } = self.stage else {
            return;
        };
        let n = self.progress.notice;
        if in_flight {
            return;
        }
        if self.head > u64::from(n.report_deadline) {
            self.finish(Ended::DeadlinePassed);
            return;
        }
        if self.head < u64::from(n.end) || self.head < next {
            return;
        }
        let Some(bytes) = self.progress.report.clone() else {
            self.watch();
            return;
        };
        self.stage = Stage::Submitting {
            in_flight: true,
            next,
        };
        self.actions.push_back(Action::SubmitReport(bytes));
    }

    /// The chain's answer to [`Action::SubmitReport`].
    pub fn handle_report_result(&mut self, _now: Instant, res: Submitted) {
        let Stage::Submitting { .. } = self.stage else {
            return;
        };
        match res {
            Submitted::Accepted | Submitted::AlreadyReported => {
                self.progress.submitted = true;
                self.actions.push_back(Action::Persist);
                self.watch();
            }
            Submitted::Refused => self.finish(Ended::Refused),
            Submitted::TooEarly | Submitted::Lost => {
                self.stage = Stage::Submitting {
                    in_flight: false,
                    next: self.head + 1,
                };
            }
        }
    }

    fn watch(&mut self) {
        self.stage = Stage::Watching {
            reading: false,
            next: 0,
        };
        self.step_watch();
    }

    fn step_watch(&mut self) {
        let Stage::Watching { reading, next } = self.stage else {
            return;
        };
        if self.head > self.progress.notice.answer_deadline() {
            self.finish(Ended::Watched);
            return;
        }
        if reading || !self.reveals_in_flight.is_empty() || self.head < next {
            return;
        }
        self.stage = Stage::Watching {
            reading: true,
            next,
        };
        self.actions.push_back(Action::ReadChallenge);
    }

    /// The challenge as the chain holds it (`None`: gone).
    pub fn handle_challenge(&mut self, _now: Instant, view: Option<ChainView>) {
        let Stage::Watching { reading: true, .. } = self.stage else {
            return;
        };
        self.stage = Stage::Watching {
            reading: false,
            next: self.head + WATCH_EVERY,
        };
        let Some(view) = view else {
            self.finish(Ended::Gone);
            return;
        };
        if view.settled && view.accusations.is_empty() {
            self.finish(Ended::Watched);
            return;
        }
        for a in &view.accusations {
            if Some(a.member) != view.me
                || a.cleared
                || self.progress.answered.contains(&a.round)
                || self.reveals_in_flight.contains(&a.round)
            {
                continue;
            }
            match self.reveal_of(a.round) {
                Some(r) => {
                    self.reveals_in_flight.push(a.round);
                    self.actions.push_back(Action::PublishReveal {
                        round: a.round,
                        bytes: codec::to_bytes(&Msg::Reveal(r)),
                    });
                }
                None => {
                    self.progress.answered.push(a.round);
                    self.actions
                        .push_back(Action::CannotAnswer { round: a.round });
                    self.actions.push_back(Action::Persist);
                }
            }
        }
    }

    /// Our reveal of `round`: the one we sent, or — for a round we committed in but never
    /// reached the reveal of — the one our entropy gives (the flip is over; it opens the
    /// commit the accusers hold).
    fn reveal_of(&self, round: u32) -> Option<SignedReveal> {
        if let Some(r) = self.progress.reveals.iter().find(|r| r.round == round) {
            return Some(r.clone());
        }
        let entropy = self.progress.entropy?;
        let session = self.session();
        let x = coinflip::x_of(&coinflip::round_secret(&entropy, &session, round));
        Some(SignedReveal::sign(&self.key, session, round, x))
    }

    /// The chain's answer to [`Action::PublishReveal`]: `Some(true)` taken, `Some(false)`
    /// refused (final), `None` lost (tried again at the next read).
    pub fn handle_reveal_result(&mut self, _now: Instant, round: u32, res: Option<bool>) {
        if !matches!(self.stage, Stage::Watching { .. }) || !self.reveals_in_flight.contains(&round)
        {
            return;
        }
        self.reveals_in_flight.retain(|r| *r != round);
        if res.is_some() {
            self.progress.answered.push(round);
            self.actions.push_back(Action::Persist);
        }
        self.step_watch();
    }

    fn finish(&mut self, how: Ended) {
        if self.stage != Stage::Done {
            self.stage = Stage::Done;
            self.actions.push_back(Action::Done(how));
        }
    }
}

// --- Persistence ------------------------------------------------------------------

fn opt<V: Encode>(w: &mut Writer, v: &Option<V>) {
    match v {
        Some(v) => {
            w.u8(1);
            v.encode(w);
        }
        None => w.u8(0),
    }
}

fn read_opt<V: Decode>(r: &mut Reader<'_>) -> Result<Option<V>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(V::decode(r)?)),
        _ => Err(DecodeError::Invalid("option")),
    }
}

struct Round(u32);

impl Encode for Round {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.0);
    }
}

impl Decode for Round {
    const MIN_SIZE: usize = 4;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Round(r.u32()?))
    }
}

impl Encode for FlipRecord {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.round);
        opt(w, &self.result);
        opt(w, &self.transcript);
        opt(w, &self.own);
        w.list(&self.accused);
    }
}

impl Decode for FlipRecord {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FlipRecord {
            round: r.u32()?,
            result: read_opt(r)?,
            transcript: read_opt(r)?,
            own: read_opt(r)?,
            accused: r.list("accused", crate::report::MAX_ACCUSED)?,
        })
    }
}

impl Encode for Progress {
    fn encode(&self, w: &mut Writer) {
        let n = &self.notice;
        w.u64(n.challenge);
        w.u32(n.start);
        w.u32(n.end);
        w.u32(n.report_deadline);
        opt(w, &self.entropy);
        opt(w, &self.flip);
        match &self.report {
            Some(b) => {
                w.u8(1);
                w.bytes(b);
            }
            None => w.u8(0),
        }
        w.u8(u8::from(self.submitted));
        w.list(&self.reveals);
        let answered: Vec<Round> = self.answered.iter().map(|r| Round(*r)).collect();
        w.list(&answered);
    }
}

impl Decode for Progress {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let notice = Notice {
            challenge: r.u64()?,
            start: r.u32()?,
            end: r.u32()?,
            report_deadline: r.u32()?,
        };
        let entropy = read_opt(r)?;
        let flip = read_opt(r)?;
        let report = match r.u8()? {
            0 => None,
            1 => Some(
                r.bytes(
                    "report",
                    <crate::report::Report as codec::Message>::MAX_SIZE,
                )?
                .to_vec(),
            ),
            _ => return Err(DecodeError::Invalid("option")),
        };
        let submitted = r.bool()?;
        let reveals = r.list("reveals", MAX_REVEALS)?;
        let answered: Vec<Round> = r.list("answered", MAX_REVEALS)?;
        Ok(Progress {
            notice,
            entropy,
            flip,
            report,
            submitted,
            reveals,
            answered: answered.into_iter().map(|r| r.0).collect(),
        })
    }
}

impl codec::Message for Progress {
    const TAG: u8 = 0x70;
    const MAX_SIZE: usize = MAX_PROGRESS;
}

#[cfg(test)]
mod tests;
