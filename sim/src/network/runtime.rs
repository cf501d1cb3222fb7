//! The simulated chain: the production pallet under the dev runtime's own values.
//!
//! Every constant of `pallet_datdot::Config` is the dev runtime's (`datdot_runtime`),
//! read through its `Config` — one definition, no copy to drift — except the two bounds
//! a network of ten thousand hosters needs ([`MAX_HOSTERS`], [`MAX_ATTESTORS`]; the dev
//! runtime's are 256 and 1024). `frame_system` and the balances pallet use the test
//! defaults (u64 accounts) with the dev runtime's block weights and database weights, so
//! the weights the pallet reports are priced as on the dev chain.

use frame::deps::frame_support::PalletId;
use frame::testing_prelude::*;

type Dev = datdot_runtime::Runtime;
type Block = frame_system::mocking::MockBlockU32<SimRuntime>;

/// Most registered hosters in the simulated chain.
pub const MAX_HOSTERS: u32 = 16_384;
/// Most registered attestors in the simulated chain.
pub const MAX_ATTESTORS: u32 = 4_096;

construct_runtime!(
    pub enum SimRuntime {
        System: frame_system,
        Balances: pallet_balances,
        Datdot: pallet_datdot,
    }
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for SimRuntime {
    type Block = Block;
    type AccountData = pallet_balances::AccountData<u128>;
    type BlockWeights = <Dev as frame_system::Config>::BlockWeights;
    type DbWeight = <Dev as frame_system::Config>::DbWeight;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for SimRuntime {
    type Balance = u128;
    type ExistentialDeposit = <Dev as pallet_balances::Config>::ExistentialDeposit;
    type AccountStore = System;
}

parameter_types! {
    pub const SimPalletId: PalletId = PalletId(*b"datdot00");
}

/// The dev runtime's value of a pallet constant.
macro_rules! dev {
    ($name:ident) => {
        <Dev as pallet_datdot::Config>::$name
    };
}

/// The dev runtime's block time (ms), its `BlockMs`: what the network is simulated at
/// unless a run asks for another.
pub fn block_ms() -> u64 {
    <dev!(BlockMs) as Get<u64>>::get()
}

impl pallet_datdot::Config for SimRuntime {
    type Currency = Balances;
    type Randomness = pallet_datdot::ParentHashRandomness<SimRuntime>;
    type WeightInfo =
        pallet_datdot::weights::DatdotWeight<<SimRuntime as frame_system::Config>::DbWeight>;
    type PalletId = SimPalletId;
    type MinHosterStake = dev!(MinHosterStake);
    type MinAttestorStake = dev!(MinAttestorStake);
    type UnbondingPeriod = dev!(UnbondingPeriod);
    type ConfirmWindow = dev!(ConfirmWindow);
    type ChallengePeriod = dev!(ChallengePeriod);
    type ChallengeJitter = dev!(ChallengeJitter);
    type ChallengeDuration = dev!(ChallengeDuration);
    type BlockMs = dev!(BlockMs);
    type AuditSamples = dev!(AuditSamples);
    type MaxFeedLength = dev!(MaxFeedLength);
    type MaxFeedBytes = dev!(MaxFeedBytes);
    type ReportWindow = dev!(ReportWindow);
    type FraudWindow = dev!(FraudWindow);
    type AttestorsPerChallenge = dev!(AttestorsPerChallenge);
    type MinAttestors = dev!(MinAttestors);
    type MinReports = dev!(MinReports);
    type AttestorReward = dev!(AttestorReward);
    type MissedReportPenalty = dev!(MissedReportPenalty);
    type WithholdingPenalty = dev!(WithholdingPenalty);
    type SuspendAfterFailures = dev!(SuspendAfterFailures);
    type SlashAfterFailures = dev!(SlashAfterFailures);
    type FailureSlash = dev!(FailureSlash);
    type FraudSlash = dev!(FraudSlash);
    type FraudReward = dev!(FraudReward);
    type OutlierTolerancePercent = dev!(OutlierTolerancePercent);
    type MaxHosters = ConstU32<MAX_HOSTERS>;
    type MaxAttestors = ConstU32<MAX_ATTESTORS>;
    type ModuleByteDeposit = dev!(ModuleByteDeposit);
    type MaxFuelPerCall = dev!(MaxFuelPerCall);
    type MaxJobs = dev!(MaxJobs);
    type ExecutorShare = dev!(ExecutorShare);
    type MonitorSamples = dev!(MonitorSamples);
}

/// Genesis: `funded` accounts with `balance` each, the chain's salt.
pub fn genesis(
    funded: impl Iterator<Item = u64>,
    balance: u128,
    salt: [u8; 32],
) -> TestExternalities {
    let storage = RuntimeGenesisConfig {
        system: Default::default(),
        balances: pallet_balances::GenesisConfig {
            balances: funded.map(|a| (a, balance)).collect(),
            ..Default::default()
        },
        datdot: pallet_datdot::GenesisConfig {
            salt,
            _config: Default::default(),
        },
    }
    .build_storage()
    .expect("a valid genesis");
    TestExternalities::new(storage)
}
