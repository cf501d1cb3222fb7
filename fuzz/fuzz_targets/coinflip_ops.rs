//! `coinflip::CoinFlip` state machine, member 0 of a committee of 3–5, driven by an
//! arbitrary sequence of operations: messages from the other members (arbitrary decoded
//! bytes, or well-formed messages signed with their real keys: commits, reveals with and
//! without a matching commit, echoes carrying real signed commits, confirmations, reveal
//! and proof requests, fraud proofs), from an outsider, and the passage of time.
//!
//! The harness never signs as member 0: only the machine holds that key.
//!
//! Invariants checked after every step:
//! - nothing panics;
//! - `poll_timeout()` is `None` exactly when finished, and after `handle_timeout(now)`
//!   it is not earlier than `now`;
//! - at most one `Event::Finished`; a `Success` carries a transcript that verifies to
//!   its result and includes member 0;
//! - every fraud proof (event or message sent) verifies with `Ed25519Verifier` to the
//!   event's verdict and never names member 0; no offline accusation names member 0;
//! - the machine never signs two different commits for one round, never reveals an `x`
//!   that does not match its commit, sends only to other committee members, and every
//!   message it sends decodes back to itself (so peers accept it).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use datdot_protocol::codec::{from_bytes, to_bytes};
use datdot_protocol::coinflip::{
    CoinFlip, Config, ConfirmKind, EchoEntry, Event, Msg, Outcome, RoundExit, SessionId,
    SignedCommit, SignedConfirm, SignedReveal, commit_value, commits_digest,
};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::hash::Hash;
use datdot_protocol::identity::{Ed25519Verifier, Keypair, PublicKey};
use datdot_protocol::time::Instant;
use libfuzzer_sys::fuzz_target;

const SESSION: SessionId = [0x5e; 32];
const MAX_N: usize = 5;

/// Keys of members 0..MAX_N, then one outsider (index `MAX_N`).
fn keys() -> &'static [Keypair] {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..=MAX_N as u8)
            .map(|i| Keypair::from_seed(&[i + 1; 32]))
            .collect()
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    n: u8,
    min_members: u8,
    max_rounds: u8,
    confirm: bool,
    entropy: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum RoundSel {
    Current,
    Next,
    Prev,
    Abs(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Arbitrary bytes decoded as a message (skipped if invalid).
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// `signer` commits to `x(signer, round, xsel)`.
    Commit {
        from: u8,
        signer: u8,
        round: RoundSel,
        xsel: u8,
    },
    /// `signer` reveals its last committed `x` (None) or `x(signer, round, xsel)`.
    Reveal {
        from: u8,
        signer: u8,
        round: RoundSel,
        xsel: Option<u8>,
    },
    /// An echo of the commits of `mask` (None: every non-excluded member), each member's
    /// last commit (`xsels` None) or `x(m, round, xsels[m])`; member 0's is the one the
    /// machine sent.
    Echo {
        from: u8,
        round: RoundSel,
        mask: Option<u8>,
        xsels: Option<[u8; MAX_N]>,
        with_commits: bool,
        digest_ok: bool,
        bad_sig: Option<u8>,
    },
    /// A ping or pong with the machine's commit digest and result (or wrong ones).
    Confirm {
        from: u8,
        signer: u8,
        round: RoundSel,
        pong: bool,
        digest_ok: bool,
        value_ok: bool,
    },
    RevealRequest {
        from: u8,
        round: RoundSel,
        mask: u8,
    },
    ProofRequest {
        from: u8,
    },
    /// A valid equivocation proof against `accused` (if `a != b`).
    Equivocation {
        from: u8,
        accused: u8,
        round: RoundSel,
        a: u8,
        b: u8,
    },
    /// A valid invalid-reveal proof against `accused` (if the x differ).
    InvalidReveal {
        from: u8,
        accused: u8,
        round: RoundSel,
        commit: u8,
        reveal: u8,
    },
    /// Send back a fraud proof seen earlier.
    ReplayProof {
        from: u8,
        idx: u8,
    },
    /// Let time pass; fire the timer if it is due.
    Advance {
        ms: u16,
    },
    /// Jump to the timer and fire it.
    ToDeadline,
    /// Call `handle_timeout` now even if nothing is due.
    EarlyTimeout,
    /// Member `1 + member % (n - 1)` takes its next `1 + steps % 3` honest steps in the
    /// current round (commit, echo, reveal, ping, pong), so the fuzzer reaches the later
    /// phases without having to guess matching fields.
    Honest {
        member: u8,
        steps: u8,
    },
    /// Every other member takes its next honest step, `1 + steps % 5` times.
    HonestAll {
        steps: u8,
    },
}

fn x_of(m: usize, round: u32, xsel: u8) -> [u8; 32] {
    let mut x = [0u8; 32];
    x[0] = xsel;
    x[1] = m as u8;
    x[2..6].copy_from_slice(&round.to_le_bytes());
    x
}

struct Harness {
    n: usize,
    cf: CoinFlip,
    now: u64,
    me: PublicKey,
    /// The machine's own commit per round.
    my_commits: BTreeMap<u32, SignedCommit>,
    /// The machine's latest echoed commit digest per round.
    my_digest: BTreeMap<u32, Hash>,
    /// `R` per round, from `RoundEnded(Success)`.
    results: BTreeMap<u32, Hash>,
    /// The other members' last committed `x` per (member, round).
    last_x: BTreeMap<(usize, u32), [u8; 32]>,
    proofs: Vec<FraudProof>,
    /// Each other member's next honest step per (member, round).
    honest: BTreeMap<(usize, u32), u8>,
    finished: usize,
    /// The final outcome's kind, for `DATDOT_FUZZ_STATS`.
    outcome: &'static str,
}

impl Harness {
    fn member(&self, b: u8) -> usize {
        // 0..n are members, n is the outsider.
        let i = usize::from(b) % (self.n + 1);
        if i == self.n { MAX_N } else { i }
    }

    /// A signing member: never 0 (only the machine has that key); 0 maps to the outsider.
    fn signer(&self, b: u8) -> usize {
        match usize::from(b) % self.n {
            0 => MAX_N,
            i => i,
        }
    }

    fn round(&self, r: RoundSel) -> u32 {
        let cur = self.cf.round();
        match r {
            RoundSel::Current => cur,
            RoundSel::Next => cur + 1,
            RoundSel::Prev => cur.saturating_sub(1),
            RoundSel::Abs(b) => u32::from(b),
        }
    }

    fn commit(&mut self, m: usize, round: u32, x: [u8; 32]) -> SignedCommit {
        SignedCommit::sign(&keys()[m], SESSION, round, commit_value(&x))
    }

    /// Member `m`'s next honest step in the current round.
    fn honest_step(&mut self, m: usize) {
        let round = self.cf.round();
        let step = self.honest.get(&(m, round)).copied().unwrap_or(0);
        let m8 = m as u8; // member(m8) == signer(m8) == m for 0 < m < n
        let next = match step {
            0 => {
                let x = *self.last_x.entry((m, round)).or_insert(x_of(m, round, 0));
                let c = self.commit(m, round, x);
                self.deliver(m, Msg::Commit(c));
                1
            }
            1 => {
                self.step(Op::Echo {
                    from: m8,
                    round: RoundSel::Current,
                    mask: None,
                    xsels: None,
                    with_commits: true,
                    digest_ok: true,
                    bad_sig: None,
                });
                2
            }
            2 => {
                self.step(Op::Reveal {
                    from: m8,
                    signer: m8,
                    round: RoundSel::Current,
                    xsel: None,
                });
                3
            }
            3 | 4 if self.results.contains_key(&round) => {
                let (pong, digest_ok, value_ok) = (step == 4, true, true);
                self.step(Op::Confirm {
                    from: m8,
                    signer: m8,
                    round: RoundSel::Current,
                    pong,
                    digest_ok,
                    value_ok,
                });
                step + 1
            }
            s => s, // waiting for the result, or done
        };
        if self.cf.round() == round {
            self.honest.insert((m, round), next);
        }
    }

    fn deliver(&mut self, from: usize, msg: Msg) {
        let key = keys()[from].public();
        self.cf.handle_message(Instant(self.now), &key, &msg);
        self.drain();
    }

    fn timeout(&mut self) {
        let now = Instant(self.now);
        self.cf.handle_timeout(now);
        if let Some(t) = self.cf.poll_timeout() {
            assert!(
                t >= now,
                "timer {t:?} earlier than now {now:?} after handle_timeout"
            );
        }
        self.drain();
    }

    fn check_proof(&self, p: &FraudProof) {
        let verdict = p
            .verify(&Ed25519Verifier)
            .expect("a proof the machine holds verifies");
        assert_ne!(
            verdict.offender, self.me,
            "proof against the honest machine: {p:?}"
        );
        assert_eq!(verdict.session(), Some(&SESSION));
    }

    fn drain(&mut self) {
        assert_eq!(self.cf.is_finished(), self.cf.poll_timeout().is_none());
        while let Some(t) = self.cf.poll_transmit() {
            assert_ne!(t.to, self.me, "sent to itself");
            assert!(
                keys()[..self.n].iter().any(|k| k.public() == t.to),
                "sent to a non-member"
            );
            let bytes = to_bytes(&*t.msg);
            assert_eq!(
                from_bytes::<Msg>(&bytes).as_ref(),
                Ok(&*t.msg),
                "peers reject our message"
            );
            match &*t.msg {
                Msg::Commit(c) => {
                    assert_eq!(c.signer, self.me);
                    if let Some(prev) = self.my_commits.insert(c.round, c.clone()) {
                        assert_eq!(prev, *c, "the machine equivocated in round {}", c.round);
                    }
                }
                Msg::Echo { round, digest, .. } => {
                    self.my_digest.insert(*round, *digest);
                }
                Msg::Reveal(rv) if rv.signer == self.me => {
                    let c = self
                        .my_commits
                        .get(&rv.round)
                        .expect("revealed before committing");
                    assert_eq!(commit_value(&rv.x), c.y, "the machine revealed a bad x");
                }
                Msg::Confirm(c) => assert_eq!(c.signer, self.me),
                Msg::Fraud(p) => {
                    self.check_proof(p);
                    self.proofs.push((**p).clone());
                }
                _ => {}
            }
        }
        while let Some(ev) = self.cf.poll_event() {
            match ev {
                Event::Fraud { proof, verdict, .. } => {
                    self.check_proof(&proof);
                    assert_eq!(proof.verify(&Ed25519Verifier), Ok(verdict));
                    self.proofs.push(*proof);
                }
                Event::RoundEnded { round, exit } => match exit {
                    RoundExit::Success(r) => {
                        self.results.insert(round, r);
                    }
                    RoundExit::Offline { unresponsive, .. } => {
                        assert!(!unresponsive.contains(&self.me), "accused itself");
                    }
                    RoundExit::Malicious(v) => assert_ne!(v.offender, self.me),
                },
                Event::Finished(outcome) => {
                    self.finished += 1;
                    assert_eq!(self.finished, 1, "Finished emitted twice");
                    self.outcome = match &outcome {
                        Outcome::Success { .. } => "success",
                        Outcome::Offline { .. } => "offline",
                        Outcome::Malicious { .. } => "malicious",
                    };
                    match outcome {
                        Outcome::Success {
                            round,
                            result,
                            transcript,
                        } => {
                            assert_eq!(transcript.verify(&Ed25519Verifier), Ok(result));
                            assert_eq!(transcript.round, round);
                            assert!(transcript.commits.iter().any(|c| c.signer == self.me));
                            assert_eq!(self.results.get(&round), Some(&result));
                        }
                        Outcome::Offline { unresponsive, .. } => {
                            assert!(!unresponsive.contains(&self.me), "accused itself");
                        }
                        Outcome::Malicious { proofs } => {
                            for p in &proofs {
                                self.check_proof(p);
                            }
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Raw { from, bytes } => {
                if let Ok(msg) = from_bytes::<Msg>(&bytes) {
                    let from = self.member(from);
                    self.deliver(from, msg);
                }
            }
            Op::Commit {
                from,
                signer,
                round,
                xsel,
            } => {
                let (from, signer, round) =
                    (self.member(from), self.signer(signer), self.round(round));
                let x = x_of(signer, round, xsel);
                self.last_x.insert((signer, round), x);
                let c = self.commit(signer, round, x);
                self.deliver(from, Msg::Commit(c));
            }
            Op::Reveal {
                from,
                signer,
                round,
                xsel,
            } => {
                let (from, signer, round) =
                    (self.member(from), self.signer(signer), self.round(round));
                let x = match xsel {
                    None => self
                        .last_x
                        .get(&(signer, round))
                        .copied()
                        .unwrap_or(x_of(signer, round, 0)),
                    Some(s) => x_of(signer, round, s),
                };
                let rv = SignedReveal::sign(&keys()[signer], SESSION, round, x);
                self.deliver(from, Msg::Reveal(rv));
            }
            Op::Echo {
                from,
                round,
                mask,
                xsels,
                with_commits,
                digest_ok,
                bad_sig,
            } => {
                let (from, round) = (self.member(from), self.round(round));
                let excluded: Vec<PublicKey> = self.cf.excluded().copied().collect();
                let listed: Vec<usize> = (0..self.n)
                    .filter(|&m| match mask {
                        Some(bits) => bits & (1 << m) != 0,
                        None => !excluded.contains(&keys()[m].public()),
                    })
                    .collect();
                let mut members = Vec::new();
                let mut commits = Vec::new();
                for m in listed {
                    let c = if m == 0 {
                        match self.my_commits.get(&round) {
                            Some(c) => c.clone(),
                            None => continue,
                        }
                    } else {
                        let x = match xsels {
                            Some(xs) => x_of(m, round, xs[m]),
                            None => self
                                .last_x
                                .get(&(m, round))
                                .copied()
                                .unwrap_or(x_of(m, round, 0)),
                        };
                        self.commit(m, round, x)
                    };
                    members.push(m as u16);
                    commits.push(c);
                }
                let digest = if digest_ok {
                    commits_digest(&SESSION, round, commits.iter())
                } else {
                    [0xd1; 32]
                };
                let mut entries: Vec<EchoEntry> = if with_commits {
                    members
                        .iter()
                        .zip(&commits)
                        .map(|(&member, c)| EchoEntry {
                            member,
                            y: c.y,
                            sig: c.sig,
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                if let Some(b) = bad_sig
                    && !entries.is_empty()
                {
                    let i = usize::from(b) % entries.len();
                    entries[i].sig.0[usize::from(b) % 64] ^= 1;
                }
                let msg = Msg::Echo {
                    session: SESSION,
                    round,
                    members,
                    digest,
                    commits: entries,
                };
                self.deliver(from, msg);
            }
            Op::Confirm {
                from,
                signer,
                round,
                pong,
                digest_ok,
                value_ok,
            } => {
                let (from, signer, round) =
                    (self.member(from), self.signer(signer), self.round(round));
                let kind = if pong {
                    ConfirmKind::Pong
                } else {
                    ConfirmKind::Ping
                };
                let digest = match self.my_digest.get(&round) {
                    Some(d) if digest_ok => *d,
                    _ => [0xd2; 32],
                };
                let r = match self.results.get(&round) {
                    Some(r) if value_ok => *r,
                    _ => [0xee; 32],
                };
                let c = SignedConfirm::sign(&keys()[signer], kind, SESSION, round, digest, &r);
                self.deliver(from, Msg::Confirm(c));
            }
            Op::RevealRequest { from, round, mask } => {
                let (from, round) = (self.member(from), self.round(round));
                let missing = (0..self.n as u16)
                    .filter(|m| mask & (1 << m) != 0)
                    .collect();
                self.deliver(
                    from,
                    Msg::RevealRequest {
                        session: SESSION,
                        round,
                        missing,
                    },
                );
            }
            Op::ProofRequest { from } => {
                let from = self.member(from);
                self.deliver(from, Msg::ProofRequest { session: SESSION });
            }
            Op::Equivocation {
                from,
                accused,
                round,
                a,
                b,
            } => {
                let (from, m, round) = (self.member(from), self.signer(accused), self.round(round));
                let a = self.commit(m, round, x_of(m, round, a));
                let b = self.commit(m, round, x_of(m, round, b));
                self.deliver(from, Msg::Fraud(Box::new(FraudProof::Equivocation { a, b })));
            }
            Op::InvalidReveal {
                from,
                accused,
                round,
                commit,
                reveal,
            } => {
                let (from, m, round) = (self.member(from), self.signer(accused), self.round(round));
                let c = self.commit(m, round, x_of(m, round, commit));
                let rv = SignedReveal::sign(&keys()[m], SESSION, round, x_of(m, round, reveal));
                self.deliver(
                    from,
                    Msg::Fraud(Box::new(FraudProof::InvalidReveal {
                        commit: c,
                        reveal: rv,
                    })),
                );
            }
            Op::ReplayProof { from, idx } => {
                if !self.proofs.is_empty() {
                    let p = self.proofs[usize::from(idx) % self.proofs.len()].clone();
                    let from = self.member(from);
                    self.deliver(from, Msg::Fraud(Box::new(p)));
                }
            }
            Op::Advance { ms } => {
                self.now += u64::from(ms) * 1000;
                if self.cf.poll_timeout().is_some_and(|t| t.0 <= self.now) {
                    self.timeout();
                }
            }
            Op::ToDeadline => {
                if let Some(t) = self.cf.poll_timeout() {
                    self.now = self.now.max(t.0);
                    self.timeout();
                }
            }
            Op::EarlyTimeout => self.timeout(),
            Op::Honest { member, steps } => {
                let m = 1 + usize::from(member) % (self.n - 1);
                for _ in 0..=steps % 3 {
                    self.honest_step(m);
                }
            }
            Op::HonestAll { steps } => {
                for _ in 0..=steps % 5 {
                    for m in 1..self.n {
                        self.honest_step(m);
                    }
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let n = 3 + usize::from(input.n) % (MAX_N - 2); // 3..=5
    let mut cfg = Config::new(SESSION, keys()[..n].iter().map(Keypair::public).collect());
    cfg.min_members = 2 + usize::from(input.min_members) % (n - 1); // 2..=n
    cfg.max_rounds = 1 + u32::from(input.max_rounds) % 5;
    cfg.confirm = input.confirm;
    let me = Keypair::from_seed(&[1; 32]); // member 0
    let cf = CoinFlip::new(cfg, me, [input.entropy; 32], Ed25519Verifier, Instant(0))
        .expect("valid config");
    let mut h = Harness {
        n,
        cf,
        now: 0,
        me: keys()[0].public(),
        my_commits: BTreeMap::new(),
        my_digest: BTreeMap::new(),
        results: BTreeMap::new(),
        last_x: BTreeMap::new(),
        proofs: Vec::new(),
        honest: BTreeMap::new(),
        finished: 0,
        outcome: "",
    };
    h.drain();
    for op in input.ops.into_iter().take(256) {
        h.step(op);
    }
    // Run the clock out: the flip must finish within a bounded number of timers.
    for _ in 0..64 {
        if h.cf.is_finished() {
            break;
        }
        h.step(Op::ToDeadline);
    }
    assert!(h.cf.is_finished(), "not finished after 64 timers");
    assert_eq!(h.finished, 1, "finished without Event::Finished");
    if stats_enabled() {
        // `DATDOT_FUZZ_STATS=1 cargo fuzz run coinflip_ops corpus/coinflip_ops -- -runs=0`
        // shows what the corpus reaches.
        let kinds: Vec<_> = h
            .proofs
            .iter()
            .map(|p| p.verify(&Ed25519Verifier).map(|v| v.kind))
            .collect();
        eprintln!(
            "STATS outcome={:?} rounds_ok={:?} proofs={kinds:?}",
            h.outcome,
            h.results.keys().collect::<Vec<_>>()
        );
    }
});

fn stats_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DATDOT_FUZZ_STATS").is_some())
}
