//! A publisher's own feed: a real Hypercore on disk (the hoster's store format, so the
//! same crash-safe open applies), its secret key in a 0600 file, its signed root in our
//! wire codec (what `publish` puts on chain), and serving it as the feed's source.

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use datdot_protocol::codec::{Encode, Writer};
use datdot_protocol::identity::{Keypair, Signature};
use datdot_protocol::tree::build;
use datdot_store as store;
use ed25519_dalek::{Signer, SigningKey};
use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage};
use rand::RngCore;

/// The secret key file inside a feed directory.
pub const KEY_FILE: &str = "feed.secret";
/// The Hypercore storage inside a feed directory.
pub const CORE_DIR: &str = "core";
/// Block size of generated feeds.
pub const BLOCK: usize = 64 * 1024;

/// A feed this node authored.
#[derive(Debug)]
pub struct LocalFeed {
    /// Its directory.
    pub dir: PathBuf,
    /// Its public key.
    pub key: [u8; 32],
    secret: SigningKey,
    core: Hypercore,
}

fn write_secret(path: &Path, seed: &[u8; 32]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{}", hex::encode(seed))?;
    f.sync_all()?;
    Ok(())
}

fn read_secret(path: &Path) -> anyhow::Result<SigningKey> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} must be readable by its owner only (chmod 600)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)?;
    let seed: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .with_context(|| format!("{} must hold 64 hex characters", path.display()))?;
    Ok(SigningKey::from_bytes(&seed))
}

impl LocalFeed {
    /// Create a feed of `size` bytes of generated (random) data in `dir` (which must not
    /// hold one), in blocks of [`BLOCK`] bytes; `progress(done, total)` per batch.
    pub async fn create(
        dir: &Path,
        size: u64,
        mut progress: impl FnMut(u64, u64),
    ) -> anyhow::Result<Self> {
        if dir.join(KEY_FILE).exists() {
            bail!("{} already holds a feed", dir.display());
        }
        anyhow::ensure!(size > 0, "a feed needs at least one byte");
        std::fs::create_dir_all(dir.join(CORE_DIR))?;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        write_secret(&dir.join(KEY_FILE), &seed)?;
        let secret = SigningKey::from_bytes(&seed);
        let core_dir = dir.join(CORE_DIR);
        let storage = Storage::new_disk(&core_dir, false).await?;
        let core = HypercoreBuilder::new(storage)
            .key_pair(PartialKeypair {
                public: secret.verifying_key(),
                secret: Some(secret.clone()),
            })
            .build()
            .await
            .context("creating the feed")?;
        // The oplog header holds the secret key: owner only.
        datdot_node::keystore::owner_only(&core_dir)?;
        let blocks = size.div_ceil(BLOCK as u64);
        let mut rng = rand::rngs::OsRng;
        let mut done = 0u64;
        while done < blocks {
            let n = (blocks - done).min(64);
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let len = if done + i + 1 == blocks {
                        (size - (blocks - 1) * BLOCK as u64) as usize
                    } else {
                        BLOCK
                    };
                    let mut b = vec![0u8; len];
                    rng.fill_bytes(&mut b);
                    b
                })
                .collect();
            core.append_batch(&batch).await?;
            done += n;
            progress(done, blocks);
        }
        drop(core);
        Self::open(dir).await
    }

    /// Open the feed in `dir`.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let secret = read_secret(&dir.join(KEY_FILE)).with_context(|| {
            format!(
                "{} is not a feed directory (datdot feed create)",
                dir.display()
            )
        })?;
        let key = secret.verifying_key().to_bytes();
        // Feeds made before the oplog was restricted are repaired here.
        datdot_node::keystore::owner_only(&dir.join(CORE_DIR))?;
        let core = store::open_core(&dir.join(CORE_DIR), &key).await?;
        Ok(LocalFeed {
            dir: dir.to_path_buf(),
            key,
            secret,
            core,
        })
    }

    /// Number of blocks.
    pub fn length(&self) -> u64 {
        self.core.info().length
    }

    /// The feed's signed root in our wire codec (what `publish` carries), signed now by
    /// the feed key over the tree of every block.
    pub async fn signed_root(&self) -> anyhow::Result<Vec<u8>> {
        let length = self.length();
        anyhow::ensure!(length > 0, "the feed is empty");
        let mut leaves = Vec::with_capacity(length as usize);
        for i in 0..length {
            let b = self
                .core
                .get(i)
                .await?
                .with_context(|| format!("block {i} is missing from the feed's own storage"))?;
            leaves.push(build::leaf(i, &b));
        }
        let fork = self.core.info().fork;
        let p = build::block_proof(&leaves, 0, fork, |m| {
            Signature(self.secret.sign(m).to_bytes())
        })
        .context("building the signed root")?;
        let mut w = Writer::new();
        p.root.encode(&mut w);
        Ok(w.into_bytes())
    }

    /// Serve the feed on `listen` (receipts signed by `signer`, for no chain: a
    /// publisher's source is not audited) until the process ends: the source hosters
    /// fetch from. Returns the bound address and Noise key.
    pub async fn serve(
        &self,
        listen: SocketAddr,
        signer: Keypair,
    ) -> anyhow::Result<(SocketAddr, [u8; 32])> {
        Ok(datdot_net::seed(listen, self.key, self.core.clone(), signer, [0; 32], 100).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::codec::{Decode, Reader};
    use datdot_protocol::identity::PublicKey;
    use datdot_protocol::tree::SignedTreeRoot;

    #[tokio::test]
    async fn create_reopen_and_a_root_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let f = LocalFeed::create(dir.path(), 3 * BLOCK as u64 + 100, |_, _| {})
            .await
            .unwrap();
        assert_eq!(f.length(), 4);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let core = dir.path().join(CORE_DIR);
        assert_eq!(mode(&core), 0o700);
        assert_eq!(
            mode(&core.join("oplog")),
            0o600,
            "the oplog holds the secret key"
        );
        let key = f.key;
        drop(f);
        let f = LocalFeed::open(dir.path()).await.unwrap();
        assert_eq!(f.key, key);
        let bytes = f.signed_root().await.unwrap();
        let root = SignedTreeRoot::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(root.length, 4);
        root.verify(&PublicKey::from_bytes(&key).unwrap()).unwrap();
        assert!(
            LocalFeed::create(dir.path(), 10, |_, _| {}).await.is_err(),
            "never overwrites"
        );
    }
}
