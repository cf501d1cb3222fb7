//! # `pallet-datdot`: the datdot chain logic
//!
//! Hosters and attestors bond a stake and register how they are reached (network
//! address, Noise static key) and the ed25519 key that signs their protocol messages.
//! Publishers publish a Hypercore feed (key, length and the author's signed root,
//! verified here) with a plan (replicas, SLA, price per period, periods) and escrow.
//! The pallet assigns hosters, schedules a challenge per active contract every
//! `ChallengePeriod` blocks with a committee of attestors drawn from chain randomness,
//! accepts signed reports in the report window, settles (per-metric median, SLA
//! verdict, rewards, penalties, outliers, scores), and punishes verified fraud.
//! Execution jobs ([`jobs`]): uploaded WebAssembly modules run once per block of a
//! published feed by an executor drawn among its hosters, monitored by a drawn
//! committee, and disputed one call at a time — the chain re-runs it with
//! `datdot-exec`, the same interpreter the executor and monitors use.
//!
//! ## Goals
//! - One chain logic: the same pallet runs under chopsticks (wasm) and natively in
//!   `TestExternalities` (tests, simulator).
//! - Reuse `datdot-protocol` for every decoding and verification: extrinsics take
//!   reports, fraud proofs, signed roots and reveals as **bytes of our wire codec**
//!   (`BoundedVec<u8, ConstU32<MAX>>`, MAX = the protocol's `MAX_SIZE`) and decode them
//!   with `datdot_protocol::codec`. Off-chain parties sign exactly those bytes'
//!   contents, so there is one format and no second (SCALE) definition of them to
//!   drift.
//! - Bounded everything: committees ≤ [`types::MAX_COMMITTEE`], replicas ≤
//!   [`types::MAX_REPLICAS`], histories ≤ [`types::MAX_HISTORY`], participant lists ≤
//!   `MaxHosters` / `MaxAttestors`; the agenda spends ≤
//!   [`types::AGENDA_WEIGHT_PERCENT`] % of a block's weight per block (more due work
//!   waits, in order; none is dropped).
//!
//! ## Non-goals
//! - Unbiasable randomness on a dev chain (see [`ParentHashRandomness`]).
//! - Re-judging the SLA from raw samples: the chain trusts the median of signed
//!   summaries; liars are bounded by the median and flagged as outliers.
//!
//! ## Chain identity and session ids
//! The chain's identity is `BLAKE2b-256("datdot/v1/chain" || genesis hash || ChainSalt)`
//! ([`Pallet::chain_id`]); the dev chain's genesis carries a random [`ChainSalt`], so a
//! reset dev chain is a new chain. The coin
//! flip of challenge `id` runs in session
//! `BLAKE2b-256("datdot/v1/session" || chain id || id as u64 LE)` ([`session_id`]);
//! fraud proofs and reveals name their session, which maps them back to the challenge,
//! and reports and receipts name the chain: evidence signed for another chain (or for
//! this dev chain before a reset, where challenge ids repeat) is refused.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod challenge;
pub mod draw;
pub mod jobs;
mod logic;
pub mod settle;
pub mod types;
pub mod weights;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use datdot_protocol::codec::Message;
use frame::prelude::*;
use frame::traits::Randomness;

pub use jobs::{
    Committed, Job, JobEnd, JobId, JobState, ModuleHash, ModuleInfo, MonitorResult, MonitorRound,
};
pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

pub use datdot_protocol::coinflip::SESSION_CONTEXT;

/// The coin-flip session id of a challenge on `chain`
/// (`datdot_protocol::coinflip::challenge_session`).
pub fn session_id(chain: &[u8; 32], challenge: ChallengeId) -> [u8; 32] {
    datdot_protocol::coinflip::challenge_session(chain, challenge)
}

/// Largest report accepted (the protocol's `Report::MAX_SIZE`).
pub const MAX_REPORT_BYTES: u32 = <datdot_protocol::report::Report as Message>::MAX_SIZE as u32;
/// Largest fraud proof accepted (the protocol's `FraudProof::MAX_SIZE`).
pub const MAX_FRAUD_PROOF_BYTES: u32 =
    <datdot_protocol::fraud::FraudProof as Message>::MAX_SIZE as u32;
/// Largest signed tree root accepted (the protocol's `SignedTreeRoot::MAX_ENCODED`).
pub const MAX_ROOT_BYTES: u32 = datdot_protocol::tree::SignedTreeRoot::MAX_ENCODED as u32;
/// Largest reveal message accepted (a `coinflip::Msg::Reveal` is 168 bytes).
pub const MAX_REVEAL_BYTES: u32 = 256;

/// Randomness for a dev chain: `Hashing(parent_hash || subject)`.
///
/// Bias: the block author knows the parent hash one block ahead and can choose not to
/// author (or reorder extrinsics to change the challenge id) to re-roll a draw — on a
/// single-author dev chain it fully controls the draw. Production runtimes plug an
/// unbiasable source into `Config::Randomness` instead: BABE's VRF output
/// (`pallet_babe::RandomnessFromOneEpochAgo`, fixed an epoch before it is used) or a
/// drand beacon verified on chain; the committee's own coin flip then only has to fix
/// the audit schedule, never who is on the committee.
#[derive(Debug)]
pub struct ParentHashRandomness<T>(core::marker::PhantomData<T>);

impl<T: frame_system::Config> Randomness<T::Hash, BlockNumberFor<T>> for ParentHashRandomness<T> {
    fn random(subject: &[u8]) -> (T::Hash, BlockNumberFor<T>) {
        let parent = frame_system::Pallet::<T>::parent_hash();
        let mut input = alloc::vec::Vec::with_capacity(32 + subject.len());
        input.extend_from_slice(parent.as_ref());
        input.extend_from_slice(subject);
        let now = frame_system::Pallet::<T>::block_number();
        (
            <T::Hashing as frame::traits::Hash>::hash(&input),
            now.saturating_sub(One::one()),
        )
    }
}

#[frame::pallet]
#[allow(missing_debug_implementations)] // storage and call types generated by the macro
pub mod pallet {
    use super::*;
    use frame::deps::frame_support::PalletId;
    use frame::token::fungible;

    /// Balance type of the currency.
    pub type BalanceOf<T> = <<T as Config>::Currency as fungible::Inspect<
        <T as frame_system::Config>::AccountId,
    >>::Balance;
    /// A stored participant.
    pub type ParticipantOf<T> = Participant<BalanceOf<T>, BlockNumberFor<T>>;
    /// A stored feed.
    pub type FeedOf<T> = Feed<<T as frame_system::Config>::AccountId, BalanceOf<T>>;
    /// A stored contract.
    pub type ContractOf<T> = Contract<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
    /// A stored challenge.
    pub type ChallengeOf<T> =
        Challenge<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;
    /// A stored history line.
    pub type RecordOf<T> = VerdictRecord<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>;
    /// A bounded history.
    pub type HistoryOf<T> = BoundedVec<RecordOf<T>, ConstU32<MAX_HISTORY>>;
    /// A stored job.
    pub type JobOf<T> =
        Job<<T as frame_system::Config>::AccountId, BalanceOf<T>, BlockNumberFor<T>>;

    #[pallet::pallet]
    pub struct Pallet<T>(_);

    /// Configuration. Every amount and duration is a constant in the metadata.
    #[pallet::config]
    pub trait Config: frame_system::Config<RuntimeEvent: From<Event<Self>>> {
        /// Stakes, escrow, rewards and penalties. Funds are held by the pallet account.
        type Currency: fungible::Mutate<Self::AccountId>;
        /// Source of committee and hoster draws (see [`ParentHashRandomness`]).
        type Randomness: Randomness<Self::Hash, BlockNumberFor<Self>>;
        /// Weights of the extrinsics.
        type WeightInfo: WeightInfo;
        /// Id of the pallet account that holds stakes and escrow.
        #[pallet::constant]
        type PalletId: Get<PalletId>;
        /// Minimum bond of a hoster.
        #[pallet::constant]
        type MinHosterStake: Get<BalanceOf<Self>>;
        /// Minimum bond of an attestor.
        #[pallet::constant]
        type MinAttestorStake: Get<BalanceOf<Self>>;
        /// Blocks between `unregister` and `withdraw_unbonded`.
        #[pallet::constant]
        type UnbondingPeriod: Get<BlockNumberFor<Self>>;
        /// Blocks a hoster has to confirm an assignment.
        #[pallet::constant]
        type ConfirmWindow: Get<BlockNumberFor<Self>>;
        /// Mean blocks between two challenges of a contract (one payment period).
        #[pallet::constant]
        type ChallengePeriod: Get<BlockNumberFor<Self>>;
        /// A contract's next challenge starts `ChallengePeriod ± ChallengeJitter` blocks
        /// after the last one, uniformly, at a block nobody knows before its randomness
        /// (`< ChallengePeriod`; 0: exactly every period).
        #[pallet::constant]
        type ChallengeJitter: Get<BlockNumberFor<Self>>;
        /// Blocks from a challenge's start to its end (the audit window).
        #[pallet::constant]
        type ChallengeDuration: Get<BlockNumberFor<Self>>;
        /// The chain's block time in milliseconds (what its block author targets).
        /// Challenge windows are given in blocks; attestors read this to schedule them
        /// in milliseconds, so the whole committee uses one value (DESIGN §16.3).
        #[pallet::constant]
        type BlockMs: Get<u64>;
        /// Blocks every audit samples (at most the feed's length): attestors read it, and
        /// a conclusive report that sampled another number of blocks is refused.
        #[pallet::constant]
        type AuditSamples: Get<u32>;
        /// Most blocks a published feed may have: hosters fetch and store every block
        /// of a feed they are assigned, so the chain refuses what no hoster should take.
        #[pallet::constant]
        type MaxFeedLength: Get<u64>;
        /// Most bytes (the signed tree's total size) a published feed may have.
        #[pallet::constant]
        type MaxFeedBytes: Get<u64>;
        /// Blocks after `end` in which reports (and reveals) are accepted.
        #[pallet::constant]
        type ReportWindow: Get<BlockNumberFor<Self>>;
        /// Blocks after the report deadline in which fraud proofs are accepted.
        #[pallet::constant]
        type FraudWindow: Get<BlockNumberFor<Self>>;
        /// Committee size X (`MinAttestors ≤ X ≤ MAX_COMMITTEE`).
        #[pallet::constant]
        type AttestorsPerChallenge: Get<u32>;
        /// Fewest attestors a challenge is scheduled with (else skipped for a period).
        #[pallet::constant]
        type MinAttestors: Get<u32>;
        /// Fewest reports for a verdict (else inconclusive).
        #[pallet::constant]
        type MinReports: Get<u32>;
        /// Paid to each attestor whose report is not an outlier.
        #[pallet::constant]
        type AttestorReward: Get<BalanceOf<Self>>;
        /// Taken from an attestor that did not report.
        #[pallet::constant]
        type MissedReportPenalty: Get<BalanceOf<Self>>;
        /// Taken from a member whose withholding accusation stands.
        #[pallet::constant]
        type WithholdingPenalty: Get<BalanceOf<Self>>;
        /// Consecutive failed challenges that suspend a hoster (K).
        #[pallet::constant]
        type SuspendAfterFailures: Get<u32>;
        /// Consecutive failed challenges that slash and replace a hoster.
        #[pallet::constant]
        type SlashAfterFailures: Get<u32>;
        /// Share of a hoster's stake slashed at `SlashAfterFailures`.
        #[pallet::constant]
        type FailureSlash: Get<Perbill>;
        /// Share of an offender's stake slashed on a verified fraud proof.
        #[pallet::constant]
        type FraudSlash: Get<Perbill>;
        /// Share of a fraud slash paid to the proof's submitter (the rest is burned).
        #[pallet::constant]
        type FraudReward: Get<Perbill>;
        /// A report deviating more than this percent from the median is an outlier.
        #[pallet::constant]
        type OutlierTolerancePercent: Get<u32>;
        /// Most registered hosters (bounds every hoster draw).
        #[pallet::constant]
        type MaxHosters: Get<u32>;
        /// Most registered attestors (bounds every committee draw).
        #[pallet::constant]
        type MaxAttestors: Get<u32>;
        /// Deposit per byte of an uploaded module (held while it is stored).
        #[pallet::constant]
        type ModuleByteDeposit: Get<BalanceOf<Self>>;
        /// Largest fuel cap of one call: bounds the chain's re-run of a disputed call.
        #[pallet::constant]
        type MaxFuelPerCall: Get<u64>;
        /// Most jobs not yet settled or cancelled.
        #[pallet::constant]
        type MaxJobs: Get<u32>;
        /// Share of a job's pay for the work done that goes to the executor; the rest
        /// is the monitors' share (DESIGN §18.6).
        #[pallet::constant]
        type ExecutorShare: Get<Perbill>;
        /// Calls each monitor of a job checks (≤ `datdot_exec::monitor::MAX_SAMPLES`).
        #[pallet::constant]
        type MonitorSamples: Get<u32>;
    }

    /// Set in genesis only (the dev chain draws it at random at every start), so that a
    /// reset dev chain has a new chain identity (chopsticks gives every dev chain the
    /// same genesis hash, so the salt is what tells them apart).
    #[pallet::storage]
    pub type ChainSalt<T: Config> = StorageValue<_, [u8; 32], ValueQuery>;

    /// Registered hosters and attestors.
    #[pallet::storage]
    pub type Participants<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, ParticipantOf<T>>;

    /// Protocol signing key → its account (keys are unique).
    #[pallet::storage]
    pub type KeyOwner<T: Config> = StorageMap<_, Blake2_128Concat, [u8; 32], T::AccountId>;

    /// Noise key in its X25519 form (`datdot_protocol::identity::x25519_of`) → its
    /// account: unique in the form connections authenticate with, so nobody can register
    /// another's key, its negation or another encoding of it.
    #[pallet::storage]
    pub type NoiseKeyOwner<T: Config> = StorageMap<_, Blake2_128Concat, [u8; 32], T::AccountId>;

    /// Hosters not unbonding (active or suspended), in registration order.
    #[pallet::storage]
    pub type Hosters<T: Config> =
        StorageValue<_, BoundedVec<T::AccountId, T::MaxHosters>, ValueQuery>;

    /// Attestors not unbonding (active or suspended), in registration order.
    #[pallet::storage]
    pub type Attestors<T: Config> =
        StorageValue<_, BoundedVec<T::AccountId, T::MaxAttestors>, ValueQuery>;

    /// Published feeds with running plans.
    #[pallet::storage]
    pub type Feeds<T: Config> = StorageMap<_, Twox64Concat, FeedId, FeedOf<T>>;

    /// Hosting contracts of running plans.
    #[pallet::storage]
    pub type Contracts<T: Config> = StorageMap<_, Twox64Concat, ContractId, ContractOf<T>>;

    /// Challenges until their fraud window closes.
    #[pallet::storage]
    pub type Challenges<T: Config> = StorageMap<_, Twox64Concat, ChallengeId, ChallengeOf<T>>;

    /// Hosters convicted of bad data, per feed, until the block given (conviction +
    /// `FraudWindow`): within it no further bad-data proof for that hoster and feed is
    /// accepted, whichever stored challenge it is submitted to. Written only by a
    /// conviction (which costs the offender `FraudSlash` of its stake).
    #[pallet::storage]
    pub type FeedConvictions<T: Config> = StorageDoubleMap<
        _,
        Blake2_128Concat,
        T::AccountId,
        Twox64Concat,
        FeedId,
        BlockNumberFor<T>,
    >;

    /// Work for `on_initialize`: block → page → up to `MAX_TASKS_PER_BLOCK` tasks. A full
    /// page opens the next one; nothing scheduled is dropped.
    #[pallet::storage]
    pub type Agenda<T: Config> = StorageDoubleMap<
        _,
        Twox64Concat,
        BlockNumberFor<T>,
        Twox64Concat,
        u32,
        BoundedVec<AgendaTask, ConstU32<MAX_TASKS_PER_BLOCK>>,
        ValueQuery,
    >;

    /// Number of agenda pages per block (removed once the block's pages have run).
    #[pallet::storage]
    pub type AgendaPages<T: Config> =
        StorageMap<_, Twox64Concat, BlockNumberFor<T>, u32, ValueQuery>;

    /// The next agenda (block, page) to run. It equals the current block's first page
    /// unless more work came due than `on_initialize` runs in a block (its weight share,
    /// `AGENDA_WEIGHT_PERCENT`); then it trails, and the work waits in order.
    #[pallet::storage]
    pub type AgendaCursor<T: Config> = StorageValue<_, (BlockNumberFor<T>, u32), ValueQuery>;

    /// Last `MAX_HISTORY` verdicts per hoster (removed when it withdraws).
    #[pallet::storage]
    pub type HosterHistory<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, HistoryOf<T>, ValueQuery>;

    /// Last `MAX_HISTORY` verdicts per feed (removed when its plan is over).
    #[pallet::storage]
    pub type FeedHistory<T: Config> = StorageMap<_, Twox64Concat, FeedId, HistoryOf<T>, ValueQuery>;

    /// Uploaded modules' facts.
    #[pallet::storage]
    pub type Modules<T: Config> = StorageMap<
        _,
        Identity,
        ModuleHash,
        ModuleInfo<<T as frame_system::Config>::AccountId, BalanceOf<T>>,
    >;

    /// Uploaded modules' bytes (validated by `datdot_exec::Program::new`).
    #[pallet::storage]
    pub type ModuleCode<T: Config> =
        StorageMap<_, Identity, ModuleHash, BoundedVec<u8, ConstU32<{ jobs::MAX_MODULE_BYTES }>>>;

    /// Hosters that offer to execute jobs over the feeds they host.
    #[pallet::storage]
    pub type ExecOffers<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, ()>;

    /// Jobs until settled, cancelled or proven fraudulent.
    #[pallet::storage]
    pub type Jobs<T: Config> = StorageMap<_, Twox64Concat, JobId, JobOf<T>>;

    /// Jobs in [`Jobs`] (≤ `MaxJobs`).
    #[pallet::storage]
    pub type ActiveJobs<T> = StorageValue<_, u32, ValueQuery>;

    /// Per executor, its jobs assigned or running (it cannot unregister while > 0).
    #[pallet::storage]
    pub type ExecutorJobs<T: Config> =
        StorageMap<_, Blake2_128Concat, T::AccountId, u32, ValueQuery>;

    /// Next job id.
    #[pallet::storage]
    pub type NextJobId<T> = StorageValue<_, JobId, ValueQuery>;

    /// Next feed id.
    #[pallet::storage]
    pub type NextFeedId<T> = StorageValue<_, FeedId, ValueQuery>;
    /// Next contract id.
    #[pallet::storage]
    pub type NextContractId<T> = StorageValue<_, ContractId, ValueQuery>;
    /// Next challenge id.
    #[pallet::storage]
    pub type NextChallengeId<T> = StorageValue<_, ChallengeId, ValueQuery>;

    /// Why a stake was cut.
    #[derive(
        Encode, Decode, DecodeWithMemTracking, Clone, Copy, PartialEq, Eq, Debug, TypeInfo,
    )]
    pub enum PenaltyReason {
        /// An attestor did not report.
        MissedReport,
        /// A coin-flip withholding accusation stood.
        Withholding,
        /// A hoster reached `SlashAfterFailures` failed challenges.
        Failures,
        /// A verified fraud proof.
        Fraud,
    }

    #[pallet::event]
    #[pallet::generate_deposit(pub(super) fn deposit_event)]
    pub enum Event<T: Config> {
        /// A hoster or attestor registered.
        Registered {
            who: T::AccountId,
            role: Role,
            stake: BalanceOf<T>,
        },
        /// A participant changed its endpoint.
        Updated { who: T::AccountId },
        /// A participant unregistered; its stake is free from `until`.
        Unregistered {
            who: T::AccountId,
            until: BlockNumberFor<T>,
        },
        /// A stake was paid back.
        Withdrawn {
            who: T::AccountId,
            amount: BalanceOf<T>,
        },
        /// A feed was published with a plan.
        Published {
            feed: FeedId,
            publisher: T::AccountId,
            key: [u8; 32],
            length: u64,
            escrow: BalanceOf<T>,
        },
        /// A hoster was assigned a feed; it must confirm by `confirm_by`.
        HosterAssigned {
            feed: FeedId,
            contract: ContractId,
            hoster: T::AccountId,
            confirm_by: BlockNumberFor<T>,
        },
        /// A hoster confirmed it hosts the feed.
        HostingConfirmed { contract: ContractId },
        /// A contract ended (periods used up, plan ended, or its hoster was replaced).
        ContractEnded { contract: ContractId },
        /// A hoster lost a contract; `replacement` is the new contract, if a hoster was found.
        HosterReplaced {
            feed: FeedId,
            contract: ContractId,
            hoster: T::AccountId,
            replacement: Option<ContractId>,
        },
        /// A plan is over; the unused escrow went back to the publisher.
        PlanEnded { feed: FeedId, refund: BalanceOf<T> },
        /// A challenge was scheduled.
        ChallengeScheduled {
            challenge: ChallengeId,
            contract: ContractId,
            feed: FeedId,
            hoster: T::AccountId,
            attestors: BoundedVec<T::AccountId, ConstU32<MAX_COMMITTEE>>,
            start: BlockNumberFor<T>,
            end: BlockNumberFor<T>,
            report_deadline: BlockNumberFor<T>,
        },
        /// Too few eligible attestors: the contract's challenge moves a period on.
        ChallengeSkipped { contract: ContractId, eligible: u32 },
        /// An attestor's report was accepted.
        ReportSubmitted {
            challenge: ChallengeId,
            attestor: T::AccountId,
        },
        /// A challenge was judged.
        ChallengeSettled {
            challenge: ChallengeId,
            verdict: Verdict,
            median: Option<MetricSummary>,
            reports: u8,
            outliers: u8,
        },
        /// A report deviated from the median.
        OutlierFlagged {
            challenge: ChallengeId,
            attestor: T::AccountId,
        },
        /// A payment out of escrow or a fraud reward.
        Rewarded {
            who: T::AccountId,
            amount: BalanceOf<T>,
        },
        /// A stake was cut.
        Penalised {
            who: T::AccountId,
            amount: BalanceOf<T>,
            reason: PenaltyReason,
        },
        /// A participant is no longer drawn or assigned.
        Suspended { who: T::AccountId },
        /// A suspended hoster passed a challenge and is drawn again.
        Reinstated { who: T::AccountId },
        /// A fraud proof was verified and punished.
        FraudProven {
            challenge: ChallengeId,
            offender: T::AccountId,
            submitter: T::AccountId,
            slashed: BalanceOf<T>,
            reward: BalanceOf<T>,
        },
        /// A committee member published its coin-flip reveal.
        RevealPublished {
            challenge: ChallengeId,
            who: T::AccountId,
            round: u32,
        },
        /// A module was uploaded.
        ModuleUploaded {
            module: ModuleHash,
            owner: T::AccountId,
            len: u32,
        },
        /// A hoster started (`offer`) or stopped offering execution.
        ExecutionOffered { who: T::AccountId, offer: bool },
        /// A job was submitted and its executor drawn; it must accept by `accept_by`.
        JobSubmitted {
            job: JobId,
            sponsor: T::AccountId,
            feed: FeedId,
            module: ModuleHash,
            executor: T::AccountId,
            accept_by: BlockNumberFor<T>,
        },
        /// The executor accepted and registered its output feed.
        JobAccepted { job: JobId, output_key: [u8; 32] },
        /// The executor committed its output feed's root.
        OutputCommitted {
            job: JobId,
            length: u64,
            fuel_used: u64,
        },
        /// The executor's final commit: call fraud proofs are accepted until `settle_at`.
        JobEnded {
            job: JobId,
            end: JobEnd,
            calls: u64,
            settle_at: BlockNumberFor<T>,
        },
        /// A job was paid out.
        JobSettled {
            job: JobId,
            end: JobEnd,
            calls: u64,
            executor_paid: BalanceOf<T>,
            refund: BalanceOf<T>,
        },
        /// A job's monitoring round was drawn (they report by `report_deadline`).
        MonitorsDrawn {
            job: JobId,
            monitors: BoundedVec<T::AccountId, ConstU32<MAX_COMMITTEE>>,
            report_deadline: BlockNumberFor<T>,
        },
        /// A monitor's report was accepted: how many sampled calls it found right, wrong
        /// and unavailable.
        MonitorReported {
            job: JobId,
            monitor: T::AccountId,
            agrees: u32,
            mismatches: u32,
            unavailable: u32,
        },
        /// A job whose executor never accepted was cancelled.
        JobCancelled { job: JobId, refund: BalanceOf<T> },
        /// A call fraud proof was verified: the executor is slashed, the sponsor refunded.
        CallFraudProven {
            job: JobId,
            index: u64,
            offender: T::AccountId,
            submitter: T::AccountId,
            slashed: BalanceOf<T>,
            reward: BalanceOf<T>,
            refund: BalanceOf<T>,
        },
    }

    #[pallet::error]
    pub enum Error<T> {
        /// The account is already registered.
        AlreadyRegistered,
        /// The account is not registered.
        NotRegistered,
        /// The stake is below the role's minimum.
        StakeTooLow,
        /// Another account registered this signing key.
        SigningKeyInUse,
        /// The signing key is not a valid ed25519 point.
        InvalidSigningKey,
        /// The participant list for this role is full.
        TooManyParticipants,
        /// A hoster must accept at least one feed.
        NoCapacity,
        /// A hoster cannot unregister while assigned feeds.
        StillHosting,
        /// `withdraw_unbonded` before `unregister`.
        NotUnbonding,
        /// The unbonding period has not passed.
        StillUnbonding,
        /// Unbonding participants cannot do this.
        Unbonding,
        /// Replicas must be 1..=MAX_REPLICAS and periods ≥ 1.
        InvalidPlan,
        /// The escrow does not fit the balance type.
        EscrowOverflow,
        /// The feed key is not a valid ed25519 point.
        InvalidFeedKey,
        /// The signed root bytes do not decode.
        MalformedSignedRoot,
        /// The signed root's roots or signature do not verify against the feed key.
        RootNotSigned,
        /// Fewer eligible hosters than replicas.
        NotEnoughHosters,
        /// No such feed.
        NoSuchFeed,
        /// Only the publisher may do this.
        NotPublisher,
        /// The plan is already ending.
        PlanEnding,
        /// No such contract.
        NoSuchContract,
        /// Only the contract's hoster may do this.
        NotContractHoster,
        /// The contract is not waiting for confirmation.
        NotPending,
        /// No such challenge (or its fraud window closed).
        NoSuchChallenge,
        /// The sender is not on the challenge's committee.
        NotInCommittee,
        /// Reports are accepted from the challenge's end on.
        TooEarly,
        /// The report deadline (for a reveal: the answer deadline) passed.
        TooLate,
        /// This attestor already reported.
        AlreadyReported,
        /// The challenge is already settled.
        AlreadySettled,
        /// The report bytes do not decode.
        MalformedReport,
        /// The report names another challenge.
        WrongChallenge,
        /// The report or reveal is not signed with the sender's registered key.
        WrongSigningKey,
        /// The report names another hoster key.
        WrongHoster,
        /// The report names another feed.
        WrongFeed,
        /// The report's signature, receipts or metrics do not verify.
        InvalidReport,
        /// The fraud proof bytes do not decode.
        MalformedFraudProof,
        /// The fraud proof does not verify.
        InvalidFraudProof,
        /// A bad-data proof against another tree than the one published for the feed
        /// (the feed's author signed a fork: not the hoster's fault).
        NotThePublishedTree,
        /// The proof or reveal belongs to another challenge's coin flip.
        WrongSession,
        /// The offender is not this challenge's committee member or hoster.
        OffenderNotInChallenge,
        /// This offender was already punished for this challenge.
        AlreadyPunished,
        /// An offender cannot claim the reward for its own fraud.
        SelfAccusation,
        /// The reveal bytes do not decode to a coin-flip reveal.
        MalformedReveal,
        /// The reveal's signature does not verify.
        InvalidReveal,
        /// An endpoint (registration, update or feed source) has an empty address.
        NoAddress,
        /// The block a new plan's confirmation deadlines fall in already holds all the
        /// agenda work a block runs, or due work is waiting: publish again later.
        AgendaFull,
        /// The Noise key is not an ed25519 curve point or has small order.
        InvalidNoiseKey,
        /// Another participant registered this Noise key (in its X25519 form: the key,
        /// its negation or another encoding of it).
        NoiseKeyInUse,
        /// The report's coin-flip transcript does not verify, is of another challenge or
        /// round, has an entry signed outside the committee or lacks the reporter, or the
        /// report's own secret does not open the reporter's reveal.
        BadTranscript,
        /// The report's sampled blocks are not the sample its `R` and own secret give.
        NotTheScheduledSample,
        /// No withholding accusation against the sender for that round is on record.
        NotAccused,
        /// The reveal does not hash to the commit the accusation carries.
        RevealDoesNotOpenTheCommit,
        /// The report counts more blocks as verified than its receipts (one connection's,
        /// in sequence) cover.
        UncoveredBlocks,
        /// The report or receipt was signed for another chain (or for this dev chain
        /// before a reset).
        WrongChain,
        /// The signed tree has more blocks than `MaxFeedLength` or more bytes than
        /// `MaxFeedBytes`.
        FeedTooLarge,
        /// The module breaks the module rules (`datdot_exec::Program::new`: imports,
        /// floats, start function, memory, tables, `datdot_alloc`, size).
        InvalidModule,
        /// This module is already uploaded (jobs can use it as it is).
        ModuleExists,
        /// No module with this hash.
        NoSuchModule,
        /// The entry is not a valid name exported as `(i32, i32) -> i64`.
        InvalidEntry,
        /// Fuel caps: 1 ≤ per call ≤ `MaxFuelPerCall`, per call ≤ total (and a commit's
        /// fuel ≤ total).
        InvalidFuel,
        /// A job's payment must be more than zero.
        ZeroPayment,
        /// `MaxJobs` jobs are open: submit again later.
        TooManyJobs,
        /// The input feed has no blocks.
        EmptyInput,
        /// None of the feed's active hosters (other than the sponsor) offers execution.
        NoExecutor,
        /// Only hosters execute jobs.
        NotAHoster,
        /// No such job.
        NoSuchJob,
        /// Only the job's executor may do this.
        NotTheExecutor,
        /// Only the job's sponsor may do this.
        NotSponsor,
        /// The job is not waiting for its executor to accept.
        NotAssigned,
        /// The job is not running.
        NotRunning,
        /// The job has not ended.
        NotEnded,
        /// A commit may not shrink the output feed, outgrow the input, or end `Done`
        /// before every call is logged (or `OutOfFuel` with none).
        BadOutputLength,
        /// The call fraud proof bytes do not decode.
        MalformedCallProof,
        /// The call fraud proof's tree proofs do not verify, or its blocks name
        /// different calls.
        InvalidCallProof,
        /// The record in the proof is not signed by the job's executor, or is of
        /// another chain or job.
        NotTheExecutorsRecord,
        /// The chain re-ran the call and the record is right.
        NoFraud,
        /// A hoster cannot unregister while it has jobs assigned or running.
        StillExecuting,
        /// The monitor report names another job.
        WrongJob,
        /// The monitor report checked another output root than the final commit's.
        WrongOutputRoot,
    }

    #[pallet::genesis_config]
    #[derive(frame::prelude::DefaultNoBound)]
    pub struct GenesisConfig<T: Config> {
        /// [`ChainSalt`]. The build also endows the pallet account with the existential
        /// deposit.
        pub salt: [u8; 32],
        #[serde(skip)]
        pub _config: core::marker::PhantomData<T>,
    }

    #[pallet::genesis_build]
    impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
        fn build(&self) {
            ChainSalt::<T>::put(self.salt);
            // The pallet account never goes below the existential deposit (all payouts
            // keep it alive), so tracked funds are never lost to dust removal.
            let ed = <T::Currency as fungible::Inspect<T::AccountId>>::minimum_balance();
            let _ = <T::Currency as fungible::Mutate<T::AccountId>>::mint_into(
                &Pallet::<T>::account(),
                ed,
            );
        }
    }

    #[pallet::hooks]
    impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
        fn on_initialize(now: BlockNumberFor<T>) -> Weight {
            Self::run_agenda(now)
        }

        fn integrity_test() {
            assert!(
                T::WeightInfo::task(T::MaxAttestors::get())
                    .saturating_add(T::DbWeight::get().reads_writes(
                        2 * u64::from(AGENDA_STEPS_PER_BLOCK) + 4,
                        2 * u64::from(AGENDA_STEPS_PER_BLOCK) + 2,
                    ))
                    .all_lte(Pallet::<T>::agenda_budget()),
                "the costliest agenda task (and a block's stepping) fits the agenda's weight share"
            );
            let x = T::AttestorsPerChallenge::get();
            assert!(
                T::FraudWindow::get() > T::ReportWindow::get(),
                "accusations are judged (ReportWindow after the deadline) before the challenge is pruned (FraudWindow after it)"
            );
            assert!(T::MinAttestors::get() >= 1, "MinAttestors ≥ 1");
            assert!(
                T::MinAttestors::get() <= x && x <= MAX_COMMITTEE,
                "MinAttestors ≤ AttestorsPerChallenge ≤ MAX_COMMITTEE"
            );
            assert!(
                T::MinReports::get() <= x,
                "MinReports ≤ AttestorsPerChallenge"
            );
            assert!(
                T::MonitorSamples::get() as usize <= datdot_exec::monitor::MAX_SAMPLES,
                "MonitorSamples ≤ MAX_SAMPLES (the masks of a monitor's result are 64 bits)"
            );
            assert!(
                T::ChallengePeriod::get().saturating_sub(T::ChallengeJitter::get())
                    > T::ChallengeDuration::get().saturating_add(T::ReportWindow::get()),
                "a challenge settles before the next one starts (ChallengeJitter included)"
            );
            assert!(
                T::UnbondingPeriod::get()
                    > T::ChallengeDuration::get()
                        .saturating_add(T::ReportWindow::get())
                        .saturating_add(T::FraudWindow::get()),
                "an unbonding participant can still be penalised for its last challenge"
            );
        }
    }

    #[pallet::call]
    impl<T: Config> Pallet<T> {
        /// Register as a hoster (with `capacity` feeds) or attestor, bonding `stake`.
        #[pallet::call_index(0)]
        #[pallet::weight(T::WeightInfo::register())]
        pub fn register(
            origin: OriginFor<T>,
            role: Role,
            stake: BalanceOf<T>,
            endpoint: Endpoint,
            capacity: u32,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_register(who, role, stake, endpoint, capacity)
        }

        /// Change the network address, Noise key or signing key. Challenges already
        /// scheduled keep the key they were drawn with.
        #[pallet::call_index(1)]
        #[pallet::weight(T::WeightInfo::update())]
        pub fn update(origin: OriginFor<T>, endpoint: Endpoint) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_update(who, endpoint)
        }

        /// Stop being drawn or assigned; the stake is free after `UnbondingPeriod`.
        #[pallet::call_index(2)]
        #[pallet::weight(T::WeightInfo::unregister())]
        pub fn unregister(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_unregister(who)
        }

        /// Take the stake back after unbonding and forget the participant.
        #[pallet::call_index(3)]
        #[pallet::weight(T::WeightInfo::withdraw_unbonded())]
        pub fn withdraw_unbonded(origin: OriginFor<T>) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_withdraw(who)
        }

        /// Publish a feed: `key` is the Hypercore public key, `signed_root` our wire
        /// encoding of `datdot_protocol::tree::SignedTreeRoot` (verified against `key`),
        /// `source` where the assigned hosters fetch it from (the publisher's node or any
        /// peer holding it: address, Noise key they pin, its signing key; checked like a
        /// registration's endpoint). Escrows `replicas · periods · (price + X ·
        /// AttestorReward)` and assigns hosters.
        #[pallet::call_index(4)]
        #[pallet::weight(T::WeightInfo::publish(
            (signed_root.len() + source.addr.len()) as u32,
            T::MaxHosters::get()
        ))]
        pub fn publish(
            origin: OriginFor<T>,
            key: [u8; 32],
            signed_root: BoundedVec<u8, ConstU32<MAX_ROOT_BYTES>>,
            plan: PlanTerms<BalanceOf<T>>,
            source: Endpoint,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_publish(who, key, &signed_root, plan, source)
        }

        /// The assigned hoster confirms it holds the feed; challenges start next block.
        #[pallet::call_index(5)]
        #[pallet::weight(T::WeightInfo::confirm_hosting())]
        pub fn confirm_hosting(origin: OriginFor<T>, contract: ContractId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_confirm(who, contract)
        }

        /// The publisher ends its plan: contracts end now, open challenges still settle,
        /// the unused escrow is refunded when the last one has.
        #[pallet::call_index(6)]
        #[pallet::weight(T::WeightInfo::end_plan())]
        pub fn end_plan(origin: OriginFor<T>, feed: FeedId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_end_plan(who, feed)
        }

        /// Submit a report (our wire encoding of `datdot_protocol::report::Report`),
        /// in `[end, report_deadline]`, once per committee member. Charged for a
        /// settlement; every report but the committee's last refunds it.
        #[pallet::call_index(7)]
        #[pallet::weight(T::WeightInfo::submit_report(report.len() as u32))]
        pub fn submit_report(
            origin: OriginFor<T>,
            challenge: ChallengeId,
            report: BoundedVec<u8, ConstU32<MAX_REPORT_BYTES>>,
        ) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let settled = Self::do_submit_report(who, challenge, &report)?;
            let declared = T::WeightInfo::submit_report(report.len() as u32);
            Ok(Some(if settled {
                declared
            } else {
                declared.saturating_sub(T::WeightInfo::settlement())
            })
            .into())
        }

        /// Submit a fraud proof (our wire encoding of `datdot_protocol::fraud::FraudProof`)
        /// against a member or the hoster of `challenge`, until its fraud window closes.
        #[pallet::call_index(8)]
        #[pallet::weight(T::WeightInfo::submit_fraud_proof(proof.len() as u32, T::MaxHosters::get()))]
        pub fn submit_fraud_proof(
            origin: OriginFor<T>,
            challenge: ChallengeId,
            proof: BoundedVec<u8, ConstU32<MAX_FRAUD_PROOF_BYTES>>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_fraud_proof(who, challenge, &proof)
        }

        /// Publish one's signed coin-flip reveal (a `datdot_protocol::coinflip::Msg::Reveal`
        /// in our wire encoding) until one report window after the report deadline,
        /// clearing the withholding accusation for that round if it opens its commit.
        #[pallet::call_index(9)]
        #[pallet::weight(T::WeightInfo::publish_reveal())]
        pub fn publish_reveal(
            origin: OriginFor<T>,
            challenge: ChallengeId,
            reveal: BoundedVec<u8, ConstU32<MAX_REVEAL_BYTES>>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_publish_reveal(who, challenge, &reveal)
        }

        /// Upload a job module (checked by `datdot_exec::Program::new`), holding
        /// `ModuleByteDeposit` per byte. Its id is `datdot_exec::module_hash`.
        #[pallet::call_index(10)]
        #[pallet::weight(T::WeightInfo::upload_module(code.len() as u32))]
        pub fn upload_module(
            origin: OriginFor<T>,
            code: BoundedVec<u8, ConstU32<{ jobs::MAX_MODULE_BYTES }>>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_upload_module(who, &code)
        }

        /// A hoster starts or stops offering to execute jobs over the feeds it hosts.
        #[pallet::call_index(11)]
        #[pallet::weight(T::WeightInfo::offer_execution())]
        pub fn offer_execution(origin: OriginFor<T>, offer: bool) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_offer_execution(who, offer)
        }

        /// Submit a job: `entry(block)` of `module` once per block of `feed`, each call
        /// with at most `fuel_per_call`, the job with at most `fuel_total`; `payment`
        /// goes into escrow and an executor is drawn among the feed's hosters that offer
        /// execution.
        #[pallet::call_index(12)]
        #[pallet::weight(T::WeightInfo::submit_job(jobs::MAX_MODULE_BYTES, 2 * MAX_REPLICAS))]
        pub fn submit_job(
            origin: OriginFor<T>,
            module: ModuleHash,
            feed: FeedId,
            entry: BoundedVec<u8, ConstU32<{ jobs::MAX_ENTRY_NAME }>>,
            fuel_per_call: u64,
            fuel_total: u64,
            payment: BalanceOf<T>,
        ) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let len = Modules::<T>::get(module).map_or(0, |m| m.len);
            Self::do_submit_job(
                who,
                module,
                feed,
                &entry,
                fuel_per_call,
                fuel_total,
                payment,
            )?;
            Ok(Some(T::WeightInfo::submit_job(len, 2 * MAX_REPLICAS)).into())
        }

        /// The drawn executor accepts the job and registers its output feed's key.
        #[pallet::call_index(13)]
        #[pallet::weight(T::WeightInfo::accept_job())]
        pub fn accept_job(
            origin: OriginFor<T>,
            job: JobId,
            output_key: [u8; 32],
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_accept_job(who, job, output_key)
        }

        /// The executor commits its output feed's signed root (our wire encoding of
        /// `datdot_protocol::tree::SignedTreeRoot`) and the fuel its calls used;
        /// `end` marks the final commit.
        #[pallet::call_index(14)]
        #[pallet::weight(T::WeightInfo::commit_output())]
        pub fn commit_output(
            origin: OriginFor<T>,
            job: JobId,
            signed_root: BoundedVec<u8, ConstU32<MAX_ROOT_BYTES>>,
            fuel_used: u64,
            end: Option<JobEnd>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_commit_output(who, job, &signed_root, fuel_used, end)
        }

        /// Prove one call of a job wrong (our wire encoding of
        /// `datdot_exec::CallFraudProof`): the chain verifies both tree proofs and the
        /// record, re-runs the call with the job's fuel cap and compares. Charged for
        /// `MaxFuelPerCall`, refunded to the job's cap.
        #[pallet::call_index(15)]
        #[pallet::weight(T::WeightInfo::submit_call_proof(
            proof.len() as u32,
            jobs::MAX_MODULE_BYTES,
            T::MaxFuelPerCall::get()
        ))]
        pub fn submit_call_proof(
            origin: OriginFor<T>,
            job: JobId,
            proof: BoundedVec<u8, ConstU32<{ jobs::MAX_CALL_PROOF_BYTES }>>,
        ) -> DispatchResultWithPostInfo {
            let who = ensure_signed(origin)?;
            let len = Jobs::<T>::get(job)
                .and_then(|j| Modules::<T>::get(j.module))
                .map_or(0, |m| m.len);
            let fuel = Self::do_call_proof(who, job, &proof)?;
            Ok(Some(T::WeightInfo::submit_call_proof(
                proof.len() as u32,
                len,
                fuel,
            ))
            .into())
        }

        /// Pay out an ended job once its fraud window has passed (anyone may call).
        #[pallet::call_index(16)]
        #[pallet::weight(T::WeightInfo::settle_job())]
        pub fn settle_job(origin: OriginFor<T>, job: JobId) -> DispatchResult {
            ensure_signed(origin)?;
            Self::do_settle_job(job)
        }

        /// A monitor of the job's round files its report (our wire encoding of
        /// `datdot_exec::MonitorReport`): one check per call of its sample, until the
        /// round's report deadline.
        #[pallet::call_index(18)]
        #[pallet::weight(T::WeightInfo::submit_monitor_report())]
        pub fn submit_monitor_report(
            origin: OriginFor<T>,
            job: JobId,
            report: BoundedVec<u8, ConstU32<{ jobs::MAX_MONITOR_REPORT_BYTES }>>,
        ) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_monitor_report(who, job, &report)
        }

        /// The sponsor cancels a job its executor did not accept in time.
        #[pallet::call_index(17)]
        #[pallet::weight(T::WeightInfo::cancel_job())]
        pub fn cancel_job(origin: OriginFor<T>, job: JobId) -> DispatchResult {
            let who = ensure_signed(origin)?;
            Self::do_cancel_job(who, job)
        }
    }
}
