//! Verifying a 64 KiB Hypercore block against its signed root, vs. raw BLAKE2b-256.
//!
//! Run: `cargo bench -p datdot-benches --bench block_proof`. After criterion's figures
//! it prints a same-run baseline: how many raw BLAKE2b-256 passes over the block one
//! `verify_block` costs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use datdot_benches::feed_proof;
use datdot_protocol::hash::blake2b256;
use datdot_protocol::identity::PublicKey;
use datdot_protocol::tree::BlockProof;

const BLOCK: usize = 64 * 1024;
/// Feed length: not a power of two, so the tree has several roots (1000 = 512+256+128+64+32+8).
const LENGTH: usize = 1000;
/// The proven block: under the 512-block root, so the path has 9 siblings.
const INDEX: usize = 300;

struct Fixture {
    feed: PublicKey,
    proof: BlockProof,
    data: Vec<u8>,
}

fn fixture() -> Fixture {
    let (feed, proof, data) = feed_proof(LENGTH, BLOCK, INDEX);
    proof
        .verify_block(&feed, &data)
        .expect("fixture proof verifies");
    Fixture { feed, proof, data }
}

fn bench(c: &mut Criterion) {
    let fx = fixture();
    let mut g = c.benchmark_group("block_64KiB");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    g.bench_function("verify_block", |b| {
        b.iter(|| fx.proof.verify_block(&fx.feed, black_box(&fx.data)))
    });
    g.bench_function("verify_without_data", |b| {
        b.iter(|| black_box(&fx.proof).verify(&fx.feed))
    });
    g.bench_function("blake2b256", |b| {
        b.iter(|| blake2b256(&[black_box(&fx.data)]))
    });
    g.finish();
}

/// Best-of-rounds time per call of `f`.
fn per_call(rounds: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .min()
        .unwrap_or_default()
}

/// Same-run baseline, measured interleaved so both see the same machine state.
fn ratio() {
    let fx = fixture();
    let (mut verify, mut hash) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        verify = verify.min(per_call(3, 300, || {
            let _ = black_box(fx.proof.verify_block(&fx.feed, black_box(&fx.data)));
        }));
        hash = hash.min(per_call(3, 300, || {
            black_box(blake2b256(&[black_box(&fx.data)]));
        }));
    }
    let mib_s = |d: Duration| BLOCK as f64 / d.as_secs_f64() / (1024.0 * 1024.0);
    eprintln!(
        "\nbaseline (64 KiB block, {LENGTH}-block feed, {} siblings, {} roots):",
        fx.proof.siblings.len(),
        fx.proof.root.roots.len()
    );
    eprintln!(
        "  verify_block  {verify:>10.2?}  ({:.0} MiB/s)",
        mib_s(verify)
    );
    eprintln!("  blake2b256    {hash:>10.2?}  ({:.0} MiB/s)", mib_s(hash));
    eprintln!(
        "  ratio verify_block / blake2b256 = {:.3}",
        verify.as_secs_f64() / hash.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
