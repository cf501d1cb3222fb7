//! `datdot-sim`: run seeded simulations of the datdot protocol and check invariants.
//!
//! ```text
//! datdot-sim coinflip --attestors 100 --byzantine 20% --runs 1000 --seed 7
//! datdot-sim coinflip --attestors 10 --replay 0x1234abcd   # re-run one failing run
//! datdot-sim settle --attestors 10 --liars 40% --runs 1000
//! datdot-sim audits --attestors 10 --byzantine 30% --runs 1000
//! ```
//! Exits non-zero if any run breaks an invariant, after printing each failing run's
//! seed and the command that replays it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant as WallInstant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use datdot_protocol::coinflip::Outcome;
use datdot_protocol::fraud::FraudKind;
use datdot_sim::coinflip::{self, Behaviour, Scenario, check, outcome_name};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
    name = "datdot-sim",
    version,
    about = "Deterministic simulation of the datdot protocol"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Coin flips among attestors, some byzantine, over a faulty simulated network.
    Coinflip(CoinflipArgs),
    /// Settlement of metric reports when some attestors lie.
    Settle(SettleArgs),
    /// Coin flip, signed reports and the chain's report checks and pay rules, with
    /// withholders, equivocators and copying reporters.
    Audits(AuditsArgs),
    /// A whole network: the production pallet, attestor lifecycles, coin flips and
    /// audits, simulated hosters and attestors of every class, for some epochs.
    Network(NetworkArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct NetworkArgs {
    /// Registered hosters.
    #[arg(long, default_value_t = 100)]
    hosters: usize,
    /// Registered attestors.
    #[arg(long, default_value_t = 60)]
    attestors: usize,
    /// Challenge periods each contract runs (one challenge each).
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    /// Replicas per feed.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// Blocks per feed.
    #[arg(long, default_value_t = 1024)]
    feed_length: u64,
    /// Bytes per block.
    #[arg(long, default_value_t = 4096)]
    block_size: usize,
    /// The chain's block time in ms (default: the dev runtime's `BlockMs`).
    #[arg(long)]
    block_ms: Option<u64>,
    /// Master seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed)]
    seed: u64,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(clap::Args, Debug, Clone)]
struct AuditsArgs {
    /// Committee size.
    #[arg(long, default_value_t = 10)]
    attestors: usize,
    /// Share of byzantine members (withholders, equivocators, three kinds of copier).
    #[arg(long, default_value = "30%", value_parser = parse_share)]
    byzantine: f64,
    /// Share of runs on a lossy network with a partition (safety invariants only).
    #[arg(long, default_value = "20%", value_parser = parse_share)]
    lossy: f64,
    /// Number of runs.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Master seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed)]
    seed: u64,
}

#[derive(clap::Args, Debug, Clone)]
struct CoinflipArgs {
    /// Committee size.
    #[arg(long, default_value_t = 10)]
    attestors: usize,
    /// Share of byzantine members, e.g. `20%` or `0.2`.
    #[arg(long, default_value = "20%", value_parser = parse_share)]
    byzantine: f64,
    /// What the byzantine members do. `rotate` picks per run: one behaviour for all of
    /// them (exact exits are checked) or a mix.
    #[arg(long, value_enum, default_value_t = Mode::Rotate)]
    behaviour: Mode,
    /// Share of runs on an unreliable network (loss, duplicates, a partition); only
    /// safety invariants are checked on those.
    #[arg(long, default_value = "20%", value_parser = parse_share)]
    unreliable: f64,
    /// Number of runs.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Master seed; run `i` uses a seed derived from it.
    #[arg(long, default_value_t = 0, value_parser = parse_seed)]
    seed: u64,
    /// Re-run exactly one run with this run seed (printed by a failing run).
    #[arg(long, value_parser = parse_seed)]
    replay: Option<u64>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct SettleArgs {
    /// Reports per challenge.
    #[arg(long, default_value_t = 10)]
    attestors: usize,
    /// Share of lying attestors, e.g. `40%`.
    #[arg(long, default_value = "40%", value_parser = parse_share)]
    liars: f64,
    /// Number of runs.
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Master seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed)]
    seed: u64,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Rotate,
    Mixed,
    Equivocate,
    BadReveal,
    Withhold,
    Offline,
    Divergent,
}

fn parse_share(s: &str) -> Result<f64, String> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => s.trim().parse::<f64>(),
    }
    .map_err(|e| format!("{s:?} is not a share like 20% or 0.2: {e}"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} must be between 0% and 100%"));
    }
    Ok(v)
}

fn parse_seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?} is not a seed (decimal or 0x-hex): {e}"))
}

/// splitmix64: the run seeds derived from the master seed.
fn derive(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The scenario of the run with seed `s` (a pure function, so `--replay` rebuilds it).
fn scenario(a: &CoinflipArgs, s: u64) -> (Scenario, &'static str) {
    let unreliable = (derive(s, 1) % 10_000) as f64 / 10_000.0 < a.unreliable;
    let kinds: (&[Behaviour], &str) = match a.behaviour {
        Mode::Mixed => (&Behaviour::ALL, "mixed"),
        Mode::Equivocate => (&[Behaviour::Equivocate], "equivocate"),
        Mode::BadReveal => (&[Behaviour::BadReveal], "bad-reveal"),
        Mode::Withhold => (&[Behaviour::WithholdReveal], "withhold"),
        Mode::Offline => (&[Behaviour::Offline], "offline"),
        Mode::Divergent => (&[Behaviour::Divergent], "divergent"),
        Mode::Rotate => match derive(s, 2) % 6 {
            0 => (&[Behaviour::Equivocate], "equivocate"),
            1 => (&[Behaviour::BadReveal], "bad-reveal"),
            2 => (&[Behaviour::WithholdReveal], "withhold"),
            3 => (&[Behaviour::Offline], "offline"),
            4 => (&[Behaviour::Divergent], "divergent"),
            _ => (&Behaviour::ALL, "mixed"),
        },
    };
    let sc = Scenario::random(s, a.attestors, a.byzantine, kinds.0, unreliable);
    let label = match (kinds.1, unreliable) {
        (l, false) => l,
        ("equivocate", true) => "equivocate+net",
        ("bad-reveal", true) => "bad-reveal+net",
        ("withhold", true) => "withhold+net",
        ("offline", true) => "offline+net",
        ("divergent", true) => "divergent+net",
        (_, true) => "mixed+net",
    };
    (sc, label)
}

struct RunSummary {
    index: usize,
    seed: u64,
    label: &'static str,
    unreliable: bool,
    violations: Vec<String>,
    outcomes: BTreeMap<&'static str, usize>,
    final_round: Option<u32>,
    proofs: BTreeMap<&'static str, usize>,
    time_to_result: Option<Duration>,
    messages: u64,
    signatures: usize,
}

fn kind_name(k: FraudKind) -> &'static str {
    match k {
        FraudKind::Equivocation => "equivocation",
        FraudKind::InvalidReveal => "invalid reveal",
        FraudKind::Divergent => "divergent result",
        _ => "other",
    }
}

fn one(a: &CoinflipArgs, index: usize, seed: u64) -> RunSummary {
    let (sc, label) = scenario(a, seed);
    let r = coinflip::run(&sc, seed);
    let violations = check(&sc, &r).into_iter().map(|v| v.0).collect();
    let mut outcomes = BTreeMap::new();
    let mut final_round = None;
    let mut time_to_result = None;
    for m in r.honest() {
        let name = m.outcome.as_ref().map_or("unfinished", outcome_name);
        *outcomes.entry(name).or_default() += 1;
        if let Some(Outcome::Success { round, .. }) = &m.outcome {
            final_round = final_round.max(Some(*round));
            let t = m.finished_at.map(|t| Duration::from_micros(t.0));
            time_to_result = time_to_result.max(t);
        }
    }
    let mut proofs = BTreeMap::new();
    for (kind, _, _) in coinflip::detected_proofs(&r) {
        *proofs.entry(kind_name(kind)).or_default() += 1;
    }
    RunSummary {
        index,
        seed,
        label,
        unreliable: !sc.net.reliable(),
        violations,
        outcomes,
        final_round,
        proofs,
        time_to_result,
        messages: r.net.sent,
        signatures: r.signatures,
    }
}

fn replay_cmd(a: &CoinflipArgs, seed: u64) -> String {
    format!(
        "datdot-sim coinflip --attestors {} --byzantine {}% --behaviour {} --unreliable {}% --replay {seed:#x}",
        a.attestors,
        a.byzantine * 100.0,
        format!("{:?}", a.behaviour).to_lowercase(),
        a.unreliable * 100.0
    )
}

fn coinflip_cmd(a: CoinflipArgs) -> anyhow::Result<()> {
    if a.attestors < 3 || a.attestors > datdot_protocol::coinflip::MAX_COMMITTEE {
        bail!(
            "--attestors must be between 3 and {}",
            datdot_protocol::coinflip::MAX_COMMITTEE
        );
    }
    let seeds: Vec<u64> = match a.replay {
        Some(s) => vec![s],
        None => (0..a.runs as u64).map(|i| derive(a.seed, i)).collect(),
    };
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(seeds.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} runs {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    let started = WallInstant::now();
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<RunSummary>(64);
    let mut all: Vec<RunSummary> = Vec::with_capacity(seeds.len());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, seeds, a) = (&next, &seeds, &a);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(i) else { break };
                    if tx.send(one(a, i, seed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut failed = 0;
        for r in rx {
            if !r.violations.is_empty() {
                failed += 1;
                bar.set_message(format!("{failed} FAILED"));
            }
            bar.inc(1);
            all.push(r);
        }
    });
    bar.finish();
    all.sort_by_key(|r| r.index);
    let wall = started.elapsed();

    // Per-run detail when replaying.
    if a.replay.is_some() {
        let r = &all[0];
        println!(
            "run seed {:#x} ({}), unreliable network: {}",
            r.seed, r.label, r.unreliable
        );
        println!("honest outcomes: {:?}", r.outcomes);
        println!("fraud proofs detected: {:?}", r.proofs);
        println!(
            "final round: {:?}, time to R: {:?}",
            r.final_round, r.time_to_result
        );
    }

    // Summary table by scenario label.
    let mut by: BTreeMap<&str, Vec<&RunSummary>> = BTreeMap::new();
    for r in &all {
        by.entry(r.label).or_default().push(r);
    }
    println!();
    println!(
        "coin flip: {} runs, {} attestors, {:.0}% byzantine, master seed {:#x}, {} jobs, {:.1} s wall",
        all.len(),
        a.attestors,
        a.byzantine * 100.0,
        a.seed,
        jobs,
        wall.as_secs_f64()
    );
    println!(
        "{:<14} {:>5} {:>9} {:>9} {:>9} {:>7} {:>12} {:>12} {:>10} {:>10} {:>7}",
        "scenario",
        "runs",
        "success",
        "offline",
        "malic.",
        "round",
        "proofs",
        "t(R) p50",
        "msgs/run",
        "sigs/run",
        "FAILED"
    );
    for (label, rs) in &by {
        let sum = |k: &str| {
            rs.iter()
                .map(|r| r.outcomes.get(k).copied().unwrap_or(0))
                .sum::<usize>()
        };
        let honest_total: usize = rs.iter().map(|r| r.outcomes.values().sum::<usize>()).sum();
        let pct = |k: &str| 100.0 * sum(k) as f64 / honest_total.max(1) as f64;
        let rounds: Vec<u32> = rs.iter().filter_map(|r| r.final_round).collect();
        let mean_rounds = match rounds.len() {
            0 => "-".to_string(),
            n => format!(
                "{:.2}",
                rounds.iter().map(|&r| f64::from(r) + 1.0).sum::<f64>() / n as f64
            ),
        };
        let proofs: usize = rs.iter().map(|r| r.proofs.values().sum::<usize>()).sum();
        let mut t: Vec<Duration> = rs.iter().filter_map(|r| r.time_to_result).collect();
        t.sort();
        let p50 = t
            .get(t.len() / 2)
            .map_or("-".to_string(), |d| format!("{:.2}s", d.as_secs_f64()));
        let msgs = rs.iter().map(|r| r.messages).sum::<u64>() / rs.len() as u64;
        let sigs = rs.iter().map(|r| r.signatures).sum::<usize>() / rs.len();
        let failed = rs.iter().filter(|r| !r.violations.is_empty()).count();
        println!(
            "{:<14} {:>5} {:>8.1}% {:>8.1}% {:>8.1}% {:>7} {:>12} {:>12} {:>10} {:>10} {:>7}",
            label,
            rs.len(),
            pct("success"),
            pct("offline"),
            pct("malicious"),
            mean_rounds,
            proofs,
            p50,
            msgs,
            sigs,
            failed
        );
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &all {
        for (k, n) in &r.proofs {
            *kinds.entry(k).or_default() += n;
        }
    }
    println!("fraud proofs detected by honest members (all verified): {kinds:?}");
    println!("(shares are over honest members' final exits; round = mean number of the round that");
    println!(" succeeded, which grows by one per exclusion learned and per offline retry;");
    println!(" +net = lossy network with duplicates and a partition: safety invariants only)");

    let failed: Vec<&RunSummary> = all.iter().filter(|r| !r.violations.is_empty()).collect();
    for r in &failed {
        println!("\nFAILED run {} seed {:#x} ({}):", r.index, r.seed, r.label);
        for v in r.violations.iter().take(10) {
            println!("  - {v}");
        }
        println!("  replay: {}", replay_cmd(&a, r.seed));
    }
    if !failed.is_empty() {
        bail!("{} of {} runs broke an invariant", failed.len(), all.len());
    }
    println!("all invariants held in {} runs", all.len());
    Ok(())
}

fn settle_cmd(a: SettleArgs) -> anyhow::Result<()> {
    if a.attestors == 0 {
        bail!("--attestors must be at least 1");
    }
    let liars = ((a.attestors as f64) * a.liars).round() as usize;
    let mut failed = 0;
    let mut flagged = 0;
    let mut kept = 0;
    for i in 0..a.runs as u64 {
        let seed = derive(a.seed, i);
        let r = datdot_sim::metrics::run(seed, a.attestors, liars);
        flagged += r.liars_flagged;
        kept += usize::from(r.verdict_kept);
        if !r.violations.is_empty() {
            failed += 1;
            println!("FAILED seed {seed:#x}: {:?}", r.violations);
        }
    }
    println!(
        "settlement: {} runs, {} reports each, {} liars: SLA verdict kept in {}/{} runs, liars flagged {}/{}, {} runs broke an invariant",
        a.runs,
        a.attestors,
        liars,
        kept,
        a.runs,
        flagged,
        liars * a.runs,
        failed
    );
    if failed > 0 {
        bail!("{failed} runs broke an invariant");
    }
    Ok(())
}

fn audits_cmd(a: AuditsArgs) -> anyhow::Result<()> {
    if a.attestors < 3 {
        bail!("--attestors must be at least 3");
    }
    let mut total = datdot_sim::audits::AuditsRun::default();
    let (mut failed, mut lossy) = (0, 0);
    for i in 0..a.runs as u64 {
        let seed = derive(a.seed, i);
        let r = datdot_sim::audits::run(seed, a.attestors, a.byzantine, a.lossy);
        lossy += usize::from(r.lossy);
        if !r.violations.is_empty() {
            failed += 1;
            println!(
                "FAILED seed {seed:#x} (lossy: {}): {:?}",
                r.lossy, r.violations
            );
        }
        total.honest += r.honest;
        total.honest_paid += r.honest_paid;
        total.copiers += r.copiers;
        total.copiers_unpaid += r.copiers_unpaid;
        total.withholders += r.withholders;
        total.withholders_penalised += r.withholders_penalised;
        total.equivocators += r.equivocators;
        total.equivocators_proven += r.equivocators_proven;
    }
    println!(
        "audits: {} runs ({} lossy), {} members, {:.0}% byzantine: honest paid {}/{}, copiers unpaid {}/{}, withholders penalised {}/{}, equivocators proven {}/{}, {} runs broke an invariant",
        a.runs,
        lossy,
        a.attestors,
        a.byzantine * 100.0,
        total.honest_paid,
        total.honest,
        total.copiers_unpaid,
        total.copiers,
        total.withholders_penalised,
        total.withholders,
        total.equivocators_proven,
        total.equivocators,
        failed
    );
    if failed > 0 {
        bail!("{failed} runs broke an invariant");
    }
    Ok(())
}

fn network_cmd(a: NetworkArgs) -> anyhow::Result<()> {
    if a.hosters < 2 || a.attestors < 10 || a.epochs == 0 || a.replicas == 0 {
        bail!("needs at least 2 hosters, 10 attestors, 1 epoch and 1 replica");
    }
    let cfg = datdot_sim::network::Config {
        hosters: a.hosters,
        attestors: a.attestors,
        epochs: a.epochs,
        replicas: a.replicas,
        feed_length: a.feed_length,
        block_size: a.block_size,
        block_ms: a
            .block_ms
            .unwrap_or_else(datdot_sim::network::runtime::block_ms),
        seed: a.seed,
        threads: a
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
    };
    let o = datdot_sim::network::run(&cfg);
    print!("{}", datdot_sim::network::table(&cfg, &o));
    if !o.violations.is_empty() {
        for v in &o.violations {
            println!("VIOLATION {v}");
        }
        println!("replay: {}", cfg.command());
        bail!(
            "{} invariant violations (seed {:#x})",
            o.violations.len(),
            cfg.seed
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Coinflip(a) => coinflip_cmd(a),
        Cmd::Settle(a) => settle_cmd(a),
        Cmd::Audits(a) => audits_cmd(a),
        Cmd::Network(a) => network_cmd(a),
    }
}
