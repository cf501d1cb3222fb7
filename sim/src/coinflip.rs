//! Coin-flip scenario: a committee of honest and byzantine members over the simulated
//! network, and the invariants every run must satisfy.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use datdot_protocol::coinflip::byzantine::Behaviour;
use datdot_protocol::coinflip::byzantine::Byzantine;
use datdot_protocol::coinflip::{
    CoinFlip, Config, Event, Msg, Outcome, RoundExit, SignedCommit, SignedReveal,
};
use datdot_protocol::fraud::{FraudKind, FraudProof};
use datdot_protocol::identity::{Keypair, PublicKey};
use datdot_protocol::time::Instant;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::net::{NetConfig, NetStats, Network, Partition};
use crate::verifier::SharedVerifier;

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Committee size.
    pub members: usize,
    /// Byzantine members: index and behaviour.
    pub byzantine: Vec<(usize, Behaviour)>,
    /// Network faults.
    pub net: NetConfig,
    /// Coin-flip timers etc. (`session` and `committee` are filled in per run).
    pub confirm: bool,
    /// Per-phase timeout.
    pub phase_timeout: Duration,
    /// Round limit.
    pub max_rounds: u32,
    /// Give up (and report a hang) after this much virtual time.
    pub time_limit: Duration,
}

impl Scenario {
    /// `members` honest members on a default network.
    pub fn honest(members: usize) -> Self {
        Scenario {
            members,
            byzantine: Vec::new(),
            net: NetConfig::default(),
            confirm: true,
            phase_timeout: Duration::from_secs(2),
            max_rounds: 4,
            time_limit: Duration::from_secs(600),
        }
    }

    /// A scenario drawn from `seed`: `fraction` of the members byzantine, each with a
    /// behaviour from `kinds` (all the same kind when `kinds` has one entry), and
    /// optionally an unreliable network (loss, duplicates, one healing partition).
    pub fn random(
        seed: u64,
        members: usize,
        fraction: f64,
        kinds: &[Behaviour],
        unreliable: bool,
    ) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5ce9_a210);
        let mut s = Scenario::honest(members);
        let count = ((members as f64) * fraction).round() as usize;
        let mut picked = BTreeSet::new();
        while picked.len() < count.min(members) {
            picked.insert(rng.gen_range(0..members));
        }
        s.byzantine = picked
            .into_iter()
            .map(|i| (i, kinds[rng.gen_range(0..kinds.len())]))
            .collect();
        s.confirm = rng.gen_bool(0.8);
        let max_ms = rng.gen_range(5..200);
        s.net.max_delay = Duration::from_millis(max_ms);
        if unreliable {
            s.net.loss = rng.gen_range(0.0..0.02);
            s.net.duplicate = rng.gen_range(0.0..0.05);
            let from = Instant(rng.gen_range(0..3_000_000));
            let until = from + Duration::from_millis(rng.gen_range(100..5000));
            s.net.partitions.push(Partition {
                from,
                until,
                side: (0..members).map(|_| rng.gen_bool(0.3)).collect(),
            });
        }
        s
    }

    fn behaviour(&self, i: usize) -> Option<Behaviour> {
        self.byzantine
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, b)| *b)
    }
}

/// What happened to one member.
#[derive(Clone, Debug)]
pub struct MemberResult {
    /// Its key.
    pub key: PublicKey,
    /// Its byzantine behaviour, if any.
    pub behaviour: Option<Behaviour>,
    /// Its final outcome, if it finished.
    pub outcome: Option<Outcome>,
    /// When it finished (virtual time).
    pub finished_at: Option<Instant>,
    /// Every event it emitted.
    pub events: Vec<Event>,
    /// Its signing key's seed.
    pub seed: [u8; 32],
    /// Its coin-flip entropy (its round secrets derive from it).
    pub entropy: [u8; 32],
    /// The reveals it sent (after any tampering), one per round.
    pub reveals: Vec<SignedReveal>,
}

impl MemberResult {
    /// The signed commits of the members every offline round of its flip named (what
    /// its report accuses).
    pub fn accused(&self) -> Vec<SignedCommit> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RoundEnded {
                    exit: RoundExit::Offline { withheld, .. },
                    ..
                } => Some(withheld.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The last round that ended (0 if none did).
    pub fn last_round(&self) -> u32 {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RoundEnded { round, .. } => Some(*round),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// Per member.
    pub members: Vec<MemberResult>,
    /// Network counters.
    pub net: NetStats,
    /// Virtual time when the run went idle or hit the limit.
    pub ended_at: Instant,
    /// Distinct signatures verified.
    pub signatures: usize,
}

impl RunResult {
    /// Honest members' results.
    pub fn honest(&self) -> impl Iterator<Item = &MemberResult> {
        self.members.iter().filter(|m| m.behaviour.is_none())
    }
}

/// The coin-flip session of run `seed`.
pub fn session_of(seed: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(b"sim-sess");
    s
}

/// Run one coin flip with `seed`. Deterministic: same scenario and seed, same result.
pub fn run(sc: &Scenario, seed: u64) -> RunResult {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = sc.members;
    let seeds: Vec<[u8; 32]> = (0..n)
        .map(|_| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        })
        .collect();
    let members: Vec<FlipMember> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut entropy = [0u8; 32];
            rng.fill_bytes(&mut entropy);
            FlipMember {
                seed: *s,
                entropy,
                behaviour: sc.behaviour(i),
            }
        })
        .collect();
    let keys: Vec<PublicKey> = seeds
        .iter()
        .map(|s| Keypair::from_seed(s).public())
        .collect();
    let mut cfg = Config::new(session_of(seed), keys);
    cfg.confirm = sc.confirm;
    cfg.commit_timeout = sc.phase_timeout;
    cfg.reveal_timeout = sc.phase_timeout;
    cfg.confirm_timeout = sc.phase_timeout;
    cfg.max_rounds = sc.max_rounds;
    let f = flip(
        &cfg,
        &members,
        &sc.net,
        Instant::ZERO,
        sc.time_limit,
        &mut rng,
    );
    RunResult {
        seed,
        members: f.members,
        net: f.net,
        ended_at: f.ended_at,
        signatures: f.signatures,
    }
}

/// One member of a [`flip`]: its signing key's seed, its entropy, how it misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlipMember {
    /// Its signing key's seed.
    pub seed: [u8; 32],
    /// Its coin-flip entropy.
    pub entropy: [u8; 32],
    /// Its byzantine behaviour, if any.
    pub behaviour: Option<Behaviour>,
}

/// What a [`flip`] did.
#[derive(Clone, Debug)]
pub struct Flip {
    /// Per member, in committee order.
    pub members: Vec<MemberResult>,
    /// Network counters.
    pub net: NetStats,
    /// Virtual time when it went idle or hit the limit.
    pub ended_at: Instant,
    /// Distinct signatures verified.
    pub signatures: usize,
}

/// Run the coin flip of `cfg` (committee in `cfg.committee`, one [`FlipMember`] each,
/// in order) over a network with `net`'s faults, from `start` for at most `time_limit`.
pub fn flip(
    cfg: &Config,
    members: &[FlipMember],
    net_cfg: &NetConfig,
    start: Instant,
    time_limit: Duration,
    rng: &mut ChaCha20Rng,
) -> Flip {
    let n = members.len();
    let keys = cfg.committee.clone();
    let index: HashMap<[u8; 32], usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k.as_bytes(), i))
        .collect();
    let verifier = SharedVerifier::default();
    let mut nodes: Vec<CoinFlip<SharedVerifier>> = Vec::with_capacity(n);
    let mut byz: Vec<Option<Byzantine>> = Vec::with_capacity(n);
    for m in members {
        let node = CoinFlip::new(
            cfg.clone(),
            Keypair::from_seed(&m.seed),
            m.entropy,
            verifier.clone(),
            start,
        )
        .expect("simulated committees are valid by construction");
        nodes.push(node);
        byz.push(
            m.behaviour
                .map(|kind| Byzantine::new(kind, Keypair::from_seed(&m.seed))),
        );
    }
    let mut results: Vec<MemberResult> = members
        .iter()
        .zip(&keys)
        .map(|(m, k)| MemberResult {
            key: *k,
            behaviour: m.behaviour,
            outcome: None,
            finished_at: None,
            events: Vec::new(),
            seed: m.seed,
            entropy: m.entropy,
            reveals: Vec::new(),
        })
        .collect();
    let mut net: Network<Arc<Msg>> = Network::new(net_cfg.clone());
    let limit = start + time_limit;
    let mut now = start;

    // Drain every node's transmits and events.
    let flush = |i: usize,
                 now: Instant,
                 nodes: &mut Vec<CoinFlip<SharedVerifier>>,
                 byz: &mut Vec<Option<Byzantine>>,
                 results: &mut Vec<MemberResult>,
                 net: &mut Network<Arc<Msg>>,
                 rng: &mut ChaCha20Rng| {
        while let Some(t) = nodes[i].poll_transmit() {
            let Some(&to) = index.get(t.to.as_bytes()) else {
                continue;
            };
            let msg = match &mut byz[i] {
                Some(b) => match b.tamper(rng, to, t.msg) {
                    Some(m) => m,
                    None => continue,
                },
                None => t.msg,
            };
            if let Msg::Reveal(r) = &*msg
                && !results[i].reveals.contains(r)
            {
                results[i].reveals.push(r.clone());
            }
            net.send(rng, now, i, to, msg);
        }
        while let Some(e) = nodes[i].poll_event() {
            if let Event::Finished(o) = &e {
                results[i].outcome = Some(o.clone());
                results[i].finished_at = Some(now);
            }
            results[i].events.push(e);
        }
    };
    for i in 0..n {
        flush(i, now, &mut nodes, &mut byz, &mut results, &mut net, rng);
    }
    loop {
        let next_timer = nodes.iter().filter_map(|n| n.poll_timeout()).min();
        let next = match (net.next_at(), next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        if next > limit {
            break;
        }
        now = now.max(next);
        while let Some((from, to, msg)) = net.pop_due(now) {
            if matches!(
                byz[to].as_ref().map(|b| b.behaviour()),
                Some(Behaviour::Offline)
            ) {
                continue;
            }
            nodes[to].handle_message(now, &keys[from], &msg);
            flush(to, now, &mut nodes, &mut byz, &mut results, &mut net, rng);
        }
        for i in 0..n {
            if nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                nodes[i].handle_timeout(now);
                flush(i, now, &mut nodes, &mut byz, &mut results, &mut net, rng);
            }
        }
    }
    Flip {
        members: results,
        net: net.stats,
        ended_at: now,
        signatures: verifier.distinct(),
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// Check the invariants of one run:
///
/// Always (safety):
/// 1. every honest member finishes (no hang within the time limit);
/// 2. honest members that succeed in the same round hold the same `R`, and their
///    transcripts verify to it;
/// 3. every fraud proof any honest member emits verifies, and never names an honest
///    member.
///
/// On a reliable network (no loss, no partition), additionally (liveness, exact exits):
/// 4. all honest members end with the same kind of outcome and, on success, the same `R`;
/// 5. an *offline* exit names only byzantine members, and at least one unprovable one
///    (withholder or silent) is among the byzantine;
/// 6. with only provable faults (equivocate, bad reveal, divergent), every honest member
///    succeeds, and every equivocator and bad revealer is named by a fraud proof at every
///    honest member (divergent members by someone, when confirmation is on);
/// 7. with no byzantine member, every honest member succeeds in round 0 and no fraud is raised.
pub fn check(sc: &Scenario, r: &RunResult) -> Vec<Violation> {
    let mut v = Vec::new();
    // Real ed25519, once per distinct signature (honest members share transcripts).
    let verifier = SharedVerifier::default();
    let honest_keys: BTreeSet<PublicKey> = r.honest().map(|m| m.key).collect();
    let mut results: HashMap<u32, [u8; 32]> = HashMap::new();
    for (i, m) in r.members.iter().enumerate() {
        if m.behaviour.is_some() {
            continue;
        }
        match &m.outcome {
            None => v.push(Violation(format!("honest member {i} never finished"))),
            Some(Outcome::Success {
                round,
                result,
                transcript,
            }) => {
                if transcript.verify(&verifier).ok() != Some(*result) {
                    v.push(Violation(format!(
                        "member {i}: transcript does not give its R"
                    )));
                }
                if results
                    .insert(*round, *result)
                    .is_some_and(|prev| prev != *result)
                {
                    v.push(Violation(format!(
                        "round {round}: honest members disagree on R"
                    )));
                }
            }
            Some(_) => {}
        }
        for e in &m.events {
            if let Event::Fraud { proof, .. } = e {
                match proof.verify(&verifier) {
                    Ok(verdict) if honest_keys.contains(&verdict.offender) => v.push(Violation(
                        format!("member {i} blamed honest {:?}", verdict.offender),
                    )),
                    Ok(_) => {}
                    Err(err) => v.push(Violation(format!("member {i} emitted a bad proof: {err}"))),
                }
            }
        }
    }
    if !sc.net.reliable() {
        return v;
    }
    // 4: one outcome kind, one R.
    let kinds: BTreeSet<&'static str> = r
        .honest()
        .filter_map(|m| m.outcome.as_ref())
        .map(|o| match o {
            Outcome::Success { .. } => "success",
            Outcome::Offline { .. } => "offline",
            Outcome::Malicious { .. } => "malicious",
        })
        .collect();
    if kinds.len() > 1 {
        v.push(Violation(format!(
            "honest members disagree on the exit: {kinds:?}"
        )));
    }
    let rs: BTreeSet<[u8; 32]> = r
        .honest()
        .filter_map(|m| match &m.outcome {
            Some(Outcome::Success { result, .. }) => Some(*result),
            _ => None,
        })
        .collect();
    if rs.len() > 1 {
        v.push(Violation(format!(
            "honest members hold {} different R",
            rs.len()
        )));
    }
    let unprovable = sc.byzantine.iter().any(|(_, b)| !b.provable());
    // 5: offline exits blame only byzantine members.
    for (i, m) in r.members.iter().enumerate() {
        if let (None, Some(Outcome::Offline { unresponsive, .. })) = (m.behaviour, &m.outcome) {
            if unresponsive.is_empty() || unresponsive.iter().any(|k| honest_keys.contains(k)) {
                v.push(Violation(format!(
                    "member {i}: offline exit names {} members, some honest or none",
                    unresponsive.len()
                )));
            }
            if !unprovable {
                v.push(Violation(format!(
                    "member {i}: offline without an unresponsive member"
                )));
            }
        }
    }
    // 6 and 7.
    let removable = sc.byzantine.len();
    let honest_count = sc.members - removable;
    if !unprovable && honest_count >= 3 {
        for (i, m) in r.members.iter().enumerate() {
            if m.behaviour.is_some() {
                continue;
            }
            if !matches!(m.outcome, Some(Outcome::Success { .. })) {
                v.push(Violation(format!(
                    "member {i}: only provable faults, yet {:?}",
                    m.outcome.as_ref().map(outcome_name)
                )));
                continue;
            }
            let named: BTreeSet<PublicKey> = m
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Fraud { verdict, .. } => Some(verdict.offender),
                    _ => None,
                })
                .collect();
            for (j, b) in &sc.byzantine {
                let must = match b {
                    Behaviour::Equivocate | Behaviour::BadReveal => true,
                    Behaviour::Divergent => false, // proven only if its ping reached us first
                    _ => false,
                };
                if must && !named.contains(&r.members[*j].key) {
                    v.push(Violation(format!(
                        "member {i}: no fraud proof against {} member {j}",
                        b.name()
                    )));
                }
            }
        }
    }
    if sc.byzantine.is_empty() {
        for (i, m) in r.members.iter().enumerate() {
            if m.events.iter().any(|e| matches!(e, Event::Fraud { .. })) {
                v.push(Violation(format!(
                    "member {i}: fraud raised in an honest run"
                )));
            }
        }
    }
    // Divergent confirmations must be proven by someone when confirmation is on.
    if sc.confirm {
        for (j, b) in &sc.byzantine {
            if *b != Behaviour::Divergent || unprovable {
                continue;
            }
            let key = r.members[*j].key;
            let proven = r.honest().any(|m| {
                m.events.iter().any(|e| {
                    matches!(e, Event::Fraud { verdict, .. }
                        if verdict.offender == key && verdict.kind == FraudKind::Divergent)
                })
            });
            if !proven {
                v.push(Violation(format!("divergent member {j} was never proven")));
            }
        }
    }
    v
}

/// Short name of an outcome.
pub fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success { .. } => "success",
        Outcome::Offline { .. } => "offline",
        Outcome::Malicious { .. } => "malicious",
    }
}

/// The fraud proofs detected by honest members (what they would submit to the chain),
/// deduplicated by offender and kind.
pub fn detected_proofs(r: &RunResult) -> Vec<(FraudKind, PublicKey, FraudProof)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in r.honest() {
        for e in &m.events {
            if let Event::Fraud {
                proof,
                verdict,
                detected_here: true,
            } = e
                && seen.insert((verdict.offender, format!("{:?}", verdict.kind)))
            {
                out.push((verdict.kind, verdict.offender, (**proof).clone()));
            }
        }
    }
    out
}
