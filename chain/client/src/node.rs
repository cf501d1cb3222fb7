//! What every daemon (hoster, attestor) does with the chain around its own work:
//! connect patiently, retry reads that fail for transport reasons, register (or update
//! the registered endpoint), and the loop that hands out the work the chain announces
//! ([`work_loop`]). Refusals ([`ChainError::Refused`]) are never retried: they
//! carry the chain's reason to the operator.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc};
use tracing::{error, info, warn};

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

/// Run `f` up to [`READ_ATTEMPTS`] times with backoff (0.5 s doubling to 8 s) while it
/// fails in a way that may go away ([`ChainError::retryable`]: never a refusal, a reset
/// chain or bytes that do not decode; any error not the chain's may); every failure is
/// counted in `errors`.
pub async fn retry<T, E, F, Fut>(errors: &AtomicU64, what: &str, f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    retry_while(
        errors,
        what,
        |attempt| attempt < READ_ATTEMPTS,
        FIRST_DELAY,
        f,
    )
    .await
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
    retry_while(errors, what, |_| start.elapsed() < patience, FIRST_DELAY, f).await
}

/// The first pause of [`retry`] (doubling to 8 s).
const FIRST_DELAY: Duration = Duration::from_millis(500);

async fn retry_while<T, E, F, Fut>(
    errors: &AtomicU64,
    what: &str,
    more: impl Fn(u32) -> bool,
    first_delay: Duration,
    mut f: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<anyhow::Error>,
{
    let mut delay = first_delay;
    let mut attempt = 1;
    loop {
        match f().await.map_err(Into::into) {
            Ok(v) => return Ok(v),
            Err(e) if more(attempt) && may_succeed_again(&e) => {
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

/// Whether a retry may succeed where `e` failed: a [`ChainError`] in its causes says so
/// itself; any other error (not the chain's) may.
fn may_succeed_again(e: &anyhow::Error) -> bool {
    e.chain()
        .find_map(|c| c.downcast_ref::<ChainError>())
        .is_none_or(ChainError::retryable)
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

/// Ids [`work_loop`] remembers to drop duplicate announcements.
pub const SEEN: usize = 4096;

/// A piece of work the chain hands a daemon (a hoster's assignment, an attestor's
/// challenge), known by its id on chain.
pub trait Work: Send + 'static {
    /// The contract or challenge id.
    fn id(&self) -> u64;
}

impl Work for crate::Assignment {
    fn id(&self) -> u64 {
        self.contract
    }
}

/// The loop every daemon runs once registered: the work found pending at start
/// (`backlog`) first, then what `events` announces (`accept` turns an announcement into
/// work or drops it). Work whose id was among the last [`SEEN`] is dropped: the backlog
/// is read after the follower started, so nothing falls in between and what both saw
/// runs once. Each piece runs in its own task (`handle`), at most `max` at once; the
/// rest wait (logged). `received` counts what was not dropped. A failure is logged
/// with its id and never stops the loop, which ends (an error) only when the follower
/// does.
pub async fn work_loop<T, J, Fut>(
    what: &'static str,
    max: usize,
    backlog: Vec<J>,
    mut events: mpsc::Receiver<T>,
    mut accept: impl FnMut(T) -> Option<J>,
    received: &AtomicU64,
    handle: impl Fn(J) -> Fut,
) -> anyhow::Result<()>
where
    J: Work,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max));
    let mut seen = Seen::default();
    let mut backlog = backlog.into_iter();
    loop {
        let work = match backlog.next() {
            Some(w) => w,
            None => match events.recv().await {
                Some(e) => match accept(e) {
                    Some(w) => w,
                    None => continue,
                },
                None => bail!("the chain's {what} follower ended"),
            },
        };
        let id = work.id();
        if !seen.insert(id) {
            continue;
        }
        received.fetch_add(1, Relaxed);
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                warn!(
                    id,
                    "{max} {what}s running already (the most at once); this one waits"
                );
                permits
                    .clone()
                    .acquire_owned()
                    .await
                    .context("work permits closed")?
            }
        };
        let task = handle(work);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = task.await {
                error!(id, "{what} {id} failed: {e:#}");
            }
        });
    }
}

/// Recently seen ids, at most [`SEEN`].
#[derive(Default)]
struct Seen {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Seen {
    /// Whether `id` is new (then it is remembered, the oldest forgotten past [`SEEN`]).
    fn insert(&mut self, id: u64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn seen_drops_duplicates_and_stays_bounded() {
        let mut s = Seen::default();
        assert!(s.insert(1));
        assert!(!s.insert(1));
        for i in 2..(SEEN as u64 + 10) {
            assert!(s.insert(i));
        }
        assert_eq!(s.order.len(), SEEN);
        assert_eq!(s.set.len(), SEEN);
        assert!(s.insert(1), "the oldest id was forgotten");
    }

    /// How many times [`retry`] (without its pauses) calls a read that fails with
    /// `fail()` until its `ok`-th try, which answers 7; and what it ends with.
    async fn tries(ok: u32, fail: fn() -> anyhow::Error) -> (u32, anyhow::Result<u32>) {
        let errors = AtomicU64::new(0);
        let mut tries = 0;
        let r = retry_while(
            &errors,
            "reading",
            |a| a < READ_ATTEMPTS,
            Duration::ZERO,
            || {
                tries += 1;
                let t = tries;
                async move { if t < ok { Err(fail()) } else { Ok(7) } }
            },
        )
        .await;
        assert_eq!(
            errors.load(Relaxed),
            u64::from(tries - u32::from(r.is_ok()))
        );
        (tries, r)
    }

    /// A read that failed on the way is tried again; one that does not decode is not
    /// (the node would send the same bytes), nor is a refusal; an error that is not the
    /// chain's is, up to [`READ_ATTEMPTS`].
    #[tokio::test]
    async fn retries_only_what_may_succeed_again() {
        let read = || ChainError::read("Participants")(anyhow::anyhow!("closed")).into();
        let (n, r) = tries(3, read).await;
        assert_eq!((n, r.unwrap()), (3, 7));
        let decode = || ChainError::decode("Participants")(anyhow::anyhow!("short")).into();
        let (n, r) = tries(3, decode).await;
        assert_eq!(n, 1);
        assert!(matches!(
            r.unwrap_err().downcast_ref::<ChainError>(),
            Some(ChainError::Decode { .. })
        ));
        let refused = || {
            ChainError::from(Rejected {
                call: "register",
                error: crate::Refusal::Datdot(DatdotError::AlreadyRegistered),
                pallet: "Datdot".into(),
                name: "AlreadyRegistered".into(),
                doc: String::new(),
            })
            .into()
        };
        let (n, r) = tries(3, refused).await;
        assert_eq!(n, 1);
        assert!(is_rejected(&r.unwrap_err(), DatdotError::AlreadyRegistered));
        let (n, r) = tries(u32::MAX, || anyhow::anyhow!("not the chain's")).await;
        assert_eq!(n, READ_ATTEMPTS);
        assert!(r.is_err());
    }

    struct Id(u64);
    impl Work for Id {
        fn id(&self) -> u64 {
            self.0
        }
    }

    /// The backlog first, then the announcements; each id once, the refused ones
    /// never; never more than `max` at once; a failure does not stop the rest; the
    /// loop ends when the follower does.
    #[tokio::test]
    async fn work_runs_once_each_and_at_most_max_at_once() {
        let (tx, rx) = mpsc::channel(16);
        for e in [2u64, 3, 3, 100, 4, 1, 5] {
            tx.send(e).await.unwrap();
        }
        drop(tx);
        let done = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let received = AtomicU64::new(0);
        let r = work_loop(
            "test",
            2,
            vec![Id(1), Id(2)],
            rx,
            |e| (e != 100).then_some(Id(e)),
            &received,
            |w: Id| {
                let (done, running, most) = (done.clone(), running.clone(), most.clone());
                async move {
                    let now = running.fetch_add(1, Relaxed) + 1;
                    most.fetch_max(now, Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Relaxed);
                    done.lock().unwrap().push(w.0);
                    anyhow::ensure!(w.0 != 3, "work 3 fails");
                    Ok(())
                }
            },
        )
        .await;
        assert!(r.unwrap_err().to_string().contains("follower ended"));
        for _ in 0..100 {
            if done.lock().unwrap().len() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut ids = done.lock().unwrap().clone();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert_eq!(received.load(Relaxed), 5);
        assert_eq!(most.load(Relaxed), 2);
    }
}
