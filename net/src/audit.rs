//! The auditing reader (attestors): the I/O of an audit. Dial a hoster with a fresh
//! identity, open the feed's channel like an ordinary Hypercore reader, and pump the
//! sans-IO [`AuditSession`] (`datdot_protocol::audit::session`), which takes every
//! decision: the request plan (the signed root first, then the sampled blocks with
//! their uncle paths in a window), cancelling what times out, the true-leaf requests
//! for blocks that failed verification, `End` and the wait for the final receipt, and
//! the judgement of receipts into bad-data fraud proofs. This file converts wire
//! messages into the session's inputs and its outputs into messages, counts raw socket
//! bytes, runs the timers and drops a hoster that floods the channel.
//!
//! Unlike [`crate::fetch()`], one bad or missing block does not end the session: the
//! report must say how much of the sample the hoster could serve. [`prove_leaf`] asks
//! another peer for a block's true leaf when the hoster did not prove it.
//!
//! Time to first byte and progress count raw bytes arriving on the socket (sampled at
//! every wake-up and every [`TICK`]), attributed by the session to the oldest request
//! in flight: a hoster that trickles a byte at a time makes progress and is stopped by
//! the hard maximum, one that sends nothing by the progress timeout.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use datdot_protocol::audit::session::{self, AuditSession, SessionTarget, Transmit};
use datdot_protocol::audit::{AuditConfig, BlockAnswer, DataAnswer, HashAnswer, UpgradeAnswer};
use datdot_protocol::identity::{ChainId, PublicKey};
use datdot_protocol::time::Instant;
use datdot_protocol::tree::{BlockProof, SignedTreeRoot, TreeNode, path_len};
use futures::StreamExt;
use hypercore_protocol::schema::{Cancel, Data, Request, Synchronize};
use hypercore_protocol::{Channel, Event, Message, discovery_key};
use hypercore_schema::{RequestBlock, RequestUpgrade};
use tracing::debug;

use crate::conn::{Connection, Expect, dial};
use crate::ext::DatdotMsg;
use crate::limits::Limits;

pub use datdot_protocol::audit::session::{AuditOutput, END_GRACE, MAX_SAMPLE};

/// How often raw socket progress is sampled while requests are in flight.
pub const TICK: Duration = Duration::from_millis(10);

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

/// A `Data` message as the session reads it. An upgrade or hash part with a node hash
/// that is not 32 bytes proves nothing and is left out; a block part with one is
/// marked `malformed` (it was still served).
fn answer(d: &Data) -> DataAnswer<'_> {
    let mut malformed = false;
    let block = d.block.as_ref().map(|b| BlockAnswer {
        index: b.index,
        value: &b.value,
        nodes: nodes(&b.nodes).unwrap_or_else(|| {
            malformed = true;
            Vec::new()
        }),
    });
    DataAnswer {
        request: d.request,
        fork: d.fork,
        block,
        hash: d.hash.as_ref().and_then(hash_answer),
        upgrade: d.upgrade.as_ref().and_then(upgrade_answer),
        malformed,
    }
}

fn hash_answer(h: &hypercore_schema::DataHash) -> Option<HashAnswer> {
    Some(HashAnswer {
        index: h.index,
        nodes: nodes(&h.nodes)?,
    })
}

fn upgrade_answer(u: &hypercore_schema::DataUpgrade) -> Option<UpgradeAnswer> {
    Some(UpgradeAnswer {
        start: u.start,
        length: u.length,
        nodes: nodes(&u.nodes)?,
        signature: u.signature.clone(),
    })
}

/// The signed root carried by an upgrade from 0 (its nodes are the full roots).
fn signed_root(d: &Data, feed: &PublicKey) -> Result<SignedTreeRoot, String> {
    let u = d.upgrade.as_ref().ok_or("answer without the upgrade")?;
    let u = upgrade_answer(u).ok_or("malformed root node")?;
    session::signed_root(&u, d.fork, feed).map_err(str::to_string)
}

/// The true leaf of block `index` from a hash answer, checked against the signed root.
fn leaf_proof(d: &Data, index: u64, root: &SignedTreeRoot) -> Option<BlockProof> {
    session::leaf_proof(&hash_answer(d.hash.as_ref()?)?, index, root)
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

/// A reader's first message on a channel: nothing held, downloading.
fn reader_hello() -> Message {
    sync_message(0, 0)
}

fn sync_message(fork: u64, remote_length: u64) -> Message {
    Message::Synchronize(Synchronize {
        fork,
        length: 0,
        remote_length,
        downloading: true,
        uploading: false,
        can_upgrade: true,
    })
}

/// The wire message of a session's transmit (`Close` is not a message).
fn message(t: Transmit) -> Option<Message> {
    let r = match t {
        Transmit::Hello => return Some(reader_hello()),
        Transmit::SyncAck {
            fork,
            remote_length,
        } => return Some(sync_message(fork, remote_length)),
        Transmit::Request {
            id,
            fork,
            request: what,
        } => match what {
            session::Request::Upgrade { length } => upgrade_request(id, fork, length),
            session::Request::Block { index, nodes } => Request {
                block: Some(RequestBlock { index, nodes }),
                ..request(id, fork)
            },
            session::Request::Leaf { index, nodes } => leaf_request(id, fork, index, nodes),
        },
        Transmit::Cancel { id } => return Some(Message::Cancel(Cancel { request: id })),
        Transmit::End => return Some(DatdotMsg::End.to_message()),
        Transmit::Close => return None,
    };
    Some(Message::Request(r))
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

fn deadline_of(s: &AuditSession, epoch: std::time::Instant) -> Option<tokio::time::Instant> {
    s.poll_timeout()
        .map(|t| tokio::time::Instant::from_std(epoch + Duration::from_micros(t.as_micros())))
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => futures::future::pending().await,
    }
}

/// Audit `target` with `plan`. Never fails: every way the hoster can fail is in the
/// output's summary and failures.
pub async fn audit(target: &AuditTarget, plan: &AuditPlan, limits: &Limits) -> AuditOutput {
    let epoch = plan.epoch;
    let Ok(feed) = PublicKey::from_bytes(&target.feed) else {
        return AuditOutput::connect_failed(&plan.sample, plan.config, now(epoch));
    };
    let session_target = SessionTarget {
        feed,
        hoster: target.hoster,
        chain: target.chain,
        // Learnt from the handshake.
        reader: [0; 32],
    };
    let window = plan.window.clamp(1, limits.request_window.max(1));
    let mut s = AuditSession::new(
        session_target,
        &plan.sample,
        plan.config,
        window,
        now(epoch),
    );
    // Connect, bounded by the audit's own progress deadline and hard maximum.
    let conn = tokio::select! {
        c = dial(target.addr, Expect::Key(target.noise_key), limits) => c,
        _ = sleep_until(deadline_of(&s, epoch)) => {
            s.handle_timeout(now(epoch));
            return s.finish(now(epoch));
        }
    };
    match conn {
        Ok(conn) => {
            s.handle_connected_as(now(epoch), conn.local_key());
            if let Err(why) = run(&mut s, conn, target, epoch).await {
                debug!(hoster = %target.addr, "audit connection lost: {why}");
                s.handle_failed(now(epoch));
            }
            debug!(hoster = %target.addr, outcome = ?s.outcome(), "audit over");
        }
        Err(e) => {
            debug!(hoster = %target.addr, "audit connect failed: {e}");
            s.handle_connect_failed(now(epoch));
        }
    }
    s.finish(now(epoch))
}

/// Send what the session queued. `Err` if a send failed (a failed `Cancel` is
/// ignored; `Close` closes the channel).
async fn flush(s: &mut AuditSession, channel: &mut Channel) -> Result<(), String> {
    while let Some(t) = s.poll_transmit() {
        match (t, message(t)) {
            (Transmit::Cancel { .. }, Some(m)) => {
                let _ = channel.send(m).await;
            }
            (_, Some(m)) => channel.send(m).await.map_err(|e| e.to_string())?,
            (_, None) => {
                let _ = channel.close().await;
            }
        }
    }
    Ok(())
}

/// Hand one message from the hoster's channel to the session.
fn deliver(s: &mut AuditSession, m: Message, t: Instant, addr: SocketAddr) {
    match m {
        Message::Synchronize(sync) => s.handle_sync(t, sync.fork, sync.length),
        Message::Data(d) => s.handle_data(t, answer(&d)),
        Message::NoData(n) => s.handle_no_data(t, n.request),
        Message::Extension(e) => match DatdotMsg::decode(&e) {
            Ok(Some(DatdotMsg::Receipt(r))) => s.handle_receipt(t, *r),
            Ok(_) => {}
            Err(e) => {
                debug!(hoster = %addr, "bad extension: {e}");
                s.handle_bad_extension(t);
            }
        },
        _ => {}
    }
}

/// The replication session: pump `s` until it is done. `Err` if the connection failed
/// in a way that is never a normal end.
async fn run(
    s: &mut AuditSession,
    conn: Connection,
    target: &AuditTarget,
    epoch: std::time::Instant,
) -> Result<(), String> {
    if s.is_done() {
        return Ok(());
    }
    let Connection {
        mut protocol,
        shared,
        limits,
        early,
        ..
    } = conn;
    protocol
        .open(target.feed)
        .await
        .map_err(|e| e.to_string())?;
    let dk = discovery_key(&target.feed);
    let mut early = early.into_iter();
    // The hoster opens the channel in reply only if it serves the feed; not serving it
    // looks like a stall, which the audit's deadlines end.
    let mut channel = loop {
        tokio::select! {
            c = open_channel(&mut protocol, &mut early, &dk) => break c?,
            e = shared.failed() => return Err(e.to_string()),
            _ = sleep_until(deadline_of(s, epoch)) => {
                s.handle_timeout(now(epoch));
                if s.is_done() { return Ok(()); }
            }
        }
    };
    let mut queue = channel.take_receiver().ok_or("channel receiver taken")?;
    s.handle_channel_open(now(epoch));
    flush(s, &mut channel).await?;
    let mut read_seen = shared.read.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    while !s.is_done() {
        let wake = deadline_of(s, epoch);
        let busy = s.busy();
        tokio::select! {
            ev = protocol.next() => match ev {
                Some(Ok(Event::Close(d))) if d == dk => s.handle_lost(now(epoch)),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    debug!(hoster = %target.addr, "audit connection: {e}");
                    s.handle_lost(now(epoch));
                }
                None => s.handle_lost(now(epoch)),
            },
            m = queue.next() => match m {
                None => s.handle_lost(now(epoch)),
                Some(m) => {
                    if queue.len() > limits.max_queued {
                        // Misbehaviour, but not one the chain can check: drop the
                        // connection; the requests in flight count as timeouts.
                        return Err("hoster flooded the channel".into());
                    }
                    deliver(s, m, now(epoch), target.addr);
                }
            },
            e = shared.failed() => {
                debug!(hoster = %target.addr, "audit connection: {e}");
                s.handle_lost(now(epoch));
            }
            _ = tick.tick(), if busy => {}
            _ = sleep_until(wake) => {
                let ending = s.is_ending();
                s.handle_timeout(now(epoch));
                if ending && s.is_done() {
                    debug!(hoster = %target.addr, "no final receipt within {END_GRACE:?}");
                }
            }
        }
        // Raw progress on the socket, attributed to the oldest block request.
        let read = shared.read.load(Ordering::Relaxed);
        if read > read_seen {
            s.handle_bytes(now(epoch), read - read_seen);
            read_seen = read;
        }
        flush(s, &mut channel).await?;
    }
    Ok(())
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
                    return root
                        .as_ref()
                        .and_then(|r| leaf_proof(&d, index, r))
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
