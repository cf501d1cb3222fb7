//! Pure settlement arithmetic: no storage, no balances, integer-only. The pallet feeds
//! these functions what it stored and applies what they return; the unit tests below pin
//! down every rule.
//!
//! Rules (see `docs/DESIGN.md` §Chain):
//! - **Judgement**: with at least `quorum` reports, the per-metric lower median
//!   (`datdot_protocol::metrics::aggregate`) is checked against the plan's SLA
//!   (`Sla::verdict`); with fewer, the challenge is `Inconclusive`.
//! - **Outliers**: `metrics::outliers` with the configured tolerance; an outlier report
//!   earns no reward and costs its attestor score.
//! - **Payouts** from the challenge budget (`price + X · reward`): the hoster gets `price`
//!   on `Pass`; each non-outlier reporter gets `reward` (also on `Fail` and
//!   `Inconclusive`: they did their job); nobody proven fraudulent in the challenge
//!   (before it settles) is paid; everything else returns to the feed's escrow.
//! - **Scores** move by `SCORE_STEP` up on a pass / good report, down on a failure /
//!   outlier / missed report, clamped to `0..=MAX_SCORE`.
//! - **Failures**: consecutive failed challenges suspend a hoster at `suspend_after`
//!   and slash it at `slash_after` (≥ `suspend_after`); a pass resets the count and lifts
//!   a suspension. An inconclusive challenge changes nothing.

use alloc::vec::Vec;

use datdot_protocol::metrics::{self, MetricSummary, Sla};

use crate::types::Verdict;
use frame::arithmetic::Perbill;

/// Highest score.
pub const MAX_SCORE: u32 = 1000;
/// Score of a new participant.
pub const INITIAL_SCORE: u32 = 500;
/// Score change per event.
pub const SCORE_STEP: u32 = 10;

/// The judgement of one challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Pass, fail or inconclusive.
    pub verdict: Verdict,
    /// Per-metric lower median (none without reports).
    pub median: Option<MetricSummary>,
    /// Per report (same order as the input): flagged as an outlier.
    pub outliers: Vec<bool>,
}

/// Judge a challenge from its reports' metric summaries. Only
/// [conclusive](MetricSummary::conclusive) reports (audits, not an attestor's "not
/// audited") count, for the median and for the quorum.
pub fn judge(
    reports: &[MetricSummary],
    sla: &Sla,
    quorum: usize,
    tolerance_percent: u32,
) -> Judgement {
    let median = metrics::aggregate(reports);
    let outliers = match &median {
        Some(m) => metrics::outliers(reports, m, tolerance_percent),
        None => Vec::new(),
    };
    let conclusive = reports.iter().filter(|r| r.conclusive()).count();
    let verdict = match &median {
        Some(m) if conclusive >= quorum.max(1) => Verdict::from_sla(sla.verdict(m)),
        _ => Verdict::Inconclusive,
    };
    Judgement {
        verdict,
        median,
        outliers,
    }
}

/// Who gets what out of a challenge budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payouts<Balance> {
    /// To the hoster.
    pub hoster: Balance,
    /// To each reporter that is not unpaid (same order as the `unpaid` input).
    pub attestors: Vec<Balance>,
    /// Back to the feed's escrow.
    pub refund: Balance,
}

/// Split `budget` (= `price + committee · reward`, or less if the escrow ran short).
/// The hoster is paid `price` if `pay_hoster` (it passed and was not proven fraudulent);
/// each reporter `reward` unless `unpaid` (an outlier, or proven fraudulent).
/// Never pays out more than `budget`: payments are made in order hoster, attestors, and
/// each is capped by what is left.
pub fn payouts<B>(budget: B, price: B, reward: B, pay_hoster: bool, unpaid: &[bool]) -> Payouts<B>
where
    B: Copy + Ord + core::ops::Sub<Output = B> + Default,
{
    let mut left = budget;
    let mut take = |want: B| {
        let got = want.min(left);
        left = left - got;
        got
    };
    let hoster = if pay_hoster {
        take(price)
    } else {
        B::default()
    };
    let attestors = unpaid
        .iter()
        .map(|no| if *no { B::default() } else { take(reward) })
        .collect();
    Payouts {
        hoster,
        attestors,
        refund: left,
    }
}

/// Score after a good (`true`) or bad event.
pub fn score_after(score: u32, good: bool) -> u32 {
    if good {
        score.saturating_add(SCORE_STEP).min(MAX_SCORE)
    } else {
        score.saturating_sub(SCORE_STEP)
    }
}

/// What happens to a hoster after a judged challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HosterAction {
    /// Nothing beyond the score change.
    None,
    /// Passed after failures: count reset, suspension lifted.
    Recover,
    /// Reached `suspend_after` consecutive failures.
    Suspend,
    /// Reached `slash_after` consecutive failures: slash and replace.
    Slash,
}

/// New consecutive-failure count and action for a verdict.
pub fn failure_step(
    failures: u32,
    verdict: Verdict,
    suspend_after: u32,
    slash_after: u32,
) -> (u32, HosterAction) {
    match verdict {
        Verdict::Inconclusive => (failures, HosterAction::None),
        Verdict::Pass if failures > 0 => (0, HosterAction::Recover),
        Verdict::Pass => (0, HosterAction::None),
        Verdict::Fail { .. } => {
            let n = failures.saturating_add(1);
            let action = if n >= slash_after.max(suspend_after) {
                HosterAction::Slash
            } else if n >= suspend_after {
                HosterAction::Suspend
            } else {
                HosterAction::None
            };
            (n, action)
        }
    }
}

/// Escrow a plan needs up front: every replica, every period, the hoster's price and one
/// reward per committee member. `None` on overflow.
pub fn plan_escrow(
    replicas: u32,
    periods: u32,
    price: u128,
    reward: u128,
    committee: u32,
) -> Option<u128> {
    let per_challenge = reward
        .checked_mul(u128::from(committee))?
        .checked_add(price)?;
    per_challenge
        .checked_mul(u128::from(replicas))?
        .checked_mul(u128::from(periods))
}

/// Whether a report is tied to the committee's schedule (a condition of its pay).
/// `untied` is its record: `None` tied (its transcript has every member), `Some(None)`
/// no transcript, `Some(Some(mask))` the members its transcript leaves out; `excused(m)`
/// holds for a member convicted by a fraud proof or accused by a strict majority of the
/// reports (excluded or benched by the others). The simulator judges with this too.
pub fn tied(untied: Option<Option<u32>>, members: usize, excused: impl Fn(usize) -> bool) -> bool {
    match untied {
        None => true,
        Some(None) => false,
        Some(Some(mask)) => (0..members.min(32))
            .filter(|m| mask & (1 << m) != 0)
            .all(excused),
    }
}

/// Whether a withholding accusation stands: a strict majority of the reports accuse the
/// member and it did not publish its reveal.
pub fn accusation_stands(count: u8, reports: usize, cleared: bool) -> bool {
    !cleared && usize::from(count) * 2 > reports
}

/// A job's payouts for `calls` of `total` calls logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobPayouts<B> {
    /// To the executor: `executor_share` of the work pay.
    pub executor: B,
    /// The monitors' share: the rest of the work pay (split among those that reported).
    pub monitors: B,
    /// Back to the sponsor: the payment less the work pay.
    pub refund: B,
}

/// The pay for the work done is `payment · calls / total` (a call that ran out of fuel
/// counts: its fuel was spent; rounded down to a billionth of the payment), of which
/// the executor gets `executor_share` (rounded down) and the monitors the rest. The
/// three parts add up to `payment`.
pub fn job_payouts<B: frame::arithmetic::AtLeast32BitUnsigned + Copy>(
    payment: B,
    calls: u64,
    total: u64,
    executor_share: Perbill,
) -> JobPayouts<B> {
    let work = Perbill::from_rational(calls.min(total), total.max(1)).mul_floor(payment);
    let executor = executor_share.mul_floor(work);
    JobPayouts {
        executor,
        monitors: work.saturating_sub(executor),
        refund: payment.saturating_sub(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use datdot_protocol::metrics::Outcome;

    fn summary(throughput: u64, p99: u64, ok: u32) -> MetricSummary {
        MetricSummary {
            requests: 100,
            ok_blocks: ok,
            bytes_received: u64::from(ok) * 1000,
            latency_p50_us: p99 / 2,
            latency_p90_us: p99,
            latency_p99_us: p99,
            latency_max_us: p99,
            ttfb_p50_us: 10,
            ttfb_p99_us: 20,
            throughput_bps: throughput,
            throughput_p50_bps: throughput,
            connect_time_us: 1000,
            lacks_data: 0,
            misbehaved: 0,
            timeouts: 100 - ok,
            outcome: Outcome::Completed,
        }
    }

    const SLA: Sla = Sla {
        min_throughput_bps: 1_000_000,
        max_p99_latency_us: 100_000,
        min_availability_ppm: 990_000,
    };

    #[test]
    fn judge_passes_on_honest_median_despite_a_liar() {
        let honest = summary(2_000_000, 50_000, 100);
        let liar = summary(0, 10_000_000, 0);
        let j = judge(&[honest, honest, liar], &SLA, 2, 25);
        assert_eq!(j.verdict, Verdict::Pass);
        assert_eq!(j.outliers, vec![false, false, true]);
        assert_eq!(j.median.map(|m| m.throughput_bps), Some(2_000_000));
    }

    #[test]
    fn judge_fails_each_clause() {
        let slow = summary(500_000, 200_000, 98);
        let j = judge(&[slow, slow, slow], &SLA, 2, 25);
        assert_eq!(j.verdict, Verdict::Fail { failed: 1 | 2 | 4 });
        let only_latency = summary(2_000_000, 200_000, 100);
        assert_eq!(
            judge(&[only_latency], &SLA, 1, 25).verdict,
            Verdict::Fail { failed: 2 }
        );
    }

    #[test]
    fn judge_without_quorum_is_inconclusive() {
        let good = summary(2_000_000, 50_000, 100);
        assert_eq!(judge(&[good], &SLA, 2, 25).verdict, Verdict::Inconclusive);
        let none = judge(&[], &SLA, 0, 25);
        assert_eq!(none.verdict, Verdict::Inconclusive);
        assert_eq!(none.median, None);
        assert!(none.outliers.is_empty());
    }

    #[test]
    fn payouts_add_up_to_the_budget() {
        // price 100, reward 10, committee of 3, one outlier.
        let p = payouts(130u64, 100, 10, true, &[false, true, false]);
        assert_eq!(
            p,
            Payouts {
                hoster: 100,
                attestors: vec![10, 0, 10],
                refund: 10
            }
        );
        let p = payouts(130u64, 100, 10, false, &[false, false]);
        assert_eq!(
            p,
            Payouts {
                hoster: 0,
                attestors: vec![10, 10],
                refund: 110
            }
        );
        let p = payouts(130u64, 100, 10, false, &[false]);
        assert_eq!(
            p,
            Payouts {
                hoster: 0,
                attestors: vec![10],
                refund: 120
            }
        );
        // A short budget is never overdrawn.
        let p = payouts(105u64, 100, 10, true, &[false, false]);
        assert_eq!(
            p,
            Payouts {
                hoster: 100,
                attestors: vec![5, 0],
                refund: 0
            }
        );
    }

    #[test]
    fn scores_are_clamped() {
        assert_eq!(score_after(INITIAL_SCORE, true), INITIAL_SCORE + SCORE_STEP);
        assert_eq!(score_after(MAX_SCORE, true), MAX_SCORE);
        assert_eq!(score_after(3, false), 0);
    }

    #[test]
    fn failures_suspend_then_slash_and_a_pass_recovers() {
        let fail = Verdict::Fail { failed: 1 };
        assert_eq!(failure_step(0, fail, 3, 6), (1, HosterAction::None));
        assert_eq!(failure_step(2, fail, 3, 6), (3, HosterAction::Suspend));
        assert_eq!(failure_step(4, fail, 3, 6), (5, HosterAction::Suspend));
        assert_eq!(failure_step(5, fail, 3, 6), (6, HosterAction::Slash));
        assert_eq!(
            failure_step(5, Verdict::Pass, 3, 6),
            (0, HosterAction::Recover)
        );
        assert_eq!(
            failure_step(0, Verdict::Pass, 3, 6),
            (0, HosterAction::None)
        );
        assert_eq!(
            failure_step(2, Verdict::Inconclusive, 3, 6),
            (2, HosterAction::None)
        );
        // slash_after below suspend_after is treated as equal.
        assert_eq!(failure_step(2, fail, 3, 1), (3, HosterAction::Slash));
    }

    #[test]
    fn escrow_and_overflow() {
        assert_eq!(plan_escrow(2, 3, 100, 10, 4), Some(2 * 3 * 140));
        assert_eq!(plan_escrow(2, 3, u128::MAX, 10, 4), None);
    }

    #[test]
    fn job_payouts_add_up_and_follow_the_calls_done() {
        let share = Perbill::from_percent(90);
        for (payment, calls, total) in [
            (6400u64, 64, 64),
            (6400, 1, 64),
            (6400, 0, 64),
            (7, 3, 10),
            (u64::MAX, 5, 9),
        ] {
            let p = job_payouts(payment, calls, total, share);
            assert_eq!(p.executor + p.monitors + p.refund, payment);
        }
        let p = job_payouts(6400u64, 64, 64, share);
        assert_eq!((p.executor, p.monitors, p.refund), (5760, 640, 0));
        let p = job_payouts(6400u64, 1, 64, share);
        assert_eq!((p.executor, p.monitors, p.refund), (90, 10, 6300));
        // More calls than the job has are capped.
        assert_eq!(
            job_payouts(6400u64, 100, 64, share),
            job_payouts(6400u64, 64, 64, share)
        );
    }

    #[test]
    fn accusations_need_a_strict_majority() {
        assert!(accusation_stands(2, 3, false));
        assert!(!accusation_stands(2, 4, false));
        assert!(!accusation_stands(3, 3, true));
    }
}
