//! `datdot-sim network`: a whole network on the virtual clock — the production pallet
//! (in `TestExternalities`, with its real agenda, draws, settlement and fraud handling),
//! one production challenge lifecycle ([`Lifecycle`]) per committee seat, the production
//! coin flip over the seeded network of [`crate::net`], the production audit machine
//! against simulated hosters ([`hoster`]), and the chain's verdicts, payments and
//! penalties read back from its events.
//!
//! Hoster classes: honest, lossy (a fraction `f` of the feed lost), corrupt (wrong bytes,
//! receipted), slow, trickling, serving only attestors. Attestor classes: honest,
//! restarting (every persisted step is a crash: the lifecycle is rebuilt from its
//! encoded record), offline, equivocating, withholding, copying (reports without
//! downloading), lying in metrics (flatters the hoster's speed).
//!
//! Invariants (each a violation if broken, printed with the run's seed):
//! - no honest or restarting attestor is penalised, convicted, refused a report or
//!   flagged an outlier (unpaid, its score lowered);
//! - no hoster that meets the SLA fails a challenge whose reports came from an honest
//!   majority, and none is slashed, suspended or convicted;
//! - every corrupt hoster audited by an honest member is convicted by a fraud proof;
//! - every challenge the agenda drew is settled by the end of the run.
//!
//! Files: this one (configuration, the run, the checks, the table); [`runtime`] (the
//! simulated chain's `Config`), [`chain`] (blocks), [`hoster`] (hosters and the audit
//! connection), [`committee`] (the seats' lifecycles).

pub mod chain;
pub mod committee;
pub mod hoster;
pub mod runtime;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant as WallInstant};

use datdot_protocol::codec::{Encode as _, Writer};
use datdot_protocol::hash::blake2b256;
use datdot_protocol::identity::{Keypair, Signature};
use datdot_protocol::metrics::Sla;
use datdot_protocol::tree::{SignedTreeRoot, signable, tree_hash};
use ed25519_dalek::{Signer as _, SigningKey};
use frame::prelude::*;
use pallet_datdot::types::{Endpoint, PlanTerms, Role, Verdict};

use self::chain::{Chain, DatdotEvent, Tx};
use self::committee::{Committee, Tag, World};
use self::hoster::Content;
pub use self::hoster::HosterClass;
use self::runtime::{Datdot, RuntimeCall, SimRuntime};

type Dev = datdot_runtime::Runtime;

/// A committee with what it reads in one block: the chain's view, its results.
type StepIn = (
    Committee,
    Option<pallet_datdot::ChallengeOf<SimRuntime>>,
    Vec<(Tag, DispatchResult)>,
);

/// How an attestor behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttestorClass {
    /// Follows the protocol.
    Honest,
    /// Follows the protocol, and crashes after every persisted step (resumes from it).
    Restarting,
    /// Never answers.
    Offline,
    /// Sends two different commits in the coin flip.
    Equivocating,
    /// Withholds its reveal, and does not answer the accusation.
    Withholding,
    /// Never downloads; reports the sample as all served.
    Copying,
    /// Audits, then reports ten times the throughput and a tenth of the latency.
    Lying,
}

impl AttestorClass {
    /// Follows the protocol.
    pub fn honest(self) -> bool {
        matches!(self, AttestorClass::Honest | AttestorClass::Restarting)
    }

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            AttestorClass::Honest => "honest",
            AttestorClass::Restarting => "restarting",
            AttestorClass::Offline => "offline",
            AttestorClass::Equivocating => "equivocating",
            AttestorClass::Withholding => "withholding",
            AttestorClass::Copying => "copying",
            AttestorClass::Lying => "lying",
        }
    }
}

/// Hoster classes and their shares (per cent).
pub const HOSTER_MIX: [(HosterClass, u32); 9] = [
    (HosterClass::Honest, 40),
    (HosterClass::Lossy(10_000), 10),
    (HosterClass::Lossy(50_000), 10),
    (HosterClass::Lossy(100_000), 10),
    (HosterClass::Lossy(500_000), 10),
    (HosterClass::Corrupt, 5),
    (HosterClass::Slow, 5),
    (HosterClass::Trickling, 5),
    (HosterClass::ServesOnlyAttestors, 5),
];

/// Attestor classes and their shares (per cent).
pub const ATTESTOR_MIX: [(AttestorClass, u32); 7] = [
    (AttestorClass::Honest, 80),
    (AttestorClass::Restarting, 5),
    (AttestorClass::Offline, 3),
    (AttestorClass::Equivocating, 3),
    (AttestorClass::Withholding, 3),
    (AttestorClass::Copying, 3),
    (AttestorClass::Lying, 3),
];

/// A run's parameters.
#[derive(Clone, Debug)]
pub struct Config {
    /// Registered hosters.
    pub hosters: usize,
    /// Registered attestors.
    pub attestors: usize,
    /// Challenge periods every contract runs for (one challenge each).
    pub epochs: u32,
    /// Replicas per feed (feeds = hosters / replicas).
    pub replicas: u32,
    /// Blocks per feed.
    pub feed_length: u64,
    /// Bytes per block.
    pub block_size: usize,
    /// The chain's block time (ms).
    pub block_ms: u64,
    /// Master seed.
    pub seed: u64,
    /// Worker threads for the committees.
    pub threads: usize,
}

impl Config {
    /// The command that replays this run.
    pub fn command(&self) -> String {
        format!(
            "datdot-sim network --hosters {} --attestors {} --epochs {} --replicas {} --feed-length {} --block-size {} --seed {:#x}",
            self.hosters,
            self.attestors,
            self.epochs,
            self.replicas,
            self.feed_length,
            self.block_size,
            self.seed
        )
    }
}

/// Per hoster class: what the chain decided.
#[derive(Clone, Debug, Default)]
pub struct ClassVerdicts {
    /// Hosters of the class.
    pub hosters: usize,
    /// Challenges settled.
    pub challenges: u64,
    /// Passed.
    pub passed: u64,
    /// Failed.
    pub failed: u64,
    /// Inconclusive.
    pub inconclusive: u64,
    /// Convicted by a fraud proof.
    pub convicted: u64,
    /// Honest members' reports on it flagged as outliers (unpaid, score lowered).
    pub honest_outliers: u64,
    /// Member reports (honest members, conclusive).
    pub reports: u64,
    /// Of those, reports that saw a block missing.
    pub saw_missing: u64,
    /// Hosters of the class that were challenged.
    pub challenged: u64,
    /// Of those, hosters failed at least once by epoch 1, 2, … (cumulative).
    pub caught_by_epoch: Vec<u64>,
}

/// A run's figures.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Broken invariants.
    pub violations: Vec<String>,
    /// Challenges drawn.
    pub challenges: u64,
    /// Challenges settled.
    pub settled: u64,
    /// Per hoster class (by name).
    pub classes: BTreeMap<String, ClassVerdicts>,
    /// Per attestor class: (members, paid, penalised, outliers, reports refused).
    pub attestors: BTreeMap<&'static str, [u64; 5]>,
    /// Fraud proofs accepted: against hosters, against attestors.
    pub fraud: (u64, u64),
    /// Honest parties penalised (must be 0).
    pub honest_penalised: u64,
    /// Honest hosters failed by a committee whose reports were mostly dishonest.
    pub captured: u64,
    /// Largest share of the agenda's weight budget one block's `on_initialize` used
    /// (ref time, per mille) and of the block's weight everything used.
    pub weight: (u64, u64),
    /// Mean block weight used, per mille of `max_block`.
    pub weight_mean: u64,
    /// Storage (keys, bytes) after set-up and at the end.
    pub storage: ((u64, u64), (u64, u64)),
    /// Blocks produced after set-up.
    pub blocks: u32,
    /// Most transactions left waiting for a later block (the pool's backlog).
    pub backlog: usize,
    /// Blocks the set-up (registrations, publications, confirmations) took.
    pub setup_blocks: u32,
    /// Most reports one block took.
    pub reports_per_block: usize,
    /// Publications refused for a full agenda (and retried the next block).
    pub publish_retries: u64,
    /// Coin flips run / that agreed on `R`.
    pub flips: (u64, u64),
    /// Audits run.
    pub audits: u64,
    /// Wall time: set-up, chain blocks, committees (flips and audits), total.
    pub wall: [Duration; 4],
}

/// `1 − (1 − f)^k`.
pub fn expected_detection(f: f64, k: u32) -> f64 {
    1.0 - (1.0 - f).powi(k as i32)
}

fn split<T: Copy>(n: usize, mix: &[(T, u32)], seed: u64, what: &[u8]) -> Vec<T> {
    let total: u32 = mix.iter().map(|(_, s)| s).sum();
    let mut out = Vec::with_capacity(n);
    for (k, (c, share)) in mix.iter().enumerate() {
        let count = if k + 1 == mix.len() {
            n - out.len()
        } else {
            (n * *share as usize)
                .div_ceil(total as usize)
                .min(n - out.len())
        };
        out.extend(std::iter::repeat_n(*c, count));
    }
    // A seeded shuffle: who is what is not visible from the account numbers.
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::from_seed(blake2b256(&[
        b"sim/classes",
        what,
        &seed.to_le_bytes(),
    ]));
    for i in (1..out.len()).rev() {
        let j = rand::Rng::gen_range(&mut rng, 0..=i);
        out.swap(i, j);
    }
    out
}

/// Set-up calls per block (registrations, then publications).
pub const SETUP_PER_BLOCK: usize = 500;

const PUBLISHER: u64 = 1;
const HOSTER_BASE: u64 = 1_000_000;
const ATTESTOR_BASE: u64 = 2_000_000;

fn seed_of(seed: u64, who: u64, what: &[u8]) -> [u8; 32] {
    blake2b256(&[b"sim/key", what, &seed.to_le_bytes(), &who.to_le_bytes()])
}

fn endpoint(seed: u64, who: u64) -> Endpoint {
    let addr = format!(
        "10.{}.{}.{}:7000",
        (who >> 16) & 255,
        (who >> 8) & 255,
        who & 255
    );
    Endpoint {
        addr: addr.into_bytes().try_into().expect("short"),
        noise_key: *Keypair::from_seed(&seed_of(seed, who, b"noise"))
            .public()
            .as_bytes(),
        signing_key: *Keypair::from_seed(&seed_of(seed, who, b"sign"))
            .public()
            .as_bytes(),
    }
}

fn call(c: pallet_datdot::Call<SimRuntime>) -> RuntimeCall {
    RuntimeCall::Datdot(c)
}

/// Run the network of `cfg`. Deterministic: the same configuration gives the same
/// outcome, whatever the number of threads.
pub fn run(cfg: &Config) -> Outcome {
    let t0 = WallInstant::now();
    let mut out = Outcome::default();
    let unit = datdot_runtime::UNIT;
    let hoster_classes = split(cfg.hosters, &HOSTER_MIX, cfg.seed, b"hosters");
    let attestor_classes = split(cfg.attestors, &ATTESTOR_MIX, cfg.seed, b"attestors");
    let hosters: Vec<u64> = (0..cfg.hosters as u64).map(|i| HOSTER_BASE + i).collect();
    let attestors: Vec<u64> = (0..cfg.attestors as u64)
        .map(|i| ATTESTOR_BASE + i)
        .collect();
    let funded = std::iter::once(PUBLISHER)
        .chain(hosters.iter().copied())
        .chain(attestors.iter().copied());
    let ext = runtime::genesis(funded, 1_000_000_000 * unit, seed_of(cfg.seed, 0, b"salt"));
    let mut chain = Chain::new(ext, cfg.seed);

    // Set-up (block 1, outside the weight figures): registrations and the feeds.
    let content = Content::new(cfg.seed, cfg.feed_length, cfg.block_size);
    let feeds = cfg.hosters / cfg.replicas.max(1) as usize;
    let mut txs: Vec<Tx<Tag>> = Vec::new();
    let min_h = <<Dev as pallet_datdot::Config>::MinHosterStake as Get<u128>>::get();
    let min_a = <<Dev as pallet_datdot::Config>::MinAttestorStake as Get<u128>>::get();
    for &h in &hosters {
        txs.push(Tx {
            who: h,
            call: call(pallet_datdot::Call::register {
                role: Role::Hoster,
                stake: min_h,
                endpoint: endpoint(cfg.seed, h),
                capacity: 2,
            }),
            tag: Tag::Setup,
        });
    }
    for &a in &attestors {
        txs.push(Tx {
            who: a,
            call: call(pallet_datdot::Call::register {
                role: Role::Attestor,
                stake: min_a,
                endpoint: endpoint(cfg.seed, a),
                capacity: 0,
            }),
            tag: Tag::Setup,
        });
    }
    let roots = content.tree.roots();
    let mut feed_keys = Vec::with_capacity(feeds);
    let mut publishes: Vec<RuntimeCall> = Vec::with_capacity(feeds);
    let mut signatures = BTreeMap::new();
    for f in 0..feeds as u64 {
        let sk = SigningKey::from_bytes(&seed_of(cfg.seed, f, b"feed"));
        let key = sk.verifying_key().to_bytes();
        let sig = sk
            .sign(&signable(&tree_hash(&roots), cfg.feed_length, 0))
            .to_bytes();
        let root = SignedTreeRoot {
            length: cfg.feed_length,
            fork: 0,
            roots: roots.clone(),
            signature: Signature(sig),
        };
        let mut w = Writer::new();
        root.encode(&mut w);
        signatures.insert(key, sig);
        feed_keys.push(key);
        publishes.push(call(pallet_datdot::Call::publish {
            key,
            signed_root: w.into_bytes().try_into().expect("small"),
            plan: PlanTerms {
                replicas: cfg.replicas,
                sla: Sla {
                    min_throughput_bps: 1024 * 1024,
                    max_p99_latency_us: 500_000,
                    min_availability_ppm: 1_000_000,
                },
                price_per_period: unit,
                periods: cfg.epochs,
            },
            source: Endpoint {
                addr: b"10.255.255.255:7000".to_vec().try_into().expect("short"),
                noise_key: *Keypair::from_seed(&seed_of(cfg.seed, f, b"source"))
                    .public()
                    .as_bytes(),
                signing_key: key,
            },
        }));
    }
    for (feed, c) in publishes.iter().enumerate() {
        txs.push(Tx {
            who: PUBLISHER,
            call: c.clone(),
            tag: Tag::Publish { feed },
        });
    }
    // Set-up: [`SETUP_PER_BLOCK`] calls a block, outside the weight limits (their cost
    // is the pallet's `publish` draw over every hoster; a real network registers over
    // weeks). Confirmations and everything after go through the pool.
    let mut setup: VecDeque<Tx<Tag>> = txs.into();
    let mut pool: VecDeque<Tx<Tag>> = VecDeque::new();
    let block = chain.block(&mut setup, SETUP_PER_BLOCK, &mut pool);
    let agenda_full: DispatchError = pallet_datdot::Error::<SimRuntime>::AgendaFull.into();
    for (tag, r) in &block.results {
        match (tag, r) {
            // The agenda cannot take the feed's confirmation deadlines in this block:
            // the publisher tries again in the next one.
            (Tag::Publish { feed }, Err(e)) if *e == agenda_full => {
                out.publish_retries += 1;
                setup.push_back(Tx {
                    who: PUBLISHER,
                    call: publishes[*feed].clone(),
                    tag: *tag,
                });
            }
            (_, Err(e)) => out
                .violations
                .push(format!("set-up call {tag:?} failed: {e:?}")),
            _ => {}
        }
    }
    let chain_id = chain.with(Datdot::chain_id);
    let world = World {
        seed: cfg.seed,
        chain: chain_id,
        content,
        signatures,
        hoster_class: hosters
            .iter()
            .copied()
            .zip(hoster_classes.iter().copied())
            .collect(),
        attestor_class: attestors
            .iter()
            .copied()
            .zip(attestor_classes.iter().copied())
            .collect(),
        block_ms: cfg.block_ms,
        samples: <<Dev as pallet_datdot::Config>::AuditSamples as Get<u32>>::get(),
    };
    for (c, n) in &HOSTER_MIX {
        let _ = n;
        out.classes.entry(c.name()).or_default().hosters =
            hoster_classes.iter().filter(|h| *h == c).count();
    }
    for (c, _) in &ATTESTOR_MIX {
        out.attestors.entry(c.name()).or_default()[0] =
            attestor_classes.iter().filter(|a| *a == c).count() as u64;
    }

    // The blocks: hosters confirm what they are assigned, committees do their part.
    let period = <<Dev as pallet_datdot::Config>::ChallengePeriod as Get<u32>>::get();
    let jitter = <<Dev as pallet_datdot::Config>::ChallengeJitter as Get<u32>>::get();
    let duration = <<Dev as pallet_datdot::Config>::ChallengeDuration as Get<u32>>::get();
    let report_window = <<Dev as pallet_datdot::Config>::ReportWindow as Get<u32>>::get();
    let (max_block, agenda) = chain::limits();
    let mut assigned: Vec<(u64, u64)> = Vec::new();
    for e in &block.events {
        if let DatdotEvent::HosterAssigned {
            contract, hoster, ..
        } = e
        {
            assigned.push((*hoster, *contract));
        }
    }
    let mut committees: Vec<Committee> = Vec::new();
    let mut results: BTreeMap<u64, Vec<(Tag, DispatchResult)>> = BTreeMap::new();
    let mut reporters: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut epoch_of: BTreeMap<u64, u32> = BTreeMap::new();
    let mut contract_epochs: BTreeMap<u64, u32> = BTreeMap::new();
    let mut failed_hosters: BTreeMap<u64, u32> = BTreeMap::new();
    let mut audited_corrupt: BTreeSet<u64> = BTreeSet::new();
    let mut convicted: BTreeSet<u64> = BTreeSet::new();
    let mut challenged: BTreeSet<u64> = BTreeSet::new();
    // After the set-up's last block: every contract's epochs, the last window, its
    // reports and accusations.
    let span = cfg.epochs * (period + jitter) + duration + 3 * report_window + 8;
    let mut setup_end: Option<u32> = None;
    let mut setup_max = SETUP_PER_BLOCK;
    let (mut weight_sum, mut weight_blocks) = (0u128, 0u64);
    let mut chain_time = Duration::ZERO;
    let mut committee_time = Duration::ZERO;
    while setup_end.is_none_or(|e| chain.head() < e + span) {
        if setup_end.is_none()
            && assigned.is_empty()
            && setup.is_empty()
            && !pool.iter().any(|t| matches!(t.tag, Tag::Confirm))
        {
            setup_end = Some(chain.head());
            out.setup_blocks = chain.head();
            out.storage.0 = chain.storage_size();
            out.wall[0] = t0.elapsed();
        }
        for (h, c) in assigned.drain(..) {
            pool.push_back(Tx {
                who: h,
                call: call(pallet_datdot::Call::confirm_hosting { contract: c }),
                tag: Tag::Confirm,
            });
        }
        let tc = WallInstant::now();
        let in_setup = !setup.is_empty();
        let block = chain.block(&mut setup, setup_max, &mut pool);
        let n = block.number;
        // A publisher that met a full agenda tries about as many as got in.
        let (mut taken, mut full) = (0, false);
        for (t, r) in &block.results {
            if let Tag::Publish { .. } = t {
                match r {
                    Ok(()) => taken += 1,
                    Err(e) if *e == agenda_full => full = true,
                    Err(_) => {}
                }
            }
        }
        setup_max = if full {
            taken + 1
        } else {
            (setup_max * 2).min(SETUP_PER_BLOCK)
        };
        out.blocks += 1;
        out.backlog = out.backlog.max(pool.len());
        let used = block.init_weight.saturating_add(block.tx_weight);
        if !in_setup {
            out.weight.0 = out
                .weight
                .0
                .max(block.init_weight.ref_time() * 1000 / agenda.ref_time().max(1));
            out.weight.1 = out
                .weight
                .1
                .max(used.ref_time() * 1000 / max_block.ref_time().max(1));
            weight_sum += u128::from(used.ref_time());
            weight_blocks += 1;
        }
        let reports = block
            .results
            .iter()
            .filter(|(t, _)| matches!(t, Tag::Report { .. }))
            .count();
        out.reports_per_block = out.reports_per_block.max(reports);
        for (tag, r) in block.results {
            match tag {
                Tag::Report { challenge, .. } | Tag::Reveal { challenge, .. } => {
                    results.entry(challenge).or_default().push((tag, r));
                }
                Tag::Publish { feed } if r == Err(agenda_full) => {
                    // The agenda cannot take the feed's confirmation deadlines in this
                    // block: the publisher tries again in the next one.
                    out.publish_retries += 1;
                    setup.push_back(Tx {
                        who: PUBLISHER,
                        call: publishes[feed].clone(),
                        tag,
                    });
                }
                Tag::Confirm | Tag::Setup | Tag::Publish { .. } => {
                    if let Err(e) = r {
                        out.violations
                            .push(format!("block {n}: {tag:?} failed: {e:?}"));
                    }
                }
                Tag::Fraud { .. } => {}
            }
        }
        // What the chain says.
        for e in &block.events {
            match e {
                DatdotEvent::HosterAssigned {
                    contract, hoster, ..
                } => {
                    assigned.push((*hoster, *contract));
                }
                DatdotEvent::ChallengeScheduled {
                    challenge,
                    contract,
                    hoster,
                    attestors,
                    start,
                    end,
                    report_deadline,
                    ..
                } => {
                    out.challenges += 1;
                    let e = contract_epochs.entry(*contract).or_default();
                    *e += 1;
                    epoch_of.insert(*challenge, *e);
                    let keys = chain.with(|| {
                        pallet_datdot::Challenges::<SimRuntime>::get(challenge)
                            .map(|c| (c.keys.into_inner(), c.feed_key, c.feed_length))
                    });
                    let Some((keys, feed_key, feed_length)) = keys else {
                        continue;
                    };
                    let class = world.hoster_class.get(hoster).copied();
                    if challenged.insert(*hoster)
                        && let Some(c) = class
                    {
                        out.classes.entry(c.name()).or_default().challenged += 1;
                    }
                    if class == Some(HosterClass::Corrupt)
                        && attestors.iter().any(|a| world.attestor_class[a].honest())
                    {
                        audited_corrupt.insert(*hoster);
                    }
                    committees.push(Committee::new(
                        &world,
                        committee::Notice {
                            challenge: *challenge,
                            hoster: *hoster,
                            seats: attestors.iter().copied().zip(keys).collect(),
                            feed_key,
                            feed_length,
                            start: *start,
                            end: *end,
                            report_deadline: *report_deadline,
                            head: n,
                        },
                    ));
                }
                DatdotEvent::ReportSubmitted {
                    challenge,
                    attestor,
                } => reporters.entry(*challenge).or_default().push(*attestor),
                DatdotEvent::ChallengeSettled {
                    challenge, verdict, ..
                } => {
                    out.settled += 1;
                    let Some(ch) = committees.iter().find(|c| c.id() == *challenge) else {
                        continue;
                    };
                    let hoster = ch.hoster();
                    let class = world.hoster_class[&hoster];
                    let v = out.classes.entry(class.name()).or_default();
                    v.challenges += 1;
                    match verdict {
                        Verdict::Pass => v.passed += 1,
                        Verdict::Fail { .. } => {
                            v.failed += 1;
                            let epoch = epoch_of.get(challenge).copied().unwrap_or(1);
                            let first = failed_hosters.entry(hoster).or_insert(epoch);
                            *first = (*first).min(epoch);
                        }
                        Verdict::Inconclusive => v.inconclusive += 1,
                    }
                    if class.meets_sla() && matches!(verdict, Verdict::Fail { .. }) {
                        let reps = reporters.get(challenge).cloned().unwrap_or_default();
                        let bad = reps
                            .iter()
                            .filter(|a| {
                                matches!(
                                    world.attestor_class[*a],
                                    AttestorClass::Copying | AttestorClass::Lying
                                )
                            })
                            .count();
                        if 2 * bad >= reps.len() {
                            out.captured += 1;
                        } else {
                            out.violations.push(format!(
                                "challenge {challenge}: {} hoster {hoster} failed ({verdict:?}) by an honest majority of {} reports",
                                class.name(),
                                reps.len()
                            ));
                        }
                    }
                }
                DatdotEvent::FraudProven { offender, .. } => {
                    if let Some(c) = world.hoster_class.get(offender) {
                        out.fraud.0 += 1;
                        out.classes.entry(c.name()).or_default().convicted += 1;
                        convicted.insert(*offender);
                        if *c != HosterClass::Corrupt {
                            out.honest_penalised += 1;
                            out.violations
                                .push(format!("{} hoster {offender} convicted", c.name()));
                        }
                    } else if let Some(c) = world.attestor_class.get(offender) {
                        out.fraud.1 += 1;
                        out.attestors.entry(c.name()).or_default()[2] += 1;
                        if c.honest() {
                            out.honest_penalised += 1;
                            out.violations
                                .push(format!("{} attestor {offender} convicted", c.name()));
                        }
                    }
                }
                DatdotEvent::Penalised { who, reason, .. } => {
                    if let Some(c) = world.attestor_class.get(who) {
                        out.attestors.entry(c.name()).or_default()[2] += 1;
                        if c.honest() {
                            out.honest_penalised += 1;
                            out.violations.push(format!(
                                "{} attestor {who} penalised ({reason:?}) at block {n}",
                                c.name()
                            ));
                        }
                    } else if let Some(c) = world.hoster_class.get(who)
                        && c.meets_sla()
                    {
                        out.honest_penalised += 1;
                        out.violations.push(format!(
                            "{} hoster {who} penalised ({reason:?}) at block {n}",
                            c.name()
                        ));
                    }
                }
                DatdotEvent::Rewarded { who, .. } => {
                    if let Some(c) = world.attestor_class.get(who) {
                        out.attestors.entry(c.name()).or_default()[1] += 1;
                    }
                }
                DatdotEvent::OutlierFlagged {
                    challenge,
                    attestor,
                } => {
                    if let Some(c) = world.attestor_class.get(attestor) {
                        out.attestors.entry(c.name()).or_default()[3] += 1;
                        let hoster = committees
                            .iter()
                            .find(|k| k.id() == *challenge)
                            .map(Committee::hoster);
                        if c.honest()
                            && let Some(h) = hoster.and_then(|h| world.hoster_class.get(&h))
                        {
                            out.classes.entry(h.name()).or_default().honest_outliers += 1;
                            out.violations.push(format!(
                                "challenge {challenge}: the report of {} attestor {attestor} on a {} hoster flagged an outlier",
                                c.name(),
                                h.name()
                            ));
                        }
                    }
                }
                DatdotEvent::Suspended { who } => {
                    if let Some(c) = world.hoster_class.get(who)
                        && c.meets_sla()
                        && !out.violations.iter().any(|v| v.contains(&who.to_string()))
                    {
                        out.violations
                            .push(format!("{} hoster {who} suspended", c.name()));
                    }
                }
                _ => {}
            }
        }
        // Views for the seats that asked to read their challenge.
        let views: Vec<Option<pallet_datdot::ChallengeOf<SimRuntime>>> = chain.with(|| {
            committees
                .iter()
                .map(|c| {
                    c.wants_view()
                        .then(|| pallet_datdot::Challenges::<SimRuntime>::get(c.id()))
                        .flatten()
                })
                .collect()
        });
        chain_time += tc.elapsed();

        // The committees' part of this block, in parallel.
        let tw = WallInstant::now();
        let mut inputs: Vec<StepIn> = committees
            .drain(..)
            .zip(views)
            .map(|(c, v)| {
                let r = results.remove(&c.id()).unwrap_or_default();
                (c, v, r)
            })
            .collect();
        let threads = cfg.threads.max(1);
        let chunk = inputs.len().div_ceil(threads).max(1);
        let world_ref = &world;
        let outputs: Vec<Vec<committee::StepOut>> = std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .chunks_mut(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter_mut()
                            .map(|(c, v, r)| c.step(world_ref, n, v.take(), std::mem::take(r)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a committee step panicked"))
                .collect()
        });
        for (o, (c, _, _)) in outputs.into_iter().flatten().zip(inputs) {
            pool.extend(o.txs);
            out.flips.0 += o.flips.0;
            out.flips.1 += o.flips.1;
            out.audits += o.audits;
            for (seat, summary) in o.reports {
                let class = world.hoster_class[&c.hoster()];
                if let HosterClass::Lossy(_) = class
                    && world.attestor_class[&seat].honest()
                    && summary.conclusive()
                {
                    let v = out.classes.entry(class.name()).or_default();
                    v.reports += 1;
                    v.saw_missing += u64::from(summary.lacks_data > 0);
                }
            }
            for (seat, why) in o.refused {
                let class = world.attestor_class[&seat];
                out.attestors.entry(class.name()).or_default()[4] += 1;
                if class.honest() {
                    out.violations.push(format!(
                        "challenge {}: the report of {} attestor {seat} was refused: {why}",
                        c.id(),
                        class.name()
                    ));
                }
            }
            if !c.is_done() {
                committees.push(c);
            }
        }
        committee_time += tw.elapsed();
    }
    // Every challenge drawn was settled.
    if out.settled != out.challenges {
        out.violations.push(format!(
            "{} challenges drawn, {} settled by block {}",
            out.challenges,
            out.settled,
            chain.head()
        ));
    }
    // Members see a loss as often as sampling says (4σ: a seeded run is a fair draw).
    let k = world.samples.min(cfg.feed_length as u32);
    for (c, _) in &HOSTER_MIX {
        let HosterClass::Lossy(ppm) = c else { continue };
        let v = &out.classes[&c.name()];
        if v.reports < 30 {
            continue;
        }
        let p = expected_detection(f64::from(*ppm) / 1e6, k);
        let n = v.reports as f64;
        let measured = v.saw_missing as f64 / n;
        if (measured - p).abs() > 4.0 * (p * (1.0 - p) / n).sqrt() + 1e-9 {
            out.violations.push(format!(
                "{}: members saw a loss in {measured:.4} of {n} reports, sampling says {p:.4}",
                c.name()
            ));
        }
    }
    for h in &audited_corrupt {
        if !convicted.contains(h) {
            out.violations.push(format!(
                "corrupt hoster {h}, audited by an honest member, never convicted"
            ));
        }
    }
    for (h, epoch) in failed_hosters {
        let class = world.hoster_class[&h];
        let v = out.classes.entry(class.name()).or_default();
        v.caught_by_epoch.resize(cfg.epochs as usize, 0);
        for e in (epoch.max(1) as usize - 1)..cfg.epochs as usize {
            v.caught_by_epoch[e] += 1;
        }
    }
    out.weight_mean = (weight_sum * 1000
        / u128::from(max_block.ref_time().max(1))
        / u128::from(weight_blocks.max(1))) as u64;
    out.storage.1 = chain.storage_size();
    out.wall[1] = chain_time;
    out.wall[2] = committee_time;
    out.wall[3] = t0.elapsed();
    out
}

/// The run's table.
pub fn table(cfg: &Config, o: &Outcome) -> String {
    let mut s = String::new();
    let k = <<Dev as pallet_datdot::Config>::AuditSamples as Get<u32>>::get()
        .min(cfg.feed_length as u32);
    let _ = writeln!(
        s,
        "network: {} hosters, {} attestors, {} epoch(s), {} replicas per feed, feeds of {} blocks of {} B, seed {:#x}",
        cfg.hosters,
        cfg.attestors,
        cfg.epochs,
        cfg.replicas,
        cfg.feed_length,
        cfg.block_size,
        cfg.seed
    );
    let _ = writeln!(
        s,
        "challenges drawn {}, settled {}; coin flips {} ({} agreed on R); audits {}",
        o.challenges, o.settled, o.flips.0, o.flips.1, o.audits
    );
    let _ = writeln!(s, "\nverdicts by hoster class");
    let _ = writeln!(
        s,
        "{:<22} {:>7} {:>10} {:>7} {:>7} {:>7} {:>9} {:>15}",
        "class", "hosters", "challenges", "pass", "fail", "incon.", "convicted", "honest outliers"
    );
    for (name, v) in &o.classes {
        let _ = writeln!(
            s,
            "{:<22} {:>7} {:>10} {:>7} {:>7} {:>7} {:>9} {:>15}",
            name,
            v.hosters,
            v.challenges,
            v.passed,
            v.failed,
            v.inconclusive,
            v.convicted,
            v.honest_outliers
        );
    }
    let _ = writeln!(
        s,
        "\ndetection of lost blocks (k = {k} samples per member; ±3σ is the sampling error)"
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>10} {:>13} {:>9} {:>14} challenged hosters failed by epoch 1..E",
        "f", "reports", "saw a loss", "1-(1-f)^k", "±3σ", "verdict: fail"
    );
    for (name, v) in &o.classes {
        let Some(f) = name
            .strip_prefix("lossy ")
            .and_then(|p| p.trim_end_matches('%').parse::<f64>().ok())
        else {
            continue;
        };
        let f = f / 100.0;
        let p = expected_detection(f, k);
        let n = v.reports.max(1) as f64;
        let sigma = 3.0 * (p * (1.0 - p) / n).sqrt();
        let measured = v.saw_missing as f64 / n;
        let caught: Vec<String> = v
            .caught_by_epoch
            .iter()
            .map(|c| format!("{c}/{}", v.challenged))
            .collect();
        let _ = writeln!(
            s,
            "{:<10} {:>8} {:>10.4} {:>13.4} {:>9.4} {:>9}/{:<4} {}{}",
            format!("{:.0}%", f * 100.0),
            v.reports,
            measured,
            p,
            sigma,
            v.failed,
            v.challenges,
            caught.join(" "),
            if (measured - p).abs() > sigma + 1e-9 {
                "  <- outside 3σ"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(s, "\nattestors by class");
    let _ = writeln!(
        s,
        "{:<13} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "class", "members", "payments", "penalties", "outliers", "refused"
    );
    for (name, a) in &o.attestors {
        let _ = writeln!(
            s,
            "{:<13} {:>7} {:>9} {:>9} {:>9} {:>8}",
            name, a[0], a[1], a[2], a[3], a[4]
        );
    }
    let _ = writeln!(
        s,
        "\nhonest parties penalised: {} (must be 0); honest hosters failed by a mostly dishonest committee: {}",
        o.honest_penalised, o.captured
    );
    let _ = writeln!(
        s,
        "fraud proofs accepted: {} against hosters, {} against attestors",
        o.fraud.0, o.fraud.1
    );
    let _ = writeln!(
        s,
        "weight: on_initialize at most {:.1}% of the agenda's budget; a block at most {:.1}% of max_block, {:.2}% on average ({} blocks)",
        o.weight.0 as f64 / 10.0,
        o.weight.1 as f64 / 10.0,
        o.weight_mean as f64 / 10.0,
        o.blocks
    );
    let _ = writeln!(
        s,
        "transaction pool: at most {} transactions waiting for a block; at most {} reports in one block (challenges started per block at most {}); set-up (registrations, publications, confirmations) took {} blocks ({} publications retried for a full agenda)",
        o.backlog,
        o.reports_per_block,
        pallet_datdot::Pallet::<SimRuntime>::max_starts_per_block(),
        o.setup_blocks,
        o.publish_retries
    );
    let _ = writeln!(
        s,
        "storage: {} keys / {:.1} KiB after set-up, {} keys / {:.1} KiB at the end (+{:.1} KiB)",
        o.storage.0.0,
        o.storage.0.1 as f64 / 1024.0,
        o.storage.1.0,
        o.storage.1.1 as f64 / 1024.0,
        (o.storage.1.1 as f64 - o.storage.0.1 as f64) / 1024.0
    );
    let _ = writeln!(
        s,
        "wall time: {:.1} s (set-up {:.1} s, chain blocks {:.1} s, committees {:.1} s)",
        o.wall[3].as_secs_f64(),
        o.wall[0].as_secs_f64(),
        o.wall[1].as_secs_f64(),
        o.wall[2].as_secs_f64()
    );
    s
}
