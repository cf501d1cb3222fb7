//! The hoster's chain hook end to end against a real devnet (our runtime wasm under
//! chopsticks), a fresh chain of this test's own on 127.0.0.1:8741. `scripts/test` runs it
//! beside the other end-to-end tests: `cargo test --workspace --features
//! datdot-attestor/byzantine --test chain_devnet -- --ignored` (it is `#[ignore]`d so that
//! a plain `cargo test` needs no wasm and no chopsticks). Uses the accounts hoster-2,
//! hoster-3 and publisher-2.
//!
//! Real processes on 127.0.0.1: an author's node (in this process) holds a real Hypercore
//! feed; a *seeder* `datdot-hoster` (no chain) fetched it with `add-feed` and serves it.
//! 1. `datdot-hoster run --chain-url … --chain-key dev:hoster-2` registers by itself; a
//!    feed published with the seeder as its `source` is fetched, served and confirmed
//!    (the contract turns Active on chain); a reader fetches and verifies every block
//!    from hoster-2.
//! 2. hoster-3 registers and is killed; the same feed is published again with a dead
//!    source and two replicas (hoster-2 and hoster-3). hoster-2 already holds it and
//!    confirms at once; hoster-3, restarted, finds its pending contract, updates its
//!    endpoint (new port), fails the dead source, fetches from hoster-2 (the feed's
//!    active hoster) and confirms; a reader verifies every block from hoster-3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use datdot_chain_client::{
    AccountId32, ChainClient, ContractId, ContractState, PlanTerms, Sla, UNIT, account, endpoint,
    keys,
};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use datdot_protocol::codec::{Encode, Writer};
use datdot_protocol::identity::{PublicKey, Signature};
use datdot_protocol::tree::build;
use datdot_testkit::{BlockMode, DevChain, metric, scrape};
use ed25519_dalek::{Signer, SigningKey};
use hypercore::{HypercoreBuilder, PartialKeypair, Storage};

mod common;
use common::{bin, fill, init, reader, serve_feed};

const BLOCKS: u64 = 300;
const SIZE: usize = 4096;
/// Longest wait for anything on chain (ConfirmWindow is 50 blocks of 2 s).
const CHAIN_WAIT: Duration = Duration::from_secs(90);

fn block(i: u64) -> Vec<u8> {
    (0..SIZE).map(|j| (i as usize * 13 + j * 5) as u8).collect()
}

/// The author's feed (a real Hypercore with a known key) served on loopback, and its
/// signed root in our wire encoding: (addr, noise key, feed key, signed root).
async fn author() -> (SocketAddr, [u8; 32], [u8; 32], Vec<u8>) {
    let sk = SigningKey::from_bytes(&[77; 32]);
    let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .key_pair(PartialKeypair {
            public: sk.verifying_key(),
            secret: Some(sk.clone()),
        })
        .build()
        .await
        .unwrap();
    fill(&core, BLOCKS, block).await;
    let leaves: Vec<_> = (0..BLOCKS).map(|i| build::leaf(i, &block(i))).collect();
    let proof = build::block_proof(&leaves, 0, 0, |m| Signature(sk.sign(m).to_bytes())).unwrap();
    let mut w = Writer::new();
    proof.root.encode(&mut w);
    let key = sk.verifying_key().to_bytes();
    let (addr, nk) = serve_feed(key, core).await;
    (addr, nk, key, w.into_bytes())
}

/// A `datdot-hoster run` process (killed on drop).
struct Hoster {
    child: Child,
    addr: SocketAddr,
    noise: [u8; 32],
    signing: [u8; 32],
    metrics: SocketAddr,
}

impl Drop for Hoster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `run` with `args`; its log goes to `dir/run.log`. Blocks until it printed its
/// addresses (call from `spawn_blocking`).
fn start(dir: &Path, args: &[&str]) -> Hoster {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("run.log"))
        .unwrap();
    let mut child = bin()
        .arg("--dir")
        .arg(dir)
        .arg("run")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let metrics = lines.next().unwrap().unwrap();
    let w: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(
        (w[0], w[2], w[4]),
        ("listening", "noise", "signing"),
        "{first}"
    );
    let hex32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Hoster {
        child,
        addr: w[1].parse().unwrap(),
        noise: hex32(w[3]),
        signing: hex32(w[5]),
        metrics: metrics
            .trim_start_matches("metrics http://")
            .trim_end_matches("/metrics")
            .parse()
            .unwrap(),
    }
}

async fn start_async(dir: PathBuf, args: Vec<String>) -> Hoster {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        start(&dir, &a)
    })
    .await
    .unwrap()
}

fn chain_args(url: &str, who: &str) -> Vec<String> {
    ["--chain-url", url, "--chain-key", who]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Poll `check` every second until it returns `Some`, at most `CHAIN_WAIT`.
/// Wait (at most `CHAIN_WAIT`) for `check` to return `Some`.
async fn wait_for<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    datdot_testkit::wait_for(what, CHAIN_WAIT, Duration::from_secs(1), check).await
}

async fn wait_active(chain: &ChainClient, contract: ContractId, logs: &[&Path]) -> Result<()> {
    let r = wait_for(&format!("contract {contract} to be confirmed"), || async {
        Ok(chain
            .contract(contract)
            .await?
            .filter(|c| matches!(c.state, ContractState::Active))
            .map(|_| ()))
    })
    .await;
    if r.is_err() {
        for l in logs {
            eprintln!(
                "--- {}\n{}",
                l.display(),
                std::fs::read_to_string(l).unwrap_or_default()
            );
        }
    }
    r
}

/// A reader fetches every block from `h` (its Noise key pinned, receipts signed by its
/// registered key) and checks each against the author's bytes.
async fn read_all(h: &Hoster, key: [u8; 32]) -> Result<()> {
    let core = reader(key).await;
    let conn = dial(h.addr, Expect::Key(h.noise), &Limits::default()).await?;
    let opts = FetchOptions {
        hoster: Some(PublicKey::from_bytes(&h.signing).map_err(|e| anyhow::anyhow!("{e:?}"))?),
        ..FetchOptions::default()
    };
    let r = fetch(conn, key, &core, &opts, &mut |_| {}).await?;
    ensure!(r.length == BLOCKS && r.blocks == BLOCKS, "{r:?}");
    for i in 0..BLOCKS {
        ensure!(
            core.get(i).await?.as_deref() == Some(&block(i)[..]),
            "block {i}"
        );
    }
    ensure!(!r.receipts.is_empty(), "the hoster signed receipts");
    Ok(())
}

fn plan(replicas: u32) -> PlanTerms<u128> {
    PlanTerms {
        replicas,
        sla: Sla {
            min_throughput_bps: 1_000_000,
            max_p99_latency_us: 100_000,
            min_availability_ppm: 990_000,
        },
        price_per_period: UNIT,
        periods: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the runtime wasm and starts a dev chain (scripts/test runs it)"]
async fn hoster_registers_fetches_serves_and_confirms_assignments() -> Result<()> {
    let chain_dir = tempfile::tempdir()?;
    let devnet = DevChain::start(chain_dir.path().join("chain"), 8741, BlockMode::Instant)?;
    let url = devnet.url();
    let chain = ChainClient::connect(&url).await?;
    let publisher = keys::dev("publisher-2")?;
    let (h2_acct, h3_acct) = (
        account(&keys::dev("hoster-2")?),
        account(&keys::dev("hoster-3")?),
    );
    let tmp = tempfile::tempdir()?;
    let (seed_dir, h2_dir, h3_dir) = (
        tmp.path().join("seeder"),
        tmp.path().join("hoster-2"),
        tmp.path().join("hoster-3"),
    );
    for d in [&seed_dir, &h2_dir, &h3_dir] {
        init(d);
    }

    // The seeder: a real hoster process holding the author's feed (no chain).
    let (author_addr, author_noise, key, signed_root) = author().await;
    let out = {
        let d = seed_dir.clone();
        tokio::task::spawn_blocking(move || {
            bin()
                .arg("--dir")
                .arg(&d)
                .args([
                    "add-feed",
                    &hex::encode(key),
                    "--from",
                    &author_addr.to_string(),
                ])
                .args(["--peer-key", &hex::encode(author_noise), "--quiet"])
                .output()
        })
        .await??
    };
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seeder = start_async(seed_dir.clone(), vec![]).await;

    // 1. hoster-2 registers itself with its listen address and keys.
    let h2 = start_async(h2_dir.clone(), chain_args(&url, "dev:hoster-2")).await;
    let h2_log = h2_dir.join("run.log");
    let p = wait_for("hoster-2 to register", || async {
        Ok(chain.participant(&h2_acct).await?)
    })
    .await?;
    ensure!(
        p.endpoint.addr.0 == h2.addr.to_string().as_bytes()
            && p.endpoint.noise_key == h2.noise
            && p.endpoint.signing_key == h2.signing,
        "registered endpoint is the process's own"
    );
    ensure!(
        p.stake == 100 * UNIT && p.capacity == 16,
        "defaults: stake 100, capacity 16"
    );

    let source = endpoint(&seeder.addr.to_string(), seeder.noise, seeder.signing);
    let a = chain
        .publish(&publisher, key, signed_root.clone(), plan(1), source)
        .await?;
    ensure!(
        a.contracts.len() == 1 && a.contracts[0].1 == h2_acct,
        "{a:?}"
    );
    wait_active(&chain, a.contracts[0].0, &[&h2_log]).await?;
    read_all(&h2, key).await?;

    // 2. hoster-3 registers, dies; a second plan for the same feed names a dead source.
    let h3_log = h3_dir.join("run.log");
    let h3 = start_async(h3_dir.clone(), chain_args(&url, "dev:hoster-3")).await;
    wait_for("hoster-3 to register", || async {
        Ok(chain.participant(&h3_acct).await?)
    })
    .await?;
    drop(h3); // kill -9
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let source = endpoint(&dead.to_string(), [3; 32], key);
    let b = chain
        .publish(&publisher, key, signed_root, plan(2), source)
        .await?;
    ensure!(b.contracts.len() == 2, "{b:?}");
    let of = |who: &AccountId32| {
        b.contracts
            .iter()
            .find(|(_, h)| h == who)
            .map(|(c, _)| *c)
            .context("assigned")
    };
    let (c2, c3) = (of(&h2_acct)?, of(&h3_acct)?);
    // hoster-2 already holds the feed: it confirms without fetching.
    wait_active(&chain, c2, &[&h2_log]).await?;
    // hoster-3 comes back: its pending contract, the dead source, then hoster-2.
    let h3 = start_async(h3_dir.clone(), chain_args(&url, "dev:hoster-3")).await;
    wait_active(&chain, c3, &[&h3_log]).await?;
    let p3 = chain.participant(&h3_acct).await?.context("hoster-3")?;
    ensure!(
        p3.endpoint.addr.0 == h3.addr.to_string().as_bytes(),
        "the restarted hoster updated its registered address"
    );
    read_all(&h3, key).await?;

    // A hoster counts a confirmation once its own submission is finalized, which may
    // trail the contract state this test saw.
    let (a2, a3) = (h2.metrics, h3.metrics);
    wait_for(
        "hoster-2 to count 2 assignments and 2 confirmations",
        || async move {
            let m = scrape(a2).await?;
            Ok((metric(&m, "datdot_hoster_chain_confirmations_total") == 2
                && metric(&m, "datdot_hoster_chain_assignments_total") == 2)
                .then_some(()))
        },
    )
    .await?;
    let m3 = wait_for("hoster-3 to count its confirmation", || async move {
        let m = scrape(a3).await?;
        Ok((metric(&m, "datdot_hoster_chain_confirmations_total") == 1).then_some(m))
    })
    .await?;
    ensure!(
        metric(&m3, "datdot_hoster_chain_fetch_failures_total") >= 1,
        "the dead source was tried first: {m3}"
    );
    drop(seeder);
    Ok(())
}
