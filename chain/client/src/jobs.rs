//! Execution jobs on chain: modules, offers, jobs, output commits, monitor reports,
//! call fraud proofs, settlement (`pallet_datdot::jobs`, DESIGN §18.6).

use anyhow::Result;

use crate::datdot::runtime_types::pallet_datdot::jobs::{Job, JobEnd};
use crate::submit::first_event;
use crate::{AccountId32, Balance, ChainClient, ChainError, FeedId, Keypair, bounded, datdot};

/// A job's id.
pub type JobId = u64;

/// What `submit_job` did: the job and its drawn executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The job's id.
    pub job: JobId,
    /// The executor drawn among the feed's hosters offering execution.
    pub executor: AccountId32,
}

/// What an accepted call fraud proof did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFraud {
    /// The call proven wrong.
    pub index: u64,
    /// Taken from the executor's stake.
    pub slashed: Balance,
    /// Paid to the submitter.
    pub reward: Balance,
}

impl ChainClient {
    /// Upload a job module; returns its id (`datdot_exec::module_hash`).
    pub async fn upload_module(
        &self,
        signer: &Keypair,
        code: Vec<u8>,
    ) -> Result<[u8; 32], ChainError> {
        let hash = datdot_exec::module_hash(&code);
        let call = datdot::transactions().datdot().upload_module(bounded(code));
        self.submit("upload_module", &call, signer).await?;
        Ok(hash)
    }

    /// Start (or stop) offering to execute jobs over the feeds one hosts.
    pub async fn offer_execution(&self, signer: &Keypair, offer: bool) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().offer_execution(offer);
        self.submit("offer_execution", &call, signer)
            .await
            .map(drop)
    }

    /// Submit a job (`payment` into escrow); returns the job and its executor.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_job(
        &self,
        signer: &Keypair,
        module: [u8; 32],
        feed: FeedId,
        entry: &str,
        fuel_per_call: u64,
        fuel_total: u64,
        payment: Balance,
    ) -> Result<Submitted, ChainError> {
        let call = datdot::transactions().datdot().submit_job(
            module,
            feed,
            bounded(entry.as_bytes().to_vec()),
            fuel_per_call,
            fuel_total,
            payment,
        );
        let events = self.submit("submit_job", &call, signer).await?;
        let s: datdot::datdot::events::JobSubmitted = first_event("submit_job", &events)?;
        Ok(Submitted {
            job: s.job,
            executor: s.executor,
        })
    }

    /// The drawn executor accepts and registers its output feed's key.
    pub async fn accept_job(
        &self,
        signer: &Keypair,
        job: JobId,
        output_key: [u8; 32],
    ) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().accept_job(job, output_key);
        self.submit("accept_job", &call, signer).await.map(drop)
    }

    /// Commit the output feed's signed root (our wire encoding of
    /// `datdot_protocol::tree::SignedTreeRoot`); `end` marks the final commit
    /// (`Some(true)`: every call logged, `Some(false)`: out of fuel).
    pub async fn commit_output(
        &self,
        signer: &Keypair,
        job: JobId,
        signed_root: Vec<u8>,
        fuel_used: u64,
        end: Option<bool>,
    ) -> Result<(), ChainError> {
        let end = end.map(|done| {
            if done {
                JobEnd::Done
            } else {
                JobEnd::OutOfFuel
            }
        });
        let call = datdot::transactions().datdot().commit_output(
            job,
            bounded(signed_root),
            fuel_used,
            end,
        );
        self.submit("commit_output", &call, signer).await.map(drop)
    }

    /// Prove a call wrong (our wire encoding of `datdot_exec::CallFraudProof`); the chain
    /// re-runs it. A right record is refused as `NoFraud`.
    pub async fn submit_call_proof(
        &self,
        signer: &Keypair,
        job: JobId,
        proof: Vec<u8>,
    ) -> Result<CallFraud, ChainError> {
        let call = datdot::transactions()
            .datdot()
            .submit_call_proof(job, bounded(proof));
        let events = self.submit("submit_call_proof", &call, signer).await?;
        let f: datdot::datdot::events::CallFraudProven = first_event("submit_call_proof", &events)?;
        Ok(CallFraud {
            index: f.index,
            slashed: f.slashed,
            reward: f.reward,
        })
    }

    /// File a monitor report (our wire encoding of `datdot_exec::MonitorReport`).
    pub async fn submit_monitor_report(
        &self,
        signer: &Keypair,
        job: JobId,
        report: Vec<u8>,
    ) -> Result<(), ChainError> {
        let call = datdot::transactions()
            .datdot()
            .submit_monitor_report(job, bounded(report));
        self.submit("submit_monitor_report", &call, signer)
            .await
            .map(drop)
    }

    /// Pay out an ended job after its fraud window.
    pub async fn settle_job(&self, signer: &Keypair, job: JobId) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().settle_job(job);
        self.submit("settle_job", &call, signer).await.map(drop)
    }

    /// Cancel a job its executor did not accept in time (the sponsor).
    pub async fn cancel_job(&self, signer: &Keypair, job: JobId) -> Result<(), ChainError> {
        let call = datdot::transactions().datdot().cancel_job(job);
        self.submit("cancel_job", &call, signer).await.map(drop)
    }

    /// A job, until it is settled, cancelled or proven fraudulent.
    pub async fn job(
        &self,
        job: JobId,
    ) -> Result<Option<Job<AccountId32, Balance, u32>>, ChainError> {
        self.read_opt("Jobs", datdot::storage().datdot().jobs(), (job,))
            .await
    }
}
