//! One challenge's committee: a production [`Lifecycle`] per seat, driven block by
//! block as the attestor drives it — facts from the chain, the coin flip among the
//! seats that run one, the audit at each seat's join time, the report after the
//! window, the watch — with each attestor class's misbehaviour applied at the point a
//! real one would apply it.

use std::collections::BTreeMap;
use std::time::Duration;

use datdot_protocol::audit::AuditConfig;
use datdot_protocol::codec;
use datdot_protocol::coinflip::byzantine::Behaviour;
use datdot_protocol::coinflip::{self, Config as FlipConfig, Event};
use datdot_protocol::hash::blake2b256;
use datdot_protocol::identity::{Keypair, PublicKey};
use datdot_protocol::lifecycle::{
    Accusation, Action, AuditFindings, ChainView, Facts, HostingAudit, Lifecycle, Member,
    Notice as LifeNotice, Params, Progress, Submitted,
};
use datdot_protocol::metrics::{MetricSummary, Outcome as AuditOutcome};
use datdot_protocol::time::Instant;
use frame::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::hoster::{self, Content, HosterClass, Served};
use super::runtime::{RuntimeCall, SimRuntime};
use super::{AttestorClass, seed_of};
use crate::coinflip::{FlipMember, flip};
use crate::net::NetConfig;

/// What every committee reads: the network's fixed facts.
#[derive(Debug)]
pub struct World {
    /// Master seed.
    pub seed: u64,
    /// The chain's identity.
    pub chain: [u8; 32],
    /// The feeds' content.
    pub content: Content,
    /// Each feed's signature over its tree.
    pub signatures: BTreeMap<[u8; 32], [u8; 64]>,
    /// Hoster classes.
    pub hoster_class: BTreeMap<u64, HosterClass>,
    /// Attestor classes.
    pub attestor_class: BTreeMap<u64, AttestorClass>,
    /// Block time (ms).
    pub block_ms: u64,
    /// The chain's `AuditSamples`.
    pub samples: u32,
}

/// Whose a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Set-up.
    Setup,
    /// A feed's publication (set-up; retried while the agenda is full).
    Publish {
        /// Which feed of the run.
        feed: usize,
    },
    /// A hoster's confirmation.
    Confirm,
    /// A seat's report.
    Report {
        /// The challenge.
        challenge: u64,
        /// The seat.
        seat: usize,
    },
    /// A seat's reveal.
    Reveal {
        /// The challenge.
        challenge: u64,
        /// The seat.
        seat: usize,
        /// The round.
        round: u32,
    },
    /// A fraud proof.
    Fraud {
        /// The challenge.
        challenge: u64,
    },
}

/// A challenge as drawn.
#[derive(Clone, Debug)]
pub struct Notice {
    /// Its id.
    pub challenge: u64,
    /// The hoster.
    pub hoster: u64,
    /// Committee accounts and their pinned signing keys.
    pub seats: Vec<(u64, [u8; 32])>,
    /// The feed's key.
    pub feed_key: [u8; 32],
    /// The feed's pinned length.
    pub feed_length: u64,
    /// Window start.
    pub start: u32,
    /// Window end.
    pub end: u32,
    /// Report deadline.
    pub report_deadline: u32,
    /// The head when it was drawn.
    pub head: u32,
}

/// One seat.
#[derive(Debug)]
pub struct Seat {
    account: u64,
    class: AttestorClass,
    life: Option<Lifecycle<HostingAudit>>,
    flip: Option<(Duration, [u8; 32])>,
    wants_view: bool,
    restarts: u32,
}

/// What one committee did in one block.
#[derive(Debug, Default)]
pub struct StepOut {
    /// Transactions for the next block.
    pub txs: Vec<super::chain::Tx<Tag>>,
    /// Coin flips run, and those that agreed on `R`.
    pub flips: (u64, u64),
    /// Audits run.
    pub audits: u64,
    /// Reports built: the seat's account and the summary.
    pub reports: Vec<(u64, MetricSummary)>,
    /// Reports the chain refused: the seat's account and why.
    pub refused: Vec<(u64, String)>,
}

/// One challenge's committee.
#[derive(Debug)]
pub struct Committee {
    n: Notice,
    keys: Vec<PublicKey>,
    seats: Vec<Seat>,
    hoster_key: PublicKey,
    fraud_sent: bool,
}

fn at_block(world: &World, b: u32) -> Instant {
    Instant(u64::from(b) * world.block_ms * 1000)
}

fn key_of(world: &World, account: u64) -> Keypair {
    Keypair::from_seed(&seed_of(world.seed, account, b"sign"))
}

fn task(world: &World, n: &Notice, hoster: PublicKey) -> HostingAudit {
    HostingAudit {
        chain: world.chain,
        challenge: n.challenge,
        hoster,
        feed: n.feed_key,
    }
}

fn member(world: &World, account: u64) -> Member {
    Member {
        chain: world.chain,
        key: key_of(world, account),
        params: Params::new(world.block_ms, world.samples),
    }
}

fn fresh(world: &World, n: &Notice, account: u64, restarts: u32) -> [u8; 32] {
    blake2b256(&[
        b"sim/fresh",
        &world.seed.to_le_bytes(),
        &n.challenge.to_le_bytes(),
        &account.to_le_bytes(),
        &restarts.to_le_bytes(),
    ])
}

impl Committee {
    /// The committee of `n`; every seat but the offline ones starts its lifecycle.
    pub fn new(world: &World, n: Notice) -> Self {
        let hoster_key = key_of(world, n.hoster).public();
        let keys: Vec<PublicKey> = n
            .seats
            .iter()
            .filter_map(|(_, k)| PublicKey::from_bytes(k).ok())
            .collect();
        let notice = LifeNotice {
            challenge: n.challenge,
            start: n.start,
            end: n.end,
            report_deadline: n.report_deadline,
        };
        let now = at_block(world, n.head);
        let seats = n
            .seats
            .iter()
            .map(|(a, _)| {
                let class = world.attestor_class[a];
                let life = (class != AttestorClass::Offline).then(|| {
                    Lifecycle::new(
                        notice,
                        member(world, *a),
                        task(world, &n, hoster_key),
                        fresh(world, &n, *a, 0),
                        now,
                        u64::from(n.head),
                    )
                });
                Seat {
                    account: *a,
                    class,
                    life,
                    flip: None,
                    wants_view: false,
                    restarts: 0,
                }
            })
            .collect();
        Committee {
            n,
            keys,
            seats,
            hoster_key,
            fraud_sent: false,
        }
    }

    /// The challenge.
    pub fn id(&self) -> u64 {
        self.n.challenge
    }

    /// The hoster.
    pub fn hoster(&self) -> u64 {
        self.n.hoster
    }

    /// A seat waits for the challenge as the chain holds it.
    pub fn wants_view(&self) -> bool {
        self.seats.iter().any(|s| s.wants_view)
    }

    /// Every seat is over.
    pub fn is_done(&self) -> bool {
        self.seats
            .iter()
            .all(|s| s.life.as_ref().is_none_or(Lifecycle::is_done))
    }

    fn facts(&self, me: usize) -> Facts {
        Facts {
            committee: self.keys.clone(),
            me,
            feed_length: self.n.feed_length,
            repeated_keys: false,
        }
    }

    /// Block `head`: results of last block's transactions, the chain's view of the
    /// challenge (if a seat asked), then every seat's actions up to the next block.
    pub fn step(
        &mut self,
        world: &World,
        head: u32,
        view: Option<pallet_datdot::ChallengeOf<SimRuntime>>,
        results: Vec<(Tag, DispatchResult)>,
    ) -> StepOut {
        let mut out = StepOut::default();
        let now = at_block(world, head);
        for (tag, r) in results {
            match tag {
                Tag::Report { seat, .. } => {
                    let res = match r {
                        Ok(()) => Submitted::Accepted,
                        Err(e) if e == pallet_datdot::Error::<SimRuntime>::TooEarly.into() => {
                            Submitted::TooEarly
                        }
                        Err(e)
                            if e == pallet_datdot::Error::<SimRuntime>::AlreadyReported.into() =>
                        {
                            Submitted::AlreadyReported
                        }
                        Err(e) => {
                            out.refused
                                .push((self.seats[seat].account, format!("{e:?}")));
                            Submitted::Refused
                        }
                    };
                    if let Some(l) = &mut self.seats[seat].life {
                        l.handle_report_result(now, res);
                    }
                }
                Tag::Reveal { seat, round, .. } => {
                    if let Some(l) = &mut self.seats[seat].life {
                        l.handle_reveal_result(now, round, Some(r.is_ok()));
                    }
                }
                _ => {}
            }
        }
        let view = view.map(|ch| {
            let accusations: Vec<Accusation> = ch
                .accusations
                .iter()
                .map(|a| Accusation {
                    member: usize::from(a.member),
                    round: a.round,
                    cleared: a.cleared,
                })
                .collect();
            (ch.verdict.is_some(), accusations)
        });
        for i in 0..self.seats.len() {
            if self.seats[i].wants_view {
                self.seats[i].wants_view = false;
                let v = view.as_ref().map(|(settled, accusations)| ChainView {
                    settled: *settled,
                    me: Some(i),
                    accusations: accusations.clone(),
                });
                if let Some(l) = &mut self.seats[i].life {
                    l.handle_challenge(now, v);
                }
            }
            if let Some(l) = &mut self.seats[i].life {
                l.handle_head(now, u64::from(head));
            }
            self.drain(world, i, now, head, &mut out);
        }
        // The coin flip, once its seats have asked for it (they learn of it together).
        if self.seats.iter().any(|s| s.flip.is_some()) {
            self.run_flip(world, now, head, &mut out);
        }
        // Join times within this block.
        let next = at_block(world, head + 1);
        for i in 0..self.seats.len() {
            while let Some(at) = self.seats[i]
                .life
                .as_ref()
                .and_then(Lifecycle::poll_timeout)
            {
                if at >= next {
                    break;
                }
                if let Some(l) = &mut self.seats[i].life {
                    l.handle_timeout(at);
                }
                self.drain(world, i, at, head, &mut out);
            }
        }
        out
    }

    fn run_flip(&mut self, world: &World, now: Instant, head: u32, out: &mut StepOut) {
        let session = coinflip::challenge_session(&world.chain, self.n.challenge);
        let budget = self
            .seats
            .iter()
            .filter_map(|s| s.flip.map(|(b, _)| b))
            .max()
            .unwrap_or_default();
        let members: Vec<FlipMember> = self
            .seats
            .iter()
            .map(|s| FlipMember {
                seed: seed_of(world.seed, s.account, b"sign"),
                entropy: s.flip.map_or([0; 32], |(_, e)| e),
                behaviour: match s.class {
                    _ if s.flip.is_none() => Some(Behaviour::Offline),
                    AttestorClass::Equivocating => Some(Behaviour::Equivocate),
                    AttestorClass::Withholding => Some(Behaviour::WithholdReveal),
                    _ => None,
                },
            })
            .collect();
        let cfg = FlipConfig::within(session, self.keys.clone(), budget);
        let mut rng = ChaCha20Rng::seed_from_u64(world.seed ^ self.n.challenge.rotate_left(17));
        let f = flip(&cfg, &members, &NetConfig::default(), now, budget, &mut rng);
        out.flips.0 += 1;
        let mut proofs: Vec<_> = Vec::new();
        for (i, r) in f.members.iter().enumerate() {
            if self.seats[i].flip.take().is_none() {
                continue;
            }
            let (accused, last_round) = (r.accused(), r.last_round());
            if self.seats[i].class.honest() {
                for e in &r.events {
                    if let Event::Fraud {
                        proof,
                        detected_here: true,
                        ..
                    } = e
                    {
                        proofs.push((self.seats[i].account, proof.clone()));
                    }
                }
            }
            let at = r.finished_at.unwrap_or(f.ended_at);
            let outcome = r.outcome.clone().unwrap_or(coinflip::Outcome::Offline {
                round: last_round,
                phase: coinflip::Phase::Commit,
                unresponsive: Vec::new(),
                withheld: Vec::new(),
            });
            if i == 0 || matches!(outcome, coinflip::Outcome::Success { .. }) {
                out.flips.1 +=
                    u64::from(i == 0 && matches!(outcome, coinflip::Outcome::Success { .. }));
            }
            if let Some(l) = &mut self.seats[i].life {
                l.handle_flip_done(at, &outcome, last_round, r.reveals.clone(), accused);
            }
            self.drain(world, i, at, head, out);
        }
        // Each offender once (the chain takes one proof per offender and challenge).
        let mut seen = Vec::new();
        for (who, p) in proofs {
            let bytes = codec::to_bytes(&*p);
            if seen.contains(&bytes) {
                continue;
            }
            seen.push(bytes.clone());
            out.txs.push(super::chain::Tx {
                who,
                call: RuntimeCall::Datdot(pallet_datdot::Call::submit_fraud_proof {
                    challenge: self.n.challenge,
                    proof: bytes.try_into().expect("a proof fits"),
                }),
                tag: Tag::Fraud {
                    challenge: self.n.challenge,
                },
            });
        }
    }

    /// Carry out seat `i`'s actions at `now`.
    fn drain(&mut self, world: &World, i: usize, now: Instant, head: u32, out: &mut StepOut) {
        let id = self.n.challenge;
        loop {
            let Some(action) = self.seats[i].life.as_mut().and_then(Lifecycle::poll_action) else {
                return;
            };
            let seat = &mut self.seats[i];
            match action {
                Action::Persist => {
                    if seat.class == AttestorClass::Restarting {
                        // A crash right after the write: the rest of the queue is lost,
                        // the record is all that survives.
                        let Some(l) = &seat.life else { return };
                        let bytes = codec::to_bytes(l.progress());
                        let p: Progress =
                            codec::from_bytes(&bytes).expect("our own record decodes");
                        seat.restarts += 1;
                        let n = &self.n;
                        seat.life = Some(Lifecycle::resume(
                            p,
                            member(world, seat.account),
                            task(world, n, self.hoster_key),
                            fresh(world, n, seat.account, seat.restarts),
                            now,
                            u64::from(head),
                        ));
                    }
                }
                Action::ReadFacts => {
                    let facts = self.facts(i);
                    if let Some(l) = &mut self.seats[i].life {
                        l.handle_facts(now, facts);
                    }
                }
                Action::Flip {
                    budget, entropy, ..
                } => seat.flip = Some((budget, entropy)),
                Action::RunTask { sample, cap } => {
                    out.audits += 1;
                    let config = AuditConfig::default().capped(cap);
                    let findings = match seat.class {
                        AttestorClass::Copying => copied(sample.len()),
                        class => {
                            let served = Served {
                                class: world.hoster_class[&self.n.hoster],
                                key: &key_of(world, self.n.hoster),
                                content: &world.content,
                                feed: self.n.feed_key,
                                signature: world.signatures[&self.n.feed_key],
                                chain: world.chain,
                                seed: world.seed ^ self.n.hoster,
                            };
                            let reader = blake2b256(&[
                                b"sim/reader",
                                &id.to_le_bytes(),
                                &seat.account.to_le_bytes(),
                            ]);
                            let (o, _end) = hoster::audit(
                                &served,
                                self.hoster_key,
                                &sample,
                                config,
                                16,
                                reader,
                                now,
                            );
                            let mut f = AuditFindings {
                                summary: o.summary,
                                failures: o.failures,
                                received: o.received,
                                receipts: o.receipts,
                                fraud: o.fraud,
                            };
                            if class == AttestorClass::Lying {
                                flatter(&mut f.summary);
                            }
                            f
                        }
                    };
                    out.reports.push((seat.account, findings.summary));
                    if let Some(l) = &mut seat.life {
                        l.handle_task_done(now, findings);
                    }
                }
                Action::SubmitFraud(p) => {
                    if !self.fraud_sent {
                        self.fraud_sent = true;
                        out.txs.push(super::chain::Tx {
                            who: seat.account,
                            call: RuntimeCall::Datdot(pallet_datdot::Call::submit_fraud_proof {
                                challenge: id,
                                proof: codec::to_bytes(&*p).try_into().expect("a proof fits"),
                            }),
                            tag: Tag::Fraud { challenge: id },
                        });
                    }
                }
                Action::SubmitReport(bytes) => out.txs.push(super::chain::Tx {
                    who: seat.account,
                    call: RuntimeCall::Datdot(pallet_datdot::Call::submit_report {
                        challenge: id,
                        report: bytes.try_into().expect("a report fits"),
                    }),
                    tag: Tag::Report {
                        challenge: id,
                        seat: i,
                    },
                }),
                Action::ReadChallenge => seat.wants_view = true,
                Action::PublishReveal { round, bytes } => {
                    if seat.class == AttestorClass::Withholding {
                        if let Some(l) = &mut seat.life {
                            l.handle_reveal_result(now, round, Some(false));
                        }
                    } else {
                        out.txs.push(super::chain::Tx {
                            who: seat.account,
                            call: RuntimeCall::Datdot(pallet_datdot::Call::publish_reveal {
                                challenge: id,
                                reveal: bytes.try_into().expect("a reveal fits"),
                            }),
                            tag: Tag::Reveal {
                                challenge: id,
                                seat: i,
                                round,
                            },
                        });
                    }
                }
                Action::FlipSkipped(_)
                | Action::Scheduled { .. }
                | Action::TooLate { .. }
                | Action::CannotAnswer { .. }
                | Action::Done(_) => {}
            }
        }
    }
}

/// A copier's findings: the whole sample served, nothing to show for it.
fn copied(k: usize) -> AuditFindings {
    let k32 = u32::try_from(k).unwrap_or(u32::MAX);
    let mut m = MetricSummary::empty(AuditOutcome::Completed);
    m.requests = k32;
    m.ok_blocks = k32;
    m.bytes_received = 4096 * k as u64;
    m.latency_p50_us = 20_000;
    m.latency_p90_us = 21_000;
    m.latency_p99_us = 22_000;
    m.latency_max_us = 22_000;
    m.ttfb_p50_us = 20_000;
    m.ttfb_p99_us = 21_000;
    m.throughput_bps = 20 << 20;
    m.throughput_p50_bps = 20 << 20;
    m.connect_time_us = 40_000;
    AuditFindings {
        summary: m,
        failures: Vec::new(),
        received: vec![None; k],
        receipts: Vec::new(),
        fraud: Vec::new(),
    }
}

/// A liar's edit: ten times the speed.
fn flatter(m: &mut MetricSummary) {
    if !m.conclusive() {
        return;
    }
    m.throughput_bps = m.throughput_bps.saturating_mul(10);
    m.throughput_p50_bps = m.throughput_p50_bps.saturating_mul(10);
    for v in [
        &mut m.latency_p50_us,
        &mut m.latency_p90_us,
        &mut m.latency_p99_us,
        &mut m.latency_max_us,
        &mut m.ttfb_p50_us,
        &mut m.ttfb_p99_us,
        &mut m.connect_time_us,
    ] {
        *v /= 10;
    }
}
