//! The datdot attestor: answers the challenges the chain assigns to it.
//!
//! For each challenge: connect to the other members of the committee over the secret
//! swarm ([`datdot_net::swarm`]: mutual Noise against the keys they registered on chain), run the
//! commit-reveal coin flip over it ([`flip`], the protocol crate's state machine), derive
//! its join time and sample from `R` (`protocol::schedule`), audit the hoster at that
//! time with a fresh identity (`datdot_net::audit`), and after the challenge's end
//! submit a signed report; fraud proofs (equivocation, invalid reveal, divergent
//! result, bad data) go to the chain as soon as they are verified ([`challenge`],
//! [`hook`]). Every decision of a challenge is made by the protocol's sans-IO lifecycle
//! machine (`protocol::lifecycle`); [`challenge`] carries out its actions. What it needs
//! to report after a restart (the machine's progress) is kept in [`state`] (redb).
//!
//! # Goals
//! - `init` (keystore 0600 + commented TOML), `run` (with the chain), `info`, and two
//!   operator tools that need no chain: `flip` (coin flips with a committee from a
//!   file; the latency bench) and `audit` (one audit of a hoster, printed as JSON).
//! - Bounded everything: committee links, queues, concurrent challenges, audit time.
//! - `tracing` logs with a span per challenge; Prometheus `/metrics` ([`metrics`]).
//!
//! # Non-goals (yet)
//! - Discovering hosters through a Hyperswarm DHT: the hoster's registered address is
//!   dialled directly (with a fresh identity, so the hoster cannot tell an audit from
//!   an ordinary reader by key).

pub mod config;
pub mod flip;

pub use config::{ChainConfig, Config};
pub mod challenge;
pub mod hook;
pub mod metrics;
pub mod state;
pub mod tools;

use std::path::Path;

use anyhow::Context;
use datdot_node::Keystore;
use datdot_protocol::identity::Keypair;

/// The config file inside the attestor directory.
pub const CONFIG_FILE: &str = "attestor.toml";
/// The keystore file.
pub const KEYSTORE_FILE: &str = "keystore";
/// The state file (redb).
pub const STATE_FILE: &str = "state.redb";
const INIT_HINT: &str = "datdot-attestor init";

/// Create the attestor directory: keystore (0600) and config.
pub fn init(dir: &Path, config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = dir.join(CONFIG_FILE);
    if cfg.exists() {
        anyhow::bail!("{} already exists; not overwriting", cfg.display());
    }
    Keystore::generate().create(&dir.join(KEYSTORE_FILE), "attestor")?;
    std::fs::write(&cfg, config.to_commented_toml())?;
    Ok(())
}

/// The keystore of an attestor directory.
pub fn keystore(dir: &Path) -> anyhow::Result<Keystore> {
    Keystore::load(&dir.join(KEYSTORE_FILE), INIT_HINT)
}

/// Public identities of an attestor directory: (Noise static key, signing key).
pub fn identities(dir: &Path) -> anyhow::Result<([u8; 32], [u8; 32])> {
    let ks = keystore(dir)?;
    Ok((
        datdot_net::NoiseIdentity::from_seed(ks.noise).public(),
        *Keypair::from_seed(&ks.signing).public().as_bytes(),
    ))
}
