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
}

/// Transport limits (see `datdot_net::Limits`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Concurrent connections (default 256).
    pub max_connections: usize,
    /// Largest frame in bytes (default 4 MiB).
    pub max_frame: usize,
    /// Messages queued from one peer before it counts as a flood (default 512).
    pub max_queued: usize,
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
            max_frame: l.max_frame,
            max_queued: l.max_queued,
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
        }
    }
}

impl Config {
    /// The transport limits, validated.
    pub fn limits(&self) -> anyhow::Result<Limits> {
        let c = &self.limits;
        Limits {
            max_connections: c.max_connections,
            max_frame: c.max_frame,
            max_queued: c.max_queued,
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
        Ok(())
    }

    /// Read and validate `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading {} (run `datdot-hoster init` first)",
                path.display()
            )
        })?;
        let c: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        c.validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(c)
    }

    /// The file `init` writes: every field, with comments.
    pub fn to_commented_toml(&self) -> String {
        let l = &self.limits;
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
             # block requests in flight while fetching a feed\n\
             request_window = {}\n\
             handshake_timeout_ms = {}\n\
             idle_timeout_secs = {}\n\
             progress_timeout_secs = {}\n",
            self.listen,
            self.metrics,
            self.receipt_every,
            l.max_connections,
            l.max_frame,
            l.max_queued,
            l.request_window,
            l.handshake_timeout_ms,
            l.idle_timeout_secs,
            l.progress_timeout_secs
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
}
