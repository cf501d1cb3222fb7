//! Helpers shared by the hoster's process-level tests (`restart.rs`, `chain_devnet.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use datdot_protocol::identity::Keypair;
use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};

/// The `datdot-hoster` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_datdot-hoster"))
}

/// `datdot-hoster init` in `dir`, listening and serving metrics on loopback ports.
pub fn init(dir: &Path) {
    let out = bin()
        .arg("--dir")
        .arg(dir)
        .args([
            "init",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An empty in-memory reader core for feed `key`.
pub async fn reader(key: [u8; 32]) -> Hypercore {
    HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .key_pair(PartialKeypair {
            public: VerifyingKey::from_bytes(&key).unwrap(),
            secret: None,
        })
        .build()
        .await
        .unwrap()
}

/// Append `blocks` blocks (`block(i)`) to `core`, 64 per batch.
pub async fn fill(core: &Hypercore, blocks: u64, block: impl Fn(u64) -> Vec<u8>) {
    for chunk in (0..blocks).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Vec<u8>> = chunk.iter().map(|i| block(*i)).collect();
        core.append_batch(&batch).await.unwrap();
    }
}

/// Serve `core` (feed `key`) on a loopback port with a fresh Noise identity, receipts every
/// 100 blocks; returns (address, Noise public key).
pub async fn serve_feed(key: [u8; 32], core: Hypercore) -> (SocketAddr, [u8; 32]) {
    datdot_net::seed(
        "127.0.0.1:0".parse().unwrap(),
        key,
        core,
        Keypair::from_seed(&[1; 32]),
        [0; 32],
        100,
    )
    .await
    .unwrap()
}
