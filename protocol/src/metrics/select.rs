//! SLA-based hoster selection: which hosters' recent record meets a service level, best
//! first. The chain stores each hoster's last verdicts with their median metrics; a client
//! (the `datdot select` command, a publisher choosing hosters) reads them and ranks with
//! this function, so every client ranks the same way.

use alloc::vec::Vec;

use super::{MetricSummary, Sla, aggregate};

/// How many of a hoster's most recent judged challenges count.
pub const SELECTION_WINDOW: usize = 10;

/// A hoster that meets the SLA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected<K> {
    /// Who (an account id, a key…).
    pub hoster: K,
    /// Its reputation score (higher is better).
    pub score: u32,
    /// The per-metric lower median of its last [`SELECTION_WINDOW`] judged challenges.
    pub typical: MetricSummary,
    /// How many challenges `typical` is the median of.
    pub challenges: usize,
}

/// The hosters among `candidates` — `(hoster, score, median metrics of its judged
/// challenges, oldest first)` — whose typical performance over the last
/// [`SELECTION_WINDOW`] challenges meets `sla`, ranked by score, then throughput, then p99
/// latency (lower first). A hoster without a judged challenge is not selected: nothing is
/// known about it.
pub fn select<K>(
    candidates: impl IntoIterator<Item = (K, u32, Vec<MetricSummary>)>,
    sla: &Sla,
) -> Vec<Selected<K>> {
    let mut out: Vec<Selected<K>> = candidates
        .into_iter()
        .filter_map(|(hoster, score, history)| {
            let recent = &history[history.len().saturating_sub(SELECTION_WINDOW)..];
            let typical = aggregate(recent)?;
            sla.verdict(&typical).passed().then_some(Selected {
                hoster,
                score,
                typical,
                challenges: recent.len(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.typical.throughput_bps.cmp(&a.typical.throughput_bps))
            .then(a.typical.latency_p99_us.cmp(&b.typical.latency_p99_us))
    });
    out
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::metrics::Outcome;

    fn m(throughput_bps: u64, latency_p99_us: u64, ok_blocks: u32) -> MetricSummary {
        MetricSummary {
            requests: 100,
            ok_blocks,
            bytes_received: u64::from(ok_blocks) * 65_536,
            latency_p50_us: latency_p99_us / 2,
            latency_p90_us: latency_p99_us,
            latency_p99_us,
            latency_max_us: latency_p99_us,
            ttfb_p50_us: 1_000,
            ttfb_p99_us: 2_000,
            throughput_bps,
            throughput_p50_bps: throughput_bps,
            connect_time_us: 1_000,
            lacks_data: 0,
            misbehaved: 0,
            timeouts: 100 - ok_blocks,
            outcome: Outcome::Completed,
        }
    }

    const SLA: Sla = Sla {
        min_throughput_bps: 10_000_000,
        max_p99_latency_us: 50_000,
        min_availability_ppm: 990_000,
    };

    #[test]
    fn filters_by_every_clause_and_ranks() {
        let good = m(20_000_000, 10_000, 100);
        let faster = m(40_000_000, 10_000, 100);
        let selected = select(
            [
                ("slow", 900, vec![m(1_000_000, 10_000, 100)]),
                ("laggy", 900, vec![m(20_000_000, 90_000, 100)]),
                ("lossy", 900, vec![m(20_000_000, 10_000, 90)]),
                ("unknown", 1000, vec![]),
                ("good", 500, vec![good]),
                ("faster", 500, vec![faster]),
                ("trusted", 600, vec![good]),
            ],
            &SLA,
        );
        let names: Vec<_> = selected.iter().map(|s| s.hoster).collect();
        assert_eq!(names, ["trusted", "faster", "good"]);
        assert_eq!(selected[1].typical, faster);
    }

    #[test]
    fn only_the_recent_window_counts() {
        // Ten bad challenges long ago, then ten good ones: selected.
        let mut history = vec![m(1, 1_000_000, 0); 10];
        history.extend(vec![m(20_000_000, 10_000, 100); SELECTION_WINDOW]);
        let s = select([("recovered", 500, history.clone())], &SLA);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].challenges, SELECTION_WINDOW);
        // A majority of recent failures: not selected (the median is a failure).
        history.extend(vec![m(1, 1_000_000, 0); SELECTION_WINDOW / 2 + 1]);
        assert!(select([("relapsed", 500, history)], &SLA).is_empty());
    }
}
