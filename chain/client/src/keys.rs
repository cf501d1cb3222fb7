//! Chain account keys (sr25519): dev accounts by name for the devnet, key files for real
//! use.
//!
//! A key file holds one line: `0x` + 64 hex characters, the 32-byte secret seed. It is
//! created with mode 0600 and refused when group or others can read it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::RngCore;
use subxt_signer::SecretUri;
use subxt_signer::sr25519::Keypair;

/// A dev account by name (`alice`, `bob`, … `ferdie`, or any `//Name` derivation).
/// Everyone knows these keys: devnet only.
pub fn dev(name: &str) -> Result<Keypair> {
    let n = name.trim_start_matches("//");
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("dev account names are letters, digits and '-' (e.g. alice, hoster-1)");
    }
    let mut cap = n.to_string();
    if let Some(first) = cap.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    let uri: SecretUri = format!("//{cap}").parse().context("dev account name")?;
    Keypair::from_uri(&uri).context("deriving a dev account")
}

/// Create a key file at `path` with a fresh random seed (fails if it exists).
pub fn generate(path: &Path) -> Result<Keypair> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let pair = Keypair::from_secret_key(seed).context("seed")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    writeln!(f, "0x{}", hex::encode(seed))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))?;
    Ok(pair)
}

/// Load the key file at `path`.
pub fn load(path: &Path) -> Result<Keypair> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading key file {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "key file {} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    parse_seed(text.trim()).with_context(|| format!("key file {}", path.display()))
}

/// A seed given as `0x` + 64 hex characters.
pub fn parse_seed(s: &str) -> Result<Keypair> {
    let hex_part = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(hex_part).context("the seed must be hex")?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the seed must be 32 bytes (64 hex characters)"))?;
    Keypair::from_secret_key(seed).context("invalid seed")
}

/// `dev:<name>` for a dev account, otherwise a key file path.
pub fn resolve(spec: &str) -> Result<Keypair> {
    match spec.strip_prefix("dev:") {
        Some(name) => dev(name),
        None => load(Path::new(spec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account;

    #[test]
    fn dev_accounts_match_the_well_known_ones() {
        let alice = dev("alice").expect("alice");
        assert_eq!(
            account(&alice),
            account(&subxt_signer::sr25519::dev::alice())
        );
        assert_eq!(
            account(&dev("//Bob").expect("bob")),
            account(&subxt_signer::sr25519::dev::bob())
        );
        assert!(dev("").is_err());
        assert!(dev("a/b").is_err());
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("chain.key");
        let made = generate(&path).expect("generate");
        assert!(generate(&path).is_err(), "never overwrites a key");
        let loaded = resolve(path.to_str().expect("utf8")).expect("load");
        assert_eq!(account(&made), account(&loaded));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = load(&path).expect_err("world-readable");
            assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        }
    }

    #[test]
    fn bad_seeds_are_refused() {
        assert!(parse_seed("0x1234").is_err());
        assert!(parse_seed("zz").is_err());
        assert!(parse_seed(&format!("0x{}", "ab".repeat(32))).is_ok());
    }
}
