//! The audit session: every decision an auditing reader takes while it reads a sample
//! of blocks from one hoster, as a sans-IO machine around the [`Audit`] accumulator.
//!
//! The plan: ask for the feed's signed root once (an upgrade from 0: the full roots and
//! the feed's signature), then keep a window of block requests in flight, ascending,
//! each with its whole uncle path, so every answer is a self-contained [`BlockProof`]
//! checked against that root. A request past its deadline is cancelled and kept as
//! *late* (its answer still counts for the receipt check). After the sample, the true
//! leaf of every block that failed verification is asked for (a `hash` request), then
//! `End`, then up to [`END_GRACE`] for the final receipt. [`AuditSession::finish`]
//! judges the receipts: an entry for a block that failed verification is a bad-data
//! fraud proof once its true leaf is proven, else it is listed as `unproven`; an entry
//! for something not served is a bad receipt.
//!
//! The shell (`datdot_net::audit`) does the I/O: dialling, the channel, the wire
//! messages, counting raw socket bytes, timers.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::{
    Audit, AuditConfig, AuditEvent, BlockResult, MAX_FAILURES, MAX_IN_FLIGHT, Misbehavior,
};
use crate::fraud::FraudProof;
use crate::hash::Hash;
use crate::identity::{ChainId, Ed25519Verifier, PublicKey, Signature};
use crate::metrics::{Failure, FailureKind, MetricSummary, Outcome};
use crate::receipt::SignedReceipt;
use crate::time::Instant;
use crate::tree::{BlockProof, SignedTreeRoot, TreeNode, leaf_hash, path_len};

mod msg;
#[cfg(test)]
mod tests;

pub use msg::{
    BlockAnswer, DataAnswer, HashAnswer, Request, Transmit, UpgradeAnswer, leaf_proof, signed_root,
};

/// How long to wait for the hoster's final receipt after `End`.
pub const END_GRACE: Duration = Duration::from_secs(2);
/// Largest sample an audit takes (longer samples are truncated).
pub const MAX_SAMPLE: usize = 4096;

/// Whom and what an audit session reads.
#[derive(Clone, Debug)]
pub struct SessionTarget {
    /// The feed's public key (the signed root must verify for it).
    pub feed: PublicKey,
    /// The hoster's signing key (receipts must be signed by it).
    pub hoster: PublicKey,
    /// The chain the challenge is on (receipts must be signed for it).
    pub chain: ChainId,
    /// Our Noise static key on this connection: receipts are bound to it. A shell that
    /// learns it only from the handshake passes it to [`AuditSession::handle_connected_as`].
    pub reader: [u8; 32],
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
    /// the hoster did not prove: `(receipt index, entry index, block)`, for the shell to
    /// ask another peer.
    pub unproven: Vec<(usize, u32, u64)>,
    /// The feed's signed root the hoster served (verified).
    pub root: Option<SignedTreeRoot>,
    /// Receipts that did not verify or named blocks not served as receipted.
    pub bad_receipts: u32,
}

impl AuditOutput {
    fn empty(outcome: Outcome, sampled: usize) -> Self {
        AuditOutput {
            summary: MetricSummary::empty(outcome),
            failures: Vec::new(),
            received: vec![None; sampled],
            receipts: Vec::new(),
            fraud: Vec::new(),
            unproven: Vec::new(),
            root: None,
            bad_receipts: 0,
        }
    }

    /// What a member reports when it did not audit: nothing about the hoster.
    pub fn not_audited() -> Self {
        Self::empty(Outcome::NotAudited, 0)
    }

    /// An audit that could not start (the feed key is not a valid key): it ends as
    /// [`Outcome::ConnectFailed`] with nothing received, like a failed dial.
    pub fn connect_failed(sample: &[u64], config: AuditConfig, now: Instant) -> Self {
        let mut a = Audit::new(config, now);
        a.connect_failed(now);
        let mut out = Self::empty(Outcome::ConnectFailed, sample.len().min(MAX_SAMPLE));
        out.summary = a.finish(now);
        out.failures = a.failures().to_vec();
        out
    }
}

/// What is in flight.
#[derive(Clone, Copy, Debug)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Dialling.
    Connecting,
    /// Connected; waiting for the hoster to open the feed's channel.
    Opening,
    /// Reading.
    Open,
    /// Nothing more to do.
    Done,
}

/// One audit of one hoster: the request plan, the end condition and the judgement of
/// what the hoster served, with the [`Audit`] accumulator measuring it.
///
/// # Driving it (call order)
/// 1. [`AuditSession::new`] when dialling starts. Then [`AuditSession::handle_connected`]
///    (or `handle_connected_as`) or [`AuditSession::handle_connect_failed`].
/// 2. [`AuditSession::handle_channel_open`] when the hoster opens the feed's channel (it
///    queues `Hello`). A driver without a channel step may skip it: the first
///    [`AuditSession::handle_sync`] then opens the channel (`Hello`, then `SyncAck`).
/// 3. Every message from the hoster: `handle_sync`, `handle_data`, `handle_no_data`,
///    `handle_receipt`, `handle_bad_extension`; raw bytes read from the socket through
///    [`AuditSession::handle_bytes`] (sampled after every input, and every few
///    milliseconds while [`AuditSession::busy`]); [`AuditSession::handle_lost`] when the
///    connection or channel ends, [`AuditSession::handle_failed`] when it failed
///    otherwise (flooded, a send failed); [`AuditSession::handle_timeout`] when the
///    instant from [`AuditSession::poll_timeout`] has passed.
/// 4. After each call, drain [`AuditSession::poll_transmit`] and send in order.
/// 5. Once [`AuditSession::is_done`] (or when the shell gives up), call
///    [`AuditSession::finish`].
///
/// Every input after the session is done is ignored; an input out of order (data
/// before the channel is open, an unknown request id) is ignored too. Memory is bounded
/// by the sample ([`MAX_SAMPLE`]) and the window.
#[derive(Debug)]
pub struct AuditSession {
    target: SessionTarget,
    a: Audit,
    window: usize,
    phase: Phase,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    /// Leaf requests in `pending`.
    leaves_pending: usize,
    /// An upgrade request is in `pending`.
    upgrade_pending: bool,
    /// Block request ids in send order (answers arrive in order on one stream).
    order: VecDeque<u64>,
    first_byte: HashSet<u64>,
    /// Sampled blocks not yet requested: `(position in the sample, index)`.
    todo: VecDeque<(usize, u64)>,
    root: Option<SignedTreeRoot>,
    acked: bool,
    /// The audit stopped at its hard maximum while the hoster was still serving.
    stopped_serving: bool,
    /// `End` was sent; the final receipt is awaited until then.
    ending: Option<Instant>,
    /// Block -> leaf hash of what the hoster served (verified or not).
    served: HashMap<u64, Hash>,
    /// Blocks whose answer failed verification.
    failed: BTreeSet<u64>,
    /// True leaves of bad blocks, proven against the signed root.
    leaves: HashMap<u64, BlockProof>,
    /// Entries in the verified receipts.
    receipted: usize,
    out: AuditOutput,
    transmits: VecDeque<Transmit>,
}

impl AuditSession {
    /// Start an audit of `sample` (block indices, truncated to [`MAX_SAMPLE`]) at `now`,
    /// when dialling begins. `window` block requests are kept in flight (clamped to
    /// `1..=MAX_IN_FLIGHT`).
    pub fn new(
        target: SessionTarget,
        sample: &[u64],
        config: AuditConfig,
        window: usize,
        now: Instant,
    ) -> Self {
        let sample = &sample[..sample.len().min(MAX_SAMPLE)];
        AuditSession {
            target,
            a: Audit::new(config, now),
            window: window.clamp(1, MAX_IN_FLIGHT),
            phase: Phase::Connecting,
            next_id: 1,
            pending: HashMap::new(),
            leaves_pending: 0,
            upgrade_pending: false,
            order: VecDeque::new(),
            first_byte: HashSet::new(),
            todo: sample.iter().copied().enumerate().collect(),
            root: None,
            acked: false,
            stopped_serving: false,
            ending: None,
            served: HashMap::new(),
            failed: BTreeSet::new(),
            leaves: HashMap::new(),
            receipted: 0,
            out: AuditOutput::empty(Outcome::ConnectFailed, sample.len()),
            transmits: VecDeque::new(),
        }
    }

    /// The connection is ready (the handshake is done; connection time ends here).
    pub fn handle_connected(&mut self, now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.a.connected(now);
        self.phase = Phase::Opening;
        self.step(now);
    }

    /// [`AuditSession::handle_connected`], with our Noise key on the connection (the
    /// receipts must name it).
    pub fn handle_connected_as(&mut self, now: Instant, reader: [u8; 32]) {
        if self.phase == Phase::Connecting {
            self.target.reader = reader;
        }
        self.handle_connected(now);
    }

    /// The connection could not be made.
    pub fn handle_connect_failed(&mut self, now: Instant) {
        self.handle_failed(now);
    }

    /// The hoster opened the feed's channel: queues `Hello`.
    pub fn handle_channel_open(&mut self, now: Instant) {
        if self.phase != Phase::Opening {
            return;
        }
        self.phase = Phase::Open;
        self.transmits.push_back(Transmit::Hello);
        self.step(now);
    }

    /// The hoster's `Synchronize`: the first is acknowledged, and the signed root is
    /// asked for (an empty feed has nothing to ask).
    pub fn handle_sync(&mut self, now: Instant, fork: u64, length: u64) {
        if self.phase == Phase::Opening {
            self.handle_channel_open(now);
        }
        if self.phase != Phase::Open {
            return;
        }
        if !self.acked {
            self.acked = true;
            self.transmits.push_back(Transmit::SyncAck {
                fork,
                remote_length: length,
            });
        }
        if self.root.is_none() && !self.upgrade_pending {
            if length == 0 {
                // An empty feed: every sampled block is missing.
                self.root = Some(empty_root(fork));
            } else {
                let id = self.id();
                self.send(id, fork, Request::Upgrade { length }, Pending::Upgrade);
            }
        }
        self.step(now);
    }

    /// A `Data` answer.
    pub fn handle_data(&mut self, now: Instant, d: DataAnswer<'_>) {
        if self.phase != Phase::Open {
            return;
        }
        let req = d.request;
        match self.remove_pending(req) {
            Some(Pending::Upgrade) => {
                let root = d
                    .upgrade
                    .as_ref()
                    .ok_or("answer without the upgrade")
                    .and_then(|u| signed_root(u, d.fork, &self.target.feed));
                match root {
                    Ok(r) => {
                        self.out.root = Some(r.clone());
                        self.root = Some(r);
                    }
                    Err(_) => {
                        // Without the feed's signed tree no block can be verified.
                        self.fail_all(now, BlockResult::Misbehaved(Misbehavior::BadProof));
                        self.root = Some(empty_root(d.fork));
                    }
                }
            }
            Some(Pending::Block { pos, index }) => {
                self.order.retain(|i| *i != req);
                if self.first_byte.insert(req) {
                    self.a.first_byte(now, req);
                }
                let Some(root) = self.root.as_ref() else {
                    // Unreachable: blocks are asked for only once the root is known.
                    self.handle_failed(now);
                    return;
                };
                match check_block(d, index, root) {
                    Ok((hash, bytes)) => {
                        self.served.insert(index, hash);
                        self.out.received[pos] = Some(hash);
                        self.a.block_done(now, req, BlockResult::Ok { bytes });
                    }
                    Err((served, m)) => {
                        if let Some(h) = served {
                            self.served.insert(index, h);
                        }
                        self.failed.insert(index);
                        self.a.block_done(now, req, BlockResult::Misbehaved(m));
                    }
                }
            }
            Some(Pending::Late { index }) => {
                if let Some(b) = &d.block {
                    self.served.insert(index, leaf_hash(b.value));
                }
            }
            Some(Pending::Leaf { index }) => {
                if let (Some(h), Some(root)) = (&d.hash, &self.root)
                    && let Some(p) = leaf_proof(h, index, root)
                {
                    self.leaves.insert(index, p);
                }
            }
            None => {}
        }
        self.step(now);
    }

    /// A `NoData` answer: the hoster lacks what request `request` asked for.
    pub fn handle_no_data(&mut self, now: Instant, request: u64) {
        if self.phase != Phase::Open {
            return;
        }
        match self.remove_pending(request) {
            Some(Pending::Block { .. }) => {
                self.order.retain(|i| *i != request);
                self.a.block_done(now, request, BlockResult::LacksData);
            }
            Some(Pending::Upgrade) => {
                self.fail_all(now, BlockResult::LacksData);
                self.root = Some(empty_root(0));
            }
            Some(Pending::Late { .. } | Pending::Leaf { .. }) | None => {}
        }
        self.step(now);
    }

    /// A receipt from the hoster. It must verify for the hoster, the feed, our key and
    /// the next sequence number. A hoster signs at most one receipt per block served
    /// plus the final one: further ones are counted bad without being verified.
    pub fn handle_receipt(&mut self, now: Instant, r: SignedReceipt) {
        if self.phase != Phase::Open {
            return;
        }
        if self.out.receipts.len() > self.served.len() {
            self.bad_receipt();
        } else {
            let seq = self.out.receipts.len() as u64;
            let t = &self.target;
            let ok = r.verify_for(
                &Ed25519Verifier,
                &t.chain,
                &t.hoster,
                t.feed.as_bytes(),
                &t.reader,
                seq,
            );
            match ok {
                Ok(()) => {
                    self.receipted = self.receipted.saturating_add(r.entries.len());
                    self.out.receipts.push(r);
                }
                Err(_) => self.bad_receipt(),
            }
        }
        self.step(now);
    }

    /// A datdot extension message that did not decode: counted as a bad receipt.
    pub fn handle_bad_extension(&mut self, now: Instant) {
        if self.phase != Phase::Open {
            return;
        }
        self.bad_receipt();
        self.step(now);
    }

    /// `n` raw bytes arrived on the socket: attributed to the oldest block request in
    /// flight (first byte, progress).
    pub fn handle_bytes(&mut self, now: Instant, n: u64) {
        if self.phase != Phase::Open {
            return;
        }
        if n > 0
            && let Some(&id) = self.order.front()
        {
            if self.first_byte.insert(id) {
                self.a.first_byte(now, id);
            }
            self.a.bytes(now, id, n);
        }
        self.step(now);
    }

    /// The connection or the channel ended. After `End` that is a normal end; before,
    /// the connection was lost (the audit stops as [`Outcome::ConnectFailed`]).
    pub fn handle_lost(&mut self, now: Instant) {
        match self.phase {
            Phase::Done => {}
            Phase::Open if self.ending.is_some() => self.close(),
            _ => self.handle_failed(now),
        }
    }

    /// The connection failed in a way that is never a normal end: the hoster flooded
    /// the channel, or a send failed. The audit stops as [`Outcome::ConnectFailed`]
    /// (unless it had stopped already); nothing more is sent.
    pub fn handle_failed(&mut self, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.a.connect_failed(now);
        self.transmits.clear();
        self.phase = Phase::Done;
    }

    /// The instant from [`AuditSession::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.a.handle_timeout(now);
        if self.ending.is_some_and(|e| now >= e) {
            // No final receipt within the grace.
            self.close();
            return;
        }
        self.step(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`AuditSession::handle_timeout`]: the earlier of the audit's next
    /// deadline and the end of the grace for the final receipt.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        match (self.a.poll_timeout(), self.ending) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Nothing more to do: send what is queued (a `Close`, on a normal end), then
    /// [`AuditSession::finish`].
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Block requests are in flight (raw socket bytes are progress for them).
    pub fn busy(&self) -> bool {
        self.phase == Phase::Open && !self.order.is_empty()
    }

    /// `End` was sent: the session waits for the final receipt.
    pub fn is_ending(&self) -> bool {
        self.ending.is_some()
    }

    /// Requests awaiting an answer: blocks, leaves and the upgrade (not the late ones).
    pub fn in_flight(&self) -> usize {
        self.order.len() + self.leaves_pending + usize::from(self.upgrade_pending)
    }

    /// How the accumulator ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        self.a.outcome()
    }

    /// The accumulator, for inspection.
    pub fn audit(&self) -> &Audit {
        &self.a
    }

    /// Judge the receipts and summarise the audit at `now`.
    pub fn finish(mut self, now: Instant) -> AuditOutput {
        self.judge_receipts();
        let mut out = self.out;
        out.summary = self.a.finish(now);
        let mut failures = self.a.failures().to_vec();
        // Bad receipts are listed (the accumulator counts blocks, not receipts).
        for _ in 0..out.bad_receipts {
            if failures.len() >= MAX_FAILURES {
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

    /// The decisions taken after every input: cancel what timed out, end the session
    /// when the audit stopped, keep the window full, and after the sample ask for the
    /// true leaves and the final receipt.
    fn step(&mut self, now: Instant) {
        match self.phase {
            Phase::Open => {}
            Phase::Connecting | Phase::Opening => {
                if self.a.is_stopped() {
                    self.phase = Phase::Done;
                }
                return;
            }
            Phase::Done => return,
        }
        while let Some(ev) = self.a.poll_event() {
            match ev {
                AuditEvent::Timeout {
                    req_id,
                    block_index,
                } => {
                    self.order.retain(|i| *i != req_id);
                    self.insert_pending(req_id, Pending::Late { index: block_index });
                    self.transmits.push_back(Transmit::Cancel { id: req_id });
                }
                AuditEvent::Stopped(o) => self.stopped_serving = o == Outcome::HardMaxDuration,
            }
        }
        if self.a.is_stopped() {
            // Stopped at the hard maximum, the hoster was still serving: ask for the
            // final receipt (the chain counts only receipted blocks as verified) and
            // wait for it as after a full sample. A stalled hoster gets no wait.
            if !self.stopped_serving {
                self.close();
                return;
            }
            if self.ending.is_none() {
                self.end(now);
            }
        }
        if self.ending.is_none()
            && let Some(r) = &self.root
        {
            let (length, fork) = (r.length, r.fork);
            while self.order.len() < self.window {
                let Some((pos, index)) = self.todo.pop_front() else {
                    break;
                };
                let id = self.id();
                self.a.request_sent(now, id, index);
                match path_len(index, length) {
                    Some(depth) => {
                        let nodes = u64::from(depth);
                        let p = Pending::Block { pos, index };
                        self.send(id, fork, Request::Block { index, nodes }, p);
                    }
                    // Beyond the hoster's signed tree: it lacks the block.
                    None => self.a.block_done(now, id, BlockResult::LacksData),
                }
            }
            if self.todo.is_empty() && self.order.is_empty() {
                // Sample done: ask for the true leaf of every bad block, and for the
                // final receipt.
                let failed: Vec<u64> = self.failed.iter().copied().collect();
                for index in failed {
                    if let Some(depth) = path_len(index, length) {
                        let id = self.id();
                        let nodes = u64::from(depth);
                        let p = Pending::Leaf { index };
                        self.send(id, fork, Request::Leaf { index, nodes }, p);
                    }
                }
                self.end(now);
            }
        }
        if self.ending.is_some() && self.receipted >= self.served.len() && self.leaves_pending == 0
        {
            self.close();
        }
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn send(&mut self, id: u64, fork: u64, request: Request, p: Pending) {
        self.transmits
            .push_back(Transmit::Request { id, fork, request });
        if matches!(p, Pending::Block { .. }) {
            self.order.push_back(id);
        }
        self.insert_pending(id, p);
    }

    fn insert_pending(&mut self, id: u64, p: Pending) {
        self.count(&p, true);
        if let Some(old) = self.pending.insert(id, p) {
            self.count(&old, false);
        }
    }

    fn remove_pending(&mut self, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        self.count(&p, false);
        Some(p)
    }

    fn count(&mut self, p: &Pending, added: bool) {
        match p {
            Pending::Leaf { .. } if added => self.leaves_pending += 1,
            Pending::Leaf { .. } => self.leaves_pending -= 1,
            Pending::Upgrade => self.upgrade_pending = added,
            Pending::Block { .. } | Pending::Late { .. } => {}
        }
    }

    fn end(&mut self, now: Instant) {
        self.transmits.push_back(Transmit::End);
        self.ending = Some(now + END_GRACE);
    }

    fn close(&mut self) {
        self.transmits.push_back(Transmit::Close);
        self.phase = Phase::Done;
    }

    fn bad_receipt(&mut self) {
        self.out.bad_receipts = self.out.bad_receipts.saturating_add(1);
    }

    /// Count every block not yet requested as ended with `result`.
    fn fail_all(&mut self, now: Instant, result: BlockResult) {
        while let Some((_, index)) = self.todo.pop_front() {
            let id = self.id();
            self.a.request_sent(now, id, index);
            self.a.block_done(now, id, result);
        }
    }

    /// Check every receipt entry against what was served: a receipted hash that is not
    /// the block's true leaf is a bad-data fraud proof (or, without the true leaf,
    /// `unproven`); a receipt for something not served is a bad receipt.
    fn judge_receipts(&mut self) {
        let out = &mut self.out;
        for (ri, r) in out.receipts.iter().enumerate() {
            for (ei, e) in r.entries.iter().enumerate() {
                if self.served.get(&e.index) != Some(&e.hash) {
                    out.bad_receipts = out.bad_receipts.saturating_add(1);
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
                        if fp.verify(&Ed25519Verifier).is_ok() {
                            out.fraud.push(fp);
                        }
                    }
                    None => out.unproven.push((ri, entry, e.index)),
                }
            }
        }
    }
}

fn empty_root(fork: u64) -> SignedTreeRoot {
    SignedTreeRoot {
        length: 0,
        fork,
        roots: Vec::new(),
        signature: Signature([0; 64]),
    }
}

/// A verified block: its leaf hash and size; or the hash of what was served (if
/// anything) and how it failed.
type Checked = Result<(Hash, u64), (Option<Hash>, Misbehavior)>;

/// Verify a block answer against the signed root.
fn check_block(d: DataAnswer<'_>, index: u64, root: &SignedTreeRoot) -> Checked {
    let Some(b) = d.block else {
        return Err((None, Misbehavior::BadProof));
    };
    let hash = leaf_hash(b.value);
    if b.index != index || d.fork != root.fork || d.malformed {
        return Err((Some(hash), Misbehavior::BadProof));
    }
    let size = b.value.len() as u64;
    let proof = BlockProof {
        index,
        leaf: TreeNode {
            index: 2 * index,
            size,
            hash,
        },
        siblings: b.nodes,
        root: root.clone(),
    };
    match proof.verify_path() {
        Ok(()) => Ok((hash, size)),
        // The path does not lead to the signed root: the data (or a node) is wrong.
        Err(_) => Err((Some(hash), Misbehavior::BadData)),
    }
}
