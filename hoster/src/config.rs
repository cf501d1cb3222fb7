//! `hoster.toml`: typed, with documented defaults, validated on load. CLI flags
//! override it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use datdot_net::Limits;
use serde::{Deserialize, Serialize};

/// The hoster's configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where readers connect (default `0.0.0.0:7100`).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` endpoint (default `127.0.0.1:9100`).
    pub metrics: SocketAddr,
    /// A signed receipt every this many blocks served on a connection (default 100).
    pub receipt_every: usize,
    /// Transport limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The chain hook: without this section `run` only serves the feeds on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainConfig>,
}

/// `[chain]`: how `run` registers with the chain and learns its assignments.
pub type ChainConfig = datdot_node::chain::ChainConfig<HosterChain>;

/// The hoster's own fields of `[chain]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HosterChain {
    /// Feeds this hoster accepts (default 16).
    pub capacity: u32,
    /// Most blocks of a feed this hoster fetches (default 2^24, the dev chain's
    /// `MaxFeedLength`): an assignment of a longer feed is not fetched (the chain then
    /// replaces this hoster), whatever the publisher signed.
    pub max_feed_length: u64,
}

impl Default for HosterChain {
    fn default() -> Self {
        HosterChain {
            capacity: 16,
            max_feed_length: 1 << 24,
        }
    }
}

impl datdot_node::chain::ChainRole for HosterChain {
    const DEFAULT_STAKE: u64 = 100;
    const EXAMPLE_KEY: &'static str = "dev:hoster-1";
    const EXAMPLE_ADVERTISE: &'static str = "203.0.113.7:7100";

    fn validate(&self) -> anyhow::Result<()> {
        if self.capacity == 0 {
            anyhow::bail!("[chain] capacity must be at least 1 feed");
        }
        if self.max_feed_length == 0 {
            anyhow::bail!("[chain] max_feed_length must be at least 1 block");
        }
        Ok(())
    }

    fn toml_lines(&self) -> String {
        format!(
            "capacity = {}
max_feed_length = {}
",
            self.capacity, self.max_feed_length
        )
    }
}

/// Transport limits (see `datdot_net::Limits`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Established sessions at once (default 256); past it a newcomer evicts the
    /// least recently useful idle session.
    pub max_connections: usize,
    /// Established sessions from one address (default 64).
    pub max_connections_per_ip: usize,
    /// Handshakes in progress at once (default 64; the oldest makes room).
    pub max_handshakes: usize,
    /// Handshakes in progress from one address (default 16).
    pub max_handshakes_per_ip: usize,
    /// Largest frame in bytes (default 4 MiB).
    pub max_frame: usize,
    /// Messages queued from one peer before it counts as a flood (default 512).
    pub max_queued: usize,
    /// Answer bytes waiting for the socket across all sessions (default 16 MiB) past
    /// which a session with more than 64 KiB waiting handles no new request.
    pub max_unsent_total: usize,
    /// Block requests in flight when fetching (default 64).
    pub request_window: usize,
    /// Handshake deadline in milliseconds (default 10000).
    pub handshake_timeout_ms: u64,
    /// Idle connections are closed after this many seconds (default 60).
    pub idle_timeout_secs: u64,
    /// A fetch fails after this many seconds without a verified block (default 20).
    pub progress_timeout_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            max_handshakes: l.max_handshakes,
            max_handshakes_per_ip: l.max_handshakes_per_ip,
            max_frame: l.max_frame,
            max_queued: l.max_queued,
            max_unsent_total: l.max_unsent_total,
            request_window: l.request_window,
            handshake_timeout_ms: l.handshake_timeout.as_millis() as u64,
            idle_timeout_secs: l.idle_timeout.as_secs(),
            progress_timeout_secs: l.progress_timeout.as_secs(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 7100)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 9100)),
            receipt_every: 100,
            limits: LimitsConfig::default(),
            chain: None,
        }
    }
}

impl Config {
    /// The transport limits, validated.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let c = &self.limits;
        Limits {
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            max_handshakes: c.max_handshakes,
            max_handshakes_per_ip: c.max_handshakes_per_ip,
            max_frame: c.max_frame,
            max_queued: c.max_queued,
            max_unsent_total: c.max_unsent_total,
            request_window: c.request_window,
            handshake_timeout: Duration::from_millis(c.handshake_timeout_ms),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            progress_timeout: Duration::from_secs(c.progress_timeout_secs),
            ..Limits::default()
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid [limits]: {e}"))
    }

    /// Check everything.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=datdot_protocol::receipt::MAX_RECEIPT_ENTRIES).contains(&self.receipt_every) {
            anyhow::bail!(
                "receipt_every must be in 1..={}",
                datdot_protocol::receipt::MAX_RECEIPT_ENTRIES
            );
        }
        self.limits()?;
        if let Some(c) = &self.chain {
            c.validate()?;
        }
        Ok(())
    }

    /// Read and validate `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let c: Config = datdot_node::daemon::read_toml(path, "datdot-hoster init")?;
        c.validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(c)
    }

    /// The file `init` writes: every field, with comments (the `[chain]` section
    /// commented out unless set).
    pub fn to_commented_toml(&self) -> String {
        let l = &self.limits;
        let chain = ChainConfig::to_toml(self.chain.as_ref());
        format!(
            "# datdot hoster configuration. CLI flags override these values.\n\
             # Where readers connect (TCP, Hypercore secret-stream Noise).\n\
             listen = \"{}\"\n\
             # Prometheus metrics endpoint (GET /metrics).\n\
             metrics = \"{}\"\n\
             # A signed receipt every this many blocks served on a connection (and at session end).\n\
             receipt_every = {}\n\n\
             [limits]\n\
             max_connections = {}\n\
             # bytes; a 64 KiB block with its proof is ~66 KiB\n\
             max_frame = {}\n\
             # messages queued from one peer before it counts as a flood\n\
             max_queued = {}\n\
             # bytes of answers waiting for slow readers, all sessions (memory bound)\n\
             max_unsent_total = {}\n\
             # block requests in flight while fetching a feed\n\
             request_window = {}\n\
             handshake_timeout_ms = {}\n\
             idle_timeout_secs = {}\n\
             progress_timeout_secs = {}\n\n\
             # The chain hook: with this section `run` registers this hoster (stake in whole\n\
             # tokens, capacity in feeds, the address peers dial; default: listen) and\n\
             # fetches, serves and confirms the feeds the chain assigns to it. `key` is\n\
             # `dev:<name>` (devnet) or a 0600 key file with an sr25519 seed.\n\
             {}",
            self.listen,
            self.metrics,
            self.receipt_every,
            l.max_connections,
            l.max_frame,
            l.max_queued,
            l.max_unsent_total,
            l.request_window,
            l.handshake_timeout_ms,
            l.idle_timeout_secs,
            l.progress_timeout_secs,
            chain
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_toml_round_trips_and_is_valid() {
        let c = Config::default();
        let back: Config = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        back.validate().unwrap();
        let bad = Config {
            receipt_every: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Config>("listen = \"1.2.3.4:5\"\nbogus = 1").is_err());
    }

    #[test]
    fn chain_section_round_trips_with_defaults_and_is_checked() {
        let mut c = Config {
            chain: Some(ChainConfig::new(
                "ws://127.0.0.1:8000".into(),
                "dev:hoster-1".into(),
            )),
            ..Config::default()
        };
        let back: Config = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        let chain = c.chain.as_mut().unwrap();
        chain.advertise = Some("10.0.0.1:7100".parse().unwrap());
        let back: Config = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        back.validate().unwrap();
        // Defaults for what is left out.
        let text = "listen = \"127.0.0.1:1\"\nmetrics = \"127.0.0.1:2\"\nreceipt_every = 100\n\
                    [chain]\nurl = \"ws://x:1\"\nkey = \"dev:hoster-2\"\n";
        let c: Config = toml::from_str(text).unwrap();
        let chain = c.chain.clone().unwrap();
        assert_eq!(
            (chain.stake, chain.role.capacity, chain.advertise),
            (100, 16, None)
        );
        // The listen address is advertised unless it cannot be dialled.
        let listen: SocketAddr = "127.0.0.1:7100".parse().unwrap();
        assert_eq!(chain.advertised(listen).unwrap(), listen);
        assert!(chain.advertised("0.0.0.0:7100".parse().unwrap()).is_err());
        for bad in [
            ChainConfig::new("http://x".into(), "dev:a".into()),
            ChainConfig::new("ws://x:1".into(), " ".into()),
            ChainConfig {
                role: HosterChain {
                    capacity: 0,
                    ..HosterChain::default()
                },
                ..chain.clone()
            },
            ChainConfig {
                advertise: Some("0.0.0.0:1".parse().unwrap()),
                ..chain.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
