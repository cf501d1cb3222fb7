//! The `datdot` command line: publish feeds with hosting plans, query reports and
//! hosters, and run a local devnet of the whole system (`datdot devnet`).
//!
//! # Goals
//! - Human-readable tables with units on every figure, `--json` for scripts, errors that
//!   say what to do.
//! - `datdot devnet`: one command that shows the whole flow on 127.0.0.1 with real
//!   processes, and scenarios where a hoster or attestors misbehave.
//!
//! # Non-goals
//! - Protocol logic (it is in `datdot-protocol`, the daemons and the chain): the CLI
//!   only publishes, reads, and orchestrates processes.

pub mod devnet;
pub mod feed;
pub mod query;
pub mod table;
pub mod units;
