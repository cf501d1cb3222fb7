//! What every datdot daemon (`datdot-hoster`, `datdot-attestor`) shares besides the
//! transport: the 0600 keystore of its signing and Noise seeds, the bounded Prometheus
//! `/metrics` responder, start-up (logging, runtime, config file), and the `[chain]`
//! section with the `run` flags that override it ([`chain`]).
//!
//! # Goals
//! - One implementation of node plumbing, so the binaries differ only in what they do.
//!
//! # Non-goals
//! - Protocol logic (`datdot-protocol`), transport (`datdot-net`), chain access
//!   (`datdot-chain-client`).

pub mod chain;
pub mod daemon;
pub mod keystore;
pub mod prometheus;

pub use keystore::Keystore;
