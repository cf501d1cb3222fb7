//! The coin-flip driver: pumps one member's sans-IO [`CoinFlip`] over a swarm
//! [`Session`] — messages in with the transport-authenticated sender, transmits out to
//! the named member, timers from `poll_timeout` on the tokio clock — until it finishes.
//! Every round is bounded by the machine's own timeouts and retry limits, so the
//! driver needs no deadline of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datdot_protocol::coinflip::{CoinFlip, Event, Msg, Outcome, RoundExit, SignedReveal, Stats};
use datdot_protocol::fraud::{FraudProof, Verdict};
use datdot_protocol::identity::PublicKey;
use datdot_protocol::time::Instant;
use tracing::{debug, info};

use crate::swarm::Session;

/// A test-only byzantine behaviour (feature `byzantine`); uninhabited otherwise, so a
/// shipped build cannot tamper.
#[cfg(feature = "byzantine")]
pub type Tamper = datdot_protocol::coinflip::byzantine::Byzantine;
/// A test-only byzantine behaviour (feature `byzantine`); uninhabited in this build.
#[cfg(not(feature = "byzantine"))]
#[derive(Debug)]
pub enum Tamper {}

/// A fraud proof the coin flip produced or received.
#[derive(Clone, Debug)]
pub struct Fraud {
    /// The evidence.
    pub proof: FraudProof,
    /// What it proves.
    pub verdict: Verdict,
    /// Found by this member (rather than sent by a peer).
    pub detected_here: bool,
}

/// How the coin flip went.
#[derive(Clone, Debug)]
pub struct FlipReport {
    /// The final outcome.
    pub outcome: Outcome,
    /// Every verified fraud proof, in the order seen.
    pub fraud: Vec<Fraud>,
    /// Our own signed reveals by round (published on chain if we are accused).
    pub reveals: BTreeMap<u32, SignedReveal>,
    /// From start to the final outcome.
    pub elapsed: Duration,
    /// From start to the successful round's `R`, if any.
    pub to_result: Option<Duration>,
    /// Rounds that ended, and how.
    pub rounds: Vec<(u32, &'static str)>,
    /// The machine's counters.
    pub stats: Stats,
}

fn exit_name(e: &RoundExit) -> &'static str {
    match e {
        RoundExit::Success(_) => "success",
        RoundExit::Offline { .. } => "offline",
        RoundExit::Malicious(_) => "malicious",
    }
}

/// Microseconds since `epoch` as a protocol instant.
pub fn instant(epoch: std::time::Instant) -> Instant {
    Instant(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// Run `cf` (created at `instant(epoch)`) to the end over `session`. `committee` is the
/// coin flip's member list (signing keys, committee order) — the session's member
/// indices are the same — and `me` our signing key. `on_fraud` sees each fraud proof as soon as it is verified
/// (the attestor submits those it detected to the chain right away).
pub async fn run(
    session: &mut Session,
    mut cf: CoinFlip,
    committee: &[PublicKey],
    me: PublicKey,
    epoch: std::time::Instant,
    mut tamper: Option<Tamper>,
    mut on_fraud: impl FnMut(&Fraud),
) -> FlipReport {
    let started = epoch.elapsed();
    let index: BTreeMap<[u8; 32], usize> = committee
        .iter()
        .enumerate()
        .map(|(i, k)| (*k.as_bytes(), i))
        .collect();
    let mut report = FlipReport {
        outcome: Outcome::Malicious { proofs: Vec::new() },
        fraud: Vec::new(),
        reveals: BTreeMap::new(),
        elapsed: Duration::ZERO,
        to_result: None,
        rounds: Vec::new(),
        stats: Stats::default(),
    };
    let mut rng = rand::rngs::OsRng;
    loop {
        while let Some(t) = cf.poll_transmit() {
            let Some(&to) = index.get(t.to.as_bytes()) else {
                continue;
            };
            let mut msg = t.msg;
            if let Msg::Reveal(r) = msg.as_ref()
                && r.signer == me
            {
                report.reveals.insert(r.round, r.clone());
            }
            if let Some(b) = tamper.as_mut() {
                match tamper_msg(b, &mut rng, to, msg) {
                    Some(m) => msg = m,
                    None => continue,
                }
            }
            session.send(to, msg);
        }
        while let Some(e) = cf.poll_event() {
            match e {
                Event::Fraud {
                    proof,
                    verdict,
                    detected_here,
                } => {
                    let f = Fraud {
                        proof: *proof,
                        verdict,
                        detected_here,
                    };
                    info!(kind = ?f.verdict.kind, detected_here, "coin-flip fraud proof");
                    on_fraud(&f);
                    report.fraud.push(f);
                }
                Event::RoundEnded { round, exit } => {
                    debug!(round, exit = exit_name(&exit), "coin-flip round ended");
                    if matches!(exit, RoundExit::Success(_)) && report.to_result.is_none() {
                        report.to_result = Some(epoch.elapsed().saturating_sub(started));
                    }
                    report.rounds.push((round, exit_name(&exit)));
                }
                Event::Finished(o) => report.outcome = o,
            }
        }
        if cf.is_finished() {
            break;
        }
        let wake = cf
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(epoch + Duration::from_micros(t.as_micros())));
        tokio::select! {
            m = session.recv() => match m {
                Some((from, msg)) => {
                    if let Some(k) = committee.get(from) {
                        cf.handle_message(instant(epoch), k, &msg);
                    }
                }
                // The session cannot end while we hold it; treat as time passing.
                None => cf.handle_timeout(instant(epoch)),
            },
            _ = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => futures::future::pending().await,
                }
            } => cf.handle_timeout(instant(epoch)),
        }
    }
    report.elapsed = epoch.elapsed().saturating_sub(started);
    report.stats = cf.stats();
    report
}

#[cfg(feature = "byzantine")]
fn tamper_msg(
    b: &mut Tamper,
    rng: &mut rand::rngs::OsRng,
    to: usize,
    msg: Arc<Msg>,
) -> Option<Arc<Msg>> {
    b.tamper(rng, to, msg)
}

#[cfg(not(feature = "byzantine"))]
fn tamper_msg(
    b: &mut Tamper,
    _rng: &mut rand::rngs::OsRng,
    _to: usize,
    _msg: Arc<Msg>,
) -> Option<Arc<Msg>> {
    match *b {}
}
