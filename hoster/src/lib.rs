//! The datdot hoster: keeps Hypercore feeds on disk, fetches newly assigned feeds
//! (verifying every block), serves them to any reader over the datdot transport, and
//! signs a receipt every N blocks served and at session end.
//!
//! # Goals
//! - `init` (keystore 0600 + commented TOML config), `run`, `add-feed`, `info`.
//! - Survive kill -9 at any point without losing verified data.
//! - `tracing` logs and Prometheus `/metrics`.
//!
//! # Non-goals (yet)
//! - The chain hook (registration, assignments, proofs of storage): until the chain
//!   client exists feeds are assigned with `add-feed`; nothing here pretends to be the chain.

pub mod config;
pub mod flush;
pub mod keystore;
pub mod metrics;
pub mod oplog;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datdot_net::{
    Counters, Expect, FetchOptions, Listener, NoiseIdentity, Progress, ServeConfig, dial, fetch,
    serve,
};
use datdot_protocol::identity::Keypair;
use tracing::{info, warn};

pub use config::Config;
pub use keystore::Keystore;
pub use store::Store;

/// File names inside the hoster directory.
pub const CONFIG_FILE: &str = "hoster.toml";
/// The keystore file.
pub const KEYSTORE_FILE: &str = "keystore";

/// Create the hoster directory: keystore (0600), config, `feeds/`.
pub fn init(dir: &Path, config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    std::fs::create_dir_all(dir.join("feeds"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let cfg = dir.join(CONFIG_FILE);
    if cfg.exists() {
        anyhow::bail!("{} already exists; not overwriting", cfg.display());
    }
    Keystore::generate().create(&dir.join(KEYSTORE_FILE))?;
    std::fs::write(&cfg, config.to_commented_toml())?;
    Ok(())
}

/// Public identities of a hoster directory: (Noise static key, signing key).
pub fn identities(dir: &Path) -> anyhow::Result<([u8; 32], [u8; 32])> {
    let ks = Keystore::load(&dir.join(KEYSTORE_FILE))?;
    Ok((
        NoiseIdentity::from_seed(ks.noise).public(),
        *Keypair::from_seed(&ks.signing).public().as_bytes(),
    ))
}

/// Serve every complete feed until the process is stopped. `on_ready` gets the bound
/// listen and metrics addresses.
pub async fn run(
    dir: &Path,
    config: Config,
    on_ready: impl FnOnce(SocketAddr, SocketAddr),
) -> anyhow::Result<()> {
    let ks = Keystore::load(&dir.join(KEYSTORE_FILE))?;
    let limits = config.limits()?;
    let store = Arc::new(Store::new(dir));
    let n = store.scan().await?;
    info!(feeds = n, "feeds loaded");
    let counters = Arc::new(Counters::default());
    let identity = NoiseIdentity::from_seed(ks.noise);
    let listener = Listener::bind(config.listen, identity, limits, counters.clone())
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let listen = listener.local_addr()?;
    let metrics_l = tokio::net::TcpListener::bind(config.metrics)
        .await
        .with_context(|| format!("metrics endpoint {}", config.metrics))?;
    let metrics_addr = metrics_l.local_addr()?;
    drop(metrics_l);
    tokio::spawn({
        let (c, s) = (counters.clone(), store.clone());
        async move {
            if let Err(e) = metrics::serve(metrics_addr, c, s).await {
                warn!("metrics endpoint stopped: {e:#}");
            }
        }
    });
    // Pick up feeds that `add-feed` completes while we run.
    tokio::spawn({
        let store = store.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Err(e) = store.scan().await {
                    warn!("rescanning feeds: {e:#}");
                }
            }
        }
    });
    on_ready(listen, metrics_addr);
    let cfg = ServeConfig {
        signer: Arc::new(Keypair::from_seed(&ks.signing)),
        receipt_every: config.receipt_every,
        counters,
    };
    listener
        .run(move |conn| {
            let (store, cfg) = (store.clone(), cfg.clone());
            async move {
                let peer = conn.peer_addr();
                match serve(conn, store.as_ref(), &cfg).await {
                    Ok(s) => info!(%peer, blocks = s.blocks, bytes = s.bytes, receipts = s.receipts, "session ended"),
                    Err(e) => info!(%peer, "session ended: {e}"),
                }
            }
        })
        .await?;
    Ok(())
}

/// What `add-feed` did.
#[derive(Debug, Clone)]
pub struct AddFeedReport {
    /// Blocks fetched and verified now.
    pub fetched: u64,
    /// Blocks that were already stored (verified earlier).
    pub already: u64,
    /// Feed length.
    pub length: u64,
    /// Bytes fetched.
    pub bytes: u64,
    /// Receipts received.
    pub receipts: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Fetch feed `key` from `from` into the store, verifying every block; resumable.
pub async fn add_feed(
    dir: &Path,
    config: &Config,
    key: [u8; 32],
    from: SocketAddr,
    peer_key: Option<[u8; 32]>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<AddFeedReport> {
    let limits = config.limits()?;
    let path = store::feed_dir(dir, &key);
    if path.join(store::COMPLETE).exists() {
        anyhow::bail!(
            "feed {} is already complete (a running `run` may be serving it; following a growing feed comes with the chain client)",
            hex::encode(key)
        );
    }
    std::fs::create_dir_all(&path)?;
    std::fs::write(path.join("source"), from.to_string())?;
    let expect = match peer_key {
        Some(k) => Expect::Key(k),
        None => {
            warn!(
                "no --peer-key: not pinning the source's Noise key (blocks are still verified against the feed key)"
            );
            Expect::Any
        }
    };
    let started = Instant::now();
    let core = store::open_core(&path, &key).await?;
    let already = core.info().contiguous_length;
    let conn = dial(from, expect, &limits).await?;
    let report = fetch(conn, key, &core, &FetchOptions::default(), progress).await?;
    drop(core);
    // Check what is on disk, not what the session saw: reopen (which flushes the oplog,
    // see `store::open_core`) before writing the marker.
    let info = store::open_core(&path, &key).await?.info();
    if info.length == 0 || info.contiguous_length < info.length {
        anyhow::bail!(
            "feed incomplete after the session: {} of {} blocks stored; run add-feed again to resume",
            info.contiguous_length,
            info.length
        );
    }
    let marker = path.join(store::COMPLETE);
    std::fs::write(&marker, info.length.to_string())?;
    std::fs::File::open(&marker)?.sync_all()?;
    Ok(AddFeedReport {
        fetched: report.blocks,
        already,
        length: info.length,
        bytes: report.bytes,
        receipts: report.receipts.len(),
        elapsed: started.elapsed(),
    })
}
