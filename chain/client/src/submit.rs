//! Signing and submitting a transaction: per-account nonce order, and its outcome as a
//! [`ChainError`].

use std::time::Duration;

use anyhow::Context;
use subxt::SubstrateConfig;
use tracing::warn;

use crate::error::transient;
use crate::{
    ChainClient, ChainError, FINALIZE_WAIT, Keypair, Refusal, Rejected, SUBMIT_ATTEMPTS, account,
    datdot,
};

impl ChainClient {
    /// Sign `call` with `signer`, submit it and wait until it is finalized; returns its
    /// events, or why not ([`ChainError`]: a refusal with the pallet's error as a value,
    /// a timeout, a transport failure after [`SUBMIT_ATTEMPTS`] tries, a reset chain).
    ///
    /// Calls from one account may run at once (a hoster confirms several contracts, an
    /// attestor reports on several challenges). subxt's default reads the nonce from
    /// the chain's state, which does not count transactions still in the pool:
    /// concurrent calls took the same nonce and all but one failed
    /// (`devnet::challenge_lifecycle_on_the_devnet`, four concurrent `update`s). So
    /// each call signs and submits under one lock, with the larger of the pool-aware
    /// next nonce (`system_accountNextIndex`) and one past the last this client had
    /// accepted into the pool for the account. The second is needed because
    /// chopsticks' pool-aware nonce misses a transaction while its block is being
    /// built (seen: `invalid: stale`); a real node counts it. A transaction that then
    /// fails to be finalized drops the account's local nonce, so one the node dropped
    /// cannot leave later ones waiting on a gap. The lock is held until the pool
    /// accepted the transaction, not until it is finalized.
    pub(crate) async fn submit<Call: subxt::transactions::Payload>(
        &self,
        what: &'static str,
        call: &Call,
        signer: &Keypair,
    ) -> Result<subxt::extrinsics::ExtrinsicEvents<SubstrateConfig>, ChainError> {
        // Never sign for a chain we did not connect to: a dev chain started again may
        // accept the old chain's transactions (chopsticks gives every dev chain the same
        // genesis hash, which is what a transaction signs), and everything we built for
        // the old one (sessions, reports) names the old chain id.
        self.ensure_same_chain(what).await?;
        let who = signer.public_key().0;
        let mut attempt = 1;
        let progress = loop {
            let res = tokio::time::timeout(FINALIZE_WAIT, async {
                let mut nonces = self.nonces.lock().await;
                let next: u64 = self
                    .rpc
                    .request(
                        "system_accountNextIndex",
                        subxt_rpcs::rpc_params![account(signer)],
                    )
                    .await
                    .context("reading the account's next nonce")?;
                let nonce = nonces.get(&who).map_or(next, |n| next.max(*n));
                let params =
                    subxt::config::SubstrateExtrinsicParamsBuilder::<SubstrateConfig>::new()
                        .nonce(nonce)
                        .build();
                let mut txs = self.api.transactions().await?;
                let p = txs.sign_and_submit_then_watch(call, signer, params).await?;
                nonces.insert(who, nonce + 1);
                anyhow::Ok(p)
            })
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "submitting {what} timed out after {FINALIZE_WAIT:?}"
                ))
            });
            match res {
                Ok(p) => break p,
                Err(e) if attempt < SUBMIT_ATTEMPTS && transient(&format!("{e:#}")) => {
                    warn!(call = what, attempt, error = %format!("{e:#}"), "submission failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(cause) => {
                    return Err(ChainError::Transport {
                        call: what,
                        cause: cause.context(format!("submitting {what}")),
                    });
                }
            }
        };
        let finalized =
            tokio::time::timeout(FINALIZE_WAIT, progress.wait_for_finalized_success()).await;
        // Included (applied or refused by the pallet) uses the nonce; anything else may
        // not have: read it from the chain again next time.
        let included = matches!(
            finalized,
            Ok(Ok(_)
                | Err(
                    subxt::error::TransactionFinalizedSuccessError::SuccessError(
                        subxt::error::TransactionEventsError::ExtrinsicFailed(_)
                    )
                ))
        );
        if !included {
            self.nonces.lock().await.remove(&who);
        }
        let Ok(finalized) = finalized else {
            return Err(ChainError::Timeout {
                call: what,
                after: FINALIZE_WAIT,
            });
        };
        match finalized {
            Ok(events) => Ok(events),
            Err(subxt::error::TransactionFinalizedSuccessError::SuccessError(
                subxt::error::TransactionEventsError::ExtrinsicFailed(
                    subxt::error::DispatchError::Module(m),
                ),
            )) => Err(rejected(what, &m)),
            Err(e) => Err(ChainError::Transport {
                call: what,
                cause: anyhow::Error::new(e).context(format!("{what} failed")),
            }),
        }
    }
}

/// A module error as a value: the Datdot pallet's decoded into [`crate::DatdotError`],
/// another pallet's by index; names and documentation from the metadata.
fn rejected(call: &'static str, m: &subxt::error::ModuleError) -> ChainError {
    let error = match m.as_root_error::<datdot::Error>() {
        Ok(datdot::Error::Datdot(e)) => Refusal::Datdot(e),
        _ => Refusal::Other {
            pallet: m.pallet_index(),
            error: m.error_index(),
        },
    };
    let (pallet, name, doc) = match m.details() {
        Ok(d) => (
            d.pallet.name().to_string(),
            d.variant.name.clone(),
            d.variant.docs.join(" ").trim().to_string(),
        ),
        Err(_) => (
            format!("pallet {}", m.pallet_index()),
            format!("error {}", m.error_index()),
            String::new(),
        ),
    };
    Rejected {
        call,
        error,
        pallet,
        name,
        doc,
    }
    .into()
}

/// The events of a finalized call.
pub(crate) type CallEvents = subxt::extrinsics::ExtrinsicEvents<SubstrateConfig>;

/// The first `E` among `call`'s events: one that is missing or does not decode is
/// [`ChainError::Events`] (the call was applied).
pub(crate) fn first_event<E: subxt::events::DecodeAsEvent>(
    call: &'static str,
    events: &CallEvents,
) -> Result<E, ChainError> {
    let name = || {
        std::any::type_name::<E>()
            .rsplit("::")
            .next()
            .unwrap_or("an")
    };
    match events.find_first::<E>() {
        Some(Ok(e)) => Ok(e),
        Some(Err(e)) => Err(ChainError::Events {
            call,
            cause: anyhow::Error::new(e).context(format!("decoding {}", name())),
        }),
        None => Err(ChainError::Events {
            call,
            cause: anyhow::anyhow!("no {} event", name()),
        }),
    }
}

/// Every `E` among `call`'s events (see [`first_event`]).
pub(crate) fn all_events<E: subxt::events::DecodeAsEvent>(
    call: &'static str,
    events: &CallEvents,
) -> Result<Vec<E>, ChainError> {
    events
        .find::<E>()
        .collect::<Result<_, _>>()
        .map_err(|e| ChainError::Events {
            call,
            cause: anyhow::Error::new(e),
        })
}
