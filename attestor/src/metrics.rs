//! The attestor's Prometheus metrics (served by `datdot_node::prometheus`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use datdot_node::prometheus::Exposition;

use datdot_net::swarm::SwarmCounters;

/// What the attestor counts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Challenges that named us.
    pub challenges: AtomicU64,
    /// Challenges running now.
    pub challenges_running: AtomicU64,
    /// Coin flips by final outcome: success, offline, malicious.
    pub flips_success: AtomicU64,
    /// Coin flips that ended offline.
    pub flips_offline: AtomicU64,
    /// Coin flips that ended malicious.
    pub flips_malicious: AtomicU64,
    /// Audits by outcome: completed, connect failed, progress timeout, hard maximum.
    pub audits: [AtomicU64; 5],
    /// Sampled blocks verified.
    pub blocks_ok: AtomicU64,
    /// Sampled blocks the hoster lacked.
    pub blocks_lacking: AtomicU64,
    /// Sampled blocks the hoster served wrong.
    pub blocks_misbehaved: AtomicU64,
    /// Sampled blocks timed out.
    pub blocks_timeout: AtomicU64,
    /// Reports the chain accepted.
    pub reports: AtomicU64,
    /// Reports that could not be submitted (refused or past the deadline).
    pub report_failures: AtomicU64,
    /// Fraud proofs the chain accepted.
    pub fraud_accepted: AtomicU64,
    /// Fraud proofs refused (e.g. someone was faster: AlreadyPunished).
    pub fraud_refused: AtomicU64,
    /// Reveals published on chain to answer a withholding accusation.
    pub reveals_published: AtomicU64,
    /// Other members' reports found inconsistent with what we know.
    pub disputed_reports: AtomicU64,
    /// Chain calls and reads that failed.
    pub chain_errors: AtomicU64,
    /// Whether the chain answers (set once connected).
    pub chain: std::sync::OnceLock<std::sync::Arc<datdot_chain_client::ChainHealth>>,
    /// Last coin flip's time to `R` and last audit's p50 latency, µs.
    pub last: Mutex<(u64, u64)>,
}

/// Render all metrics.
pub fn render(c: &Counters, s: &SwarmCounters) -> String {
    let mut e = Exposition::new();
    let v = |a: &AtomicU64| a.load(Relaxed) as f64;
    e.counter(
        "datdot_attestor_challenges_total",
        "Challenges that named this attestor.",
        c.challenges.load(Relaxed),
    )
    .gauge(
        "datdot_attestor_challenges_running",
        "Challenges being handled now.",
        v(&c.challenges_running),
    )
    .metric(
        "datdot_attestor_coinflips_total",
        "counter",
        "Coin flips by final outcome.",
        &[
            ("outcome=\"success\"", v(&c.flips_success)),
            ("outcome=\"offline\"", v(&c.flips_offline)),
            ("outcome=\"malicious\"", v(&c.flips_malicious)),
        ],
    )
    .metric(
        "datdot_attestor_audits_total",
        "counter",
        "Audits by outcome.",
        &[
            ("outcome=\"completed\"", v(&c.audits[0])),
            ("outcome=\"connect_failed\"", v(&c.audits[1])),
            ("outcome=\"progress_timeout\"", v(&c.audits[2])),
            ("outcome=\"hard_max_duration\"", v(&c.audits[3])),
            ("outcome=\"not_audited\"", v(&c.audits[4])),
        ],
    )
    .metric(
        "datdot_attestor_blocks_total",
        "counter",
        "Sampled blocks by result.",
        &[
            ("result=\"verified\"", v(&c.blocks_ok)),
            ("result=\"lacks_data\"", v(&c.blocks_lacking)),
            ("result=\"misbehaved\"", v(&c.blocks_misbehaved)),
            ("result=\"timeout\"", v(&c.blocks_timeout)),
        ],
    )
    .counter(
        "datdot_attestor_reports_total",
        "Reports the chain accepted.",
        c.reports.load(Relaxed),
    )
    .counter(
        "datdot_attestor_report_failures_total",
        "Reports that could not be submitted.",
        c.report_failures.load(Relaxed),
    )
    .metric(
        "datdot_attestor_fraud_proofs_total",
        "counter",
        "Fraud proofs submitted, by the chain's answer.",
        &[
            ("result=\"accepted\"", v(&c.fraud_accepted)),
            ("result=\"refused\"", v(&c.fraud_refused)),
        ],
    )
    .counter(
        "datdot_attestor_reveals_published_total",
        "Own reveals published on chain against a withholding accusation.",
        c.reveals_published.load(Relaxed),
    )
    .counter(
        "datdot_attestor_disputed_reports_total",
        "Committee reports inconsistent with this attestor's view.",
        c.disputed_reports.load(Relaxed),
    )
    .counter(
        "datdot_attestor_chain_errors_total",
        "Chain calls and reads that failed.",
        c.chain_errors.load(Relaxed),
    )
    .counter(
        "datdot_attestor_chain_outages_total",
        "Times the chain did not answer for 10 s or more.",
        c.chain.get().map_or(0, |h| h.outages()),
    )
    .gauge(
        "datdot_attestor_chain_silent_seconds",
        "Seconds since the chain last answered (0 before connecting).",
        c.chain
            .get()
            .map_or(0.0, |h| h.silent_for().as_secs_f64().floor()),
    )
    .counter(
        "datdot_attestor_swarm_links_total",
        "Committee links established.",
        s.links.load(Relaxed),
    )
    .counter(
        "datdot_attestor_swarm_refused_total",
        "Committee connections refused (not a member, unknown session, bad handshake).",
        s.refused.load(Relaxed),
    )
    .counter(
        "datdot_attestor_swarm_link_errors_total",
        "Committee links that broke.",
        s.link_errors.load(Relaxed),
    )
    .counter(
        "datdot_attestor_swarm_dropped_total",
        "Committee messages dropped on a full outbound queue.",
        s.dropped.load(Relaxed),
    )
    .metric(
        "datdot_attestor_swarm_shed_total",
        "counter",
        "Committee connections and messages shed by a budget, by reason.",
        &[
            ("reason=\"pending_evicted\"", v(&s.pending_evicted)),
            ("reason=\"pending_refused\"", v(&s.pending_refused)),
            ("reason=\"early_dropped\"", v(&s.early_dropped)),
            ("reason=\"inbox_dropped\"", v(&s.inbox_dropped)),
            ("reason=\"fraud_dropped\"", v(&s.fraud_dropped)),
        ],
    )
    .metric(
        "datdot_attestor_swarm_messages_total",
        "counter",
        "Committee messages by direction.",
        &[
            ("dir=\"sent\"", v(&s.sent)),
            ("dir=\"received\"", v(&s.received)),
        ],
    );
    let (flip_us, p50_us) = *c.last.lock().expect("metrics lock");
    e.gauge(
        "datdot_attestor_last_coinflip_seconds",
        "Time to R of the last coin flip.",
        flip_us as f64 / 1e6,
    )
    .gauge(
        "datdot_attestor_last_audit_latency_p50_seconds",
        "Median block latency of the last audit.",
        p50_us as f64 / 1e6,
    );
    e.finish()
}
