//! Mock runtime (u64 accounts) and fixtures for the pallet's unit tests.

use alloc::vec;
use alloc::vec::Vec;

use datdot_protocol::codec::{self, Encode as _, Writer};
use datdot_protocol::coinflip::{SignedCommit, SignedReveal, Transcript, commit_value, x_of};
use datdot_protocol::identity::{Ed25519Verifier, Keypair, Signature};
use datdot_protocol::metrics::{MetricSummary, Outcome};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::report::{CoinFlipRecord, Report};
use datdot_protocol::tree::{SignedTreeRoot, TreeNode, build};
use ed25519_dalek::{Signer, SigningKey};
use frame::deps::frame_support::PalletId;
use frame::testing_prelude::*;

use crate as pallet_datdot;
use crate::types::*;

type Block = frame_system::mocking::MockBlock<Test>;

construct_runtime!(
    pub enum Test {
        System: frame_system,
        Balances: pallet_balances,
        Datdot: pallet_datdot,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
    type Block = Block;
    type AccountData = pallet_balances::AccountData<u64>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
    type AccountStore = System;
}

parameter_types! {
    pub const DatdotPalletId: PalletId = PalletId(*b"datdot00");
    pub const FailureSlash: Perbill = Perbill::from_percent(10);
    pub const FraudSlash: Perbill = Perbill::from_percent(50);
    pub const FraudReward: Perbill = Perbill::from_percent(20);
    pub const ExecutorShare: Perbill = Perbill::from_percent(90);
    /// 0 (every period exactly) unless a test sets it.
    pub static ChallengeJitter: u64 = 0;
}

impl pallet_datdot::Config for Test {
    type Currency = Balances;
    type Randomness = pallet_datdot::ParentHashRandomness<Test>;
    type WeightInfo = ();
    type PalletId = DatdotPalletId;
    type MinHosterStake = ConstU64<1000>;
    type MinAttestorStake = ConstU64<500>;
    type UnbondingPeriod = ConstU64<100>;
    type ConfirmWindow = ConstU64<5>;
    type ChallengePeriod = ConstU64<20>;
    type ChallengeJitter = ChallengeJitter;
    type ChallengeDuration = ConstU64<5>;
    type BlockMs = ConstU64<2000>;
    type AuditSamples = ConstU32<SAMPLES>;
    // The test feed (64 blocks of 100 bytes) is exactly at both limits.
    type MaxFeedLength = ConstU64<64>;
    type MaxFeedBytes = ConstU64<6400>;
    type ReportWindow = ConstU64<5>;
    type FraudWindow = ConstU64<20>;
    type AttestorsPerChallenge = ConstU32<3>;
    type MinAttestors = ConstU32<3>;
    type MinReports = ConstU32<2>;
    type AttestorReward = ConstU64<10>;
    type MissedReportPenalty = ConstU64<50>;
    type WithholdingPenalty = ConstU64<40>;
    type SuspendAfterFailures = ConstU32<2>;
    type SlashAfterFailures = ConstU32<3>;
    type FailureSlash = FailureSlash;
    type FraudSlash = FraudSlash;
    type FraudReward = FraudReward;
    type OutlierTolerancePercent = ConstU32<{ crate::types::OUTLIER_TOLERANCE_PERCENT }>;
    type MaxHosters = ConstU32<16>;
    type MaxAttestors = ConstU32<16>;
    type ModuleByteDeposit = ConstU64<1>;
    type MaxFuelPerCall = ConstU64<10_000_000>;
    type MaxJobs = ConstU32<4>;
    type ExecutorShare = ExecutorShare;
    type MonitorSamples = ConstU32<8>;
}

pub const PUBLISHER: u64 = 1;
pub const HOSTERS: [u64; 4] = [10, 11, 12, 13];
pub const ATTESTORS: [u64; 5] = [20, 21, 22, 23, 24];
pub const FUNDS: u64 = 1_000_000;
pub const HOSTER_STAKE: u64 = 1000;
pub const ATTESTOR_STAKE: u64 = 500;
pub const PRICE: u64 = 100;
pub const REWARD: u64 = 10;
pub const FEED_SEED: [u8; 32] = [99; 32];

pub fn new_test_ext() -> TestExternalities {
    let mut accounts: Vec<u64> = vec![PUBLISHER, 2, 3];
    accounts.extend(HOSTERS);
    accounts.extend(14..=30);
    let storage = RuntimeGenesisConfig {
        system: Default::default(),
        balances: pallet_balances::GenesisConfig {
            balances: accounts.into_iter().map(|a| (a, FUNDS)).collect(),
            ..Default::default()
        },
        datdot: Default::default(),
    }
    .build_storage()
    .expect("valid genesis");
    let mut ext = TestExternalities::new(storage);
    // As on a chain: block 1's on_initialize runs before its extrinsics.
    ext.execute_with(|| {
        System::set_block_number(1);
        Datdot::on_initialize(1);
    });
    ext
}

/// Advance to block `n`, running the pallet's `on_initialize` on each block.
pub fn run_to(n: u64) {
    while System::block_number() < n {
        let b = System::block_number() + 1;
        System::set_block_number(b);
        Datdot::on_initialize(b);
    }
}

/// The protocol signing key of a test account.
pub fn kp(account: u64) -> Keypair {
    Keypair::from_seed(&[account as u8; 32])
}

pub fn key_of(account: u64) -> [u8; 32] {
    *kp(account).public().as_bytes()
}

/// The Noise key (an ed25519 key, as registered) of a test account.
pub fn noise_key_of(account: u64) -> [u8; 32] {
    *Keypair::from_seed(&[account as u8 ^ 0x5a; 32])
        .public()
        .as_bytes()
}

pub fn endpoint(account: u64) -> Endpoint {
    Endpoint {
        addr: b"127.0.0.1:4000".to_vec().try_into().expect("short"),
        noise_key: noise_key_of(account),
        signing_key: key_of(account),
    }
}

pub fn register_hosters(n: usize, capacity: u32) {
    for h in &HOSTERS[..n] {
        assert_ok!(Datdot::register(
            RuntimeOrigin::signed(*h),
            Role::Hoster,
            HOSTER_STAKE,
            endpoint(*h),
            capacity
        ));
    }
}

pub fn register_attestors(n: usize) {
    for a in &ATTESTORS[..n] {
        assert_ok!(Datdot::register(
            RuntimeOrigin::signed(*a),
            Role::Attestor,
            ATTESTOR_STAKE,
            endpoint(*a),
            0
        ));
    }
}

pub fn feed_signing_key() -> SigningKey {
    SigningKey::from_bytes(&FEED_SEED)
}

pub fn feed_key() -> [u8; 32] {
    feed_signing_key().verifying_key().to_bytes()
}

pub fn blocks() -> Vec<Vec<u8>> {
    (0..64u8).map(|i| vec![i; 100]).collect()
}

pub fn leaves() -> Vec<TreeNode> {
    blocks()
        .iter()
        .enumerate()
        .map(|(i, b)| build::leaf(i as u64, b))
        .collect()
}

/// The feed author's signature over `signable` (plain ed25519, Hypercore's format).
pub fn feed_sign(signer: &SigningKey, msg: &[u8; 80]) -> Signature {
    Signature(signer.sign(msg).to_bytes())
}

pub fn signed_root_by(signer: &SigningKey) -> Vec<u8> {
    root_bytes(&leaves(), signer)
}

/// The test feed author's signed root over `blocks`, ready to publish.
pub fn signed_root_of(blocks: &[Vec<u8>]) -> BoundedVec<u8, ConstU32<{ crate::MAX_ROOT_BYTES }>> {
    let leaves: Vec<TreeNode> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| build::leaf(i as u64, b))
        .collect();
    root_bytes(&leaves, &feed_signing_key())
        .try_into()
        .expect("small")
}

fn root_bytes(leaves: &[TreeNode], signer: &SigningKey) -> Vec<u8> {
    let proof = build::block_proof(leaves, 0, 0, |m| feed_sign(signer, m)).expect("block 0");
    let root: SignedTreeRoot = proof.root;
    let mut w = Writer::new();
    root.encode(&mut w);
    w.into_bytes()
}

pub fn plan(replicas: u32, periods: u32) -> PlanTerms<u64> {
    PlanTerms {
        replicas,
        sla: Sla {
            min_throughput_bps: 1_000_000,
            max_p99_latency_us: 100_000,
            min_availability_ppm: 990_000,
        },
        price_per_period: PRICE,
        periods,
    }
}

pub fn publish(who: u64, replicas: u32, periods: u32) -> DispatchResult {
    Datdot::publish(
        RuntimeOrigin::signed(who),
        feed_key(),
        signed_root_by(&feed_signing_key())
            .try_into()
            .expect("small"),
        plan(replicas, periods),
        source(),
    )
}

/// The feed source publishers name in tests (the publisher's own node).
pub fn source() -> Endpoint {
    Endpoint {
        addr: b"127.0.0.1:7200".to_vec().try_into().expect("short"),
        noise_key: noise_key_of(77),
        signing_key: feed_key(),
    }
}

pub fn good_metrics() -> MetricSummary {
    MetricSummary {
        requests: SAMPLES,
        ok_blocks: SAMPLES,
        bytes_received: 800,
        latency_p50_us: 20_000,
        latency_p90_us: 40_000,
        latency_p99_us: 50_000,
        latency_max_us: 60_000,
        ttfb_p50_us: 10_000,
        ttfb_p99_us: 30_000,
        throughput_bps: 2_000_000,
        throughput_p50_bps: 2_000_000,
        connect_time_us: 5_000,
        lacks_data: 0,
        misbehaved: 0,
        timeouts: 0,
        outcome: Outcome::Completed,
    }
}

pub fn bad_metrics() -> MetricSummary {
    MetricSummary {
        ok_blocks: SAMPLES / 2,
        timeouts: SAMPLES / 2,
        throughput_bps: 100_000,
        throughput_p50_bps: 100_000,
        latency_p99_us: 900_000,
        latency_max_us: 900_000,
        ..good_metrics()
    }
}

/// Blocks each mock report samples (and `good_metrics` requests).
pub const SAMPLES: u32 = 8;

/// The remote key of `who`'s audit connection (what its receipts name).
pub fn connection(who: u64) -> [u8; 32] {
    [who as u8 ^ 0x80; 32]
}

/// The hoster's receipt for `sampled`, served to `attestor`'s audit connection.
pub fn receipts_for(hoster: u64, attestor: u64, sampled: &[u64]) -> Vec<SignedReceipt> {
    let entries = sampled
        .iter()
        .map(|&index| ReceiptEntry {
            index,
            hash: [index as u8; 32],
        })
        .collect();
    vec![SignedReceipt::sign(
        &kp(hoster),
        chain(),
        feed_key(),
        connection(attestor),
        0,
        entries,
    )]
}

/// The mock chain's identity (from `frame_system`'s genesis placeholder hash).
pub fn chain() -> [u8; 32] {
    Datdot::chain_id()
}

/// The coin-flip session of challenge `id` on the mock chain.
pub fn session_id(id: ChallengeId) -> [u8; 32] {
    crate::session_id(&chain(), id)
}

/// The own coin-flip secret member `who` uses in challenge `id`.
pub fn own_secret(id: ChallengeId, who: u64) -> [u8; 32] {
    datdot_protocol::hash::blake2b256(&[b"mock/own", &who.to_le_bytes(), &id.to_le_bytes()])
}

/// The signed round-0 transcript of challenge `id`'s coin flip among `members`.
pub fn transcript(id: ChallengeId, members: &[u64]) -> Transcript {
    transcript_in(id, members, 0)
}

/// The signed transcript of round `round` of challenge `id`'s coin flip among `members`
/// (each contributing `x_of(own_secret(id, member))`).
pub fn transcript_in(id: ChallengeId, members: &[u64], round: u32) -> Transcript {
    let session = session_id(id);
    let x = |a: u64| x_of(&own_secret(id, a));
    Transcript {
        session,
        round,
        commits: members
            .iter()
            .map(|a| commit_of(id, *a, round, x(*a)))
            .collect(),
        reveals: members
            .iter()
            .map(|a| SignedReveal::sign(&kp(*a), session, round, x(*a)))
            .collect(),
    }
}

/// `who`'s signed commit to `x` in round `round` of challenge `id`'s flip.
pub fn commit_of(id: ChallengeId, who: u64, round: u32, x: [u8; 32]) -> SignedCommit {
    SignedCommit::sign(&kp(who), session_id(id), round, commit_value(&x))
}

/// `attestor`'s report for challenge `challenge`: good metrics, and — if the challenge
/// exists — the whole committee's transcript, its own secret and its scheduled sample.
pub fn report_of(challenge: ChallengeId, attestor: u64, hoster: u64) -> Report {
    let (transcript, own_secret, sampled) = match crate::Challenges::<Test>::get(challenge) {
        Some(ch) => {
            let t = transcript(challenge, &ch.attestors);
            let r = t.verify(&Ed25519Verifier).expect("a valid transcript");
            let own = own_secret(challenge, attestor);
            let sampled = datdot_protocol::schedule::sample(&r, &own, ch.feed_length, SAMPLES);
            (Some(t), own, sampled)
        }
        None => (None, [0; 32], (0..u64::from(SAMPLES)).collect()),
    };
    let receipts = receipts_for(hoster, attestor, &sampled);
    Report {
        chain: chain(),
        challenge,
        attestor: kp(attestor).public(),
        hoster: kp(hoster).public(),
        feed: feed_key(),
        sampled,
        received_root: [0; 32],
        receipts,
        metrics: good_metrics(),
        failures: vec![],
        coinflip: CoinFlipRecord {
            round: 0,
            transcript,
            own_secret,
            accused: vec![],
        },
        sig: Signature([0; 64]),
    }
}

pub fn signed(
    report: Report,
    signer: u64,
) -> BoundedVec<u8, ConstU32<{ crate::MAX_REPORT_BYTES }>> {
    codec::to_bytes(&report.sign(&kp(signer)))
        .try_into()
        .expect("below MAX_SIZE")
}

/// Submit report `r`, signed by `who`, for challenge `id` (the call's weight dropped).
pub fn send_report(id: ChallengeId, who: u64, r: Report) -> DispatchResult {
    Datdot::submit_report(RuntimeOrigin::signed(who), id, signed(r, who))
        .map(|_| ())
        .map_err(|e| e.error)
}

/// Submit a report with `metrics` from `attestor` for challenge `id`.
pub fn submit(id: ChallengeId, attestor: u64, metrics: MetricSummary) -> DispatchResult {
    let ch = crate::Challenges::<Test>::get(id).expect("challenge");
    let mut r = report_of(id, attestor, ch.hoster);
    r.metrics = metrics;
    send_report(id, attestor, r)
}

pub fn free(who: u64) -> u64 {
    Balances::free_balance(who)
}

pub fn stake(who: u64) -> u64 {
    crate::Participants::<Test>::get(who)
        .expect("registered")
        .stake
}

pub fn events() -> Vec<crate::Event<Test>> {
    System::events()
        .into_iter()
        .filter_map(|r| match r.event {
            RuntimeEvent::Datdot(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Standard world: 3 hosters (capacity 2), 5 attestors, one published feed with one
/// confirmed replica whose first challenge is scheduled at block 2. Returns
/// (contract id, hoster, challenge id 0).
pub fn world(periods: u32) -> (ContractId, u64) {
    register_hosters(3, 2);
    register_attestors(5);
    assert_ok!(publish(PUBLISHER, 1, periods));
    let c = crate::Contracts::<Test>::get(0).expect("contract 0");
    assert_ok!(Datdot::confirm_hosting(RuntimeOrigin::signed(c.hoster), 0));
    run_to(2);
    assert!(crate::Challenges::<Test>::contains_key(0));
    (0, c.hoster)
}
