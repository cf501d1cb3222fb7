//! Reports-to-settlement scenario (issue 12): a committee flips a coin over the simulated
//! network (some members withhold or equivocate), every member builds and signs its
//! report the way `datdot-attestor` does (transcript, own secret, scheduled sample, the
//! hoster's receipts, accusations), copiers report without having downloaded, and the
//! chain's rules judge them: `Report::check_audit` and one connection per report (what
//! `submit_report` refuses), withholding accusations by (member, round) with their
//! commits, and `pallet_datdot::settle::{tied, accusation_stands}` for pay and
//! penalties.
//!
//! Invariants on a reliable network: no honest member's report is refused, every honest
//! member is paid and never penalised; every copier is refused or unpaid; every
//! withholder's accusation stands; every equivocator is proven. On the lossy network
//! only: no honest report is refused, no honest member is penalised.

use std::collections::{BTreeMap, BTreeSet};

use datdot_protocol::coinflip::{Outcome, commit_value, round_secret, x_of};
use datdot_protocol::hash::blake2b256;
use datdot_protocol::identity::{Ed25519Verifier, Keypair, Signature};
use datdot_protocol::metrics::{MetricSummary, Outcome as AuditOutcome, Sla};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::report::{CoinFlipRecord, Report, Tie};
use datdot_protocol::schedule::sample;
use pallet_datdot::settle::{accusation_stands, judge, tied};
use pallet_datdot::types::OUTLIER_TOLERANCE_PERCENT;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::coinflip::{self, Behaviour, MemberResult, Scenario, detected_proofs, session_of};

/// Blocks in the audited feed.
const FEED_LENGTH: u64 = 4096;
/// Blocks each member samples.
const SAMPLES: u32 = 16;

/// What a member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Flips, audits and reports honestly.
    Honest,
    /// Withholds its coin-flip reveal (then reports its own audit).
    Withholder,
    /// Equivocates in the coin flip (then reports its own audit).
    Equivocator,
    /// Flips honestly, never downloads, copies the honest median with no transcript.
    CopierNoTranscript,
    /// Flips honestly, reports its true transcript and sample, never downloads.
    CopierNoReceipts,
    /// Flips honestly, never downloads, shows another member's receipts.
    CopierOthersReceipts,
}

const BYZANTINE: [Role; 5] = [
    Role::Withholder,
    Role::Equivocator,
    Role::CopierNoTranscript,
    Role::CopierNoReceipts,
    Role::CopierOthersReceipts,
];

/// One run's outcome.
#[derive(Clone, Debug, Default)]
pub struct AuditsRun {
    /// Broken invariants.
    pub violations: Vec<String>,
    /// Honest members, and those paid.
    pub honest: usize,
    /// Honest members paid.
    pub honest_paid: usize,
    /// Copiers, and those refused or unpaid.
    pub copiers: usize,
    /// Copiers that earned nothing.
    pub copiers_unpaid: usize,
    /// Withholders, and those whose accusation stood.
    pub withholders: usize,
    /// Withholders penalised.
    pub withholders_penalised: usize,
    /// Equivocators, and those proven.
    pub equivocators: usize,
    /// Equivocators proven.
    pub equivocators_proven: usize,
    /// Whether the network was lossy.
    pub lossy: bool,
}

fn metrics(ok: u32) -> MetricSummary {
    let mut m = MetricSummary::empty(AuditOutcome::Completed);
    m.requests = SAMPLES;
    m.ok_blocks = ok;
    m.timeouts = SAMPLES - ok;
    m.bytes_received = u64::from(ok) * 65_536;
    m.latency_p50_us = 20_000;
    m.latency_p90_us = 30_000;
    m.latency_p99_us = 40_000;
    m.latency_max_us = 50_000;
    m.ttfb_p50_us = 10_000;
    m.ttfb_p99_us = 20_000;
    m.throughput_bps = 3_000_000;
    m.throughput_p50_bps = 3_000_000;
    m.connect_time_us = 1_000;
    m
}

/// The remote key of member `i`'s audit connection in run `seed`.
fn connection(seed: u64, i: usize) -> [u8; 32] {
    blake2b256(&[
        b"sim/connection",
        &seed.to_le_bytes(),
        &(i as u64).to_le_bytes(),
    ])
}

/// The hoster's receipt for `sampled` on member `i`'s connection.
/// The simulated chain's identity.
const CHAIN: [u8; 32] = [0x5d; 32];

fn receipt(hoster: &Keypair, seed: u64, i: usize, sampled: &[u64]) -> SignedReceipt {
    let entries = sampled
        .iter()
        .map(|&index| ReceiptEntry {
            index,
            hash: blake2b256(&[b"sim/leaf", &index.to_le_bytes()]),
        })
        .collect();
    SignedReceipt::sign(hoster, CHAIN, [7; 32], connection(seed, i), 0, entries)
}

/// Member `i`'s report, built as the attestor builds it.
fn report_of(seed: u64, i: usize, all: &[MemberResult], role: Role, hoster: &Keypair) -> Report {
    let m = &all[i];
    let session = session_of(seed);
    let (round, transcript, r, own) = match &m.outcome {
        Some(Outcome::Success {
            round,
            result,
            transcript,
        }) => (
            *round,
            Some(transcript.clone()),
            *result,
            round_secret(&m.entropy, &session, *round),
        ),
        // No agreed R: a private one (and secret).
        _ => (
            0,
            None,
            blake2b256(&[b"sim/private-r", &m.seed]),
            blake2b256(&[b"sim/private-s", &m.seed]),
        ),
    };
    let sampled = sample(&r, &own, FEED_LENGTH, SAMPLES);
    let mut rep = Report {
        chain: CHAIN,
        challenge: seed,
        attestor: Keypair::from_seed(&m.seed).public(),
        hoster: hoster.public(),
        feed: [7; 32],
        receipts: vec![receipt(hoster, seed, i, &sampled)],
        sampled,
        received_root: [0; 32],
        metrics: metrics(SAMPLES),
        failures: Vec::new(),
        coinflip: CoinFlipRecord {
            round,
            own_secret: if transcript.is_some() { own } else { [0; 32] },
            transcript,
            accused: m.accused(),
        },
        sig: Signature([0; 64]),
    };
    match role {
        Role::CopierNoTranscript => {
            rep.coinflip.transcript = None;
            rep.coinflip.own_secret = [0; 32];
            rep.receipts.clear();
        }
        Role::CopierNoReceipts => rep.receipts.clear(),
        Role::CopierOthersReceipts => {
            // The first other member's receipts (it claims what they cover of its sample).
            let other = usize::from(i == 0);
            rep.receipts = report_of(seed, other, all, Role::Honest, hoster).receipts;
            rep.count_only_receipted();
        }
        _ => {}
    }
    rep.sign(&Keypair::from_seed(&m.seed))
}

/// One seeded run: `n` members, `share` of them byzantine (roles cycled), a lossy
/// network in `lossy_share` of runs.
pub fn run(seed: u64, n: usize, share: f64, lossy_share: f64) -> AuditsRun {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x00a0_d175);
    let bad = ((n as f64) * share).round() as usize;
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, rng.gen_range(0..=i));
    }
    let offset = rng.gen_range(0..BYZANTINE.len());
    let mut roles = vec![Role::Honest; n];
    for (k, &i) in idx.iter().take(bad).enumerate() {
        roles[i] = BYZANTINE[(k + offset) % BYZANTINE.len()];
    }
    let lossy = rng.gen_bool(lossy_share);
    // The network of a coin-flip scenario drawn from the same seed (delays, and when
    // lossy: loss, duplicates, a partition); two rounds, as the attestor flips.
    let mut sc = Scenario::random(seed, n, 0.0, &[Behaviour::WithholdReveal], lossy);
    sc.max_rounds = 2;
    sc.byzantine = roles
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Role::Withholder => Some((i, Behaviour::WithholdReveal)),
            Role::Equivocator => Some((i, Behaviour::Equivocate)),
            _ => None,
        })
        .collect();
    let result = coinflip::run(&sc, seed);
    let hoster = Keypair::from_seed(&blake2b256(&[b"sim/hoster", &seed.to_le_bytes()]));
    let session = session_of(seed);
    let keys: Vec<[u8; 32]> = result.members.iter().map(|m| *m.key.as_bytes()).collect();

    // The chain: each report in committee order, as `submit_report` judges it.
    let mut refused = vec![false; n];
    let mut untied: Vec<Option<Option<u32>>> = vec![None; n];
    let mut conclusive = vec![false; n];
    let mut summaries = Vec::new();
    let mut accusations: BTreeMap<(usize, u32), ([u8; 32], u8)> = BTreeMap::new();
    for i in 0..n {
        let rep = report_of(seed, i, &result.members, roles[i], &hoster);
        let checked = rep
            .verify(&Ed25519Verifier)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                rep.check_audit(&Ed25519Verifier, &session, &keys, FEED_LENGTH)
                    .map_err(|e| e.to_string())
            });
        let check = match checked {
            Ok(c) => c,
            Err(_) => {
                refused[i] = true;
                continue;
            }
        };
        conclusive[i] = rep.metrics.conclusive();
        summaries.push((i, rep.metrics));
        untied[i] = match check {
            Tie::NoTranscript => Some(None),
            Tie::Tied { absent } if absent.is_empty() => None,
            Tie::Tied { absent } => Some(Some(absent.iter().fold(0u32, |a, m| a | 1 << m))),
        };
        let mut seen = BTreeSet::new();
        for c in &rep.coinflip.accused {
            let Some(a) = keys.iter().position(|k| k == c.signer.as_bytes()) else {
                continue;
            };
            if a == i || c.session != session || !c.verify(&Ed25519Verifier) || !seen.insert(a) {
                continue;
            }
            let e = accusations.entry((a, c.round)).or_insert((c.y, 0));
            e.1 = e.1.saturating_add(1);
        }
    }
    let reports = refused.iter().filter(|r| !**r).count();
    // The settlement's outliers (lower median, the runtime's `OutlierTolerancePercent`).
    let all: Vec<MetricSummary> = summaries.iter().map(|(_, m)| *m).collect();
    let judged = judge(&all, &Sla::default(), 2, OUTLIER_TOLERANCE_PERCENT);
    let mut outlier = vec![false; n];
    for ((i, _), o) in summaries.iter().zip(&judged.outliers) {
        outlier[*i] = *o;
    }

    let proven: BTreeSet<usize> = detected_proofs(&result)
        .iter()
        .filter_map(|(_, k, _)| keys.iter().position(|x| x == k.as_bytes()))
        .collect();
    // An honest accused member answers with the reveal of the accused commit (the
    // attestor derives it from its entropy even for a round it never revealed in):
    // cleared. Byzantine ones do not answer.
    let cleared = |m: usize, round: u32, y: &[u8; 32]| {
        roles[m] == Role::Honest && {
            let x = x_of(&round_secret(&result.members[m].entropy, &session, round));
            commit_value(&x) == *y
        }
    };
    let majority = |m: usize| {
        accusations
            .iter()
            .any(|((a, _), (_, c))| *a == m && accusation_stands(*c, reports, false))
    };
    let stands = |m: usize| {
        accusations
            .iter()
            .any(|((a, r), (y, c))| *a == m && accusation_stands(*c, reports, cleared(m, *r, y)))
    };
    let excused = |m: usize| proven.contains(&m) || majority(m);
    let paid = |i: usize| {
        !refused[i]
            && conclusive[i]
            && !outlier[i]
            && !proven.contains(&i)
            && tied(untied[i], n, excused)
    };
    let penalised = |i: usize| refused[i] || stands(i) || proven.contains(&i);

    let mut out = AuditsRun {
        lossy,
        ..AuditsRun::default()
    };
    for (i, role) in roles.iter().enumerate() {
        let v = &mut out.violations;
        match role {
            Role::Honest => {
                out.honest += 1;
                out.honest_paid += usize::from(paid(i));
                if refused[i] {
                    v.push(format!("honest member {i}'s report refused"));
                }
                if penalised(i) {
                    v.push(format!("honest member {i} penalised"));
                }
                if !lossy && !paid(i) {
                    v.push(format!("honest member {i} unpaid on a reliable network"));
                }
            }
            Role::Withholder => {
                out.withholders += 1;
                out.withholders_penalised += usize::from(stands(i));
                if !lossy && !stands(i) {
                    v.push(format!("withholder {i} escaped its accusation"));
                }
            }
            Role::Equivocator => {
                out.equivocators += 1;
                out.equivocators_proven += usize::from(proven.contains(&i));
                if !lossy && !proven.contains(&i) {
                    v.push(format!("equivocator {i} not proven"));
                }
            }
            _ => {
                out.copiers += 1;
                out.copiers_unpaid += usize::from(!paid(i));
                if paid(i) {
                    v.push(format!(
                        "copier {i} ({role:?}) paid (refused {}, untied {:?})",
                        refused[i], untied[i]
                    ));
                }
            }
        }
    }
    out
}
