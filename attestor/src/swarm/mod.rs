//! The secret swarm: authenticated, encrypted links between the members of one
//! challenge's committee, and nobody else.
//!
//! One [`Swarm`] per attestor process owns the listener and a registry of the sessions
//! it takes part in. [`Swarm::join`] registers a session with its members (their
//! registered addresses and Noise keys, in committee order) and returns a [`Session`]:
//! `send(member, msg)` and `recv()`. For every pair, the member with the lower
//! committee index dials; the other accepts. A link that breaks is redialled with
//! backoff (50 ms doubling to 2 s) for as long as the session lives; messages to a
//! member wait in a bounded queue ([`OUTBOX`]) until its link is up, and the oldest are
//! dropped beyond it (the coin flip re-sends what matters).
//!
//! Accepting: the preamble names the session; a connection for a session not (yet)
//! joined waits up to [`EARLY_WAIT`] for it (members learn of a challenge at slightly
//! different times), at most [`MAX_EARLY`] such connections at once. After the
//! handshake the initiator's static key must be one of the session's members with a
//! lower index than ours; anyone else — the audited hoster included — is refused.
//! Messages are our wire codec (`coinflip::Msg`, ≤ `Msg::MAX_SIZE`); one that does not
//! decode ends that link (it is redialled; the coin flip treats lost messages).

pub mod noise;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datdot_protocol::codec::{Message as _, from_bytes, to_bytes};
use datdot_protocol::coinflip::{Msg, SessionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use noise::{Link, LinkError, StaticKey};

/// Messages queued per member while its link is down or slow.
pub const OUTBOX: usize = 256;
/// Messages from all members waiting for the coin-flip driver.
pub const INBOX: usize = 1024;
/// How long an accepted connection waits for its session to be joined.
pub const EARLY_WAIT: Duration = Duration::from_secs(5);
/// Connections waiting for their session at once.
pub const MAX_EARLY: usize = 64;
/// Concurrent accepted connections still in the handshake.
pub const MAX_HANDSHAKES: usize = 256;
/// The handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A committee member as registered on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its registered (ed25519) Noise key.
    pub noise: [u8; 32],
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SwarmCounters {
    /// Links established (both directions).
    pub links: AtomicU64,
    /// Connections refused: not a member, unknown session, bad handshake.
    pub refused: AtomicU64,
    /// Links that broke or carried a message that did not decode.
    pub link_errors: AtomicU64,
    /// Messages dropped because a member's queue was full.
    pub dropped: AtomicU64,
    /// Messages sent / received.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
}

struct Slot {
    /// X25519 keys of the members, committee order.
    members: Vec<[u8; 32]>,
    me: usize,
    /// Hands accepted links to the per-member link task.
    incoming: Vec<Option<mpsc::Sender<Link>>>,
}

struct Inner {
    key: StaticKey,
    sessions: Mutex<HashMap<SessionId, Slot>>,
    joined: Notify,
    early: Semaphore,
    counters: Arc<SwarmCounters>,
}

/// The process-wide committee transport.
#[derive(Clone)]
pub struct Swarm {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Swarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Swarm({})", self.addr)
    }
}

fn max_msg() -> usize {
    Msg::MAX_SIZE
}

impl Swarm {
    /// Listen on `addr` with the node's Noise seed; accepts until the process ends.
    pub async fn bind(
        addr: SocketAddr,
        noise_seed: &[u8; 32],
        counters: Arc<SwarmCounters>,
    ) -> std::io::Result<Swarm> {
        let l = TcpListener::bind(addr).await?;
        let addr = l.local_addr()?;
        let inner = Arc::new(Inner {
            key: StaticKey::from_seed(noise_seed),
            sessions: Mutex::new(HashMap::new()),
            joined: Notify::new(),
            early: Semaphore::new(MAX_EARLY),
            counters,
        });
        tokio::spawn(accept_loop(l, inner.clone()));
        info!(%addr, "committee listener");
        Ok(Swarm { inner, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Our registered Noise key.
    pub fn noise_key(&self) -> [u8; 32] {
        self.inner.key.registered
    }

    /// Counters.
    pub fn counters(&self) -> &Arc<SwarmCounters> {
        &self.inner.counters
    }

    /// Take part in `session` as member `me` of `members` (committee order). Fails if
    /// the session is already joined, `me` is out of range, or our key is not `me`'s.
    pub fn join(
        &self,
        session: SessionId,
        members: Vec<Member>,
        me: usize,
    ) -> anyhow::Result<Session> {
        let n = members.len();
        anyhow::ensure!(me < n, "member index {me} outside a committee of {n}");
        anyhow::ensure!(
            members[me].noise == self.inner.key.registered,
            "member {me}'s registered Noise key is not ours"
        );
        let xs: Vec<[u8; 32]> = members
            .iter()
            .map(|m| noise::x25519_of(&m.noise).unwrap_or([0; 32]))
            .collect();
        let (in_tx, in_rx) = mpsc::channel(INBOX);
        let mut outboxes = Vec::with_capacity(n);
        let mut incoming = Vec::with_capacity(n);
        let mut tasks = JoinSet::new();
        for (j, m) in members.iter().enumerate() {
            if j == me {
                outboxes.push(None);
                incoming.push(None);
                continue;
            }
            let (out_tx, out_rx) = mpsc::channel(OUTBOX);
            let (link_tx, link_rx) = mpsc::channel(1);
            outboxes.push(Some(out_tx));
            incoming.push(Some(link_tx));
            let peer = Peer {
                index: j,
                addr: m.addr,
                x25519: xs[j],
                dial: me < j,
                session,
            };
            tasks.spawn(link_task(
                self.inner.clone(),
                peer,
                out_rx,
                link_rx,
                in_tx.clone(),
            ));
        }
        {
            let mut s = self.inner.sessions.lock().expect("registry lock");
            anyhow::ensure!(
                !s.contains_key(&session),
                "session {} already joined",
                hex::encode(&session[..8])
            );
            s.insert(
                session,
                Slot {
                    members: xs,
                    me,
                    incoming,
                },
            );
        }
        self.inner.joined.notify_waiters();
        Ok(Session {
            id: session,
            inner: self.inner.clone(),
            outboxes,
            inbox: in_rx,
            _tasks: tasks,
        })
    }
}

/// One session's view of the swarm. Dropping it leaves the session and closes its links.
pub struct Session {
    id: SessionId,
    inner: Arc<Inner>,
    outboxes: Vec<Option<mpsc::Sender<Arc<Msg>>>>,
    inbox: mpsc::Receiver<(usize, Msg)>,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", hex::encode(&self.id[..8]))
    }
}

impl Session {
    /// Queue `msg` for member `to`; `false` if it was dropped (queue full, or `to` is
    /// us or out of range).
    pub fn send(&self, to: usize, msg: Arc<Msg>) -> bool {
        let Some(Some(tx)) = self.outboxes.get(to) else {
            return false;
        };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(_) => {
                self.inner.counters.dropped.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// The next message and the committee index of its (authenticated) sender.
    pub async fn recv(&mut self) -> Option<(usize, Msg)> {
        self.inbox.recv().await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut s) = self.inner.sessions.lock() {
            s.remove(&self.id);
        }
    }
}

struct Peer {
    index: usize,
    addr: SocketAddr,
    x25519: [u8; 32],
    dial: bool,
    session: SessionId,
}

/// Keep a link to one member up for the life of the session; pump its messages.
async fn link_task(
    inner: Arc<Inner>,
    peer: Peer,
    mut out: mpsc::Receiver<Arc<Msg>>,
    mut accepted: mpsc::Receiver<Link>,
    inbox: mpsc::Sender<(usize, Msg)>,
) {
    let mut backoff = Duration::from_millis(50);
    // A message taken from the queue whose send failed: sent first on the next link.
    let mut unsent: Option<Arc<Msg>> = None;
    // A link the peer opened while the old one was still up here.
    let mut next: Option<Link> = None;
    loop {
        let link = if let Some(l) = next.take() {
            l
        } else if peer.dial {
            match dial(&inner, &peer).await {
                Ok(l) => l,
                Err(e) => {
                    debug!(peer = peer.index, addr = %peer.addr, "committee dial: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        } else {
            match accepted.recv().await {
                Some(l) => l,
                None => return,
            }
        };
        inner.counters.links.fetch_add(1, Relaxed);
        backoff = Duration::from_millis(50);
        let Link { mut rx, mut tx, .. } = link;
        let reader = async {
            loop {
                match rx.recv().await {
                    Ok(Some(bytes)) => match from_bytes::<Msg>(&bytes) {
                        Ok(m) => {
                            inner.counters.received.fetch_add(1, Relaxed);
                            if inbox.send((peer.index, m)).await.is_err() {
                                return None;
                            }
                        }
                        Err(e) => return Some(format!("message does not decode: {e}")),
                    },
                    Ok(None) => return Some("closed".to_string()),
                    Err(e) => return Some(e.to_string()),
                }
            }
        };
        let writer = async {
            loop {
                let m = match unsent.take() {
                    Some(m) => m,
                    None => match out.recv().await {
                        Some(m) => m,
                        None => return None,
                    },
                };
                if let Err(e) = tx.send(&to_bytes(m.as_ref())).await {
                    unsent = Some(m);
                    return Some(e.to_string());
                }
                inner.counters.sent.fetch_add(1, Relaxed);
            }
        };
        let why = tokio::select! {
            r = reader => r,
            w = writer => w,
            // The peer redialled (it saw the old link die first): switch to the new one.
            l = accepted.recv(), if !peer.dial => match l {
                Some(l) => { next = Some(l); Some("replaced by the peer's new link".to_string()) }
                None => None,
            },
        };
        let Some(why) = why else {
            return; // the session is over
        };
        inner.counters.link_errors.fetch_add(1, Relaxed);
        debug!(peer = peer.index, "committee link ended: {why}");
    }
}

async fn dial(inner: &Inner, peer: &Peer) -> Result<Link, LinkError> {
    let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(peer.addr))
        .await
        .map_err(|_| LinkError::Timeout)??;
    noise::connect(
        tcp,
        &inner.key,
        &peer.session,
        &peer.x25519,
        max_msg(),
        HANDSHAKE_TIMEOUT,
    )
    .await
}

async fn accept_loop(l: TcpListener, inner: Arc<Inner>) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let mut failures = 0u32;
    loop {
        let (tcp, from) = match l.accept().await {
            Ok(x) => {
                failures = 0;
                x
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                warn!("committee accept failed ({failures}): {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            inner.counters.refused.fetch_add(1, Relaxed);
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let known = |session: SessionId| {
                let inner = inner.clone();
                async move { wait_for_session(&inner, &session).await }
            };
            let (session, link) =
                match noise::accept(tcp, &inner.key, known, max_msg(), HANDSHAKE_TIMEOUT).await {
                    Ok(x) => x,
                    Err(e) => {
                        inner.counters.refused.fetch_add(1, Relaxed);
                        debug!(%from, "committee handshake refused: {e}");
                        return;
                    }
                };
            // The initiator must be a member with a lower index than ours.
            let target = {
                let s = inner.sessions.lock().expect("registry lock");
                s.get(&session).and_then(|slot| {
                    let j = slot.members.iter().position(|k| *k == link.remote)?;
                    (j < slot.me).then(|| slot.incoming[j].clone()).flatten()
                })
            };
            match target {
                Some(tx) => {
                    let _ = tx.send(link).await;
                }
                None => {
                    inner.counters.refused.fetch_add(1, Relaxed);
                    debug!(%from, "committee connection from a non-member refused");
                }
            }
        });
    }
}

/// Whether `session` is joined, waiting up to [`EARLY_WAIT`] (bounded by [`MAX_EARLY`]).
async fn wait_for_session(inner: &Inner, session: &SessionId) -> bool {
    let joined = |inner: &Inner| {
        inner
            .sessions
            .lock()
            .map(|s| s.contains_key(session))
            .unwrap_or(false)
    };
    if joined(inner) {
        return true;
    }
    let Ok(_permit) = inner.early.try_acquire() else {
        return false;
    };
    let wait = async {
        loop {
            let notified = inner.joined.notified();
            if joined(inner) {
                return true;
            }
            notified.await;
        }
    };
    tokio::time::timeout(EARLY_WAIT, wait)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::coinflip::{SignedCommit, commit_value};
    use datdot_protocol::identity::Keypair;

    async fn swarm(seed: u8) -> Swarm {
        Swarm::bind(
            "127.0.0.1:0".parse().unwrap(),
            &[seed; 32],
            Arc::new(SwarmCounters::default()),
        )
        .await
        .unwrap()
    }

    fn member(s: &Swarm) -> Member {
        Member {
            addr: s.local_addr(),
            noise: s.noise_key(),
        }
    }

    fn msg(seed: u8) -> Arc<Msg> {
        let kp = Keypair::from_seed(&[seed; 32]);
        Arc::new(Msg::Commit(SignedCommit::sign(
            &kp,
            [7; 32],
            0,
            commit_value(&[seed; 32]),
        )))
    }

    #[tokio::test]
    async fn members_talk_both_ways_and_outsiders_are_refused() {
        let (a, b, outsider) = (swarm(1).await, swarm(2).await, swarm(3).await);
        let session = [7; 32];
        let members = vec![member(&a), member(&b)];
        // B joins late: A's dial waits for it (early connections wait for the join).
        let mut sa = a.join(session, members.clone(), 0).unwrap();
        assert!(sa.send(1, msg(1)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut sb = b.join(session, members.clone(), 1).unwrap();
        let (from, m) = tokio::time::timeout(Duration::from_secs(5), sb.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, &m), (0, msg(1).as_ref()));
        assert!(sb.send(0, msg(2)));
        let (from, m) = tokio::time::timeout(Duration::from_secs(5), sa.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, &m), (1, msg(2).as_ref()));
        // An outsider (the audited hoster, say) that knows the session id and B's address
        // and key, claiming a seat with a lower index than B's: refused after the handshake.
        let so = outsider
            .join(session, vec![member(&outsider), member(&b)], 0)
            .unwrap();
        assert!(so.send(1, msg(3)));
        let refused = async {
            while b.counters().refused.load(Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), refused)
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sb.recv())
                .await
                .is_err(),
            "nothing from the outsider reaches the session"
        );
        drop(so);
        // Joining twice, or as someone else, is a local error.
        assert!(a.join(session, members.clone(), 0).is_err());
        assert!(a.join([8; 32], members, 1).is_err());
    }
}
