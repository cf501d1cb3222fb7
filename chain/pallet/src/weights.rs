//! Weights of the pallet's extrinsics and hook.
//!
//! Not produced by the benchmarking CLI (no node binary runs on these machines, see
//! `docs/DESIGN.md` §Chain); each figure is justified instead, from the storage items
//! touched (priced with the runtime's `DbWeight`) plus the computation, costed
//! conservatively for wasm:
//! - one ed25519 strict verification: 100 µs (≈ 3× the native ~35 µs);
//! - BLAKE2b: 10 ns per byte;
//! - decoding and the rest of the CPU work: 50 µs per extrinsic.
//!
//! Byte-dependent calls (`publish`, `submit_report`, `submit_fraud_proof`) are charged
//! per input byte at a rate that covers the densest possible content: every signature in
//! our wire codec takes at least 100 bytes with its signed fields (a signed commit is
//! 164 B, a receipt ≥ 150 B), so 1 µs per byte ≥ one verification per 100 bytes, plus
//! hashing. Candidate scans (`publish`, replacements, committee draws) are linear in the
//! bounded participant lists and charged at their bound.

use frame::deps::frame_support::weights::{RuntimeDbWeight, constants::RocksDbWeight};
use frame::prelude::*;

/// Weight functions needed by the pallet.
pub trait WeightInfo {
    /// `register`.
    fn register() -> Weight;
    /// `update`.
    fn update() -> Weight;
    /// `unregister`.
    fn unregister() -> Weight;
    /// `withdraw_unbonded`.
    fn withdraw_unbonded() -> Weight;
    /// `publish` with a signed root and source address of `b` bytes together and `h`
    /// candidate hosters.
    fn publish(b: u32, h: u32) -> Weight;
    /// `confirm_hosting`.
    fn confirm_hosting() -> Weight;
    /// `end_plan`.
    fn end_plan() -> Weight;
    /// `submit_report` of `b` bytes (includes a possible settlement: declared weight;
    /// a report that does not settle refunds [`WeightInfo::settlement`]).
    fn submit_report(b: u32) -> Weight;
    /// A settlement touching every committee member (the last report's share of
    /// `submit_report`).
    fn settlement() -> Weight;
    /// `submit_fraud_proof` of `b` bytes (includes a possible replacement draw).
    fn submit_fraud_proof(b: u32, h: u32) -> Weight;
    /// `publish_reveal`.
    fn publish_reveal() -> Weight;
    /// One agenda task in `on_initialize` (the costliest: a committee draw over `a`
    /// attestors or a settlement).
    fn task(a: u32) -> Weight;
    /// `upload_module` of `b` bytes (validated and compiled once).
    fn upload_module(b: u32) -> Weight;
    /// `offer_execution`.
    fn offer_execution() -> Weight;
    /// `submit_job` over a module of `m` bytes (compiled to check the entry) and a feed
    /// with `c` contracts (the executor draw).
    fn submit_job(m: u32, c: u32) -> Weight;
    /// `accept_job`.
    fn accept_job() -> Weight;
    /// `commit_output`.
    fn commit_output() -> Weight;
    /// `submit_call_proof` of `b` bytes over a module of `m` bytes, re-running one call
    /// with at most `fuel`.
    fn submit_call_proof(b: u32, m: u32, fuel: u64) -> Weight;
    /// `submit_monitor_report`.
    fn submit_monitor_report() -> Weight;
    /// `settle_job` (pays up to `MAX_COMMITTEE` monitors).
    fn settle_job() -> Weight;
    /// `cancel_job`.
    fn cancel_job() -> Weight;
}

/// Compiling a module (`datdot_exec::Program::new`: engine, validation, eager
/// translation, the instantiation check), per KiB, in wasm: ×3 the native figure.
pub const COMPILE_US_PER_KIB: u64 = 3 * NATIVE_COMPILE_US_PER_KIB;
/// Native, `cargo run --release -p datdot-benches --bin exec` (DESIGN §18.5): the worst
/// measured was 34.9 µs/KiB (the 646-byte grayscale module, where the engine's fixed
/// ~22 µs dominates; 128 KiB modules: 21–24 µs/KiB), rounded up.
pub const NATIVE_COMPILE_US_PER_KIB: u64 = 40;
/// One unit of fuel in the chain's re-run, picoseconds, in wasm: ×3 the native figure.
pub const PS_PER_FUEL: u64 = 3 * NATIVE_PS_PER_FUEL;
/// Native, the same bench: 892 ps/fuel for `spin` at 20 M fuel (916 end to end with
/// decoding, compiling and the proofs), 845 (865) at the 50 M cap, 919 the worst module
/// over a 64 KiB block (grayscale), rounded up.
pub const NATIVE_PS_PER_FUEL: u64 = 1_000;

const US: u64 = 1_000_000; // picoseconds per microsecond

fn cpu(us: u64) -> Weight {
    Weight::from_parts(us * US, 0)
}

/// Justified weights for a runtime with `DbWeight = DB`.
#[derive(Debug)]
pub struct DatdotWeight<DB>(core::marker::PhantomData<DB>);

impl<DB: Get<RuntimeDbWeight>> WeightInfo for DatdotWeight<DB> {
    fn register() -> Weight {
        // participant, key owner, active list, 2 accounts; signing-key check.
        cpu(50).saturating_add(DB::get().reads_writes(4, 5))
    }
    fn update() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(3, 3))
    }
    fn unregister() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(2, 2))
    }
    fn withdraw_unbonded() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(4, 5))
    }
    fn publish(b: u32, h: u32) -> Weight {
        // Root: one signature + hashing; the source's signing key is checked (within the
        // base); each candidate hoster is read; per replica a contract, the hoster and the
        // agenda are written.
        cpu(150 + u64::from(b) / 50 + 5 * u64::from(h)).saturating_add(DB::get().reads_writes(
            4 + u64::from(h),
            4 + 3 * u64::from(super::types::MAX_REPLICAS),
        ))
    }
    fn confirm_hosting() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(3, 2))
    }
    fn end_plan() -> Weight {
        let r = u64::from(super::types::MAX_REPLICAS) * 2;
        cpu(50 + 10 * r).saturating_add(DB::get().reads_writes(2 + 2 * r, 2 + 2 * r))
    }
    fn submit_report(b: u32) -> Weight {
        // Decode + verify (≤ 1 µs/byte: every signature checked — transcript entries,
        // accused commits, receipts — arrives in ≥ 164 bytes and costs < 100 µs) + a
        // settlement touching every committee member (refunded by the reports that do
        // not settle).
        cpu(100 + u64::from(b))
            .saturating_add(DB::get().reads_writes(7, 8))
            .saturating_add(Self::settlement())
    }
    fn settlement() -> Weight {
        let c = u64::from(super::types::MAX_COMMITTEE);
        cpu(20 * c).saturating_add(DB::get().reads_writes(c, c))
    }
    fn submit_fraud_proof(b: u32, h: u32) -> Weight {
        cpu(100 + u64::from(b) + 5 * u64::from(h))
            .saturating_add(DB::get().reads_writes(9 + u64::from(h), 10))
    }
    fn publish_reveal() -> Weight {
        cpu(200).saturating_add(DB::get().reads_writes(4, 1))
    }
    fn task(a: u32) -> Weight {
        let c = u64::from(super::types::MAX_COMMITTEE);
        cpu(100 + 5 * u64::from(a) + 20 * c)
            .saturating_add(DB::get().reads_writes(6 + u64::from(a) + c, 8 + c))
    }
    fn upload_module(b: u32) -> Weight {
        // Hash + compile + one instantiation; module info, code, 2 accounts.
        cpu(100 + compile_us(b)).saturating_add(DB::get().reads_writes(3, 4))
    }
    fn offer_execution() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(1, 1))
    }
    fn submit_job(m: u32, c: u32) -> Weight {
        // Module code read and compiled; the feed, each contract and its hoster (offer,
        // participant) read; job, counters and 2 accounts written.
        cpu(100 + compile_us(m) + 5 * u64::from(c))
            .saturating_add(DB::get().reads_writes(6 + 3 * u64::from(c), 6))
    }
    fn accept_job() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(1, 1))
    }
    fn commit_output() -> Weight {
        // One root signature.
        cpu(200).saturating_add(DB::get().reads_writes(2, 2))
    }
    fn submit_call_proof(b: u32, m: u32, fuel: u64) -> Weight {
        // A call proof holds exactly 3 signatures (two roots, the record: 300 µs); the
        // rest of its bytes are the input and output, decoded (copied) and hashed once
        // or twice (BLAKE2b at 10 ns/byte): 20 ns per byte. Then compile the module and
        // re-run the call; on fraud: the executor's stake, 3 accounts, the job and
        // counters, and each monitor's sample (≤ 64 hashes) and account.
        let c = u64::from(super::types::MAX_COMMITTEE);
        cpu(100 + u64::from(b) / 50 + 300 + compile_us(m) + 70 * c)
            .saturating_add(Weight::from_parts(fuel.saturating_mul(PS_PER_FUEL), 0))
            .saturating_add(DB::get().reads_writes(8, 8))
    }
    fn submit_monitor_report() -> Weight {
        // One signature; the sample (≤ 64 hashes).
        cpu(250).saturating_add(DB::get().reads_writes(2, 1))
    }
    fn settle_job() -> Weight {
        // The samples of each reporter are not needed (no call is wrong): the payouts.
        let c = u64::from(super::types::MAX_COMMITTEE);
        cpu(50 + 5 * c).saturating_add(DB::get().reads_writes(4 + c, 6 + c))
    }
    fn cancel_job() -> Weight {
        cpu(50).saturating_add(DB::get().reads_writes(4, 5))
    }
}

fn compile_us(bytes: u32) -> u64 {
    u64::from(bytes).div_ceil(1024) * COMPILE_US_PER_KIB
}

/// For tests and mocks: the same figures priced with RocksDB weights.
impl WeightInfo for () {
    fn register() -> Weight {
        DatdotWeight::<RocksDbWeight>::register()
    }
    fn update() -> Weight {
        DatdotWeight::<RocksDbWeight>::update()
    }
    fn unregister() -> Weight {
        DatdotWeight::<RocksDbWeight>::unregister()
    }
    fn withdraw_unbonded() -> Weight {
        DatdotWeight::<RocksDbWeight>::withdraw_unbonded()
    }
    fn publish(b: u32, h: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::publish(b, h)
    }
    fn confirm_hosting() -> Weight {
        DatdotWeight::<RocksDbWeight>::confirm_hosting()
    }
    fn end_plan() -> Weight {
        DatdotWeight::<RocksDbWeight>::end_plan()
    }
    fn submit_report(b: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::submit_report(b)
    }
    fn settlement() -> Weight {
        DatdotWeight::<RocksDbWeight>::settlement()
    }
    fn submit_fraud_proof(b: u32, h: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::submit_fraud_proof(b, h)
    }
    fn publish_reveal() -> Weight {
        DatdotWeight::<RocksDbWeight>::publish_reveal()
    }
    fn task(a: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::task(a)
    }
    fn upload_module(b: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::upload_module(b)
    }
    fn offer_execution() -> Weight {
        DatdotWeight::<RocksDbWeight>::offer_execution()
    }
    fn submit_job(m: u32, c: u32) -> Weight {
        DatdotWeight::<RocksDbWeight>::submit_job(m, c)
    }
    fn accept_job() -> Weight {
        DatdotWeight::<RocksDbWeight>::accept_job()
    }
    fn commit_output() -> Weight {
        DatdotWeight::<RocksDbWeight>::commit_output()
    }
    fn submit_call_proof(b: u32, m: u32, fuel: u64) -> Weight {
        DatdotWeight::<RocksDbWeight>::submit_call_proof(b, m, fuel)
    }
    fn submit_monitor_report() -> Weight {
        DatdotWeight::<RocksDbWeight>::submit_monitor_report()
    }
    fn settle_job() -> Weight {
        DatdotWeight::<RocksDbWeight>::settle_job()
    }
    fn cancel_job() -> Weight {
        DatdotWeight::<RocksDbWeight>::cancel_job()
    }
}
