//! The serving side of a connection (hosters): answers Hypercore requests for the feeds
//! it holds, one driver future per connection, and signs a receipt every N blocks
//! served and when the reader ends the session.
//!
//! Every request is screened before the `hypercore` crate answers it
//! ([`crate::screen`]); only useful work (a channel opened for a feed we serve, a
//! request answered with data) resets the idle timer and counts for the listener's
//! eviction policy ([`crate::admit`]).
//!
//! Bounds (DESIGN §12.3): at most `max_channels` feeds per connection (and
//! `2 × max_channels` channel opens of any feed). The peer's decoded messages are moved
//! from the protocol's channel queues into one queue of ours as soon as they arrive,
//! counted in bytes (in-memory size); past `max_queued_bytes` the session stops reading
//! from the socket until the queue drains (TCP backpressure), and more than
//! `max_queued` messages is a flood (the peer is dropped). While more than `max_unsent`
//! answer bytes wait for the socket, or more than `unsent_floor` while the listener's
//! sessions together have `max_unsent_total` waiting ([`Counters::unsent`]), no new
//! request is handled (TCP backpressure reaches the reader instead of our memory
//! growing).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datdot_protocol::identity::{ChainId, Keypair};
use datdot_protocol::receipt::ReceiptSigner;
use datdot_protocol::tree::leaf_hash;
use futures::StreamExt;
use futures::stream::SelectAll;
use hypercore::Hypercore;
use hypercore_protocol::schema::{Data, NoData, Range, Request, Synchronize};
use hypercore_protocol::{Channel, ChannelReceiver, Event, Message};
use tracing::{debug, warn};

use crate::conn::Connection;
use crate::error::{Misbehaviour, SessionError};
use crate::ext::DatdotMsg;
use crate::identity::hex_short;
use crate::screen::{FeedView, screen_request};

/// Where a server finds the feeds it offers.
pub trait FeedSource: Send + Sync {
    /// The feed with this discovery key: its public key and core, if we serve it.
    fn find(&self, discovery_key: &[u8; 32]) -> Option<([u8; 32], Hypercore)>;
}

/// A server of exactly one feed (a publisher seeding its own feed, a bench, a test).
#[derive(Debug, Clone)]
pub struct SingleFeed {
    key: [u8; 32],
    core: Hypercore,
}

impl SingleFeed {
    /// Serve `core`, whose public key is `key`.
    pub fn new(key: [u8; 32], core: Hypercore) -> Self {
        SingleFeed { key, core }
    }
}

impl FeedSource for SingleFeed {
    fn find(&self, discovery_key: &[u8; 32]) -> Option<([u8; 32], Hypercore)> {
        (hypercore_protocol::discovery_key(&self.key) == *discovery_key)
            .then(|| (self.key, self.core.clone()))
    }
}

/// Serve one feed on a new listener at `addr` (port 0 for any) with a fresh Noise
/// identity, receipts signed by `signer` for `chain` (zeros: none) every
/// `receipt_every` blocks, until the runtime ends: a publisher seeding its own feed, a
/// bench, a test. Returns the bound address and the Noise key readers pin.
pub async fn seed(
    addr: std::net::SocketAddr,
    key: [u8; 32],
    core: Hypercore,
    signer: Keypair,
    chain: ChainId,
    receipt_every: usize,
) -> std::io::Result<(std::net::SocketAddr, [u8; 32])> {
    let counters = Arc::new(Counters::default());
    let l = crate::Listener::bind(
        addr,
        crate::NoiseIdentity::generate(),
        crate::Limits::default(),
        counters.clone(),
    )
    .await?;
    let (addr, noise) = (l.local_addr()?, l.public_key());
    let src = Arc::new(SingleFeed::new(key, core));
    let cfg = ServeConfig {
        signer: Arc::new(signer),
        chain: tokio::sync::watch::channel(chain).1,
        receipt_every,
        counters,
    };
    tokio::spawn(l.run(move |c| {
        let (src, cfg) = (src.clone(), cfg.clone());
        async move {
            let _ = serve(c, src.as_ref(), &cfg).await;
        }
    }));
    Ok((addr, noise))
}

/// Counters a server updates (rendered as Prometheus metrics by the hoster).
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted (handshake done).
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections refused (over the limit) or failed in the handshake.
    pub connections_refused: AtomicU64,
    /// Connections cancelled by the admission policy to make room for a newcomer (a
    /// pending handshake, or a session without useful work).
    pub connections_evicted: AtomicU64,
    /// Blocks served.
    pub blocks_served: AtomicU64,
    /// Block bytes served.
    pub bytes_served: AtomicU64,
    /// Receipts sent.
    pub receipts_sent: AtomicU64,
    /// Sessions that ended with a peer misbehaving.
    pub peer_errors: AtomicU64,
    /// Sessions that ended with a local (storage) error.
    pub local_errors: AtomicU64,
    /// Answer bytes waiting for the socket now, all sessions together (a lower bound:
    /// block bytes and 32 per proof node).
    pub unsent: AtomicU64,
    /// The peers' decoded messages waiting to be handled now, all sessions together,
    /// in bytes of memory.
    pub queued: AtomicU64,
    /// The most `unsent + queued` has been.
    pub buffered_peak: AtomicU64,
}

impl Counters {
    /// Add `delta` to `gauge` (one of ours), and note the peak of `unsent + queued`.
    fn adjust(&self, gauge: &AtomicU64, delta: i64) {
        if delta >= 0 {
            gauge.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            gauge.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
        let now = self.unsent.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed);
        self.buffered_peak.fetch_max(now, Ordering::Relaxed);
    }
}

/// A session's share of [`Counters::unsent`] and [`Counters::queued`]: what it charged,
/// given back when it ends.
struct Charge<'a> {
    counters: &'a Counters,
    unsent: u64,
    queued: u64,
}

impl Charge<'_> {
    fn set_unsent(&mut self, now: u64) {
        self.counters
            .adjust(&self.counters.unsent, now as i64 - self.unsent as i64);
        self.unsent = now;
    }

    fn set_queued(&mut self, now: u64) {
        self.counters
            .adjust(&self.counters.queued, now as i64 - self.queued as i64);
        self.queued = now;
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.set_unsent(0);
        self.set_queued(0);
    }
}

/// Memory a decoded message holds while it waits: the enum and what it owns on the heap
/// (the peer chose the sizes; the guard bounds each message to `max_request_message`).
fn message_cost(m: &Message) -> u64 {
    let heap = match m {
        Message::Data(d) => {
            d.block
                .as_ref()
                .map_or(0, |b| b.value.len() + 48 * b.nodes.len())
                + d.hash.as_ref().map_or(0, |h| 48 * h.nodes.len())
                + d.seek.as_ref().map_or(0, |s| 48 * s.nodes.len())
                + d.upgrade.as_ref().map_or(0, |u| {
                    48 * (u.nodes.len() + u.additional_nodes.len()) + u.signature.len()
                })
        }
        Message::Bitfield(b) => 4 * b.bitfield.len(),
        Message::Extension(e) => e.name.len() + e.message.len(),
        _ => 0,
    };
    (std::mem::size_of::<Message>() + heap) as u64
}

/// What a server needs besides the feeds.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The hoster's signing identity (receipts).
    pub signer: Arc<Keypair>,
    /// The chain receipts are signed for (its chain id; zeros for a hoster without
    /// one, which no chain accepts as evidence), read when a channel opens.
    pub chain: tokio::sync::watch::Receiver<ChainId>,
    /// Blocks per receipt (SPEC default 100).
    pub receipt_every: usize,
    /// Counters to update.
    pub counters: Arc<Counters>,
}

/// What one served session did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServeSummary {
    /// Blocks served.
    pub blocks: u64,
    /// Block bytes served.
    pub bytes: u64,
    /// Receipts sent.
    pub receipts: u64,
}

struct Served {
    channel: Channel,
    queue: ChannelReceiver<Message>,
    core: Hypercore,
    receipts: ReceiptSigner,
    synced: bool,
}

/// Serve one connection until the peer closes it, goes idle, or misbehaves.
/// A clean close by the peer is `Ok`.
pub async fn serve(
    conn: Connection,
    feeds: &dyn FeedSource,
    cfg: &ServeConfig,
) -> Result<ServeSummary, SessionError> {
    let Connection {
        mut protocol,
        shared,
        limits,
        early,
        ..
    } = conn;
    let mut early = early.into_iter();
    let remote = protocol.remote_public_key().unwrap_or_default();
    let mut served: Vec<Served> = Vec::new();
    let mut inbox = SelectAll::new();
    // The peer's messages, moved out of the protocol's queues as they arrive.
    let mut waiting: VecDeque<(usize, Message, u64)> = VecDeque::new();
    let mut charge = Charge {
        counters: &cfg.counters,
        unsent: 0,
        queued: 0,
    };
    let mut sum = ServeSummary::default();
    let mut opened = 0usize;
    let mut enqueued: u64 = shared.written.load(Ordering::Relaxed);
    let idle = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(idle);

    let result: Result<(), SessionError> = loop {
        let unsent = enqueued.saturating_sub(shared.written.load(Ordering::Relaxed));
        charge.set_unsent(unsent);
        let backpressured = unsent > limits.max_unsent as u64
            || (unsent > limits.unsent_floor as u64
                && cfg.counters.unsent.load(Ordering::Relaxed) > limits.max_unsent_total as u64);
        let queued: usize = waiting.len() + served.iter().map(|s| s.queue.len()).sum::<usize>();
        if queued > limits.max_queued {
            break Err(Misbehaviour::Flood(limits.max_queued).into());
        }
        if charge.queued > limits.max_queued_bytes as u64 {
            shared.pause_reads();
        } else {
            shared.resume_reads();
        }
        let early_ev = early.next();
        tokio::select! {
            biased;
            ev = async { match early_ev { Some(e) => Some(Ok(e)), None => protocol.next().await } } => match ev {
                Some(Ok(Event::DiscoveryKey(dk))) => {
                    // Every channel a peer opens (for a feed we serve or not) stays in
                    // the protocol's channel map for the session: count them all.
                    opened += 1;
                    if served.len() >= limits.max_channels || opened > 2 * limits.max_channels {
                        break Err(Misbehaviour::TooManyChannels(limits.max_channels).into());
                    }
                    match feeds.find(&dk) {
                        Some((key, _)) => {
                            useful(&shared, idle.as_mut(), limits.idle_timeout);
                            if let Err(e) = protocol.open(key).await {
                                break Err(SessionError::Link(e.to_string()));
                            }
                        }
                        None => debug!(dk = %hex_short(&dk), "peer asked for a feed we do not serve"),
                    }
                }
                Some(Ok(Event::Channel(mut channel))) => {
                    let Some((_, core)) = feeds.find(channel.discovery_key()) else { continue };
                    let Some(queue) = channel.take_receiver() else { continue };
                    let idx = served.len();
                    inbox.push(queue.clone().map(move |m| (idx, m)));
                    let info = core.info();
                    let hello = [
                        Message::Synchronize(Synchronize {
                            fork: info.fork,
                            length: info.length,
                            remote_length: 0,
                            downloading: false,
                            uploading: true,
                            can_upgrade: true,
                        }),
                        Message::Range(Range { drop: false, start: 0, length: info.contiguous_length }),
                    ];
                    if let Err(e) = channel.send_batch(&hello).await {
                        break Err(SessionError::Link(e.to_string()));
                    }
                    let key = *channel.key();
                    served.push(Served {
                        channel,
                        queue,
                        core,
                        receipts: ReceiptSigner::new(
                            *cfg.chain.borrow(),
                            key,
                            remote,
                            cfg.receipt_every,
                        ),
                        synced: false,
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    break Err(match shared.error() {
                        Some(fe) => SessionError::from_frame(fe),
                        None => Misbehaviour::Malformed(e.to_string()).into(),
                    })
                }
                None => break Ok(()),
            },
            Some((idx, msg)) = inbox.next(), if !inbox.is_empty() => {
                let cost = message_cost(&msg);
                waiting.push_back((idx, msg, cost));
                charge.set_queued(charge.queued + cost);
            }
            Some((idx, msg, cost)) = async { waiting.pop_front() }, if !backpressured && !waiting.is_empty() => {
                charge.set_queued(charge.queued - cost);
                let s = &mut served[idx];
                match handle(s, msg, cfg, &mut sum).await {
                    Ok(Answer { queued, data }) => {
                        enqueued += queued;
                        if data {
                            useful(&shared, idle.as_mut(), limits.idle_timeout);
                        }
                    }
                    Err(e) => break Err(e),
                }
            }
            _ = shared.progress.notified(), if backpressured => {}
            e = shared.failed() => {
                break match e {
                    crate::error::FrameError::Closed => Ok(()),
                    e => Err(SessionError::from_frame(e)),
                }
            }
            _ = &mut idle => break Err(SessionError::Link(format!("idle for {:?}", limits.idle_timeout))),
        }
    };
    // Receipts for blocks served but not yet receipted stay unsent if the session broke;
    // they are logged (the reader saw the blocks without a receipt).
    for s in &mut served {
        if let Some(r) = s.receipts.flush(&cfg.signer) {
            debug!(
                entries = r.entries.len(),
                "session ended before the final receipt could be sent"
            );
        }
    }
    match &result {
        Err(SessionError::PeerMisbehaved(m)) => {
            cfg.counters.peer_errors.fetch_add(1, Ordering::Relaxed);
            if crate::listen::peer_log_allowed() {
                warn!(peer = %hex_short(&remote), "dropping peer: {m}");
            }
        }
        Err(SessionError::Storage(e)) => {
            cfg.counters.local_errors.fetch_add(1, Ordering::Relaxed);
            warn!("storage error while serving: {e}");
        }
        _ => {}
    }
    result.map(|()| sum)
}

/// Useful work was done: reset the idle timer and tell the listener (which evicts the
/// least recently useful session when full). Nothing else resets either.
fn useful(
    shared: &crate::frame::FrameShared,
    idle: std::pin::Pin<&mut tokio::time::Sleep>,
    timeout: std::time::Duration,
) {
    shared
        .useful_ms
        .store(crate::listen::clock_ms(), Ordering::Relaxed);
    idle.reset(tokio::time::Instant::now() + timeout);
}

/// What handling one message did.
#[derive(Debug, Default)]
struct Answer {
    /// A lower bound of the bytes it queued for sending.
    queued: u64,
    /// Whether it answered a request with data (useful work).
    data: bool,
}

/// Handle one message.
async fn handle(
    s: &mut Served,
    msg: Message,
    cfg: &ServeConfig,
    sum: &mut ServeSummary,
) -> Result<Answer, SessionError> {
    let link = |e: std::io::Error| SessionError::Link(e.to_string());
    match msg {
        Message::Synchronize(m) => {
            if !s.synced {
                s.synced = true;
                let info = s.core.info();
                s.channel
                    .send(Message::Synchronize(Synchronize {
                        fork: info.fork,
                        length: info.length,
                        remote_length: m.length,
                        downloading: false,
                        uploading: true,
                        can_upgrade: true,
                    }))
                    .await
                    .map_err(link)?;
            }
            Ok(Answer::default())
        }
        Message::Request(r) => serve_request(s, r, cfg, sum).await,
        Message::Extension(e) => match DatdotMsg::decode(&e).map_err(Misbehaviour::BadExtension)? {
            Some(DatdotMsg::End) => {
                if let Some(r) = s.receipts.flush(&cfg.signer) {
                    s.channel
                        .send(DatdotMsg::Receipt(Box::new(r)).to_message())
                        .await
                        .map_err(link)?;
                    cfg.counters.receipts_sent.fetch_add(1, Ordering::Relaxed);
                    sum.receipts += 1;
                }
                Ok(Answer::default())
            }
            _ => Ok(Answer::default()),
        },
        _ => Ok(Answer::default()),
    }
}

async fn serve_request(
    s: &mut Served,
    r: Request,
    cfg: &ServeConfig,
    sum: &mut ServeSummary,
) -> Result<Answer, SessionError> {
    let link = |e: std::io::Error| SessionError::Link(e.to_string());
    let info = s.core.info();
    let view = FeedView {
        length: info.length,
        byte_length: info.byte_length,
        fork: info.fork,
    };
    if let Err(why) = screen_request(&r, view, |i| s.core.has(i)) {
        debug!(request = r.id, "not answering {why:?}");
        s.channel
            .send(Message::NoData(NoData { request: r.id }))
            .await
            .map_err(link)?;
        return Ok(Answer::default());
    }
    let proof = match s
        .core
        .create_proof(r.block, r.hash, r.seek, r.upgrade)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            debug!("cannot create proof for request {}: {e}", r.id);
            None
        }
    };
    let Some(proof) = proof else {
        s.channel
            .send(Message::NoData(NoData { request: r.id }))
            .await
            .map_err(link)?;
        return Ok(Answer::default());
    };
    // A lower bound of the bytes this answer puts on the wire (block bytes and 32 per
    // proof node): `written` then always catches up with `enqueued`, so the estimate
    // cannot drift into a permanent backpressure stall (an overestimate did, on a
    // 16384-block feed). See DESIGN §12.3 for what this bounds.
    let mut size = 0u64;
    let mut receipt = None;
    if let Some(b) = &proof.block {
        let len = b.value.len() as u64;
        size += len + 32 * b.nodes.len() as u64;
        sum.blocks += 1;
        sum.bytes += len;
        cfg.counters.blocks_served.fetch_add(1, Ordering::Relaxed);
        cfg.counters.bytes_served.fetch_add(len, Ordering::Relaxed);
        receipt = s.receipts.served(&cfg.signer, b.index, leaf_hash(&b.value));
    }
    s.channel
        .send(Message::Data(Data {
            request: r.id,
            fork: proof.fork,
            block: proof.block,
            hash: proof.hash,
            seek: proof.seek,
            upgrade: proof.upgrade,
        }))
        .await
        .map_err(link)?;
    if let Some(rc) = receipt {
        s.channel
            .send(DatdotMsg::Receipt(Box::new(rc)).to_message())
            .await
            .map_err(link)?;
        cfg.counters.receipts_sent.fetch_add(1, Ordering::Relaxed);
        sum.receipts += 1;
    }
    Ok(Answer {
        queued: size,
        data: true,
    })
}
