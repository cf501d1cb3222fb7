//! The reading side (hosters fetching a feed, attestors auditing): our own request loop
//! with a bounded window of block requests in flight. Every block is verified against
//! the feed's signed tree (`Hypercore::verify_and_apply_proof`) before it is stored; a
//! block that does not verify ends the session with `BadBlock{index, reason}`.
//!
//! We do not use `hypercore`'s built-in replicator: in 0.17.0-alpha.1 it drops a
//! request while a proof is in progress, so concurrent `get()`s stall (DESIGN §12).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datdot_protocol::identity::{ChainId, Ed25519Verifier, PublicKey};
use datdot_protocol::receipt::SignedReceipt;
use datdot_protocol::tree::leaf_hash;
use futures::StreamExt;
use hypercore::Hypercore;
use hypercore_protocol::schema::{Request, Synchronize};
use hypercore_protocol::{Channel, Event, Message, discovery_key};
use hypercore_schema::{RequestBlock, RequestUpgrade};
use tracing::debug;

use crate::conn::Connection;
use crate::error::{FrameError, Misbehaviour, SessionError};
use crate::ext::DatdotMsg;
use crate::screen::{block_answer, upgrade_answer};

/// What to fetch and what to expect.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// The hoster's signing key, if known: receipts must be signed by it. Without it,
    /// receipts must verify and all be signed by one key.
    pub hoster: Option<PublicKey>,
    /// The chain receipts must be signed for, if known; without it, all for one chain.
    pub chain: Option<ChainId>,
    /// Only these block indices (e.g. an audit sample); `None` = every missing block.
    pub only: Option<Vec<u64>>,
    /// How long to wait for the final receipt after all blocks arrived (default 5 s).
    pub end_grace: Option<Duration>,
}

/// Progress reports while fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The peer's feed length is known (after the verified upgrade).
    Length {
        /// At most this many blocks to fetch in this session (blocks held out of order
        /// are skipped as they come up).
        todo: u64,
        /// Feed length.
        length: u64,
    },
    /// One more block verified and stored.
    Block {
        /// Its index.
        index: u64,
        /// Its size.
        bytes: u64,
    },
}

/// What a fetch session did.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// Feed length after the session.
    pub length: u64,
    /// Blocks verified and stored in this session.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Receipts received (each verified for this connection and in sequence).
    pub receipts: Vec<SignedReceipt>,
    /// Leaf hash of each block fetched, by index.
    pub hashes: HashMap<u64, [u8; 32]>,
    /// Time from channel open to the last block.
    pub elapsed: Duration,
}

struct State<'a> {
    core: &'a Hypercore,
    channel: Channel,
    key: [u8; 32],
    my_key: [u8; 32],
    next_id: u64,
    upgrade_id: Option<u64>,
    in_flight: HashMap<u64, u64>,
    todo: Todo,
    remote_length: Option<u64>,
    acked: bool,
    report: FetchReport,
    hoster: Option<PublicKey>,
    chain: Option<ChainId>,
    only: Option<Vec<u64>>,
    started: Instant,
}

/// Fetch feed `key` over `conn` into `core` (a core opened with that public key).
/// `progress` is called for each verified block.
pub async fn fetch(
    conn: Connection,
    key: [u8; 32],
    core: &Hypercore,
    opts: &FetchOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<FetchReport, SessionError> {
    let my_key = conn.local_key();
    let Connection {
        mut protocol,
        shared,
        limits,
        early,
        ..
    } = conn;
    let mut early = early.into_iter();
    protocol
        .open(key)
        .await
        .map_err(|e| SessionError::Link(e.to_string()))?;
    let dk = discovery_key(&key);
    let proto_err = |e: std::io::Error, shared: &crate::frame::FrameShared| match shared.error() {
        Some(fe) => SessionError::from_frame(fe),
        None => Misbehaviour::Malformed(e.to_string()).into(),
    };

    // Wait for the channel (the peer opens it only if it has the feed).
    let channel = {
        let wait = async {
            loop {
                let early_ev = early.next();
                tokio::select! {
                    biased;
                    ev = async { match early_ev { Some(e) => Some(Ok(e)), None => protocol.next().await } } => match ev {
                        Some(Ok(Event::Channel(c))) if c.discovery_key() == &dk => return Ok(c),
                        Some(Ok(Event::Close(d))) if d == dk => {
                            return Err(SessionError::LacksData("peer closed the feed's channel: it does not serve this feed".into()))
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(proto_err(e, &shared)),
                        None => return Err(SessionError::Link("connection ended".into())),
                    },
                    e = shared.failed() => return Err(SessionError::from_frame(e)),
                }
            }
        };
        tokio::time::timeout(limits.progress_timeout, wait)
            .await
            .map_err(|_| SessionError::LacksData(format!("peer did not open the feed's channel within {:?} (it does not serve this feed)", limits.progress_timeout)))??
    };
    let mut channel = channel;
    let mut queue = channel
        .take_receiver()
        .ok_or_else(|| SessionError::Local("channel receiver already taken".into()))?;
    let info = core.info();
    channel
        .send(Message::Synchronize(Synchronize {
            fork: info.fork,
            length: info.length,
            remote_length: 0,
            downloading: true,
            uploading: false,
            can_upgrade: true,
        }))
        .await
        .map_err(|e| SessionError::Link(e.to_string()))?;

    let mut st = State {
        core,
        channel,
        key,
        my_key,
        next_id: 1,
        upgrade_id: None,
        in_flight: HashMap::new(),
        todo: Todo::default(),
        remote_length: None,
        acked: false,
        report: FetchReport::default(),
        hoster: opts.hoster,
        chain: opts.chain,
        only: opts.only.clone(),
        started: Instant::now(),
    };
    let deadline = tokio::time::sleep(limits.progress_timeout);
    tokio::pin!(deadline);
    let mut ending: Option<tokio::time::Instant> = None;

    loop {
        if queue.len() > limits.max_queued {
            return Err(Misbehaviour::Flood(limits.max_queued).into());
        }
        if ending.is_none() && st.remote_length.is_some() && st.upgrade_id.is_none() {
            st.fill_window(limits.request_window).await?;
            if st.todo.is_empty() && st.in_flight.is_empty() {
                st.report.elapsed = st.started.elapsed();
                st.report.length = st.core.info().length;
                if st.receipted() >= st.report.blocks {
                    break;
                }
                st.channel
                    .send(DatdotMsg::End.to_message())
                    .await
                    .map_err(|e| SessionError::Link(e.to_string()))?;
                let grace = opts.end_grace.unwrap_or(Duration::from_secs(5));
                ending = Some(tokio::time::Instant::now() + grace);
                deadline.as_mut().reset(tokio::time::Instant::now() + grace);
            }
        }
        if ending.is_some() && st.receipted() >= st.report.blocks {
            break;
        }
        tokio::select! {
            ev = protocol.next() => match ev {
                Some(Ok(Event::Close(d))) if d == dk => {
                    if ending.is_some() { break; }
                    return Err(SessionError::Link("peer closed the channel".into()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(proto_err(e, &shared)),
                None => return Err(SessionError::Link("connection ended".into())),
            },
            msg = queue.next() => match msg {
                Some(m) => {
                    if st.handle(m, progress).await? {
                        deadline.as_mut().reset(tokio::time::Instant::now() + limits.progress_timeout);
                    }
                }
                None => return Err(SessionError::Link("channel closed".into())),
            },
            e = shared.failed() => {
                if ending.is_some() && e == FrameError::Closed { break; }
                return Err(SessionError::from_frame(e));
            }
            _ = &mut deadline => {
                if ending.is_some() {
                    debug!("no final receipt within the grace period");
                    break;
                }
                return Err(SessionError::LacksData(format!(
                    "no verified block for {:?} ({} requests in flight)",
                    limits.progress_timeout, st.in_flight.len()
                )));
            }
        }
    }
    let _ = st.channel.close().await;
    st.report.length = st.core.info().length;
    Ok(st.report)
}

/// Blocks still to request: the listed ones (reversed, popped from the back), then
/// `next..end`, produced one at a time (a feed's signed length may be huge; nothing is
/// materialised per block). Blocks already held are skipped when popped.
#[derive(Debug, Default)]
struct Todo {
    only: Vec<u64>,
    next: u64,
    end: u64,
}

impl Todo {
    fn pop(&mut self) -> Option<u64> {
        if let Some(i) = self.only.pop() {
            return Some(i);
        }
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn is_empty(&self) -> bool {
        self.only.is_empty() && self.next >= self.end
    }

    /// At most this many blocks left.
    fn len(&self) -> u64 {
        self.only.len() as u64 + self.end.saturating_sub(self.next)
    }
}

fn storage(e: hypercore::HypercoreError) -> SessionError {
    SessionError::Storage(e)
}

impl State<'_> {
    fn receipted(&self) -> u64 {
        self.report
            .receipts
            .iter()
            .map(|r| r.entries.len() as u64)
            .sum()
    }

    async fn send(&mut self, m: Message) -> Result<(), SessionError> {
        self.channel
            .send(m)
            .await
            .map_err(|e| SessionError::Link(e.to_string()))
    }

    async fn fill_window(&mut self, window: usize) -> Result<(), SessionError> {
        let fork = self.core.info().fork;
        while self.in_flight.len() < window {
            let Some(index) = self.todo.pop() else { break };
            if self.core.has(index) {
                continue;
            }
            let nodes = self.core.missing_nodes(index).await.map_err(storage)?;
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.insert(id, index);
            self.send(Message::Request(Request {
                id,
                fork,
                block: Some(RequestBlock { index, nodes }),
                hash: None,
                seek: None,
                upgrade: None,
                manifest: false,
                priority: 0,
            }))
            .await?;
        }
        Ok(())
    }

    /// Handle one message; `true` if it was progress (a verified block or upgrade).
    async fn handle(
        &mut self,
        m: Message,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<bool, SessionError> {
        match m {
            Message::Synchronize(s) => {
                let info = self.core.info();
                if !self.acked {
                    self.acked = true;
                    self.send(Message::Synchronize(Synchronize {
                        fork: info.fork,
                        length: info.length,
                        remote_length: s.length,
                        downloading: true,
                        uploading: false,
                        can_upgrade: true,
                    }))
                    .await?;
                }
                if self.remote_length.is_none() && self.upgrade_id.is_none() {
                    if s.length > info.length {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.upgrade_id = Some(id);
                        self.send(Message::Request(Request {
                            id,
                            fork: info.fork,
                            block: None,
                            hash: None,
                            seek: None,
                            upgrade: Some(RequestUpgrade {
                                start: info.length,
                                length: s.length - info.length,
                            }),
                            manifest: false,
                            priority: 0,
                        }))
                        .await?;
                    } else {
                        self.start(info.length, progress);
                    }
                }
                Ok(false)
            }
            Message::Data(d) => {
                if Some(d.request) == self.upgrade_id {
                    let length = d
                        .upgrade
                        .as_ref()
                        .map(|u| u.start.saturating_add(u.length))
                        .unwrap_or(0);
                    if let Err(reason) = upgrade_answer(&d) {
                        return Err(Misbehaviour::BadUpgrade { length, reason }.into());
                    }
                    match self.core.verify_and_apply_proof(d.into_proof()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            return Err(Misbehaviour::BadUpgrade {
                                length,
                                reason: "proof not applicable".into(),
                            }
                            .into());
                        }
                        Err(e) => {
                            return Err(Misbehaviour::BadUpgrade {
                                length,
                                reason: e.to_string(),
                            }
                            .into());
                        }
                    }
                    self.upgrade_id = None;
                    let len = self.core.info().length;
                    self.start(len, progress);
                    return Ok(true);
                }
                let Some(index) = self.in_flight.remove(&d.request) else {
                    return Err(Misbehaviour::Unsolicited(d.request).into());
                };
                let block = block_answer(&d, index)
                    .map_err(|reason| Misbehaviour::BadBlock { index, reason })?;
                let hash = leaf_hash(&block.value);
                let bytes = block.value.len() as u64;
                match self.core.verify_and_apply_proof(d.into_proof()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(Misbehaviour::BadBlock {
                            index,
                            reason: "proof does not apply to the feed's tree".into(),
                        }
                        .into());
                    }
                    Err(e) => {
                        return Err(Misbehaviour::BadBlock {
                            index,
                            reason: e.to_string(),
                        }
                        .into());
                    }
                }
                self.report.blocks += 1;
                self.report.bytes += bytes;
                self.report.hashes.insert(index, hash);
                progress(Progress::Block { index, bytes });
                Ok(true)
            }
            Message::NoData(n) => {
                let what = match self.in_flight.get(&n.request) {
                    Some(i) => format!("block {i}"),
                    None if Some(n.request) == self.upgrade_id => {
                        "the signed tree (upgrade)".into()
                    }
                    None => return Err(Misbehaviour::Unsolicited(n.request).into()),
                };
                Err(SessionError::LacksData(format!("peer has no {what}")))
            }
            Message::Extension(e) => {
                if let Some(DatdotMsg::Receipt(r)) =
                    DatdotMsg::decode(&e).map_err(Misbehaviour::BadExtension)?
                {
                    self.receipt(*r)?;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn start(&mut self, length: u64, progress: &mut (dyn FnMut(Progress) + Send)) {
        self.remote_length = Some(length);
        self.todo = match &self.only {
            Some(only) => {
                let mut only: Vec<u64> = only
                    .iter()
                    .copied()
                    .filter(|i| *i < length && !self.core.has(*i))
                    .collect();
                only.reverse(); // popped from the back: ascending order
                Todo {
                    only,
                    ..Todo::default()
                }
            }
            // Lazily: a signed length can be anything up to 2^62.
            None => Todo {
                only: Vec::new(),
                next: self.core.info().contiguous_length.min(length),
                end: length,
            },
        };
        progress(Progress::Length {
            todo: self.todo.len(),
            length,
        });
    }

    fn receipt(&mut self, r: SignedReceipt) -> Result<(), SessionError> {
        let hoster = *self.hoster.get_or_insert(r.hoster);
        let chain = *self.chain.get_or_insert(r.chain);
        let seq = self.report.receipts.len() as u64;
        r.verify_for(
            &Ed25519Verifier,
            &chain,
            &hoster,
            &self.key,
            &self.my_key,
            seq,
        )
        .map_err(|e| Misbehaviour::BadReceipt(e.to_string()))?;
        for e in &r.entries {
            if self.report.hashes.get(&e.index) != Some(&e.hash) {
                return Err(Misbehaviour::BadReceipt(format!(
                    "receipt entry for block {} does not match the block served",
                    e.index
                ))
                .into());
            }
        }
        self.report.receipts.push(r);
        Ok(())
    }
}
