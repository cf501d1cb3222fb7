//! Memory of a real `datdot-hoster run` process under many concurrent readers: builds a
//! feed of BLOCKS × 64 KiB, lets the hoster fetch it (`add-feed`), then starts READERS
//! concurrent connections that each fetch and verify SAMPLE blocks spread over the feed,
//! sampling the hoster's RSS from /proc while they run. Prints peak RSS.
//!
//! Run: `cargo build --release --locked -p datdot-hoster -p datdot-benches &&
//! target/release/hoster_memory target/release/datdot-hoster [READERS=200] [BLOCKS=16384] [SAMPLE=64]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use datdot_benches::hoster_proc::{self, SIZE, rss_kib};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use hypercore::{HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = args
        .first()
        .expect("usage: hoster_memory <datdot-hoster binary> [READERS] [BLOCKS] [SAMPLE]")
        .clone();
    let readers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let blocks: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16384);
    let sample: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let h = hoster_proc::start(&bin, blocks, Stdio::null()).await.unwrap();
        let (pid, addr, noise, key) = (h.child.id(), h.addr, h.noise, h.key);
        let idle = rss_kib(pid, "VmRSS:");

        let t = Instant::now();
        let mut tasks = Vec::new();
        for r in 0..readers as u64 {
            let only: Vec<u64> = (0..sample).map(|k| (r * 7919 + k * (blocks / sample).max(1)) % blocks).collect();
            tasks.push(tokio::spawn(async move {
                let limits = Limits { progress_timeout: Duration::from_secs(120), ..Limits::default() };
                let conn = dial(addr, Expect::Key(noise), &limits).await?;
                let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
                    .key_pair(PartialKeypair { public: VerifyingKey::from_bytes(&key).unwrap(), secret: None })
                    .build()
                    .await
                    .unwrap();
                let opts = FetchOptions { only: Some(only), ..FetchOptions::default() };
                fetch(conn, key, &core, &opts, &mut |_| {}).await.map_err(anyhow::Error::from)
            }));
        }
        let mut peak = 0;
        let mut done = 0;
        let mut failed = 0;
        let mut blocks_read = 0;
        while !tasks.is_empty() {
            peak = peak.max(rss_kib(pid, "VmRSS:"));
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (finished, rest): (Vec<_>, Vec<_>) = tasks.into_iter().partition(|t| t.is_finished());
            tasks = rest;
            for f in finished {
                match f.await.unwrap() {
                    Ok(rep) => {
                        done += 1;
                        blocks_read += rep.blocks;
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("reader failed: {e:#}");
                    }
                }
            }
            assert!(t.elapsed() < Duration::from_secs(600), "bounded");
        }
        let hwm = rss_kib(pid, "VmHWM:");
        drop(h);
        println!("| feed | readers | blocks verified | time | hoster RSS idle | peak RSS (sampled) | VmHWM |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| {} MiB | {readers} ({done} ok, {failed} failed) | {blocks_read} x 64 KiB | {:.1} s | {} MiB | {} MiB | {} MiB |",
            (blocks * SIZE as u64) >> 20,
            t.elapsed().as_secs_f64(),
            idle / 1024,
            peak / 1024,
            hwm / 1024
        );
    });
}
