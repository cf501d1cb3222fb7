//! Metric-lying scenario: attestors report a hoster's performance, a minority lies, and
//! the chain's settlement rule (per-metric median, `datdot_protocol::metrics`) must
//! stay inside the honest range and flag the extreme liars.

use datdot_protocol::metrics::{MetricSummary, Outcome, Sla, aggregate, outliers};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Tolerance used to flag outliers (percent), as the chain uses it.
pub const TOLERANCE_PERCENT: u32 = 50;

/// One attestor's honest measurement of a hoster with true latency `lat_us` and
/// throughput `bps`, with ±10 % measurement noise.
fn honest(rng: &mut ChaCha20Rng, lat_us: u64, bps: u64) -> MetricSummary {
    let jitter = |rng: &mut ChaCha20Rng, v: u64| v * rng.gen_range(90..=110) / 100;
    let p50 = jitter(rng, lat_us);
    let p90 = p50 + jitter(rng, lat_us / 4);
    let p99 = p90 + jitter(rng, lat_us / 2);
    let requests = 32;
    let mut m = MetricSummary::empty(Outcome::Completed);
    m.requests = requests;
    m.ok_blocks = requests;
    m.bytes_received = u64::from(requests) * 65536;
    m.latency_p50_us = p50;
    m.latency_p90_us = p90;
    m.latency_p99_us = p99;
    m.latency_max_us = p99 + 1;
    m.ttfb_p50_us = p50 / 2;
    m.ttfb_p99_us = p99 / 2;
    m.throughput_bps = jitter(rng, bps);
    m.throughput_p50_bps = m.throughput_bps;
    m.connect_time_us = jitter(rng, lat_us);
    m
}

/// A liar: either paints the hoster as perfect (colluding) or as dead (framing).
fn liar(rng: &mut ChaCha20Rng, lat_us: u64, bps: u64) -> MetricSummary {
    let mut m = honest(rng, lat_us, bps);
    if rng.gen_bool(0.5) {
        m.latency_p50_us = 1;
        m.latency_p90_us = 1;
        m.latency_p99_us = 1;
        m.latency_max_us = 1;
        m.ttfb_p50_us = 1;
        m.ttfb_p99_us = 1;
        m.throughput_bps = bps * 100;
        m.throughput_p50_bps = bps * 100;
    } else {
        m.ok_blocks = 0;
        m.bytes_received = 0;
        m.lacks_data = m.requests;
        m.throughput_bps = 0;
        m.throughput_p50_bps = 0;
        m.latency_p50_us = lat_us * 1000;
        m.latency_p90_us = lat_us * 1000;
        m.latency_p99_us = lat_us * 1000;
        m.latency_max_us = lat_us * 1000;
        m.outcome = Outcome::ProgressTimeout;
    }
    m
}

/// Result of one settlement run.
#[derive(Clone, Debug)]
pub struct SettleRun {
    /// Broken invariants.
    pub violations: Vec<String>,
    /// Liars flagged as outliers.
    pub liars_flagged: usize,
    /// Liars.
    pub liars: usize,
    /// Whether the SLA verdict on the median equals the verdict on honest truth.
    pub verdict_kept: bool,
}

/// One run: `n` attestors of which `liars` lie, seeded.
pub fn run(seed: u64, n: usize, liars: usize) -> SettleRun {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let lat = rng.gen_range(2_000..200_000u64);
    let bps = rng.gen_range(1_000_000..500_000_000u64);
    let mut reports = Vec::with_capacity(n);
    let mut is_liar = vec![false; n];
    for (i, l) in is_liar.iter_mut().enumerate() {
        *l = i < liars;
    }
    // Shuffle who lies.
    for i in (1..n).rev() {
        is_liar.swap(i, rng.gen_range(0..=i));
    }
    for &l in &is_liar {
        reports.push(if l {
            liar(&mut rng, lat, bps)
        } else {
            honest(&mut rng, lat, bps)
        });
    }
    let mut violations = Vec::new();
    let Some(med) = aggregate(&reports) else {
        violations.push("no aggregate".into());
        return SettleRun {
            violations,
            liars_flagged: 0,
            liars,
            verdict_kept: false,
        };
    };
    let honest: Vec<&MetricSummary> = reports
        .iter()
        .zip(&is_liar)
        .filter(|(_, l)| !**l)
        .map(|(m, _)| m)
        .collect();
    let within = |name: &str, f: &dyn Fn(&MetricSummary) -> u64, v: &mut Vec<String>| {
        let lo = honest.iter().map(|m| f(m)).min().unwrap_or(0);
        let hi = honest.iter().map(|m| f(m)).max().unwrap_or(0);
        let x = f(&med);
        if 2 * liars < n && !(lo..=hi).contains(&x) {
            v.push(format!("median {name} {x} outside honest [{lo}, {hi}]"));
        }
    };
    within("latency p50", &|m| m.latency_p50_us, &mut violations);
    within("latency p99", &|m| m.latency_p99_us, &mut violations);
    within("throughput", &|m| m.throughput_bps, &mut violations);
    within("ok blocks", &|m| u64::from(m.ok_blocks), &mut violations);
    let flags = outliers(&reports, &med, TOLERANCE_PERCENT);
    let mut liars_flagged = 0;
    for (i, (&f, &l)) in flags.iter().zip(&is_liar).enumerate() {
        if f && !l && 2 * liars < n {
            violations.push(format!("honest attestor {i} flagged as outlier"));
        }
        liars_flagged += usize::from(f && l);
    }
    // An SLA set at 80 % of the true throughput and 2× the true p99: the median must
    // pass it exactly when the honest truth does (it does).
    let sla = Sla {
        min_throughput_bps: bps * 8 / 10,
        max_p99_latency_us: lat * 4,
        min_availability_ppm: 990_000,
    };
    let verdict_kept = sla.verdict(&med).passed();
    if 2 * liars < n && !verdict_kept {
        violations.push(format!(
            "liars flipped the SLA verdict: {:?}",
            sla.verdict(&med)
        ));
    }
    SettleRun {
        violations,
        liars_flagged,
        liars,
        verdict_kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minority_of_liars_cannot_move_the_verdict() {
        for seed in 0..300 {
            for (n, l) in [(3, 1), (10, 4), (10, 2), (30, 14)] {
                let r = run(seed, n, l);
                assert!(
                    r.violations.is_empty(),
                    "seed {seed} n {n} liars {l}: {:?}",
                    r.violations
                );
                assert_eq!(r.liars_flagged, l, "every extreme liar is flagged");
            }
        }
    }

    #[test]
    fn majority_of_liars_can() {
        // The rule's limit, stated as a test: with a liar majority the median is theirs.
        let moved = (0..100).filter(|&s| !run(s, 10, 6).verdict_kept).count();
        assert!(moved > 0);
    }
}
