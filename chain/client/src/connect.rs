//! Connecting, and what the chain is: its identity and the constants the committee
//! must agree on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use subxt::{OnlineClient, SubstrateConfig};
use subxt_rpcs::client::{ReconnectingRpcClient, RpcClient, reconnecting_rpc_client};
use tracing::debug;

use crate::{CONNECT_ATTEMPTS, ChainClient, ChainError, ChainHealth, ChainReset, datdot};

impl ChainClient {
    /// Connect to `url` (`ws://` allowed: the devnet is local), retrying with backoff
    /// (0.25 s doubling to 4 s) up to [`CONNECT_ATTEMPTS`] times. Once connected, a dropped
    /// connection is re-established in the background (backoff 0.1 s doubling to 5 s).
    pub async fn connect(url: &str) -> Result<Self> {
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match Self::connect_once(url).await {
                Ok(c) => return Ok(c),
                Err(e) if attempt < CONNECT_ATTEMPTS => {
                    debug!(%url, attempt, error = %format!("{e:#}"), "chain not reachable yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("connecting to the chain at {url} failed {CONNECT_ATTEMPTS} times (is it running?)")
                    });
                }
            }
        }
    }

    async fn connect_once(url: &str) -> Result<Self> {
        let inner = ReconnectingRpcClient::builder()
            .retry_policy(
                reconnecting_rpc_client::ExponentialBackoff::from_millis(100)
                    .max_delay(Duration::from_secs(5)),
            )
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .await
            .with_context(|| format!("opening a websocket to {url}"))?;
        let rpc = RpcClient::new(inner);
        // The runtime's spec and transaction versions, read once (a cheap RPC) and given
        // to subxt for every block: otherwise it asks for them with a `Core_version`
        // runtime call each time it opens a block — ~55 ms of a chopsticks node's CPU per
        // storage read, which a dozen devnet processes turned into a stalled chain. A
        // runtime upgrade needs a new connection (the dev runtime never upgrades).
        let version: serde_json::Value = rpc
            .request("state_getRuntimeVersion", subxt_rpcs::rpc_params![])
            .await
            .context("reading the runtime version")?;
        let field = |k: &str| {
            version[k]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .with_context(|| format!("the runtime version has no {k}"))
        };
        let config = subxt::config::substrate::SubstrateConfigBuilder::new()
            .set_spec_version_for_block_ranges([subxt::config::substrate::SpecVersionForRange {
                block_range: 0..u64::MAX,
                spec_version: field("specVersion")?,
                transaction_version: field("transactionVersion")?,
            }])
            .build();
        let api = OnlineClient::<SubstrateConfig>::from_rpc_client_with_config(config, rpc.clone())
            .await
            .context("reading the chain's metadata")?;
        let mut c = ChainClient {
            api,
            rpc,
            chain_id: [0; 32],
            health: Arc::default(),
            nonces: Arc::default(),
        };
        c.chain_id = c.served_chain_id().await?;
        Ok(c)
    }

    /// Whether the chain answers the event follower (see [`ChainHealth`]).
    pub fn health(&self) -> Arc<ChainHealth> {
        self.health.clone()
    }

    /// The underlying subxt client (for queries this crate does not wrap).
    pub fn api(&self) -> &OnlineClient<SubstrateConfig> {
        &self.api
    }

    /// The chain's identity (`datdot_protocol::identity::chain_id` of its genesis hash
    /// and `Datdot.ChainSalt`), read when this client connected: what coin-flip
    /// sessions, reports and receipts are signed for.
    pub fn chain_id(&self) -> [u8; 32] {
        self.chain_id
    }

    /// The identity of the chain the node at our URL serves now. A dev chain started
    /// again is a new chain (its genesis has a new salt): everything this client signs
    /// would be for the old one.
    pub async fn served_chain_id(&self) -> Result<[u8; 32], ChainError> {
        const GENESIS: &str = "the genesis hash";
        let h: Option<String> = self
            .rpc
            .request("chain_getBlockHash", subxt_rpcs::rpc_params![0u32])
            .await
            .map_err(|e| ChainError::read(GENESIS)(e.into()))?;
        let h = h
            .context("the node has no genesis block")
            .map_err(ChainError::read(GENESIS))?;
        let genesis: [u8; 32] = hex::decode(h.trim_start_matches("0x"))
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("not 32 bytes of hex")
            .map_err(ChainError::decode(GENESIS))?;
        let salt = self
            .read("ChainSalt", datdot::storage().datdot().chain_salt(), ())
            .await?;
        Ok(datdot_protocol::identity::chain_id(&genesis, &salt))
    }

    /// Blocks every audit samples (the runtime constant `Datdot.AuditSamples`; the chain
    /// refuses a conclusive report that sampled another number).
    pub async fn audit_samples(&self) -> Result<u32, ChainError> {
        let at = self.at().await?;
        at.constants()
            .entry(datdot::constants().datdot().audit_samples())
            .map_err(ChainError::decode("the AuditSamples constant"))
    }

    /// The chain's block time in milliseconds (the runtime constant `Datdot.BlockMs`):
    /// what a committee schedules its challenge windows with.
    pub async fn block_ms(&self) -> Result<u64, ChainError> {
        let at = self.at().await?;
        at.constants()
            .entry(datdot::constants().datdot().block_ms())
            .map_err(ChainError::decode("the BlockMs constant"))
    }

    /// How far (percent) a report's availability may stray from the committee's median
    /// before settlement flags it an outlier (the runtime constant
    /// `Datdot.OutlierTolerancePercent`, the `tolerance_percent` of
    /// `datdot_protocol::metrics::outliers`).
    pub async fn outlier_tolerance_percent(&self) -> Result<u32, ChainError> {
        let at = self.at().await?;
        at.constants()
            .entry(datdot::constants().datdot().outlier_tolerance_percent())
            .map_err(ChainError::decode("the OutlierTolerancePercent constant"))
    }

    /// An error if the node now serves another chain than the one we connected to
    /// (`call` names what was about to be signed).
    pub(crate) async fn ensure_same_chain(&self, call: &'static str) -> Result<(), ChainError> {
        let now = self.served_chain_id().await.map_err(|e| match e {
            ChainError::Read { cause, .. } => ChainError::Transport { call, cause },
            e => e,
        })?;
        if now != self.chain_id() {
            return Err(ChainReset {
                was: self.chain_id(),
                now,
            }
            .into());
        }
        Ok(())
    }
}
