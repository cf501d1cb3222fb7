//! The datdot hoster: keeps Hypercore feeds on disk, fetches newly assigned feeds
//! (verifying every block), serves them to any reader over the datdot transport, and
//! signs a receipt every N blocks served and at session end.
//!
//! # Goals
//! - `init` (keystore 0600 + commented TOML config), `run`, `add-feed`, `info`.
//! - With a `[chain]` section, `run` registers with the chain and fetches, serves and
//!   confirms the feeds assigned to it ([`hook`]).
//! - Survive kill -9 at any point without losing verified data.
//! - `tracing` logs and Prometheus `/metrics`.
//!
//! # Non-goals (yet)
//! - Following a feed that grows after it was fetched, and giving a feed up when its
//!   contract ends (it stays on disk and served).

pub mod config;
pub mod hook;
pub mod metrics;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use datdot_net::{
    Counters, Expect, FetchOptions, Limits, Listener, NoiseIdentity, Progress, ServeConfig, dial,
    fetch, serve,
};
use datdot_protocol::identity::Keypair;
use datdot_store::{self as store, Store};
use tracing::{info, warn};

pub use config::{ChainConfig, Config};
pub use datdot_node::Keystore;

/// File names inside the hoster directory.
pub const CONFIG_FILE: &str = "hoster.toml";
/// The keystore file.
pub const KEYSTORE_FILE: &str = "keystore";
const INIT_HINT: &str = "datdot-hoster init";

/// Create the hoster directory: keystore (0600), config, `feeds/`.
pub fn init(dir: &Path, config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    std::fs::create_dir_all(dir.join("feeds"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let cfg = dir.join(CONFIG_FILE);
    if cfg.exists() {
        anyhow::bail!("{} already exists; not overwriting", cfg.display());
    }
    Keystore::generate().create(&dir.join(KEYSTORE_FILE), "hoster")?;
    std::fs::write(&cfg, config.to_commented_toml())?;
    Ok(())
}

/// Public identities of a hoster directory: (Noise static key, signing key).
pub fn identities(dir: &Path) -> anyhow::Result<([u8; 32], [u8; 32])> {
    let ks = Keystore::load(&dir.join(KEYSTORE_FILE), INIT_HINT)?;
    Ok((
        NoiseIdentity::from_seed(ks.noise).public(),
        *Keypair::from_seed(&ks.signing).public().as_bytes(),
    ))
}

/// Serve every complete feed until the process is stopped; with `config.chain`, also
/// register and take assignments ([`hook`]; a registration the chain refuses ends `run`
/// with the chain's reason). `on_ready` gets the bound listen and metrics addresses.
pub async fn run(
    dir: &Path,
    config: Config,
    on_ready: impl FnOnce(SocketAddr, SocketAddr),
) -> anyhow::Result<()> {
    let ks = Keystore::load(&dir.join(KEYSTORE_FILE), INIT_HINT)?;
    let limits = config.limits()?;
    let store = Arc::new(Store::new(dir));
    let n = store.scan().await?;
    info!(feeds = n, "feeds loaded");
    let counters = Arc::new(Counters::default());
    let hook_counters = Arc::new(hook::HookCounters::default());
    let identity = NoiseIdentity::from_seed(ks.noise);
    let noise_key = identity.public();
    let listener = Listener::bind(config.listen, identity, limits.clone(), counters.clone())
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let listen = listener.local_addr()?;
    let metrics_l = tokio::net::TcpListener::bind(config.metrics)
        .await
        .with_context(|| format!("metrics endpoint {}", config.metrics))?;
    let metrics_addr = metrics_l.local_addr()?;
    let render = {
        let (c, h, s) = (counters.clone(), hook_counters.clone(), store.clone());
        Arc::new(move || metrics::render(&c, &h, &s))
    };
    tokio::spawn(datdot_node::prometheus::serve_on(metrics_l, render));
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
    let signer = Keypair::from_seed(&ks.signing);
    let (chain_id, receipts_for) = tokio::sync::watch::channel(load_chain_id(dir));
    let hook = match &config.chain {
        Some(chain) => Some(hook::run(hook::HookParams {
            dir: dir.to_path_buf(),
            chain: chain.clone(),
            advertise: chain.advertised(listen)?,
            noise_key,
            signing_key: *signer.public().as_bytes(),
            limits,
            store: store.clone(),
            counters: hook_counters,
            chain_id,
        })),
        None => None,
    };
    on_ready(listen, metrics_addr);
    let cfg = ServeConfig {
        signer: Arc::new(signer),
        chain: receipts_for,
        receipt_every: config.receipt_every,
        counters,
    };
    let serving = listener.run(move |conn| {
        let (store, cfg) = (store.clone(), cfg.clone());
        async move {
            let peer = conn.peer_addr();
            // One line per session that was served data; the rest (failed or empty
            // sessions, which any peer can cause) only within the peer-log budget.
            match serve(conn, store.as_ref(), &cfg).await {
                Ok(s) if s.blocks > 0 => info!(%peer, blocks = s.blocks, bytes = s.bytes, receipts = s.receipts, "session ended"),
                Ok(_) if datdot_net::listen::peer_log_allowed() => info!(%peer, "session ended: nothing served"),
                Err(e) if datdot_net::listen::peer_log_allowed() => info!(%peer, "session ended: {e}"),
                _ => {}
            }
        }
    });
    let Some(hook) = hook else {
        serving.await?;
        return Ok(());
    };
    tokio::pin!(serving);
    let hooked = tokio::select! {
        r = &mut serving => {
            r?;
            return Ok(());
        }
        r = hook => r,
    };
    // The hook only returns with an error (it cannot take part); never stop serving
    // quietly: report it.
    hooked.context("chain hook")?;
    serving.await?;
    Ok(())
}

/// The id (`datdot_protocol::identity::chain_id`) of the chain this hoster last connected to, 64 hex.
pub const CHAIN_ID_FILE: &str = "chain-id";

/// The chain id saved in `dir`, or zeros (no chain yet, or an unreadable file).
fn load_chain_id(dir: &Path) -> [u8; 32] {
    std::fs::read_to_string(dir.join(CHAIN_ID_FILE))
        .ok()
        .and_then(|h| hex::decode(h.trim()).ok())
        .and_then(|b| b.try_into().ok())
        .unwrap_or_default()
}

/// Save the chain id in `dir` (atomically: write, then rename).
pub(crate) fn save_chain_id(dir: &Path, id: &[u8; 32]) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{CHAIN_ID_FILE}.tmp"));
    std::fs::write(&tmp, hex::encode(id))?;
    std::fs::rename(&tmp, dir.join(CHAIN_ID_FILE))?;
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
            "feed {} is already complete (a running `run` may be serving it; following a growing feed is not supported yet)",
            hex::encode(key)
        );
    }
    let expect = match peer_key {
        Some(k) => Expect::Key(k),
        None => {
            warn!(
                "no --peer-key: not pinning the source's Noise key (blocks are still verified against the feed key)"
            );
            Expect::Any
        }
    };
    let opts = FetchOptions::default();
    fetch_feed(dir, &limits, key, from, expect, &opts, 1, progress).await
}

/// Fetch feed `key` from `from` into `dir/feeds/`, verifying every block and resuming
/// what is stored; writes the `complete` marker once at least `min_length` blocks are
/// stored contiguously. The caller makes sure the feed is not complete already (a
/// complete feed may be open for serving) and that no other fetch of it runs.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_feed(
    dir: &Path,
    limits: &Limits,
    key: [u8; 32],
    from: SocketAddr,
    expect: Expect,
    opts: &FetchOptions,
    min_length: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> anyhow::Result<AddFeedReport> {
    let path = store::feed_dir(dir, &key);
    std::fs::create_dir_all(&path)?;
    std::fs::write(path.join("source"), from.to_string())?;
    let started = Instant::now();
    let core = store::open_core(&path, &key).await?;
    let already = core.info().contiguous_length;
    let session = async {
        let conn = dial(from, expect, limits).await?;
        anyhow::Ok(fetch(conn, key, &core, opts, progress).await?)
    }
    .await;
    drop(core);
    let report = session?;
    // Check what is on disk, not what the session saw: reopen (which flushes the oplog,
    // see `store::open_core`) before writing the marker.
    let info = store::open_core(&path, &key).await?.info();
    if info.length == 0 || info.contiguous_length < info.length {
        anyhow::bail!(
            "feed incomplete after the session: {} of {} blocks stored; fetching again resumes",
            info.contiguous_length,
            info.length
        );
    }
    if info.length < min_length {
        anyhow::bail!(
            "the peer has only {} blocks of the {min_length} expected",
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
