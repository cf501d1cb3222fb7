//! The coin-flip state machine. See the module docs of [`crate::coinflip`].

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::msg::{
    ConfirmKind, EchoEntry, MAX_COMMITTEE, Msg, SessionId, SignedCommit, SignedConfirm,
    SignedReveal,
};
use super::transcript::{Transcript, commit_value, commits_digest, result_of, x_of};
use crate::fraud::{FraudKind, FraudProof, Verdict};
use crate::hash::{Hash, blake2b256};
use crate::identity::{Ed25519Verifier, Keypair, PublicKey, Verifier};
use crate::time::Instant;

/// Messages buffered per peer for rounds we have not reached yet.
const MAX_BUFFERED_PER_PEER: usize = 16;
/// Reveal relays served per peer per round.
const MAX_RELAYS_PER_PEER: u8 = 2;

/// Coin-flip parameters. All members of a committee must use the same values.
#[derive(Clone, Debug)]
pub struct Config {
    /// The coin flip's identity (e.g. derived from the challenge id).
    pub session: SessionId,
    /// The committee in attestor-index order (the chain's order).
    pub committee: Vec<PublicKey>,
    /// Fewest members that may still produce `R` (default 3).
    pub min_members: usize,
    /// Most rounds that may end *offline* before giving up (default 4). Rounds ended by a
    /// fraud proof do not count: each exclusion costs one round, bounded by the committee.
    pub max_rounds: u32,
    /// Time to collect all commits and consistent echoes (default 5 s).
    pub commit_timeout: Duration,
    /// Time to collect all reveals after revealing; half of it again is spent asking
    /// peers to relay missing reveals (default 5 s).
    pub reveal_timeout: Duration,
    /// Whether to run the ping/pong confirmation (default true).
    pub confirm: bool,
    /// How long to wait for confirmations and keep answering peers after `R` (default 2 s).
    pub confirm_timeout: Duration,
    /// Backoff before the first retry after an offline exit; doubles each time (default 500 ms).
    pub backoff: Duration,
    /// Largest backoff (default 8 s).
    pub max_backoff: Duration,
    /// Give up this long after the start, whatever the rounds (default none): the flip
    /// then ends `Offline`, naming only whom the last round that ran its full timeouts
    /// waited for (a round the deadline cuts short proves nobody slow: no accusation
    /// from it), or `Success` if `R` is already known. A driver
    /// whose flip must end by a time (an audit window) sets it; [`Config::within`].
    pub deadline: Option<Duration>,
}

impl Config {
    /// Defaults for `session` and `committee`.
    pub fn new(session: SessionId, committee: Vec<PublicKey>) -> Self {
        Config {
            session,
            committee,
            min_members: 3,
            max_rounds: 4,
            commit_timeout: Duration::from_secs(5),
            reveal_timeout: Duration::from_secs(5),
            confirm: true,
            confirm_timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            deadline: None,
        }
    }

    /// A flip that is over within `budget` of its start: the deadline is `budget`, two
    /// rounds (the second catches an equivocation the first timed out on), and the
    /// timeouts scaled so that both rounds end on their own before the deadline and name
    /// a silent or withholding member — commit and reveal `budget / 4` each (a phase
    /// times out after 1.5× its timeout), confirmation `budget / 8`, backoff
    /// `budget / 40` up to `budget / 8`; never above the defaults, never below
    /// [`MIN_PHASE`]. Two offline rounds take ≈ `0.75 · budget + budget / 40`.
    pub fn within(session: SessionId, committee: Vec<PublicKey>, budget: Duration) -> Self {
        let d = Config::new(session, committee);
        let scaled = |div: u32, default: Duration| (budget / div).clamp(MIN_PHASE, default);
        Config {
            max_rounds: 2,
            commit_timeout: scaled(4, d.commit_timeout),
            reveal_timeout: scaled(4, d.reveal_timeout),
            confirm_timeout: scaled(8, d.confirm_timeout),
            backoff: scaled(40, d.backoff),
            max_backoff: scaled(8, d.max_backoff),
            deadline: Some(budget),
            ..d
        }
    }

    fn validate(&self, me: &PublicKey) -> Result<usize, ConfigError> {
        let n = self.committee.len();
        if self.min_members < 2 {
            return Err(ConfigError::MinMembers);
        }
        if n < self.min_members || n > MAX_COMMITTEE {
            return Err(ConfigError::CommitteeSize(n));
        }
        if self.max_rounds == 0 {
            return Err(ConfigError::MaxRounds);
        }
        for (i, k) in self.committee.iter().enumerate() {
            if self.committee[..i].contains(k) {
                return Err(ConfigError::Duplicate(i));
            }
        }
        self.committee
            .iter()
            .position(|k| k == me)
            .ok_or(ConfigError::NotAMember)
    }
}

/// Round `round`'s own secret `s` for a member whose flip was created with `entropy`:
/// `BLAKE2b-256("datdot/v1/coinflip/x" || entropy || session || round as u32 LE)`. The
/// value it contributes to `R` is `x = `[`x_of`]`(s)`; `s` itself stays private until the
/// member's report opens it, and seeds that member's own sample and join time
/// (`schedule`), so a colluding member, who learns `R` and every `x`, cannot compute
/// another member's audit. A
/// function of the round number alone (not of the rounds that came before), so a member
/// restarted with its persisted entropy signs the same commit for any round it had
/// already committed to, whatever path its rounds take after the restart — never two
/// commits for one round, which peers would prove as equivocation.
pub fn round_secret(entropy: &[u8; 32], session: &SessionId, round: u32) -> [u8; 32] {
    blake2b256(&[
        b"datdot/v1/coinflip/x",
        entropy,
        session,
        &round.to_le_bytes(),
    ])
}

/// Shortest phase timeout [`Config::within`] sets.
pub const MIN_PHASE: Duration = Duration::from_millis(100);

/// An invalid [`Config`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `min_members` below 2.
    #[error("min_members must be at least 2")]
    MinMembers,
    /// Committee smaller than `min_members` or larger than [`MAX_COMMITTEE`].
    #[error("committee of {0} members is outside [min_members, {MAX_COMMITTEE}]")]
    CommitteeSize(usize),
    /// `max_rounds` is zero.
    #[error("max_rounds must be at least 1")]
    MaxRounds,
    /// A key appears twice in the committee.
    #[error("committee member {0} appears twice")]
    Duplicate(usize),
    /// Our key is not in the committee.
    #[error("our key is not in the committee")]
    NotAMember,
}

/// A message to send to one peer.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// The recipient.
    pub to: PublicKey,
    /// The message (shared between the copies of a broadcast).
    pub msg: Arc<Msg>,
}

/// The phase a round was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Collecting commits and echoes.
    Commit,
    /// Collecting reveals.
    Reveal,
    /// Collecting confirmations.
    Confirm,
}

/// How one round ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundExit {
    /// `R` was computed.
    Success(Hash),
    /// A timer expired; these members' commit, echo or reveal was missing.
    Offline {
        /// Where the round stalled.
        phase: Phase,
        /// Who did not deliver (a missing reveal is a withholding accusation).
        unresponsive: Vec<PublicKey>,
        /// The signed commits we hold of those members (the accusation's evidence).
        withheld: Vec<SignedCommit>,
    },
    /// A member was proven malicious and excluded.
    Malicious(Box<Verdict>),
}

/// The final result of the coin flip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All active members of `round` contributed to `result`.
    Success {
        /// The round that succeeded.
        round: u32,
        /// `R`.
        result: Hash,
        /// The commits and reveals that determine `R`.
        transcript: Transcript,
    },
    /// The last round timed out.
    Offline {
        /// The last round.
        round: u32,
        /// Where it stalled.
        phase: Phase,
        /// Who did not deliver.
        unresponsive: Vec<PublicKey>,
        /// The signed commits we hold of those of them that committed in `round`: the
        /// evidence a withholding accusation carries (the chain checks a published reveal
        /// against it, and it proves the round was real).
        withheld: Vec<SignedCommit>,
    },
    /// Too few members remain after excluding proven offenders.
    Malicious {
        /// The proofs against the excluded members.
        proofs: Vec<FraudProof>,
    },
}

/// Something the driver must know or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A verified fraud proof; `detected_here` is true when this member found it (the
    /// driver submits those to the chain).
    Fraud {
        /// The evidence.
        proof: Box<FraudProof>,
        /// What it proves.
        verdict: Verdict,
        /// Whether we found it (rather than received it from a peer).
        detected_here: bool,
    },
    /// A round ended.
    RoundEnded {
        /// The round.
        round: u32,
        /// How.
        exit: RoundExit,
    },
    /// The coin flip is over (emitted once).
    Finished(Outcome),
}

/// Counters for logs and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages dropped: unknown or excluded sender, wrong session, stale, bad signature.
    pub ignored: u64,
    /// Messages held for a later round.
    pub buffered: u64,
    /// Messages dropped because a peer's buffer was full.
    pub buffer_overflow: u64,
    /// Signatures checked.
    pub signatures_checked: u64,
}

#[derive(Debug)]
enum State {
    /// A round is running.
    Running,
    /// Waiting to start the next round.
    Backoff { until: Instant },
    /// Nothing more happens.
    Done,
}

#[derive(Debug)]
struct Round {
    number: u32,
    phase: Phase,
    deadline: Instant,
    /// Members taking part in this round (committee index).
    active: Vec<bool>,
    x: [u8; 32],
    commits: Vec<Option<SignedCommit>>,
    /// Latest member set and commit digest echoed by each peer.
    echoes: Vec<Option<(Vec<u16>, Hash)>>,
    /// Our own member list and commit digest, once we hold every active commit
    /// (recomputed when the member set changes).
    own: Option<(Vec<u16>, Hash)>,
    /// Whether our echo went out (once per round: the member set of a round is fixed).
    echo_sent: bool,
    revealed: bool,
    reveals: Vec<Option<SignedReveal>>,
    in_grace: bool,
    /// A member revealed an `x` that does not match its commit: this round's result
    /// is void. We keep collecting reveals (to catch every bad revealer at once) and
    /// restart when all are in, at the reveal deadline, or when a peer has moved on.
    poisoned: Option<Verdict>,
    result: Option<(Hash, Hash, Transcript)>, // (R, commits digest, transcript)
    /// Our pong for this round (identical for every peer, so signed once).
    pong: Option<Arc<Msg>>,
    confirmed: Vec<bool>,
    ponged: Vec<bool>,
    pending_confirm: Vec<Option<SignedConfirm>>,
    asked_reveals: Vec<bool>,
    relays: Vec<u8>,
    proofs_sent: Vec<bool>,
    proofs_asked: Vec<bool>,
}

impl Round {
    /// Whether peer `i` echoed exactly our member set and commits.
    fn echo_matches(&self, i: usize) -> bool {
        match (&self.own, &self.echoes[i]) {
            (Some((_, mine)), Some((_, theirs))) => mine == theirs,
            _ => false,
        }
    }

    fn new(number: u32, active: Vec<bool>, x: [u8; 32], deadline: Instant) -> Self {
        let n = active.len();
        Round {
            number,
            phase: Phase::Commit,
            deadline,
            active,
            x,
            commits: vec![None; n],
            echoes: vec![None; n],
            own: None,
            echo_sent: false,
            revealed: false,
            reveals: vec![None; n],
            in_grace: false,
            poisoned: None,
            result: None,
            pong: None,
            confirmed: vec![false; n],
            ponged: vec![false; n],
            pending_confirm: vec![None; n],
            asked_reveals: vec![false; n],
            relays: vec![0; n],
            proofs_sent: vec![false; n],
            proofs_asked: vec![false; n],
        }
    }
}

/// One member's coin flip. See the [module docs](crate::coinflip) for the protocol and
/// the call order.
#[derive(Debug)]
pub struct CoinFlip<V: Verifier = Ed25519Verifier> {
    cfg: Config,
    me: usize,
    index: BTreeMap<[u8; 32], usize>,
    keypair: Keypair,
    verifier: V,
    /// The entropy every round's secret `x` is derived from ([`round_secret`]).
    entropy: [u8; 32],
    excluded: Vec<bool>,
    /// Members left out of every later round after a round ended offline without
    /// them (silent, withholding or too slow): the next round can then succeed among
    /// the others instead of timing out on the same member again.
    benched: Vec<bool>,
    proofs: Vec<FraudProof>,
    state: State,
    round: Round,
    /// Rounds that ended offline so far (bounded by `max_rounds`).
    attempts: u32,
    /// When the flip gives up (`Config::deadline` after the start).
    give_up: Option<Instant>,
    /// The last round that ended offline: (round, phase, unresponsive, their commits).
    last_offline: Option<(u32, Phase, Vec<PublicKey>, Vec<SignedCommit>)>,
    /// Exclusions when the current round started.
    excluded_at_start: usize,
    success_emitted: bool,
    buffer: Vec<(usize, Msg)>,
    buffered: Vec<usize>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl<V: Verifier> CoinFlip<V> {
    /// Start a coin flip at `now`. `entropy` gives the secrets `x` of every round
    /// ([`round_secret`]); persist it before the first message leaves and pass the same
    /// bytes after a restart. Draw
    /// it from a CSPRNG. Queues the first round's commit.
    pub fn new(
        cfg: Config,
        keypair: Keypair,
        entropy: [u8; 32],
        verifier: V,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        let me = cfg.validate(&keypair.public())?;
        let n = cfg.committee.len();
        let index = cfg
            .committee
            .iter()
            .enumerate()
            .map(|(i, k)| (*k.as_bytes(), i))
            .collect();
        let mut this = CoinFlip {
            me,
            index,
            keypair,
            verifier,
            entropy,
            excluded: vec![false; n],
            benched: vec![false; n],
            proofs: Vec::new(),
            state: State::Running,
            round: Round::new(0, vec![true; n], [0; 32], now),
            attempts: 0,
            give_up: cfg.deadline.map(|d| now + d),
            last_offline: None,
            excluded_at_start: 0,
            success_emitted: false,
            buffer: Vec::new(),
            buffered: vec![0; n],
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            cfg,
        };
        this.start_round(0, now);
        Ok(this)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = match self.state {
            State::Running => self.round.deadline,
            State::Backoff { until } => until,
            State::Done => return None,
        };
        Some(self.give_up.map_or(next, |g| next.min(g)))
    }

    /// Whether the coin flip is over and needs no more input.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The round currently running (or last run).
    pub fn round(&self) -> u32 {
        self.round.number
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Members excluded by a verified fraud proof.
    pub fn excluded(&self) -> impl Iterator<Item = &PublicKey> {
        self.cfg
            .committee
            .iter()
            .zip(&self.excluded)
            .filter_map(|(k, e)| e.then_some(k))
    }

    /// Handle a message from `from` (the key the transport authenticated).
    pub fn handle_message(&mut self, now: Instant, from: &PublicKey, msg: &Msg) {
        let Some(&k) = self.index.get(from.as_bytes()) else {
            self.stats.ignored += 1;
            return;
        };
        if k == self.me || self.excluded[k] || msg.session() != Some(&self.cfg.session) {
            self.stats.ignored += 1;
            return;
        }
        if let Msg::Fraud(p) = msg {
            return self.on_fraud_msg(now, p);
        }
        if let Msg::ProofRequest { .. } = msg {
            return self.send_proofs(k);
        }
        let Some(r) = msg.round() else {
            self.stats.ignored += 1;
            return;
        };
        let current = self.round.number;
        let waiting = matches!(self.state, State::Backoff { .. });
        if r > current {
            self.buffer_msg(k, r, msg);
            if self.round.poisoned.is_some() && matches!(self.state, State::Running) {
                self.restart_poisoned(now);
            }
            return;
        }
        if r < current || waiting {
            // The peer is behind, perhaps because it missed a fraud proof.
            self.stats.ignored += 1;
            return self.send_proofs(k);
        }
        if matches!(self.state, State::Done) {
            self.stats.ignored += 1;
            return;
        }
        match msg {
            Msg::Commit(c) => self.on_commit(now, k, c),
            Msg::Echo {
                members,
                digest,
                commits,
                ..
            } => self.on_echo(now, k, members, digest, commits),
            Msg::Reveal(rv) => self.on_reveal(now, rv),
            Msg::RevealRequest { missing, .. } => self.on_reveal_request(k, missing),
            Msg::Confirm(c) => self.on_confirm(now, k, c),
            Msg::ProofRequest { .. } | Msg::Fraud(_) => {}
        }
    }

    /// Handle the expiry of the instant from [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if !matches!(self.state, State::Done) && self.give_up.is_some_and(|g| now >= g) {
            self.give_up_now();
            return;
        }
        match self.state {
            State::Done => {}
            State::Backoff { until } => {
                if now >= until {
                    self.start_round(self.next_round_number(), now);
                }
            }
            State::Running if now < self.round.deadline => {}
            State::Running => match self.round.phase {
                Phase::Commit if !self.round.in_grace => {
                    // Re-send what peers may have lost (a dropped connection), once, and
                    // wait half a phase more; peers do the same for us.
                    self.round.in_grace = true;
                    self.round.deadline = now + self.cfg.commit_timeout / 2;
                    if let Some(c) = self.round.commits[self.me].clone() {
                        self.broadcast(Msg::Commit(c));
                    }
                    if self.round.echo_sent {
                        let echo = self.echo();
                        self.broadcast(echo);
                    }
                }
                Phase::Commit => {
                    let unresponsive = self.commit_laggards();
                    self.round_offline(now, Phase::Commit, unresponsive);
                }
                Phase::Reveal if self.round.poisoned.is_some() => self.restart_poisoned(now),
                Phase::Reveal if !self.round.in_grace => {
                    // Ask everyone to relay what they hold, then wait a little longer.
                    self.round.in_grace = true;
                    self.round.deadline = now + self.cfg.reveal_timeout / 2;
                    let req = self.reveal_request();
                    self.broadcast(req);
                }
                Phase::Reveal => {
                    let withheld = self.members_where(|r, i| r.reveals[i].is_none());
                    self.round_offline(now, Phase::Reveal, withheld);
                }
                Phase::Confirm => {
                    self.emit_success();
                    self.state = State::Done;
                }
            },
        }
    }

    // ---- rounds -------------------------------------------------------------------

    fn start_round(&mut self, number: u32, now: Instant) {
        let x = x_of(&round_secret(&self.entropy, &self.cfg.session, number));
        let active: Vec<bool> = self
            .excluded
            .iter()
            .zip(&self.benched)
            .map(|(e, b)| !e && !b)
            .collect();
        self.excluded_at_start = self.excluded.iter().filter(|e| **e).count();
        self.round = Round::new(number, active, x, now + self.cfg.commit_timeout);
        self.state = State::Running;
        let commit = SignedCommit::sign(&self.keypair, self.cfg.session, number, commit_value(&x));
        self.round.commits[self.me] = Some(commit.clone());
        self.broadcast(Msg::Commit(commit));
        // Replay what arrived early for this round.
        let early: Vec<(usize, Msg)> = {
            let (now_due, later): (Vec<_>, Vec<_>) = core::mem::take(&mut self.buffer)
                .into_iter()
                .filter(|(_, m)| m.round() >= Some(number))
                .partition(|(_, m)| m.round() == Some(number));
            self.buffer = later;
            now_due
        };
        self.buffered = vec![0; self.cfg.committee.len()];
        for (k, _) in &self.buffer {
            self.buffered[*k] += 1;
        }
        for (k, m) in early {
            let from = self.cfg.committee[k];
            self.handle_message(now, &from, &m);
        }
    }

    fn round_offline(&mut self, now: Instant, phase: Phase, unresponsive: Vec<PublicKey>) {
        let number = self.round.number;
        let laggards: Vec<usize> = unresponsive
            .iter()
            .filter_map(|k| self.index.get(k.as_bytes()).copied())
            .collect();
        let withheld: Vec<SignedCommit> = laggards
            .iter()
            .filter_map(|&i| self.round.commits[i].clone())
            .collect();
        self.events.push_back(Event::RoundEnded {
            round: number,
            exit: RoundExit::Offline {
                phase,
                unresponsive: unresponsive.clone(),
                withheld: withheld.clone(),
            },
        });
        self.attempts += 1;
        self.last_offline = Some((number, phase, unresponsive.clone(), withheld.clone()));
        // Benching is a local judgement (no proof): only a strict majority of the members
        // not proven malicious, and at least `min_members`, may go on without the rest.
        // Two strict majorities share a member, whose echo stalls the one with the other
        // member set, so a partitioned committee never computes two `R`s. Short of that,
        // the round is retried with the same members (as before benching): an
        // equivocator whose round timed out is then caught in the next.
        let eligible = self.excluded.iter().filter(|e| !**e).count();
        let left = (0..self.cfg.committee.len())
            .filter(|&i| !self.excluded[i] && !self.benched[i] && !laggards.contains(&i))
            .count();
        if left >= self.cfg.min_members && left > eligible / 2 {
            for &i in &laggards {
                self.benched[i] = true;
            }
        }
        if self.attempts >= self.cfg.max_rounds {
            self.finish(Outcome::Offline {
                round: number,
                phase,
                unresponsive,
                withheld,
            });
        } else {
            let factor = 1u32 << (self.attempts - 1).min(16);
            let wait = (self.cfg.backoff * factor).min(self.cfg.max_backoff);
            self.state = State::Backoff { until: now + wait };
        }
    }

    /// Whom a commit phase waits for. Without every commit nobody can echo: the missing
    /// commits first, and only when all are in, the missing or mismatched echoes.
    fn commit_laggards(&self) -> Vec<PublicKey> {
        let missing = self.members_where(|r, i| r.commits[i].is_none());
        if missing.is_empty() {
            self.members_where(|r, i| !r.echo_matches(i))
        } else {
            missing
        }
    }

    /// The deadline passed: end with what is known now.
    fn give_up_now(&mut self) {
        if self.success_emitted {
            self.state = State::Done;
            return;
        }
        if self.round.result.is_some() {
            self.emit_success();
            self.state = State::Done;
            return;
        }
        // The round the deadline cut short accuses nobody (a slow honest member may not
        // have revealed yet, and could not clear an accusation with a reveal it never
        // signed); the last round that ran its full timeouts names its laggards.
        let running = matches!(self.state, State::Running);
        if running {
            self.events.push_back(Event::RoundEnded {
                round: self.round.number,
                exit: RoundExit::Offline {
                    phase: self.round.phase,
                    unresponsive: Vec::new(),
                    withheld: Vec::new(),
                },
            });
        }
        let (round, phase, unresponsive, withheld) = self.last_offline.clone().unwrap_or((
            self.round.number,
            self.round.phase,
            Vec::new(),
            Vec::new(),
        ));
        self.finish(Outcome::Offline {
            round,
            phase,
            unresponsive,
            withheld,
        });
    }

    fn finish(&mut self, outcome: Outcome) {
        self.events.push_back(Event::Finished(outcome));
        self.state = State::Done;
    }

    fn buffer_msg(&mut self, k: usize, r: u32, msg: &Msg) {
        let horizon = self.round.number + self.cfg.committee.len() as u32 + self.cfg.max_rounds;
        if r > horizon || self.buffered[k] >= MAX_BUFFERED_PER_PEER {
            self.stats.buffer_overflow += 1;
            return;
        }
        self.buffered[k] += 1;
        self.stats.buffered += 1;
        self.buffer.push((k, msg.clone()));
    }

    fn members_where(&self, f: impl Fn(&Round, usize) -> bool) -> Vec<PublicKey> {
        (0..self.cfg.committee.len())
            .filter(|&i| i != self.me && self.round.active[i] && f(&self.round, i))
            .map(|i| self.cfg.committee[i])
            .collect()
    }

    fn peers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.cfg.committee.len()).filter(|&i| i != self.me && self.round.active[i])
    }

    fn broadcast(&mut self, msg: Msg) {
        let msg = Arc::new(msg);
        let peers: Vec<usize> = self.peers().collect();
        for i in peers {
            self.outbox.push_back(Transmit {
                to: self.cfg.committee[i],
                msg: msg.clone(),
            });
        }
    }

    fn send(&mut self, k: usize, msg: Msg) {
        self.outbox.push_back(Transmit {
            to: self.cfg.committee[k],
            msg: Arc::new(msg),
        });
    }

    fn verify<T>(&mut self, f: impl FnOnce(&V) -> T) -> T {
        self.stats.signatures_checked += 1;
        f(&self.verifier)
    }

    // ---- commit and echo ----------------------------------------------------------

    fn on_commit(&mut self, now: Instant, k: usize, c: &SignedCommit) {
        if c.signer != self.cfg.committee[k] || !self.round.active[k] {
            self.stats.ignored += 1;
            return;
        }
        // Echoes adopt the commits they carry, so a late direct commit never changes
        // an echo's verdict: no need to re-check stored echoes here.
        if self.accept_commit(now, k, c.y, c.sig) {
            self.progress(now);
        }
    }

    /// Take `(y, sig)` as member `m`'s commit. Returns whether it was new; raises an
    /// equivocation if it conflicts with one already held. `false` also for bad
    /// signatures.
    fn accept_commit(
        &mut self,
        now: Instant,
        m: usize,
        y: Hash,
        sig: crate::identity::Signature,
    ) -> bool {
        if self.round.commits[m]
            .as_ref()
            .is_some_and(|held| held.y == y)
        {
            return false;
        }
        let c = SignedCommit {
            session: self.cfg.session,
            round: self.round.number,
            signer: self.cfg.committee[m],
            y,
            sig,
        };
        if !self.verify(|v| c.verify(v)) {
            self.stats.ignored += 1;
            return false;
        }
        match self.round.commits[m].clone() {
            Some(held) => {
                self.raise(now, FraudProof::Equivocation { a: held, b: c });
                false
            }
            None => {
                self.round.commits[m] = Some(c);
                true
            }
        }
    }

    fn on_echo(
        &mut self,
        now: Instant,
        k: usize,
        members: &[u16],
        digest: &Hash,
        commits: &[EchoEntry],
    ) {
        let n = self.cfg.committee.len();
        if members.iter().any(|&m| usize::from(m) >= n) {
            self.stats.ignored += 1;
            return;
        }
        // The evidence: adopt commits we lack, expose ones that conflict with ours.
        // A commit whose signature fails voids the echo (the echoer forged it).
        let number = self.round.number;
        for e in commits {
            let m = usize::from(e.member);
            if !self.round.active[m] {
                continue;
            }
            self.accept_commit(now, m, e.y, e.sig);
            if self.round.number != number || !matches!(self.state, State::Running) {
                return; // a fraud proof ended the round
            }
            let held = self.round.commits[m].as_ref().map(|c| c.y);
            if self.round.active[m] && held != Some(e.y) {
                self.stats.ignored += 1;
                return;
            }
        }
        // A peer's member set only shrinks within a round: a larger set than the one
        // held is an older echo that arrived late.
        if self.round.echoes[k]
            .as_ref()
            .is_some_and(|(held, _)| held.len() < members.len())
        {
            return self.progress(now);
        }
        self.round.echoes[k] = Some((members.to_vec(), *digest));
        self.sync_member_set(k);
        self.progress(now);
    }

    /// If peer `k`'s member set differs from ours, one of us lacks a fraud proof:
    /// send ours, or ask for theirs (once per peer and round each).
    fn sync_member_set(&mut self, k: usize) {
        let Some((members, _)) = &self.round.echoes[k] else {
            return;
        };
        let mut listed = vec![false; self.cfg.committee.len()];
        for &m in members {
            listed[usize::from(m)] = true;
        }
        if listed == self.round.active {
            return;
        }
        if listed.iter().zip(&self.round.active).any(|(l, a)| *l && !a) {
            self.send_proofs(k);
        }
        if listed
            .iter()
            .zip(&self.round.active)
            .any(|(l, a)| !*l && *a)
            && !self.round.proofs_asked[k]
        {
            self.round.proofs_asked[k] = true;
            self.send(
                k,
                Msg::ProofRequest {
                    session: self.cfg.session,
                },
            );
        }
    }

    /// Send what the current state allows: echo, reveal, result.
    fn progress(&mut self, now: Instant) {
        if !matches!(self.state, State::Running) || self.round.phase != Phase::Commit {
            return;
        }
        let all_commits = (0..self.cfg.committee.len())
            .all(|i| !self.round.active[i] || self.round.commits[i].is_some());
        if !all_commits {
            return;
        }
        if !self.round.echo_sent {
            self.round.echo_sent = true;
            let echo = self.echo();
            if let Msg::Echo {
                members, digest, ..
            } = &echo
            {
                self.round.own = Some((members.clone(), *digest));
            }
            self.broadcast(echo);
        }
        if self.peers().all(|i| self.round.echo_matches(i)) {
            self.round.phase = Phase::Reveal;
            self.round.in_grace = false;
            self.round.revealed = true;
            self.round.deadline = now + self.cfg.reveal_timeout;
            let rv = SignedReveal::sign(
                &self.keypair,
                self.cfg.session,
                self.round.number,
                self.round.x,
            );
            self.round.reveals[self.me] = Some(rv.clone());
            self.broadcast(Msg::Reveal(rv));
            self.check_result(now);
        }
    }

    /// Our echo of the round's member set, with every signed commit.
    fn echo(&self) -> Msg {
        let active: Vec<usize> = (0..self.cfg.committee.len())
            .filter(|&i| self.round.active[i])
            .collect();
        let members: Vec<u16> = active.iter().map(|&i| i as u16).collect(); // < MAX_COMMITTEE
        let digest = commits_digest(
            &self.cfg.session,
            self.round.number,
            active
                .iter()
                .filter_map(|&i| self.round.commits[i].as_ref()),
        );
        let commits = active
            .iter()
            .filter_map(|&i| {
                self.round.commits[i].as_ref().map(|c| EchoEntry {
                    member: i as u16,
                    y: c.y,
                    sig: c.sig,
                })
            })
            .collect();
        Msg::Echo {
            session: self.cfg.session,
            round: self.round.number,
            members,
            digest,
            commits,
        }
    }

    // ---- reveal and result --------------------------------------------------------

    fn on_reveal(&mut self, now: Instant, rv: &SignedReveal) {
        let Some(&m) = self.index.get(rv.signer.as_bytes()) else {
            self.stats.ignored += 1;
            return;
        };
        if m == self.me || !self.round.active[m] || self.round.reveals[m].is_some() {
            self.stats.ignored += 1;
            return;
        }
        let Some(commit) = self.round.commits[m].clone() else {
            self.stats.ignored += 1;
            return;
        };
        if !self.verify(|v| rv.verify(v)) {
            self.stats.ignored += 1;
            return;
        }
        if commit_value(&rv.x) != commit.y {
            return self.raise(
                now,
                FraudProof::InvalidReveal {
                    commit,
                    reveal: rv.clone(),
                },
            );
        }
        self.round.reveals[m] = Some(rv.clone());
        self.check_result(now);
    }

    fn on_reveal_request(&mut self, k: usize, missing: &[u16]) {
        // Never relay before our own reveal went out: that would leak nothing of ours
        // but would let a peer collect reveals before committing to consistency.
        if !self.round.revealed || self.round.relays[k] >= MAX_RELAYS_PER_PEER {
            self.stats.ignored += 1;
            return;
        }
        self.round.relays[k] += 1;
        let held: Vec<SignedReveal> = missing
            .iter()
            .take(self.cfg.committee.len())
            .filter(|&&i| usize::from(i) != k)
            .filter_map(|&i| self.round.reveals.get(usize::from(i)).cloned().flatten())
            .collect();
        for rv in held {
            self.send(k, Msg::Reveal(rv));
        }
    }

    fn check_result(&mut self, now: Instant) {
        if !self.round.revealed || self.round.result.is_some() {
            return;
        }
        let active: Vec<usize> = (0..self.cfg.committee.len())
            .filter(|&i| self.round.active[i])
            .collect();
        if active
            .iter()
            .any(|&i| self.round.reveals[i].is_none() && !self.excluded[i])
        {
            return;
        }
        if self.round.poisoned.is_some() {
            return self.restart_poisoned(now);
        }
        let commits: Vec<SignedCommit> = active
            .iter()
            .filter_map(|&i| self.round.commits[i].clone())
            .collect();
        let reveals: Vec<SignedReveal> = active
            .iter()
            .filter_map(|&i| self.round.reveals[i].clone())
            .collect();
        let r = result_of(reveals.iter().map(|rv| &rv.x));
        let digest = commits_digest(&self.cfg.session, self.round.number, commits.iter());
        let transcript = Transcript {
            session: self.cfg.session,
            round: self.round.number,
            commits,
            reveals,
        };
        self.round.result = Some((r, digest, transcript));
        self.round.phase = Phase::Confirm;
        self.round.deadline = now + self.cfg.confirm_timeout;
        self.events.push_back(Event::RoundEnded {
            round: self.round.number,
            exit: RoundExit::Success(r),
        });
        if self.cfg.confirm {
            let ping = SignedConfirm::sign(
                &self.keypair,
                ConfirmKind::Ping,
                self.cfg.session,
                self.round.number,
                digest,
                &r,
            );
            self.broadcast(Msg::Confirm(ping));
            for k in 0..self.cfg.committee.len() {
                if let Some(c) = self.round.pending_confirm[k].take() {
                    self.on_confirm(now, k, &c);
                }
            }
            self.maybe_confirmed();
        } else {
            self.emit_success();
        }
    }

    fn emit_success(&mut self) {
        if self.success_emitted {
            return;
        }
        if let Some((r, _, t)) = &self.round.result {
            self.success_emitted = true;
            self.events.push_back(Event::Finished(Outcome::Success {
                round: self.round.number,
                result: *r,
                transcript: t.clone(),
            }));
        }
    }

    // ---- confirmation -------------------------------------------------------------

    fn on_confirm(&mut self, now: Instant, k: usize, c: &SignedConfirm) {
        if c.signer != self.cfg.committee[k] || !self.round.active[k] {
            self.stats.ignored += 1;
            return;
        }
        let Some((r, digest, transcript)) = self.round.result.clone() else {
            // We lack reveals the pinger has: ask it to relay them.
            if c.kind == ConfirmKind::Ping && self.round.revealed && !self.round.asked_reveals[k] {
                self.round.asked_reveals[k] = true;
                let req = self.reveal_request();
                self.send(k, req);
            }
            self.round.pending_confirm[k] = Some(c.clone());
            return;
        };
        let repeat =
            self.round.confirmed[k] && (c.kind == ConfirmKind::Pong || self.round.ponged[k]);
        if c.commits_digest != digest || repeat {
            self.stats.ignored += 1;
            return; // another view of the commits (not provable by us), or a repeat
        }
        if !self.verify(|v| c.verify(v)) {
            self.stats.ignored += 1;
            return;
        }
        if c.value != c.kind.value_for(&r) {
            self.raise(
                now,
                FraudProof::Divergent {
                    transcript,
                    claim: c.clone(),
                },
            );
            return self.maybe_confirmed();
        }
        self.round.confirmed[k] = true;
        if c.kind == ConfirmKind::Ping && !self.round.ponged[k] {
            self.round.ponged[k] = true;
            let pong = match &self.round.pong {
                Some(p) => p.clone(),
                None => {
                    let p = Arc::new(Msg::Confirm(SignedConfirm::sign(
                        &self.keypair,
                        ConfirmKind::Pong,
                        self.cfg.session,
                        self.round.number,
                        digest,
                        &r,
                    )));
                    self.round.pong = Some(p.clone());
                    p
                }
            };
            self.outbox.push_back(Transmit {
                to: self.cfg.committee[k],
                msg: pong,
            });
        }
        self.maybe_confirmed();
    }

    fn maybe_confirmed(&mut self) {
        let done = self
            .peers()
            .all(|i| self.round.confirmed[i] || self.excluded[i]);
        if self.round.result.is_some() && done {
            self.emit_success();
        }
    }

    // ---- fraud --------------------------------------------------------------------

    fn on_fraud_msg(&mut self, now: Instant, p: &FraudProof) {
        let Some(&m) = self.index.get(p.accused().as_bytes()) else {
            self.stats.ignored += 1;
            return;
        };
        if self.excluded[m] {
            return;
        }
        match self.verify(|v| p.verify(v)) {
            Ok(verdict) if verdict.session() == Some(&self.cfg.session) => {
                self.apply_fraud(now, m, p.clone(), verdict, false)
            }
            _ => self.stats.ignored += 1,
        }
    }

    /// We found fraud ourselves.
    fn raise(&mut self, now: Instant, p: FraudProof) {
        let Some(&m) = self.index.get(p.accused().as_bytes()) else {
            return;
        };
        if self.excluded[m] {
            return;
        }
        // Our own construction; verifying again guards against a logic error blaming
        // an honest member.
        if let Ok(verdict) = self.verify(|v| p.verify(v)) {
            self.apply_fraud(now, m, p, verdict, true);
        }
    }

    fn apply_fraud(&mut self, now: Instant, m: usize, p: FraudProof, verdict: Verdict, here: bool) {
        self.excluded[m] = true;
        self.proofs.push(p.clone());
        // No broadcast: every member the evidence reached detects the fraud itself, and
        // a member that missed it is sent our proofs as soon as our member sets or
        // rounds disagree (`send_proofs`).
        self.events.push_back(Event::Fraud {
            proof: Box::new(p),
            verdict,
            detected_here: here,
        });
        let finished = matches!(self.state, State::Done) || self.success_emitted;
        if finished || self.round.result.is_some() || verdict.kind == FraudKind::Divergent {
            // R is fixed by the transcript; the exclusion applies from the next flip.
            return;
        }
        if !matches!(self.state, State::Running) {
            self.enough_members();
            return;
        }
        let current = verdict.round() == Some(self.round.number);
        if self.round.revealed && current && verdict.kind == FraudKind::InvalidReveal {
            // Keep collecting reveals so every bad revealer of this round is caught.
            self.round.poisoned.get_or_insert(verdict);
            return self.check_result(now);
        }
        // Every new exclusion ends the round, whatever we have sent so far: the reaction
        // must not depend on local progress, or members that revealed and members that
        // did not would part ways. The next round's number grows by the exclusions
        // learned, so members that know the same proofs meet in the same round.
        if self.round.poisoned.is_some() {
            return; // restarts once all reveals are in (or at the deadline)
        }
        self.events.push_back(Event::RoundEnded {
            round: self.round.number,
            exit: RoundExit::Malicious(Box::new(verdict)),
        });
        if self.enough_members() {
            self.start_round(self.next_round_number(), now);
        }
    }

    /// The round after the current one: one more per exclusion learned during it.
    fn next_round_number(&self) -> u32 {
        let learned = self.excluded.iter().filter(|e| **e).count() - self.excluded_at_start;
        self.round.number + (learned.max(1) as u32)
    }

    fn reveal_request(&self) -> Msg {
        let missing = (0..self.cfg.committee.len())
            .filter(|&i| self.round.active[i] && self.round.reveals[i].is_none())
            .map(|i| i as u16) // i < MAX_COMMITTEE (validated)
            .collect();
        Msg::RevealRequest {
            session: self.cfg.session,
            round: self.round.number,
            missing,
        }
    }

    /// End a round voided by an invalid reveal and start the next without the offenders.
    fn restart_poisoned(&mut self, now: Instant) {
        let Some(verdict) = self.round.poisoned.take() else {
            return;
        };
        let number = self.round.number;
        self.events.push_back(Event::RoundEnded {
            round: number,
            exit: RoundExit::Malicious(Box::new(verdict)),
        });
        if self.enough_members() {
            self.start_round(self.next_round_number(), now);
        }
    }

    /// Whether enough members remain; finishes as malicious otherwise.
    fn enough_members(&mut self) -> bool {
        let remaining = (0..self.cfg.committee.len())
            .filter(|&i| !self.excluded[i] && !self.benched[i])
            .count();
        if remaining < self.cfg.min_members {
            self.finish(Outcome::Malicious {
                proofs: self.proofs.clone(),
            });
            return false;
        }
        true
    }

    fn send_proofs(&mut self, k: usize) {
        if self.proofs.is_empty() || self.round.proofs_sent[k] {
            return;
        }
        self.round.proofs_sent[k] = true;
        for p in self.proofs.clone() {
            self.send(k, Msg::Fraud(Box::new(p)));
        }
    }
}
