//! Memory of a real `datdot-hoster run` process under many concurrent readers: builds a
//! feed of BLOCKS × 64 KiB, lets the hoster fetch it (`add-feed`), then starts READERS
//! concurrent connections that each fetch and verify SAMPLE blocks spread over the feed,
//! sampling the hoster's RSS from /proc while they run. Prints peak RSS.
//!
//! Run: `cargo build --release --locked -p datdot-hoster -p datdot-benches &&
//! target/release/hoster_memory target/release/datdot-hoster [READERS=200] [BLOCKS=16384] [SAMPLE=64]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datdot_net::{
    Counters, Expect, FetchOptions, Limits, Listener, NoiseIdentity, ServeConfig, SingleFeed, dial,
    fetch, serve,
};
use datdot_protocol::identity::Keypair;
use hypercore::{HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};

const SIZE: usize = 64 * 1024;

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = args
        .first()
        .expect("usage: hoster_memory <datdot-hoster binary> [READERS] [BLOCKS] [SAMPLE]")
        .clone();
    let readers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let blocks: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(16384);
    let sample: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("datdot-hoster-memory-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // The publisher, in this process.
        let w = HypercoreBuilder::new(Storage::new_memory().await.unwrap()).build().await.unwrap();
        let mut i = 0u64;
        while i < blocks {
            let n = 64.min(blocks - i);
            let batch: Vec<Vec<u8>> = (i..i + n).map(|k| vec![(k % 251) as u8; SIZE]).collect();
            w.append_batch(&batch).await.unwrap();
            i += n;
        }
        let key = w.key_pair().public.to_bytes();
        let counters = Arc::new(Counters::default());
        let l = Listener::bind("127.0.0.1:0".parse().unwrap(), NoiseIdentity::generate(), Limits::default(), counters.clone()).await.unwrap();
        let (paddr, pkey) = (l.local_addr().unwrap(), l.public_key());
        let src = Arc::new(SingleFeed::new(key, w));
        let cfg = ServeConfig { signer: Arc::new(Keypair::from_seed(&[1; 32])), chain: tokio::sync::watch::channel([0; 32]).1, receipt_every: 100, counters };
        tokio::spawn(l.run(move |c| {
            let (src, cfg) = (src.clone(), cfg.clone());
            async move {
                let _ = serve(c, src.as_ref(), &cfg).await;
            }
        }));

        // The hoster: init, add-feed, run.
        let st = Command::new(&bin).arg("--dir").arg(&dir).args(["init", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let t = Instant::now();
        let st = Command::new(&bin)
            .arg("--dir")
            .arg(&dir)
            .args(["add-feed", &hex::encode(key), "--from", &paddr.to_string(), "--peer-key", &hex::encode(pkey), "--quiet"])
            .output()
            .unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        eprintln!("add-feed of {} MiB took {:.1} s", (blocks * SIZE as u64) >> 20, t.elapsed().as_secs_f64());
        let mut run = Command::new(&bin).arg("--dir").arg(&dir).arg("run").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let pid = run.id();
        let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let words: Vec<&str> = first.split_whitespace().collect();
        let addr: SocketAddr = words[1].parse().unwrap();
        let noise: [u8; 32] = hex::decode(words[3]).unwrap().try_into().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
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
        let _ = run.kill();
        let _ = run.wait();
        let _ = std::fs::remove_dir_all(&dir);
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
