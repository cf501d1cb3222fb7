//! The coin-flip driver: pumps one member's sans-IO [`CoinFlip`] over a swarm
//! [`Session`] — messages in with the transport-authenticated sender, transmits out to
//! the named member, timers from `poll_timeout` on the tokio clock — until it finishes.
//! Every round is bounded by the machine's own timeouts and retry limits, so the
//! driver needs no deadline of its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use datdot_protocol::coinflip::{CoinFlip, Event, Msg, Outcome, RoundExit, SignedReveal};
use datdot_protocol::fraud::{FraudProof, Verdict};
use datdot_protocol::identity::PublicKey;
use datdot_protocol::time::Instant;
use tracing::{debug, info};

use datdot_net::swarm::Session;

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
    /// From start to the final outcome (every peer confirmed `R`, or a round limit).
    pub elapsed: Duration,
    /// From start to the successful round's `R`, if any.
    pub to_result: Option<Duration>,
    /// Rounds that ended, and how.
    pub rounds: Vec<(u32, &'static str)>,
    /// The signed commits of the members named by every round that ended offline (our
    /// withholding accusations, each naming its round).
    pub withheld: Vec<datdot_protocol::coinflip::SignedCommit>,
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

/// Run `cf` (created at `instant(epoch)`) over `session` until its outcome is known;
/// `committee` is the coin flip's member list (signing keys, committee order) — the
/// session's member indices are the same — and `me` our signing key. `on_fraud` sees
/// each fraud proof as soon as it is verified (the attestor submits those it detected to
/// the chain right away).
///
/// The outcome is known once every peer confirmed `R` (or a round limit is hit); the
/// machine then keeps answering peers that still lack reveals until its confirmation
/// deadline. That tail runs in a task of its own, which then keeps the links up for
/// [`LINGER`] so our last messages leave, and closes the session: the caller goes on
/// at once.
pub async fn run(
    session: Session,
    cf: CoinFlip,
    committee: Vec<PublicKey>,
    me: PublicKey,
    epoch: std::time::Instant,
    tamper: Option<Tamper>,
    on_fraud: impl FnMut(&Fraud) + Send + 'static,
) -> FlipReport {
    let index: BTreeMap<[u8; 32], usize> = committee
        .iter()
        .enumerate()
        .map(|(i, k)| (*k.as_bytes(), i))
        .collect();
    let mut p = Pump {
        session,
        cf,
        committee,
        index,
        me,
        epoch,
        tamper,
        on_fraud,
        open: true,
        started: epoch.elapsed(),
        report: FlipReport {
            outcome: Outcome::Malicious { proofs: Vec::new() },
            fraud: Vec::new(),
            reveals: BTreeMap::new(),
            elapsed: Duration::ZERO,
            to_result: None,
            rounds: Vec::new(),
            withheld: Vec::new(),
        },
        finished: false,
    };
    while !p.finished && p.pump() {
        p.wait().await;
    }
    p.report.elapsed = epoch.elapsed().saturating_sub(p.started);
    let report = p.report.clone();
    tokio::spawn(async move {
        while p.pump() {
            p.wait().await;
        }
        tokio::time::sleep(LINGER).await;
        drop(p);
    });
    report
}

/// How long a finished coin flip's links stay up so peers get our last messages.
pub const LINGER: Duration = Duration::from_secs(3);

struct Pump<F> {
    session: Session,
    cf: CoinFlip,
    committee: Vec<PublicKey>,
    index: BTreeMap<[u8; 32], usize>,
    me: PublicKey,
    epoch: std::time::Instant,
    tamper: Option<Tamper>,
    on_fraud: F,
    /// The session can still deliver messages.
    open: bool,
    started: Duration,
    report: FlipReport,
    /// The outcome is known.
    finished: bool,
}

impl<F: FnMut(&Fraud)> Pump<F> {
    /// Send what the machine queued and take its events; `false` once nothing more
    /// will happen.
    fn pump(&mut self) -> bool {
        let mut rng = rand::rngs::OsRng;
        #[cfg(feature = "byzantine")]
        let mut sent = Vec::new();
        while let Some(t) = self.cf.poll_transmit() {
            let Some(&to) = self.index.get(t.to.as_bytes()) else {
                continue;
            };
            let mut msg = t.msg;
            if let Some(b) = self.tamper.as_mut() {
                match tamper_msg(b, &mut rng, to, msg) {
                    Some(m) => msg = m,
                    None => continue,
                }
            }
            // Our reveals as sent (a test-only withholder sends none, so it has none to
            // publish when accused).
            if let Msg::Reveal(r) = msg.as_ref()
                && r.signer == self.me
            {
                self.report
                    .reveals
                    .entry(r.round)
                    .or_insert_with(|| r.clone());
            }
            #[cfg(feature = "byzantine")]
            sent.extend(crash::kind(&msg, &self.me));
            self.session.send(to, msg);
        }
        #[cfg(feature = "byzantine")]
        crash::after_sending(&sent);
        while let Some(e) = self.cf.poll_event() {
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
                    (self.on_fraud)(&f);
                    self.report.fraud.push(f);
                }
                Event::RoundEnded { round, exit } => {
                    debug!(round, exit = exit_name(&exit), "coin-flip round ended");
                    if matches!(exit, RoundExit::Success(_)) && self.report.to_result.is_none() {
                        self.report.to_result =
                            Some(self.epoch.elapsed().saturating_sub(self.started));
                    }
                    self.report.rounds.push((round, exit_name(&exit)));
                    if let RoundExit::Offline { withheld, .. } = exit {
                        self.report.withheld.extend(withheld);
                    }
                }
                Event::Finished(o) => {
                    self.report.outcome = o;
                    self.finished = true;
                }
            }
        }
        if self.cf.is_finished() {
            self.finished = true;
            return false;
        }
        let wake = self.cf.poll_timeout();
        // No link is left and no timer: nothing can move the flip on.
        self.open || wake.is_some()
    }

    /// Wait for a message or the machine's next deadline and hand it in.
    async fn wait(&mut self) {
        let epoch = self.epoch;
        let wake = self
            .cf
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(epoch + Duration::from_micros(t.as_micros())));
        tokio::select! {
            m = self.session.recv(), if self.open => match m {
                Some((from, msg)) => {
                    if let Some(k) = self.committee.get(from) {
                        self.cf.handle_message(instant(epoch), k, &msg);
                    }
                }
                None => self.open = false,
            },
            _ = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => futures::future::pending().await,
                }
            } => self.cf.handle_timeout(instant(epoch)),
        }
    }
}

/// Test-only crash points (feature `byzantine`): with [`crash::ENV`] set to `commit`,
/// `echo`, `reveal` or `confirm`, the process aborts — no destructor runs, nothing is
/// flushed: what kill -9 does — 300 ms after it first sent its own message of that kind
/// (time for it to reach the peers), so a test can kill a member at each step of a flip.
#[cfg(feature = "byzantine")]
pub mod crash {
    use std::sync::OnceLock;

    use datdot_protocol::coinflip::Msg;
    use datdot_protocol::identity::PublicKey;

    /// The environment variable naming the step.
    pub const ENV: &str = "DATDOT_TEST_ABORT_AFTER";

    fn step() -> Option<&'static str> {
        static STEP: OnceLock<Option<String>> = OnceLock::new();
        STEP.get_or_init(|| std::env::var(ENV).ok()).as_deref()
    }

    /// The step `m` is, if it is our own commit, echo, reveal or confirmation.
    pub(super) fn kind(m: &Msg, me: &PublicKey) -> Option<&'static str> {
        match m {
            Msg::Commit(c) if c.signer == *me => Some("commit"),
            Msg::Echo { .. } => Some("echo"),
            Msg::Reveal(r) if r.signer == *me => Some("reveal"),
            Msg::Confirm(c) if c.signer == *me => Some("confirm"),
            _ => None,
        }
    }

    /// Abort if one of the steps just sent is the crash point.
    pub(super) fn after_sending(sent: &[&'static str]) {
        if let Some(s) = step()
            && sent.contains(&s)
        {
            eprintln!("test crash point: aborting after sending our {s}");
            std::thread::sleep(std::time::Duration::from_millis(300));
            std::process::abort();
        }
    }
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
