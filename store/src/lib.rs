//! Feeds on disk: `<dir>/feeds/<hex key>/` holds one Hypercore (the `hypercore` crate's
//! disk storage: `data`, `tree`, `bitfield`, `oplog`). A feed is served once its
//! `complete` marker exists; a partial feed resumes where it stopped — every block on
//! disk was verified before it was written, and [`open_core`] recovers every block whose
//! verification had returned, so a kill -9 loses at most the blocks in flight.
//!
//! The hoster serves from it; the `datdot` CLI writes a publisher's own feed in the same
//! format, without linking the hoster.

pub mod flush;
pub mod oplog;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{Context, bail};
use datdot_net::FeedSource;
use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};
use hypercore_protocol::discovery_key;
use tracing::{info, warn};

use crate::flush::FlushError;
use crate::oplog::OplogError;

/// Marker file: the feed was fetched completely (up to the length seen then).
pub const COMPLETE: &str = "complete";

/// Length of feed `key` if it is stored complete (its `complete` marker).
pub fn stored_length(dir: &Path, key: &[u8; 32]) -> Option<u64> {
    std::fs::read_to_string(feed_dir(dir, key).join(COMPLETE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Feed public key and core, by discovery key.
type FeedMap = HashMap<[u8; 32], ([u8; 32], Hypercore)>;

/// The served feeds, by discovery key.
#[derive(Debug, Default)]
pub struct Store {
    dir: PathBuf,
    feeds: RwLock<FeedMap>,
}

/// Parse a feed key given as 64 hex characters.
pub fn parse_key(s: &str) -> anyhow::Result<[u8; 32]> {
    let v = hex::decode(s.trim()).context("feed key must be hex")?;
    let k: [u8; 32] = v
        .try_into()
        .map_err(|_| anyhow::anyhow!("feed key must be 32 bytes (64 hex characters)"))?;
    VerifyingKey::from_bytes(&k)
        .map_err(|_| anyhow::anyhow!("feed key is not a valid ed25519 key"))?;
    Ok(k)
}

/// The directory of feed `key` under the hoster directory `dir`.
pub fn feed_dir(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join("feeds").join(hex::encode(key))
}

/// Open (or create, read-only, for `key`) the Hypercore under `path`.
///
/// Works around a bug in `hypercore` 0.17.0-alpha.1 (docs/DESIGN.md §12.6): its oplog
/// *decoder* reads an entry's tree upgrade and bitfield parts under flag bit 2 where the
/// encoder sets bits 4 and 8, so a replicated core whose oplog still holds entries not
/// yet flushed into the `tree` and `bitfield` files (the crate flushes every fourth
/// write) cannot be reopened. Before the crate sees the storage, [`flush::flush_oplog`]
/// applies those entries itself with our own decoder and leaves an oplog without
/// entries, so the crate never runs its replay. Nothing verified is lost: every block
/// whose `verify_and_apply_proof` returned is in an entry or already flushed.
pub async fn open_core(path: &Path, key: &[u8; 32]) -> anyhow::Result<Hypercore> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    let (dir, k) = (path.to_path_buf(), *key);
    let flushed = tokio::task::spawn_blocking(move || flush::flush_oplog(&dir, &k))
        .await
        .context("oplog flush task")?;
    match flushed {
        Ok(None) => {}
        Ok(Some(p)) => info!(
            path = %path.display(),
            entries = p.entries,
            stale = p.stale,
            torn_bytes = p.torn_bytes,
            length = p.length,
            contiguous = p.contiguous,
            "flushed the oplog before opening (hypercore 0.17.0-alpha.1 cannot replay it)"
        ),
        Err(FlushError::Oplog(OplogError::NoHeader)) if never_written(path) => {
            // Killed after the crate created the files and before its first header
            // write: nothing was stored, start afresh.
            warn!(path = %path.display(), "oplog has no header and the feed holds no data: creating it anew");
            std::fs::remove_file(path.join("oplog"))
                .with_context(|| format!("removing {}", path.join("oplog").display()))?;
        }
        Err(e) => {
            return Err(e).with_context(|| format!("flushing the oplog of {}", path.display()));
        }
    }
    open_core_once(path, key).await
}

/// Whether the feed storage under `path` holds no block, node or bit.
fn never_written(path: &Path) -> bool {
    ["data", "tree", "bitfield"]
        .iter()
        .all(|f| std::fs::metadata(path.join(f)).map_or(true, |m| m.len() == 0))
}

async fn open_core_once(path: &Path, key: &[u8; 32]) -> anyhow::Result<Hypercore> {
    let exists = path.join("oplog").exists();
    let storage = Storage::new_disk(&path.to_path_buf(), false)
        .await
        .with_context(|| format!("opening storage {}", path.display()))?;
    let builder = HypercoreBuilder::new(storage);
    let core = if exists {
        builder.open(true).build().await
    } else {
        builder
            .key_pair(PartialKeypair {
                public: VerifyingKey::from_bytes(key).context("bad feed key")?,
                secret: None,
            })
            .build()
            .await
    }
    .with_context(|| format!("opening feed {}", path.display()))?;
    if &core.key_pair().public.to_bytes() != key {
        bail!(
            "{} holds another feed than {}",
            path.display(),
            hex::encode(key)
        );
    }
    Ok(core)
}

impl Store {
    /// A store over hoster directory `dir` (nothing loaded yet).
    pub fn new(dir: &Path) -> Self {
        Store {
            dir: dir.to_path_buf(),
            feeds: RwLock::default(),
        }
    }

    /// Load every complete feed not loaded yet; returns how many were added.
    pub async fn scan(&self) -> anyhow::Result<usize> {
        let root = self.dir.join("feeds");
        let mut added = 0;
        let Ok(entries) = std::fs::read_dir(&root) else {
            return Ok(0);
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(key) = parse_key(name) else { continue };
            let dk = discovery_key(&key);
            if self
                .feeds
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&dk)
            {
                continue;
            }
            if !path.join(COMPLETE).exists() {
                continue;
            }
            match open_core(&path, &key).await {
                Ok(core) => {
                    let info = core.info();
                    info!(feed = %name, length = info.length, "serving feed");
                    self.feeds
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(dk, (key, core));
                    added += 1;
                }
                Err(e) => warn!("cannot serve {name}: {e:#}"),
            }
        }
        Ok(added)
    }

    /// Number of feeds served.
    pub fn len(&self) -> usize {
        self.feeds.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no feed is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FeedSource for Store {
    fn find(&self, dk: &[u8; 32]) -> Option<([u8; 32], Hypercore)> {
        self.feeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(dk)
            .cloned()
    }
}
