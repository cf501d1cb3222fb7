//! Feeds on disk: `<dir>/feeds/<hex key>/` holds one Hypercore (the `hypercore` crate's
//! disk storage: `data`, `tree`, `bitfield`, `oplog`). A feed is served once its
//! `complete` marker exists; a partial feed resumes where it stopped — every block on
//! disk was verified before it was written, so a kill -9 loses at most the blocks in
//! flight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::{Context, bail};
use datdot_net::FeedSource;
use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};
use hypercore_protocol::discovery_key;
use tracing::{info, warn};

/// Marker file: the feed was fetched completely (up to the length seen then).
pub const COMPLETE: &str = "complete";

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

/// Bytes of the oplog's two header slots (`hypercore` 0.17.0-alpha.1, `oplog/mod.rs`:
/// `HEADER_SIZE` 4096 × 2); entries not yet flushed follow them.
const OPLOG_HEADERS: u64 = 2 * 4096;

/// Open (or create, read-only, for `key`) the Hypercore under `path`.
///
/// Works around a bug in `hypercore` 0.17.0-alpha.1: its oplog *decoder* tests flag bit
/// 2 where the encoder writes bits 4 (tree upgrade) and 8 (bitfield), so a core whose
/// oplog still holds unflushed entries of a replicated block cannot be reopened ("Could
/// not parse changeset signature"). The crate flushes the oplog into the tree and
/// bitfield files every fourth write, so such a core is at most a few blocks behind its
/// last flush. When opening fails and unflushed entries exist, we keep a copy of the
/// oplog (`oplog.unflushed`), truncate it to its header slots — the state of the last
/// flush — and open again; `add-feed` then re-fetches (and re-verifies) the few blocks
/// that were not flushed. Nothing unverified is ever served. See docs/DESIGN.md.
pub async fn open_core(path: &Path, key: &[u8; 32]) -> anyhow::Result<Hypercore> {
    match open_core_once(path, key).await {
        Ok(core) => Ok(core),
        Err(e) => {
            let oplog = path.join("oplog");
            let len = std::fs::metadata(&oplog).map(|m| m.len()).unwrap_or(0);
            if len <= OPLOG_HEADERS {
                return Err(e);
            }
            warn!(
                path = %path.display(),
                error = %format!("{e:#}"),
                unflushed_bytes = len - OPLOG_HEADERS,
                "reopening at the last oplog flush (hypercore 0.17.0-alpha.1 oplog decoder bug); unflushed blocks will be fetched again"
            );
            std::fs::copy(&oplog, path.join("oplog.unflushed"))
                .with_context(|| format!("saving {}", oplog.display()))?;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&oplog)
                .with_context(|| format!("opening {}", oplog.display()))?;
            f.set_len(OPLOG_HEADERS)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("truncating {}", oplog.display()))?;
            open_core_once(path, key)
                .await
                .context("reopening at the last oplog flush")
        }
    }
}

async fn open_core_once(path: &Path, key: &[u8; 32]) -> anyhow::Result<Hypercore> {
    let exists = path.join("oplog").exists();
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
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
