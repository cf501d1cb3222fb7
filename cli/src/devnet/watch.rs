//! Live progress from the chain's events, process CPU/RSS sampling, and the summary:
//! one row per hoster (verdicts, medians, rewards, slashes), one per attestor, the
//! figures (challenge event → settled verdict; CPU and RSS per process during
//! challenges), and whether the scenario's outcome was reached.

use std::collections::HashMap;
use std::time::Duration;

use datdot_chain_client::{AccountId32, Balance, BlockEvent, ChainClient, Event, Verdict};
use datdot_protocol::metrics::MetricSummary;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Scenario;
use super::procs;
use crate::query::name;
use crate::table::Table;
use crate::units;

/// Who takes part.
#[derive(Debug)]
pub struct Ctx {
    /// The scenario.
    pub scenario: Scenario,
    /// Hoster accounts (hoster-1 first).
    pub hosters: Vec<AccountId32>,
    /// Attestor accounts (attestor-1 first).
    pub attestors: Vec<AccountId32>,
    /// Process names and pids.
    pub procs: Vec<(String, u32)>,
    /// No live lines.
    pub quiet: bool,
}

/// Balances and stakes at the start.
#[derive(Debug, Default)]
pub struct Snapshot {
    free: HashMap<[u8; 32], Balance>,
    stake: HashMap<[u8; 32], Balance>,
}

impl Snapshot {
    /// Read them.
    pub async fn take(
        chain: &ChainClient,
        hosters: &[AccountId32],
        attestors: &[AccountId32],
    ) -> anyhow::Result<Self> {
        let mut s = Snapshot::default();
        for a in hosters.iter().chain(attestors) {
            s.free.insert(a.0, chain.free_balance(a).await?);
            if let Some(p) = chain.participant(a).await? {
                s.stake.insert(a.0, p.stake);
            }
        }
        Ok(s)
    }
}

/// A settled challenge.
#[derive(Clone, Debug)]
pub struct Settled {
    /// Challenge id.
    pub challenge: u64,
    /// Its hoster.
    pub hoster: AccountId32,
    /// Passed the SLA.
    pub pass: bool,
    /// Judged neither way (too few reports; the hoster is not penalised).
    pub inconclusive: bool,
    /// The verdict as text.
    pub verdict: String,
    /// The committee's median metrics.
    pub median: Option<MetricSummary>,
    /// Reports counted.
    pub reports: u8,
    /// From the `ChallengeScheduled` event to the `ChallengeSettled` event, as seen here.
    pub secs: Option<f64>,
}

impl Settled {
    /// Failed the SLA (neither passed nor inconclusive).
    pub fn failed(&self) -> bool {
        !self.pass && !self.inconclusive
    }
}

/// Whether the scenario's outcome was reached.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// Reached.
    pub reached: bool,
    /// What was expected and what happened.
    pub text: String,
}

/// Everything the devnet observed.
#[derive(Debug)]
pub struct Summary {
    /// The scenario.
    pub scenario: Scenario,
    /// Settled challenges in order.
    pub settled: Vec<Settled>,
    /// Fraud proofs the chain accepted: (challenge, offender, submitter, slashed).
    pub fraud: Vec<(u64, AccountId32, AccountId32, Balance)>,
    /// Penalties: (who, amount, reason).
    pub penalised: Vec<(AccountId32, Balance, String)>,
    /// Rewards paid: (who, amount).
    pub rewarded: Vec<(AccountId32, Balance)>,
    /// Per process: (name, CPU seconds while a challenge was open, peak RSS bytes).
    pub usage: Vec<(String, f64, u64)>,
    /// Challenges scheduled.
    pub scheduled: usize,
    /// Seconds watched.
    pub watched: f64,
    /// The tables, rendered by [`Summary::finish`].
    pub text: String,
    /// The outcome.
    pub outcome: Outcome,
    /// The summary as JSON.
    pub json: serde_json::Value,
}

fn verdict_text(v: &Verdict) -> (bool, String) {
    match v {
        Verdict::Pass => (true, "PASS".into()),
        Verdict::Fail { failed } => {
            let mut why = Vec::new();
            for (bit, w) in [(1, "throughput"), (2, "latency"), (4, "availability")] {
                if failed & bit != 0 {
                    why.push(w);
                }
            }
            (false, format!("FAIL ({})", why.join(", ")))
        }
        Verdict::Inconclusive => (false, "inconclusive".into()),
    }
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

impl Summary {
    fn new(scenario: Scenario) -> Self {
        Summary {
            scenario,
            settled: Vec::new(),
            fraud: Vec::new(),
            penalised: Vec::new(),
            rewarded: Vec::new(),
            usage: Vec::new(),
            scheduled: 0,
            watched: 0.0,
            text: String::new(),
            outcome: Outcome {
                reached: false,
                text: String::new(),
            },
            json: json!({}),
        }
    }

    /// The scenario's outcome on what was seen so far.
    pub fn evaluate(&self, ctx: &Ctx) -> Outcome {
        let h1 = &ctx.hosters[0];
        let of = |h: AccountId32| self.settled.iter().filter(move |s| s.hoster == h);
        let fraud_against = |a: &AccountId32| self.fraud.iter().find(|f| &f.1 == a);
        let expect = ctx.scenario.expectation();
        let (reached, what) = match ctx.scenario {
            Scenario::Honest => {
                let all = ctx.hosters.iter().all(|h| of(*h).any(|s| s.pass));
                let bad = self.settled.iter().any(|s| !s.pass) || !self.fraud.is_empty();
                (
                    all && !bad,
                    format!(
                        "{} of {} challenges passed, {} fraud proofs",
                        self.settled.iter().filter(|s| s.pass).count(),
                        self.settled.len(),
                        self.fraud.len()
                    ),
                )
            }
            Scenario::Lossy | Scenario::Slow | Scenario::Trickle => {
                let fails = of(*h1).filter(|s| s.failed()).count();
                let slashed = fraud_against(h1).is_some();
                (
                    fails > 0 && !slashed,
                    format!(
                        "hoster-1: {fails} failed verdicts ({}), slashed by fraud: {slashed}",
                        of(*h1)
                            .map(|s| s.verdict.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )
            }
            Scenario::Corrupt => match fraud_against(h1) {
                Some(f) => (
                    true,
                    format!(
                        "bad-data proof accepted in challenge {}: hoster-1 slashed {} tokens (submitted by {})",
                        f.0,
                        units::tokens(f.3 as i128),
                        name(&f.2)
                    ),
                ),
                None => (false, "no fraud proof against hoster-1 accepted yet".into()),
            },
            Scenario::ByzantineAttestor => {
                let a1 = &ctx.attestors[0];
                let a2 = &ctx.attestors[1];
                let honest_paid = ctx.attestors[2..]
                    .iter()
                    .filter(|a| self.rewarded.iter().any(|(w, _)| w == *a))
                    .count();
                // The committee's trouble is never the hosters': each passes, none fails.
                let hosters_pass = ctx
                    .hosters
                    .iter()
                    .all(|h| of(*h).any(|s| s.pass) && !of(*h).any(|s| s.failed()));
                let withholder = self
                    .penalised
                    .iter()
                    .any(|(w, _, r)| w == a2 && r == "Withholding");
                match fraud_against(a1) {
                    Some(f) => (
                        honest_paid > 0 && hosters_pass && withholder,
                        format!(
                            "attestor-1 slashed {} tokens (proof by {}); {} honest attestors paid; hoster verdicts: {}; penalties: {}",
                            units::tokens(f.3 as i128),
                            name(&f.2),
                            honest_paid,
                            self.settled
                                .iter()
                                .map(|s| format!("{} {}", name(&s.hoster), s.verdict))
                                .collect::<Vec<_>>()
                                .join(", "),
                            self.penalised
                                .iter()
                                .map(|(w, a, r)| format!(
                                    "{} {} ({r})",
                                    name(w),
                                    units::tokens(*a as i128)
                                ))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    None => (
                        false,
                        "no fraud proof against attestor-1 accepted yet".into(),
                    ),
                }
            }
        };
        Outcome {
            reached,
            text: format!("expected: {expect}. seen: {what}"),
        }
    }

    /// Read the final state from the chain and render the tables.
    pub async fn finish(
        &mut self,
        chain: &ChainClient,
        ctx: &Ctx,
        start: &Snapshot,
    ) -> anyhow::Result<()> {
        self.outcome = self.evaluate(ctx);
        let mut t = Table::new(&[
            "hoster",
            "verdicts (pass/fail/inc.)",
            "p50",
            "p99",
            "throughput",
            "availability",
            "rewards",
            "slashed",
            "score",
            "status",
        ]);
        let mut hosters_json = Vec::new();
        for h in &ctx.hosters {
            let mine: Vec<&Settled> = self.settled.iter().filter(|s| &s.hoster == h).collect();
            let pass = mine.iter().filter(|s| s.pass).count();
            let inc = mine.iter().filter(|s| s.inconclusive).count();
            let fail = mine.len() - pass - inc;
            let meds: Vec<&MetricSummary> = mine.iter().filter_map(|s| s.median.as_ref()).collect();
            let m = |f: fn(&MetricSummary) -> u64| median(meds.iter().map(|x| f(x)).collect());
            let p = chain.participant(h).await?;
            let free = chain.free_balance(h).await?;
            let reward = free as i128 - start.free.get(&h.0).copied().unwrap_or(0) as i128;
            let slashed = start.stake.get(&h.0).copied().unwrap_or(0) as i128
                - p.as_ref().map_or(0, |p| p.stake) as i128;
            let status = p
                .as_ref()
                .map(|p| format!("{:?}", p.status).to_lowercase())
                .unwrap_or_else(|| "gone".into());
            let score = p.as_ref().map(|p| p.score).unwrap_or(0);
            t.row(vec![
                name(h),
                format!("{pass}/{fail}/{inc}"),
                m(|x| x.latency_p50_us)
                    .map(units::micros)
                    .unwrap_or("-".into()),
                m(|x| x.latency_p99_us)
                    .map(units::micros)
                    .unwrap_or("-".into()),
                m(|x| x.throughput_bps)
                    .map(units::rate)
                    .unwrap_or("-".into()),
                m(|x| u64::from(x.availability_ppm()))
                    .map(|v| units::percent(v as u32))
                    .unwrap_or("-".into()),
                format!("{} tokens", units::tokens(reward)),
                format!("{} tokens", units::tokens(slashed)),
                score.to_string(),
                status.clone(),
            ]);
            hosters_json.push(json!({
                "hoster": name(h), "pass": pass, "fail": fail, "inconclusive": inc,
                "latency_p50_us": m(|x| x.latency_p50_us), "latency_p99_us": m(|x| x.latency_p99_us),
                "throughput_bps": m(|x| x.throughput_bps),
                "rewards": reward as f64 / datdot_chain_client::UNIT as f64,
                "slashed": slashed as f64 / datdot_chain_client::UNIT as f64,
                "score": score, "status": status,
            }));
        }
        let mut a = Table::new(&["attestor", "paid", "penalised", "slashed", "balance change"]);
        for at in &ctx.attestors {
            let paid: Balance = self
                .rewarded
                .iter()
                .filter(|(w, _)| w == at)
                .map(|(_, x)| x)
                .sum();
            let pen: Balance = self
                .penalised
                .iter()
                .filter(|(w, ..)| w == at)
                .map(|(_, x, _)| x)
                .sum();
            let slashed: Balance = self.fraud.iter().filter(|f| &f.1 == at).map(|f| f.3).sum();
            let free = chain.free_balance(at).await?;
            let delta = free as i128 - start.free.get(&at.0).copied().unwrap_or(0) as i128;
            a.row(vec![
                name(at),
                units::tokens(paid as i128),
                units::tokens(pen as i128),
                units::tokens(slashed as i128),
                units::tokens(delta),
            ]);
        }
        let secs: Vec<f64> = self.settled.iter().filter_map(|s| s.secs).collect();
        let mut figures = String::new();
        if !secs.is_empty() {
            let mut v = secs.clone();
            v.sort_by(f64::total_cmp);
            figures.push_str(&format!(
                "challenge event → settled verdict: median {:.1} s, max {:.1} s over {} challenges\n",
                v[(v.len() - 1) / 2],
                v[v.len() - 1],
                v.len()
            ));
        }
        let mut u = Table::new(&["process", "CPU per challenge", "peak RSS"]);
        let n = self.settled.len().max(1) as f64;
        for (p, cpu, rss) in &self.usage {
            u.row(vec![
                p.clone(),
                format!("{:.0} ms", cpu / n * 1e3),
                units::size(*rss),
            ]);
        }
        self.text = format!(
            "\nhosters after {:.0} s ({} challenges scheduled, {} settled):\n{}\nattestors (tokens):\n{}\n{figures}CPU and memory while challenges were open:\n{}\noutcome ({:?}): {} — {}\n",
            self.watched,
            self.scheduled,
            self.settled.len(),
            t.render(),
            a.render(),
            u.render(),
            self.scenario,
            if self.outcome.reached {
                "REACHED"
            } else {
                "NOT reached"
            },
            self.outcome.text
        );
        self.json = json!({
            "scenario": format!("{:?}", self.scenario),
            "outcome": self.outcome,
            "hosters": hosters_json,
            "settled": self.settled.iter().map(|s| json!({"challenge": s.challenge, "hoster": name(&s.hoster), "verdict": s.verdict, "reports": s.reports, "seconds_to_settle": s.secs})).collect::<Vec<_>>(),
            "fraud": self.fraud.iter().map(|f| json!({"challenge": f.0, "offender": name(&f.1), "submitter": name(&f.2)})).collect::<Vec<_>>(),
            "usage": self.usage.iter().map(|(p, c, r)| json!({"process": p, "cpu_seconds_while_open": c, "peak_rss_bytes": r})).collect::<Vec<_>>(),
        });
        Ok(())
    }
}

/// Follow the chain's events, print progress, sample processes; stop after `duration`
/// (never with `keep`), when `stop` changes (Ctrl-C), or — with `until` — once the outcome is reached.
pub async fn watch(
    ctx: &Ctx,
    mut events: mpsc::Receiver<BlockEvent>,
    duration: Duration,
    until: bool,
    keep: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Summary {
    let t0 = Instant::now();
    let mut s = Summary::new(ctx.scenario);
    let mut open: Open = HashMap::new();
    let mut cpu_prev: HashMap<u32, f64> = HashMap::new();
    let mut usage: Vec<(String, f64, u64)> =
        ctx.procs.iter().map(|(n, _)| (n.clone(), 0.0, 0)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let say = |line: String| {
        if !ctx.quiet {
            println!("[{:>6.1}s] {line}", t0.elapsed().as_secs_f64());
        }
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { say("the chain's event stream ended".into()); break };
                on_event(&mut s, &mut open, ev.event, &say);
                if until && s.evaluate(ctx).reached {
                    // Let the rest of this block's events (rewards, penalties) arrive.
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    while let Ok(ev) = events.try_recv() {
                        on_event(&mut s, &mut open, ev.event, &say);
                    }
                    say("the scenario's outcome is reached".into());
                    break;
                }
            }
            _ = tick.tick() => {
                let busy = !open.is_empty();
                for (i, (_, pid)) in ctx.procs.iter().enumerate() {
                    if let Some((cpu, rss)) = procs::usage(*pid) {
                        let prev = cpu_prev.insert(*pid, cpu).unwrap_or(cpu);
                        if busy {
                            usage[i].1 += cpu - prev;
                        }
                        usage[i].2 = usage[i].2.max(rss);
                    }
                }
                if !keep && t0.elapsed() >= duration {
                    say(format!("{} s watched", duration.as_secs()));
                    break;
                }
            }
            _ = stop.changed() => {
                say("Ctrl-C: stopping".into());
                break;
            }
        }
    }
    s.usage = usage;
    s.watched = t0.elapsed().as_secs_f64();
    s
}

/// Challenges open: id → (seen at, hoster, committee size, reports so far).
type Open = HashMap<u64, (Instant, AccountId32, usize, usize)>;

/// Record one chain event and print its progress line.
fn on_event(s: &mut Summary, open: &mut Open, event: Event, say: &dyn Fn(String)) {
    match event {
        Event::ChallengeScheduled {
            challenge,
            hoster,
            attestors,
            start,
            end,
            report_deadline,
            ..
        } => {
            s.scheduled += 1;
            open.insert(challenge, (Instant::now(), hoster, attestors.0.len(), 0));
            say(format!(
                "challenge {challenge}: {} audited by {} attestors, window blocks {start}..{end}, reports until {report_deadline}",
                name(&hoster),
                attestors.0.len()
            ));
        }
        Event::ReportSubmitted {
            challenge,
            attestor,
        } => {
            if let Some(o) = open.get_mut(&challenge) {
                o.3 += 1;
                say(format!(
                    "challenge {challenge}: report {}/{} ({})",
                    o.3,
                    o.2,
                    name(&attestor)
                ));
            }
        }
        Event::ChallengeSettled {
            challenge,
            verdict,
            median,
            reports,
            outliers,
        } => {
            let (pass, text) = verdict_text(&verdict);
            let o = open.remove(&challenge);
            let secs = o.as_ref().map(|o| o.0.elapsed().as_secs_f64());
            let detail = median
                .as_ref()
                .map(|m| {
                    format!(
                        " — median p50 {}, p99 {}, {}, availability {}",
                        units::micros(m.latency_p50_us),
                        units::micros(m.latency_p99_us),
                        units::rate(m.throughput_bps),
                        units::percent(m.availability_ppm()),
                    )
                })
                .unwrap_or_default();
            let hoster = o.map(|o| o.1);
            say(format!(
                "challenge {challenge} settled: {text}, {reports} reports, {outliers} outliers{detail}{}",
                secs.map(|x| format!(" ({x:.1} s after it was scheduled)"))
                    .unwrap_or_default()
            ));
            if let Some(hoster) = hoster {
                s.settled.push(Settled {
                    challenge,
                    hoster,
                    pass,
                    inconclusive: matches!(verdict, Verdict::Inconclusive),
                    verdict: text,
                    median,
                    reports,
                    secs,
                });
            }
        }
        Event::FraudProven {
            challenge,
            offender,
            submitter,
            slashed,
            ..
        } => {
            say(format!(
                "FRAUD PROVEN in challenge {challenge}: {} slashed {} tokens (proof submitted by {})",
                name(&offender),
                units::tokens(slashed as i128),
                name(&submitter)
            ));
            s.fraud.push((challenge, offender, submitter, slashed));
        }
        Event::Penalised {
            who,
            amount,
            reason,
        } => {
            let r = format!("{reason:?}");
            say(format!(
                "{} penalised {} tokens ({r})",
                name(&who),
                units::tokens(amount as i128)
            ));
            s.penalised.push((who, amount, r));
        }
        Event::Rewarded { who, amount } => s.rewarded.push((who, amount)),
        Event::Suspended { who } => say(format!("{} suspended", name(&who))),
        Event::HosterReplaced {
            contract, hoster, ..
        } => say(format!("contract {contract}: {} replaced", name(&hoster))),
        Event::RevealPublished {
            challenge,
            who,
            round,
        } => say(format!(
            "challenge {challenge}: {} published its round-{round} reveal",
            name(&who)
        )),
        Event::OutlierFlagged {
            challenge,
            attestor,
        } => say(format!(
            "challenge {challenge}: {}'s report flagged as an outlier",
            name(&attestor)
        )),
        _ => {}
    }
}
