//! `datdot-attestor run`: connect to the chain, register (or update the registered
//! endpoint), resume the challenges the state file says are unfinished, then follow
//! the `ChallengeScheduled` events that name us and handle each in its own task
//! ([`crate::challenge`]), at most `max_challenges` at once.

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{Context, bail};
use datdot_chain_client::{Role, UNIT, node};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::challenge::{self, Ctx, Job};

/// Challenge ids remembered to drop duplicate announcements.
const SEEN: usize = 4096;
/// State records are kept this many blocks past their report deadline.
const KEEP_BLOCKS: u64 = 1000;

/// What `run` registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Address committee members dial.
    pub addr: String,
    /// Stake in whole tokens.
    pub stake: u64,
}

/// Run until the process ends; errors only if the attestor cannot take part at all
/// (the chain stays unreachable or refuses the registration).
pub async fn run(ctx: Arc<Ctx>, reg: Registration) -> anyhow::Result<()> {
    let me = ctx.me;
    let r = node::Registration {
        role: Role::Attestor,
        stake: u128::from(reg.stake) * UNIT,
        addr: reg.addr,
        noise_key: ctx.swarm.noise_key(),
        signing_key: *ctx.keypair.public().as_bytes(),
        capacity: 0,
    };
    node::register_or_update(&ctx.chain, &ctx.signer, &me, &r, &ctx.counters.chain_errors).await?;
    // Follow first, then resume: nothing falls in between (duplicates are dropped).
    let mut events = node::retry(&ctx.counters.chain_errors, "following challenges", || {
        ctx.chain.challenges_for(me)
    })
    .await?;
    let head = node::retry(&ctx.counters.chain_errors, "reading the head", || {
        ctx.chain.head()
    })
    .await?;
    let mut backlog = Vec::new();
    for p in ctx.state.all()? {
        let n = p.notice;
        if u64::from(n.report_deadline) + KEEP_BLOCKS < head {
            ctx.state.remove(n.challenge)?;
        } else if u64::from(n.report_deadline) >= head
            || (p.submitted && n.answer_deadline() >= head)
        {
            // A submitted report still has accusations to answer until the answer
            // deadline.
            backlog.push(Job {
                challenge: n.challenge,
                start: n.start,
                end: n.end,
                report_deadline: n.report_deadline,
                seen_at: head,
            });
        }
    }
    info!(account = %me, resumed = backlog.len(), "following challenges");
    let permits = Arc::new(Semaphore::new(ctx.config.max_challenges));
    let mut seen: VecDeque<u64> = VecDeque::new();
    let mut backlog = backlog.into_iter();
    loop {
        let job = match backlog.next() {
            Some(j) => j,
            None => match events.recv().await {
                Some(n) => {
                    if !n.attestors.contains(&me) {
                        continue; // we are its hoster (cannot happen for an attestor) or not named
                    }
                    Job {
                        challenge: n.challenge,
                        start: n.start,
                        end: n.end,
                        report_deadline: n.report_deadline,
                        seen_at: n.block,
                    }
                }
                None => bail!("the chain's challenge follower ended"),
            },
        };
        if seen.contains(&job.challenge) {
            continue;
        }
        if seen.len() >= SEEN {
            seen.pop_front();
        }
        seen.push_back(job.challenge);
        ctx.counters
            .challenges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                warn!(
                    challenge = job.challenge,
                    "at max_challenges; this one waits"
                );
                permits
                    .clone()
                    .acquire_owned()
                    .await
                    .context("permits closed")?
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            ctx.counters
                .challenges_running
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = challenge::handle(ctx.clone(), job).await {
                error!(challenge = job.challenge, "challenge failed: {e:#}");
            }
            ctx.counters
                .challenges_running
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
