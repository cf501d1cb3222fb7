//! `attestor.toml`: typed, with documented defaults, validated on load. CLI flags
//! override it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use datdot_protocol::audit::AuditConfig;
use serde::{Deserialize, Serialize};

/// The attestor's configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the other committee members connect (default `0.0.0.0:7300`).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` endpoint (default `127.0.0.1:9300`).
    pub metrics: SocketAddr,
    /// Blocks sampled per audit (default 32). With a chain, its `AuditSamples` constant
    /// replaces it: the chain refuses a report that sampled another number of blocks.
    pub samples: u32,
    /// Block requests in flight during an audit, like an ordinary reader (default 16).
    pub window: usize,
    /// Challenges handled at once; more wait (default 8).
    pub max_challenges: usize,
    /// Audit time limits.
    #[serde(default)]
    pub audit: AuditSection,
    /// The chain: without it `run` cannot learn of challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainConfig>,
}

/// `[audit]`: the limits of one audit (milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// The hoster may send nothing for this long while requests are in flight (10 s).
    pub progress_timeout_ms: u64,
    /// The whole audit ends after this, whatever the hoster does (60 s; also never past
    /// the challenge's end).
    pub hard_max_ms: u64,
    /// One request may take this long (20 s).
    pub request_timeout_ms: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        let d = AuditConfig::default();
        AuditSection {
            progress_timeout_ms: d.progress_timeout().as_millis() as u64,
            hard_max_ms: d.hard_max().as_millis() as u64,
            request_timeout_ms: d.request_timeout().as_millis() as u64,
        }
    }
}

impl AuditSection {
    /// The validated limits, with the hard maximum capped at `cap`.
    pub fn config(&self, cap: Option<Duration>) -> anyhow::Result<AuditConfig> {
        let c = AuditConfig::new(
            Duration::from_millis(self.progress_timeout_ms),
            Duration::from_millis(self.hard_max_ms),
            Duration::from_millis(self.request_timeout_ms),
        )
        .map_err(|e| anyhow::anyhow!("invalid [audit]: {e}"))?;
        Ok(cap.map_or(c, |cap| c.capped(cap)))
    }
}

/// `[chain]`: how `run` registers and learns of challenges.
pub type ChainConfig = datdot_node::chain::ChainConfig<AttestorChain>;

/// The attestor's own fields of `[chain]`: none it uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestorChain {
    /// Superseded: the block time is the chain's own `BlockMs` constant (the whole
    /// committee must schedule windows with one value). Read so that older files still
    /// load; `run` logs when it differs from the chain's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_ms: Option<u64>,
}

impl datdot_node::chain::ChainRole for AttestorChain {
    const DEFAULT_STAKE: u64 = 50;
    const EXAMPLE_KEY: &'static str = "dev:attestor-1";
    const EXAMPLE_ADVERTISE: &'static str = "203.0.113.7:7300";

    fn validate(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn toml_lines(&self) -> String {
        self.block_ms
            .map(|ms| format!("block_ms = {ms}\n"))
            .unwrap_or_default()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 7300)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 9300)),
            samples: 32,
            window: 16,
            max_challenges: 8,
            audit: AuditSection::default(),
            chain: None,
        }
    }
}

impl Config {
    /// Check everything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=datdot_net::audit::MAX_SAMPLE as u32).contains(&self.samples) {
            anyhow::bail!("samples must be in 1..={}", datdot_net::audit::MAX_SAMPLE);
        }
        if !(1..=256).contains(&self.window) {
            anyhow::bail!("window must be in 1..=256");
        }
        if !(1..=64).contains(&self.max_challenges) {
            anyhow::bail!("max_challenges must be in 1..=64");
        }
        self.audit.config(None)?;
        if let Some(c) = &self.chain {
            c.validate()?;
        }
        Ok(())
    }

    /// Read and validate `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let c: Config = datdot_node::daemon::read_toml(path, "datdot-attestor init")?;
        c.validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(c)
    }

    /// The file `init` writes: every field, with comments.
    pub fn to_commented_toml(&self) -> String {
        let a = &self.audit;
        let chain = ChainConfig::to_toml(self.chain.as_ref());
        format!(
            "# datdot attestor configuration. CLI flags override these values.\n\
             # Where the other members of a challenge's committee connect (TCP, Noise XX).\n\
             listen = \"{}\"\n\
             # Prometheus metrics endpoint (GET /metrics).\n\
             metrics = \"{}\"\n\
             # Blocks sampled per audit (with a chain, the chain's AuditSamples is used).\n\
             samples = {}\n\
             # Block requests in flight during an audit.\n\
             window = {}\n\
             # Challenges handled at once.\n\
             max_challenges = {}\n\n\
             [audit]\n\
             # The hoster may send nothing for this long while requests are in flight.\n\
             progress_timeout_ms = {}\n\
             # An audit never lasts longer than this (in a challenge: nor than the window's\n\
             # last tenth less 0.5 s, what every member of the committee gets).\n\
             hard_max_ms = {}\n\
             request_timeout_ms = {}\n\n\
             # The chain: with this section `run` registers this attestor (stake in whole\n\
             # tokens, the address committee members dial; default: listen) and answers\n\
             # every challenge that names it. `key` is `dev:<name>` (devnet) or a 0600 key\n\
             # file with an sr25519 seed. The block time is the chain's (BlockMs).\n\
             {}",
            self.listen,
            self.metrics,
            self.samples,
            self.window,
            self.max_challenges,
            a.progress_timeout_ms,
            a.hard_max_ms,
            a.request_timeout_ms,
            chain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_toml_round_trips_and_is_checked() {
        let mut c = Config::default();
        let back: Config = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        back.validate().unwrap();
        c.chain = Some(ChainConfig::new(
            "ws://127.0.0.1:8000".into(),
            "dev:attestor-1".into(),
        ));
        c.chain.as_mut().unwrap().advertise = Some("127.0.0.1:7300".parse().unwrap());
        let back: Config = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        back.validate().unwrap();
        for bad in [
            Config {
                samples: 0,
                ..Config::default()
            },
            Config {
                window: 0,
                ..Config::default()
            },
            Config {
                audit: AuditSection {
                    hard_max_ms: 0,
                    ..AuditSection::default()
                },
                ..Config::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(toml::from_str::<Config>("listen = \"1.2.3.4:5\"\nbogus = 1").is_err());
        let chain = ChainConfig::new("http://x".into(), "dev:a".into());
        assert!(chain.validate().is_err());
        // A file from before the block time was the chain's still loads.
        let old = "listen = \"127.0.0.1:1\"\nmetrics = \"127.0.0.1:2\"\nsamples = 32\n\
                   window = 16\nmax_challenges = 8\n\
                   [chain]\nurl = \"ws://x:1\"\nkey = \"dev:attestor-2\"\nblock_ms = 2000\n";
        let c: Config = toml::from_str(old).unwrap();
        let chain = c.chain.unwrap();
        assert_eq!((chain.stake, chain.role.block_ms), (50, Some(2000)));
    }

    #[test]
    fn audit_limits_are_capped_by_the_window() {
        let a = AuditSection::default();
        let c = a.config(Some(Duration::from_secs(3))).unwrap();
        assert_eq!(c.hard_max(), Duration::from_secs(3));
        assert!(c.progress_timeout() <= c.hard_max());
        assert_eq!(a.config(None).unwrap(), AuditConfig::default());
    }
}
