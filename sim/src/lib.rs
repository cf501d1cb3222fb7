//! # datdot-sim
//!
//! Deterministic simulation of many datdot protocol instances (the sans-IO state
//! machines of `datdot-protocol`) over a virtual clock and a simulated network with
//! seeded delay, loss, duplication, reordering, partitions and byzantine members.
//!
//! ## Goals
//! - Every run is a pure function of its configuration and seed: a failing run prints
//!   its seed, and re-running with that seed reproduces it exactly.
//! - Check the protocol's invariants on every run (see [`coinflip::check`]).
//! - Fast enough to run thousands of 100-member coin flips in CI.
//!
//! ## Non-goals
//! - Modelling TCP or Noise: the network delivers whole messages or loses them; the
//!   real transport is tested by the loopback tests of the `net` crate.

pub mod audits;
pub mod coinflip;
pub mod metrics;
pub mod net;
pub mod network;
pub mod verifier;
