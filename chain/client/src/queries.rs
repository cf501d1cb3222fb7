//! Storage reads at the finalized head, and SLA selection over them. A read fails with
//! [`ChainError::Read`] (on the way) or [`ChainError::Decode`] (bytes this client's
//! metadata does not describe).

use datdot_protocol::metrics::{Selected, Sla};
use subxt::SubstrateConfig;

use crate::ChainError;
use crate::follow::finalized_number;
use crate::{
    AccountId32, Balance, ChainClient, Challenge, ChallengeId, FeedId, Participant, Status,
    Verdict, VerdictRecord, datdot,
};

type Result<T, E = ChainError> = std::result::Result<T, E>;

impl ChainClient {
    pub(crate) async fn at(
        &self,
    ) -> Result<
        subxt::client::ClientAtBlock<
            SubstrateConfig,
            subxt::client::OnlineClientAtBlockImpl<SubstrateConfig>,
        >,
    > {
        self.api
            .at_current_block()
            .await
            .map_err(|e| ChainError::read("the chain head")(e.into()))
    }

    /// The latest finalized block number. Two plain RPC calls (`chain_getFinalizedHead`,
    /// `chain_getHeader`): opening a block through subxt costs a node like chopsticks a
    /// runtime call, which a dozen polling clients turned into a stalled devnet.
    pub async fn head(&self) -> Result<u64> {
        finalized_number(&self.rpc)
            .await
            .map_err(ChainError::read("the finalized head"))
    }

    /// Read and decode storage entry `addr` at `keys` at the head; `None` if absent.
    pub(crate) async fn read_opt<A: subxt::storage::Address>(
        &self,
        what: &'static str,
        addr: A,
        keys: A::KeyParts,
    ) -> Result<Option<A::Value>> {
        let at = self.at().await?;
        let Some(v) = at
            .storage()
            .try_fetch(addr, keys)
            .await
            .map_err(|e| ChainError::read(what)(e.into()))?
        else {
            return Ok(None);
        };
        Ok(Some(v.decode().map_err(ChainError::decode(what))?))
    }

    /// Read and decode storage entry `addr` at `keys` at the head (its default if absent).
    pub(crate) async fn read<A: subxt::storage::Address>(
        &self,
        what: &'static str,
        addr: A,
        keys: A::KeyParts,
    ) -> Result<A::Value> {
        let at = self.at().await?;
        let v = at
            .storage()
            .fetch(addr, keys)
            .await
            .map_err(|e| ChainError::read(what)(e.into()))?;
        v.decode().map_err(ChainError::decode(what))
    }

    /// A registered hoster or attestor.
    pub async fn participant(
        &self,
        who: &AccountId32,
    ) -> Result<Option<Participant<Balance, u32>>> {
        self.read_opt(
            "Participants",
            datdot::storage().datdot().participants(),
            (*who,),
        )
        .await
    }

    /// The registered stake and score of `who`, if registered.
    pub async fn stake_and_score(&self, who: &AccountId32) -> Result<Option<(Balance, u32)>> {
        Ok(self.participant(who).await?.map(|p| (p.stake, p.score)))
    }

    /// Free balance of `who`.
    pub async fn free_balance(&self, who: &AccountId32) -> Result<Balance> {
        Ok(self
            .read(
                "System.Account",
                datdot::storage().system().account(),
                (*who,),
            )
            .await?
            .data
            .free)
    }

    /// A challenge (until its fraud window closes).
    pub async fn challenge(
        &self,
        id: ChallengeId,
    ) -> Result<Option<Challenge<AccountId32, Balance, u32>>> {
        self.read_opt("Challenges", datdot::storage().datdot().challenges(), (id,))
            .await
    }

    /// The last verdicts of hoster `who`, oldest first.
    pub async fn hoster_history(
        &self,
        who: &AccountId32,
    ) -> Result<Vec<VerdictRecord<AccountId32, u32>>> {
        Ok(self
            .read(
                "HosterHistory",
                datdot::storage().datdot().hoster_history(),
                (*who,),
            )
            .await?
            .0)
    }

    /// The last verdicts of feed `feed`, oldest first.
    pub async fn feed_history(&self, feed: FeedId) -> Result<Vec<VerdictRecord<AccountId32, u32>>> {
        Ok(self
            .read(
                "FeedHistory",
                datdot::storage().datdot().feed_history(),
                (feed,),
            )
            .await?
            .0)
    }

    /// Registered hosters (active or suspended).
    pub async fn hosters(&self) -> Result<Vec<AccountId32>> {
        Ok(self
            .read("Hosters", datdot::storage().datdot().hosters(), ())
            .await?
            .0)
    }

    /// Active hosters whose recent verdicts meet `sla`, best first
    /// (`datdot_protocol::metrics::select` over their on-chain history).
    pub async fn select(&self, sla: &Sla) -> Result<Vec<Selected<AccountId32>>> {
        let mut candidates = Vec::new();
        for h in self.hosters().await? {
            let Some(p) = self.participant(&h).await? else {
                continue;
            };
            if !matches!(p.status, Status::Active) {
                continue;
            }
            let medians = self
                .hoster_history(&h)
                .await?
                .iter()
                .filter(|r| !matches!(r.verdict, Verdict::Inconclusive))
                .filter_map(|r| r.median)
                .collect();
            candidates.push((h, p.score, medians));
        }
        Ok(datdot_protocol::metrics::select(candidates, sla))
    }
}
