//! What a hoster reads and follows: feeds (with the source their publisher named),
//! contracts, the hosters serving a feed, and the assignments addressed to it.

use crate::AccountId32;
use tokio::sync::mpsc;
use tracing::warn;

use crate::{Balance, ChainClient, ChainError, ContractId, EVENT_BUFFER, Event, FeedId, datdot};

type Result<T, E = ChainError> = std::result::Result<T, E>;

pub use crate::datdot::runtime_types::pallet_datdot::types::{Contract, ContractState, Feed};

/// Most `Contracts` entries [`ChainClient::contracts_of`] reads (the map is bounded by
/// the hosters' capacities; this bounds the scan even if it were not).
pub const MAX_CONTRACT_SCAN: usize = 65_536;

/// A contract a hoster must confirm: from a `HosterAssigned` event or, at start, from
/// storage (a pending contract it had not confirmed yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Block the event was in (for a contract read from storage: the head then).
    pub block: u64,
    /// The feed.
    pub feed: FeedId,
    /// The contract to confirm.
    pub contract: ContractId,
    /// The hoster assigned.
    pub hoster: AccountId32,
    /// Last block `confirm_hosting` is accepted.
    pub confirm_by: u32,
}

/// A peer that serves a feed: how to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPeer {
    /// The hoster's account (`None` for the feed's source).
    pub hoster: Option<AccountId32>,
    /// Address (`host:port`) as registered (not checked by the chain beyond non-empty).
    pub addr: String,
    /// Noise static key the connection must prove.
    pub noise_key: [u8; 32],
    /// Its signing key (a registered hoster signs receipts with it).
    pub signing_key: [u8; 32],
}

impl ChainClient {
    /// A published feed with a running plan.
    pub async fn feed(&self, id: FeedId) -> Result<Option<Feed<AccountId32, Balance>>> {
        self.read_opt("Feeds", datdot::storage().datdot().feeds(), (id,))
            .await
    }

    /// A hosting contract (until it is cleaned up with its feed).
    pub async fn contract(&self, id: ContractId) -> Result<Option<Contract<AccountId32, u32>>> {
        self.read_opt("Contracts", datdot::storage().datdot().contracts(), (id,))
            .await
    }

    /// Every entry of the `u64`-keyed map `addr` (`what` names it in errors), sorted by
    /// key; at most [`MAX_CONTRACT_SCAN`] entries are read.
    async fn scan<A>(&self, what: &'static str, addr: A) -> Result<Vec<(u64, A::Value)>>
    where
        A: subxt::storage::Address<KeyParts = (u64,)>,
    {
        let at = self.at().await?;
        let mut entries = at
            .storage()
            .iter(addr, ())
            .await
            .map_err(|e| ChainError::read(what)(e.into()))?;
        let mut out = Vec::new();
        while let Some(entry) = entries.next().await {
            if out.len() >= MAX_CONTRACT_SCAN {
                warn!(
                    limit = MAX_CONTRACT_SCAN,
                    "more {what} than the scan limit; the rest are not read"
                );
                break;
            }
            let entry = entry.map_err(|e| ChainError::read(what)(e.into()))?;
            let (id,) = entry
                .key()
                .map_err(ChainError::decode(what))?
                .decode()
                .map_err(ChainError::decode(what))?;
            let v = entry.value().decode().map_err(ChainError::decode(what))?;
            out.push((id, v));
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// Every stored contract of hoster `who` (any state), by id. Scans `Contracts`
    /// (at most [`MAX_CONTRACT_SCAN`] entries).
    pub async fn contracts_of(
        &self,
        who: &AccountId32,
    ) -> Result<Vec<(ContractId, Contract<AccountId32, u32>)>> {
        let mut all = self
            .scan("Contracts", datdot::storage().datdot().contracts())
            .await?;
        all.retain(|(_, c)| &c.hoster == who);
        Ok(all)
    }

    /// Every stored challenge (open ones and those kept for their fraud window), by id.
    /// Scans `Challenges` (at most [`MAX_CONTRACT_SCAN`] entries).
    pub async fn challenges(
        &self,
    ) -> Result<
        Vec<(
            crate::ChallengeId,
            crate::Challenge<AccountId32, crate::Balance, u32>,
        )>,
    > {
        self.scan("Challenges", datdot::storage().datdot().challenges())
            .await
    }

    /// The contracts of `who` still waiting for its `confirm_hosting`.
    pub async fn pending_for(&self, who: &AccountId32) -> Result<Vec<Assignment>> {
        let head = self.head().await?;
        Ok(self
            .contracts_of(who)
            .await?
            .into_iter()
            .filter_map(|(contract, c)| match c.state {
                ContractState::Pending { deadline } => Some(Assignment {
                    block: head,
                    feed: c.feed,
                    contract,
                    hoster: c.hoster,
                    confirm_by: deadline,
                }),
                _ => None,
            })
            .collect())
    }

    /// Where a hoster can fetch feed `id` from: its source (as published) first, then
    /// the registered endpoints of the hosters with an active contract for it, other than
    /// `except`. `None` if the feed is gone.
    pub async fn feed_peers(
        &self,
        id: FeedId,
        except: &AccountId32,
    ) -> Result<Option<Vec<FeedPeer>>> {
        let Some(feed) = self.feed(id).await? else {
            return Ok(None);
        };
        let mut peers = vec![FeedPeer {
            hoster: None,
            addr: String::from_utf8_lossy(&feed.source.addr.0).into_owned(),
            noise_key: feed.source.noise_key,
            signing_key: feed.source.signing_key,
        }];
        for cid in feed.contracts.0 {
            let Some(c) = self.contract(cid).await? else {
                continue;
            };
            if &c.hoster == except || !matches!(c.state, ContractState::Active) {
                continue;
            }
            let Some(p) = self.participant(&c.hoster).await? else {
                continue;
            };
            peers.push(FeedPeer {
                hoster: Some(c.hoster),
                addr: String::from_utf8_lossy(&p.endpoint.addr.0).into_owned(),
                noise_key: p.endpoint.noise_key,
                signing_key: p.endpoint.signing_key,
            });
        }
        Ok(Some(peers))
    }

    /// `HosterAssigned` events that name `who`, from the next finalized block on (the
    /// follower of [`ChainClient::events`]: resumes after a dropped connection without
    /// losing or repeating a block). Contracts assigned before the call are found with
    /// [`ChainClient::pending_for`]; call this first, then that, and drop duplicates by
    /// contract id.
    pub async fn assignments_for(&self, who: AccountId32) -> Result<mpsc::Receiver<Assignment>> {
        let mut events = self.events().await?;
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Event::HosterAssigned {
                    feed,
                    contract,
                    hoster,
                    confirm_by,
                } = e.event
                {
                    if hoster != who {
                        continue;
                    }
                    let a = Assignment {
                        block: e.block,
                        feed,
                        contract,
                        hoster,
                        confirm_by,
                    };
                    if tx.send(a).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
