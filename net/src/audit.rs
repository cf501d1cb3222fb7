//! The auditing reader (attestors): dial a hoster with a fresh identity, behave like an
//! ordinary Hypercore reader, fetch a sample of blocks with their proofs, verify each
//! against the feed's signed root, and feed every observation into the sans-IO
//! [`Audit`] accumulator (latency, time to first byte, throughput, connection time,
//! failures, progress timeout, hard maximum duration).
//!
//! Unlike [`crate::fetch()`], one bad or missing block does not end the session: it is
//! counted (*lacks data* or *misbehaved*) and the audit goes on, because the report
//! must say how much of the sample the hoster could serve. A block that fails
//! verification and that the hoster's signed receipt covers becomes a **bad-data fraud
//! proof**: the true leaf of that block, with its path to the feed's signed root, is
//! asked from the hoster itself (a Hypercore `hash` request, which an honest tree
//! answers) and checked before the proof is returned; [`prove_leaf`] asks another peer
//! when the hoster does not give it.
//!
//! Verification uses `datdot_protocol::tree` (the same code the chain runs), not a
//! local `Hypercore`: the signed root is fetched once (an upgrade from 0: the full roots
//! and the feed's signature) and every block is requested with its whole uncle path, so
//! each answer is a self-contained [`BlockProof`].
//!
//! Time to first byte and progress count raw bytes arriving on the socket (sampled at
//! every wake-up and every [`TICK`]), attributed to the oldest request in flight: a
//! hoster that trickles a byte at a time makes progress and is stopped by the hard
//! maximum, one that sends nothing by the progress timeout.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use datdot_protocol::audit::{Audit, AuditConfig, AuditEvent, BlockResult, Misbehavior};
use datdot_protocol::fraud::FraudProof;
use datdot_protocol::hash::Hash;
use datdot_protocol::identity::{ChainId, Ed25519Verifier, PublicKey, Signature};
use datdot_protocol::metrics::{Failure, FailureKind, MetricSummary, Outcome};
use datdot_protocol::receipt::SignedReceipt;
use datdot_protocol::time::Instant;
use datdot_protocol::tree::{BlockProof, SignedTreeRoot, TreeNode, leaf_hash, path_len};
use futures::StreamExt;
use hypercore_protocol::schema::{Cancel, Data, Request, Synchronize};
use hypercore_protocol::{Channel, Event, Message, discovery_key};
use hypercore_schema::{RequestBlock, RequestUpgrade};
use tracing::debug;

use crate::conn::{Connection, Expect, dial};
use crate::ext::DatdotMsg;
use crate::limits::Limits;

/// How often raw socket progress is sampled while requests are in flight.
pub const TICK: Duration = Duration::from_millis(10);
/// Largest sample an audit takes (requests are bounded by the accumulator too).
pub const MAX_SAMPLE: usize = 4096;
/// How long to wait for the hoster's final receipt after the last block.
pub const END_GRACE: Duration = Duration::from_secs(2);

/// What to audit.
#[derive(Clone, Debug)]
pub struct AuditTarget {
    /// The hoster's registered address.
    pub addr: SocketAddr,
    /// The hoster's registered Noise static key (pinned).
    pub noise_key: [u8; 32],
    /// The hoster's signing key (receipts must be signed by it).
    pub hoster: PublicKey,
    /// The feed's public key.
    pub feed: [u8; 32],
    /// The chain the challenge is on (receipts must be signed for it).
    pub chain: ChainId,
}

/// How to audit.
#[derive(Clone, Debug)]
pub struct AuditPlan {
    /// Block indices to request, ascending (the schedule's sample).
    pub sample: Vec<u64>,
    /// Time limits.
    pub config: AuditConfig,
    /// Requests kept in flight, like an ordinary reader's window (default 16).
    pub window: usize,
    /// The driver's epoch: `Instant`s are microseconds since it.
    pub epoch: std::time::Instant,
}

/// What an audit observed.
#[derive(Clone, Debug)]
pub struct AuditOutput {
    /// The measurements.
    pub summary: MetricSummary,
    /// The first failures, in order.
    pub failures: Vec<Failure>,
    /// Per sampled block (same order as the plan): the verified leaf hash.
    pub received: Vec<Option<Hash>>,
    /// The hoster's receipts on this connection, each verified for it.
    pub receipts: Vec<SignedReceipt>,
    /// Verified bad-data fraud proofs.
    pub fraud: Vec<FraudProof>,
    /// Blocks that failed verification and that a receipt covers, but whose true leaf
    /// the hoster did not prove: `(receipt index, entry index, block)`, for
    /// [`prove_leaf`] against another peer.
    pub unproven: Vec<(usize, u32, u64)>,
    /// The feed's signed root the hoster served (verified).
    pub root: Option<SignedTreeRoot>,
    /// Receipts that did not verify or named blocks not served as receipted.
    pub bad_receipts: u32,
}

fn now(epoch: std::time::Instant) -> Instant {
    Instant(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

fn node(n: &hypercore_schema::Node) -> Option<TreeNode> {
    Some(TreeNode {
        index: n.index,
        size: n.length,
        hash: n.hash.as_slice().try_into().ok()?,
    })
}

fn nodes(ns: &[hypercore_schema::Node]) -> Option<Vec<TreeNode>> {
    ns.iter().map(node).collect()
}

/// The signed root carried by an upgrade from 0 (its nodes are the full roots).
fn signed_root(d: &Data, feed: &PublicKey) -> Result<SignedTreeRoot, String> {
    let u = d.upgrade.as_ref().ok_or("answer without the upgrade")?;
    if u.start != 0 {
        return Err(format!("upgrade starts at {}, not 0", u.start));
    }
    let signature: [u8; 64] = u
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| "signature is not 64 bytes")?;
    let root = SignedTreeRoot {
        length: u.length,
        fork: d.fork,
        roots: nodes(&u.nodes).ok_or("malformed root node")?,
        signature: Signature(signature),
    };
    root.verify(feed).map_err(|e| e.to_string())?;
    Ok(root)
}

/// What is in flight.
enum Pending {
    /// A sampled block (`pos` in the sample).
    Block { pos: usize, index: u64 },
    /// A block request the audit timed out; a late answer is still receipted.
    Late { index: u64 },
    /// The true leaf of a block that failed verification.
    Leaf { index: u64 },
    /// The signed root.
    Upgrade,
}

struct Session {
    channel: Channel,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Block request ids in send order (answers arrive in order on one stream).
    order: VecDeque<u64>,
    first_byte: std::collections::HashSet<u64>,
}

impl Session {
    async fn send(&mut self, id: u64, r: Request, p: Pending) -> Result<(), String> {
        self.channel
            .send(Message::Request(r))
            .await
            .map_err(|e| e.to_string())?;
        if matches!(p, Pending::Block { .. }) {
            self.order.push_back(id);
        }
        self.pending.insert(id, p);
        Ok(())
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn blocks_in_flight(&self) -> usize {
        self.order.len()
    }

    fn leaves_in_flight(&self) -> bool {
        self.pending
            .values()
            .any(|p| matches!(p, Pending::Leaf { .. }))
    }
}

fn request(id: u64, fork: u64) -> Request {
    Request {
        id,
        fork,
        block: None,
        hash: None,
        seek: None,
        upgrade: None,
        manifest: false,
        priority: 0,
    }
}

fn block_request(id: u64, fork: u64, index: u64, nodes: u64) -> Request {
    Request {
        block: Some(RequestBlock { index, nodes }),
        ..request(id, fork)
    }
}

fn leaf_request(id: u64, fork: u64, index: u64, nodes: u64) -> Request {
    Request {
        hash: Some(RequestBlock {
            index: 2 * index,
            nodes,
        }),
        ..request(id, fork)
    }
}

fn upgrade_request(id: u64, fork: u64, length: u64) -> Request {
    Request {
        upgrade: Some(RequestUpgrade { start: 0, length }),
        ..request(id, fork)
    }
}

/// Wait for the peer to open the channel of the feed with discovery key `dk` (events
/// that came with the handshake first).
async fn open_channel(
    protocol: &mut hypercore_protocol::Protocol,
    early: &mut impl Iterator<Item = Event>,
    dk: &[u8; 32],
) -> Result<Channel, String> {
    loop {
        let ev = match early.next() {
            Some(e) => Some(Ok(e)),
            None => protocol.next().await,
        };
        match ev {
            Some(Ok(Event::Channel(c))) if c.discovery_key() == dk => return Ok(c),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".to_string()),
        }
    }
}

/// A reader's first message on a channel: nothing held, downloading.
fn reader_hello() -> Message {
    Message::Synchronize(Synchronize {
        fork: 0,
        length: 0,
        remote_length: 0,
        downloading: true,
        uploading: false,
        can_upgrade: true,
    })
}

fn empty_root(fork: u64) -> SignedTreeRoot {
    SignedTreeRoot {
        length: 0,
        fork,
        roots: Vec::new(),
        signature: Signature([0; 64]),
    }
}

fn deadline_of(a: &Audit, epoch: std::time::Instant) -> Option<tokio::time::Instant> {
    a.poll_timeout()
        .map(|t| tokio::time::Instant::from_std(epoch + Duration::from_micros(t.as_micros())))
}

/// Audit `target` with `plan`. Never fails: every way the hoster can fail is in the
/// output's summary and failures.
pub async fn audit(target: &AuditTarget, plan: &AuditPlan, limits: &Limits) -> AuditOutput {
    let epoch = plan.epoch;
    let mut sample: Vec<u64> = plan.sample.clone();
    sample.truncate(MAX_SAMPLE);
    let mut a = Audit::new(plan.config, now(epoch));
    let out = AuditOutput {
        summary: MetricSummary::empty(Outcome::ConnectFailed),
        failures: Vec::new(),
        received: vec![None; sample.len()],
        receipts: Vec::new(),
        fraud: Vec::new(),
        unproven: Vec::new(),
        root: None,
        bad_receipts: 0,
    };
    let Ok(feed) = PublicKey::from_bytes(&target.feed) else {
        a.connect_failed(now(epoch));
        return finish(a, out, epoch);
    };
    // Connect, bounded by the audit's own progress deadline and hard maximum.
    let conn = tokio::select! {
        c = dial(target.addr, Expect::Key(target.noise_key), limits) => c,
        _ = sleep_until(deadline_of(&a, epoch)) => {
            a.handle_timeout(now(epoch));
            return finish(a, out, epoch);
        }
    };
    match conn {
        Ok(conn) => {
            a.connected(now(epoch));
            let mut run = Run {
                target,
                feed,
                sample: &sample,
                epoch,
                a,
                out,
                served: HashMap::new(),
                failed: BTreeSet::new(),
                leaves: HashMap::new(),
            };
            if let Err(why) = run.session(conn, plan.window).await {
                debug!(hoster = %target.addr, "audit connection lost: {why}");
                run.a.connect_failed(now(epoch));
            }
            run.judge_receipts();
            finish(run.a, run.out, epoch)
        }
        Err(e) => {
            debug!(hoster = %target.addr, "audit connect failed: {e}");
            a.connect_failed(now(epoch));
            finish(a, out, epoch)
        }
    }
}

fn finish(mut a: Audit, mut out: AuditOutput, epoch: std::time::Instant) -> AuditOutput {
    out.summary = a.finish(now(epoch));
    let mut failures = a.failures().to_vec();
    // Bad receipts are listed (the accumulator counts blocks, not receipts).
    for _ in 0..out.bad_receipts {
        if failures.len() >= datdot_protocol::audit::MAX_FAILURES {
            break;
        }
        failures.push(Failure {
            block_index: u64::MAX,
            kind: FailureKind::BadReceipt,
        });
    }
    out.failures = failures;
    out
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => futures::future::pending().await,
    }
}

/// One audit in progress.
struct Run<'a> {
    target: &'a AuditTarget,
    feed: PublicKey,
    sample: &'a [u64],
    epoch: std::time::Instant,
    a: Audit,
    out: AuditOutput,
    /// Block -> leaf hash of what the hoster served (verified or not).
    served: HashMap<u64, Hash>,
    /// Blocks whose answer failed verification (their true leaf is asked for at the end).
    failed: BTreeSet<u64>,
    /// True leaves of bad blocks, proven against the signed root.
    leaves: HashMap<u64, BlockProof>,
}

impl Run<'_> {
    fn now(&self) -> Instant {
        now(self.epoch)
    }

    /// The replication session; `Err` if the connection was lost before the end.
    async fn session(&mut self, conn: Connection, window: usize) -> Result<(), String> {
        let epoch = self.epoch;
        let my_key = conn.local_key();
        let Connection {
            mut protocol,
            shared,
            limits,
            early,
            ..
        } = conn;
        protocol
            .open(self.target.feed)
            .await
            .map_err(|e| e.to_string())?;
        let dk = discovery_key(&self.target.feed);
        let mut early = early.into_iter();
        // The hoster opens the channel in reply only if it serves the feed; not serving it
        // looks like a stall, which the audit's deadlines end.
        let mut channel = loop {
            tokio::select! {
                c = open_channel(&mut protocol, &mut early, &dk) => break c?,
                e = shared.failed() => return Err(e.to_string()),
                _ = sleep_until(deadline_of(&self.a, epoch)) => {
                    self.a.handle_timeout(self.now());
                    if self.a.is_stopped() { return Ok(()); }
                }
            }
        };
        let mut queue = channel.take_receiver().ok_or("channel receiver taken")?;
        channel
            .send(reader_hello())
            .await
            .map_err(|e| e.to_string())?;
        let mut s = Session {
            channel,
            next_id: 1,
            pending: HashMap::new(),
            order: VecDeque::new(),
            first_byte: Default::default(),
        };
        let mut todo: VecDeque<(usize, u64)> = self.sample.iter().copied().enumerate().collect();
        let mut root: Option<SignedTreeRoot> = None;
        let mut acked = false;
        let mut read_seen = shared.read.load(Ordering::Relaxed);
        let mut ending: Option<tokio::time::Instant> = None;
        let mut stopped_serving = false;
        let window = window.clamp(1, limits.request_window.max(1));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        loop {
            // Raw progress on the socket, attributed to the oldest block request.
            let read = shared.read.load(Ordering::Relaxed);
            if read > read_seen {
                let t = self.now();
                if let Some(&id) = s.order.front() {
                    if s.first_byte.insert(id) {
                        self.a.first_byte(t, id);
                    }
                    self.a.bytes(t, id, read - read_seen);
                }
                read_seen = read;
            }
            while let Some(ev) = self.a.poll_event() {
                match ev {
                    AuditEvent::Timeout {
                        req_id,
                        block_index,
                    } => {
                        s.order.retain(|i| *i != req_id);
                        s.pending
                            .insert(req_id, Pending::Late { index: block_index });
                        let _ = s
                            .channel
                            .send(Message::Cancel(Cancel { request: req_id }))
                            .await;
                    }
                    AuditEvent::Stopped(o) => {
                        debug!(hoster = %self.target.addr, ?o, "audit stopped");
                        stopped_serving = o == Outcome::HardMaxDuration;
                    }
                }
            }
            if self.a.is_stopped() {
                // Stopped at the hard maximum, the hoster was still serving: ask for the
                // final receipt (the chain counts only receipted blocks as verified) and
                // wait for it as after a full sample. A stalled hoster gets no wait.
                if !stopped_serving {
                    break;
                }
                if ending.is_none() {
                    s.channel
                        .send(DatdotMsg::End.to_message())
                        .await
                        .map_err(|e| e.to_string())?;
                    ending = Some(tokio::time::Instant::now() + END_GRACE);
                }
            }
            if let Some(r) = &root
                && ending.is_none()
            {
                // Keep the window full.
                while s.blocks_in_flight() < window {
                    let Some((pos, index)) = todo.pop_front() else {
                        break;
                    };
                    let t = self.now();
                    let id = s.id();
                    self.a.request_sent(t, id, index);
                    match path_len(index, r.length) {
                        Some(depth) => {
                            let req = block_request(id, r.fork, index, u64::from(depth));
                            s.send(id, req, Pending::Block { pos, index }).await?;
                        }
                        // Beyond the hoster's signed tree: it lacks the block.
                        None => self.a.block_done(t, id, BlockResult::LacksData),
                    }
                }
                if todo.is_empty() && s.blocks_in_flight() == 0 {
                    // Sample done: ask for the true leaf of every bad block, and for the
                    // final receipt.
                    for &index in &self.failed {
                        if let Some(depth) = path_len(index, r.length) {
                            let id = s.id();
                            let req = leaf_request(id, r.fork, index, u64::from(depth));
                            s.send(id, req, Pending::Leaf { index }).await?;
                        }
                    }
                    s.channel
                        .send(DatdotMsg::End.to_message())
                        .await
                        .map_err(|e| e.to_string())?;
                    ending = Some(tokio::time::Instant::now() + END_GRACE);
                }
            }
            let receipted: usize = self.out.receipts.iter().map(|r| r.entries.len()).sum();
            if ending.is_some() && receipted >= self.served.len() && !s.leaves_in_flight() {
                break;
            }
            let wake = match (deadline_of(&self.a, epoch), ending) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            let busy = s.blocks_in_flight() > 0;
            tokio::select! {
                ev = protocol.next() => match ev {
                    Some(Ok(Event::Close(d))) if d == dk => {
                        if ending.is_some() { break; }
                        return Err("hoster closed the channel".into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if ending.is_some() { break; }
                        return Err(e.to_string());
                    }
                    None => {
                        if ending.is_some() { break; }
                        return Err("connection ended".into());
                    }
                },
                m = queue.next() => {
                    let Some(m) = m else {
                        if ending.is_some() { break; }
                        return Err("channel closed".into());
                    };
                    if queue.len() > limits.max_queued {
                        // Misbehaviour, but not one the chain can check: drop the
                        // connection; the requests in flight count as timeouts.
                        return Err("hoster flooded the channel".into());
                    }
                    self.handle(m, &mut s, &mut root, &mut acked, &mut todo, &my_key).await?;
                }
                e = shared.failed() => {
                    if ending.is_some() { break; }
                    return Err(e.to_string());
                }
                _ = tick.tick(), if busy => {}
                _ = sleep_until(wake) => {
                    self.a.handle_timeout(self.now());
                    if ending.is_some_and(|e| tokio::time::Instant::now() >= e) {
                        debug!(hoster = %self.target.addr, "no final receipt within {END_GRACE:?}");
                        break;
                    }
                }
            }
        }
        let _ = s.channel.close().await;
        Ok(())
    }

    /// Handle one message from the hoster's channel.
    async fn handle(
        &mut self,
        m: Message,
        s: &mut Session,
        root: &mut Option<SignedTreeRoot>,
        acked: &mut bool,
        todo: &mut VecDeque<(usize, u64)>,
        my_key: &[u8; 32],
    ) -> Result<(), String> {
        let t = self.now();
        match m {
            Message::Synchronize(sync) => {
                if !*acked {
                    *acked = true;
                    s.channel
                        .send(Message::Synchronize(Synchronize {
                            fork: sync.fork,
                            length: 0,
                            remote_length: sync.length,
                            downloading: true,
                            uploading: false,
                            can_upgrade: true,
                        }))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let asked = s.pending.values().any(|p| matches!(p, Pending::Upgrade));
                if root.is_none() && !asked {
                    if sync.length == 0 {
                        // An empty feed: every sampled block is missing.
                        *root = Some(empty_root(sync.fork));
                    } else {
                        let id = s.id();
                        let req = upgrade_request(id, sync.fork, sync.length);
                        s.send(id, req, Pending::Upgrade).await?;
                    }
                }
            }
            Message::Data(d) => match s.pending.remove(&d.request) {
                Some(Pending::Upgrade) => match signed_root(&d, &self.feed) {
                    Ok(r) => {
                        self.out.root = Some(r.clone());
                        *root = Some(r);
                    }
                    Err(e) => {
                        // Without the feed's signed tree no block can be verified.
                        debug!(hoster = %self.target.addr, "bad signed root: {e}");
                        self.fail_all(todo, s, BlockResult::Misbehaved(Misbehavior::BadProof));
                        *root = Some(empty_root(d.fork));
                    }
                },
                Some(Pending::Block { pos, index }) => {
                    s.order.retain(|i| *i != d.request);
                    if s.first_byte.insert(d.request) {
                        self.a.first_byte(t, d.request);
                    }
                    let r = root.as_ref().ok_or("block answer before the signed root")?;
                    match check_block(&d, index, r) {
                        Ok((hash, bytes)) => {
                            self.served.insert(index, hash);
                            self.out.received[pos] = Some(hash);
                            self.a.block_done(t, d.request, BlockResult::Ok { bytes });
                        }
                        Err((served, m)) => {
                            if let Some(h) = served {
                                self.served.insert(index, h);
                            }
                            self.failed.insert(index);
                            self.a.block_done(t, d.request, BlockResult::Misbehaved(m));
                        }
                    }
                }
                Some(Pending::Late { index }) => {
                    if let Some(b) = &d.block {
                        self.served.insert(index, leaf_hash(&b.value));
                    }
                }
                Some(Pending::Leaf { index }) => {
                    if let Some(p) = leaf_proof(&d, index, root.as_ref()) {
                        self.leaves.insert(index, p);
                    }
                }
                None => debug!(hoster = %self.target.addr, "unsolicited data {}", d.request),
            },
            Message::NoData(n) => match s.pending.remove(&n.request) {
                Some(Pending::Block { .. }) => {
                    s.order.retain(|i| *i != n.request);
                    self.a.block_done(t, n.request, BlockResult::LacksData);
                }
                Some(Pending::Upgrade) => {
                    self.fail_all(todo, s, BlockResult::LacksData);
                    *root = Some(empty_root(0));
                }
                Some(Pending::Late { .. } | Pending::Leaf { .. }) | None => {}
            },
            Message::Extension(e) => match DatdotMsg::decode(&e) {
                // A hoster signs at most one receipt per block served to us, plus the
                // final one: more are counted bad unverified (bounded memory and CPU).
                Ok(Some(DatdotMsg::Receipt(_))) if self.out.receipts.len() > self.served.len() => {
                    self.out.bad_receipts = self.out.bad_receipts.saturating_add(1);
                }
                Ok(Some(DatdotMsg::Receipt(r))) => {
                    let seq = self.out.receipts.len() as u64;
                    let ok = r.verify_for(
                        &Ed25519Verifier,
                        &self.target.chain,
                        &self.target.hoster,
                        &self.target.feed,
                        my_key,
                        seq,
                    );
                    match ok {
                        Ok(()) => self.out.receipts.push(*r),
                        Err(e) => {
                            debug!(hoster = %self.target.addr, "bad receipt: {e}");
                            self.out.bad_receipts = self.out.bad_receipts.saturating_add(1);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    debug!(hoster = %self.target.addr, "bad extension: {e}");
                    self.out.bad_receipts = self.out.bad_receipts.saturating_add(1);
                }
            },
            _ => {}
        }
        Ok(())
    }

    /// Count every block not yet requested as ended with `result`.
    fn fail_all(
        &mut self,
        todo: &mut VecDeque<(usize, u64)>,
        s: &mut Session,
        result: BlockResult,
    ) {
        let t = self.now();
        while let Some((_, index)) = todo.pop_front() {
            let id = s.id();
            self.a.request_sent(t, id, index);
            self.a.block_done(t, id, result);
        }
    }

    /// Check every receipt entry against what was served: a receipted hash that is not
    /// the block's true leaf is a bad-data fraud proof (or, without the true leaf yet,
    /// `unproven`); a receipt for something not served is a bad receipt.
    fn judge_receipts(&mut self) {
        for (ri, r) in self.out.receipts.iter().enumerate() {
            for (ei, e) in r.entries.iter().enumerate() {
                if self.served.get(&e.index) != Some(&e.hash) {
                    self.out.bad_receipts += 1;
                    continue;
                }
                // Receipted as served: evidence only for a block that failed
                // verification (a late answer to a timed-out request is not).
                if !self.failed.contains(&e.index) {
                    continue;
                }
                let entry = u32::try_from(ei).unwrap_or(u32::MAX);
                match self.leaves.get(&e.index) {
                    Some(proof) => {
                        let fp = FraudProof::BadData {
                            receipt: r.clone(),
                            entry,
                            proof: proof.clone(),
                        };
                        match fp.verify(&Ed25519Verifier) {
                            Ok(_) => self.out.fraud.push(fp),
                            Err(err) => debug!("bad-data proof did not verify: {err}"),
                        }
                    }
                    None => self.out.unproven.push((ri, entry, e.index)),
                }
            }
        }
    }
}

/// Verify a block answer against the signed root: `Ok((leaf hash, bytes))`, or the hash
/// of what was served (if anything) and how it failed.
#[allow(clippy::type_complexity)]
fn check_block(
    d: &Data,
    index: u64,
    root: &SignedTreeRoot,
) -> Result<(Hash, u64), (Option<Hash>, Misbehavior)> {
    let Some(b) = d.block.as_ref() else {
        return Err((None, Misbehavior::BadProof));
    };
    let hash = leaf_hash(&b.value);
    if b.index != index || d.fork != root.fork {
        return Err((Some(hash), Misbehavior::BadProof));
    }
    let Some(siblings) = nodes(&b.nodes) else {
        return Err((Some(hash), Misbehavior::BadProof));
    };
    let proof = BlockProof {
        index,
        leaf: TreeNode {
            index: 2 * index,
            size: b.value.len() as u64,
            hash,
        },
        siblings,
        root: root.clone(),
    };
    match proof.verify_path() {
        Ok(()) => Ok((hash, b.value.len() as u64)),
        // The path does not lead to the signed root: the data (or a node) is wrong.
        Err(_) => Err((Some(hash), Misbehavior::BadData)),
    }
}

/// The true leaf of block `index` from a hash answer, checked against the signed root.
fn leaf_proof(d: &Data, index: u64, root: Option<&SignedTreeRoot>) -> Option<BlockProof> {
    let root = root?;
    let h = d.hash.as_ref()?;
    if h.index != 2 * index {
        return None;
    }
    let mut ns = nodes(&h.nodes)?;
    if ns.is_empty() {
        return None;
    }
    let leaf = ns.remove(0);
    let proof = BlockProof {
        index,
        leaf,
        siblings: ns,
        root: root.clone(),
    };
    proof.verify_path().ok().map(|()| proof)
}

/// Ask `peer` (another hoster of the feed, or its source) for the true leaf of block
/// `index`, proven against the feed's signed root. Bounded by the limits' handshake
/// and progress timeouts.
pub async fn prove_leaf(
    addr: SocketAddr,
    expect: Expect,
    feed_key: [u8; 32],
    index: u64,
    limits: &Limits,
) -> Result<BlockProof, String> {
    let feed = PublicKey::from_bytes(&feed_key).map_err(|e| e.to_string())?;
    let conn = dial(addr, expect, limits)
        .await
        .map_err(|e| e.to_string())?;
    let work = async {
        let Connection {
            mut protocol,
            early,
            ..
        } = conn;
        protocol.open(feed_key).await.map_err(|e| e.to_string())?;
        let dk = discovery_key(&feed_key);
        let mut early = early.into_iter();
        let mut channel = open_channel(&mut protocol, &mut early, &dk).await?;
        let mut queue = channel.take_receiver().ok_or("channel receiver taken")?;
        tokio::spawn(async move { while protocol.next().await.is_some() {} });
        channel
            .send(reader_hello())
            .await
            .map_err(|e| e.to_string())?;
        let mut root: Option<SignedTreeRoot> = None;
        while let Some(m) = queue.next().await {
            match m {
                Message::Synchronize(s) if root.is_none() => {
                    if s.length <= index {
                        return Err(format!("peer has {} blocks, not block {index}", s.length));
                    }
                    let req = upgrade_request(1, s.fork, s.length);
                    channel
                        .send(Message::Request(req))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Message::Data(d) if d.request == 1 => {
                    let r = signed_root(&d, &feed)?;
                    let depth = path_len(index, r.length).ok_or("index beyond the signed tree")?;
                    let req = leaf_request(2, r.fork, index, u64::from(depth));
                    root = Some(r);
                    channel
                        .send(Message::Request(req))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Message::Data(d) if d.request == 2 => {
                    let _ = channel.close().await;
                    return leaf_proof(&d, index, root.as_ref())
                        .ok_or_else(|| "the peer's leaf does not verify".to_string());
                }
                Message::NoData(_) => return Err("peer has no such block".to_string()),
                _ => {}
            }
        }
        Err("channel closed".to_string())
    };
    tokio::time::timeout(limits.progress_timeout, work)
        .await
        .map_err(|_| format!("no answer within {:?}", limits.progress_timeout))?
}
