//! The audit session driven by an in-test hoster built from `tree::build`: honest, or
//! misbehaving in one named way; and by random inputs (proptest).

use std::collections::VecDeque;

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

use super::*;
use crate::fraud::FraudKind;
use crate::identity::Keypair;
use crate::receipt::{ReceiptEntry, ReceiptSigner};
use crate::tree::build;

const CHAIN: ChainId = [7; 32];
const READER: [u8; 32] = [5; 32];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An owned `Data` message.
#[derive(Clone, Debug, Default)]
struct Data {
    request: u64,
    fork: u64,
    block: Option<(u64, Vec<u8>, Vec<TreeNode>)>,
    hash: Option<HashAnswer>,
    upgrade: Option<UpgradeAnswer>,
    malformed: bool,
}

impl Data {
    fn answer(&self) -> DataAnswer<'_> {
        DataAnswer {
            request: self.request,
            fork: self.fork,
            block: self
                .block
                .as_ref()
                .map(|(index, value, nodes)| BlockAnswer {
                    index: *index,
                    value,
                    nodes: nodes.clone(),
                }),
            hash: self.hash.clone(),
            upgrade: self.upgrade.clone(),
            malformed: self.malformed,
        }
    }
}

/// What the hoster sends.
#[derive(Clone, Debug)]
enum Reply {
    Sync { fork: u64, length: u64 },
    Data(Box<Data>),
    NoData(u64),
    Receipt(Box<SignedReceipt>),
}

fn deliver(s: &mut AuditSession, now: Instant, r: &Reply) {
    match r {
        Reply::Sync { fork, length } => s.handle_sync(now, *fork, *length),
        Reply::Data(d) => s.handle_data(now, d.answer()),
        Reply::NoData(id) => s.handle_no_data(now, *id),
        Reply::Receipt(r) => s.handle_receipt(now, (**r).clone()),
    }
}

/// How the in-test hoster misbehaves (the default is honest).
#[derive(Clone, Debug)]
struct Behaviour {
    /// Blocks served with a flipped first byte.
    corrupt: Vec<u64>,
    /// Answer `hash` requests for true leaves.
    answer_leaves: bool,
    /// Answer the upgrade with `NoData`.
    no_upgrade: bool,
    /// Answer this many block requests, then nothing.
    serve: usize,
    /// A receipt every this many blocks (and the rest after `End`).
    receipt_every: usize,
    /// Also receipt this block, never served, after the first block.
    phantom: Option<u64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            corrupt: Vec::new(),
            answer_leaves: true,
            no_upgrade: false,
            serve: usize::MAX,
            receipt_every: 3,
            phantom: None,
        }
    }
}

/// A hoster of an `n`-block feed that answers requests like the real one: proofs from
/// the feed's tree, a receipt every few blocks and after `End`.
struct Hoster {
    blocks: Vec<Vec<u8>>,
    leaves: Vec<TreeNode>,
    feed: SigningKey,
    kp: Keypair,
    signer: ReceiptSigner,
    b: Behaviour,
    served: usize,
}

impl Hoster {
    fn new(n: usize, b: Behaviour) -> Self {
        let feed = SigningKey::from_bytes(&[77; 32]);
        let blocks: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 50 + i % 7]).collect();
        let leaves = blocks
            .iter()
            .enumerate()
            .map(|(i, d)| build::leaf(i as u64, d))
            .collect();
        let signer = ReceiptSigner::new(
            CHAIN,
            feed.verifying_key().to_bytes(),
            READER,
            b.receipt_every,
        );
        Hoster {
            blocks,
            leaves,
            feed,
            kp: Keypair::from_seed(&[9; 32]),
            signer,
            b,
            served: 0,
        }
    }

    fn target(&self) -> SessionTarget {
        SessionTarget {
            feed: PublicKey::from_bytes(&self.feed.verifying_key().to_bytes()).unwrap(),
            hoster: self.kp.public(),
            chain: CHAIN,
            reader: READER,
        }
    }

    fn sync(&self) -> Reply {
        Reply::Sync {
            fork: 0,
            length: self.blocks.len() as u64,
        }
    }

    fn proof(&self, index: u64, fork: u64) -> Option<BlockProof> {
        build::block_proof(&self.leaves, index, fork, |m| {
            Signature(self.feed.sign(m).to_bytes())
        })
    }

    fn upgrade(&self, id: u64, fork: u64) -> Reply {
        // An empty feed has no signed root to send (the model used to panic here: the
        // property test found `n = 0` once a `Sync` made the session ask).
        let Some(p) = self.proof(0, fork) else {
            return Reply::NoData(id);
        };
        let root = p.root;
        Reply::Data(Box::new(Data {
            request: id,
            fork,
            upgrade: Some(UpgradeAnswer {
                start: 0,
                length: root.length,
                nodes: root.roots,
                signature: root.signature.0.to_vec(),
            }),
            ..Data::default()
        }))
    }

    fn receipt(&mut self, index: u64, hash: Hash, out: &mut Vec<Reply>) {
        if let Some(r) = self.signer.served(&self.kp, index, hash) {
            out.push(Reply::Receipt(Box::new(r)));
        }
    }

    /// The replies to one transmit.
    fn answer(&mut self, t: Transmit) -> Vec<Reply> {
        let mut out = Vec::new();
        match t {
            Transmit::Request { id, fork, request } => match request {
                Request::Upgrade { .. } if self.b.no_upgrade => out.push(Reply::NoData(id)),
                Request::Upgrade { .. } => out.push(self.upgrade(id, fork)),
                Request::Block { index, .. } => {
                    if self.served >= self.b.serve {
                        return out;
                    }
                    self.served += 1;
                    let Some(p) = self.proof(index, fork) else {
                        out.push(Reply::NoData(id));
                        return out;
                    };
                    let mut value = self.blocks[index as usize].clone();
                    if self.b.corrupt.contains(&index) {
                        value[0] ^= 0xff;
                    }
                    let hash = leaf_hash(&value);
                    out.push(Reply::Data(Box::new(Data {
                        request: id,
                        fork,
                        block: Some((index, value, p.siblings)),
                        ..Data::default()
                    })));
                    self.receipt(index, hash, &mut out);
                    if let Some(x) = self.b.phantom.take() {
                        self.receipt(x, [1; 32], &mut out);
                    }
                }
                Request::Leaf { index, .. } if self.b.answer_leaves => {
                    let p = self.proof(index, fork).expect("a leaf of the feed");
                    let mut nodes = vec![p.leaf];
                    nodes.extend(p.siblings);
                    out.push(Reply::Data(Box::new(Data {
                        request: id,
                        fork,
                        hash: Some(HashAnswer {
                            index: 2 * index,
                            nodes,
                        }),
                        ..Data::default()
                    })));
                }
                Request::Leaf { .. } => {}
            },
            Transmit::End => out.extend(
                self.signer
                    .flush(&self.kp)
                    .map(|r| Reply::Receipt(Box::new(r))),
            ),
            _ => {}
        }
        out
    }
}

/// A session against a [`Hoster`], on a virtual clock.
struct Sim {
    h: Hoster,
    s: AuditSession,
    now: Instant,
    inbox: VecDeque<Reply>,
    sent: Vec<Transmit>,
    /// The hoster sends raw bytes every second while block requests are in flight.
    trickle: bool,
    /// The hoster's final receipt after `End` is lost.
    drop_final: bool,
    /// When `End` was sent.
    end_at: Option<Instant>,
}

impl Sim {
    fn new(h: Hoster, sample: &[u64], window: usize) -> Self {
        let s = AuditSession::new(
            h.target(),
            sample,
            AuditConfig::default(),
            window,
            Instant(0),
        );
        let mut sim = Sim {
            h,
            s,
            now: Instant(0),
            inbox: VecDeque::new(),
            sent: Vec::new(),
            trickle: false,
            drop_final: false,
            end_at: None,
        };
        sim.now = sim.now + ms(5);
        sim.s.handle_connected(sim.now);
        sim.s.handle_channel_open(sim.now);
        sim.pump();
        sim
    }

    /// Send what the session queued to the hoster.
    fn pump(&mut self) {
        while let Some(t) = self.s.poll_transmit() {
            self.sent.push(t);
            match t {
                Transmit::Hello => self.inbox.push_back(self.h.sync()),
                Transmit::End => {
                    self.end_at = Some(self.now);
                    let replies = self.h.answer(t);
                    if !self.drop_final {
                        self.inbox.extend(replies);
                    }
                }
                _ => self.inbox.extend(self.h.answer(t)),
            }
        }
    }

    /// One input: the next reply, trickled bytes, or the next deadline.
    fn step(&mut self) {
        self.now = self.now + ms(1);
        if let Some(r) = self.inbox.pop_front() {
            deliver(&mut self.s, self.now, &r);
        } else {
            let t = self
                .s
                .poll_timeout()
                .expect("a live session has a deadline");
            if self.trickle && self.s.busy() && self.now + ms(1000) < t {
                self.now = self.now + ms(1000);
                self.s.handle_bytes(self.now, 1);
            } else {
                self.now = self.now.max(t);
                self.s.handle_timeout(self.now);
            }
        }
        self.pump();
    }

    fn run(mut self) -> (AuditOutput, Vec<Transmit>, Instant, Option<Instant>) {
        while !self.s.is_done() {
            self.step();
        }
        assert_eq!(self.s.poll_timeout(), None);
        let (now, end_at) = (self.now, self.end_at);
        (self.s.finish(now), self.sent, now, end_at)
    }
}

fn requests(sent: &[Transmit]) -> Vec<(u64, Request)> {
    sent.iter()
        .filter_map(|t| match t {
            Transmit::Request { id, request, .. } => Some((*id, *request)),
            _ => None,
        })
        .collect()
}

#[test]
fn honest_hoster_every_block_verified_and_receipted() {
    let h = Hoster::new(40, Behaviour::default());
    let blocks = h.blocks.clone();
    let sample: Vec<u64> = (0..40).step_by(3).collect();
    let (out, sent, _, _) = Sim::new(h, &sample, 4).run();
    let sm = out.summary;
    assert_eq!(sm.outcome, Outcome::Completed);
    assert_eq!(sm.requests as usize, sample.len());
    assert_eq!(sm.ok_blocks as usize, sample.len());
    assert_eq!((sm.lacks_data, sm.misbehaved, sm.timeouts), (0, 0, 0));
    let expected: Vec<Option<Hash>> = sample
        .iter()
        .map(|&i| Some(leaf_hash(&blocks[i as usize])))
        .collect();
    assert_eq!(out.received, expected);
    let receipted: usize = out.receipts.iter().map(|r| r.entries.len()).sum();
    assert_eq!(receipted, sample.len());
    assert_eq!(out.bad_receipts, 0);
    assert!(out.fraud.is_empty() && out.unproven.is_empty() && out.failures.is_empty());
    assert_eq!(out.root.as_ref().map(|r| r.length), Some(40));

    // The wire: hello, the ack, the root (id 1), then the sample in order, End, Close.
    assert_eq!(sent[0], Transmit::Hello);
    assert_eq!(
        sent[1],
        Transmit::SyncAck {
            fork: 0,
            remote_length: 40
        }
    );
    let reqs = requests(&sent);
    assert_eq!(reqs[0], (1, Request::Upgrade { length: 40 }));
    for (k, (&i, (id, r))) in sample.iter().zip(&reqs[1..]).enumerate() {
        let nodes = u64::from(path_len(i, 40).unwrap());
        assert_eq!(
            (*id, *r),
            (k as u64 + 2, Request::Block { index: i, nodes })
        );
    }
    assert_eq!(reqs.len(), sample.len() + 1);
    assert_eq!(&sent[sent.len() - 2..], &[Transmit::End, Transmit::Close]);
}

#[test]
fn bad_data_receipted_is_a_verified_fraud_proof() {
    let b = Behaviour {
        corrupt: vec![6],
        ..Behaviour::default()
    };
    let h = Hoster::new(13, b);
    let hoster = h.kp.public();
    let sample: Vec<u64> = (0..13).collect();
    let (out, sent, _, _) = Sim::new(h, &sample, 16).run();
    assert_eq!(out.summary.outcome, Outcome::Completed);
    assert_eq!(out.summary.misbehaved, 1);
    assert_eq!(out.summary.ok_blocks, 12);
    assert_eq!(out.received[6], None);
    assert_eq!(out.failures[0].kind, FailureKind::BadData);
    assert!(
        requests(&sent)
            .iter()
            .any(|(_, r)| matches!(r, Request::Leaf { index: 6, .. }))
    );
    assert_eq!(out.fraud.len(), 1);
    let v = out.fraud[0]
        .verify(&Ed25519Verifier)
        .expect("a valid proof");
    assert_eq!((v.kind, v.offender), (FraudKind::BadData, hoster));
    assert!(out.unproven.is_empty());
    assert_eq!(out.bad_receipts, 0);
}

#[test]
fn bad_data_without_the_true_leaf_is_unproven_after_the_grace() {
    let b = Behaviour {
        corrupt: vec![2],
        answer_leaves: false,
        ..Behaviour::default()
    };
    let h = Hoster::new(8, b);
    let sample: Vec<u64> = (0..8).collect();
    let (out, _, done, end_at) = Sim::new(h, &sample, 3).run();
    assert!(out.fraud.is_empty());
    assert_eq!(out.unproven.len(), 1);
    let (ri, ei, block) = out.unproven[0];
    assert_eq!(block, 2);
    assert_eq!(out.receipts[ri].entries[ei as usize].index, 2);
    // The leaf request was never answered: the session waited out the grace.
    assert_eq!(done, end_at.unwrap() + END_GRACE);
}

#[test]
fn silent_hoster_hits_the_progress_timeout_without_end() {
    let b = Behaviour {
        serve: 0,
        ..Behaviour::default()
    };
    let (out, sent, done, _) = Sim::new(Hoster::new(20, b), &[1, 2, 3, 4, 5, 6], 4).run();
    assert_eq!(out.summary.outcome, Outcome::ProgressTimeout);
    assert_eq!(out.summary.requests, 4);
    assert_eq!(out.summary.timeouts, 4);
    assert!(!sent.contains(&Transmit::End));
    assert_eq!(sent.last(), Some(&Transmit::Close));
    assert!(done >= Instant(0) + AuditConfig::default().progress_timeout());
}

fn trickling(drop_final: bool) -> Sim {
    let b = Behaviour {
        serve: 2,
        receipt_every: 100,
        ..Behaviour::default()
    };
    let sample: Vec<u64> = (0..30).collect();
    let mut sim = Sim::new(Hoster::new(30, b), &sample, 4);
    sim.trickle = true;
    sim.drop_final = drop_final;
    sim
}

#[test]
fn trickling_hoster_stops_at_the_hard_maximum_then_end_and_receipt() {
    let (out, sent, _, end_at) = trickling(false).run();
    let sm = out.summary;
    assert_eq!(sm.outcome, Outcome::HardMaxDuration);
    assert_eq!(sm.ok_blocks, 2);
    // Requests past their deadline were cancelled, and the window refilled.
    assert!(sent.iter().any(|t| matches!(t, Transmit::Cancel { .. })));
    assert!(sm.timeouts > 4);
    let hard = Instant(0) + AuditConfig::default().hard_max();
    assert!(end_at.unwrap() >= hard);
    assert_eq!(&sent[sent.len() - 2..], &[Transmit::End, Transmit::Close]);
    assert_eq!(out.receipts.len(), 1);
    assert_eq!(out.receipts[0].entries.len(), 2);
}

#[test]
fn the_final_receipt_is_awaited_for_the_grace_exactly() {
    let mut sim = trickling(true);
    while sim.end_at.is_none() {
        sim.step();
    }
    let end_at = sim.end_at.unwrap();
    assert!(sim.s.is_ending() && !sim.s.is_done());
    assert_eq!(sim.s.poll_timeout(), Some(end_at + END_GRACE));
    sim.s.handle_timeout(Instant((end_at + END_GRACE).0 - 1));
    assert!(!sim.s.is_done());
    assert_eq!(sim.s.poll_transmit(), None);
    sim.s.handle_timeout(end_at + END_GRACE);
    assert!(sim.s.is_done());
    assert_eq!(sim.s.poll_transmit(), Some(Transmit::Close));
    let out = sim.s.finish(end_at + END_GRACE);
    assert_eq!(out.summary.outcome, Outcome::HardMaxDuration);
    assert!(out.receipts.is_empty());
}

#[test]
fn receipt_for_a_block_not_served_is_a_bad_receipt() {
    let b = Behaviour {
        receipt_every: 1,
        phantom: Some(99),
        ..Behaviour::default()
    };
    let sample: Vec<u64> = (0..5).collect();
    let (out, _, _, _) = Sim::new(Hoster::new(10, b), &sample, 2).run();
    assert_eq!(out.summary.ok_blocks, 5);
    // The phantom entry counts towards "everything receipted": the session ends
    // before the last block's receipt (as the loop in net always did).
    assert_eq!(out.receipts.len(), 5);
    assert_eq!(out.bad_receipts, 1);
    assert!(out.fraud.is_empty());
    let bad = Failure {
        block_index: u64::MAX,
        kind: FailureKind::BadReceipt,
    };
    assert_eq!(out.failures, vec![bad]);
}

#[test]
fn receipts_beyond_served_plus_one_are_bad_unverified() {
    let h = Hoster::new(10, Behaviour::default());
    let mut sim = Sim::new(h, &[0, 1, 2], 1);
    // Hello's sync, then the root.
    sim.step();
    sim.step();
    assert!(sim.s.root.is_some());
    let feed = sim.h.feed.verifying_key().to_bytes();
    let entry = |i| ReceiptEntry {
        index: i,
        hash: [3; 32],
    };
    for seq in 0..3 {
        let r = SignedReceipt::sign(&sim.h.kp, CHAIN, feed, READER, seq, vec![entry(0)]);
        sim.s.handle_receipt(sim.now, r);
    }
    // Nothing served yet: the first is verified and kept, the next two are not.
    assert_eq!(sim.s.out.receipts.len(), 1);
    assert_eq!(sim.s.out.bad_receipts, 2);
    let s = sim.s;
    let out = s.finish(Instant(1));
    // The kept one names a block with a hash never served.
    assert_eq!(out.bad_receipts, 3);
    assert_eq!(
        out.failures
            .iter()
            .filter(|f| f.kind == FailureKind::BadReceipt)
            .count(),
        3
    );
}

#[test]
fn no_data_for_the_upgrade_means_every_block_lacks_data() {
    let b = Behaviour {
        no_upgrade: true,
        ..Behaviour::default()
    };
    let sample = [1, 4, 9];
    let (out, sent, _, _) = Sim::new(Hoster::new(10, b), &sample, 4).run();
    assert_eq!(out.summary.outcome, Outcome::Completed);
    assert_eq!(out.summary.requests, 3);
    assert_eq!(out.summary.lacks_data, 3);
    assert_eq!(out.root, None);
    assert_eq!(requests(&sent).len(), 1);
    assert_eq!(&sent[sent.len() - 2..], &[Transmit::End, Transmit::Close]);
}

#[test]
fn empty_feed_every_block_lacks_data_and_nothing_is_requested() {
    let sample = [0, 1];
    let (out, sent, _, _) = Sim::new(Hoster::new(0, Behaviour::default()), &sample, 4).run();
    assert_eq!(out.summary.outcome, Outcome::Completed);
    assert_eq!(out.summary.lacks_data, 2);
    assert!(requests(&sent).is_empty());
    assert_eq!(
        sent,
        vec![
            Transmit::Hello,
            Transmit::SyncAck {
                fork: 0,
                remote_length: 0
            },
            Transmit::End,
            Transmit::Close
        ]
    );
}

#[test]
fn lost_before_end_is_connect_failed_and_after_end_a_normal_end() {
    let mut sim = Sim::new(Hoster::new(4, Behaviour::default()), &[0, 1], 2);
    sim.step();
    sim.s.handle_lost(sim.now);
    assert!(sim.s.is_done());
    assert_eq!(sim.s.poll_transmit(), None);
    let out = sim.s.finish(sim.now);
    assert_eq!(out.summary.outcome, Outcome::ConnectFailed);

    let b = Behaviour {
        answer_leaves: false,
        corrupt: vec![0],
        ..Behaviour::default()
    };
    let mut sim = Sim::new(Hoster::new(4, b), &[0, 1], 2);
    while sim.end_at.is_none() {
        sim.step();
    }
    sim.s.handle_lost(sim.now);
    assert_eq!(sim.s.poll_transmit(), Some(Transmit::Close));
    let out = sim.s.finish(sim.now);
    assert_eq!(out.summary.outcome, Outcome::Completed);
}

#[test]
fn invalid_feed_key_output_is_connect_failed() {
    let out = AuditOutput::connect_failed(&[1, 2, 3], AuditConfig::default(), Instant(9));
    assert_eq!(out.summary.outcome, Outcome::ConnectFailed);
    assert_eq!(out.received, vec![None; 3]);
    assert_eq!(
        AuditOutput::not_audited().summary.outcome,
        Outcome::NotAudited
    );
}

// ---------------------------------------------------------------------------------
// Random inputs.
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// The honest hoster's next reply.
    Honest,
    Sync(u64, u64),
    Data(Data),
    NoData(u64),
    /// A receipt signed by the hoster (or by another key) for these entries.
    Receipt(u64, Vec<(u64, u8)>, bool),
    BadExtension,
    Bytes(u64),
    Lost,
    Failed,
    Timeout,
    Advance(u32),
}

fn arb_nodes() -> impl Strategy<Value = Vec<TreeNode>> {
    prop::collection::vec(
        (0u64..64, 0u64..200, any::<[u8; 32]>()).prop_map(|(index, size, hash)| TreeNode {
            index,
            size,
            hash,
        }),
        0..4,
    )
}

fn arb_data() -> impl Strategy<Value = Data> {
    let block = prop::option::of((
        0u64..40,
        prop::collection::vec(any::<u8>(), 0..64),
        arb_nodes(),
    ));
    let hash = prop::option::of(
        (0u64..80, arb_nodes()).prop_map(|(index, nodes)| HashAnswer { index, nodes }),
    );
    let upgrade = prop::option::of((0u64..2, 0u64..40, arb_nodes(), 63usize..65).prop_map(
        |(start, length, nodes, sig)| UpgradeAnswer {
            start,
            length,
            nodes,
            signature: vec![1; sig],
        },
    ));
    (0u64..40, 0u64..2, block, hash, upgrade, any::<bool>()).prop_map(
        |(request, fork, block, hash, upgrade, malformed)| Data {
            request,
            fork,
            block,
            hash,
            upgrade,
            malformed,
        },
    )
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Honest),
        1 => (0u64..2, 0u64..40).prop_map(|(f, l)| Op::Sync(f, l)),
        2 => arb_data().prop_map(Op::Data),
        1 => (0u64..40).prop_map(Op::NoData),
        2 => (0u64..4, prop::collection::vec((0u64..40, any::<u8>()), 0..3), any::<bool>())
            .prop_map(|(seq, e, ours)| Op::Receipt(seq, e, ours)),
        1 => Just(Op::BadExtension),
        2 => (0u64..3).prop_map(Op::Bytes),
        1 => Just(Op::Lost),
        1 => Just(Op::Failed),
        2 => Just(Op::Timeout),
        2 => (0u32..30_000).prop_map(Op::Advance),
    ]
}

fn check_bounds(s: &AuditSession, sample: usize) {
    assert!(s.order.len() <= s.window);
    assert!(s.leaves_pending <= s.failed.len());
    assert!(s.in_flight() <= s.window + s.failed.len() + 1);
    assert!(s.pending.len() <= 1 + 2 * sample);
    assert!(s.todo.len() <= sample);
    if s.is_done() {
        assert_eq!(s.poll_timeout(), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_inputs_never_panic_and_stay_bounded(
        n in 0usize..30,
        sample in prop::collection::vec(0u64..40, 0..24),
        window in 0usize..8,
        connect in any::<bool>(),
        ops in prop::collection::vec(arb_op(), 0..80),
    ) {
        let mut sample = sample;
        sample.sort_unstable();
        let b = Behaviour { corrupt: vec![1, 5], ..Behaviour::default() };
        let mut sim = Sim::new(Hoster::new(n, b), &sample, window);
        if !connect {
            // A fresh session that never reached the channel.
            sim.s = AuditSession::new(sim.h.target(), &sample, AuditConfig::default(), window, Instant(0));
            sim.inbox.clear();
        }
        let feed = sim.h.feed.verifying_key().to_bytes();
        let other = Keypair::from_seed(&[10; 32]);
        for op in ops {
            let now = sim.now;
            match op {
                Op::Honest => {
                    if let Some(r) = sim.inbox.pop_front() {
                        deliver(&mut sim.s, now, &r);
                    }
                }
                Op::Sync(f, l) => sim.s.handle_sync(now, f, l),
                Op::Data(d) => sim.s.handle_data(now, d.answer()),
                Op::NoData(id) => sim.s.handle_no_data(now, id),
                Op::Receipt(seq, entries, ours) => {
                    let kp = if ours { &sim.h.kp } else { &other };
                    let entries = entries
                        .into_iter()
                        .map(|(index, h)| ReceiptEntry { index, hash: [h; 32] })
                        .collect();
                    let r = SignedReceipt::sign(kp, CHAIN, feed, READER, seq, entries);
                    sim.s.handle_receipt(now, r);
                }
                Op::BadExtension => sim.s.handle_bad_extension(now),
                Op::Bytes(k) => sim.s.handle_bytes(now, k),
                Op::Lost => sim.s.handle_lost(now),
                Op::Failed => sim.s.handle_failed(now),
                Op::Timeout => {
                    if let Some(t) = sim.s.poll_timeout() {
                        sim.now = sim.now.max(t);
                    }
                    sim.s.handle_timeout(sim.now);
                }
                Op::Advance(k) => sim.now = sim.now + ms(u64::from(k)),
            }
            sim.pump();
            check_bounds(&sim.s, sample.len());
        }
        let out = sim.s.finish(sim.now);
        let sm = out.summary;
        prop_assert!(sm.ok_blocks + sm.lacks_data + sm.misbehaved + sm.timeouts <= sm.requests);
        prop_assert!(sm.requests as usize <= sample.len());
        prop_assert_eq!(out.received.len(), sample.len());
        prop_assert!(out.failures.len() <= MAX_FAILURES);
        for f in &out.fraud {
            prop_assert!(f.verify(&Ed25519Verifier).is_ok());
        }
    }
}
