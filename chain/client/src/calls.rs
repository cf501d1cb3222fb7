//! One typed method per extrinsic of the pallet's hosting and challenge calls (jobs:
//! `jobs.rs`).

use anyhow::Context;

use crate::submit::{all_events, first_event};
use crate::{
    AccountId32, Balance, ChainClient, ChainError, ChallengeId, ContractId, Endpoint, FeedId,
    Keypair, PlanTerms, Role, bounded, datdot,
};

/// What `publish` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The new feed id.
    pub feed: FeedId,
    /// The escrow taken from the publisher.
    pub escrow: Balance,
    /// The contracts assigned (each hoster must confirm).
    pub contracts: Vec<(ContractId, AccountId32)>,
}

impl ChainClient {
    /// Register as a hoster (with `capacity` feeds) or an attestor, bonding `stake`.
    pub async fn register(
        &self,
        signer: &Keypair,
        role: Role,
        stake: Balance,
        endpoint: Endpoint,
        capacity: u32,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions()
            .datdot()
            .register(role, stake, endpoint, capacity);
        self.submit("register", &call, signer).await.map(drop)
    }

    /// Change one's address and keys.
    pub async fn update(&self, signer: &Keypair, endpoint: Endpoint) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().update(endpoint);
        self.submit("update", &call, signer).await.map(drop)
    }

    /// Unregister; the stake can be withdrawn after the unbonding period.
    pub async fn unregister(&self, signer: &Keypair) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().unregister();
        self.submit("unregister", &call, signer).await.map(drop)
    }

    /// Withdraw the stake after unbonding.
    pub async fn withdraw_unbonded(&self, signer: &Keypair) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().withdraw_unbonded();
        self.submit("withdraw_unbonded", &call, signer)
            .await
            .map(drop)
    }

    /// Publish feed `key` with the author-signed root `signed_root` (our wire encoding of
    /// `datdot_protocol::tree::SignedTreeRoot`) under `plan`; escrows the plan's cost and
    /// assigns hosters, who fetch the feed from `source` (a node serving it: address,
    /// Noise key, signing key; see [`endpoint`]) or from each other.
    pub async fn publish(
        &self,
        signer: &Keypair,
        key: [u8; 32],
        signed_root: Vec<u8>,
        plan: PlanTerms<Balance>,
        source: Endpoint,
    ) -> Result<Published, ChainError> {
        let call = datdot::transactions()
            .datdot()
            .publish(key, bounded(signed_root), plan, source);
        let events = self.submit("publish", &call, signer).await?;
        let p: datdot::datdot::events::Published = first_event("publish", &events)?;
        let assigned: Vec<datdot::datdot::events::HosterAssigned> = all_events("publish", &events)?;
        Ok(Published {
            feed: p.feed,
            escrow: p.escrow,
            contracts: assigned
                .into_iter()
                .map(|a| (a.contract, a.hoster))
                .collect(),
        })
    }

    /// The assigned hoster confirms it holds the feed.
    pub async fn confirm_hosting(
        &self,
        signer: &Keypair,
        contract: ContractId,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().confirm_hosting(contract);
        self.submit("confirm_hosting", &call, signer)
            .await
            .map(drop)
    }

    /// The publisher ends its plan.
    pub async fn end_plan(&self, signer: &Keypair, feed: FeedId) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().end_plan(feed);
        self.submit("end_plan", &call, signer).await.map(drop)
    }

    /// Submit a report (wire-codec bytes of `datdot_protocol::report::Report`).
    pub async fn submit_report(
        &self,
        signer: &Keypair,
        challenge: ChallengeId,
        report: Vec<u8>,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions()
            .datdot()
            .submit_report(challenge, bounded(report));
        self.submit("submit_report", &call, signer).await.map(drop)
    }

    /// Submit a fraud proof (wire-codec bytes of `datdot_protocol::fraud::FraudProof`).
    pub async fn submit_fraud_proof(
        &self,
        signer: &Keypair,
        challenge: ChallengeId,
        proof: Vec<u8>,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions()
            .datdot()
            .submit_fraud_proof(challenge, bounded(proof));
        self.submit("submit_fraud_proof", &call, signer)
            .await
            .map(drop)
    }

    /// Publish one's signed coin-flip reveal (clears withholding accusations).
    pub async fn publish_reveal(
        &self,
        signer: &Keypair,
        challenge: ChallengeId,
        reveal: Vec<u8>,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions()
            .datdot()
            .publish_reveal(challenge, bounded(reveal));
        self.submit("publish_reveal", &call, signer).await.map(drop)
    }

    /// Devnet only (chopsticks' `dev_newBlock`): build `count` blocks now.
    pub async fn dev_new_blocks(&self, count: u32) -> anyhow::Result<()> {
        let _: serde_json::Value = self
            .rpc
            .request(
                "dev_newBlock",
                subxt_rpcs::rpc_params![serde_json::json!({ "count": count })],
            )
            .await
            .context("dev_newBlock (only a chopsticks devnet has it)")?;
        Ok(())
    }
}
