//! The secret swarm: authenticated, encrypted links between the members of the
//! committees this attestor sits on, and nobody else.
//!
//! One [`Swarm`] per attestor process owns the listener, one link per peer node, and a
//! registry of the sessions (coin flips) it takes part in. [`Swarm::join`] registers a
//! session with its members (their registered addresses and Noise keys, in committee
//! order) and returns a [`Session`]: `send(member, msg)` and `recv()`.
//!
//! **Links are per peer, not per session**: every session two nodes share travels over
//! one link, each message tagged with its session (`session (32 B) || coin-flip Msg`).
//! A committee's links are made once and reused by the next challenge the same nodes
//! meet in, so a coin flip usually starts on links that are already up. Of each pair,
//! the node with the smaller static key dials; the other waits for it. A link is
//! redialled with backoff (50 ms doubling to 2 s) while a session needs it, and closed
//! after [`IDLE`] without one. Messages to a member wait in a bounded queue
//! ([`OUTBOX`]) until its link is up; beyond it they are dropped and counted (the coin
//! flip re-sends what matters).
//!
//! **Who gets in**: a node may keep a link to us only while it is a member of a session
//! we joined (an accepted node that is not waits up to [`EARLY_WAIT`] for such a join:
//! members learn of a challenge at slightly different times). Every message is checked:
//! its session must be joined here and its sender a member of it, else it is dropped
//! and counted; messages for a session not joined yet are held briefly
//! ([`MAX_EARLY_MSGS`], [`EARLY_WAIT`]) and delivered on the join. The audited hoster —
//! which knows the (public) session id — is no member, so it cannot even hold a link,
//! and reveals only ever travel inside members' links. A message that does not decode
//! ends that link (it is redialled).

pub mod noise;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datdot_protocol::codec::{Message as _, from_bytes, to_bytes};
use datdot_protocol::coinflip::{Msg, SessionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, info, warn};

use noise::{Link, LinkError, StaticKey};

/// Messages queued per peer while its link is down or slow.
pub const OUTBOX: usize = 256;
/// Messages from all members of one session waiting for its coin-flip driver.
pub const INBOX: usize = 1024;
/// How long an accepted node that is no member yet, or a message for a session not
/// joined yet, waits for the join.
pub const EARLY_WAIT: Duration = Duration::from_secs(5);
/// Messages held for sessions not joined yet.
pub const MAX_EARLY_MSGS: usize = 1024;
/// Accepted connections still in the handshake or waiting to become members.
pub const MAX_HANDSHAKES: usize = 256;
/// The handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A link no session needs is closed after this.
pub const IDLE: Duration = Duration::from_secs(60);

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
    /// Connections refused (not a member, bad handshake) and messages dropped for
    /// naming a session the sender is no member of.
    pub refused: AtomicU64,
    /// Links that broke or carried a message that did not decode.
    pub link_errors: AtomicU64,
    /// Messages dropped because a queue was full (or held too long before a join).
    pub dropped: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
}

struct Slot {
    /// X25519 keys of the members, committee order.
    members: Vec<[u8; 32]>,
    me: usize,
    inbox: mpsc::Sender<(usize, Msg)>,
}

struct Peer {
    out: mpsc::Sender<(SessionId, Arc<Msg>)>,
    incoming: mpsc::Sender<Link>,
    addr: SocketAddr,
    /// Sessions that include this peer.
    users: usize,
    idle_since: Option<Instant>,
}

#[derive(Default)]
struct Registry {
    sessions: HashMap<SessionId, Slot>,
    peers: HashMap<[u8; 32], Peer>,
    /// Messages for sessions not joined yet: (arrival, sender, session, message).
    early: VecDeque<(Instant, [u8; 32], SessionId, Msg)>,
}

impl Registry {
    fn is_member(&self, x: &[u8; 32]) -> bool {
        self.sessions.values().any(|s| s.members.contains(x))
    }
}

struct Inner {
    key: StaticKey,
    reg: Mutex<Registry>,
    joined: Notify,
    counters: Arc<SwarmCounters>,
}

impl Inner {
    fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a
        // way that matters more than stopping: every update is a few map operations.
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peer task of `x`, started if there is none (with `addr` to dial).
    fn peer(self: &Arc<Self>, reg: &mut Registry, x: [u8; 32], addr: Option<SocketAddr>) {
        if let Some(p) = reg.peers.get_mut(&x) {
            if let Some(a) = addr {
                p.addr = a;
            }
            return;
        }
        let (out_tx, out_rx) = mpsc::channel(OUTBOX);
        let (in_tx, in_rx) = mpsc::channel(1);
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        reg.peers.insert(
            x,
            Peer {
                out: out_tx,
                incoming: in_tx,
                addr,
                users: 0,
                idle_since: Some(Instant::now()),
            },
        );
        tokio::spawn(peer_task(self.clone(), x, out_rx, in_rx));
    }

    /// Deliver a message from `from` for `session`, or hold it for a join.
    async fn route(&self, from: [u8; 32], session: SessionId, msg: Msg) {
        let mut msg = Some(msg);
        let target = {
            let mut reg = self.reg();
            match reg.sessions.get(&session) {
                Some(slot) => match slot.members.iter().position(|k| *k == from) {
                    Some(j) if j != slot.me => Some((slot.inbox.clone(), j)),
                    _ => {
                        self.counters.refused.fetch_add(1, Relaxed);
                        None
                    }
                },
                None => {
                    let now = Instant::now();
                    while reg
                        .early
                        .front()
                        .is_some_and(|e| now.duration_since(e.0) > EARLY_WAIT)
                    {
                        reg.early.pop_front();
                        self.counters.dropped.fetch_add(1, Relaxed);
                    }
                    if reg.early.len() >= MAX_EARLY_MSGS {
                        reg.early.pop_front();
                        self.counters.dropped.fetch_add(1, Relaxed);
                    }
                    if let Some(m) = msg.take() {
                        reg.early.push_back((now, from, session, m));
                    }
                    None
                }
            }
        };
        if let (Some((inbox, j)), Some(m)) = (target, msg) {
            // A session gone meanwhile has closed its inbox: nothing to do.
            let _ = inbox.send((j, m)).await;
        }
    }
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

/// Largest message on a link: a session id and a coin-flip message.
fn max_msg() -> usize {
    32 + Msg::MAX_SIZE
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
            reg: Mutex::new(Registry::default()),
            joined: Notify::new(),
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
    /// the session is already joined, `me` is out of range, or `me`'s key is not ours.
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
        anyhow::ensure!(
            !repeated_keys(&members),
            "a Noise key appears twice in the committee (in its X25519 form)"
        );
        let xs: Vec<[u8; 32]> = members
            .iter()
            .map(|m| noise::x25519_of(&m.noise).unwrap_or([0; 32]))
            .collect();
        let (in_tx, in_rx) = mpsc::channel(INBOX);
        {
            let mut reg = self.inner.reg();
            anyhow::ensure!(
                !reg.sessions.contains_key(&session),
                "session {} already joined",
                hex::encode(&session[..8])
            );
            for (j, m) in members.iter().enumerate() {
                if j == me || xs[j] == [0; 32] {
                    continue;
                }
                self.inner.peer(&mut reg, xs[j], Some(m.addr));
                if let Some(p) = reg.peers.get_mut(&xs[j]) {
                    p.users += 1;
                    p.idle_since = None;
                }
            }
            // Messages that came before the join.
            let early = std::mem::take(&mut reg.early);
            for (at, from, s, msg) in early {
                if s != session {
                    reg.early.push_back((at, from, s, msg));
                    continue;
                }
                match xs.iter().position(|k| *k == from) {
                    Some(j) if j != me => {
                        if in_tx.try_send((j, msg)).is_err() {
                            self.inner.counters.dropped.fetch_add(1, Relaxed);
                        }
                    }
                    _ => {
                        self.inner.counters.refused.fetch_add(1, Relaxed);
                    }
                }
            }
            reg.sessions.insert(
                session,
                Slot {
                    members: xs.clone(),
                    me,
                    inbox: in_tx,
                },
            );
        }
        self.inner.joined.notify_waiters();
        Ok(Session {
            id: session,
            inner: self.inner.clone(),
            members: xs,
            me,
            inbox: in_rx,
        })
    }
}

/// One session's view of the swarm. Dropping it leaves the session; links no other
/// session needs close after [`IDLE`].
pub struct Session {
    id: SessionId,
    inner: Arc<Inner>,
    members: Vec<[u8; 32]>,
    me: usize,
    inbox: mpsc::Receiver<(usize, Msg)>,
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
        if to == self.me {
            return false;
        }
        let Some(x) = self.members.get(to) else {
            return false;
        };
        let reg = self.inner.reg();
        let Some(p) = reg.peers.get(x) else {
            return false;
        };
        match p.out.try_send((self.id, msg)) {
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
        let mut reg = self.inner.reg();
        reg.sessions.remove(&self.id);
        for (j, x) in self.members.iter().enumerate() {
            if j == self.me {
                continue;
            }
            if let Some(p) = reg.peers.get_mut(x) {
                p.users = p.users.saturating_sub(1);
                if p.users == 0 {
                    p.idle_since = Some(Instant::now());
                }
            }
        }
    }
}

/// Whether the peer task of `x` should keep going: it is needed, or not idle for long.
/// Removes the peer (ending the task) when it is idle too long.
fn keep(inner: &Inner, x: &[u8; 32]) -> bool {
    let mut reg = inner.reg();
    let Some(p) = reg.peers.get(x) else {
        return false;
    };
    match p.idle_since {
        Some(t) if t.elapsed() >= IDLE => {
            reg.peers.remove(x);
            false
        }
        _ => true,
    }
}

fn needed(inner: &Inner, x: &[u8; 32]) -> Option<SocketAddr> {
    let reg = inner.reg();
    reg.peers.get(x).filter(|p| p.users > 0).map(|p| p.addr)
}

/// Keep a link to peer `x` while sessions need it; pump its messages.
/// Whether two members share a Noise key in the form links authenticate with (a key
/// and its negation do). Messages are told apart by that key, so such a committee would
/// let one member's messages pass for the other's, or have them dropped and the victim
/// accused; [`Swarm::join`] refuses it. The chain keeps keys unique in this form, so
/// only an old or foreign registry yields one.
pub fn repeated_keys(members: &[Member]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    members
        .iter()
        .filter_map(|m| noise::x25519_of(&m.noise))
        .any(|x| !seen.insert(x))
}

async fn peer_task(
    inner: Arc<Inner>,
    x: [u8; 32],
    mut out: mpsc::Receiver<(SessionId, Arc<Msg>)>,
    mut accepted: mpsc::Receiver<Link>,
) {
    let dialer = inner.key.public < x;
    let mut backoff = Duration::from_millis(50);
    // A message taken from the queue whose send failed: sent first on the next link.
    let mut unsent: Option<(SessionId, Arc<Msg>)> = None;
    // A link the peer opened while the old one was still up here.
    let mut next: Option<Link> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let link = if let Some(l) = next.take() {
            l
        } else {
            // Wait for a reason to have a link: a session needs it (and we dial), or the
            // peer dials us; give the peer up once idle too long.
            tokio::select! {
                l = accepted.recv() => match l {
                    Some(l) => l,
                    None => return,
                },
                _ = tick.tick() => {
                    if !keep(&inner, &x) {
                        return;
                    }
                    let Some(addr) = needed(&inner, &x).filter(|_| dialer) else { continue };
                    match dial(&inner, addr, &x).await {
                        Ok(l) => l,
                        Err(e) => {
                            debug!(%addr, "committee dial: {e}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            tick.reset_immediately();
                            continue;
                        }
                    }
                }
            }
        };
        inner.counters.links.fetch_add(1, Relaxed);
        backoff = Duration::from_millis(50);
        let Link { mut rx, mut tx, .. } = link;
        let reader = async {
            loop {
                match rx.recv().await {
                    Ok(Some(bytes)) => {
                        let decoded = (bytes.len() >= 32)
                            .then(|| from_bytes::<Msg>(&bytes[32..]).ok())
                            .flatten();
                        let Some(msg) = decoded else {
                            return "a message that does not decode".to_string();
                        };
                        let session: SessionId = bytes[..32].try_into().expect("32 bytes");
                        inner.counters.received.fetch_add(1, Relaxed);
                        inner.route(x, session, msg).await;
                    }
                    Ok(None) => return "closed".to_string(),
                    Err(e) => return e.to_string(),
                }
            }
        };
        let writer = async {
            loop {
                let (session, m) = match unsent.take() {
                    Some(m) => m,
                    None => match out.recv().await {
                        Some(m) => m,
                        None => return "peer removed".to_string(),
                    },
                };
                let mut bytes = Vec::with_capacity(32 + 256);
                bytes.extend_from_slice(&session);
                bytes.extend_from_slice(&to_bytes(m.as_ref()));
                if let Err(e) = tx.send(&bytes).await {
                    unsent = Some((session, m));
                    return e.to_string();
                }
                inner.counters.sent.fetch_add(1, Relaxed);
            }
        };
        let idle = async {
            loop {
                tick.tick().await;
                if !keep(&inner, &x) {
                    return;
                }
            }
        };
        let why = tokio::select! {
            r = reader => Some(r),
            w = writer => Some(w),
            // The peer redialled (it saw the old link die first): switch to the new one.
            l = accepted.recv() => match l {
                Some(l) => { next = Some(l); Some("replaced by the peer's new link".to_string()) }
                None => None,
            },
            () = idle => None,
        };
        let Some(why) = why else {
            return; // idle: the peer was removed from the registry
        };
        if next.is_none() {
            inner.counters.link_errors.fetch_add(1, Relaxed);
        }
        debug!(peer = %hex::encode(&x[..8]), "committee link ended: {why}");
    }
}

async fn dial(inner: &Inner, addr: SocketAddr, x: &[u8; 32]) -> Result<Link, LinkError> {
    let tcp = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| LinkError::Timeout)??;
    noise::connect(tcp, &inner.key, x, max_msg(), HANDSHAKE_TIMEOUT).await
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
            let link = match noise::accept(tcp, &inner.key, max_msg(), HANDSHAKE_TIMEOUT).await {
                Ok(l) => l,
                Err(e) => {
                    inner.counters.refused.fetch_add(1, Relaxed);
                    debug!(%from, "committee handshake refused: {e}");
                    return;
                }
            };
            if !wait_for_member(&inner, &link.remote).await {
                inner.counters.refused.fetch_add(1, Relaxed);
                debug!(%from, "committee connection from a non-member refused");
                return;
            }
            let tx = {
                let mut reg = inner.reg();
                inner.peer(&mut reg, link.remote, None);
                reg.peers.get(&link.remote).map(|p| p.incoming.clone())
            };
            if let Some(tx) = tx {
                let _ = tx.send(link).await;
            }
        });
    }
}

/// Whether `x` is a member of a joined session, waiting up to [`EARLY_WAIT`] for one.
async fn wait_for_member(inner: &Inner, x: &[u8; 32]) -> bool {
    let wait = async {
        loop {
            let notified = inner.joined.notified();
            if inner.reg().is_member(x) {
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

    /// A member registered with another's Noise key negated (the same X25519 key) could
    /// have the victim's messages taken for its own or dropped: the committee is refused.
    #[tokio::test]
    async fn a_committee_with_a_key_twice_is_refused() {
        let (a, b) = (swarm(1).await, swarm(2).await);
        let mut thief = member(&b);
        thief.noise[31] ^= 0x80;
        assert_ne!(thief.noise, b.noise_key());
        let members = vec![member(&a), member(&b), thief];
        assert!(repeated_keys(&members));
        assert!(a.join([7; 32], members, 0).is_err());
        assert!(!repeated_keys(&[member(&a), member(&b)]));
    }

    #[tokio::test]
    async fn members_talk_both_ways_and_outsiders_are_refused() {
        let (a, b) = (swarm(1).await, swarm(2).await);
        let session = [7; 32];
        let members = vec![member(&a), member(&b)];
        // B joins late: whoever dials, the message waits for the link (or the join).
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

        // A second session between the same two nodes reuses the link.
        drop((sa, sb));
        let session2 = [8; 32];
        let sa = a.join(session2, members.clone(), 0).unwrap();
        let mut sb = b.join(session2, members.clone(), 1).unwrap();
        assert!(sa.send(1, msg(3)));
        let (_, m) = tokio::time::timeout(Duration::from_secs(5), sb.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&m, msg(3).as_ref());
        assert_eq!(
            a.counters().links.load(Relaxed) + b.counters().links.load(Relaxed),
            2,
            "one link, counted once at each end"
        );

        // An outsider (the audited hoster, say) knowing B's address and key completes the
        // handshake but is no member of anything B joined: refused, nothing delivered.
        let outsider = StaticKey::from_seed(&[3; 32]);
        let tcp = TcpStream::connect(b.local_addr()).await.unwrap();
        let bx = noise::x25519_of(&b.noise_key()).unwrap();
        let mut link = noise::connect(tcp, &outsider, &bx, max_msg(), HANDSHAKE_TIMEOUT)
            .await
            .unwrap();
        let mut frame = session2.to_vec();
        frame.extend_from_slice(&to_bytes(msg(4).as_ref()));
        link.tx.send(&frame).await.unwrap();
        let closed = tokio::time::timeout(EARLY_WAIT + Duration::from_secs(3), link.rx.recv())
            .await
            .unwrap();
        assert!(
            !matches!(closed, Ok(Some(_))),
            "B closes the link: {closed:?}"
        );
        assert!(b.counters().refused.load(Relaxed) >= 1);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sb.recv())
                .await
                .is_err(),
            "nothing from the outsider reaches the session"
        );
        drop(sa);
        // Joining twice, or as someone else, is a local error.
        assert!(b.join(session2, members.clone(), 1).is_err());
        assert!(a.join([9; 32], members, 1).is_err());
    }
}
