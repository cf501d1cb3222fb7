//! A node's keystore: two 32-byte seeds in a file only its owner can read (0600).
//! `signing` is the ed25519 identity that signs protocol objects (a hoster's receipts,
//! an attestor's coin-flip messages and reports); `noise` is the Noise static key peers
//! pin (registered on chain with the signing key).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use rand::RngCore;

/// The secrets of one node (hoster or attestor).
pub struct Keystore {
    /// Seed of the ed25519 signing identity.
    pub signing: [u8; 32],
    /// Seed of the Noise static key.
    pub noise: [u8; 32],
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keystore(..)")
    }
}

impl Keystore {
    /// Fresh random seeds.
    pub fn generate() -> Self {
        let mut k = Keystore {
            signing: [0; 32],
            noise: [0; 32],
        };
        rand::rngs::OsRng.fill_bytes(&mut k.signing);
        rand::rngs::OsRng.fill_bytes(&mut k.noise);
        k
    }

    /// Write to `path`, created with mode 0600; never overwrites. `role` names the
    /// binary in the file's comment (`hoster`, `attestor`).
    pub fn create(&self, path: &Path, role: &str) -> anyhow::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating keystore {}", path.display()))?;
        writeln!(
            f,
            "# datdot {role} keystore: keep secret, keep a backup.\nsigning = \"{}\"\nnoise = \"{}\"",
            hex::encode(self.signing),
            hex::encode(self.noise)
        )?;
        f.sync_all()?;
        Ok(())
    }

    /// Read from `path`; refuses a file that group or others can read. `init_hint` is
    /// the command that creates it (for the error message).
    pub fn load(path: &Path, init_hint: &str) -> anyhow::Result<Self> {
        let meta = fs::metadata(path).with_context(|| {
            format!(
                "reading keystore {} (run `{init_hint}` first)",
                path.display()
            )
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "keystore {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                path.display()
            );
        }
        let text = fs::read_to_string(path)?;
        #[derive(serde::Deserialize)]
        struct File {
            signing: String,
            noise: String,
        }
        let f: File =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let seed = |name: &str, s: &str| -> anyhow::Result<[u8; 32]> {
            let v = hex::decode(s).with_context(|| format!("keystore `{name}` is not hex"))?;
            v.try_into()
                .map_err(|_| anyhow::anyhow!("keystore `{name}` must be 32 bytes"))
        };
        Ok(Keystore {
            signing: seed("signing", &f.signing)?,
            noise: seed("noise", &f.noise)?,
        })
    }
}

/// Make `path` its owner's only: mode 0600 for a file, 0700 for a directory and 0600
/// for every file directly in it (a Hypercore directory: its `oplog` header holds the
/// author's secret key; an attestor's `state.redb` holds round secrets before they are
/// revealed). Files that crates create with the default umask get this right after.
pub fn owner_only(path: &Path) -> anyhow::Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let set = |p: &Path, mode: u32| {
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {mode:o} {}", p.display()))
    };
    if !meta.is_dir() {
        return set(path, 0o600);
    }
    set(path, 0o700)?;
    for e in fs::read_dir(path)? {
        let e = e?;
        if e.file_type()?.is_file() {
            set(&e.path(), 0o600)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keystore");
        let k = Keystore::generate();
        k.create(&p, "hoster").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // owner_only: a directory and the files in it.
        let d = dir.path().join("core");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("oplog"), b"secret").unwrap();
        owner_only(&d).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&d), mode(&d.join("oplog"))), (0o700, 0o600));
        let l = Keystore::load(&p, "x init").unwrap();
        assert_eq!((l.signing, l.noise), (k.signing, k.noise));
        assert!(k.create(&p, "hoster").is_err(), "never overwrites");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            Keystore::load(&p, "x init")
                .unwrap_err()
                .to_string()
                .contains("chmod 600")
        );
    }
}
