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
//! we joined. Before that, an accepted connection is *pre-membership*, under a small
//! budget kept by the sans-IO [`crate::admit::Admission`] policy (the one the
//! Hypercore listener uses), global and per source address:
//! - in the handshake: at most [`PENDING_HANDSHAKES`], [`PENDING_HANDSHAKES_PER_ADDR`]
//!   from one address; a new socket over either bound cancels the oldest pending
//!   handshake (of its own address first), so silent sockets only ever hold the newest
//!   few slots and a member's loopback/LAN handshake finishes before it is the oldest;
//! - done with the handshake but no member of a joined session (members learn of a
//!   challenge at slightly different times): waits up to [`EARLY_WAIT`] for such a
//!   join, at most [`WAITING`], [`WAITING_PER_ADDR`] from one address; a newcomer over
//!   either bound evicts the waiter that has waited longest once it waited
//!   [`WAITING_GRACE`], else (listener bound) a waiter of the address with the most
//!   waiters if it has two more than the newcomer's, else the newcomer is refused.
//! - a socket from the source group (address, IPv6 /64) of a member's registered
//!   address, in a session joined here, is *expected*: its handshake is outside the
//!   global bound and no outsider's socket cancels it, only a newer one of its own
//!   group past [`PENDING_HANDSHAKES_PER_ADDR`] (members dial from the address they
//!   registered; one that does not competes with outsiders as above). Bounded by the
//!   members of the sessions joined.
//!
//! A connection whose key is a member of a joined session when its handshake ends
//! leaves the budget at once and never competes with waiters: outsiders, from one
//! address or many, can make a member's dial be retried (its handshake cancelled by a
//! flood of newer sockets), never refused for want of a slot. Cancelled and refused
//! connections are counted ([`SwarmCounters::pending_evicted`],
//! [`SwarmCounters::pending_refused`]).
//!
//! **What a member may send**: every message is checked: its session must be joined
//! here and its sender a member of it, else it is dropped and counted. Each session
//! has one inbox with a bounded share per sender ([`inbox_share`] of [`INBOX`]),
//! drained round-robin; a message over its sender's share is dropped and counted
//! ([`SwarmCounters::inbox_dropped`]) — never waited for, so a session whose driver
//! is slow or stuck does not hold up the other sessions on the same link (the coin
//! flip recovers lost messages: commits are adopted from echoes, reveals are asked for
//! again, a silent round ends offline). At most [`FRAUD_PER_PEER`] fraud messages per
//! (sender, session) are passed on to be verified; the rest are dropped and counted
//! ([`SwarmCounters::fraud_dropped`]) — an honest member sends each proof it holds once
//! per round, and every member that saw the evidence detects the fraud itself.
//! Messages for a session not joined yet are held up to [`EARLY_WAIT`] and delivered on
//! the join: at most [`MAX_EARLY_MSGS`] in all, [`EARLY_PER_PEER`] per sending key and
//! [`EARLY_PER_SESSION`] per (key, session); beyond its share a sender's new message is
//! dropped, and a full queue evicts from the key holding the most, so one member
//! cannot push out another's ([`SwarmCounters::early_dropped`]). The audited hoster —
//! which knows the (public) session id — is no member, so it cannot even hold a link,
//! and reveals only ever travel inside members' links. A message that does not decode
//! ends that link (it is redialled).

pub use crate::committee as noise;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::admit::{Admission, AdmitLimits, group};
use datdot_protocol::codec::{Message as _, from_bytes, to_bytes};
use datdot_protocol::coinflip::{Msg, SessionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use noise::{Link, LinkError, StaticKey};

/// Messages queued per peer while its link is down or slow.
pub const OUTBOX: usize = 256;
/// Messages waiting for one session's coin-flip driver, all senders together (each
/// sender has its own share, [`inbox_share`]).
pub const INBOX: usize = 1024;
/// The smallest share of a session's inbox a sender has.
pub const MIN_INBOX_SHARE: usize = 4;
/// Fraud messages from one member of one session passed on to be verified.
pub const FRAUD_PER_PEER: usize = 16;
/// How long an accepted node that is no member yet, or a message for a session not
/// joined yet, waits for the join.
pub const EARLY_WAIT: Duration = Duration::from_secs(5);
/// Messages held for sessions not joined yet, from all senders.
pub const MAX_EARLY_MSGS: usize = 1024;
/// Messages held for sessions not joined yet from one sending key.
pub const EARLY_PER_PEER: usize = 64;
/// Messages held for one session not joined yet from one sending key.
pub const EARLY_PER_SESSION: usize = 16;
/// Accepted connections in the handshake at once.
pub const PENDING_HANDSHAKES: usize = 32;
/// Accepted connections in the handshake from one address (16: a committee of nodes
/// on one host, as on a devnet, dials a member at once without cancelling its own).
pub const PENDING_HANDSHAKES_PER_ADDR: usize = 16;
/// Connections done with the handshake waiting for their key to become a member.
pub const WAITING: usize = 32;
/// Waiting connections from one address.
pub const WAITING_PER_ADDR: usize = 16;
/// A waiting connection may be evicted for a newer one after waiting this long.
pub const WAITING_GRACE: Duration = Duration::from_millis(250);
/// The handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A link no session needs is closed after this.
pub const IDLE: Duration = Duration::from_secs(60);

/// A sender's share of the inbox of a session of `n` members.
pub fn inbox_share(n: usize) -> usize {
    (INBOX / n.saturating_sub(1).max(1)).max(MIN_INBOX_SHARE)
}

/// A committee member as registered on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its registered (ed25519) Noise key.
    pub noise: [u8; 32],
}

/// Why [`Swarm::join`] refused a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// `me` is not an index into the committee.
    #[error("member index {me} outside a committee of {n}")]
    OutOfRange {
        /// The index given.
        me: usize,
        /// The committee's size.
        n: usize,
    },
    /// Member `me`'s registered Noise key is not this swarm's.
    #[error("member {0}'s registered Noise key is not ours")]
    NotOurKey(usize),
    /// Two members' keys are the same in their X25519 form.
    #[error("a Noise key appears twice in the committee (in its X25519 form)")]
    RepeatedKey,
    /// This session is joined already.
    #[error("session {} already joined", hex::encode(&.0[..8]))]
    AlreadyJoined(SessionId),
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
    /// Outbound messages dropped because a peer's queue was full.
    pub dropped: AtomicU64,
    /// Pre-membership connections (in the handshake, or waiting to become a member)
    /// cancelled to make room for a newer one.
    pub pending_evicted: AtomicU64,
    /// Connections done with the handshake refused because every waiting slot was
    /// taken by a connection still within [`WAITING_GRACE`].
    pub pending_refused: AtomicU64,
    /// Messages for sessions not joined yet dropped: over the sender's share, evicted
    /// from a full queue, or held longer than [`EARLY_WAIT`].
    pub early_dropped: AtomicU64,
    /// Messages dropped because their sender's share of the session's inbox was full.
    pub inbox_dropped: AtomicU64,
    /// Fraud messages dropped over [`FRAUD_PER_PEER`] for their (sender, session).
    pub fraud_dropped: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
}

/// Queue lengths now: what the swarm holds for peers it does not trust yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLengths {
    /// Accepted connections in the handshake.
    pub handshakes: usize,
    /// Connections done with the handshake waiting to become members.
    pub waiting: usize,
    /// Messages held for sessions not joined yet.
    pub early: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the state half-updated in
    // a way that matters more than stopping: every update is a few map operations.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a message was not put into a session's inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    /// The sender's share is full.
    Full,
    /// The sender used up its fraud-message quota for the session.
    FraudQuota,
}

/// One session's inbound messages: a bounded FIFO per sender, drained round-robin.
#[derive(Debug)]
struct InboxQueues {
    queues: Vec<VecDeque<Msg>>,
    share: usize,
    /// The sender to look at first on the next pop.
    next: usize,
    /// Fraud messages passed on, per sender.
    fraud: Vec<usize>,
}

impl InboxQueues {
    fn new(n: usize) -> Self {
        InboxQueues {
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            share: inbox_share(n),
            next: 0,
            fraud: vec![0; n],
        }
    }

    fn push(&mut self, j: usize, msg: Msg) -> Result<(), Refused> {
        let (Some(q), Some(f)) = (self.queues.get_mut(j), self.fraud.get_mut(j)) else {
            return Err(Refused::Full);
        };
        if q.len() >= self.share {
            return Err(Refused::Full);
        }
        if matches!(msg, Msg::Fraud(_)) {
            if *f >= FRAUD_PER_PEER {
                return Err(Refused::FraudQuota);
            }
            *f += 1;
        }
        q.push_back(msg);
        Ok(())
    }

    fn pop(&mut self) -> Option<(usize, Msg)> {
        let n = self.queues.len();
        for k in 0..n {
            let j = (self.next + k) % n;
            if let Some(m) = self.queues[j].pop_front() {
                self.next = (j + 1) % n;
                return Some((j, m));
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

#[derive(Debug)]
struct Inbox {
    queues: Mutex<InboxQueues>,
    ready: Notify,
}

impl Inbox {
    /// Queue `msg` from member `j`, counting a refusal. Never waits.
    fn deliver(&self, counters: &SwarmCounters, j: usize, msg: Msg) {
        match lock(&self.queues).push(j, msg) {
            Ok(()) => self.ready.notify_one(),
            Err(Refused::Full) => {
                counters.inbox_dropped.fetch_add(1, Relaxed);
            }
            Err(Refused::FraudQuota) => {
                counters.fraud_dropped.fetch_add(1, Relaxed);
            }
        }
    }
}

/// A message for a session not joined yet.
#[derive(Debug)]
struct EarlyMsg {
    at: Instant,
    from: [u8; 32],
    session: SessionId,
    msg: Msg,
}

/// Messages for sessions not joined yet, with per-sender and per-(sender, session)
/// shares under a global bound (see the module docs).
#[derive(Debug, Default)]
struct Early {
    /// In arrival order.
    q: VecDeque<EarlyMsg>,
    per_key: HashMap<[u8; 32], usize>,
    per_pair: HashMap<([u8; 32], SessionId), usize>,
}

impl Early {
    fn forget(&mut self, e: &EarlyMsg) {
        if let Some(c) = self.per_key.get_mut(&e.from) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.per_key.remove(&e.from);
            }
        }
        let pair = (e.from, e.session);
        if let Some(c) = self.per_pair.get_mut(&pair) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.per_pair.remove(&pair);
            }
        }
    }

    /// Drop what waited longer than [`EARLY_WAIT`]; how many.
    fn expire(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        while self
            .q
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > EARLY_WAIT)
        {
            if let Some(e) = self.q.pop_front() {
                self.forget(&e);
                n += 1;
            }
        }
        n
    }

    /// Hold `msg`; returns how many messages were dropped (expired ones, an evicted
    /// one, or this one).
    fn push(&mut self, now: Instant, from: [u8; 32], session: SessionId, msg: Msg) -> u64 {
        let mut dropped = self.expire(now);
        let mine = self.per_key.get(&from).copied().unwrap_or(0);
        let pair = self.per_pair.get(&(from, session)).copied().unwrap_or(0);
        if mine >= EARLY_PER_PEER || pair >= EARLY_PER_SESSION {
            return dropped + 1;
        }
        if self.q.len() >= MAX_EARLY_MSGS {
            // Evict the oldest message of the key holding the most, if that is more than
            // this sender holds; else this message goes.
            let Some((top, n)) = self
                .per_key
                .iter()
                .max_by_key(|(k, n)| (**n, **k))
                .map(|(k, n)| (*k, *n))
            else {
                return dropped + 1;
            };
            if n <= mine + 1 {
                return dropped + 1;
            }
            if let Some(i) = self.q.iter().position(|e| e.from == top)
                && let Some(e) = self.q.remove(i)
            {
                self.forget(&e);
                dropped += 1;
            }
        }
        *self.per_key.entry(from).or_default() += 1;
        *self.per_pair.entry((from, session)).or_default() += 1;
        self.q.push_back(EarlyMsg {
            at: now,
            from,
            session,
            msg,
        });
        dropped
    }

    /// Take every message held for `session`, in arrival order.
    fn take(&mut self, session: &SessionId) -> Vec<([u8; 32], Msg)> {
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.q.len());
        for e in std::mem::take(&mut self.q) {
            if e.session == *session {
                self.forget(&e);
                out.push((e.from, e.msg));
            } else {
                keep.push_back(e);
            }
        }
        self.q = keep;
        out
    }
}

/// The pre-membership budget: the admission policy and the tasks it may cancel.
#[derive(Debug)]
struct Gate {
    admission: Admission,
    epoch: Instant,
    /// The task of each connection under the budget.
    tasks: HashMap<u64, AbortHandle>,
    /// When each waiting connection finished its handshake (ms since `epoch`).
    since: HashMap<u64, u64>,
}

impl Gate {
    fn new() -> Self {
        Gate {
            admission: Admission::new(AdmitLimits {
                handshakes: PENDING_HANDSHAKES,
                handshakes_per_ip: PENDING_HANDSHAKES_PER_ADDR,
                sessions: WAITING,
                sessions_per_ip: WAITING_PER_ADDR,
                grace_ms: u64::try_from(WAITING_GRACE.as_millis()).unwrap_or(u64::MAX),
            }),
            epoch: Instant::now(),
            tasks: HashMap::new(),
            since: HashMap::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Forget connection `id` (the policy already did); its task, to cancel.
    fn cancel(&mut self, id: u64) -> Option<AbortHandle> {
        self.since.remove(&id);
        self.tasks.remove(&id)
    }
}

/// A connection's place under the pre-membership budget, given back on drop (also
/// when its task is cancelled).
struct Ticket {
    inner: Arc<Inner>,
    id: u64,
    held: bool,
}

impl Ticket {
    /// Leave the budget; `false` if the connection was cancelled meanwhile.
    fn release(&mut self) -> bool {
        if !std::mem::take(&mut self.held) {
            return false;
        }
        let mut g = lock(&self.inner.gate);
        g.admission.handle_closed(self.id);
        g.since.remove(&self.id);
        g.tasks.remove(&self.id).is_some()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release();
    }
}

struct Slot {
    /// X25519 keys of the members, committee order.
    members: Vec<[u8; 32]>,
    me: usize,
    inbox: Arc<Inbox>,
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
    /// Messages for sessions not joined yet.
    early: Early,
}

impl Registry {
    fn is_member(&self, x: &[u8; 32]) -> bool {
        self.sessions.values().any(|s| s.members.contains(x))
    }

    /// Whether a connection from `from` may be a member's dial: its source group is
    /// that of a member's registered address, in a session joined here.
    fn expects(&self, from: SocketAddr) -> bool {
        let g = group(from.ip());
        self.peers
            .values()
            .any(|p| p.users > 0 && group(p.addr.ip()) == g)
    }
}

struct Inner {
    key: StaticKey,
    reg: Mutex<Registry>,
    gate: Mutex<Gate>,
    joined: Notify,
    counters: Arc<SwarmCounters>,
}

impl Inner {
    fn reg(&self) -> MutexGuard<'_, Registry> {
        lock(&self.reg)
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

    /// Deliver a message from `from` for `session`, or hold it for a join. Never
    /// waits: what does not fit is dropped and counted.
    fn route(&self, from: [u8; 32], session: SessionId, msg: Msg) {
        let mut reg = self.reg();
        match reg.sessions.get(&session) {
            Some(slot) => match slot.members.iter().position(|k| *k == from) {
                Some(j) if j != slot.me => slot.inbox.deliver(&self.counters, j, msg),
                _ => {
                    self.counters.refused.fetch_add(1, Relaxed);
                }
            },
            None => {
                let dropped = reg.early.push(Instant::now(), from, session, msg);
                self.counters.early_dropped.fetch_add(dropped, Relaxed);
            }
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
            gate: Mutex::new(Gate::new()),
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

    /// What is held now for peers not trusted yet (each bounded, see the module docs).
    pub fn queues(&self) -> QueueLengths {
        let (handshakes, waiting) = lock(&self.inner.gate).admission.counts();
        QueueLengths {
            handshakes,
            waiting,
            early: self.inner.reg().early.q.len(),
        }
    }

    /// Take part in `session` as member `me` of `members` (committee order). Fails if
    /// the session is already joined, `me` is out of range, or `me`'s key is not ours.
    pub fn join(
        &self,
        session: SessionId,
        members: Vec<Member>,
        me: usize,
    ) -> Result<Session, JoinError> {
        let n = members.len();
        if me >= n {
            return Err(JoinError::OutOfRange { me, n });
        }
        if members[me].noise != self.inner.key.registered {
            return Err(JoinError::NotOurKey(me));
        }
        if repeated_keys(&members) {
            return Err(JoinError::RepeatedKey);
        }
        let xs: Vec<[u8; 32]> = members
            .iter()
            .map(|m| noise::x25519_of(&m.noise).unwrap_or([0; 32]))
            .collect();
        let inbox = Arc::new(Inbox {
            queues: Mutex::new(InboxQueues::new(n)),
            ready: Notify::new(),
        });
        {
            let mut reg = self.inner.reg();
            if reg.sessions.contains_key(&session) {
                return Err(JoinError::AlreadyJoined(session));
            }
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
            // Messages that came before the join (under the same shares and quotas).
            for (from, msg) in reg.early.take(&session) {
                match xs.iter().position(|k| *k == from) {
                    Some(j) if j != me => inbox.deliver(&self.inner.counters, j, msg),
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
                    inbox: inbox.clone(),
                },
            );
        }
        self.inner.joined.notify_waiters();
        Ok(Session {
            id: session,
            inner: self.inner.clone(),
            members: xs,
            me,
            inbox,
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
    inbox: Arc<Inbox>,
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

    /// The next message and the committee index of its (authenticated) sender, taking
    /// the members in turn. Waits while there is none (it never returns `None` while
    /// the session is joined).
    pub async fn recv(&mut self) -> Option<(usize, Msg)> {
        loop {
            // `notify_one` keeps a permit when nobody waits, so a message queued
            // between the pop and the wait still wakes us.
            if let Some(m) = lock(&self.inbox.queues).pop() {
                return Some(m);
            }
            self.inbox.ready.notified().await;
        }
    }

    /// Messages waiting in this session's inbox (at most [`inbox_share`] per sender).
    pub fn backlog(&self) -> usize {
        lock(&self.inbox.queues).len()
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
                        let decoded = bytes
                            .split_first_chunk::<32>()
                            .and_then(|(s, body)| from_bytes::<Msg>(body).ok().map(|m| (*s, m)));
                        let Some((session, msg)) = decoded else {
                            return "a message that does not decode".to_string();
                        };
                        inner.counters.received.fetch_add(1, Relaxed);
                        inner.route(x, session, msg);
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
        let expected = inner.reg().expects(from);
        let evicted = {
            let mut g = lock(&inner.gate);
            let (id, evict) = if expected {
                g.admission.handle_accept_expected(from.ip())
            } else {
                g.admission.handle_accept(from.ip())
            };
            let evicted = evict.and_then(|e| g.cancel(e));
            // Spawned under the lock, so the task's ticket cannot be given back before
            // its handle is recorded.
            let task = tokio::spawn(incoming(inner.clone(), tcp, from, id));
            g.tasks.insert(id, task.abort_handle());
            evicted
        };
        if let Some(t) = evicted {
            t.abort();
            inner.counters.pending_evicted.fetch_add(1, Relaxed);
        }
    }
}

/// One accepted connection: the handshake, then (if its key is no member yet) the wait
/// for a join, under the pre-membership budget; then the link goes to its peer task.
async fn incoming(inner: Arc<Inner>, tcp: TcpStream, from: SocketAddr, id: u64) {
    let mut ticket = Ticket {
        inner: inner.clone(),
        id,
        held: true,
    };
    let link = match noise::accept(tcp, &inner.key, max_msg(), HANDSHAKE_TIMEOUT).await {
        Ok(l) => l,
        Err(e) => {
            inner.counters.refused.fetch_add(1, Relaxed);
            debug!(%from, "committee handshake refused: {e}");
            return;
        }
    };
    if !inner.reg().is_member(&link.remote) {
        let admitted = {
            let mut g = lock(&inner.gate);
            let now = g.now_ms();
            let Gate {
                admission, since, ..
            } = &mut *g;
            let r = admission.handle_established(id, now, |s| since.get(&s).copied().unwrap_or(0));
            match r {
                Ok(evict) => {
                    g.since.insert(id, now);
                    Ok(evict.and_then(|e| g.cancel(e)))
                }
                Err(e) => Err(e),
            }
        };
        match admitted {
            Ok(evicted) => {
                if let Some(t) = evicted {
                    t.abort();
                    inner.counters.pending_evicted.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                inner.counters.pending_refused.fetch_add(1, Relaxed);
                debug!(%from, "committee connection refused while waiting for a join: {e:?}");
                return;
            }
        }
        if !wait_for_member(&inner, &link.remote).await {
            inner.counters.refused.fetch_add(1, Relaxed);
            debug!(%from, "committee connection from a non-member refused");
            return;
        }
    }
    if !ticket.release() {
        return; // cancelled for a newer connection just now
    }
    let tx = {
        let mut reg = inner.reg();
        inner.peer(&mut reg, link.remote, None);
        reg.peers.get(&link.remote).map(|p| p.incoming.clone())
    };
    if let Some(tx) = tx {
        let _ = tx.send(link).await;
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

    /// Many keys flooding early messages for made-up sessions (and for the real one,
    /// beyond their share) never push out a member's single early message; every
    /// share and the global bound hold.
    #[test]
    fn early_floods_only_churn_the_flooders_own_share() {
        let mut e = Early::default();
        let now = Instant::now();
        let (victim, real) = ([1; 32], [2; 32]);
        assert_eq!(e.push(now, victim, real, (*msg(1)).clone()), 0);
        let mut dropped = 0;
        for k in 0..40u8 {
            for i in 0..200u32 {
                let mut s = [0xaa; 32];
                s[..4].copy_from_slice(&i.to_le_bytes());
                let session = if i % 2 == 0 { real } else { s };
                dropped += e.push(now, [100 + k; 32], session, (*msg(2)).clone());
                assert!(e.q.len() <= MAX_EARLY_MSGS);
                assert!(e.per_key.values().all(|n| *n <= EARLY_PER_PEER));
                assert!(e.per_pair.values().all(|n| *n <= EARLY_PER_SESSION));
                assert_eq!(e.per_key.values().sum::<usize>(), e.q.len());
            }
        }
        assert_eq!(dropped, 40 * 200 - (e.q.len() as u64 - 1));
        let got = e.take(&real);
        assert!(
            got.iter().any(|(k, _)| *k == victim),
            "the victim's message"
        );
        assert!(got.iter().filter(|(k, _)| *k != victim).count() <= 40 * EARLY_PER_SESSION);
        // Expired ones go, and the books balance.
        let later = now + EARLY_WAIT + Duration::from_millis(1);
        let held = e.q.len() as u64;
        assert_eq!(e.expire(later), held);
        assert!(e.q.is_empty() && e.per_key.is_empty() && e.per_pair.is_empty());
    }

    /// Each sender has its own share of a session's inbox, drained in turn; fraud
    /// messages beyond the quota are refused.
    #[test]
    fn inbox_shares_and_the_fraud_quota() {
        let mut q = InboxQueues::new(3);
        let share = inbox_share(3);
        for _ in 0..share {
            assert_eq!(q.push(1, (*msg(1)).clone()), Ok(()));
        }
        assert_eq!(q.push(1, (*msg(1)).clone()), Err(Refused::Full));
        assert_eq!(q.push(2, (*msg(2)).clone()), Ok(()), "its own share");
        assert_eq!(
            q.push(7, (*msg(2)).clone()),
            Err(Refused::Full),
            "no such member"
        );
        assert_eq!(q.pop().map(|m| m.0), Some(1));
        assert_eq!(q.pop().map(|m| m.0), Some(2), "in turn");
        assert_eq!(q.len(), share - 1);
        while q.pop().is_some() {}
        let kp = Keypair::from_seed(&[9; 32]);
        let fraud = Msg::Fraud(Box::new(datdot_protocol::fraud::FraudProof::Equivocation {
            a: SignedCommit::sign(&kp, [7; 32], 0, commit_value(&[1; 32])),
            b: SignedCommit::sign(&kp, [7; 32], 0, commit_value(&[2; 32])),
        }));
        for _ in 0..FRAUD_PER_PEER {
            assert_eq!(q.push(2, fraud.clone()), Ok(()));
            q.pop();
        }
        assert_eq!(q.push(2, fraud.clone()), Err(Refused::FraudQuota));
        assert_eq!(q.push(1, fraud), Ok(()), "per sender");
        assert_eq!(
            q.push(2, (*msg(2)).clone()),
            Ok(()),
            "other messages still pass"
        );
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
        assert_eq!(
            a.join([7; 32], members, 0).err(),
            Some(JoinError::RepeatedKey)
        );
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
        assert_eq!(
            b.join(session2, members.clone(), 1).err(),
            Some(JoinError::AlreadyJoined(session2))
        );
        assert_eq!(
            a.join([9; 32], members.clone(), 1).err(),
            Some(JoinError::NotOurKey(1))
        );
        assert_eq!(
            a.join([9; 32], members, 5).err(),
            Some(JoinError::OutOfRange { me: 5, n: 2 })
        );
    }
}
