//! A fresh dev chain for one end-to-end test: `scripts/devnet-chain start` with its own
//! data directory and port, stopped on drop.
//!
//! The script needs the runtime wasm (`WASM_OUT`, default `target/datdot_runtime.wasm`,
//! from `scripts/build-wasm`); it installs chopsticks on first use and takes the chain
//! spec tool from `DATDOT_CHAIN_SPEC` (what `scripts/test` sets to the test build's
//! binary) or builds it. Each test picks its own port, so tests with their own chains run
//! at the same time without meeting.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// How chopsticks makes blocks (`DATDOT_BUILD_MODE`); a ticker adds one every 2 s
/// (`DATDOT_BLOCK_SECONDS`, [`DevChain::start_ticking`]) in either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMode {
    /// A block per transaction (fast; block numbers do not track time).
    Instant,
    /// Blocks only from the ticker: block numbers track time, as `datdot devnet` needs.
    Manual,
}

/// A dev chain this test started; stopped when dropped.
#[derive(Debug)]
pub struct DevChain {
    dir: PathBuf,
    port: u16,
    mode: BlockMode,
    block_seconds: u32,
}

/// The repository's root (this crate lives one below it).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives in the repository")
        .to_path_buf()
}

impl DevChain {
    /// Start a chain from genesis on `127.0.0.1:port`, its state under `dir` (emptied
    /// first). Returns once the chain answers.
    pub fn start(dir: impl Into<PathBuf>, port: u16, mode: BlockMode) -> Result<Self> {
        Self::start_ticking(dir, port, mode, 2)
    }

    /// [`DevChain::start`] with the ticker adding a block every `block_seconds` (a test
    /// whose windows, counted in blocks, must span more wall time).
    pub fn start_ticking(
        dir: impl Into<PathBuf>,
        port: u16,
        mode: BlockMode,
        block_seconds: u32,
    ) -> Result<Self> {
        let dir = dir.into();
        let _ = std::fs::remove_dir_all(&dir);
        let c = DevChain {
            dir,
            port,
            mode,
            block_seconds,
        };
        c.run("start")?;
        Ok(c)
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Stop and start again (from genesis, same port and directory).
    pub fn restart(&self) -> Result<()> {
        self.run("stop")?;
        self.run("start")
    }

    fn command(&self, what: &str) -> Command {
        let mut c = Command::new(repo().join("scripts/devnet-chain"));
        c.arg(what)
            .env("DATDOT_DEVNET_DIR", &self.dir)
            .env("DATDOT_CHAIN_PORT", self.port.to_string())
            .env(
                "DATDOT_BUILD_MODE",
                match self.mode {
                    BlockMode::Instant => "Instant",
                    BlockMode::Manual => "Manual",
                },
            )
            .env("DATDOT_BLOCK_SECONDS", self.block_seconds.to_string());
        c
    }

    fn run(&self, what: &str) -> Result<()> {
        let out = self
            .command(what)
            .output()
            .with_context(|| format!("running scripts/devnet-chain {what}"))?;
        ensure!(
            out.status.success(),
            "scripts/devnet-chain {what} (port {}): {}{}",
            self.port,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for DevChain {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}
