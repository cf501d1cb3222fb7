//! The chain hook of `datdot-hoster run` (with a `[chain]` section): register (or update
//! the registered endpoint), then for every contract assigned to this hoster — announced
//! by a `HosterAssigned` event, or found pending in storage at start — fetch the feed
//! (verified, resumable) from the source its publisher named or from the hosters already
//! serving it, serve it, and `confirm_hosting`.
//!
//! Failure handling: the chain connection is retried with backoff (bounded rounds); a
//! registration the chain refuses ends `run` with the chain's reason; everything about
//! one assignment (unreachable or lying peers, a refusal, a missed confirm window) is
//! logged with its reason and counted, and never stops serving or the other assignments.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use datdot_chain_client::{
    AccountId32, Assignment, ChainClient, ContractState, Keypair, Role, UNIT, account, keys, node,
};
use datdot_net::{Expect, FetchOptions, Limits};
use datdot_protocol::identity::PublicKey;
use tracing::{info, warn};

use crate::config::ChainConfig;
use datdot_store::Store;

/// Assignments handled at once (each one fetch at a time).
pub const MAX_CONCURRENT_ASSIGNMENTS: usize = 4;
/// Rounds over the feed's peers before an assignment is given up (the chain replaces
/// a hoster that does not confirm in time anyway).
pub const FETCH_ROUNDS: u32 = 4;
/// Peers tried per round (the source and up to this many minus one hosters).
pub const MAX_PEERS_PER_ROUND: usize = 8;

/// What the hook counts (rendered on `/metrics`).
#[derive(Debug, Default)]
pub struct HookCounters {
    /// Assignments received (events and pending contracts found at start).
    pub assignments: AtomicU64,
    /// `confirm_hosting` calls the chain accepted.
    pub confirmations: AtomicU64,
    /// Fetch sessions from a peer that failed.
    pub fetch_failures: AtomicU64,
    /// Chain calls or reads that failed (refusals included).
    pub chain_errors: AtomicU64,
    /// Whether the chain answers (set once connected).
    pub chain: std::sync::OnceLock<Arc<datdot_chain_client::ChainHealth>>,
}

/// Everything the hook needs from `run`.
#[derive(Debug)]
pub struct HookParams {
    /// Hoster directory.
    pub dir: PathBuf,
    /// `[chain]`.
    pub chain: ChainConfig,
    /// Address registered on chain.
    pub advertise: SocketAddr,
    /// Our Noise static public key (what peers pin).
    pub noise_key: [u8; 32],
    /// Our receipt-signing public key.
    pub signing_key: [u8; 32],
    /// Transport limits for fetches.
    pub limits: Limits,
    /// The served feeds (rescanned once a fetched feed is complete).
    pub store: Arc<Store>,
    /// Counters.
    pub counters: Arc<HookCounters>,
    /// Where the chain's identity goes once connected: what receipts are signed for
    /// (also kept in [`crate::CHAIN_ID_FILE`], so a restarted hoster signs for it before
    /// it reconnects).
    pub chain_id: tokio::sync::watch::Sender<[u8; 32]>,
}

struct Ctx {
    p: HookParams,
    chain: ChainClient,
    signer: Keypair,
    me: AccountId32,
    /// One fetch per feed key at a time.
    fetching: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

/// Run the hook until the process ends. Returns an error only if the hoster cannot take
/// part at all: the key does not load, the chain stays unreachable, or it refuses the
/// registration (the error carries the chain's reason).
pub async fn run(p: HookParams) -> anyhow::Result<()> {
    let signer = keys::resolve(&p.chain.key).context("[chain] key")?;
    let me = account(&signer);
    let chain = node::connect_patiently(&p.chain.url, &p.counters.chain_errors).await?;
    let _ = p.counters.chain.set(chain.health());
    let id = chain.chain_id();
    if *p.chain_id.borrow() != id {
        crate::save_chain_id(&p.dir, &id)?;
        p.chain_id.send_replace(id);
    }
    info!(account = %me, url = %p.chain.url, chain = %hex::encode(id), "connected to the chain");
    let ctx = Arc::new(Ctx {
        p,
        chain,
        signer,
        me,
        fetching: Mutex::new(HashMap::new()),
    });
    register_or_update(&ctx).await?;

    // Follow first, then read what is already pending: nothing falls in between
    // (duplicates are dropped by contract id).
    let events = retry(&ctx, "following assignments", || {
        ctx.chain.assignments_for(ctx.me)
    })
    .await?;
    let mine = retry(&ctx, "reading our contracts", || {
        ctx.chain.contracts_of(&ctx.me)
    })
    .await?;
    let head = retry(&ctx, "reading the head", || ctx.chain.head()).await?;
    let mut backlog = Vec::new();
    for (contract, c) in mine {
        let confirm_by = match c.state {
            ContractState::Pending { deadline } => deadline,
            // Active: make sure we still hold the feed (nothing to confirm).
            ContractState::Active => 0,
            ContractState::Ended => continue,
        };
        backlog.push(Assignment {
            block: head,
            feed: c.feed,
            contract,
            hoster: c.hoster,
            confirm_by,
        });
    }
    info!(
        contracts = backlog.len(),
        "following assignments; checking contracts assigned before start"
    );

    node::work_loop(
        "assignment",
        MAX_CONCURRENT_ASSIGNMENTS,
        backlog,
        events,
        Some,
        &ctx.p.counters.assignments,
        |a: Assignment| {
            let ctx = ctx.clone();
            async move {
                handle(&ctx, &a)
                    .await
                    .with_context(|| format!("contract {}, feed {}", a.contract, a.feed))
            }
        },
    )
    .await
}

/// Retry a chain read (not a refusal) a few times with backoff.
async fn retry<T, E, F, Fut>(ctx: &Ctx, what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    node::retry(&ctx.p.counters.chain_errors, what, f).await
}

async fn register_or_update(ctx: &Ctx) -> anyhow::Result<()> {
    let p = &ctx.p;
    let reg = node::Registration {
        role: Role::Hoster,
        stake: u128::from(p.chain.stake) * UNIT,
        addr: p.advertise.to_string(),
        noise_key: p.noise_key,
        signing_key: p.signing_key,
        capacity: p.chain.role.capacity,
    };
    node::register_or_update(
        &ctx.chain,
        &ctx.signer,
        &ctx.me,
        &reg,
        &p.counters.chain_errors,
    )
    .await
}

/// One assignment: fetch what is missing, serve it, confirm if still pending.
async fn handle(ctx: &Ctx, a: &Assignment) -> anyhow::Result<()> {
    let contract = a.contract;
    let Some(c) = retry(ctx, "reading the contract", || ctx.chain.contract(contract)).await? else {
        info!(contract, "contract is gone (plan over); nothing to do");
        return Ok(());
    };
    if c.hoster != ctx.me {
        info!(
            contract,
            "contract belongs to another hoster now; nothing to do"
        );
        return Ok(());
    }
    let deadline = match c.state {
        ContractState::Pending { deadline } => Some(deadline),
        ContractState::Active => None,
        ContractState::Ended => {
            info!(contract, "contract ended; nothing to do");
            return Ok(());
        }
    };
    let Some(feed) = retry(ctx, "reading the feed", || ctx.chain.feed(c.feed)).await? else {
        info!(
            contract,
            feed = c.feed,
            "feed is gone (plan over); nothing to do"
        );
        return Ok(());
    };
    let key = feed.key;
    info!(
        contract,
        feed = c.feed,
        key = %hex::encode(key),
        length = feed.length,
        confirm_by = ?deadline,
        "assigned a feed"
    );
    if feed.length > ctx.p.chain.role.max_feed_length {
        warn!(
            contract,
            feed = c.feed,
            length = feed.length,
            max = ctx.p.chain.role.max_feed_length,
            "feed longer than [chain] max_feed_length: not fetching it"
        );
        return Ok(());
    }
    ensure_held(ctx, c.feed, key, feed.length, deadline).await?;
    let Some(deadline) = deadline else {
        info!(contract, "active contract; feed held and served");
        return Ok(());
    };
    match ctx.chain.confirm_hosting(&ctx.signer, contract).await {
        Ok(()) => {
            ctx.p.counters.confirmations.fetch_add(1, Relaxed);
            info!(contract, feed = c.feed, "confirmed hosting on chain");
            Ok(())
        }
        Err(e) => {
            ctx.p.counters.chain_errors.fetch_add(1, Relaxed);
            // A resent confirmation the chain had applied comes back as NotPending.
            let now = ctx.chain.contract(contract).await.ok().flatten();
            if now.is_some_and(|n| n.hoster == ctx.me && matches!(n.state, ContractState::Active)) {
                info!(contract, "hosting already confirmed");
                return Ok(());
            }
            Err(anyhow::Error::new(e).context(format!(
                "confirming contract {contract} (confirm window ends at block {deadline})"
            )))
        }
    }
}

/// Make sure feed `key` is stored complete with at least `length` blocks, fetching it
/// from its peers if not, and serve it.
async fn ensure_held(
    ctx: &Ctx,
    feed_id: u64,
    key: [u8; 32],
    length: u64,
    deadline: Option<u32>,
) -> anyhow::Result<()> {
    let lock = {
        let mut m = ctx
            .fetching
            .lock()
            .map_err(|_| anyhow::anyhow!("fetch lock poisoned"))?;
        m.entry(key).or_default().clone()
    };
    let _guard = lock.lock().await;
    let dir = &ctx.p.dir;
    if let Some(have) = datdot_store::stored_length(dir, &key) {
        if have >= length {
            info!(
                feed = feed_id,
                length = have,
                "feed already stored and served"
            );
            ctx.p.store.scan().await?;
            return Ok(());
        }
        bail!(
            "feed {} is stored with {have} blocks, the chain expects {length}: growing a served feed is not supported yet",
            hex::encode(key)
        );
    }
    let mut delay = Duration::from_secs(2);
    for round in 1..=FETCH_ROUNDS {
        let peers = retry(ctx, "reading the feed's peers", || {
            ctx.chain.feed_peers(feed_id, &ctx.me)
        })
        .await?
        .context("the feed is gone (plan over)")?;
        for peer in peers.iter().take(MAX_PEERS_PER_ROUND) {
            let who = peer
                .hoster
                .as_ref()
                .map(|h| format!("hoster {h}"))
                .unwrap_or_else(|| "the publisher's source".into());
            let Ok(addr) = peer.addr.parse::<SocketAddr>() else {
                warn!(feed = feed_id, peer = %who, addr = %peer.addr, "address is not host:port; skipped");
                continue;
            };
            let opts = FetchOptions {
                chain: peer.hoster.as_ref().map(|_| ctx.chain.chain_id()),
                // A registered hoster signs receipts with its registered key.
                hoster: peer
                    .hoster
                    .as_ref()
                    .and_then(|_| PublicKey::from_bytes(&peer.signing_key).ok()),
                ..FetchOptions::default()
            };
            info!(feed = feed_id, peer = %who, %addr, round, "fetching the feed");
            let r = crate::fetch_feed(
                dir,
                &ctx.p.limits,
                key,
                addr,
                Expect::Key(peer.noise_key),
                &opts,
                length,
                &mut |_| {},
            )
            .await;
            match r {
                Ok(r) => {
                    info!(
                        feed = feed_id,
                        peer = %who,
                        length = r.length,
                        fetched = r.fetched,
                        already = r.already,
                        bytes = r.bytes,
                        "feed fetched, every block verified; serving it"
                    );
                    ctx.p.store.scan().await?;
                    return Ok(());
                }
                Err(e) => {
                    ctx.p.counters.fetch_failures.fetch_add(1, Relaxed);
                    warn!(feed = feed_id, peer = %who, %addr, "fetch failed (kept what verified): {e:#}");
                }
            }
        }
        if let Some(d) = deadline {
            let head = retry(ctx, "reading the head", || ctx.chain.head()).await?;
            if head > u64::from(d) {
                bail!(
                    "the confirm window closed at block {d} before the feed could be fetched; the chain replaces this hoster"
                );
            }
        }
        if round < FETCH_ROUNDS {
            warn!(
                feed = feed_id,
                round, "no peer served the whole feed; retrying in {delay:?}"
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    bail!("no peer served the whole feed in {FETCH_ROUNDS} rounds")
}
