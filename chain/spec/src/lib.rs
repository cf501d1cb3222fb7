//! Native tooling around `datdot-runtime`: the metadata subxt is generated from, and the
//! raw dev chain spec chopsticks starts from.
//!
//! ## Goals
//! - Build both from the real runtime (AccountId32, MultiAddress), natively: no node.
//! - Deterministic output, so CI can check the committed `chain/metadata.scale`; the
//!   spec is a function of the wasm and a 32-byte genesis salt (`scripts/devnet-chain
//!   start` draws a random one, so a reset dev chain has a new genesis hash: a new chain
//!   identity, and nothing signed before the reset verifies after it).
//!
//! ## Non-goals
//! - Building the wasm (see `scripts/build-wasm`): the spec embeds the bytes it is given.

use anyhow::{Context, Result};
use datdot_runtime::{
    AccountId, Balance, BalancesConfig, DatdotConfig, Runtime, RuntimeGenesisConfig, SystemConfig,
    UNIT,
};
use frame::runtime::prelude::Sr25519Keyring;
use frame::runtime::testing_prelude::BuildStorage;

/// The metadata version written (what subxt 0.51 reads).
pub const METADATA_VERSION: u32 = 15;

/// Balance of each dev account (Alice, Bob, … Ferdie and their `//stash`es, and the
/// [`DEV_ROLES`] accounts).
pub const DEV_FUNDS: Balance = 1_000_000 * UNIT;

/// SCALE-encoded `RuntimeMetadataPrefixed` of the runtime (starts with `meta`).
pub fn metadata() -> Result<Vec<u8>> {
    let m = Runtime::metadata_at_version(METADATA_VERSION)
        .context("runtime does not provide this metadata version")?;
    Ok((*m).clone())
}

/// Extra funded dev accounts for a devnet's processes: `//Hoster-1` … `//Hoster-16`,
/// `//Attestor-1` … `//Attestor-32`, `//Publisher-1` … `//Publisher-4` (sr25519 derivations
/// of the well-known dev phrase; `datdot_chain_client::keys::dev("hoster-1")`).
pub const DEV_ROLES: [(&str, u32); 3] = [("Hoster", 16), ("Attestor", 32), ("Publisher", 4)];

/// The dev accounts funded in genesis.
pub fn dev_accounts() -> Vec<AccountId> {
    use frame::deps::sp_core::{Pair, sr25519};
    let mut out: Vec<AccountId> = Sr25519Keyring::iter().map(|k| k.to_account_id()).collect();
    for (role, n) in DEV_ROLES {
        for i in 1..=n {
            let pair = sr25519::Pair::from_string(&format!("//{role}-{i}"), None)
                .expect("a valid derivation path");
            out.push(pair.public().into());
        }
    }
    out
}

/// Genesis storage (without `:code`) with the pallet's genesis `salt`, as sorted
/// `(key, value)` pairs.
pub fn genesis_storage(salt: [u8; 32]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let config = RuntimeGenesisConfig {
        system: SystemConfig::default(),
        balances: BalancesConfig {
            balances: dev_accounts().into_iter().map(|a| (a, DEV_FUNDS)).collect(),
            ..Default::default()
        },
        datdot: DatdotConfig {
            salt,
            ..Default::default()
        },
    };
    let storage = config
        .build_storage()
        .map_err(|e| anyhow::anyhow!("genesis build failed: {e}"))?;
    let mut top: Vec<(Vec<u8>, Vec<u8>)> = storage.top.into_iter().collect();
    top.sort();
    Ok(top)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The raw chain spec JSON with `wasm` as `:code` and the genesis `salt`.
pub fn raw_chain_spec(wasm: &[u8], salt: [u8; 32]) -> Result<serde_json::Value> {
    let mut top = serde_json::Map::new();
    for (k, v) in genesis_storage(salt)? {
        top.insert(hex(&k), serde_json::Value::String(hex(&v)));
    }
    top.insert(hex(b":code"), serde_json::Value::String(hex(wasm)));
    Ok(serde_json::json!({
        "name": "datdot dev",
        "id": "datdot_dev",
        "chainType": "Development",
        "bootNodes": [],
        "telemetryEndpoints": null,
        "protocolId": "datdot",
        "properties": { "tokenDecimals": 12, "tokenSymbol": "DDT", "ss58Format": 42 },
        "codeSubstitutes": {},
        "genesis": { "raw": { "top": top, "childrenDefault": {} } }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI's check that the committed metadata matches the runtime. With
    /// `DATDOT_BLESS_METADATA=1` it rewrites the file instead (same as
    /// `datdot-chain-spec metadata`, without building the binary).
    #[test]
    fn committed_metadata_matches_the_runtime() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata.scale");
        let current = metadata().expect("metadata");
        if std::env::var_os("DATDOT_BLESS_METADATA").is_some() {
            std::fs::write(path, &current).expect("write chain/metadata.scale");
        }
        let committed = std::fs::read(path).expect("chain/metadata.scale is committed");
        assert!(
            committed == current,
            "chain/metadata.scale is stale: run `DATDOT_BLESS_METADATA=1 cargo test -p datdot-chain-spec`"
        );
        assert_eq!(&current[..4], b"meta");
    }

    /// Two dev chains started with different salts have different genesis states (so
    /// different genesis hashes); the same salt gives the same state.
    #[test]
    fn the_salt_makes_a_new_genesis() {
        let a = genesis_storage([1; 32]).expect("genesis");
        assert_eq!(a, genesis_storage([1; 32]).expect("genesis"));
        assert_ne!(a, genesis_storage([2; 32]).expect("genesis"));
        let key = |s: &[u8; 32]| {
            genesis_storage(*s)
                .expect("genesis")
                .into_iter()
                .find(|(_, v)| v == s)
                .map(|(k, _)| k)
        };
        assert!(key(&[7; 32]).is_some(), "the salt is stored");
    }

    #[test]
    fn genesis_funds_dev_accounts_and_the_pallet_pot() {
        let spec = raw_chain_spec(b"\0asm", [0; 32]).expect("spec");
        let top = spec["genesis"]["raw"]["top"].as_object().expect("top");
        assert_eq!(
            top.get("0x3a636f6465").and_then(|v| v.as_str()),
            Some("0x0061736d")
        );
        // System.Account entries: the well-known + 52 role dev accounts + the pallet account.
        let prefix = "0x26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9";
        let accounts = top.keys().filter(|k| k.starts_with(prefix)).count();
        assert_eq!(accounts, dev_accounts().len() + 1);
        assert_eq!(
            dev_accounts().len(),
            Sr25519Keyring::iter().count() + 16 + 32 + 4
        );
    }
}
