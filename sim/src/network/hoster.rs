//! Simulated hosters and the audit connection: the production audit machine
//! ([`AuditSession`]) reads from a hoster model over a link with a latency and a
//! bandwidth, on the virtual clock.
//!
//! The hoster answers as the real one does on the wire: its `Synchronize` after the
//! reader's, the signed root for an upgrade from 0, each block with its uncle path, the
//! true leaf for a `hash` request, `NoData` for what it lacks, and one signed receipt for
//! everything it served when the reader sends `End`. Answers share the link: each starts
//! when the previous one has left (bandwidth) and arrives a latency later; the first byte
//! and the rest are reported to the machine as the socket shell reports them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use datdot_protocol::audit::AuditConfig;
use datdot_protocol::audit::session::{
    AuditOutput, AuditSession, BlockAnswer, DataAnswer, HashAnswer, Request, SessionTarget,
    Transmit, UpgradeAnswer,
};
use datdot_protocol::hash::{Hash, blake2b256};
use datdot_protocol::identity::{Keypair, PublicKey};
use datdot_protocol::receipt::{ReceiptEntry, SignedReceipt};
use datdot_protocol::time::Instant;
use datdot_protocol::tree::build::Tree;
use datdot_protocol::tree::leaf_hash;

/// How a simulated hoster behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HosterClass {
    /// Serves every block, fast.
    Honest,
    /// Lost a fraction (parts per million) of the feed's blocks: `NoData` for those.
    Lossy(u32),
    /// Serves wrong bytes for a tenth of the blocks, and signs receipts for them.
    Corrupt,
    /// Serves everything, slower than the SLA allows.
    Slow,
    /// Sends a byte now and then: always making progress, never finishing.
    Trickling,
    /// Serves only connections it takes for attestors' (it knows their registered
    /// addresses; audits still come from them), nobody else.
    ServesOnlyAttestors,
}

impl HosterClass {
    /// Its name in tables.
    pub fn name(self) -> String {
        match self {
            HosterClass::Honest => "honest".into(),
            HosterClass::Lossy(ppm) => format!("lossy {}%", f64::from(ppm) / 10_000.0),
            HosterClass::Corrupt => "corrupt".into(),
            HosterClass::Slow => "slow".into(),
            HosterClass::Trickling => "trickling".into(),
            HosterClass::ServesOnlyAttestors => "serves only attestors".into(),
        }
    }

    /// Whether the SLA is met (the verdict a sound committee reaches).
    pub fn meets_sla(self) -> bool {
        matches!(self, HosterClass::Honest | HosterClass::ServesOnlyAttestors)
    }

    fn link(self) -> (Duration, u64) {
        match self {
            HosterClass::Slow => (Duration::from_millis(700), 200 * 1024),
            _ => (Duration::from_millis(20), 20 * 1024 * 1024),
        }
    }
}

/// A feed as every hoster of it stores it: its blocks (one content for all feeds of a
/// run, each feed its own key and signed root) and its whole tree.
#[derive(Debug)]
pub struct Content {
    /// The blocks.
    pub blocks: Vec<Vec<u8>>,
    /// Their tree.
    pub tree: Tree,
}

impl Content {
    /// `length` blocks of `size` bytes drawn from `seed`.
    pub fn new(seed: u64, length: u64, size: usize) -> Self {
        let blocks: Vec<Vec<u8>> = (0..length)
            .map(|i| {
                let h = blake2b256(&[b"sim/block", &seed.to_le_bytes(), &i.to_le_bytes()]);
                h.iter().copied().cycle().take(size).collect()
            })
            .collect();
        let leaves: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| datdot_protocol::tree::build::leaf(i as u64, b))
            .collect();
        Content {
            tree: Tree::new(&leaves),
            blocks,
        }
    }
}

/// One hoster as an audit sees it.
#[derive(Debug)]
pub struct Served<'a> {
    /// Its behaviour.
    pub class: HosterClass,
    /// Its receipt key.
    pub key: &'a Keypair,
    /// The stored feed.
    pub content: &'a Content,
    /// The feed's key and the feed's signature over its tree.
    pub feed: [u8; 32],
    /// The feed's signature over its tree.
    pub signature: [u8; 64],
    /// The chain's identity.
    pub chain: [u8; 32],
    /// Per-hoster seed (which blocks it lost or corrupts, its latency jitter).
    pub seed: u64,
}

impl Served<'_> {
    fn lacks(&self, index: u64) -> bool {
        match self.class {
            HosterClass::Lossy(ppm) => {
                // Exactly ⌊f · length⌋ blocks lost, a seeded set.
                let n = self.content.tree.length();
                let lost = n * u64::from(ppm) / 1_000_000;
                rank(self.seed, index, n) < lost
            }
            _ => false,
        }
    }

    fn corrupts(&self, index: u64) -> bool {
        self.class == HosterClass::Corrupt && {
            let n = self.content.tree.length();
            rank(self.seed, index, n) < n / 10
        }
    }
}

/// Block `index`'s position in a seeded permutation of `0..n` (a bijection: the first
/// `k` positions are exactly `k` blocks).
fn rank(seed: u64, index: u64, n: u64) -> u64 {
    // An affine map modulo n with a multiplier coprime to n.
    let h = u64::from_le_bytes(
        blake2b256(&[b"sim/rank", &seed.to_le_bytes()])[..8]
            .try_into()
            .unwrap_or([0; 8]),
    );
    let mut a = (h | 1) % n.max(1);
    while gcd(a, n) != 1 {
        a = (a + 1) % n.max(1);
        if a == 0 {
            a = 1;
        }
    }
    let b = (h >> 17) % n.max(1);
    ((u128::from(a) * u128::from(index) + u128::from(b)) % u128::from(n.max(1))) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

enum Arrival {
    Sync { length: u64 },
    Data { request: u64, kind: Answer },
    NoData { request: u64 },
    Bytes(u64),
    Receipt(Box<SignedReceipt>),
}

/// What arrives at the reader, in time order (ties in send order).
#[derive(Default)]
struct Arrivals {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    items: Vec<Option<Arrival>>,
}

impl Arrivals {
    fn push(&mut self, at: Instant, a: Arrival) {
        self.heap.push(Reverse((at, self.items.len() as u64)));
        self.items.push(Some(a));
    }

    fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    fn pop(&mut self) -> Option<Arrival> {
        let Reverse((_, i)) = self.heap.pop()?;
        self.items.get_mut(i as usize)?.take()
    }
}

enum Answer {
    Upgrade,
    Block { index: u64, bad: bool },
    Leaf { index: u64 },
}

/// Audit `hoster` for `sample` from `start`, within `config`, with `window` requests in
/// flight; `reader` is the audit connection's key. Returns the output and when it ended.
pub fn audit(
    hoster: &Served<'_>,
    hoster_key: PublicKey,
    sample: &[u64],
    config: AuditConfig,
    window: usize,
    reader: [u8; 32],
    start: Instant,
) -> (AuditOutput, Instant) {
    let target = SessionTarget {
        feed: PublicKey::from_bytes(&hoster.feed).expect("simulated feed keys are valid"),
        hoster: hoster_key,
        chain: hoster.chain,
        reader,
    };
    let mut s = AuditSession::new(target, sample, config, window, start);
    let (latency, bandwidth) = hoster.class.link();
    let jitter = Duration::from_micros(hoster.seed % 2_000);
    let latency = latency + jitter;
    let size = hoster.content.blocks.first().map_or(0, Vec::len) as u64;
    let transfer = |bytes: u64| Duration::from_micros(bytes * 1_000_000 / bandwidth.max(1));
    // Arrivals at the reader, in time order (ties in send order).
    let mut queue = Arrivals::default();
    let mut link_free = start;
    let mut served: Vec<ReceiptEntry> = Vec::new();
    let connect = start + latency * 2;
    let mut now = connect;
    s.handle_connected(now);
    // The hoster opens the feed's channel with its `Synchronize`.
    queue.push(
        now + latency,
        Arrival::Sync {
            length: hoster.content.tree.length(),
        },
    );
    let mut closed = false;
    loop {
        // What the reader sends, and the hoster's answers to it.
        while let Some(t) = s.poll_transmit() {
            let arrive = now + latency;
            match t {
                Transmit::Hello | Transmit::SyncAck { .. } | Transmit::Cancel { .. } => {}
                Transmit::Request { id, request, .. } => {
                    let (kind, bytes) = match request {
                        Request::Upgrade { .. } => (Some(Answer::Upgrade), 200),
                        Request::Block { index, .. }
                            if index < hoster.content.tree.length() && !hoster.lacks(index) =>
                        {
                            (
                                Some(Answer::Block {
                                    index,
                                    bad: hoster.corrupts(index),
                                }),
                                size + 400,
                            )
                        }
                        Request::Leaf { index, .. } if index < hoster.content.tree.length() => {
                            (Some(Answer::Leaf { index }), 400)
                        }
                        _ => (None, 16),
                    };
                    let begin = arrive.max(link_free);
                    if hoster.class == HosterClass::Trickling
                        && matches!(kind, Some(Answer::Block { .. }))
                    {
                        // A byte every 900 ms, for ever: progress without an answer.
                        for k in 1..=200u64 {
                            queue.push(
                                begin + Duration::from_millis(900 * k) + latency,
                                Arrival::Bytes(1),
                            );
                        }
                        link_free = begin + Duration::from_secs(3600);
                        continue;
                    }
                    let done = begin + transfer(bytes);
                    link_free = done;
                    // The first byte, then the rest with the answer.
                    queue.push(begin + latency, Arrival::Bytes(1));
                    queue.push(done + latency, Arrival::Bytes(bytes.saturating_sub(1)));
                    match kind {
                        Some(kind) => {
                            queue.push(done + latency, Arrival::Data { request: id, kind })
                        }
                        None => queue.push(done + latency, Arrival::NoData { request: id }),
                    }
                }
                Transmit::End => {
                    let entries = std::mem::take(&mut served);
                    let r = SignedReceipt::sign(
                        hoster.key,
                        hoster.chain,
                        hoster.feed,
                        reader,
                        0,
                        entries,
                    );
                    let at = arrive.max(link_free) + latency;
                    queue.push(at, Arrival::Receipt(Box::new(r)));
                }
                Transmit::Close => closed = true,
            }
        }
        if closed || s.is_done() {
            break;
        }
        let next_arrival = queue.next_at();
        let next = match (next_arrival, s.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => break,
            },
        };
        now = now.max(next);
        if next_arrival == Some(next) {
            let Some(a) = queue.pop() else {
                break;
            };
            match a {
                Arrival::Sync { length } => s.handle_sync(now, 0, length),
                Arrival::Bytes(n) => s.handle_bytes(now, n),
                Arrival::NoData { request } => s.handle_no_data(now, request),
                Arrival::Receipt(r) => s.handle_receipt(now, *r),
                Arrival::Data { request, kind } => {
                    let tree = &hoster.content.tree;
                    match kind {
                        Answer::Upgrade => s.handle_data(
                            now,
                            DataAnswer {
                                request,
                                fork: 0,
                                block: None,
                                hash: None,
                                upgrade: Some(UpgradeAnswer {
                                    start: 0,
                                    length: tree.length(),
                                    nodes: tree.roots(),
                                    signature: hoster.signature.to_vec(),
                                }),
                                malformed: false,
                            },
                        ),
                        Answer::Block { index, bad } => {
                            let mut value = hoster.content.blocks[index as usize].clone();
                            if bad {
                                value[0] ^= 0xff;
                            }
                            served.push(ReceiptEntry {
                                index,
                                hash: leaf_hash(&value),
                            });
                            s.handle_data(
                                now,
                                DataAnswer {
                                    request,
                                    fork: 0,
                                    block: Some(BlockAnswer {
                                        index,
                                        value: &value,
                                        nodes: tree.siblings(index).unwrap_or_default(),
                                    }),
                                    hash: None,
                                    upgrade: None,
                                    malformed: false,
                                },
                            );
                        }
                        Answer::Leaf { index } => {
                            let mut nodes = vec![tree.node(2 * index).cloned().expect("covered")];
                            nodes.extend(tree.siblings(index).unwrap_or_default());
                            s.handle_data(
                                now,
                                DataAnswer {
                                    request,
                                    fork: 0,
                                    block: None,
                                    hash: Some(HashAnswer {
                                        index: 2 * index,
                                        nodes,
                                    }),
                                    upgrade: None,
                                    malformed: false,
                                },
                            );
                        }
                    }
                }
            }
        } else {
            s.handle_timeout(now);
        }
    }
    (s.finish(now), now)
}

/// The leaf hash the honest feed has at `index` (for checks).
pub fn true_leaf(content: &Content, index: u64) -> Option<Hash> {
    content.tree.node(2 * index).map(|n| n.hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::metrics::Outcome;
    use datdot_protocol::tree::{signable, tree_hash};
    use ed25519_dalek::{Signer as _, SigningKey};

    fn audit_of(class: HosterClass, sample: &[u64]) -> AuditOutput {
        let content = Content::new(1, 256, 1024);
        let sk = SigningKey::from_bytes(&[4; 32]);
        let feed = sk.verifying_key().to_bytes();
        let signature = sk
            .sign(&signable(&tree_hash(&content.tree.roots()), 256, 0))
            .to_bytes();
        let key = Keypair::from_seed(&[5; 32]);
        let served = Served {
            class,
            key: &key,
            content: &content,
            feed,
            signature,
            chain: [6; 32],
            seed: 9,
        };
        let cfg = AuditConfig::default().capped(Duration::from_secs(15));
        audit(
            &served,
            key.public(),
            sample,
            cfg,
            16,
            [7; 32],
            Instant(1_000_000),
        )
        .0
    }

    #[test]
    fn an_honest_hoster_serves_and_receipts_the_whole_sample() {
        let sample: Vec<u64> = (0..32).map(|i| i * 7).collect();
        let o = audit_of(HosterClass::Honest, &sample);
        assert_eq!(o.summary.outcome, Outcome::Completed, "{o:?}");
        assert_eq!(o.summary.ok_blocks, 32, "{:?}", o.summary);
        assert_eq!(o.receipts.len(), 1);
        assert_eq!(o.receipts[0].entries.len(), 32);
        assert!(o.received.iter().all(Option::is_some));
    }

    #[test]
    fn each_class_is_seen_for_what_it_is() {
        let sample: Vec<u64> = (0..32).map(|i| i * 7).collect();
        let o = audit_of(HosterClass::Lossy(500_000), &sample);
        assert!(
            o.summary.lacks_data > 0 && o.summary.ok_blocks > 0,
            "{:?}",
            o.summary
        );
        let all: Vec<u64> = (0..256).collect();
        let o = audit_of(HosterClass::Corrupt, &all);
        assert_eq!(o.summary.misbehaved, 25, "{:?}", o.summary);
        assert_eq!(
            o.fraud.len(),
            25,
            "one verified proof per receipted bad block"
        );
        let o = audit_of(HosterClass::Slow, &sample);
        assert!(o.summary.latency_p99_us > 500_000, "{:?}", o.summary);
        let o = audit_of(HosterClass::Trickling, &sample);
        assert_eq!(
            o.summary.outcome,
            Outcome::HardMaxDuration,
            "{:?}",
            o.summary
        );
    }
}
