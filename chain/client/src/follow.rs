//! Following the chain: every Datdot event of every finalized block, in order, through
//! reconnects; and whether the chain answers ([`ChainHealth`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use subxt::{OnlineClient, SubstrateConfig};
use subxt_rpcs::client::RpcClient;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::{
    AccountId32, ChainClient, ChainError, ChallengeId, ContractId, EVENT_BUFFER, Event, FeedId,
    datdot,
};

/// A Datdot event and the finalized block it was emitted in.
#[derive(Debug)]
pub struct BlockEvent {
    /// Block number.
    pub block: u64,
    /// The event.
    pub event: Event,
}

/// A challenge as announced to its hoster and committee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeNotice {
    /// Block it was scheduled in.
    pub block: u64,
    /// The challenge.
    pub challenge: ChallengeId,
    /// The contract audited.
    pub contract: ContractId,
    /// The feed.
    pub feed: FeedId,
    /// The hoster audited.
    pub hoster: AccountId32,
    /// The committee in attestor-index order.
    pub attestors: Vec<AccountId32>,
    /// First block of the audit window.
    pub start: u32,
    /// Last block of the audit window; reports are accepted from here.
    pub end: u32,
    /// Last block a report is accepted.
    pub report_deadline: u32,
}

/// The event follower warns once the chain has not answered for this long.
pub const SILENCE_WARNING: Duration = Duration::from_secs(10);

/// Whether the chain answers: the event follower ([`ChainClient::events`]) reports each
/// answer, and a watchdog beside it logs a WARN once the chain was silent for
/// [`SILENCE_WARNING`] and an INFO when it answers again. The RPC client reconnects by
/// itself and calls wait through an outage, so without this an outage leaves no trace
/// for an operator. Shared by every clone of a client; read it for metrics.
#[derive(Debug)]
pub struct ChainHealth {
    epoch: Instant,
    /// When the chain last answered, ms since `epoch`.
    last_ok_ms: AtomicU64,
    /// Silences of at least [`SILENCE_WARNING`] so far.
    outages: AtomicU64,
    /// In a silence that was counted.
    silent: AtomicBool,
}

impl Default for ChainHealth {
    fn default() -> Self {
        ChainHealth {
            epoch: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            silent: AtomicBool::new(false),
        }
    }
}

impl ChainHealth {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The chain answered at `now_ms`: how long it had been silent, if that silence was
    /// counted as an outage (it is over now).
    pub fn handle_answer(&self, now_ms: u64) -> Option<u64> {
        let was = self.last_ok_ms.swap(now_ms, Relaxed);
        self.silent
            .swap(false, Relaxed)
            .then(|| now_ms.saturating_sub(was))
    }

    /// A check at `now_ms`: how long the chain has been silent, if that just became an
    /// outage (at most once per silence).
    pub fn handle_tick(&self, now_ms: u64) -> Option<u64> {
        let silent = self.silent_ms_at(now_ms);
        let limit = u64::try_from(SILENCE_WARNING.as_millis()).unwrap_or(u64::MAX);
        (silent >= limit
            && self
                .silent
                .compare_exchange(false, true, Relaxed, Relaxed)
                .is_ok())
        .then(|| {
            self.outages.fetch_add(1, Relaxed);
            silent
        })
    }

    fn silent_ms_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_ok_ms.load(Relaxed))
    }

    /// How long since the chain last answered the event follower.
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(self.silent_ms_at(self.now_ms()))
    }

    /// Outages so far: silences of at least [`SILENCE_WARNING`].
    pub fn outages(&self) -> u64 {
        self.outages.load(Relaxed)
    }
}

impl ChainClient {
    /// Every Datdot event in finalized blocks after the current head, in order, on a
    /// bounded channel (see [`follow`]). A dropped connection is resumed where it stopped
    /// (missed blocks are replayed); the task ends when the receiver is dropped.
    pub async fn events(&self) -> Result<mpsc::Receiver<BlockEvent>, ChainError> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut next = self.head().await? + 1;
        let api = self.api.clone();
        let rpc = self.rpc.clone();
        let health = self.health.clone();
        health.handle_answer(health.now_ms());
        let (h, closed) = (health.clone(), tx.clone());
        tokio::spawn(async move {
            while !closed.is_closed() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if closed.capacity() == 0 {
                    // The follower waits for its reader, not for the chain.
                    h.handle_answer(h.now_ms());
                } else if let Some(ms) = h.handle_tick(h.now_ms()) {
                    warn!(
                        silent_secs = ms / 1000,
                        "the chain has not answered for {} s; still retrying",
                        ms / 1000
                    );
                }
            }
        });
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let before = next;
                match follow(&api, &rpc, &health, &mut next, &tx).await {
                    Ok(()) => return, // receiver dropped
                    Err(e) => {
                        if next > before {
                            backoff = Duration::from_millis(100); // it made progress
                        }
                        warn!(error = %format!("{e:#}"), next, "following the chain failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// Challenges that name `who` as hoster or committee member, from now on.
    pub async fn challenges_for(
        &self,
        who: AccountId32,
    ) -> Result<mpsc::Receiver<ChallengeNotice>, ChainError> {
        let mut events = self.events().await?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Event::ChallengeScheduled {
                    challenge,
                    contract,
                    feed,
                    hoster,
                    attestors,
                    start,
                    end,
                    report_deadline,
                } = e.event
                {
                    let attestors = attestors.0;
                    if hoster == who || attestors.contains(&who) {
                        let notice = ChallengeNotice {
                            block: e.block,
                            challenge,
                            contract,
                            feed,
                            hoster,
                            attestors,
                            start,
                            end,
                            report_deadline,
                        };
                        if tx.send(notice).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// How often the event follower looks for new finalized blocks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Send the Datdot events of finalized blocks `*next..` to `tx`, advancing `*next`, until
/// the receiver is gone (`Ok`) or a query fails (`Err`; the caller retries from `*next`).
///
/// Polls the finalized head instead of subscribing: chopsticks (the devnet) ends
/// `chainHead_v1_follow` and legacy head subscriptions at once, so a subscription would see no
/// block (measured with subxt 0.51.1 against chopsticks 1.5.1). Polling also makes the
/// replay after a reconnect the normal path: every block is visited once, in order.
/// The finalized head's number over plain RPC.
pub(crate) async fn finalized_number(rpc: &RpcClient) -> Result<u64> {
    let hash: String = rpc
        .request("chain_getFinalizedHead", subxt_rpcs::rpc_params![])
        .await
        .context("reading the finalized head")?;
    let header: serde_json::Value = rpc
        .request("chain_getHeader", subxt_rpcs::rpc_params![hash])
        .await
        .context("reading the finalized header")?;
    let n = header["number"]
        .as_str()
        .context("a header without a number")?;
    u64::from_str_radix(n.trim_start_matches("0x"), 16).context("a header number that is not hex")
}

async fn follow(
    api: &OnlineClient<SubstrateConfig>,
    rpc: &RpcClient,
    health: &ChainHealth,
    next: &mut u64,
    tx: &mpsc::Sender<BlockEvent>,
) -> Result<()> {
    loop {
        let head = finalized_number(rpc).await?;
        if let Some(ms) = health.handle_answer(health.now_ms()) {
            info!(
                silent_secs = ms / 1000,
                "the chain answers again after {} s",
                ms / 1000
            );
        }
        while *next <= head {
            let at = api
                .at_block(*next)
                .await
                .with_context(|| format!("opening block {next}"))?;
            let events = at
                .events()
                .fetch()
                .await
                .with_context(|| format!("events of block {next}"))?;
            for ev in events.iter() {
                let ev = ev.with_context(|| format!("an event of block {next}"))?;
                if ev.pallet_name() != "Datdot" {
                    continue;
                }
                let datdot::Event::Datdot(event) = ev
                    .decode_as::<datdot::Event>()
                    .with_context(|| format!("decoding an event of block {next}"))?
                else {
                    continue;
                };
                if tx
                    .send(BlockEvent {
                        block: *next,
                        event,
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            *next += 1;
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_is_one_outage_reported_once_and_ended_by_an_answer() {
        let h = ChainHealth::default();
        let limit = SILENCE_WARNING.as_millis() as u64;
        h.handle_answer(1_000);
        assert_eq!(h.handle_tick(1_000 + limit - 1), None, "not yet");
        assert_eq!(h.handle_tick(1_000 + limit), Some(limit));
        assert_eq!(h.handle_tick(1_000 + 3 * limit), None, "warned once");
        assert_eq!(h.outages(), 1);
        assert_eq!(h.handle_answer(61_000), Some(60_000), "back after 60 s");
        assert_eq!(h.handle_answer(61_250), None, "answers as usual");
        assert_eq!(h.handle_tick(61_500), None);
        assert_eq!(
            h.handle_tick(61_250 + limit),
            Some(limit),
            "a second outage"
        );
        assert_eq!(h.outages(), 2);
    }
}
