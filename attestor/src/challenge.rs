//! One challenge, start to finish (SPEC §3), as a thin driver of the protocol's sans-IO
//! challenge lifecycle (`datdot_protocol::lifecycle`). The machine decides every step:
//! whether the coin flip runs, the join time and sample, whether it is too late to
//! audit, the report, when the report is submitted and retried, and what is answered
//! while the challenge is watched. This module carries its actions out: it reads the
//! chain, runs the coin flip over the secret swarm ([`crate::flip`]), audits the hoster
//! (`datdot_net::audit`, with bad-data proofs completed through the feed's other peers),
//! submits fraud proofs (as soon as they are verified), the report and our reveals, and
//! logs and counts each step.
//!
//! The machine's progress is stored ([`crate::state`]) whenever it asks, before the next
//! action, so a restart resumes: a finished report is submitted; a finished coin flip is
//! followed by the audit if the window is still open; a flip cut short runs again with
//! its stored entropy (the same commits).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use datdot_chain_client::{
    AccountId32, ChainClient, ChainError, ChallengeId, DatdotError, Keypair as ChainKeypair, node,
};
use datdot_net::Limits;
use datdot_net::audit::{AuditOutput, AuditPlan, AuditTarget, audit, prove_leaf};
use datdot_protocol::codec::{from_bytes, to_bytes};
use datdot_protocol::coinflip::{self, CoinFlip, Outcome, SessionId};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::identity::{Ed25519Verifier, Keypair, PublicKey};
use datdot_protocol::lifecycle::{
    self, Accusation, Action, AuditFindings, ChainView, Ended, FlipRecord, FlipSkipped,
    HostingAudit, Lifecycle, Notice, Params, Progress, Submitted, Task,
};
use datdot_protocol::metrics::{MetricSummary, Outcome as AuditOutcome};
use datdot_protocol::report::Report;
use rand::RngCore;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::Config;
use crate::flip::{self, Fraud, Tamper};
use crate::metrics::Counters;
use crate::state::State;
use datdot_net::swarm::{Member, Swarm};

/// What every challenge task shares.
pub struct Ctx {
    /// The chain.
    pub chain: ChainClient,
    /// Our chain account's key.
    pub signer: ChainKeypair,
    /// Our chain account.
    pub me: AccountId32,
    /// Our protocol signing key (coin flip, reports).
    pub keypair: Arc<Keypair>,
    /// Its seed (a `Keypair` per coin flip).
    pub signing_seed: [u8; 32],
    /// The committee transport.
    pub swarm: Swarm,
    /// Configuration.
    pub config: Config,
    /// The chain's block time.
    pub block_ms: u64,
    /// Transport limits for audits.
    pub limits: Limits,
    /// Persistent progress.
    pub state: State,
    /// Counters.
    pub counters: Arc<Counters>,
    /// The process's time epoch (protocol `Instant`s count from here).
    pub epoch: std::time::Instant,
    /// Test-only byzantine coin-flip behaviour (feature `byzantine`).
    #[cfg(feature = "byzantine")]
    pub byzantine: Option<datdot_protocol::coinflip::byzantine::Behaviour>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// A challenge to handle: from a `ChallengeScheduled` event, or resumed from state.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// Challenge id.
    pub challenge: ChallengeId,
    /// Window start, end, report deadline (blocks).
    pub start: u32,
    /// Window end.
    pub end: u32,
    /// Report deadline.
    pub report_deadline: u32,
    /// The chain head when we learned of it (its time is "now").
    pub seen_at: u64,
}

impl node::Work for Job {
    fn id(&self) -> u64 {
        self.challenge
    }
}

impl Ctx {
    fn tamper(&self) -> Option<Tamper> {
        #[cfg(feature = "byzantine")]
        {
            self.byzantine
                .map(|b| Tamper::new(b, Keypair::from_seed(&self.signing_seed)))
        }
        #[cfg(not(feature = "byzantine"))]
        {
            None
        }
    }

    /// A test-only withholder (feature `byzantine`): it does not answer accusations.
    fn withholds(&self) -> bool {
        #[cfg(feature = "byzantine")]
        {
            self.byzantine == Some(datdot_protocol::coinflip::byzantine::Behaviour::WithholdReveal)
        }
        #[cfg(not(feature = "byzantine"))]
        {
            false
        }
    }

    async fn retry<T, E, F, Fut>(&self, what: &str, f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: Into<anyhow::Error>,
    {
        node::retry_for(&self.counters.chain_errors, what, node::OUTAGE_PATIENCE, f).await
    }

    /// Submit a fraud proof, retried through a chain outage; a refusal is final. (The
    /// chain client gives concurrent transactions of one account their own nonces.)
    pub async fn submit_fraud(&self, id: ChallengeId, proof: &FraudProof) {
        let bytes = to_bytes(proof);
        let res = self
            .retry("submitting a fraud proof", || async {
                self.chain
                    .submit_fraud_proof(&self.signer, id, bytes.clone())
                    .await
            })
            .await;
        match res {
            Ok(()) => {
                self.counters.fraud_accepted.fetch_add(1, Relaxed);
                info!(challenge = id, kind = ?proof_kind(proof), "fraud proof accepted by the chain");
            }
            Err(e) => {
                self.counters.fraud_refused.fetch_add(1, Relaxed);
                warn!(challenge = id, "fraud proof not accepted: {e:#}");
            }
        }
    }
}

fn proof_kind(p: &FraudProof) -> &'static str {
    match p {
        FraudProof::Equivocation { .. } => "equivocation",
        FraudProof::InvalidReveal { .. } => "invalid-reveal",
        FraudProof::Divergent { .. } => "divergent",
        FraudProof::BadData { .. } => "bad-data",
        _ => "other",
    }
}

/// Everything read from the chain about one challenge.
struct Facts {
    committee: Vec<PublicKey>,
    members: Vec<Member>,
    me: usize,
    hoster: AuditTarget,
    feed_id: u64,
    feed_length: u64,
}

fn parse_addr(bytes: &[u8]) -> SocketAddr {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        // Unparseable: a link to it fails and is retried; the member counts as offline.
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

async fn facts(ctx: &Ctx, id: ChallengeId) -> anyhow::Result<Facts> {
    let ch = ctx
        .retry("reading the challenge", || ctx.chain.challenge(id))
        .await?
        .context("the challenge is gone from the chain")?;
    let accounts = ch.attestors.0.clone();
    let me = accounts
        .iter()
        .position(|a| *a == ctx.me)
        .context("we are not in this challenge's committee")?;
    let committee = ch
        .keys
        .0
        .iter()
        .map(PublicKey::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("a pinned committee key is invalid: {e}"))?;
    anyhow::ensure!(
        committee[me] == ctx.keypair.public(),
        "the chain pinned another signing key for us in this challenge"
    );
    let mut members = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let p = ctx
            .retry("reading a member", || ctx.chain.participant(a))
            .await?;
        members.push(match p {
            Some(p) => Member {
                addr: parse_addr(&p.endpoint.addr.0),
                noise: p.endpoint.noise_key,
            },
            None => Member {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                noise: [0; 32],
            },
        });
    }
    let hp = ctx
        .retry("reading the hoster", || ctx.chain.participant(&ch.hoster))
        .await?
        .context("the hoster is not registered")?;
    // The length pinned when the challenge was drawn (the chain recomputes our sample
    // with it; the feed may have grown since).
    let feed_length = ch.feed_length;
    Ok(Facts {
        committee,
        members,
        me,
        hoster: AuditTarget {
            addr: parse_addr(&hp.endpoint.addr.0),
            noise_key: hp.endpoint.noise_key,
            hoster: PublicKey::from_bytes(&ch.hoster_key)
                .map_err(|e| anyhow::anyhow!("the hoster's pinned key is invalid: {e}"))?,
            feed: ch.feed_key,
            chain: ctx.chain.chain_id(),
        },
        feed_id: ch.feed,
        feed_length,
    })
}

/// Handle one challenge to the end (its answer deadline). Errors are logged by the caller.
pub async fn handle(ctx: Arc<Ctx>, job: Job) -> anyhow::Result<()> {
    let span = info_span!("challenge", id = job.challenge);
    run(&ctx, job).instrument(span).await
}

/// The hosting audit as the machine's task. Its target (the hoster's pinned key) comes
/// with the chain's facts, after the machine is made: set then.
struct Hosting(Arc<OnceLock<HostingAudit>>);

impl Task for Hosting {
    type Output = AuditFindings;
    type Fraud = FraudProof;
    fn not_done(&self) -> AuditFindings {
        AuditFindings::not_done()
    }
    fn conclusive(&self, out: &AuditFindings) -> bool {
        out.summary.conclusive()
    }
    fn fraud(&self, out: &AuditFindings) -> Vec<FraudProof> {
        out.fraud.clone()
    }
    fn report(
        &self,
        out: AuditFindings,
        sample: Vec<u64>,
        flip: &FlipRecord,
        key: &Keypair,
    ) -> Result<Vec<u8>, &'static str> {
        let res = self
            .0
            .get()
            .ok_or("the challenge's facts were not read")
            .and_then(|a| {
                let (r, moved) = a.build(out, sample, flip, key);
                // The chain counts as verified only blocks a receipt covers (a member
                // that did not download holds none): the rest the hoster served without
                // signing for them.
                if moved > 0 {
                    warn!(
                        blocks = moved,
                        "verified blocks without the hoster's receipt count as misbehaved"
                    );
                }
                r.verify(&Ed25519Verifier)
                    .map_err(|_| "our own report does not verify")?;
                Ok(to_bytes(&r))
            });
        if let Err(e) = res {
            warn!("no report: {e}");
        }
        res
    }
}

/// "coin flip done", logged once the flip's record is stored (a test kills us on it).
struct FlipDone {
    outcome: &'static str,
    round: u32,
    fraud: usize,
    ms: u64,
}

/// What the driver keeps beside the machine.
struct Driver<'a> {
    ctx: &'a Arc<Ctx>,
    id: ChallengeId,
    /// Read from the chain when the machine asks for its facts.
    facts: Option<Facts>,
    target: Arc<OnceLock<HostingAudit>>,
    /// The flip's entropy stored before this run (a flip cut short by a restart).
    stored_entropy: Option<[u8; 32]>,
    flip_done: Option<FlipDone>,
    /// The chain's refusal of our report.
    refused: Option<anyhow::Error>,
}

async fn run(ctx: &Arc<Ctx>, job: Job) -> anyhow::Result<()> {
    let id = job.challenge;
    let target = Arc::new(OnceLock::new());
    let member = lifecycle::Member {
        chain: ctx.chain.chain_id(),
        key: Keypair::from_seed(&ctx.signing_seed),
        params: Params::new(ctx.block_ms, ctx.config.samples),
    };
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    let now = flip::instant(ctx.epoch);
    let task = Hosting(target.clone());
    let stored = ctx.state.get(id)?;
    let stored_entropy = stored.as_ref().and_then(|p| p.entropy);
    let mut lc = match stored {
        Some(p) => Lifecycle::resume(p, member, task, fresh, now, job.seen_at),
        None => {
            let notice = Notice {
                challenge: id,
                start: job.start,
                end: job.end,
                report_deadline: job.report_deadline,
            };
            Lifecycle::new(notice, member, task, fresh, now, job.seen_at)
        }
    };
    let mut d = Driver {
        ctx,
        id,
        facts: None,
        target,
        stored_entropy,
        flip_done: None,
        refused: None,
    };
    let block = Duration::from_millis(ctx.block_ms);
    let mut next_head = None;
    loop {
        while let Some(a) = lc.poll_action() {
            if d.act(&mut lc, a).await? {
                return Ok(());
            }
        }
        if let Some(t) = lc.poll_timeout() {
            let at = ctx.epoch + Duration::from_micros(t.as_micros());
            tokio::time::sleep_until(at.into()).await;
            lc.handle_timeout(flip::instant(ctx.epoch));
            continue;
        }
        // Submitting or watching: the chain's head about once per block.
        if let Some(at) = next_head {
            tokio::time::sleep_until(at).await;
        }
        let head = ctx.retry("reading the head", || ctx.chain.head()).await?;
        next_head = Some(tokio::time::Instant::now() + block);
        lc.handle_head(flip::instant(ctx.epoch), head);
    }
}

impl Driver<'_> {
    /// Carry out `a`; `true` once the machine is over.
    async fn act(&mut self, lc: &mut Lifecycle<Hosting>, a: Action) -> anyhow::Result<bool> {
        let ctx = self.ctx;
        let id = self.id;
        let now = || flip::instant(ctx.epoch);
        match a {
            Action::Persist => {
                ctx.state.put(lc.progress())?;
                if let Some(f) = self.flip_done.take() {
                    info!(
                        outcome = f.outcome,
                        round = f.round,
                        fraud = f.fraud,
                        ms = f.ms,
                        "coin flip done"
                    );
                }
            }
            Action::ReadFacts => {
                let f = facts(ctx, id).await?;
                info!(
                    members = f.committee.len(),
                    index = f.me,
                    hoster = %f.hoster.addr,
                    feed = f.feed_id,
                    "challenge: joining the committee"
                );
                let _ = self.target.set(HostingAudit {
                    chain: ctx.chain.chain_id(),
                    challenge: id,
                    hoster: f.hoster.hoster,
                    feed: f.hoster.feed,
                });
                let facts = lifecycle::Facts {
                    committee: f.committee.clone(),
                    me: f.me,
                    feed_length: f.feed_length,
                    repeated_keys: datdot_net::swarm::repeated_keys(&f.members),
                };
                self.facts = Some(f);
                lc.handle_facts(now(), facts);
            }
            Action::FlipSkipped(why) => {
                // Too late to take part (peers have moved on), or a committee whose
                // members cannot be told apart: no R, nobody accused.
                let why = match why {
                    FlipSkipped::PhaseOver => "its phase is over",
                    FlipSkipped::RepeatedKeys => "a Noise key appears twice in the committee",
                };
                warn!("coin flip not run: {why}; auditing with a private R");
                ctx.counters.flips_offline.fetch_add(1, Relaxed);
            }
            Action::Flip {
                session,
                committee,
                me,
                budget,
                entropy,
            } => {
                self.flip(lc, session, committee, me, budget, entropy)
                    .await?
            }
            Action::Scheduled { at, sampled } => {
                let n = now();
                if at > n {
                    info!(
                        in_ms = at.saturating_since(n).as_millis() as u64,
                        blocks = sampled,
                        "audit scheduled"
                    );
                }
            }
            Action::RunTask { sample, cap } => {
                let f = self.facts.as_ref().context("an audit before the facts")?;
                let plan = AuditPlan {
                    sample,
                    config: ctx.config.audit.config(Some(cap))?,
                    window: ctx.config.window,
                    epoch: ctx.epoch,
                };
                let out = audit(&f.hoster, &plan, &ctx.limits).await;
                audit_done(ctx, &out.summary);
                let fraud = bad_data_proofs(ctx, f, &out).await;
                let findings = AuditFindings {
                    summary: out.summary,
                    failures: out.failures,
                    received: out.received,
                    receipts: out.receipts,
                    fraud,
                };
                lc.handle_task_done(now(), findings);
            }
            Action::TooLate { left, needed } => {
                warn!(
                    left_ms = left.as_millis() as u64,
                    needed_ms = needed.as_millis() as u64,
                    "too late to audit in the window: reporting `not audited`"
                );
                audit_done(ctx, &MetricSummary::empty(AuditOutcome::NotAudited));
            }
            Action::SubmitFraud(p) => {
                let c = ctx.clone();
                tokio::spawn(async move { c.submit_fraud(id, &p).await });
            }
            Action::SubmitReport(bytes) => {
                let res = ctx.chain.submit_report(&ctx.signer, id, bytes).await;
                let s = self.submitted(res);
                lc.handle_report_result(now(), s);
                if matches!(s, Submitted::Accepted | Submitted::AlreadyReported) {
                    reported(lc.progress());
                }
            }
            Action::ReadChallenge => {
                let ch = ctx
                    .retry("reading the challenge", || ctx.chain.challenge(id))
                    .await?;
                let view = ch.map(|ch| ChainView {
                    settled: ch.verdict.is_some(),
                    me: ch.attestors.0.iter().position(|a| *a == ctx.me),
                    accusations: ch
                        .accusations
                        .0
                        .iter()
                        .map(|a| Accusation {
                            member: usize::from(a.member),
                            round: a.round,
                            cleared: a.cleared,
                        })
                        .collect(),
                });
                lc.handle_challenge(now(), view);
            }
            Action::PublishReveal { round, bytes } => {
                let res = if ctx.withholds() {
                    // A test-only withholder keeps what it withheld: the devnet shows
                    // the penalty.
                    cannot_answer(round);
                    Some(false)
                } else {
                    self.publish(round, bytes).await
                };
                lc.handle_reveal_result(now(), round, res);
            }
            Action::CannotAnswer { round } => cannot_answer(round),
            Action::Done(how) => {
                return match how {
                    Ended::Watched | Ended::Gone => Ok(true),
                    Ended::DeadlinePassed => {
                        ctx.counters.report_failures.fetch_add(1, Relaxed);
                        anyhow::bail!(
                            "the report deadline (block {}) passed",
                            lc.notice().report_deadline
                        )
                    }
                    Ended::Refused => Err(self
                        .refused
                        .take()
                        .unwrap_or_else(|| anyhow::anyhow!("the chain refused our report"))),
                };
            }
        }
        Ok(false)
    }

    /// Run the coin flip (its entropy is stored) and hand its result to the machine.
    async fn flip(
        &mut self,
        lc: &mut Lifecycle<Hosting>,
        session: SessionId,
        committee: Vec<PublicKey>,
        me: usize,
        budget: Duration,
        entropy: [u8; 32],
    ) -> anyhow::Result<()> {
        let ctx = self.ctx;
        let id = self.id;
        if self.stored_entropy == Some(entropy) {
            info!("coin flip: resuming with the stored entropy (the same commits as before)");
        }
        let f = self
            .facts
            .as_ref()
            .context("a coin flip before the facts")?;
        let cfg = coinflip::Config::within(session, committee.clone(), budget);
        let cf = CoinFlip::new(
            cfg,
            Keypair::from_seed(&ctx.signing_seed),
            entropy,
            Ed25519Verifier,
            flip::instant(ctx.epoch),
        )
        .map_err(|e| anyhow::anyhow!("coin flip: {e}"))?;
        let link = ctx.swarm.join(session, f.members.clone(), me)?;
        let submit = ctx.clone();
        let rep = flip::run(
            link,
            cf,
            committee,
            ctx.keypair.public(),
            ctx.epoch,
            ctx.tamper(),
            move |fr: &Fraud| {
                if fr.detected_here {
                    let c = submit.clone();
                    let p = fr.proof.clone();
                    tokio::spawn(async move { c.submit_fraud(id, &p).await });
                }
            },
        )
        .await;
        let c = &ctx.counters;
        let last_round = rep.rounds.last().map(|r| r.0).unwrap_or(0);
        let round = match &rep.outcome {
            Outcome::Success { round, .. } => {
                c.flips_success.fetch_add(1, Relaxed);
                *round
            }
            Outcome::Offline { round, .. } => {
                c.flips_offline.fetch_add(1, Relaxed);
                *round
            }
            Outcome::Malicious { .. } => {
                c.flips_malicious.fetch_add(1, Relaxed);
                last_round
            }
        };
        if let Ok(mut l) = c.last.lock() {
            l.0 = rep.to_result.unwrap_or(rep.elapsed).as_micros() as u64;
        }
        self.flip_done = Some(FlipDone {
            outcome: flip_name(&rep.outcome),
            round,
            fraud: rep.fraud.len(),
            ms: rep.elapsed.as_millis() as u64,
        });
        // Proofs peers showed us (the chain acts once per offender; ours may be in already).
        for fr in rep.fraud.iter().filter(|fr| !fr.detected_here) {
            let c = ctx.clone();
            let p = fr.proof.clone();
            tokio::spawn(async move { c.submit_fraud(id, &p).await });
        }
        // Those benched on the way to the last round are accused.
        lc.handle_flip_done(
            flip::instant(ctx.epoch),
            &rep.outcome,
            last_round,
            rep.reveals.into_values().collect(),
            rep.withheld,
        );
        Ok(())
    }

    /// The chain's answer to our report, counted and logged.
    fn submitted(&mut self, res: Result<(), ChainError>) -> Submitted {
        let c = &self.ctx.counters;
        let e = match res {
            Ok(()) => {
                c.reports.fetch_add(1, Relaxed);
                info!("report accepted by the chain");
                return Submitted::Accepted;
            }
            Err(e) => e,
        };
        match (e.datdot(), e.rejected()) {
            (Some(DatdotError::TooEarly), _) => Submitted::TooEarly,
            (Some(DatdotError::AlreadyReported), _) => {
                info!("report already on chain");
                Submitted::AlreadyReported
            }
            (_, Some(_)) => {
                c.report_failures.fetch_add(1, Relaxed);
                self.refused = Some(anyhow::Error::new(e).context("submitting the report"));
                Submitted::Refused
            }
            // Not a refusal (the node dropped it, the connection broke): tried again
            // until the deadline.
            (_, None) => {
                c.chain_errors.fetch_add(1, Relaxed);
                warn!("submitting the report failed, retrying: {e:#}");
                Submitted::Lost
            }
        }
    }

    /// Publish our reveal of `round`: `Some(true)` taken, `Some(false)` refused (final),
    /// `None` not answered (tried again at the next read, until the answer deadline).
    async fn publish(&self, round: u32, bytes: Vec<u8>) -> Option<bool> {
        let ctx = self.ctx;
        match ctx.chain.publish_reveal(&ctx.signer, self.id, bytes).await {
            Ok(()) => {
                ctx.counters.reveals_published.fetch_add(1, Relaxed);
                info!(round, "accused of withholding: our reveal is published");
                Some(true)
            }
            Err(e) if e.rejected().is_some() => {
                warn!(round, "our reveal was refused: {e:#}");
                Some(false)
            }
            Err(e) => {
                ctx.counters.chain_errors.fetch_add(1, Relaxed);
                warn!(round, "publishing our reveal failed, retrying: {e:#}");
                None
            }
        }
    }
}

fn cannot_answer(round: u32) {
    warn!(
        round,
        "accused of withholding, and no entropy to answer with"
    );
}

/// The one line per challenge an operator reads.
fn reported(p: &Progress) {
    let Some(summary) = p
        .report
        .as_deref()
        .and_then(|b| from_bytes::<Report>(b).ok())
        .map(|r| r.metrics)
    else {
        warn!("our stored report does not decode");
        return;
    };
    let flip = p.flip.as_ref();
    info!(
        flip = if flip.is_some_and(|f| f.result.is_some()) {
            "agreed"
        } else {
            "no agreed R"
        },
        round = flip.map_or(0, |f| f.round),
        accused = flip.map_or(0, |f| f.accused.len()),
        audit = ?summary.outcome,
        verified = summary.ok_blocks,
        requested = summary.requests,
        lacking = summary.lacks_data,
        misbehaved = summary.misbehaved,
        p50_ms = summary.latency_p50_us as f64 / 1e3,
        p99_ms = summary.latency_p99_us as f64 / 1e3,
        mib_s = summary.throughput_bps as f64 / (1024.0 * 1024.0),
        "challenge reported"
    );
}

/// Count and log an audit's result (one not run, too late, counts as `not audited`).
fn audit_done(ctx: &Ctx, s: &MetricSummary) {
    let c = &ctx.counters;
    let i = match s.outcome {
        AuditOutcome::Completed => 0,
        AuditOutcome::ConnectFailed => 1,
        AuditOutcome::ProgressTimeout => 2,
        AuditOutcome::HardMaxDuration => 3,
        AuditOutcome::NotAudited => 4,
    };
    c.audits[i].fetch_add(1, Relaxed);
    c.blocks_ok.fetch_add(u64::from(s.ok_blocks), Relaxed);
    c.blocks_lacking.fetch_add(u64::from(s.lacks_data), Relaxed);
    c.blocks_misbehaved
        .fetch_add(u64::from(s.misbehaved), Relaxed);
    c.blocks_timeout.fetch_add(u64::from(s.timeouts), Relaxed);
    if let Ok(mut l) = c.last.lock() {
        l.1 = s.latency_p50_us;
    }
    info!(
        outcome = ?s.outcome,
        verified = s.ok_blocks,
        lacking = s.lacks_data,
        misbehaved = s.misbehaved,
        timeouts = s.timeouts,
        p50_us = s.latency_p50_us,
        p99_us = s.latency_p99_us,
        throughput_bps = s.throughput_bps,
        "audit done"
    );
}

fn flip_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success { .. } => "success",
        Outcome::Offline { .. } => "offline",
        Outcome::Malicious { .. } => "malicious",
    }
}

/// Bad-data proofs: those the audit built from the hoster's own tree, and for the rest
/// the true leaf from the feed's other peers (its source, its other hosters).
async fn bad_data_proofs(ctx: &Ctx, f: &Facts, out: &AuditOutput) -> Vec<FraudProof> {
    let mut proofs = out.fraud.clone();
    if out.unproven.is_empty() {
        return proofs;
    }
    let peers = match ctx
        .retry("reading the feed's peers", || {
            ctx.chain.feed_peers(f.feed_id, &ctx.me)
        })
        .await
    {
        Ok(Some(p)) => p,
        _ => return proofs,
    };
    for &(ri, entry, index) in &out.unproven {
        for p in &peers {
            let Ok(addr) = p.addr.parse::<SocketAddr>() else {
                continue;
            };
            if addr == f.hoster.addr {
                continue;
            }
            let expect = datdot_net::Expect::Key(p.noise_key);
            match prove_leaf(addr, expect, f.hoster.feed, index, &ctx.limits).await {
                Ok(proof) => {
                    let fp = FraudProof::BadData {
                        receipt: out.receipts[ri].clone(),
                        entry,
                        proof,
                    };
                    if fp.verify(&Ed25519Verifier).is_ok() {
                        proofs.push(fp);
                        break;
                    }
                }
                Err(e) => debug!(peer = %addr, block = index, "true leaf not proven: {e}"),
            }
        }
    }
    proofs
}
