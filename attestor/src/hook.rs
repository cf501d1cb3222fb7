//! `datdot-attestor run`: connect to the chain, register (or update the registered
//! endpoint), resume the challenges the state file says are unfinished, then follow
//! the `ChallengeScheduled` events that name us and handle each in its own task
//! ([`crate::challenge`]), at most `max_challenges` at once.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use datdot_chain_client::{Role, UNIT, node};
use tracing::info;

use crate::challenge::{self, Ctx, Job};

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
    let events = node::retry(&ctx.counters.chain_errors, "following challenges", || {
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
    node::work_loop(
        "challenge",
        ctx.config.max_challenges,
        backlog,
        events,
        // Only challenges naming us (an attestor is never the audited hoster).
        |n| {
            n.attestors.contains(&me).then_some(Job {
                challenge: n.challenge,
                start: n.start,
                end: n.end,
                report_deadline: n.report_deadline,
                seen_at: n.block,
            })
        },
        &ctx.counters.challenges,
        |job: Job| {
            let ctx = ctx.clone();
            async move {
                ctx.counters.challenges_running.fetch_add(1, Relaxed);
                let r = challenge::handle(ctx.clone(), job).await;
                ctx.counters.challenges_running.fetch_sub(1, Relaxed);
                r
            }
        },
    )
    .await
}
