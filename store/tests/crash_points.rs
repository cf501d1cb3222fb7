//! kill -9 at every write. A hoster-side core fetches a feed the way `net::fetch` does
//! (upgrade, then block proofs with a window of requests in flight; the feed grows once
//! in the middle) on a storage that records every write and truncation the `hypercore`
//! crate makes. For every prefix of those writes — the files a kill -9 after that write
//! leaves — `store::open_core` must open the feed with every block whose
//! `verify_and_apply_proof` had returned, each one readable and provable to a fresh
//! reader, and a resumed fetch must complete. The same is checked for every prefix of
//! our own oplog flush (`flush::plan` / `execute`) at every crash point that needs one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datdot_store as store;
use datdot_store::flush;
use datdot_store::oplog::OplogError;
use hypercore::{
    Hypercore, HypercoreBuilder, PartialKeypair, Storage, StorageTraits, Store, VerifyingKey,
};
use hypercore_schema::{RequestBlock, RequestUpgrade};
use random_access_storage::{BoxFuture, RandomAccess, RandomAccessError};

/// Blocks before and after the feed grows.
const FIRST: u64 = 20;
const TOTAL: u64 = 32;
/// Requests in flight (computed ahead, as `net::fetch` does).
const WINDOW: u64 = 6;

fn block(i: u64) -> Vec<u8> {
    (0..700 + (i as usize * 37) % 500)
        .map(|j| (i as usize * 31 + j) as u8)
        .collect()
}

const FILES: [&str; 4] = ["tree", "data", "bitfield", "oplog"];

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    Truncate(u64),
    Del(u64, u64),
}

type Log = Arc<Mutex<Vec<(usize, Op)>>>;

/// One file of the recorded storage: its bytes, and the shared log of every change.
#[derive(Debug)]
struct Recorded {
    file: usize,
    bytes: Mutex<Vec<u8>>,
    log: Log,
}

fn apply(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(offset, data) => {
            let end = *offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(data);
        }
        Op::Truncate(len) => bytes.resize(*len as usize, 0),
        Op::Del(offset, len) => {
            let (o, l) = (*offset as usize, *len as usize);
            if o + l >= bytes.len() {
                bytes.truncate(o);
            } else {
                bytes[o..o + l].fill(0);
            }
        }
    }
}

impl Recorded {
    fn record(&self, op: Op) {
        apply(&mut self.bytes.lock().unwrap(), &op);
        self.log.lock().unwrap().push((self.file, op));
    }
}

impl RandomAccess for Recorded {
    fn write(&self, offset: u64, data: &[u8]) -> BoxFuture<Result<(), RandomAccessError>> {
        self.record(Op::Write(offset, data.to_vec()));
        Box::pin(async { Ok(()) })
    }

    fn read(&self, offset: u64, length: u64) -> BoxFuture<Result<Vec<u8>, RandomAccessError>> {
        let b = self.bytes.lock().unwrap();
        let r = if offset + length > b.len() as u64 {
            Err(RandomAccessError::OutOfBounds {
                offset,
                end: Some(offset + length),
                length: b.len() as u64,
            })
        } else {
            Ok(b[offset as usize..(offset + length) as usize].to_vec())
        };
        Box::pin(async { r })
    }

    fn del(&self, offset: u64, length: u64) -> BoxFuture<Result<(), RandomAccessError>> {
        self.record(Op::Del(offset, length));
        Box::pin(async { Ok(()) })
    }

    fn truncate(&self, length: u64) -> BoxFuture<Result<(), RandomAccessError>> {
        self.record(Op::Truncate(length));
        Box::pin(async { Ok(()) })
    }

    fn len(&self) -> u64 {
        self.bytes.lock().unwrap().len() as u64
    }
}

async fn recorded_storage(log: &Log) -> Storage {
    let log = log.clone();
    Storage::open(
        move |store: Store| {
            let file = match store {
                Store::Tree => 0,
                Store::Data => 1,
                Store::Bitfield => 2,
                Store::Oplog => 3,
            };
            let log = log.clone();
            Box::pin(async move {
                Ok(Arc::new(Recorded {
                    file,
                    bytes: Mutex::new(Vec::new()),
                    log,
                }) as Arc<dyn StorageTraits>)
            })
        },
        false,
    )
    .await
    .unwrap()
}

async fn memory_core(key: Option<[u8; 32]>) -> Hypercore {
    let b = HypercoreBuilder::new(Storage::new_memory().await.unwrap());
    match key {
        Some(k) => b.key_pair(PartialKeypair {
            public: VerifyingKey::from_bytes(&k).unwrap(),
            secret: None,
        }),
        None => b,
    }
    .build()
    .await
    .unwrap()
}

/// Fetch from `writer` into `core` what it lacks: upgrade to the writer's length, then
/// every missing block in ascending order with `WINDOW` requests computed ahead. Calls
/// `acked` after each `verify_and_apply_proof` returned (block index, or None for an
/// upgrade).
async fn fetch(writer: &Hypercore, core: &Hypercore, mut acked: impl FnMut(Option<u64>)) {
    let (have, want) = (core.info().length, writer.info().length);
    if want > have {
        let p = writer
            .create_proof(
                None,
                None,
                None,
                Some(RequestUpgrade {
                    start: have,
                    length: want - have,
                }),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(core.verify_and_apply_proof(p).await.unwrap());
        acked(None);
    }
    let missing: Vec<u64> = (0..want).filter(|&i| !core.has(i)).collect();
    let mut requests = std::collections::VecDeque::new();
    let mut next = 0;
    while next < missing.len() || !requests.is_empty() {
        while next < missing.len() && (requests.len() as u64) < WINDOW {
            let i = missing[next];
            let nodes = core.missing_nodes(i).await.unwrap();
            requests.push_back(RequestBlock { index: i, nodes });
            next += 1;
        }
        let r = requests.pop_front().unwrap();
        let i = r.index;
        let p = writer
            .create_proof(Some(r), None, None, None)
            .await
            .unwrap()
            .unwrap();
        assert!(core.verify_and_apply_proof(p).await.unwrap(), "block {i}");
        acked(Some(i));
    }
}

/// Write the recorded files after the first `k` changes into `dir`.
fn materialize(log: &[(usize, Op)], k: usize, dir: &Path) {
    let mut files: [Vec<u8>; 4] = Default::default();
    for (f, op) in &log[..k] {
        apply(&mut files[*f], op);
    }
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in FILES.iter().zip(files) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The feed under `dir` opens; it has every block in `must`, and every block it has is
/// the right data and provable to a fresh reader. Returns the opened core.
async fn check(dir: &Path, key: &[u8; 32], must: &[u64], min_length: u64, what: &str) -> Hypercore {
    let core = match store::open_core(dir, key).await {
        Ok(c) => c,
        Err(e) => panic!("{what}: cannot reopen: {e:#}"),
    };
    let info = core.info();
    assert!(
        info.length >= min_length,
        "{what}: length {} < {min_length}",
        info.length
    );
    for &i in must {
        assert!(core.has(i), "{what}: verified block {i} lost");
    }
    // A fresh reader verifies the signed tree, then each block the core has (as
    // `net::fetch` does; the crate cannot apply a block and an upgrade in one proof to an
    // empty core).
    let reader = memory_core(Some(*key)).await;
    if info.length > 0 {
        let upgrade = RequestUpgrade {
            start: 0,
            length: info.length,
        };
        let p = core.create_proof(None, None, None, Some(upgrade)).await;
        assert!(
            reader
                .verify_and_apply_proof(p.unwrap().unwrap())
                .await
                .unwrap(),
            "{what}: signed tree"
        );
    }
    let mut contiguous = None;
    for i in 0..info.length {
        if !core.has(i) {
            contiguous.get_or_insert(i);
            continue;
        }
        assert_eq!(
            core.get(i).await.unwrap().unwrap(),
            block(i),
            "{what}: block {i}"
        );
        let nodes = reader.missing_nodes(i).await.unwrap();
        let p = core
            .create_proof(Some(RequestBlock { index: i, nodes }), None, None, None)
            .await;
        assert!(
            reader
                .verify_and_apply_proof(p.unwrap().unwrap())
                .await
                .unwrap(),
            "{what}: proof of block {i}"
        );
    }
    assert_eq!(
        info.contiguous_length,
        contiguous.unwrap_or(info.length),
        "{what}: contiguous length"
    );
    core
}

#[tokio::test]
async fn reopen_after_a_kill_at_every_write() {
    let started = Instant::now();
    // The feed author and the recorded fetch.
    let writer = memory_core(None).await;
    for i in 0..FIRST {
        writer.append(&block(i)).await.unwrap();
    }
    let key = writer.key_pair().public.to_bytes();
    let log: Log = Arc::default();
    let core = HypercoreBuilder::new(recorded_storage(&log).await)
        .key_pair(PartialKeypair {
            public: VerifyingKey::from_bytes(&key).unwrap(),
            secret: None,
        })
        .build()
        .await
        .unwrap();
    // (changes recorded when it returned, block index or upgrade)
    let mut acks: Vec<(usize, Option<u64>, u64)> = Vec::new();
    let mut ack = |i: Option<u64>, len: u64| acks.push((log.lock().unwrap().len(), i, len));
    fetch(&writer, &core, |i| ack(i, core.info().length)).await;
    for i in FIRST..TOTAL {
        writer.append(&block(i)).await.unwrap();
    }
    fetch(&writer, &core, |i| ack(i, core.info().length)).await;
    assert_eq!(core.info().contiguous_length, TOTAL);
    let log = log.lock().unwrap().clone();
    let entries_unflushed = |k: usize| {
        let mut f = Vec::new();
        for (file, op) in &log[..k] {
            if *file == 3 {
                apply(&mut f, op);
            }
        }
        f.len() > datdot_store::oplog::ENTRIES_AT
    };
    // Thousands of reopens: on tmpfs when there is one (fsync there is free; what is
    // tested is the order of the writes, not the disk).
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let (mut flush_points, mut with_entries) = (0, 0);
    let snapshot = |dir: &Path| FILES.map(|f| std::fs::read(dir.join(f)).unwrap_or_default());
    for k in 0..=log.len() {
        let what = format!("crash after change {k}/{}", log.len());
        let must: Vec<u64> = acks
            .iter()
            .filter(|a| a.0 <= k)
            .filter_map(|a| a.1)
            .collect();
        let min_length = acks
            .iter()
            .filter(|a| a.0 <= k)
            .map(|a| a.2)
            .max()
            .unwrap_or(0);
        with_entries += usize::from(entries_unflushed(k));
        let dir = tmp.path().join(k.to_string());
        materialize(&log, k, &dir);
        let writes = match flush::plan(&dir, &key) {
            Ok(Some(p)) => p.writes,
            // Killed before the first header: `open_core` starts afresh (checked below).
            Ok(None) | Err(flush::FlushError::Oplog(OplogError::NoHeader)) => Vec::new(),
            Err(e) => panic!("{what}: cannot plan the flush: {e}"),
        };
        // Reopen: every verified block is there and provable.
        let core = check(&dir, &key, &must, min_length, &what).await;
        let reopened = snapshot(&dir);
        // Our flush killed after each of its writes: the next open leaves the same files.
        for j in 1..writes.len() {
            if matches!(writes[j - 1], flush::Write::Sync { .. }) {
                continue; // same files as the cut before the sync
            }
            let cut = tmp.path().join(format!("{k}-{j}"));
            materialize(&log, k, &cut);
            flush::execute(&cut, &writes[..j]).unwrap();
            let c = store::open_core(&cut, &key).await;
            let c = c.unwrap_or_else(|e| panic!("{what}, flush cut at {j}: {e:#}"));
            drop(c);
            assert!(
                snapshot(&cut) == reopened,
                "{what}, flush cut at {j}/{}: other files than the uncut flush",
                writes.len()
            );
            std::fs::remove_dir_all(&cut).unwrap();
            flush_points += 1;
        }
        // Resume: the fetch completes and survives another reopen.
        fetch(&writer, &core, |_| {}).await;
        drop(core);
        let all: Vec<u64> = (0..TOTAL).collect();
        check(&dir, &key, &all, TOTAL, &format!("{what}, resumed")).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(
        with_entries > log.len() / 3,
        "few crash points had unflushed entries"
    );
    eprintln!(
        "{} crash points of the crate ({with_entries} with unflushed oplog entries), {flush_points} of our flush, all reopened and resumed, in {:.1} s",
        log.len() + 1,
        started.elapsed().as_secs_f64()
    );
}
