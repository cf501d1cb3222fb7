//! Helpers shared by the hoster's process-level tests (`restart.rs`, `chain_devnet.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use datdot_protocol::identity::Keypair;
use hypercore::Hypercore;

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

#[allow(unused_imports)] // not every test binary uses each
pub use datdot_testkit::{fill, reader};

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
