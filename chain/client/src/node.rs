//! What every daemon (hoster, attestor) does with the chain before its own work:
//! connect patiently, retry reads that fail for transport reasons, and register (or
//! update the registered endpoint). Refusals ([`ChainError::Refused`]) are never retried: they
//! carry the chain's reason to the operator.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use tracing::{info, warn};

use crate::{
    AccountId32, Balance, ChainClient, ChainError, DatdotError, Endpoint, Keypair, Rejected, Role,
    Status,
};

/// Rounds of [`ChainClient::connect`] (itself 10 attempts, ≈ 25 s) before giving up.
pub const CONNECT_ROUNDS: u32 = 40;
/// Attempts of a read in [`retry`].
pub const READ_ATTEMPTS: u32 = 5;

/// Connect, retrying for [`CONNECT_ROUNDS`] rounds with backoff up to 30 s; each failure
/// is logged and counted in `errors`.
pub async fn connect_patiently(url: &str, errors: &AtomicU64) -> anyhow::Result<ChainClient> {
    let mut delay = Duration::from_secs(1);
    for round in 1..=CONNECT_ROUNDS {
        match ChainClient::connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                errors.fetch_add(1, Relaxed);
                warn!(%url, round, "chain unreachable, retrying in {delay:?}: {e:#}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    bail!("the chain at {url} stayed unreachable ({CONNECT_ROUNDS} rounds)")
}

/// Run `f` up to [`READ_ATTEMPTS`] times with backoff (0.5 s doubling to 8 s) unless it
/// fails with a refusal; every failure is counted in `errors`.
pub async fn retry<T, E, F, Fut>(errors: &AtomicU64, what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    retry_while(errors, what, |attempt| attempt < READ_ATTEMPTS, f).await
}

/// How long work with a deadline on chain (a challenge) keeps retrying a chain call
/// through an outage: long past any deadline, which the caller checks against the head
/// once the chain answers again.
pub const OUTAGE_PATIENCE: Duration = Duration::from_secs(600);

/// [`retry`] for as long as `patience` (backoff 0.5 s doubling to 8 s): a chain RPC
/// outage of minutes does not abandon the work.
pub async fn retry_for<T, E, F, Fut>(
    errors: &AtomicU64,
    what: &str,
    patience: Duration,
    f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let start = std::time::Instant::now();
    retry_while(errors, what, |_| start.elapsed() < patience, f).await
}

async fn retry_while<T, E, F, Fut>(
    errors: &AtomicU64,
    what: &str,
    more: impl Fn(u32) -> bool,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match f().await.map_err(Into::into) {
            Ok(v) => return Ok(v),
            Err(e) if more(attempt) && refused(&e).is_none() => {
                errors.fetch_add(1, Relaxed);
                warn!(attempt, "{what} failed, retrying in {delay:?}: {e:#}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
                attempt += 1;
            }
            Err(e) => {
                errors.fetch_add(1, Relaxed);
                return Err(e.context(what.to_string()));
            }
        }
    }
}

/// What a daemon registers.
#[derive(Debug)]
pub struct Registration {
    /// Hoster or attestor.
    pub role: Role,
    /// Stake to bond (smallest units).
    pub stake: Balance,
    /// Address peers dial (`ip:port`).
    pub addr: String,
    /// Noise static public key.
    pub noise_key: [u8; 32],
    /// Protocol signing public key.
    pub signing_key: [u8; 32],
    /// Feeds accepted (hosters; attestors register 0).
    pub capacity: u32,
}

/// The chain's refusal in `e`'s chain of causes, if any.
pub fn refused(e: &anyhow::Error) -> Option<&Rejected> {
    e.chain()
        .find_map(|c| c.downcast_ref::<ChainError>())
        .and_then(ChainError::rejected)
}

/// Whether `e` is the chain refusing with the Datdot pallet's `error`.
pub fn is_rejected(e: &anyhow::Error, error: DatdotError) -> bool {
    refused(e).and_then(Rejected::datdot) == Some(error)
}

fn copy_role(r: &Role) -> Role {
    match r {
        Role::Hoster => Role::Hoster,
        Role::Attestor => Role::Attestor,
    }
}

fn role_name(r: &Role) -> &'static str {
    match r {
        Role::Hoster => "hoster",
        Role::Attestor => "attestor",
    }
}

/// Register `me` as `reg` says, or update its endpoint if it is registered with another.
/// Fails (with the chain's reason) on a refusal, a registration under the other role,
/// or an unbonding account.
pub async fn register_or_update(
    chain: &ChainClient,
    signer: &Keypair,
    me: &AccountId32,
    reg: &Registration,
    errors: &AtomicU64,
) -> anyhow::Result<()> {
    let ep = || crate::endpoint(&reg.addr, reg.noise_key, reg.signing_key);
    let role = role_name(&reg.role);
    match retry(errors, "reading our registration", || chain.participant(me)).await? {
        None => {
            let r = retry(errors, "register", || {
                chain.register(signer, copy_role(&reg.role), reg.stake, ep(), reg.capacity)
            })
            .await;
            match r {
                Ok(()) => {}
                // A resubmission of a registration that had landed after all.
                Err(e) if is_rejected(&e, DatdotError::AlreadyRegistered) => {}
                Err(e) => return Err(e),
            }
            info!(account = %me, addr = %reg.addr, stake = reg.stake, "registered as {role}");
        }
        Some(part) => {
            if role_name(&part.role) != role {
                bail!(
                    "chain account {me} is registered as {}, not {role}",
                    role_name(&part.role)
                );
            }
            if let Status::Unbonding { until } = part.status {
                bail!(
                    "chain account {me} is unbonding (until block {until}); it takes no new work"
                );
            }
            let e: &Endpoint = &part.endpoint;
            if e.addr.0 == reg.addr.as_bytes()
                && e.noise_key == reg.noise_key
                && e.signing_key == reg.signing_key
            {
                info!(account = %me, addr = %reg.addr, "already registered; endpoint unchanged");
            } else {
                retry(errors, "update", || chain.update(signer, ep()))
                    .await
                    .context("updating the registered endpoint")?;
                info!(
                    account = %me,
                    addr = %reg.addr,
                    was = %String::from_utf8_lossy(&e.addr.0),
                    "already registered; endpoint updated"
                );
            }
            if matches!(part.status, Status::Suspended) {
                warn!(account = %me, "suspended on chain until a challenge passes");
            }
        }
    }
    Ok(())
}
