//! Attestor bench, two tables:
//! 1. **Coin flip over the real secret swarm**: N `datdot-attestor flip` processes on
//!    loopback (mutual Noise links, our wire codec), `FLIPS` flips each in its own
//!    session; per flip and member the time from joining to `R` and to the end of the
//!    confirmation. The first flip (processes still connecting) is reported apart.
//! 2. **Audit throughput**: `datdot_net::audit` of a hoster serving a 64 KiB-block feed
//!    from memory on loopback (every block verified against the signed root, metrics
//!    recorded), next to `datdot_net::fetch` of the same blocks in the same run.
//!
//! Run: `cargo build --release --locked -p datdot-attestor -p datdot-benches &&
//! target/release/attestor target/release/datdot-attestor [N=10] [FLIPS=101]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datdot_net::audit::{AuditPlan, AuditTarget, audit};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use datdot_protocol::audit::AuditConfig;
use datdot_protocol::identity::Keypair;
use hypercore::{HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};

const SIZE: usize = 64 * 1024;

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64 - 1.0) * q).round() as usize]
}

fn coinflip(bin: &Path, n: usize, flips: u64) {
    let root = tempfile::tempdir().unwrap();
    let mut members = String::new();
    let mut dirs = Vec::new();
    for i in 0..n {
        let d = root.path().join(format!("a{i}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = Command::new(bin)
            .arg("--dir")
            .arg(&d)
            .args(["init", "--listen", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let info = Command::new(bin)
            .arg("--dir")
            .arg(&d)
            .args(["info", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        members.push_str(&format!(
            "[[members]]\naddr = \"127.0.0.1:{port}\"\nnoise = \"{}\"\nsigning = \"{}\"\n",
            v["noise"].as_str().unwrap(),
            v["signing"].as_str().unwrap()
        ));
        dirs.push(d);
    }
    let file = root.path().join("committee.toml");
    std::fs::write(
        &file,
        format!("session = \"{}\"\n{members}", "ab".repeat(32)),
    )
    .unwrap();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 2000;
    let t = Instant::now();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            Command::new(bin)
                .arg("--dir")
                .arg(d)
                .args(["flip", "--committee"])
                .arg(&file)
                .args([
                    "--rounds",
                    &flips.to_string(),
                    "--start-at",
                    &start.to_string(),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut to_r = Vec::new();
    let mut total = Vec::new();
    let mut first = Vec::new();
    let mut failures = 0;
    let mut results: Vec<Vec<Option<String>>> = vec![Vec::new(); flips as usize];
    for mut c in children {
        for line in BufReader::new(c.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
        {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let k = v["flip"].as_u64().unwrap() as usize;
            results[k].push(v["result"].as_str().map(str::to_string));
            if v["outcome"] != "success" {
                failures += 1;
                continue;
            }
            let r = v["ms_to_result"].as_f64().unwrap();
            if k == 0 {
                first.push(r);
            } else {
                to_r.push(r);
                total.push(v["ms_total"].as_f64().unwrap());
            }
        }
        let _ = c.wait();
    }
    let agreed = results
        .iter()
        .filter(|r| r.iter().all(|x| x.is_some() && *x == r[0]))
        .count();
    let wall = t.elapsed().saturating_sub(Duration::from_secs(2));
    println!("\ncoin flip, {n} real processes on loopback, {flips} flips (sessions) each, 2 cores");
    println!("| what | p50 | p95 | max |");
    println!("|---|---|---|---|");
    let row = |what: &str, v: &[f64]| {
        if v.is_empty() {
            println!("| {what} | - | - | - |");
        } else {
            println!(
                "| {what} | {:.1} ms | {:.1} ms | {:.1} ms |",
                quantile(v, 0.5),
                quantile(v, 0.95),
                quantile(v, 1.0)
            );
        }
    };
    row("join → R (flips 2..)", &to_r);
    row("join → end incl. confirmation (flips 2..)", &total);
    row("first flip, links still being dialled: join → R", &first);
    println!(
        "flips where all {n} agreed on R: {agreed}/{flips}; non-success outcomes: {failures}; wall {:.1} s ({:.1} ms per flip)",
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e3 / flips as f64
    );
}

async fn serve_memory_feed(blocks: u64) -> (std::net::SocketAddr, [u8; 32], [u8; 32], Keypair) {
    let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .build()
        .await
        .unwrap();
    for chunk in (0..blocks).collect::<Vec<_>>().chunks(64) {
        let batch: Vec<Vec<u8>> = chunk
            .iter()
            .map(|i| {
                (0..SIZE)
                    .map(|j| (*i as usize * 31 + j * 7) as u8)
                    .collect()
            })
            .collect();
        core.append_batch(&batch).await.unwrap();
    }
    let key = core.key_pair().public.to_bytes();
    let signer = Keypair::from_seed(&[5; 32]);
    let (addr, nk) = datdot_net::seed(
        "127.0.0.1:0".parse().unwrap(),
        key,
        core,
        Keypair::from_seed(&[5; 32]),
        [0; 32],
        100,
    )
    .await
    .unwrap();
    (addr, nk, key, signer)
}

async fn audit_bench() {
    let blocks = 1024u64;
    let (addr, nk, key, signer) = serve_memory_feed(blocks).await;
    let target = AuditTarget {
        addr,
        noise_key: nk,
        hoster: signer.public(),
        feed: key,
        chain: [0; 32],
    };
    let cfg = AuditConfig::new(
        Duration::from_secs(10),
        Duration::from_secs(600),
        Duration::from_secs(20),
    )
    .unwrap();
    println!("\naudit of a hoster serving 64 KiB blocks from memory, loopback, same run");
    println!("| what | blocks | time | MiB/s | latency p50 / p99 | ttfb p50 |");
    println!("|---|---|---|---|---|---|");
    for (what, sample, window) in [
        (
            "audit, whole feed, window 16",
            (0..blocks).collect::<Vec<_>>(),
            16,
        ),
        ("audit, whole feed, window 64", (0..blocks).collect(), 64),
        (
            "audit, 32 sampled blocks, window 16 (a challenge's sample)",
            (0..blocks).step_by(32).collect(),
            16,
        ),
    ] {
        let mut best: Option<(Duration, datdot_net::audit::AuditOutput)> = None;
        for _ in 0..3 {
            let plan = AuditPlan {
                sample: sample.clone(),
                config: cfg,
                window,
                epoch: Instant::now(),
            };
            let t = Instant::now();
            let out = audit(&target, &plan, &Limits::default()).await;
            let d = t.elapsed();
            assert_eq!(
                out.summary.ok_blocks as usize,
                sample.len(),
                "{:?}",
                out.summary
            );
            if best.as_ref().is_none_or(|(b, _)| d < *b) {
                best = Some((d, out));
            }
        }
        let (d, out) = best.unwrap();
        let s = &out.summary;
        println!(
            "| {what} | {} | {:.0} ms | {:.0} | {:.2} / {:.2} ms | {:.2} ms |",
            sample.len(),
            d.as_secs_f64() * 1e3,
            s.bytes_received as f64 / d.as_secs_f64() / (1024.0 * 1024.0),
            s.latency_p50_us as f64 / 1e3,
            s.latency_p99_us as f64 / 1e3,
            s.ttfb_p50_us as f64 / 1e3,
        );
    }
    // Baseline: the replicating reader (hypercore's verify_and_apply_proof, stores blocks).
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
            .key_pair(PartialKeypair {
                public: VerifyingKey::from_bytes(&key).unwrap(),
                secret: None,
            })
            .build()
            .await
            .unwrap();
        let t = Instant::now();
        let conn = dial(addr, Expect::Key(nk), &Limits::default())
            .await
            .unwrap();
        let r = fetch(conn, key, &core, &FetchOptions::default(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(r.blocks, blocks);
        best = best.min(t.elapsed());
    }
    println!(
        "| baseline: net::fetch of the whole feed into a memory core (window 64) | {blocks} | {:.0} ms | {:.0} | - | - |",
        best.as_secs_f64() * 1e3,
        (blocks as usize * SIZE) as f64 / best.as_secs_f64() / (1024.0 * 1024.0)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .expect("usage: attestor <path to datdot-attestor> [N] [FLIPS]");
    let n: usize = args.get(2).map_or(10, |s| s.parse().unwrap());
    let flips: u64 = args.get(3).map_or(101, |s| s.parse().unwrap());
    coinflip(Path::new(bin), n, flips);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(audit_bench());
}
