//! Hostile input to `hypercore-protocol`'s decoder (DESIGN §12.6): the aborts and panics
//! it has without our guard (each reproduced in a child process, so the abort is
//! observed rather than suffered), the guard refusing them, the guard accepting every
//! frame the real encoder writes, the guard agreeing with the real decoder on mutated
//! frames under a memory limit, and a real listener surviving a hostile client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::*;
use datdot_net::frame::FrameShared;
use datdot_net::guard::{GuardError, GuardedCipher, MAX_CHANNEL_ID, check_frame};
use datdot_net::{Expect, FetchOptions, FrameError, Misbehaviour, SessionError, dial, fetch};
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use hypercore_handshake::{CipherEvent, CipherTrait};
use hypercore_protocol::schema::{
    Bitfield, Cancel, Data, Extension, NoData, Range, Request, Synchronize, Unwant, Want,
};
use hypercore_protocol::{Channel, Event, Message, Protocol};
use hypercore_schema::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Node, RequestBlock, RequestSeek, RequestUpgrade,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

// ---------------------------------------------------------------------------------------
// An in-memory plaintext link implementing `CipherTrait`: what the Noise cipher hands the
// protocol, without the Noise. Two ends make a pair of real `Protocol`s; one end preloaded
// with frames replays them into one.

#[derive(Default)]
struct Wire {
    queue: Mutex<VecDeque<Vec<u8>>>,
    /// Every frame ever sent on this wire.
    log: Mutex<Vec<Vec<u8>>>,
    /// While set, the sending end reports backpressure (`poll_ready` pending).
    blocked: AtomicBool,
}

struct End {
    rx: Arc<Wire>,
    tx: Arc<Wire>,
    local: [u8; 32],
    remote: [u8; 32],
    initiator: bool,
}

impl Stream for End {
    type Item = CipherEvent;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        match self.rx.queue.lock().unwrap().pop_front() {
            Some(f) => Poll::Ready(Some(CipherEvent::Message(f))),
            None => Poll::Pending,
        }
    }
}

impl Sink<Vec<u8>> for End {
    type Error = io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.tx.blocked.load(Ordering::Relaxed) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }
    fn start_send(self: Pin<&mut Self>, f: Vec<u8>) -> io::Result<()> {
        self.tx.log.lock().unwrap().push(f.clone());
        self.tx.queue.lock().unwrap().push_back(f);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl CipherTrait for End {
    fn remote_public_key(&self) -> Option<[u8; 32]> {
        Some(self.remote)
    }
    fn local_public_key(&self) -> [u8; 32] {
        self.local
    }
    fn handshake_hash(&self) -> Option<Vec<u8>> {
        Some(vec![0x5a; 64])
    }
    fn is_initiator(&self) -> bool {
        self.initiator
    }
}

/// A responder end that yields `frames`, then nothing.
fn replay(frames: Vec<Vec<u8>>) -> End {
    let rx = Arc::new(Wire::default());
    rx.queue.lock().unwrap().extend(frames);
    End {
        rx,
        tx: Arc::new(Wire::default()),
        local: [2; 32],
        remote: [1; 32],
        initiator: false,
    }
}

/// Poll `p` until it has nothing more to say (no waker needed: the link never parks).
fn poll_all(p: &mut Protocol) -> Vec<io::Result<Event>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..100_000 {
        match Pin::new(&mut *p).poll_next(&mut cx) {
            Poll::Ready(Some(ev)) => out.push(ev),
            _ => break,
        }
    }
    out
}

/// Replay `frame` into an *unguarded* real `Protocol`: `Ok` if it decoded (messages to
/// a channel that was opened but not accepted locally count as decoded).
fn unguarded_decode(frame: &[u8]) -> Result<(), String> {
    let mut p = Protocol::new(Box::new(replay(vec![frame.to_vec()])));
    for ev in poll_all(&mut p) {
        if let Err(e) = ev {
            let e = e.to_string();
            if !e.contains("Channel is not open") {
                return Err(e);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The attacks, byte by byte (compact-encoding varints: < 0xfd is the value, 0xff then a
// u64 LE).

const CHILD: &str = "DATDOT_HOSTILE_DECODE_CHILD";
const TWO_40: [u8; 8] = (1u64 << 40).to_le_bytes();

/// A 16-byte frame: channel 1, `Data { request 0, fork 0, block { index 0, value [],
/// nodes: 2^40 } }`.
fn node_bomb() -> Vec<u8> {
    let mut f = vec![1, 3, 1, 0, 0, 0, 0, 0xff];
    f.extend_from_slice(&TWO_40);
    f
}

/// Channel 1, `Bitfield { start 0, bitfield: 2^40 words }`.
fn bitfield_bomb() -> Vec<u8> {
    let mut f = vec![1, 7, 0, 0xff];
    f.extend_from_slice(&TWO_40);
    f
}

/// A channel open for channel id 2^40 with a well-formed discovery key.
fn open_bomb() -> Vec<u8> {
    let mut f = vec![0, 1, 0xff];
    f.extend_from_slice(&TWO_40);
    f.push(15);
    f.extend_from_slice(b"hypercore/alpha");
    f.push(32);
    f.extend_from_slice(&[9; 32]);
    f
}

/// Channel 1, `Data { block { index 0, value [], nodes: [Node { index u64::MAX, .. }] } }`.
fn deep_node() -> Vec<u8> {
    let mut f = vec![1, 3, 1, 0, 0, 0, 0, 1, 0xff];
    f.extend_from_slice(&u64::MAX.to_le_bytes());
    f.push(1);
    f.extend_from_slice(&[3; 32]);
    f
}

fn attack(kind: &str) -> Vec<u8> {
    match kind {
        "nodes" => node_bomb(),
        "bitfield" => bitfield_bomb(),
        "open" => open_bomb(),
        "deep" => deep_node(),
        other => panic!("unknown attack {other}"),
    }
}

/// Child half of the `*_unguarded` tests: feed one attack frame to an unguarded real
/// `Protocol`. Does nothing unless the parent set [`CHILD`].
#[test]
#[ignore = "run by the *_unguarded tests in a child process"]
fn unguarded_decode_child() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let frame = attack(&kind);
    eprintln!("child: decoding {kind} frame {frame:02x?}");
    let mut p = Protocol::new(Box::new(replay(vec![frame])));
    let events = poll_all(&mut p);
    eprintln!("child: survived with {} events", events.len());
}

fn run_child(test: &str, env: (&str, &str), memory_limit_kib: Option<u64>) -> Output {
    let exe = std::env::current_exe().unwrap();
    let args = [
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ];
    let mut cmd = match memory_limit_kib {
        Some(kib) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(&exe)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(&exe);
            c.args(args);
            c
        }
    };
    cmd.env(env.0, env.1).output().unwrap()
}

/// The child was killed by SIGABRT after asking the allocator for `bytes`.
fn assert_aborted_allocating(kind: &str, bytes: u64) {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("unguarded_decode_child", (CHILD, kind), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "SIGABRT expected: {stderr}");
    assert!(
        stderr.contains(&format!("memory allocation of {bytes} bytes failed")),
        "{stderr}"
    );
    assert!(!stderr.contains("child: survived"), "{stderr}");
}

/// `Vec::<Node>::with_capacity(2^40)`: 2^40 × 80-byte `Node`s.
#[test]
fn node_count_bomb_aborts_the_process_unguarded() {
    assert_aborted_allocating("nodes", (1u64 << 40) * 80);
}

/// `Vec::<u32>::with_capacity(2^40)`.
#[test]
fn bitfield_bomb_aborts_the_process_unguarded() {
    assert_aborted_allocating("bitfield", (1u64 << 40) * 4);
}

/// `ChannelMap::alloc_remote` resizes a `Vec<Option<String>>` to the channel id + 1.
#[test]
fn channel_id_bomb_aborts_the_process_unguarded() {
    assert_aborted_allocating("open", ((1u64 << 40) + 1) * 24);
}

/// `Node::new` → `flat_tree::parent(u64::MAX)` shifts by 65: a panic with overflow
/// checks on (test and fuzz builds), a wrong parent without.
#[test]
fn deep_node_index_panics_the_decoder_unguarded() {
    use std::os::unix::process::ExitStatusExt;
    let out = run_child("unguarded_decode_child", (CHILD, "deep"), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "{stderr}");
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("with overflow"), "{stderr}");
    assert!(stderr.contains("flat-tree"), "{stderr}");
}

/// Each attack through the guarded cipher: refused, recorded as the connection's frame
/// error, nothing delivered, the stream pending from then on.
#[test]
fn guarded_cipher_refuses_every_attack() {
    for kind in ["nodes", "bitfield", "open", "deep"] {
        let frame = attack(kind);
        let refusal = check_frame(&frame).unwrap_err();
        let shared = Arc::new(FrameShared::default());
        // The attack, then an honest frame (Cancel 1 on channel 1) that must not arrive.
        let end = replay(vec![frame, vec![1, 2, 1]]);
        let rx = end.rx.clone();
        let mut p = Protocol::new(Box::new(GuardedCipher::new(end, shared.clone())));
        let events = poll_all(&mut p);
        assert!(
            events.iter().all(|e| matches!(e, Ok(Event::Handshake(_)))),
            "{kind}: {events:?}"
        );
        assert_eq!(
            shared.error(),
            Some(FrameError::Refused(refusal.clone())),
            "{kind}"
        );
        assert_eq!(
            rx.queue.lock().unwrap().len(),
            1,
            "{kind}: nothing read after"
        );
        let e = SessionError::PeerMisbehaved(Misbehaviour::Frame(FrameError::Refused(refusal)));
        assert!(e.to_string().starts_with("peer misbehaved"), "{e}");
    }
    assert!(matches!(
        check_frame(&open_bomb()),
        Err(GuardError::ChannelIdTooLarge {
            max: MAX_CHANNEL_ID,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------
// Real encoder: two real `Protocol`s on an in-memory link, both guarded.

struct Pair {
    a: Protocol,
    b: Protocol,
    a_to_b: Arc<Wire>,
    b_to_a: Arc<Wire>,
    sa: Arc<FrameShared>,
    sb: Arc<FrameShared>,
}

impl Pair {
    fn new() -> Pair {
        let (a_to_b, b_to_a) = (Arc::new(Wire::default()), Arc::new(Wire::default()));
        let (ka, kb) = ([0xa1; 32], [0xb2; 32]);
        let ea = End {
            rx: b_to_a.clone(),
            tx: a_to_b.clone(),
            local: ka,
            remote: kb,
            initiator: true,
        };
        let eb = End {
            rx: a_to_b.clone(),
            tx: b_to_a.clone(),
            local: kb,
            remote: ka,
            initiator: false,
        };
        let (sa, sb) = (
            Arc::new(FrameShared::default()),
            Arc::new(FrameShared::default()),
        );
        Pair {
            a: Protocol::new(Box::new(GuardedCipher::new(ea, sa.clone()))),
            b: Protocol::new(Box::new(GuardedCipher::new(eb, sb.clone()))),
            a_to_b,
            b_to_a,
            sa,
            sb,
        }
    }

    /// Poll both sides until the link is quiet; events of A and of B.
    fn pump(&mut self) -> (Vec<Event>, Vec<Event>) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            let a = poll_all(&mut self.a);
            let b = poll_all(&mut self.b);
            let quiet = a.is_empty()
                && b.is_empty()
                && self.a_to_b.queue.lock().unwrap().is_empty()
                && self.b_to_a.queue.lock().unwrap().is_empty();
            ea.extend(a.into_iter().map(|e| e.expect("protocol A error")));
            eb.extend(b.into_iter().map(|e| e.expect("protocol B error")));
            if quiet {
                break;
            }
        }
        (ea, eb)
    }

    /// Open a channel for `key` on both sides; (A's channel, B's channel).
    fn open(&mut self, key: [u8; 32]) -> (Channel, Channel) {
        self.a.open(key).now_or_never().unwrap().unwrap();
        let (_, eb) = self.pump();
        assert!(
            eb.iter().any(|e| matches!(e, Event::DiscoveryKey(_))),
            "{eb:?}"
        );
        self.b.open(key).now_or_never().unwrap().unwrap();
        let (ea, eb) = self.pump();
        let chan = |evs: Vec<Event>| {
            evs.into_iter()
                .find_map(|e| match e {
                    Event::Channel(c) => Some(c),
                    _ => None,
                })
                .expect("channel event")
        };
        (chan(ea), chan(eb))
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        let mut all = self.a_to_b.log.lock().unwrap().clone();
        all.extend(self.b_to_a.log.lock().unwrap().iter().cloned());
        all
    }
}

fn drain(rx: &hypercore_protocol::ChannelReceiver<Message>) -> Vec<Message> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..300,
        1 => 0xfcu64..0x1_0002,
        1 => 0xffff_fff0u64..0x1_0000_0010,
        1 => any::<u64>(),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    // Indices whose depth flat-tree can handle (< 62 trailing ones), as real trees have.
    (varint(), varint(), any::<[u8; 32]>()).prop_map(|(index, length, hash)| {
        let index = if (!index).trailing_zeros() >= 62 {
            index & !(1 << 61)
        } else {
            index
        };
        Node::new(index, hash.to_vec(), length)
    })
}

fn nodes() -> impl Strategy<Value = Vec<Node>> {
    proptest::collection::vec(node(), 0..5)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn request_block() -> impl Strategy<Value = Option<RequestBlock>> {
    proptest::option::of(
        (varint(), varint()).prop_map(|(index, nodes)| RequestBlock { index, nodes }),
    )
}

fn message() -> impl Strategy<Value = Message> {
    let sync = (varint(), varint(), varint(), any::<[bool; 3]>()).prop_map(|(f, l, r, b)| {
        Message::Synchronize(Synchronize {
            fork: f,
            length: l,
            remote_length: r,
            downloading: b[0],
            uploading: b[1],
            can_upgrade: b[2],
        })
    });
    let request = (
        (varint(), varint(), request_block(), request_block()),
        proptest::option::of(varint()),
        proptest::option::of((varint(), varint())),
        any::<bool>(),
        varint(),
    )
        .prop_map(
            |((id, fork, block, hash), seek, upgrade, manifest, priority)| {
                Message::Request(Request {
                    id,
                    fork,
                    block,
                    hash,
                    seek: seek.map(|bytes| RequestSeek { bytes }),
                    upgrade: upgrade.map(|(start, length)| RequestUpgrade { start, length }),
                    manifest,
                    priority,
                })
            },
        );
    let data = (
        (varint(), varint()),
        proptest::option::of((varint(), bytes(300), nodes())),
        proptest::option::of((varint(), nodes())),
        proptest::option::of((varint(), nodes())),
        proptest::option::of((varint(), varint(), nodes(), nodes(), bytes(80))),
    )
        .prop_map(|((request, fork), block, hash, seek, upgrade)| {
            Message::Data(Data {
                request,
                fork,
                block: block.map(|(index, value, nodes)| DataBlock {
                    index,
                    value,
                    nodes,
                }),
                hash: hash.map(|(index, nodes)| DataHash { index, nodes }),
                seek: seek.map(|(bytes, nodes)| DataSeek { bytes, nodes }),
                upgrade: upgrade.map(|(start, length, nodes, additional_nodes, signature)| {
                    DataUpgrade {
                        start,
                        length,
                        nodes,
                        additional_nodes,
                        signature,
                    }
                }),
            })
        });
    prop_oneof![
        sync,
        request,
        data,
        varint().prop_map(|request| Message::Cancel(Cancel { request })),
        varint().prop_map(|request| Message::NoData(NoData { request })),
        (varint(), varint()).prop_map(|(start, length)| Message::Want(Want { start, length })),
        (varint(), varint()).prop_map(|(start, length)| Message::Unwant(Unwant { start, length })),
        (varint(), proptest::collection::vec(any::<u32>(), 0..40))
            .prop_map(|(start, bitfield)| Message::Bitfield(Bitfield { start, bitfield })),
        (any::<bool>(), varint(), prop_oneof![Just(1u64), varint()]).prop_map(
            |(drop, start, length)| Message::Range(Range {
                drop,
                start,
                length
            })
        ),
        ("\\PC{0,40}", bytes(200))
            .prop_map(|(name, message)| Message::Extension(Extension { name, message })),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 128, ..Config::default() })]

    /// Everything the real encoder writes (opens with capabilities, single messages,
    /// batches, closes, on up to three channels) passes the guard, and the guarded peer
    /// receives exactly what was sent.
    #[test]
    fn real_encoder_frames_pass_the_guard(
        sends in proptest::collection::vec(
            (0usize..3, proptest::collection::vec(message(), 1..6)),
            1..6,
        ),
        close in any::<bool>(),
    ) {
        let mut pair = Pair::new();
        let chans: Vec<(Channel, Channel)> =
            (0..3u8).map(|i| pair.open([i + 1; 32])).collect();
        let mut rxs: Vec<_> = chans.into_iter().map(|(a, mut b)| {
            let rx = b.take_receiver().unwrap();
            (a, b, rx)
        }).collect();
        for (ch, msgs) in &sends {
            rxs[*ch].0.send_batch(msgs).now_or_never().unwrap().unwrap();
            pair.pump();
            prop_assert_eq!(&drain(&rxs[*ch].2), msgs);
        }
        if close {
            for (a, _, _) in &mut rxs {
                a.close().now_or_never().unwrap().unwrap();
            }
            pair.pump();
        }
        prop_assert_eq!(pair.sa.error(), None);
        prop_assert_eq!(pair.sb.error(), None);
        for f in pair.frames() {
            prop_assert_eq!(check_frame(&f), Ok(()), "frame {:02x?}", f);
        }
    }
}

/// Under backpressure the real encoder batches messages of two channels into one frame
/// (`[0, 0, ch, len, msg, …, 0, ch2, len, msg, …]`) and the real decoder misreads it: it
/// takes the `0` separator itself as the new channel id. The guard follows the decoder,
/// so whatever it accepts of such a frame, the decoder walks the same way.
#[test]
fn cross_channel_batches_are_misread_upstream() {
    let mut pair = Pair::new();
    let (a1, mut b1) = pair.open([1; 32]);
    let (a2, mut b2) = pair.open([2; 32]);
    let (r1, r2) = (b1.take_receiver().unwrap(), b2.take_receiver().unwrap());
    let before = pair.a_to_b.log.lock().unwrap().len();
    pair.a_to_b.blocked.store(true, Ordering::Relaxed);
    let m1 = vec![Message::Want(Want {
        start: 0,
        length: 5,
    })];
    let m2 = vec![Message::Cancel(Cancel { request: 7 })];
    a1.send_batch(&m1).now_or_never().unwrap().unwrap();
    a2.send_batch(&m2).now_or_never().unwrap().unwrap();
    poll_all(&mut pair.a);
    pair.a_to_b.blocked.store(false, Ordering::Relaxed);
    poll_all(&mut pair.a);
    let frame = pair.a_to_b.log.lock().unwrap()[before..].to_vec();
    assert_eq!(frame.len(), 1, "one batched frame: {frame:02x?}");
    let frame = &frame[0];
    // Batch on channel 1: Want{0,5} (3 bytes), then channel 2: Cancel{7} (2 bytes).
    let (c1, c2) = (a1.id() as u8, a2.id() as u8);
    assert_eq!(frame, &vec![0, 0, c1, 3, 5, 0, 5, 0, c2, 2, 2, 7]);
    // The decoder reads the separator `0` as channel 0, then `c2` as a length and
    // `2, 2` as a Cancel of request 2 on channel 0, then `7` as the length of a message
    // that is not there: an error. The guard says the same.
    assert!(unguarded_decode(frame).is_err());
    let verdict = check_frame(frame);
    assert!(
        matches!(
            verdict,
            Err(GuardError::LengthTooLarge {
                len: 7,
                remaining: 0,
                ..
            })
        ),
        "{verdict:?}"
    );
    let _ = pair.b.next().now_or_never();
    assert!(drain(&r2).is_empty(), "channel 2 never gets its message");
    let _ = r1;
}

// ---------------------------------------------------------------------------------------
// Differential: mutated real frames, guard vs. unguarded decoder, in a child process under
// a 2 GiB address-space limit (an accepted frame that made the decoder allocate more
// would abort the child).

/// Seeds: real frames of a session carrying every message type.
fn seed_frames() -> Vec<Vec<u8>> {
    let mut runner = TestRunner::deterministic();
    let mut pair = Pair::new();
    let (a, _b) = pair.open([1; 32]);
    let strategy = proptest::collection::vec(message(), 1..4);
    for _ in 0..64 {
        let msgs = strategy.new_tree(&mut runner).unwrap().current();
        a.send_batch(&msgs).now_or_never().unwrap().unwrap();
        pair.pump();
    }
    a.close().now_or_never().unwrap().unwrap();
    pair.pump();
    pair.frames()
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    /// Replace a byte with a varint prefix and 8 chosen bytes (a huge count or length).
    Huge(usize, u8, u64),
}

fn mutate(mut f: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match m {
            Mutation::Set(i, b) if !f.is_empty() => {
                let i = at(*i, f.len());
                f[i] = *b;
            }
            Mutation::Insert(i, bs) => {
                let i = at(*i, f.len() + 1);
                f.splice(i..i, bs.iter().copied());
            }
            Mutation::Truncate(n) => {
                let n = at(*n, f.len() + 1);
                f.truncate(n);
            }
            Mutation::Huge(i, prefix, v) => {
                let i = at(*i, f.len() + 1);
                let mut bs = vec![*prefix];
                bs.extend_from_slice(&v.to_le_bytes());
                f.splice(i..(i + 1).min(f.len()), bs);
            }
            _ => {}
        }
    }
    f
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<usize>(), bytes(40)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), prop_oneof![Just(0xfdu8), Just(0xfe), Just(0xff)], varint())
            .prop_map(|(i, p, v)| Mutation::Huge(i, p, v)),
    ]
}

/// Child half of [`guard_agrees_with_the_decoder_under_a_memory_limit`].
#[test]
#[ignore = "run by guard_agrees_with_the_decoder_under_a_memory_limit in a child process"]
fn differential_child() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let seeds = seed_frames();
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    let (accepted, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let frame = prop_oneof![
        4 => (
            proptest::sample::select(seeds),
            proptest::collection::vec(mutation(), 0..4),
        )
            .prop_map(|(f, ms)| mutate(f, &ms)),
        1 => bytes(200),
    ];
    let result = runner.run(&frame, |f| {
        match check_frame(&f) {
            // What the guard accepts, the decoder decodes (and, by the memory limit,
            // without a huge allocation).
            Ok(()) => {
                accepted.set(accepted.get() + 1);
                prop_assert_eq!(unguarded_decode(&f), Ok(()), "accepted {:02x?}", f);
            }
            // Refusals the decoder would also fail on (safe to run: no huge count).
            Err(
                GuardError::Truncated { .. }
                | GuardError::LengthTooLarge { .. }
                | GuardError::UnknownType { .. }
                | GuardError::UnknownSpecial { .. }
                | GuardError::NotUtf8 { .. }
                | GuardError::DiscoveryKeyLength { .. },
            ) => {
                refused.set(refused.get() + 1);
                prop_assert!(unguarded_decode(&f).is_err(), "refused {:02x?}", f);
            }
            Err(GuardError::CountTooLarge { count, .. }) if count < 1 << 16 => {
                refused.set(refused.get() + 1);
                prop_assert!(unguarded_decode(&f).is_err(), "refused {:02x?}", f);
            }
            // Would abort or panic the decoder, or is merely over our limits.
            Err(_) => refused.set(refused.get() + 1),
        }
        Ok(())
    });
    println!(
        "differential: accepted {}, refused {}",
        accepted.get(),
        refused.get()
    );
    result.unwrap();
}

#[test]
fn guard_agrees_with_the_decoder_under_a_memory_limit() {
    let out = run_child("differential_child", (CHILD, "1"), Some(2 << 20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("differential:").map(|(_, counts)| counts))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(nums[0] >= 100 && nums[1] >= 100, "not vacuous: {line}");
}

// ---------------------------------------------------------------------------------------
// A real listener and a hostile client.

/// A client that completes the Noise handshake with a real listener and then sends the
/// 2^40-node `Data` frame: the server process survives (this test is that process), the
/// session ends as peer misbehaviour naming the refusal, the hostile connection is
/// closed, and an honest reader then fetches the whole feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_bomb_after_handshake_is_refused_and_server_keeps_serving() {
    let (mut srv, key) = serve_feed(40, 2048).await;

    let (mut cipher, shared) = raw_handshake(srv.addr).await;
    cipher.send(node_bomb()).await.unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(30), srv.sessions.recv())
        .await
        .expect("the server ends the session")
        .unwrap();
    match ended {
        Err(SessionError::PeerMisbehaved(Misbehaviour::Frame(FrameError::Refused(
            GuardError::CountTooLarge { count, .. },
        )))) => assert_eq!(count, 1 << 40),
        other => panic!("expected a refused frame, got {other:?}"),
    }
    // The server closed the hostile connection: the client reads EOF.
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            tokio::select! {
                _ = cipher.next() => {}
                e = shared.failed() => break e,
            }
        }
    })
    .await
    .expect("the hostile connection is closed");
    assert_eq!(closed, FrameError::Closed);

    // An honest reader is served the feed in full, through the guard on both sides.
    let conn = dial(srv.addr, Expect::Key(srv.key), &test_limits())
        .await
        .unwrap();
    let core = reader(key).await;
    let opts = FetchOptions {
        hoster: Some(srv.signer.public()),
        chain: Some(CHAIN),
        ..FetchOptions::default()
    };
    let report = fetch(conn, key, &core, &opts, &mut |_| {}).await.unwrap();
    assert_eq!(report.blocks, 40);
    for i in 0..40 {
        assert_eq!(
            core.get(i).await.unwrap().unwrap(),
            block(i, 2048),
            "block {i}"
        );
    }
    assert!(!report.receipts.is_empty());
}
