//! The `datdot-hoster` binary on loopback: add-feed with verification, kill -9 twice in
//! the middle of a download (every block it reported verified is kept; the resume
//! fetches exactly the rest) and in the middle of serving (after the restart the reader
//! resumes and every block verifies). `crash_points.rs` kills at every write instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datdot_net::{Expect, FetchOptions, Limits, Progress, dial, fetch};
use hypercore::{HypercoreBuilder, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::{bin, fill, reader, serve_feed};
use tokio::net::{TcpListener, TcpStream};

const BLOCKS: u64 = 1024;
const SIZE: usize = 16 * 1024;

fn block(i: u64) -> Vec<u8> {
    (0..SIZE)
        .map(|j| (i as usize * 131 + j * 7) as u8)
        .collect()
}

/// A publisher serving a fresh feed on loopback; returns (addr, noise key, feed key).
async fn publisher() -> (SocketAddr, [u8; 32], [u8; 32]) {
    let core = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .build()
        .await
        .unwrap();
    fill(&core, BLOCKS, block).await;
    let key = core.key_pair().public.to_bytes();
    let (addr, nk) = serve_feed(key, core).await;
    (addr, nk, key)
}

/// A TCP relay to `to` that forwards at most ~`bps` bytes per second each way, so a
/// transfer lasts long enough to be killed in the middle. Bounded: ends with either side.
async fn throttle(to: SocketAddr, bps: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((a, _)) = l.accept().await {
            let Ok(b) = TcpStream::connect(to).await else {
                continue;
            };
            let (ar, aw) = a.into_split();
            let (br, bw) = b.into_split();
            for (mut r, mut w) in [(ar, bw), (br, aw)].map(|(r, w)| (r, w)) {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; bps / 100];
                    loop {
                        let n = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    let _ = w.shutdown().await;
                });
            }
        }
    });
    addr
}

/// `init`, with a short progress timeout so a killed peer is noticed quickly.
fn init_fast(dir: &Path) {
    common::init(dir);
    let cfg = dir.join("hoster.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("progress_timeout_secs = 20", "progress_timeout_secs = 5");
    std::fs::write(cfg, text).unwrap();
}

fn add_feed(dir: &Path, key: &[u8; 32], from: SocketAddr, peer: &[u8; 32]) -> Child {
    bin()
        .arg("--dir")
        .arg(dir)
        .args([
            "add-feed",
            &hex::encode(key),
            "--from",
            &from.to_string(),
            "--peer-key",
            &hex::encode(peer),
            "--quiet",
            "--log-blocks",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Stored blocks of the feed under `dir` (count and indices), each checked against the
/// source bytes.
async fn stored(dir: &Path, key: &[u8; 32]) -> (u64, std::collections::HashSet<u64>) {
    let core = match datdot_store::open_core(&datdot_store::feed_dir(dir, key), key).await {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    let mut have = std::collections::HashSet::new();
    for i in 0..core.info().length {
        if core.has(i) {
            assert_eq!(
                core.get(i).await.unwrap().unwrap(),
                block(i),
                "stored block {i}"
            );
            have.insert(i);
        }
    }
    (have.len() as u64, have)
}

/// Run `add-feed` (via the throttled relay `from`) until it has reported `at_least`
/// verified blocks in total (counting `before`), then kill -9 it. Returns every block
/// it reported verified before it died.
fn add_feed_until_kill9(
    dir: &Path,
    key: &[u8; 32],
    from: SocketAddr,
    peer: &[u8; 32],
    before: usize,
    at_least: usize,
) -> Vec<u64> {
    let mut child = add_feed(dir, key, from, peer);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(BLOCKS as usize); // a line per block at most
    let lines = std::thread::spawn(move || {
        let mut verified = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix("verified ") {
                verified.push(i.parse::<u64>().unwrap());
                let _ = tx.send(());
            }
        }
        verified
    });
    let t = Instant::now();
    let mut seen = before;
    while seen < at_least {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(()) => seen += 1,
            Err(e) => panic!("add-feed stopped reporting blocks ({e:?}) after {seen}"),
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no progress");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Everything it printed before it died (the pipe is drained to EOF).
    lines.join().unwrap()
}

fn start_run(dir: &Path) -> (Child, SocketAddr, [u8; 32], SocketAddr) {
    let mut child = bin()
        .arg("--dir")
        .arg(dir)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let metrics = lines.next().unwrap().unwrap();
    let w: Vec<&str> = first.split_whitespace().collect();
    assert_eq!((w[0], w[2]), ("listening", "noise"), "{first}");
    let addr: SocketAddr = w[1].parse().unwrap();
    let noise: [u8; 32] = hex::decode(w[3]).unwrap().try_into().unwrap();
    let m: SocketAddr = metrics
        .trim_start_matches("metrics http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    (child, addr, noise, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_feed_kill9_resume_serve_kill9_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init_fast(dir);
    let (src, src_key, key) = publisher().await;
    let slow = throttle(src, 4 << 20).await;

    // 1. kill -9 twice in the middle of the download (after a quarter, then after half
    //    of the feed was reported verified): every block reported verified is kept.
    let mut verified: Vec<u64> = Vec::new();
    for at_least in [BLOCKS / 4, BLOCKS / 2] {
        let now =
            add_feed_until_kill9(dir, &key, slow, &src_key, verified.len(), at_least as usize);
        verified.extend(now);
        let (kept, have) = stored(dir, &key).await;
        for i in &verified {
            assert!(
                have.contains(i),
                "block {i} was verified before kill -9 and is lost"
            );
        }
        assert!(
            kept >= verified.len() as u64 && kept < BLOCKS,
            "kept {kept}, verified {}",
            verified.len()
        );
        assert!(!datdot_store::feed_dir(dir, &key).join("complete").exists());
    }
    let (kept, _) = stored(dir, &key).await;

    // 2. Resume: exactly the missing blocks are fetched.
    let out = add_feed(dir, &key, src, &src_key)
        .wait_with_output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().last().unwrap();
    assert!(line.contains(&format!("length {BLOCKS}")), "{line}");
    let fetched: u64 = line
        .split("fetched ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(fetched, BLOCKS - kept, "resumed: had {kept}: {line}");
    assert!(line.contains(&format!("{kept} already stored")), "{line}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("verified ")).count() as u64,
        fetched
    );
    assert_eq!(stored(dir, &key).await.0, BLOCKS);

    // 3. Serve it; a reader verifies everything.
    let (mut run, addr, noise, metrics) = start_run(dir);
    let conn = dial(addr, Expect::Key(noise), &Limits::default())
        .await
        .unwrap();
    let r = reader(key).await;
    let rep = fetch(conn, key, &r, &FetchOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(rep.blocks, BLOCKS);
    assert_eq!(
        rep.receipts.iter().map(|r| r.entries.len()).sum::<usize>(),
        BLOCKS as usize
    );
    let m = datdot_testkit::scrape(metrics).await.unwrap();
    assert!(
        m.contains(&format!("datdot_hoster_blocks_served_total {BLOCKS}")),
        "{m}"
    );
    assert!(m.contains("datdot_hoster_feeds 1"), "{m}");

    // 4. kill -9 while serving a slow reader (once it verified a quarter of the feed),
    //    restart: the same reader resumes and gets the rest, a new reader gets it all.
    let slow_hoster = throttle(addr, 4 << 20).await;
    let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reading = tokio::spawn({
        let got = got.clone();
        async move {
            let conn = dial(slow_hoster, Expect::Key(noise), &Limits::default())
                .await
                .unwrap();
            let r = reader(key).await;
            let res = fetch(conn, key, &r, &FetchOptions::default(), &mut |p| {
                if let Progress::Block { .. } = p {
                    got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
            .await;
            (res, r)
        }
    });
    let t = Instant::now();
    while got.load(std::sync::atomic::Ordering::Relaxed) < BLOCKS / 4 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "slow reader made no progress"
        );
        assert!(
            !reading.is_finished(),
            "the slow reader finished before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    let (res, r) = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .unwrap()
        .unwrap();
    assert!(res.is_err(), "the session must break with the hoster");
    let partial = r.info().contiguous_length;
    assert!(
        (BLOCKS / 4..BLOCKS).contains(&partial),
        "reader had {partial}"
    );
    let (mut run, addr, noise2, _) = start_run(dir);
    assert_eq!(noise2, noise, "same persistent Noise key after restart");
    let conn = dial(addr, Expect::Key(noise), &Limits::default())
        .await
        .unwrap();
    let rep = fetch(conn, key, &r, &FetchOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(rep.blocks, BLOCKS - partial, "the reader resumes");
    let conn = dial(addr, Expect::Key(noise), &Limits::default())
        .await
        .unwrap();
    let fresh = reader(key).await;
    let rep = fetch(conn, key, &fresh, &FetchOptions::default(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(rep.blocks, BLOCKS);
    assert_eq!(
        rep.receipts.iter().map(|r| r.entries.len()).sum::<usize>(),
        BLOCKS as usize
    );
    for i in 0..BLOCKS {
        assert_eq!(r.get(i).await.unwrap().unwrap(), block(i));
        assert_eq!(fresh.get(i).await.unwrap().unwrap(), block(i));
    }
    run.kill().unwrap();
    run.wait().unwrap();
}
