//! Settlement across a committee: the per-metric lower median of the attestors'
//! summaries and the rule that flags outlier reports.

use alloc::vec::Vec;

use super::{MetricSummary, Outcome};

/// The lower median of `f` over non-empty `reports`: the element at index `(n - 1) / 2`
/// of the sorted values, so for an even count the smaller of the two middle values.
///
/// It is always one of the reported values (no averaging, no rounding) and, while fewer
/// than half of the reports lie (`2·liars < n`), it lies between the smallest and the
/// largest honest value, whatever the liars report.
fn lower_median<T: Ord + Copy>(reports: &[MetricSummary], f: impl Fn(&MetricSummary) -> T) -> T {
    let mut values: Vec<T> = reports.iter().map(f).collect();
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// The committee's view of a hoster: for each metric, the *lower median* of `reports`
/// (the value at index `(n - 1) / 2` once sorted, so for an even count the smaller of
/// the two middle values); as outcome the most common one, ties going to the worst by
/// [`Outcome::severity`]. Only [conclusive](MetricSummary::conclusive) reports count;
/// `None` if there are none.
///
/// Robustness: while fewer than half of the reports lie (`2·liars < n`), every metric of
/// the result lies between the smallest and the largest honest value for it, whatever
/// the liars claim; and it is always a value some attestor reported (no averaging).
///
/// Each metric is taken independently, so the result need not equal any one report; it
/// is well-formed whenever every report is.
pub fn aggregate(reports: &[MetricSummary]) -> Option<MetricSummary> {
    let reports: Vec<MetricSummary> = reports.iter().filter(|r| r.conclusive()).copied().collect();
    let reports = reports.as_slice();
    if reports.is_empty() {
        return None;
    }
    let mut counts = [0usize; Outcome::ALL.len()];
    for r in reports {
        counts[usize::from(r.outcome.to_u8())] += 1;
    }
    let outcome = Outcome::ALL
        .into_iter()
        .max_by_key(|o| (counts[usize::from(o.to_u8())], o.severity()))
        .unwrap_or(Outcome::Completed);
    let m = |f: fn(&MetricSummary) -> u64| lower_median(reports, f);
    let m32 = |f: fn(&MetricSummary) -> u32| lower_median(reports, f);
    Some(MetricSummary {
        requests: m32(|s| s.requests),
        ok_blocks: m32(|s| s.ok_blocks),
        bytes_received: m(|s| s.bytes_received),
        latency_p50_us: m(|s| s.latency_p50_us),
        latency_p90_us: m(|s| s.latency_p90_us),
        latency_p99_us: m(|s| s.latency_p99_us),
        latency_max_us: m(|s| s.latency_max_us),
        ttfb_p50_us: m(|s| s.ttfb_p50_us),
        ttfb_p99_us: m(|s| s.ttfb_p99_us),
        throughput_bps: m(|s| s.throughput_bps),
        throughput_p50_bps: m(|s| s.throughput_p50_bps),
        connect_time_us: m(|s| s.connect_time_us),
        lacks_data: m32(|s| s.lacks_data),
        misbehaved: m32(|s| s.misbehaved),
        timeouts: m32(|s| s.timeouts),
        outcome,
    })
}

/// Factor by which a report's latency or throughput may differ from the median's before
/// it is flagged ([`outliers`]): honest attestors measure from different vantage points,
/// so these spread far more than availability does.
pub const SPREAD_FACTOR: u64 = 4;
/// Latency differences smaller than this (µs) never flag a report ([`outliers`]): on
/// a fast path, honest measurements differ by large factors of a small number.
pub const LATENCY_FLOOR_US: u64 = 10_000;

/// Standard deviations of sampling error an availability may stray from the median's
/// before it is flagged ([`outliers`]). Each member samples its own `k` blocks, so honest
/// availabilities of a hoster that lost a fraction `f` spread binomially
/// (`σ = √(f(1 − f)/k)`: 8.8 percentage points for `f` = ½ and `k` = 32); `datdot-sim
/// network` measured a sixth of the honest reports on such hosters flagged by the
/// percentage rule alone. At 5σ an honest report is flagged about once in two million;
/// a report of a perfect hoster where the median saw half the sample lost (32 samples)
/// is 5.7σ away.
pub const SAMPLING_SIGMAS: u64 = 5;

/// Flags reports that stray from the committee's `median` (normally [`aggregate`]'s
/// result): `out[i]` is true when any *key metric* of `reports[i]` strays, in exact
/// integer arithmetic:
/// - [`availability_ppm`](MetricSummary::availability_ppm) — what fraction of its own
///   sample the hoster served — deviates from the median's by more than
///   `tolerance_percent` percent of it (`|x − m| · 100 > m · tolerance_percent`; a
///   median of 0 tolerates only 0) *and* by more than [`SAMPLING_SIGMAS`] standard
///   deviations of sampling `k = requests` blocks from a hoster serving `m`
///   (`(x − m)² · k > S² · m · (10⁶ − m)`, in ppm; a report of no requests has no
///   sampling error to claim);
/// - `latency_p50_us` or `latency_p99_us` is more than [`SPREAD_FACTOR`] times larger or
///   smaller than the median's and differs from it by more than [`LATENCY_FLOOR_US`];
/// - `throughput_bps` is more than [`SPREAD_FACTOR`] times larger or smaller than the
///   median's (a median of 0 tolerates only 0).
///
/// Latency and throughput depend on the attestor's own path to the hoster, so they get a
/// spread instead of a percentage: the end-to-end devnet test showed honest loopback
/// attestors 2–3× apart in p50 latency, which a percentage rule flagged. Extreme liars
/// (a perfect or a dead hoster) still stray by orders of magnitude. The outcome is not
/// compared: an honest attestor may fail to connect for reasons of its own. A report
/// that is not [conclusive](MetricSummary::conclusive) is never an outlier.
pub fn outliers(
    reports: &[MetricSummary],
    median: &MetricSummary,
    tolerance_percent: u32,
) -> Vec<bool> {
    let deviates = |x: u64, m: u64| {
        u128::from(x.abs_diff(m)) * 100 > u128::from(m) * u128::from(tolerance_percent)
    };
    let spread = |x: u64, m: u64| {
        let (x, m) = (u128::from(x), u128::from(m));
        x > m * u128::from(SPREAD_FACTOR) || x * u128::from(SPREAD_FACTOR) < m
    };
    let latency = |x: u64, m: u64| spread(x, m) && x.abs_diff(m) > LATENCY_FLOOR_US;
    let sampled = |x: u64, m: u64, k: u32| {
        let d = u128::from(x.abs_diff(m));
        let var = u128::from(m) * u128::from(u64::from(super::PPM).saturating_sub(m));
        k == 0 || d * d * u128::from(k) > u128::from(SAMPLING_SIGMAS * SAMPLING_SIGMAS) * var
    };
    reports
        .iter()
        .map(|r| {
            let (x, m) = (
                u64::from(r.availability_ppm()),
                u64::from(median.availability_ppm()),
            );
            r.conclusive()
                && ((deviates(x, m) && sampled(x, m, r.requests))
                    || latency(r.latency_p50_us, median.latency_p50_us)
                    || latency(r.latency_p99_us, median.latency_p99_us)
                    || spread(r.throughput_bps, median.throughput_bps))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    #[test]
    fn lower_median_and_outcome_ties() {
        assert_eq!(aggregate(&[]), None);
        let with = |latency: u64, outcome| MetricSummary {
            latency_p50_us: latency,
            latency_p90_us: latency,
            latency_p99_us: latency,
            latency_max_us: latency,
            outcome,
            ..sample()
        };
        let reports = [
            with(4, Outcome::Completed),
            with(1, Outcome::ProgressTimeout),
            with(3, Outcome::Completed),
            with(2, Outcome::ProgressTimeout),
        ];
        let m = aggregate(&reports).expect("non-empty");
        assert_eq!(m.latency_p50_us, 2, "lower of the two middle values");
        assert_eq!(m.outcome, Outcome::ProgressTimeout, "tie goes to the worst");
        let m = aggregate(&reports[..3]).expect("non-empty");
        assert_eq!(m.latency_p50_us, 3);
        assert_eq!(m.outcome, Outcome::Completed);
        assert_eq!(aggregate(&[sample()]), Some(sample()));
    }

    #[test]
    fn outliers_rule() {
        let median = sample();
        let with = |p99: u64, bps: u64, ok: u32| MetricSummary {
            latency_p99_us: p99,
            latency_max_us: p99.max(median.latency_max_us),
            throughput_bps: bps,
            throughput_p50_bps: bps,
            ok_blocks: ok,
            ..sample()
        };
        let (p99, bps, ok) = (
            median.latency_p99_us,
            median.throughput_bps,
            median.ok_blocks,
        );
        let reports = [
            sample(),
            with(p99 * 4, bps, ok),     // exactly the spread factor: in
            with(p99 * 4 + 1, bps, ok), // beyond it (and > 10 ms apart): out
            with(p99, bps * 4, ok),     // in
            with(p99, bps / 4 - 1, ok), // out
            with(p99, bps, ok - 1),     // availability 11 % off, within 25 %: in
            with(p99, bps, 0),          // a dead hoster painted: out
        ];
        assert_eq!(
            outliers(&reports, &median, 25),
            vec![false, false, true, false, true, false, true]
        );
        // Sub-floor latency differences never flag, however large the factor.
        let fast = MetricSummary {
            latency_p50_us: 300,
            latency_p90_us: 300,
            latency_p99_us: 400,
            latency_max_us: 400,
            ..sample()
        };
        let slower = MetricSummary {
            latency_p50_us: 3_000,
            latency_p90_us: 3_000,
            latency_p99_us: 9_000,
            latency_max_us: 9_000,
            ..sample()
        };
        assert_eq!(outliers(&[fast, slower], &fast, 25), vec![false, false]);
        let zero = MetricSummary::empty(Outcome::Completed);
        assert_eq!(outliers(&[zero, sample()], &zero, 1000), vec![false, true]);
    }

    /// Found by `datdot-sim network`: honest members of a committee auditing a hoster
    /// that lost half its feed see 11 to 21 of their 32 sampled blocks served (1.8σ
    /// around 16), and the percentage rule alone made them outliers (unpaid, score
    /// lowered) for their sampling luck.
    #[test]
    fn sampling_error_in_availability_is_not_an_outlier() {
        let with = |ok: u32| MetricSummary {
            requests: 32,
            ok_blocks: ok,
            lacks_data: 32 - ok,
            ..sample()
        };
        let median = with(16);
        let reports = [with(16), with(11), with(21), with(32), with(0)];
        assert_eq!(
            outliers(&reports, &median, 25),
            vec![false, false, false, true, true],
            "honest spread in, a painted perfect hoster and a painted dead one out"
        );
    }

    proptest! {
        #[test]
        fn median_resists_a_minority_of_liars(
            honest in prop::collection::vec(audit_summary(), 1..12),
            liars in prop::collection::vec(any_summary(), 0..11),
            seed in any::<u64>(),
        ) {
            let keep = liars.len().min(honest.len() - 1);
            let mut all: Vec<MetricSummary> = honest.iter().chain(&liars[..keep]).copied().collect();
            // The order of reports must not matter.
            let n = all.len();
            all.rotate_left(usize::try_from(seed % n as u64).expect("small"));
            let m = fields(&aggregate(&all).expect("non-empty"));
            for (i, got) in m.iter().enumerate() {
                let lo = honest.iter().map(|s| fields(s)[i]).min().expect("non-empty");
                let hi = honest.iter().map(|s| fields(s)[i]).max().expect("non-empty");
                prop_assert!(lo <= *got && *got <= hi, "metric {} = {} outside [{}, {}]", i, got, lo, hi);
            }
        }


        #[test]
        fn aggregate_of_well_formed_is_well_formed(
            reports in prop::collection::vec(well_formed_summary(), 1..12),
        ) {
            let Some(m) = aggregate(&reports) else {
                prop_assert!(reports.iter().all(|r| !r.conclusive()));
                return Ok(());
            };
            prop_assert!(m.well_formed() && m.conclusive());
            let out = outliers(&reports, &m, 0);
            prop_assert_eq!(out.len(), reports.len());
            for (r, o) in reports.iter().zip(&out) {
                prop_assert!(r.conclusive() || !*o, "a report that is not an audit is no outlier");
            }
        }

        /// "Not audited" reports change nothing: the median of the audits alone.
        #[test]
        fn not_audited_reports_are_left_out(
            audits in prop::collection::vec(audit_summary(), 0..8),
            absent in 0usize..8,
        ) {
            let mut all = audits.clone();
            all.extend(core::iter::repeat_n(MetricSummary::empty(Outcome::NotAudited), absent));
            prop_assert_eq!(aggregate(&all), aggregate(&audits));
        }
    }
}
