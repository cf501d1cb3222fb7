//! # datdot-protocol
//!
//! The sans-IO core of datdot: everything the network protocol *decides*, with none of
//! what it *does*. No sockets, no clocks, no global RNG: time comes in as
//! [`time::Instant`], randomness as seeds, messages as values; outputs leave through
//! `poll_*` methods. Thin tokio shells (hoster, attestor) and the deterministic
//! simulator (`datdot-sim`) drive the same state machines.
//!
//! ## Goals
//! - One implementation of every rule that two parties must agree on: wire encoding,
//!   signatures, the coin flip, the audit schedule, receipts, reports, fraud proofs.
//! - `no_std` + `alloc` for everything the chain pallet must verify (feature `std`,
//!   on by default, adds the HDR-histogram audit accumulator).
//! - Peer input never panics: every decoder is size-limited and strict.
//!
//! ## Non-goals
//! - Transport, storage, chain access: those live in the `net`, `hoster`, `attestor`
//!   and `chain-client` crates.
//! - Consensus on anything but the coin flip's random value: the chain is the arbiter.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

#[cfg(feature = "std")]
pub mod audit;
pub mod codec;
pub mod coinflip;
pub mod fraud;
pub mod hash;
pub mod identity;
pub mod lifecycle;
pub mod metrics;
pub mod receipt;
pub mod report;
pub mod schedule;
pub mod time;
pub mod tree;
