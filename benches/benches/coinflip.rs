//! One complete coin-flip round (commit, echo, reveal, confirm) of an all-honest
//! committee of N = 10 and N = 100, simulated in one process: the CPU cost of the whole
//! committee's protocol work (real ed25519 signing; verification memoised across the
//! simulated members, see `datdot_sim::verifier`). Also prints the simulated time to `R`
//! with 1–40 ms network delays.
//!
//! Run: `cargo bench -p datdot-benches --bench coinflip`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use datdot_protocol::coinflip::Outcome;
use datdot_sim::coinflip::{Scenario, run};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("coinflip_round");
    g.sample_size(20);
    for n in [10usize, 100] {
        let sc = Scenario::honest(n);
        g.bench_function(format!("N={n}"), |b| {
            b.iter(|| run(black_box(&sc), 7));
        });
        let r = run(&sc, 7);
        let t = r
            .members
            .iter()
            .filter_map(|m| match m.outcome {
                Some(Outcome::Success { .. }) => m.finished_at,
                _ => None,
            })
            .max()
            .map(|t| Duration::from_micros(t.0));
        eprintln!(
            "N={n}: {} messages, {} distinct signatures verified, simulated time to R at the last member: {t:?}",
            r.net.sent, r.signatures
        );
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
