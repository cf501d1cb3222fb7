//! What every datdot daemon (`datdot-hoster`, `datdot-attestor`) shares besides the
//! transport: the 0600 keystore of its signing and Noise seeds, the bounded Prometheus
//! `/metrics` responder, and start-up (logging, runtime, `[chain]` checks).
//!
//! # Goals
//! - One implementation of node plumbing, so the binaries differ only in what they do.
//!
//! # Non-goals
//! - Protocol logic (`datdot-protocol`), transport (`datdot-net`), chain access
//!   (`datdot-chain-client`).

pub mod daemon;
pub mod keystore;
pub mod prometheus;

pub use keystore::Keystore;
