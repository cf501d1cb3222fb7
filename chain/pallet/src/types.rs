//! Storage and call types of the pallet. Everything stored is bounded (`MaxEncodedLen`).
//!
//! Protocol objects (reports, fraud proofs, signed tree roots, reveals) cross the
//! extrinsic boundary as bytes of the protocol's own wire codec and are decoded and
//! verified by `datdot-protocol`; only the small facts the chain keeps (metric medians,
//! verdicts, keys) are stored here in SCALE.

pub use datdot_protocol::metrics::{MetricSummary, Sla};
use datdot_protocol::metrics::{SlaClause, SlaVerdict};
use frame::prelude::*;

/// Id of a published feed (one plan per feed).
pub type FeedId = u64;
/// Id of a hosting contract (one hoster hosting one feed).
pub type ContractId = u64;
/// Id of a challenge (also names its coin-flip session, see [`crate::session_id`]).
pub type ChallengeId = u64;

/// Longest network address a participant may register (`host:port`, multiaddr, …).
pub const MAX_ADDR_LEN: u32 = 128;
/// Largest committee a challenge can have (`Config::AttestorsPerChallenge` ≤ this).
pub const MAX_COMMITTEE: u32 = 32;
/// Most replicas a plan may ask for.
pub const MAX_REPLICAS: u32 = 16;
/// Verdicts kept per hoster and per feed (oldest dropped first).
pub const MAX_HISTORY: u32 = 32;
/// Agenda tasks per page: a block's tasks are stored in pages of this many (any number of
/// pages; nothing scheduled is ever dropped).
pub const MAX_TASKS_PER_BLOCK: u32 = 64;
/// Share of a block's maximum weight `on_initialize` spends on agenda tasks, each priced
/// at `WeightInfo::task(attestors registered)`. Work due beyond it waits, in order, for
/// the next blocks.
pub const AGENDA_WEIGHT_PERCENT: u32 = 50;

/// The report size the challenge-start cap is computed for
/// ([`crate::Pallet::max_starts_per_block`]): a committee of 10's report is about 3 KiB
/// (its transcript's 10 signed commits of 164 B and 10 reveals, 32 sampled indices, a
/// receipt, the metrics); 4 KiB leaves a margin.
pub const TYPICAL_REPORT_BYTES: u32 = 4096;
/// The `OutlierTolerancePercent` of our runtime, the mock and the simulator: a report
/// more than 25 % from the committee's median is an outlier (one value, so the
/// simulator judges as the chain does).
pub const OUTLIER_TOLERANCE_PERCENT: u32 = 25;
/// Most agenda blocks `on_initialize` steps over in one block (each a read) while it
/// catches up on work that waited.
pub const AGENDA_STEPS_PER_BLOCK: u32 = 64;

/// What a participant registered as. One account has one role.
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
pub enum Role {
    /// Stores and serves feeds.
    Hoster,
    /// Audits hosters in challenge committees.
    Attestor,
}

/// Where a participant stands.
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
pub enum Status<BlockNumber> {
    /// Can be assigned feeds / drawn into committees.
    Active,
    /// Not drawn or assigned (fraud, K failed challenges, stake below the minimum).
    /// A suspended hoster keeps hosting its contracts and recovers with a passed challenge.
    Suspended,
    /// Unregistered; the stake can be withdrawn from block `until` on.
    Unbonding {
        /// First block at which `withdraw_unbonded` succeeds.
        until: BlockNumber,
    },
}

/// The keys and address a participant is reached and recognised by.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Endpoint {
    /// Network address peers dial.
    pub addr: BoundedVec<u8, ConstU32<MAX_ADDR_LEN>>,
    /// Noise static public key (X25519) its connections authenticate with.
    pub noise_key: [u8; 32],
    /// ed25519 protocol key that signs receipts, reports and coin-flip messages.
    pub signing_key: [u8; 32],
}

/// A registered hoster or attestor.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Participant<Balance, BlockNumber> {
    /// Hoster or attestor.
    pub role: Role,
    /// Bonded stake held by the pallet account.
    pub stake: Balance,
    /// How it is reached.
    pub endpoint: Endpoint,
    /// Hosters: how many feeds it accepts. Attestors: 0.
    pub capacity: u32,
    /// Hosters: contracts currently assigned (pending or active).
    pub hosting: u32,
    /// Reputation in `0..=MAX_SCORE` (starts at `INITIAL_SCORE`).
    pub score: u32,
    /// Consecutive failed challenges (hosters).
    pub failures: u32,
    /// Active, suspended or unbonding.
    pub status: Status<BlockNumber>,
}

/// What a publisher buys.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct PlanTerms<Balance> {
    /// Number of hosters (1..=MAX_REPLICAS).
    pub replicas: u32,
    /// Service level the hosters are judged against.
    pub sla: Sla,
    /// Paid to a hoster for each passed challenge period.
    pub price_per_period: Balance,
    /// Judged periods per replica before the plan ends.
    pub periods: u32,
}

/// A published feed and its plan.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Feed<AccountId, Balance> {
    /// Who published and pays.
    pub publisher: AccountId,
    /// The Hypercore feed's ed25519 public key.
    pub key: [u8; 32],
    /// Length the publisher's signed root covers.
    pub length: u64,
    /// Tree hash of that signed root (what the feed key signed).
    pub tree_hash: [u8; 32],
    /// The plan.
    pub plan: PlanTerms<Balance>,
    /// Where assigned hosters fetch the feed (besides the feed's other hosters).
    pub source: Endpoint,
    /// Escrow not yet committed to a challenge.
    pub escrow: Balance,
    /// Contracts serving this feed (current and ended ones not yet cleaned up).
    pub contracts: BoundedVec<ContractId, ConstU32<{ 2 * MAX_REPLICAS }>>,
    /// Set by `end_plan`: no new challenges; cleaned up when the last one settles.
    pub ending: bool,
}

/// State of a hosting contract.
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
pub enum ContractState<BlockNumber> {
    /// Assigned; the hoster must `confirm_hosting` before `deadline`.
    Pending {
        /// Last block to confirm.
        deadline: BlockNumber,
    },
    /// Hosting; challenged every `ChallengePeriod` blocks.
    Active,
    /// Over (periods used up, plan ended, hoster replaced).
    Ended,
}

/// One hoster hosting one feed.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Contract<AccountId, BlockNumber> {
    /// The feed.
    pub feed: FeedId,
    /// The hoster.
    pub hoster: AccountId,
    /// Pending, active or ended.
    pub state: ContractState<BlockNumber>,
    /// Judged periods left.
    pub periods_left: u32,
    /// The challenge in flight, if any (at most one: the period outlasts a challenge).
    pub open_challenge: Option<ChallengeId>,
}

/// The outcome of a settled challenge.
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
pub enum Verdict {
    /// The median met every SLA clause.
    Pass,
    /// The median missed the clauses in `failed` (bit 1 throughput, 2 latency, 4 availability).
    Fail {
        /// Bitmask of missed clauses.
        failed: u8,
    },
    /// Fewer reports than `MinReports`: nobody is judged, the period is not used up.
    Inconclusive,
}

impl Verdict {
    /// Turn the protocol's SLA verdict into the stored form.
    pub fn from_sla(v: SlaVerdict) -> Self {
        if v.passed() {
            return Verdict::Pass;
        }
        let failed = v.failed_clauses().fold(0u8, |acc, c| {
            acc | match c {
                SlaClause::Throughput => 1,
                SlaClause::Latency => 2,
                SlaClause::Availability => 4,
            }
        });
        Verdict::Fail { failed }
    }
}

/// One line of a hoster's or feed's history.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct VerdictRecord<AccountId, BlockNumber> {
    /// The challenge.
    pub challenge: ChallengeId,
    /// The feed.
    pub feed: FeedId,
    /// The hoster judged.
    pub hoster: AccountId,
    /// Block of settlement.
    pub at: BlockNumber,
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// Per-metric lower median of the reports (none when no report arrived).
    pub median: Option<MetricSummary>,
    /// Reports received.
    pub reports: u8,
    /// Reports flagged as outliers.
    pub outliers: u8,
}

/// A coin-flip withholding accusation collected from reports.
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
pub struct Accusation {
    /// Committee index of the accused.
    pub member: u8,
    /// Coin-flip round it is accused of withholding in.
    pub round: u32,
    /// Its signed commit for that round, as the first accusing report carried it: a
    /// published reveal clears the accusation only if it hashes to this.
    pub commit: [u8; 32],
    /// Reports accusing it.
    pub count: u8,
    /// The accused published its signed reveal for `round` on chain.
    pub cleared: bool,
}

/// A challenge: a committee auditing one hoster for one feed.
#[derive(
    Encode, Decode, DecodeWithMemTracking, Clone, PartialEq, Eq, Debug, TypeInfo, MaxEncodedLen,
)]
pub struct Challenge<AccountId, Balance, BlockNumber> {
    /// The contract audited.
    pub contract: ContractId,
    /// Its feed.
    pub feed: FeedId,
    /// Its hoster.
    pub hoster: AccountId,
    /// The committee, in coin-flip (attestor index) order.
    pub attestors: BoundedVec<AccountId, ConstU32<MAX_COMMITTEE>>,
    /// Their protocol signing keys when drawn (pinned: a later key change does not
    /// let a member escape a fraud proof or sign reports with another key).
    pub keys: BoundedVec<[u8; 32], ConstU32<MAX_COMMITTEE>>,
    /// The hoster's signing key when scheduled.
    pub hoster_key: [u8; 32],
    /// The feed's key.
    pub feed_key: [u8; 32],
    /// Length of the root the publisher published (pinned: bad-data evidence is judged
    /// against this tree only, never against another one the feed's author signed).
    pub feed_length: u64,
    /// Tree hash of that root.
    pub feed_tree_hash: [u8; 32],
    /// Scheduled at.
    pub start: BlockNumber,
    /// Audits end; reports accepted from here.
    pub end: BlockNumber,
    /// Last block a report (or a reveal) is accepted.
    pub report_deadline: BlockNumber,
    /// Escrow committed: hoster price + one reward per attestor.
    pub budget: Balance,
    /// Reports so far: (committee index, metrics), in arrival order.
    pub reports: BoundedVec<(u8, MetricSummary), ConstU32<MAX_COMMITTEE>>,
    /// Reports not tied to the whole committee's schedule: (committee index, `None` for
    /// no transcript, or the bitmask of members its transcript leaves out). Counted;
    /// paid only if each member left out was convicted or a majority of reports accuse it.
    pub untied: BoundedVec<(u8, Option<u32>), ConstU32<MAX_COMMITTEE>>,
    /// Withholding accusations from the reports, one per (member, round), each backed by
    /// the member's signed commit for that round. A report accuses each other member at
    /// most once, so the bound `X · (X − 1)` is never reached: none is dropped.
    pub accusations: BoundedVec<Accusation, ConstU32<{ MAX_COMMITTEE * (MAX_COMMITTEE - 1) }>>,
    /// Set once settled.
    pub verdict: Option<Verdict>,
    /// Accounts already punished through a fraud proof in this challenge.
    pub punished: BoundedVec<AccountId, ConstU32<{ MAX_COMMITTEE + 1 }>>,
}

/// Work the pallet's `on_initialize` does at a given block.
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
pub enum AgendaTask {
    /// Schedule the contract's next challenge.
    Challenge(ContractId),
    /// Report window closed: settle (if not yet) and judge accusations.
    Settle(ChallengeId),
    /// Fraud-proof window closed: forget the challenge.
    Prune(ChallengeId),
    /// The hoster did not confirm in time: replace it.
    ConfirmTimeout(ContractId),
    /// Draw whether the contract's next challenge starts in this block: with
    /// probability `1 / (left + 1)`, else again next block with `left − 1` — so the start
    /// is uniform over the `left + 1` blocks and known to nobody before its block's
    /// randomness (the agenda, which anyone can read, says only "not before").
    ChallengeDraw(ContractId, u32),
    /// Answer window over (one report window after the report deadline): judge the
    /// withholding accusations, so that one made in the last report block can still be
    /// answered.
    JudgeAccusations(ChallengeId),
}
