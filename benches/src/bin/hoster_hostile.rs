//! A real `datdot-hoster run` under a connection-slot attack: an attacker holds HOSTILE
//! connections (70 % silent sockets that never finish a handshake, 30 % sessions that
//! finish it and then do nothing) from ADDRS loopback addresses (127.0.0.10 …), renewing
//! them every 10 s, while READERS honest readers each fetch and verify SAMPLE blocks over
//! and over, each from its own address (127.0.1.1 …: readers are distinct hosts; set
//! `READERS_FROM_ONE=1` to put them all on 127.0.0.2, one source group sharing one fair
//! share of the sessions). The same readers first run without the attack (the
//! baseline, same run). A third phase: FLOODERS sessions (from the same addresses)
//! each ask for the whole feed, never read, and keep sending ~8 KiB messages
//! ([`datdot_net::hostile::ask_without_reading`]) while the readers run. Prints, per
//! phase: readers served, blocks, aggregate throughput, the hoster's peak RSS (VmHWM)
//! and the log lines it wrote.
//!
//! Run: `cargo build --release --locked -p datdot-hoster -p datdot-benches &&
//! target/release/hoster_hostile target/release/datdot-hoster [HOSTILE=1000] [ADDRS=50]
//! [READERS=8] [SECS=30] [FLOODERS=256]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use datdot_benches::hoster_proc::{self, SIZE, rss_kib};
use datdot_net::hostile::{Flood, ask_without_reading};
use datdot_net::{Connection, Expect, FetchOptions, Limits, dial_from, fetch};
use hypercore::{HypercoreBuilder, PartialKeypair, Storage, VerifyingKey};
use tokio::net::{TcpSocket, TcpStream};

const BLOCKS: u64 = 1024;
const SAMPLE: u64 = 64;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    blocks: AtomicU64,
}

fn one_address() -> bool {
    std::env::var_os("READERS_FROM_ONE").is_some_and(|v| v == "1")
}

/// READERS readers fetching SAMPLE blocks each, again and again, for `secs`.
async fn readers(
    addr: SocketAddr,
    noise: [u8; 32],
    key: [u8; 32],
    n: u64,
    secs: u64,
) -> (Arc<Tally>, f64) {
    let tally = Arc::new(Tally::default());
    let t = Instant::now();
    let until = t + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for r in 0..n {
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while Instant::now() < until {
                round += 1;
                let only: Vec<u64> = (0..SAMPLE)
                    .map(|k| (r * 7919 + round * 131 + k * (BLOCKS / SAMPLE)) % BLOCKS)
                    .collect();
                let limits = Limits {
                    progress_timeout: Duration::from_secs(20),
                    ..Limits::default()
                };
                let from = Some(if one_address() {
                    IpAddr::from([127, 0, 0, 2])
                } else {
                    IpAddr::from([127, 0, 1, 1 + (r % 250) as u8])
                });
                let res = async {
                    let conn = dial_from(from, addr, Expect::Key(noise), &limits).await?;
                    let core = HypercoreBuilder::new(Storage::new_memory().await?)
                        .key_pair(PartialKeypair {
                            public: VerifyingKey::from_bytes(&key)?,
                            secret: None,
                        })
                        .build()
                        .await?;
                    let opts = FetchOptions {
                        only: Some(only),
                        ..FetchOptions::default()
                    };
                    anyhow::Ok(fetch(conn, key, &core, &opts, &mut |_| {}).await?)
                }
                .await;
                match res {
                    Ok(rep) => {
                        tally.ok.fetch_add(1, Relaxed);
                        tally.blocks.fetch_add(rep.blocks, Relaxed);
                    }
                    Err(e) => {
                        tally.failed.fetch_add(1, Relaxed);
                        eprintln!("reader {r} failed: {e:#}");
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (tally, t.elapsed().as_secs_f64())
}

/// Hold `n` connections from `addrs` addresses, renewed every 10 s, until `stop`.
async fn attacker(addr: SocketAddr, noise: [u8; 32], n: usize, addrs: u8, stop: Arc<AtomicBool>) {
    let sources: Vec<IpAddr> = (0..addrs)
        .map(|i| IpAddr::from([127, 0, 0, 10 + i]))
        .collect();
    let limits = Limits {
        handshake_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    while !stop.load(Relaxed) {
        let mut silent: Vec<TcpStream> = Vec::new();
        let mut sessions: Vec<Connection> = Vec::new();
        for i in 0..n {
            let from = sources[i % sources.len()];
            if i % 10 < 7 {
                let s = TcpSocket::new_v4().unwrap();
                s.bind(SocketAddr::new(from, 0)).unwrap();
                if let Ok(c) = s.connect(addr).await {
                    silent.push(c);
                }
            } else if let Ok(c) = dial_from(Some(from), addr, Expect::Key(noise), &limits).await {
                sessions.push(c);
            }
        }
        for _ in 0..100 {
            if stop.load(Relaxed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop((silent, sessions));
    }
}

/// `n` sessions from `addrs` addresses that ask for the whole feed and never read
/// ([`ask_without_reading`]), each renewed when it ends, until `stop`. Returns the
/// bytes they got onto the wire.
async fn flooders(
    addr: SocketAddr,
    noise: [u8; 32],
    key: [u8; 32],
    n: usize,
    addrs: u8,
    stop: Arc<AtomicBool>,
) -> u64 {
    let limits = Limits {
        handshake_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let flood = Flood {
        requests: BLOCKS,
        messages: 480,
        hold: Duration::from_secs(5),
    };
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let from = IpAddr::from([127, 0, 0, 10 + (i % usize::from(addrs)) as u8]);
            let (stop, limits) = (stop.clone(), limits.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while !stop.load(Relaxed) {
                    let session = ask_without_reading(from, addr, noise, key, &limits, flood);
                    // The hoster answers slowly on purpose: a session ends within 30 s.
                    if let Ok(n) = tokio::time::timeout(Duration::from_secs(30), session).await {
                        sent += n;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    sent
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = args
        .first()
        .expect("usage: hoster_hostile <datdot-hoster binary> [HOSTILE] [ADDRS] [READERS] [SECS] [FLOODERS]")
        .clone();
    let hostile: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let addrs: u8 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let n: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(8);
    let secs: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(30);
    let flooding: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(256);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = std::env::temp_dir().join(format!("datdot-hoster-hostile-{}.log", std::process::id()));
        let h = hoster_proc::start(&bin, BLOCKS, Stdio::from(std::fs::File::create(&log).unwrap())).await.unwrap();
        let (pid, addr, noise, key) = (h.child.id(), h.addr, h.noise, h.key);
        println!("| phase | fetches ok | failed | blocks verified | MiB/s (all readers) | hoster VmHWM | log lines |");
        println!("|---|---|---|---|---|---|---|");
        let row = |phase: &str, t: &Tally, s: f64| {
            let b = t.blocks.load(Relaxed);
            println!(
                "| {phase} | {} | {} | {b} x 64 KiB | {:.1} | {} MiB | {} |",
                t.ok.load(Relaxed),
                t.failed.load(Relaxed),
                (b * SIZE as u64) as f64 / s / (1 << 20) as f64,
                rss_kib(pid, "VmHWM:") / 1024,
                lines(&log)
            );
        };
        let (t, s) = readers(addr, noise, key, n, secs).await;
        row("baseline (no attack)", &t, s);
        let stop = Arc::new(AtomicBool::new(false));
        let att = tokio::spawn(attacker(addr, noise, hostile, addrs, stop.clone()));
        // Let the attacker fill the budgets first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (t, s) = readers(addr, noise, key, n, secs).await;
        row(&format!("{hostile} hostile connections from {addrs} addresses"), &t, s);
        stop.store(true, Relaxed);
        att.await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let fl = tokio::spawn(flooders(addr, noise, key, flooding, addrs, stop.clone()));
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (t, s) = readers(addr, noise, key, n, secs).await;
        row(&format!("{flooding} sessions that ask for all and never read"), &t, s);
        stop.store(true, Relaxed);
        let sent = fl.await.unwrap();
        eprintln!("the flooders put {} MiB of messages on the wire", sent >> 20);
        drop(h);
        eprintln!("the hoster's log: {}", log.display());
    });
}
