//! # datdot-exec
//!
//! Deterministic, metered WebAssembly for datdot's execution jobs. A job runs one
//! module's entry function once per input block (`entry(input block) -> output`); the
//! executor logs every call in an output feed, monitors re-run a sample, and the chain
//! re-runs one disputed call. All three use this crate, so they agree on every call's
//! output, fuel and status:
//!
//! - [`vm`]: the interpreter (wasmi 2.0.0, pinned: its fuel schedule is consensus), its
//!   one configuration ([`vm::config`]), the module rules ([`vm::Program::new`]) and the
//!   call ABI ([`vm::Program::call`]).
//! - [`record`]: the signed call record and the output feed's block format.
//! - [`fraud`]: the single-call fraud proof and its pure check.
//! - [`monitor`]: the calls a monitor samples and the report it signs.
//! - [`job`]: an executor's run of one job (next call, log, commits, its end, resuming
//!   from the log on disk), as a sans-IO machine.
//!
//! ## Goals
//! - `no_std` + `alloc` (the chain runtime links it); no host interface at all: a
//!   module imports nothing, so nothing but its input can reach it (no clock, network,
//!   randomness or host state).
//! - Bounded: module size, memory, tables, call depth, value stack, input, output and
//!   fuel all have limits ([`vm`]'s constants); a hostile module can make a call trap
//!   or run out of fuel, never make the host panic or allocate past the limits.
//!
//! ## Non-goals
//! - Floats: refused at upload (they are deterministic in wasmi, but a module's float
//!   results would differ from the same source compiled natively, and NaN bit
//!   patterns are a classic source of divergence between implementations).
//! - State across calls: every call runs in a fresh instance.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod fraud;
pub mod job;
pub mod monitor;
pub mod record;
pub mod vm;

pub use fraud::{CallFraudProof, CallProofError, CallVerdict, JobTerms, Mismatch};
pub use monitor::{CallCheck, MonitorReport};
pub use record::{CallRecord, CallStatus, OutputBlock, output_hash};
pub use vm::{CallOutcome, ModuleError, Program, Trap};

/// Content hash of a module (its id on chain): BLAKE2b-256 of `"datdot/v1/module" ||
/// bytes`.
pub fn module_hash(wasm: &[u8]) -> datdot_protocol::hash::Hash {
    datdot_protocol::hash::blake2b256(&[b"datdot/v1/module", wasm])
}
