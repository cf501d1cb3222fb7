//! Audits of a real `datdot-hoster` (its `run`, on loopback, with its on-disk store):
//! honest, blocks missing, a corrupted block (bad-data fraud proof from the hoster's own
//! tree), a hoster that trickles bytes (hard maximum) and one that stalls (progress
//! timeout). Trickling and stalling are a TCP relay in front of the real hoster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use datdot_hoster::Config;
use datdot_net::audit::{AuditOutput, AuditPlan, AuditTarget, audit};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use datdot_protocol::audit::AuditConfig;
use datdot_protocol::fraud::{FraudKind, FraudProof};
use datdot_protocol::identity::{Ed25519Verifier, Keypair, PublicKey};
use datdot_protocol::metrics::{FailureKind, Outcome};
use datdot_store as store;
use hypercore::{HypercoreBuilder, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BLOCKS: u64 = 200;
const SIZE: usize = 16 * 1024;

fn block(i: u64) -> Vec<u8> {
    (0..SIZE)
        .map(|j| (i as usize * 131 + j * 7) as u8)
        .collect()
}

/// A publisher serving a fresh feed on loopback: (addr, noise key, feed key).
async fn publisher() -> (SocketAddr, [u8; 32], [u8; 32]) {
    let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .build()
        .await
        .unwrap();
    for chunk in (0..BLOCKS).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Vec<u8>> = chunk.iter().map(|i| block(*i)).collect();
        core.append_batch(&batch).await.unwrap();
    }
    let key = core.key_pair().public.to_bytes();
    let (addr, nk) = datdot_net::seed(
        "127.0.0.1:0".parse().unwrap(),
        key,
        core,
        Keypair::from_seed(&[1; 32]),
        [0; 32],
        100,
    )
    .await
    .unwrap();
    (addr, nk, key)
}

enum Prepare {
    Full,
    /// Store only the blocks not in this set.
    Missing(BTreeSet<u64>),
    /// Store everything, then flip a byte of this block on disk.
    Corrupt(u64),
}

struct Hoster {
    target: AuditTarget,
    _dir: tempfile::TempDir,
}

/// A real hoster (`datdot_hoster::run`) holding the publisher's feed as `prepare` says.
async fn hoster(prepare: Prepare) -> Hoster {
    let (paddr, pnoise, key) = publisher().await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    datdot_hoster::init(dir.path(), &config).unwrap();
    let path = store::feed_dir(dir.path(), &key);
    match &prepare {
        Prepare::Full | Prepare::Corrupt(_) => {
            datdot_hoster::add_feed(dir.path(), &config, key, paddr, Some(pnoise), &mut |_| {})
                .await
                .unwrap();
        }
        Prepare::Missing(gone) => {
            // What the hoster keeps: the signed tree and every block but `gone`.
            let core = store::open_core(&path, &key).await.unwrap();
            let conn = dial(paddr, Expect::Key(pnoise), &Limits::default())
                .await
                .unwrap();
            let keep: Vec<u64> = (0..BLOCKS).filter(|i| !gone.contains(i)).collect();
            let opts = FetchOptions {
                only: Some(keep),
                ..FetchOptions::default()
            };
            fetch(conn, key, &core, &opts, &mut |_| {}).await.unwrap();
            drop(core);
            std::fs::write(path.join(store::COMPLETE), BLOCKS.to_string()).unwrap();
        }
    }
    if let Prepare::Corrupt(i) = prepare {
        corrupt(&path, i);
    }
    let (noise, signing) = datdot_hoster::identities(dir.path()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let d = dir.path().to_path_buf();
    tokio::spawn(async move {
        let _ = datdot_hoster::run(&d, config, move |l, _| {
            let _ = tx.send(l);
        })
        .await;
    });
    let addr = rx.await.unwrap();
    Hoster {
        target: AuditTarget {
            addr,
            noise_key: noise,
            hoster: PublicKey::from_bytes(&signing).unwrap(),
            feed: key,
            chain: [0; 32],
        },
        _dir: dir,
    }
}

fn corrupt(path: &Path, i: u64) {
    let data = path.join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[i as usize * SIZE + 5] ^= 0x55;
    std::fs::write(&data, bytes).unwrap();
}

fn sample() -> Vec<u64> {
    (0..BLOCKS).step_by(6).collect() // 34 blocks, 0, 6, ..., 198
}

async fn run_audit(target: &AuditTarget, cfg: AuditConfig) -> AuditOutput {
    let plan = AuditPlan {
        sample: sample(),
        config: cfg,
        window: 8,
        epoch: std::time::Instant::now(),
    };
    audit(target, &plan, &Limits::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_hoster_every_block_verified_with_plausible_metrics() {
    let h = hoster(Prepare::Full).await;
    let out = run_audit(&h.target, AuditConfig::default()).await;
    let s = &out.summary;
    assert_eq!(s.outcome, Outcome::Completed, "{out:?}");
    assert_eq!((s.requests, s.ok_blocks), (34, 34));
    assert_eq!((s.lacks_data, s.misbehaved, s.timeouts), (0, 0, 0));
    assert_eq!(s.bytes_received, 34 * SIZE as u64);
    assert!(out.received.iter().all(Option::is_some));
    assert!(out.failures.is_empty() && out.fraud.is_empty() && out.bad_receipts == 0);
    // Every block receipted by the hoster's signing key for our connection.
    let receipted: usize = out.receipts.iter().map(|r| r.entries.len()).sum();
    assert_eq!(receipted, 34);
    // Plausible loopback figures: positive, ordered, bounded.
    assert!(s.connect_time_us > 0 && s.connect_time_us < 5_000_000);
    assert!(s.latency_p50_us > 0 && s.latency_p50_us <= s.latency_p99_us);
    assert!(s.ttfb_p50_us <= s.latency_p99_us);
    assert!(s.latency_p99_us < 5_000_000, "{s:?}");
    assert!(s.throughput_bps > 100_000, "{s:?}");
    assert!(out.root.as_ref().is_some_and(|r| r.length == BLOCKS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_blocks_count_as_lacks_data() {
    let gone: BTreeSet<u64> = (0..BLOCKS).filter(|i| i % 10 == 0).collect(); // 10 %
    let h = hoster(Prepare::Missing(gone.clone())).await;
    let out = run_audit(&h.target, AuditConfig::default()).await;
    let s = &out.summary;
    let expected: Vec<u64> = sample().into_iter().filter(|i| gone.contains(i)).collect();
    assert_eq!(s.outcome, Outcome::Completed, "{out:?}");
    assert_eq!(s.lacks_data as usize, expected.len());
    assert_eq!(s.ok_blocks as usize, 34 - expected.len());
    assert_eq!(s.misbehaved, 0);
    let failed: Vec<u64> = out
        .failures
        .iter()
        .filter(|f| f.kind == FailureKind::LacksData)
        .map(|f| f.block_index)
        .collect();
    assert_eq!(failed, expected);
    assert!(out.fraud.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_block_is_misbehaviour_with_a_bad_data_fraud_proof() {
    let h = hoster(Prepare::Corrupt(12)).await;
    let out = run_audit(&h.target, AuditConfig::default()).await;
    let s = &out.summary;
    assert_eq!(s.outcome, Outcome::Completed, "{out:?}");
    assert_eq!((s.misbehaved, s.ok_blocks, s.lacks_data), (1, 33, 0));
    assert_eq!(out.failures.len(), 1);
    assert_eq!(
        (out.failures[0].block_index, out.failures[0].kind),
        (12, FailureKind::BadData)
    );
    assert_eq!(out.fraud.len(), 1, "{out:?}");
    let v = out.fraud[0].verify(&Ed25519Verifier).unwrap();
    assert_eq!(v.kind, FraudKind::BadData);
    assert_eq!(v.offender, h.target.hoster);
    let FraudProof::BadData { proof, .. } = &out.fraud[0] else {
        panic!()
    };
    assert_eq!(proof.index, 12);
    assert_eq!(
        proof.leaf.hash,
        datdot_protocol::tree::leaf_hash(&block(12))
    );
}

/// A relay to `to` that forwards the first `free` bytes from the hoster, then either one
/// byte every 20 ms (`trickle`) or nothing (a stall, the connection held open).
async fn relay(to: SocketAddr, free: usize, trickle: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let Ok(b) = TcpStream::connect(to).await else {
                continue;
            };
            let (mut ar, mut aw) = a.into_split();
            let (mut br, mut bw) = b.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut ar, &mut bw).await;
            });
            tokio::spawn(async move {
                let mut sent = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while tokio::time::Instant::now() < deadline {
                    let n = match br.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    for &b in &buf[..n] {
                        if sent >= free {
                            if !trickle {
                                tokio::time::sleep_until(deadline).await;
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if aw.write_all(&[b]).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                }
            });
        }
    });
    addr
}

fn short_limits() -> AuditConfig {
    AuditConfig::new(
        Duration::from_secs(1),
        Duration::from_secs(3),
        Duration::from_secs(2),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_hoster_is_stopped_at_the_hard_maximum() {
    let h = hoster(Prepare::Full).await;
    let mut target = h.target.clone();
    target.addr = relay(h.target.addr, 4096, true).await;
    let t = std::time::Instant::now();
    let out = run_audit(&target, short_limits()).await;
    assert_eq!(out.summary.outcome, Outcome::HardMaxDuration, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert!(out.summary.ok_blocks < 34);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalling_hoster_hits_the_progress_timeout() {
    let h = hoster(Prepare::Full).await;
    let mut target = h.target.clone();
    target.addr = relay(h.target.addr, 4096, false).await;
    let t = std::time::Instant::now();
    let out = run_audit(&target, short_limits()).await;
    assert_eq!(out.summary.outcome, Outcome::ProgressTimeout, "{out:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_hoster_is_connect_failed() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let target = AuditTarget {
        addr,
        noise_key: [1; 32],
        hoster: Keypair::from_seed(&[2; 32]).public(),
        feed: Keypair::from_seed(&[3; 32]).public().as_bytes().to_owned(),
        chain: [0; 32],
    };
    let out = run_audit(&target, short_limits()).await;
    assert_eq!(out.summary.outcome, Outcome::ConnectFailed);
    assert_eq!(out.summary.ok_blocks, 0);
}
