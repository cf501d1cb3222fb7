//! Test fixtures shared across the workspace's crates (one copy, not a `tests/common`
//! per crate).
//!
//! Goals: what several crates' tests need to stand up and watch real parts: a fresh dev
//! chain (our runtime wasm under chopsticks, via `scripts/devnet-chain`) per end-to-end
//! test, so that every such test owns its chain and the tests can run side by side;
//! bounded waits; a daemon's `/metrics`; signed feeds and a small job module for the
//! execution-job tests.
//! Non-goals: mocks of any part; anything a shipped binary links.

pub mod chain;
pub mod cores;
pub mod feeds;
pub mod proxy;
pub mod wait;

pub use chain::{BlockMode, DevChain};
pub use cores::{block, fill, key_of, reader, writer};
pub use feeds::{SignedFeed, abi_module, noise, reverse_wasm, reverse_wasm_after};
pub use proxy::Proxy;
pub use wait::{metric, scrape, wait_for};
