//! # `datdot-runtime`: the datdot dev-chain runtime
//!
//! System, Timestamp, Balances and the datdot pallet, with real accounts
//! (`AccountId32`, `MultiAddress`, sr25519/ed25519 `MultiSignature`s). It builds
//! natively (tests, metadata, chain spec: `datdot-chain-spec`) and to wasm
//! (`scripts/build-wasm`), which chopsticks executes as the devnet.
//!
//! ## Goals
//! - The smallest runtime that runs the datdot pallet for real: signed extrinsics,
//!   balances, events, storage that subxt reads.
//!
//! ## Non-goals
//! - Consensus, fees, governance. There is no transaction-payment pallet: a dev chain
//!   under chopsticks has one trusted author. Production adds BABE/GRANDPA (which also
//!   provide the unbiasable randomness the pallet should use, see
//!   `pallet_datdot::ParentHashRandomness`) and fees.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use frame::deps::frame_support::PalletId;
use frame::prelude::*;
use frame::runtime::{apis, prelude::*};

/// The runtime version.
#[runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
    spec_name: alloc::borrow::Cow::Borrowed("datdot"),
    impl_name: alloc::borrow::Cow::Borrowed("datdot"),
    authoring_version: 1,
    spec_version: 1,
    impl_version: 1,
    apis: RUNTIME_API_VERSIONS,
    transaction_version: 1,
    system_version: 1,
};

/// Transaction extensions: the standard checks, no fees.
pub type TxExtension = (
    frame_system::CheckNonZeroSender<Runtime>,
    frame_system::CheckSpecVersion<Runtime>,
    frame_system::CheckTxVersion<Runtime>,
    frame_system::CheckGenesis<Runtime>,
    frame_system::CheckEra<Runtime>,
    frame_system::CheckNonce<Runtime>,
    frame_system::CheckWeight<Runtime>,
);

#[frame_construct_runtime]
mod runtime {
    /// The runtime.
    #[runtime::runtime]
    #[runtime::derive(
        RuntimeCall,
        RuntimeEvent,
        RuntimeError,
        RuntimeOrigin,
        RuntimeFreezeReason,
        RuntimeHoldReason,
        RuntimeSlashReason,
        RuntimeLockId,
        RuntimeTask,
        RuntimeViewFunction
    )]
    pub struct Runtime;

    /// Accounts, blocks, events.
    #[runtime::pallet_index(0)]
    pub type System = frame_system::Pallet<Runtime>;

    /// On-chain time.
    #[runtime::pallet_index(1)]
    pub type Timestamp = pallet_timestamp::Pallet<Runtime>;

    /// Balances.
    #[runtime::pallet_index(2)]
    pub type Balances = pallet_balances::Pallet<Runtime>;

    /// datdot.
    #[runtime::pallet_index(10)]
    pub type Datdot = pallet_datdot::Pallet<Runtime>;
}

/// Balance: 12 decimals.
pub type Balance = u128;
/// One token.
pub const UNIT: Balance = 1_000_000_000_000;
/// A block number (6-second blocks on a real chain; chopsticks builds on demand).
pub type BlockNumber = u32;

parameter_types! {
    pub const Version: RuntimeVersion = VERSION;
    pub const DatdotPalletId: PalletId = PalletId(*b"datdot00");
    pub const FailureSlash: Perbill = Perbill::from_percent(10);
    pub const FraudSlash: Perbill = Perbill::from_percent(50);
    pub const FraudReward: Perbill = Perbill::from_percent(20);
    pub const ExecutorShare: Perbill = Perbill::from_percent(90);
    /// 2 s of execution per block (a 6 s slot: a third to author, the rest to import and
    /// gossip), 75 % of it for ordinary extrinsics; `on_initialize` (the agenda) may use
    /// half of the block (`pallet_datdot::types::AGENDA_WEIGHT_PERCENT`).
    pub RuntimeBlockWeights: frame_system::limits::BlockWeights =
        frame_system::limits::BlockWeights::with_sensible_defaults(
            Weight::from_parts(
                2 * frame::deps::frame_support::weights::constants::WEIGHT_REF_TIME_PER_SECOND,
                u64::MAX,
            ),
            Perbill::from_percent(75),
        );
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
    type Block = Block;
    type Version = Version;
    type AccountData = pallet_balances::AccountData<Balance>;
    type BlockWeights = RuntimeBlockWeights;
    // What the pallet's weights are priced with (`weights.rs`): RocksDB's read and write
    // costs, not the zero of `()`.
    type DbWeight = frame::deps::frame_support::weights::constants::RocksDbWeight;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Runtime {
    type Balance = Balance;
    type ExistentialDeposit = ConstU128<{ UNIT / 1000 }>;
    type AccountStore = System;
}

#[derive_impl(pallet_timestamp::config_preludes::TestDefaultConfig)]
impl pallet_timestamp::Config for Runtime {}

impl pallet_datdot::Config for Runtime {
    type Currency = Balances;
    type Randomness = pallet_datdot::ParentHashRandomness<Runtime>;
    type WeightInfo =
        pallet_datdot::weights::DatdotWeight<<Runtime as frame_system::Config>::DbWeight>;
    type PalletId = DatdotPalletId;
    type MinHosterStake = ConstU128<{ 100 * UNIT }>;
    type MinAttestorStake = ConstU128<{ 50 * UNIT }>;
    type UnbondingPeriod = ConstU32<600>;
    type ConfirmWindow = ConstU32<50>;
    // Dev timings in blocks (chopsticks builds blocks on demand, so these are short).
    // Next challenge 31..=41 blocks after the last (uniform, drawn block by block).
    type ChallengePeriod = ConstU32<36>;
    type ChallengeJitter = ConstU32<5>;
    type ChallengeDuration = ConstU32<10>;
    // `datdot devnet` and the tests' dev chains add a block every 2 s.
    type BlockMs = ConstU64<2000>;
    type AuditSamples = ConstU32<32>;
    // 2^24 blocks, 1 TiB: what one hoster can be asked to fetch and keep.
    type MaxFeedLength = ConstU64<{ 1 << 24 }>;
    type MaxFeedBytes = ConstU64<{ 1 << 40 }>;
    type ReportWindow = ConstU32<20>;
    type FraudWindow = ConstU32<100>;
    // SPEC §3: X = 10 by default; fewer eligible attestors (≥ MinAttestors) are all drawn.
    type AttestorsPerChallenge = ConstU32<10>;
    type MinAttestors = ConstU32<3>;
    type MinReports = ConstU32<2>;
    type AttestorReward = ConstU128<{ UNIT / 10 }>;
    type MissedReportPenalty = ConstU128<{ UNIT }>;
    type WithholdingPenalty = ConstU128<{ UNIT }>;
    type SuspendAfterFailures = ConstU32<3>;
    type SlashAfterFailures = ConstU32<6>;
    type FailureSlash = FailureSlash;
    type FraudSlash = FraudSlash;
    type FraudReward = FraudReward;
    type OutlierTolerancePercent = ConstU32<{ pallet_datdot::types::OUTLIER_TOLERANCE_PERCENT }>;
    type MaxHosters = ConstU32<256>;
    type MaxAttestors = ConstU32<1024>;
    // 1 UNIT per KiB stored.
    type ModuleByteDeposit = ConstU128<{ UNIT / 1024 }>;
    // The chain's re-run of one call at this cap is costed in `weights.rs`
    // (`PS_PER_FUEL`, 3 ps per fuel: 150 ms of a block's 2 s; DESIGN §18.5). The
    // word-frequency example needs 20.2 M fuel for a 64 KiB block of text.
    type MaxFuelPerCall = ConstU64<50_000_000>;
    type MaxJobs = ConstU32<4096>;
    type ExecutorShare = ExecutorShare;
    type MonitorSamples = ConstU32<16>;
}

/// The block type.
pub type Block = frame::runtime::types_common::BlockOf<Runtime, TxExtension>;
/// The header type.
pub type Header = HeaderFor<Runtime>;

type RuntimeExecutive =
    Executive<Runtime, Block, frame_system::ChainContext<Runtime>, Runtime, AllPalletsWithSystem>;

/// Account id (`AccountId32`).
pub type AccountId = <Runtime as frame_system::Config>::AccountId;
/// Nonce.
pub type Nonce = <Runtime as frame_system::Config>::Nonce;

impl_runtime_apis! {
    impl apis::Core<Block> for Runtime {
        fn version() -> RuntimeVersion {
            VERSION
        }

        fn execute_block(block: <Block as frame::traits::Block>::LazyBlock) {
            RuntimeExecutive::execute_block(block)
        }

        fn initialize_block(header: &Header) -> ExtrinsicInclusionMode {
            RuntimeExecutive::initialize_block(header)
        }
    }

    impl apis::Metadata<Block> for Runtime {
        fn metadata() -> OpaqueMetadata {
            OpaqueMetadata::new(Runtime::metadata().into())
        }

        fn metadata_at_version(version: u32) -> Option<OpaqueMetadata> {
            Runtime::metadata_at_version(version)
        }

        fn metadata_versions() -> Vec<u32> {
            Runtime::metadata_versions()
        }
    }

    impl apis::BlockBuilder<Block> for Runtime {
        fn apply_extrinsic(extrinsic: ExtrinsicFor<Runtime>) -> ApplyExtrinsicResult {
            RuntimeExecutive::apply_extrinsic(extrinsic)
        }

        fn finalize_block() -> HeaderFor<Runtime> {
            RuntimeExecutive::finalize_block()
        }

        fn inherent_extrinsics(data: InherentData) -> Vec<ExtrinsicFor<Runtime>> {
            data.create_extrinsics()
        }

        fn check_inherents(
            block: <Block as frame::traits::Block>::LazyBlock,
            data: InherentData,
        ) -> CheckInherentsResult {
            data.check_extrinsics(&block)
        }
    }

    impl apis::TaggedTransactionQueue<Block> for Runtime {
        fn validate_transaction(
            source: TransactionSource,
            tx: ExtrinsicFor<Runtime>,
            block_hash: <Runtime as frame_system::Config>::Hash,
        ) -> TransactionValidity {
            RuntimeExecutive::validate_transaction(source, tx, block_hash)
        }
    }

    impl apis::OffchainWorkerApi<Block> for Runtime {
        fn offchain_worker(header: &HeaderFor<Runtime>) {
            RuntimeExecutive::offchain_worker(header)
        }
    }

    impl apis::AccountNonceApi<Block, AccountId, Nonce> for Runtime {
        fn account_nonce(account: AccountId) -> Nonce {
            System::account_nonce(account)
        }
    }

    impl apis::GenesisBuilder<Block> for Runtime {
        fn build_state(config: Vec<u8>) -> frame::deps::sp_genesis_builder::Result {
            build_state::<RuntimeGenesisConfig>(config)
        }

        fn get_preset(id: &Option<PresetId>) -> Option<Vec<u8>> {
            get_preset::<RuntimeGenesisConfig>(id, |_| None)
        }

        fn preset_names() -> Vec<PresetId> {
            Vec::new()
        }
    }
}
