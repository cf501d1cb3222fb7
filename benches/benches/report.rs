//! Signing and verifying a typical attestor report (32 samples, one 32-entry receipt):
//! verification checks the attestor's and the receipt's signatures.
//!
//! Run: `cargo bench -p datdot-benches --bench report`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use datdot_protocol::codec::{from_bytes, to_bytes};
use datdot_protocol::identity::{Ed25519Verifier, Keypair, Signature};
use datdot_protocol::metrics::{MetricSummary, Outcome};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::report::{CoinFlipRecord, Report};

fn report(kp: &Keypair, hoster: &Keypair) -> Report {
    let entries = (0..32)
        .map(|i| ReceiptEntry {
            index: i,
            hash: [3; 32],
        })
        .collect();
    let mut metrics = MetricSummary::empty(Outcome::Completed);
    metrics.requests = 32;
    metrics.ok_blocks = 32;
    Report {
        chain: [6; 32],
        challenge: 1,
        attestor: kp.public(),
        hoster: hoster.public(),
        feed: [4; 32],
        sampled: (0..32).collect(),
        received_root: [0; 32],
        receipts: vec![SignedReceipt::sign(
            hoster, [6; 32], [4; 32], [5; 32], 0, entries,
        )],
        metrics,
        failures: vec![],
        coinflip: CoinFlipRecord {
            round: 0,
            transcript: None,
            own_secret: [0; 32],
            accused: vec![],
        },
        sig: Signature([0; 64]),
    }
}

fn bench(c: &mut Criterion) {
    let kp = Keypair::from_seed(&[1; 32]);
    let hoster = Keypair::from_seed(&[2; 32]);
    let unsigned = report(&kp, &hoster);
    let signed = unsigned.clone().sign(&kp);
    let bytes = to_bytes(&signed);
    eprintln!("typical report: {} bytes encoded", bytes.len());
    let mut g = c.benchmark_group("report");
    g.bench_function("sign", |b| b.iter(|| black_box(unsigned.clone()).sign(&kp)));
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&signed).verify(&Ed25519Verifier))
    });
    g.bench_function("decode+verify", |b| {
        b.iter(|| {
            from_bytes::<Report>(black_box(&bytes)).map(|r| r.verify(&Ed25519Verifier).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
