//! End-to-end transport bench: one connection, a hoster serving verified 64 KiB blocks to
//! a reader on loopback, next to baselines measured in the same run — raw BLAKE2b-256 and
//! ChaCha20-Poly1305 on the same bytes, the local cost of creating and verifying the
//! proofs (where the time goes), and JS `hypercore@10.38.2` replicating the same feed
//! between two node processes (needs `npm ci` in `interop/`).
//!
//! Run: `cargo run --release --locked -p datdot-benches --bin transport -- [BLOCKS] [--no-js]`
//! (default 1024 blocks = 64 MiB). Prints a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use datdot_net::{Expect, FetchOptions, Limits, dial, fetch};
use datdot_protocol::identity::Keypair;
use hypercore::{Hypercore, HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};
use hypercore_schema::{RequestBlock, RequestUpgrade};

const SIZE: usize = 64 * 1024;

fn block(i: u64) -> Vec<u8> {
    (0..SIZE).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

async fn reader(key: [u8; 32]) -> Hypercore {
    HypercoreBuilder::new(Storage::new_memory().await.unwrap())
        .key_pair(PartialKeypair {
            public: VerifyingKey::from_bytes(&key).unwrap(),
            secret: None,
        })
        .build()
        .await
        .unwrap()
}

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0)
}

fn field(line: &str, name: &str) -> Option<String> {
    let pat = format!("\"{name}\":");
    let rest = &line[line.find(&pat)? + pat.len()..];
    Some(
        rest.trim_start_matches('"')
            .split(['"', ',', '}'])
            .next()?
            .to_string(),
    )
}

/// JS writer → JS reader over loopback; returns the reader's replication time.
fn js_run(blocks: u64) -> Result<Duration, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop");
    if !dir.join("node_modules/hypercore").exists() {
        return Err("interop/node_modules missing (run `npm ci` in interop/)".into());
    }
    let mut w = Command::new("node")
        .arg(dir.join("writer.js"))
        .args([blocks.to_string(), SIZE.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("node: {e}"))?;
    let mut line = String::new();
    BufReader::new(w.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port = field(&line, "port").ok_or("writer printed no port")?;
    let key = field(&line, "key").ok_or("writer printed no key")?;
    let out = Command::new("node")
        .arg(dir.join("reader.js"))
        .args([
            port,
            key,
            SIZE.to_string(),
            "64".into(),
            "noreceipts".into(),
        ])
        .output()
        .map_err(|e| e.to_string());
    drop(w.stdin.take());
    let _ = w.kill();
    let _ = w.wait();
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ms: u64 = field(&text, "ms")
        .ok_or(format!(
            "reader: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ))?
        .parse()
        .map_err(|_| "bad ms")?;
    Ok(Duration::from_millis(ms))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let blocks: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let no_js = args.iter().any(|a| a == "--no-js");
    let total = blocks * SIZE as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let data: Vec<Vec<u8>> = (0..blocks).map(block).collect();

        // Baselines on the same bytes.
        let t = Instant::now();
        let mut acc = 0u8;
        for b in &data {
            acc ^= datdot_protocol::tree::leaf_hash(b)[0];
        }
        let blake = t.elapsed();
        let aead = ChaCha20Poly1305::new(&[7u8; 32].into());
        let mut buf = vec![0u8; SIZE];
        let t = Instant::now();
        for (i, b) in data.iter().enumerate() {
            buf.copy_from_slice(b);
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let tag = aead
                .encrypt_in_place_detached(&nonce.into(), &[], &mut buf)
                .unwrap();
            acc ^= tag[0];
        }
        let chacha = t.elapsed();

        // The feed (memory storage on both sides: transport + proofs, not the disk).
        let writer = HypercoreBuilder::new(Storage::new_memory().await.unwrap())
            .build()
            .await
            .unwrap();
        let t = Instant::now();
        for chunk in data.chunks(64) {
            writer.append_batch(chunk).await.unwrap();
        }
        let append = t.elapsed();
        let key = writer.key_pair().public.to_bytes();

        // Where the time goes, locally: creating and verifying every proof.
        let r = reader(key).await;
        let up = writer
            .create_proof(
                None,
                None,
                None,
                Some(RequestUpgrade {
                    start: 0,
                    length: blocks,
                }),
            )
            .await
            .unwrap()
            .unwrap();
        r.verify_and_apply_proof(up).await.unwrap();
        let (mut create, mut verify) = (Duration::ZERO, Duration::ZERO);
        for i in 0..blocks {
            let nodes = r.missing_nodes(i).await.unwrap();
            let t = Instant::now();
            let p = writer
                .create_proof(Some(RequestBlock { index: i, nodes }), None, None, None)
                .await
                .unwrap()
                .unwrap();
            create += t.elapsed();
            let t = Instant::now();
            assert!(r.verify_and_apply_proof(p).await.unwrap());
            verify += t.elapsed();
        }
        drop(r);

        // Over loopback: one connection, best of 3.
        let (addr, nk) = datdot_net::seed(
            "127.0.0.1:0".parse().unwrap(),
            key,
            writer.clone(),
            Keypair::from_seed(&[1; 32]),
            [0; 32],
            100,
        )
        .await
        .unwrap();
        let mut best = Duration::MAX;
        let mut receipts = 0;
        for _ in 0..3 {
            let r = reader(key).await;
            let t = Instant::now();
            let conn = dial(addr, Expect::Key(nk), &Limits::default())
                .await
                .unwrap();
            let rep = fetch(conn, key, &r, &FetchOptions::default(), &mut |_| {})
                .await
                .unwrap();
            let d = t.elapsed();
            assert_eq!(rep.blocks, blocks);
            receipts = rep.receipts.len();
            best = best.min(d);
        }

        let js = if no_js {
            Err("--no-js".to_string())
        } else {
            tokio::task::spawn_blocking(move || js_run(blocks))
                .await
                .unwrap()
        };

        println!(
            "feed: {blocks} blocks x 64 KiB = {} MiB, loopback, 2 cores (acc {acc})\n",
            total >> 20
        );
        println!("| what | time | MiB/s | vs datdot |");
        println!("|---|---|---|---|");
        let ours = mibs(total, best);
        let row = |what: &str, d: Duration| {
            println!(
                "| {what} | {:.1} ms | {:.0} | {:.2}x |",
                d.as_secs_f64() * 1e3,
                mibs(total, d),
                mibs(total, d) / ours
            );
        };
        row(
            "datdot: hoster -> reader, 1 connection, every block verified (best of 3)",
            best,
        );
        match &js {
            Ok(d) => row("JS hypercore@10.38.2: node writer -> node reader", *d),
            Err(e) => println!("| JS hypercore@10.38.2 | skipped: {e} | | |"),
        }
        row("raw BLAKE2b-256 leaf hashes (1 core)", blake);
        row("raw ChaCha20-Poly1305 encrypt (1 core)", chacha);
        println!("\nwhere the time goes (local, same run, no network):\n");
        println!("| step | time | MiB/s |");
        println!("|---|---|---|");
        for (what, d) in [
            ("writer append (hash + sign, 64 per batch)", append),
            ("hoster: create_proof, all blocks", create),
            ("reader: verify_and_apply_proof, all blocks", verify),
        ] {
            println!(
                "| {what} | {:.1} ms | {:.0} |",
                d.as_secs_f64() * 1e3,
                mibs(total, d)
            );
        }
        println!("\nreceipts per session: {receipts}");
        if let Ok(d) = js {
            println!("datdot / JS: {:.2}x", mibs(total, best) / mibs(total, d));
        }
    });
}
