//! One challenge, start to finish (SPEC §3): read the committee and the hoster from the
//! chain, join the secret swarm, run the coin flip, derive our join time and sample
//! from `R`, audit the hoster at that time, build and sign the report, wait for the
//! challenge's end, submit it; submit every fraud proof as soon as it is verified; then
//! watch the challenge until its deadline and answer what can be answered
//! (a withholding accusation against us with our signed reveal, fraud proofs peers
//! showed us that the chain has not acted on).
//!
//! Every step is persisted ([`crate::state`]) before the next, so a restart resumes:
//! a finished report is submitted; a finished coin flip is followed by the audit if the
//! window is still open.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, bail};
use datdot_chain_client::{
    AccountId32, ChainClient, ChallengeId, Keypair as ChainKeypair, Rejected, node,
};
use datdot_net::Limits;
use datdot_net::audit::{AuditOutput, AuditPlan, AuditTarget, audit, prove_leaf};
use datdot_protocol::codec::{Message as _, to_bytes};
use datdot_protocol::coinflip::{
    self, CoinFlip, Msg, Outcome, SignedCommit, Transcript, challenge_session,
};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::hash::Hash;
use datdot_protocol::identity::{Ed25519Verifier, Keypair, PublicKey, Signature};
use datdot_protocol::metrics::Outcome as AuditOutcome;
use datdot_protocol::report::{self, CoinFlipRecord, Report, received_root};
use datdot_protocol::schedule::{Window, assignment, phases};
use rand::RngCore;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::Config;
use crate::flip::{self, Fraud, Tamper};
use crate::metrics::Counters;
use crate::state::{Saved, SavedFlip, State, from_hex, hex_of};
use crate::swarm::{Member, Swarm};

/// Margin kept before the window's end when capping an audit.
const END_MARGIN: Duration = Duration::from_millis(500);

/// A coin flip with less time than this left before its phase ends is not started: the
/// member audits with a private `R` (it joined late: a restart, a late event).
const MIN_FLIP: Duration = Duration::from_millis(300);

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

    async fn retry<T, F, Fut>(&self, what: &str, f: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
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

/// Handle one challenge to the end (its report deadline). Errors are logged by the caller.
pub async fn handle(ctx: Arc<Ctx>, job: Job) -> anyhow::Result<()> {
    let span = info_span!("challenge", id = job.challenge);
    run(&ctx, job).instrument(span).await
}

async fn run(ctx: &Arc<Ctx>, job: Job) -> anyhow::Result<()> {
    let id = job.challenge;
    let block = Duration::from_millis(ctx.block_ms);
    // Wall-clock time of the window's start block, as seen from here.
    let behind =
        block * u32::try_from(job.seen_at.saturating_sub(u64::from(job.start))).unwrap_or(u32::MAX);
    let anchor = tokio::time::Instant::now()
        .checked_sub(behind)
        .unwrap_or_else(tokio::time::Instant::now);
    let window_ms = u64::from(job.end.saturating_sub(job.start)) * ctx.block_ms;
    let window_end = anchor + Duration::from_millis(window_ms);
    let phase = phases(window_ms);
    let flip_end = anchor + Duration::from_millis(phase.flip_end);

    let mut saved = match ctx.state.get(id)? {
        Some(s) => s,
        None => {
            let s = Saved::new(id, job.start, job.end, job.report_deadline);
            ctx.state.put(&s)?;
            s
        }
    };
    if saved.submitted {
        return watch(ctx, id, job, &saved).await;
    }
    let f = facts(ctx, id).await?;
    info!(
        members = f.committee.len(),
        index = f.me,
        hoster = %f.hoster.addr,
        feed = f.feed_id,
        "challenge: joining the committee"
    );

    // 1. The coin flip, within its phase of the window.
    if saved.flip.is_none() {
        let budget = flip_end.saturating_duration_since(tokio::time::Instant::now());
        coin_flip(ctx, id, &f, &mut saved, budget).await?;
    }
    let mut sf = saved.flip.clone().expect("set above");
    // A record from before own secrets (`R` agreed, no `own`): derive it from the stored
    // entropy, as the flip did.
    if sf.own.is_none()
        && sf.result.is_some()
        && let Some(e) = stored_entropy(&saved)
    {
        sf.own = Some(hex::encode(coinflip::round_secret(
            &e,
            &session_of(ctx, id),
            sf.round,
        )));
    }

    // 2. Schedule, audit, report.
    if saved.report.is_none() {
        let key32 = |h: &Option<String>| -> Option<[u8; 32]> {
            hex::decode(h.as_deref()?).ok()?.try_into().ok()
        };
        // No agreed R: a private random one (and own secret), so the hoster still cannot
        // predict the join time or the sample (nobody can check it; DESIGN §16).
        let private = || {
            let mut x = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut x);
            x
        };
        let r: Hash = key32(&sf.result).unwrap_or_else(private);
        let own = key32(&sf.own).unwrap_or_else(private);
        let w = Window {
            start: phase.flip_end,
            end: phase.joins_end.max(phase.flip_end + 1),
            feed_length: f.feed_length,
            samples: ctx.config.samples,
        };
        let a = assignment(&r, &own, &w).map_err(|e| anyhow::anyhow!("schedule: {e}"))?;
        let join = anchor + Duration::from_millis(a.join_at);
        let now = tokio::time::Instant::now();
        if join > now {
            info!(
                in_ms = (join - now).as_millis() as u64,
                blocks = a.indices.len(),
                "audit scheduled"
            );
            tokio::time::sleep_until(join).await;
        }
        let cap = window_end
            .checked_duration_since(tokio::time::Instant::now())
            .unwrap_or_default()
            .saturating_sub(END_MARGIN);
        // The least an on-time member gets (the last join, at the end of the joins,
        // keeps the window's tail): with less, we are late through our own trouble (a
        // restart, a late event), and an audit cut short would count against the hoster.
        let on_time = Duration::from_millis(window_ms - phase.joins_end).saturating_sub(END_MARGIN);
        let out = if cap < on_time {
            warn!(
                left_ms = cap.as_millis() as u64,
                needed_ms = on_time.as_millis() as u64,
                "too late to audit in the window: reporting `not audited`"
            );
            not_audited()
        } else {
            let plan = AuditPlan {
                sample: a.indices.clone(),
                config: ctx.config.audit.config(Some(cap))?,
                window: ctx.config.window,
                epoch: ctx.epoch,
            };
            audit(&f.hoster, &plan, &ctx.limits).await
        };
        let sampled = if out.summary.conclusive() {
            a.indices
        } else {
            Vec::new()
        };
        record_audit(ctx, &out);
        info!(
            outcome = ?out.summary.outcome,
            verified = out.summary.ok_blocks,
            lacking = out.summary.lacks_data,
            misbehaved = out.summary.misbehaved,
            timeouts = out.summary.timeouts,
            p50_us = out.summary.latency_p50_us,
            p99_us = out.summary.latency_p99_us,
            throughput_bps = out.summary.throughput_bps,
            "audit done"
        );
        for p in bad_data_proofs(ctx, &f, &out).await {
            ctx.submit_fraud(id, &p).await;
        }
        let report = build_report(ctx, id, &f, sampled, out, &sf)?;
        saved.report = Some(hex::encode(to_bytes(&report)));
        ctx.state.put(&saved)?;
    }

    // 3. Submit after the end, before the deadline.
    let bytes = hex::decode(saved.report.as_deref().expect("set above"))
        .context("stored report is not hex")?;
    let summary = datdot_protocol::codec::from_bytes::<Report>(&bytes)
        .map(|r| r.metrics)
        .context("stored report does not decode")?;
    submit_report(ctx, id, job, bytes).await?;
    saved.submitted = true;
    ctx.state.put(&saved)?;
    // The one line per challenge an operator reads.
    info!(
        flip = if sf.result.is_some() { "agreed" } else { "no agreed R" },
        round = sf.round,
        accused = sf.accused.len(),
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
    watch(ctx, id, job, &saved).await
}

/// What a member reports when it could not audit in time: nothing about the hoster.
fn not_audited() -> AuditOutput {
    AuditOutput::not_audited()
}

fn record_audit(ctx: &Ctx, out: &AuditOutput) {
    let c = &ctx.counters;
    let i = match out.summary.outcome {
        AuditOutcome::Completed => 0,
        AuditOutcome::ConnectFailed => 1,
        AuditOutcome::ProgressTimeout => 2,
        AuditOutcome::HardMaxDuration => 3,
        AuditOutcome::NotAudited => 4,
    };
    c.audits[i].fetch_add(1, Relaxed);
    c.blocks_ok
        .fetch_add(u64::from(out.summary.ok_blocks), Relaxed);
    c.blocks_lacking
        .fetch_add(u64::from(out.summary.lacks_data), Relaxed);
    c.blocks_misbehaved
        .fetch_add(u64::from(out.summary.misbehaved), Relaxed);
    c.blocks_timeout
        .fetch_add(u64::from(out.summary.timeouts), Relaxed);
    if let Ok(mut l) = c.last.lock() {
        l.1 = out.summary.latency_p50_us;
    }
}

/// Run the coin flip; store its record and our signed reveals (wire bytes, hex).
/// `budget`: the time left until the flip's phase of the window ends; the flip is over
/// by then ([`coinflip::Config::within`]), or not started if it is below [`MIN_FLIP`].
async fn coin_flip(
    ctx: &Arc<Ctx>,
    id: ChallengeId,
    f: &Facts,
    saved: &mut Saved,
    budget: Duration,
) -> anyhow::Result<()> {
    let why = if budget < MIN_FLIP {
        Some("its phase is over")
    } else if crate::swarm::repeated_keys(&f.members) {
        Some("a Noise key appears twice in the committee")
    } else {
        None
    };
    if let Some(why) = why {
        // Too late to take part (peers have moved on), or a committee whose members
        // cannot be told apart: no R, nobody accused.
        warn!(
            left_ms = budget.as_millis() as u64,
            "coin flip not run: {why}; auditing with a private R"
        );
        ctx.counters.flips_offline.fetch_add(1, Relaxed);
        saved.flip = Some(SavedFlip {
            round: 0,
            result: None,
            transcript: None,
            own: None,
            accused: Vec::new(),
        });
        ctx.state.put(saved)?;
        return Ok(());
    }
    let session_id = session_of(ctx, id);
    let cfg = coinflip::Config::within(session_id, f.committee.clone(), budget);
    let entropy = flip_entropy(ctx, saved)?;
    let cf = CoinFlip::new(
        cfg,
        Keypair::from_seed(&ctx.signing_seed),
        entropy,
        Ed25519Verifier,
        flip::instant(ctx.epoch),
    )
    .map_err(|e| anyhow::anyhow!("coin flip: {e}"))?;
    let session = ctx.swarm.join(session_id, f.members.clone(), f.me)?;
    let submit = ctx.clone();
    let rep = flip::run(
        session,
        cf,
        f.committee.clone(),
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
    let rec = match &rep.outcome {
        Outcome::Success {
            round,
            result,
            transcript,
        } => {
            c.flips_success.fetch_add(1, Relaxed);
            SavedFlip {
                round: *round,
                result: Some(hex::encode(result)),
                transcript: Some(hex_of(transcript)),
                own: Some(hex::encode(coinflip::round_secret(
                    &entropy,
                    &session_id,
                    *round,
                ))),
                // Those benched on the way to this round.
                accused: rep.withheld.iter().map(hex_of).collect(),
            }
        }
        Outcome::Offline { round, .. } => {
            c.flips_offline.fetch_add(1, Relaxed);
            SavedFlip {
                round: *round,
                result: None,
                transcript: None,
                own: None,
                accused: rep.withheld.iter().map(hex_of).collect(),
            }
        }
        Outcome::Malicious { .. } => {
            c.flips_malicious.fetch_add(1, Relaxed);
            SavedFlip {
                round: rep.rounds.last().map(|r| r.0).unwrap_or(0),
                result: None,
                transcript: None,
                own: None,
                accused: rep.withheld.iter().map(hex_of).collect(),
            }
        }
    };
    if let Ok(mut l) = c.last.lock() {
        l.0 = rep.to_result.unwrap_or(rep.elapsed).as_micros() as u64;
    }
    saved.reveals = rep
        .reveals
        .iter()
        .map(|(round, r)| (*round, hex::encode(to_bytes(&Msg::Reveal(r.clone())))))
        .collect();
    let round = rec.round;
    saved.flip = Some(rec);
    ctx.state.put(saved)?;
    info!(
        outcome = flip_name(&rep.outcome),
        round,
        fraud = rep.fraud.len(),
        ms = rep.elapsed.as_millis() as u64,
        "coin flip done"
    );
    // Proofs peers showed us (the chain acts once per offender; ours may be in already).
    for fr in rep.fraud.iter().filter(|fr| !fr.detected_here) {
        let c = ctx.clone();
        let p = fr.proof.clone();
        tokio::spawn(async move { c.submit_fraud(id, &p).await });
    }
    Ok(())
}

/// The coin-flip session of challenge `id` on our chain.
fn session_of(ctx: &Ctx, id: ChallengeId) -> coinflip::SessionId {
    challenge_session(&ctx.chain.chain_id(), id)
}

/// The flip's entropy as stored before its first message, if any.
fn stored_entropy(saved: &Saved) -> Option<[u8; 32]> {
    hex::decode(saved.entropy.as_deref()?).ok()?.try_into().ok()
}

/// Our signed reveal of round `round`'s `x`, derived from the stored entropy (wire bytes
/// of a `coinflip::Msg::Reveal`). A test-only withholder (feature `byzantine`) keeps
/// what it withheld: the devnet shows the penalty.
fn own_reveal(ctx: &Ctx, id: ChallengeId, saved: &Saved, round: u32) -> Option<Vec<u8>> {
    #[cfg(feature = "byzantine")]
    if ctx.byzantine == Some(datdot_protocol::coinflip::byzantine::Behaviour::WithholdReveal) {
        return None;
    }
    let entropy = stored_entropy(saved)?;
    let session = session_of(ctx, id);
    let x = coinflip::x_of(&coinflip::round_secret(&entropy, &session, round));
    let reveal = coinflip::SignedReveal::sign(&ctx.keypair, session, round, x);
    Some(to_bytes(&Msg::Reveal(reveal)))
}

/// This challenge's coin-flip entropy: the stored one after a restart, else fresh and
/// stored (durably) before the machine exists, so before anything is signed or sent.
fn flip_entropy(ctx: &Ctx, saved: &mut Saved) -> anyhow::Result<[u8; 32]> {
    if let Some(e) = stored_entropy(saved) {
        info!("coin flip: resuming with the stored entropy (the same commits as before)");
        return Ok(e);
    }
    let mut e = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut e);
    saved.entropy = Some(hex::encode(e));
    ctx.state.put(saved)?;
    Ok(e)
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

fn build_report(
    ctx: &Ctx,
    id: ChallengeId,
    f: &Facts,
    sampled: Vec<u64>,
    out: AuditOutput,
    sf: &SavedFlip,
) -> anyhow::Result<Report> {
    let accused = sf
        .accused
        .iter()
        .filter_map(|h| from_hex::<SignedCommit>(h))
        .take(report::MAX_ACCUSED)
        .collect();
    let transcript = sf.transcript.as_deref().and_then(from_hex::<Transcript>);
    // The secret is opened only with the transcript it belongs to (a private one stays
    // private: it would tell nobody anything they could check).
    let own_secret = transcript
        .as_ref()
        .and(sf.own.as_deref())
        .and_then(|h| hex::decode(h).ok()?.try_into().ok())
        .unwrap_or([0; 32]);
    let mut failures = out.failures;
    failures.truncate(report::MAX_FAILURES);
    let mut receipts = out.receipts;
    receipts.truncate(report::MAX_RECEIPTS);
    let mut r = Report {
        chain: ctx.chain.chain_id(),
        challenge: id,
        attestor: ctx.keypair.public(),
        hoster: f.hoster.hoster,
        feed: f.hoster.feed,
        received_root: received_root(&out.received),
        sampled,
        receipts,
        metrics: out.summary,
        failures,
        coinflip: CoinFlipRecord {
            round: sf.round,
            transcript,
            own_secret,
            accused,
        },
        sig: Signature([0; 64]),
    };
    // Receipts are the bulky part: drop the last ones if the report would not fit.
    while to_bytes(&r).len() > Report::MAX_SIZE && !r.receipts.is_empty() {
        r.receipts.pop();
    }
    // The chain counts as verified only blocks a receipt covers (a member that did not
    // download holds none): the rest the hoster served without signing for them.
    let moved = r.count_only_receipted();
    if moved > 0 {
        warn!(
            blocks = moved,
            "verified blocks without the hoster's receipt count as misbehaved"
        );
    }
    let r = r.sign(&ctx.keypair);
    r.verify(&Ed25519Verifier)
        .map_err(|e| anyhow::anyhow!("our own report does not verify: {e}"))?;
    Ok(r)
}

/// Submit after `end` and before the deadline: wait for the end block, retry a
/// too-early refusal each block, stop at the deadline.
async fn submit_report(ctx: &Ctx, id: ChallengeId, job: Job, bytes: Vec<u8>) -> anyhow::Result<()> {
    let block = Duration::from_millis(ctx.block_ms);
    loop {
        let head = ctx.retry("reading the head", || ctx.chain.head()).await?;
        if head > u64::from(job.report_deadline) {
            ctx.counters.report_failures.fetch_add(1, Relaxed);
            bail!("the report deadline (block {}) passed", job.report_deadline);
        }
        if head < u64::from(job.end) {
            let wait = block * u32::try_from(u64::from(job.end) - head).unwrap_or(1);
            tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
            continue;
        }
        let res = ctx
            .chain
            .submit_report(&ctx.signer, id, bytes.clone())
            .await;
        match res {
            Ok(()) => {
                ctx.counters.reports.fetch_add(1, Relaxed);
                info!("report accepted by the chain");
                return Ok(());
            }
            Err(e) => match e.downcast_ref::<Rejected>().map(|r| r.error.as_str()) {
                Some("TooEarly") => tokio::time::sleep(block).await,
                Some("AlreadyReported") => {
                    info!("report already on chain");
                    return Ok(());
                }
                Some(_) => {
                    ctx.counters.report_failures.fetch_add(1, Relaxed);
                    return Err(e.context("submitting the report"));
                }
                // Not a refusal (the node dropped it, the connection broke): try again
                // until the deadline.
                None => {
                    ctx.counters.chain_errors.fetch_add(1, Relaxed);
                    warn!("submitting the report failed, retrying: {e:#}");
                    tokio::time::sleep(block).await;
                }
            },
        }
    }
}

/// The last block the chain takes an accused member's reveal: one report window (the
/// blocks from `end` to the report deadline) after the report deadline.
pub(crate) fn answer_deadline(end: u32, report_deadline: u32) -> u64 {
    let deadline = u64::from(report_deadline);
    deadline + deadline.saturating_sub(u64::from(end))
}

/// Until the answer deadline: answer withholding accusations against us with our signed
/// reveal. (Fraud proofs were submitted as they were found.)
async fn watch(ctx: &Ctx, id: ChallengeId, job: Job, saved: &Saved) -> anyhow::Result<()> {
    let block = Duration::from_millis(ctx.block_ms);
    let reveals: BTreeMap<u32, &String> = saved.reveals.iter().map(|(r, h)| (*r, h)).collect();
    let mut answered: Vec<u32> = Vec::new();
    loop {
        let head = ctx.retry("reading the head", || ctx.chain.head()).await?;
        if head > answer_deadline(job.end, job.report_deadline) {
            return Ok(());
        }
        let Some(ch) = ctx
            .retry("reading the challenge", || ctx.chain.challenge(id))
            .await?
        else {
            return Ok(());
        };
        if ch.verdict.is_some() && ch.accusations.0.is_empty() {
            return Ok(());
        }
        let me = ch.attestors.0.iter().position(|a| *a == ctx.me);
        for acc in &ch.accusations.0 {
            if Some(usize::from(acc.member)) != me || acc.cleared || answered.contains(&acc.round) {
                continue;
            }
            // The reveal we sent, or — for a round we committed in but never reached the
            // reveal of (a slow link, a partition) — the one our entropy gives: the flip
            // is over, and it opens the commit the accusers hold, so it clears us.
            let bytes = match reveals.get(&acc.round) {
                Some(hexed) => hex::decode(hexed).context("stored reveal is not hex")?,
                None => match own_reveal(ctx, id, saved, acc.round) {
                    Some(b) => b,
                    None => {
                        answered.push(acc.round);
                        warn!(
                            round = acc.round,
                            "accused of withholding, and no entropy to answer with"
                        );
                        continue;
                    }
                },
            };
            let res = ctx.chain.publish_reveal(&ctx.signer, id, bytes).await;
            match res {
                Ok(()) => {
                    answered.push(acc.round);
                    ctx.counters.reveals_published.fetch_add(1, Relaxed);
                    info!(
                        round = acc.round,
                        "accused of withholding: our reveal is published"
                    );
                }
                // A refusal is final; anything else (the chain unreachable, the
                // transaction dropped) is tried again next time round, until the answer
                // deadline.
                Err(e) if e.downcast_ref::<Rejected>().is_some() => {
                    answered.push(acc.round);
                    warn!(round = acc.round, "our reveal was refused: {e:#}");
                }
                Err(e) => {
                    ctx.counters.chain_errors.fetch_add(1, Relaxed);
                    warn!(
                        round = acc.round,
                        "publishing our reveal failed, retrying: {e:#}"
                    );
                }
            }
        }
        tokio::time::sleep(block * 2).await;
    }
}
