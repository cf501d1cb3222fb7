//! The hoster's listener under a connection-slot attack, on loopback: an attacker holds
//! 1,000 connections (silent sockets that never finish a handshake, and sessions that
//! finish it and then do nothing), from one address and, separately, from 50 addresses
//! on 127.0.0.0/8, and renews them; an honest reader is served the whole feed each
//! time, and the process's memory stays bounded. (Before the admission budgets, 300
//! idle connections from one address kept a real JS reader from replicating at all.)
//! Also: hostile requests the `hypercore` crate panics on, and channel-open floods.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use datdot_net::hostile::{Flood, ask_without_reading};
use datdot_net::{Connection, Expect, FetchOptions, Misbehaviour, SessionError, dial_from, fetch};
use hypercore_protocol::Message;
use hypercore_protocol::schema::Request;
use hypercore_schema::{RequestBlock, RequestUpgrade};
use tokio::net::{TcpSocket, TcpStream};

/// What an attacker holds open.
#[derive(Default)]
struct Held {
    silent: Vec<TcpStream>,
    sessions: Vec<Connection>,
}

/// Open `silent` sockets and `sessions` handshaken sessions to `addr`, spread over
/// `sources` round-robin. Connections the server closes at once are fine (that is the
/// point); only our own socket errors fail the test.
async fn attack(srv: &Server, sources: &[IpAddr], silent: usize, sessions: usize) -> Held {
    let mut held = Held::default();
    for i in 0..silent {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(sources[i % sources.len()], 0))
            .unwrap();
        held.silent.push(s.connect(srv.addr).await.unwrap());
    }
    for i in 0..sessions {
        let from = Some(sources[i % sources.len()]);
        // A session whose handshake was cancelled to make room is an error here: fine.
        if let Ok(c) = dial_from(from, srv.addr, Expect::Key(srv.key), &test_limits()).await {
            held.sessions.push(c);
        }
    }
    held
}

/// An honest reader from `from` fetches the whole feed.
async fn honest_fetch(srv: &Server, key: [u8; 32], from: IpAddr) -> u64 {
    let conn = dial_from(Some(from), srv.addr, Expect::Key(srv.key), &test_limits())
        .await
        .expect("the honest reader's handshake completes");
    let core = reader(key).await;
    let opts = FetchOptions {
        hoster: Some(srv.signer.public()),
        chain: Some(CHAIN),
        ..FetchOptions::default()
    };
    fetch(conn, key, &core, &opts, &mut |_| {})
        .await
        .expect("the honest reader is served")
        .blocks
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn survive(sources: Vec<IpAddr>, honest: IpAddr) {
    let (srv, key) = serve_feed(64, 4096).await;
    assert_eq!(honest_fetch(&srv, key, honest).await, 64);
    let before = rss_kib();

    let mut held = attack(&srv, &sources, 700, 300).await;
    for round in 0..2 {
        // Past the eviction grace: the attacker's sessions did nothing useful.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            honest_fetch(&srv, key, honest).await,
            64,
            "round {round}: served while 1,000 connections are held"
        );
        // The attacker renews everything.
        drop(held);
        held = attack(&srv, &sources, 700, 300).await;
    }
    let grown = rss_kib().saturating_sub(before);
    let c = &srv.counters;
    eprintln!(
        "held {} silent + {} sessions; evicted {}, refused {}, open {}; RSS grew {grown} KiB",
        held.silent.len(),
        held.sessions.len(),
        c.connections_evicted.load(Relaxed),
        c.connections_refused.load(Relaxed),
        c.connections_open.load(Relaxed),
    );
    assert!(
        c.connections_evicted.load(Relaxed) > 0,
        "the budget was full"
    );
    // Client and server share this process: 1,000 attacker sockets and sessions on both
    // sides, plus the server's budgets.
    assert!(grown < 150 * 1024, "memory bounded: grew {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_served_while_one_address_holds_1000_connections() {
    let one = IpAddr::from([127, 0, 0, 1]);
    survive(vec![one], one).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_is_served_while_50_addresses_hold_1000_connections() {
    let fifty = (10..60).map(|n| IpAddr::from([127, 0, 0, n])).collect();
    survive(fifty, IpAddr::from([127, 0, 0, 2])).await;
}

/// A hostile reader that speaks the real protocol: opens a channel for `key` and sends
/// `requests` on it, polling its side of the connection for `for_ms`.
async fn hostile_requests(srv: &Server, key: [u8; 32], requests: Vec<Message>, for_ms: u64) {
    use futures::StreamExt;
    let conn = datdot_net::dial(srv.addr, Expect::Key(srv.key), &test_limits())
        .await
        .unwrap();
    let mut protocol = conn.into_protocol();
    protocol.open(key).await.unwrap();
    let work = async {
        while let Some(ev) = protocol.next().await {
            if let Ok(hypercore_protocol::Event::Channel(channel)) = ev {
                for r in &requests {
                    let _ = channel.send(r.clone()).await;
                }
                // Keep polling so the requests go out and answers come in.
                while protocol.next().await.is_some() {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(for_ms), work).await;
}

fn request(
    id: u64,
    block: Option<RequestBlock>,
    hash: Option<RequestBlock>,
    upgrade: Option<RequestUpgrade>,
) -> Message {
    Message::Request(Request {
        id,
        fork: 0,
        block,
        hash,
        seek: None,
        upgrade,
        manifest: false,
        priority: 0,
    })
}

/// The finding: a `hash` request beyond an `upgrade` panics inside `hypercore` 0.17
/// with the feed's mutex held, poisoning the feed for every later reader. Screened, it
/// is answered `NoData`, and the feed stays served. (On the old server the honest fetch
/// below fails: the feed's lock is poisoned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoning_request_leaves_the_feed_served() {
    let (srv, key) = serve_feed(16, 1024).await;
    let hostile = vec![
        request(
            1,
            None,
            Some(RequestBlock {
                index: 24,
                nodes: 0,
            }),
            Some(RequestUpgrade {
                start: 0,
                length: 2,
            }),
        ),
        request(
            2,
            None,
            None,
            Some(RequestUpgrade {
                start: u64::MAX / 2,
                length: u64::MAX / 2,
            }),
        ),
        request(
            3,
            Some(RequestBlock {
                index: 3,
                nodes: u64::MAX,
            }),
            None,
            None,
        ),
    ];
    hostile_requests(&srv, key, hostile, 1500).await;
    assert_eq!(
        honest_fetch(&srv, key, IpAddr::from([127, 0, 0, 1])).await,
        16,
        "the feed is still served"
    );
}

/// Channels opened for feeds we do not serve stay in the protocol's channel map:
/// a peer opening many ends its own session (`TooManyChannels`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_channels_for_unknown_feeds_is_bounded() {
    use futures::StreamExt;
    let (mut srv, key) = serve_feed(4, 1024).await;
    let conn = datdot_net::dial(srv.addr, Expect::Key(srv.key), &test_limits())
        .await
        .unwrap();
    let mut protocol = conn.into_protocol();
    for i in 0..100u8 {
        protocol.open([i; 32]).await.unwrap();
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while protocol.next().await.is_some() {}
    })
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), srv.sessions.recv())
        .await
        .expect("the server ends the session")
        .unwrap();
    assert!(
        matches!(
            ended,
            Err(SessionError::PeerMisbehaved(Misbehaviour::TooManyChannels(
                _
            )))
        ),
        "{ended:?}"
    );
    assert_eq!(
        honest_fetch(&srv, key, IpAddr::from([127, 0, 0, 1])).await,
        4
    );
}

/// A listener takes no message over `max_request_message` (8 KiB): the messages a
/// session has not handled yet are bounded in bytes, not only in count. A 32 KiB
/// extension message ends the sender's session; the feed stays served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_to_a_listener_is_refused() {
    use futures::SinkExt;
    let (mut srv, key) = serve_feed(8, 1024).await;
    let (mut cipher, _shared) = raw_handshake(srv.addr).await;
    // Channel 1, Extension { name "x", message: 32 KiB } (compact-encoding lengths).
    let body = 32 * 1024u16;
    let mut frame = vec![1, 9, 1, b'x', 0xfd];
    frame.extend_from_slice(&body.to_le_bytes());
    frame.resize(frame.len() + usize::from(body), 7);
    cipher.send(frame).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), srv.sessions.recv())
        .await
        .expect("the server ends the session")
        .unwrap();
    assert!(
        matches!(
            ended,
            Err(SessionError::PeerMisbehaved(Misbehaviour::Frame(
                datdot_net::FrameError::Refused(datdot_net::guard::GuardError::MessageTooLarge {
                    max: 8192,
                    ..
                })
            )))
        ),
        "{ended:?}"
    );
    drop(cipher);
    assert_eq!(
        honest_fetch(&srv, key, IpAddr::from([127, 0, 0, 1])).await,
        8
    );
}

/// Blocks of the feed the non-reading attackers ask for, and how many they ask.
const FLOOD_BLOCK: usize = 64 * 1024;
const FLOOD_REQUESTS: u64 = 160;
/// Bitfield messages each attacker sends after its requests: with the requests, fewer
/// than `max_queued` (512), so no count limit ends the session — only bytes can.
const FLOOD_BITFIELDS: usize = 340;

/// Byte-bounded memory: 64 sessions ask for 10 MiB each and stop reading, then keep
/// sending messages the server must decode. The server stops handling requests past
/// its unsent budgets and stops reading past `max_queued_bytes`, so what it holds for
/// them is bounded in bytes (`buffered_peak`), its RSS stays small, and an honest
/// reader is served meanwhile. (With the byte limits lifted — `max_queued_bytes` and
/// `max_unsent_total` at 1 GiB, `unsent_floor = max_unsent`, the old server — the
/// buffered peak was 235 MiB and RSS grew 153 MiB: this test fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_send_without_reading_get_bounded_memory() {
    const SESSIONS: usize = 64;
    let w = writer(FLOOD_REQUESTS, FLOOD_BLOCK, None).await;
    let key = key_of(&w);
    let small = writer(16, 1024, None).await;
    let small_key = key_of(&small);
    let feeds = Feeds::default();
    feeds.0.lock().unwrap().push((key, w));
    feeds.0.lock().unwrap().push((small_key, small));
    let limits = test_limits();
    let srv = server(feeds, limits.clone()).await;
    assert_eq!(
        honest_fetch(&srv, small_key, IpAddr::from([127, 0, 0, 1])).await,
        16
    );
    let before = rss_kib();

    let attackers: Vec<_> = (0..SESSIONS)
        .map(|i| {
            // From 8 addresses: within the listener's per-address handshake budget.
            let from = IpAddr::from([127, 0, 0, 10 + (i % 8) as u8]);
            let flood = Flood {
                requests: FLOOD_REQUESTS,
                messages: FLOOD_BITFIELDS,
                hold: Duration::from_secs(3),
            };
            let (addr, noise) = (srv.addr, srv.key);
            tokio::spawn(async move {
                ask_without_reading(from, addr, noise, key, &test_limits(), flood).await
            })
        })
        .collect();
    // Once the attack is under way, an honest reader of the other feed is served.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        honest_fetch(&srv, small_key, IpAddr::from([127, 0, 0, 1])).await,
        16,
        "served while 64 sessions flood without reading"
    );
    let grown = rss_kib().saturating_sub(before);
    let mut sent = 0;
    for a in attackers {
        sent += a.await.unwrap();
    }
    let c = &srv.counters;
    let peak = c.buffered_peak.load(Relaxed);
    eprintln!(
        "{SESSIONS} sessions put {} MiB on the wire; server buffered peak {} KiB; RSS grew {grown} KiB",
        sent >> 20,
        peak >> 10
    );
    assert!(
        sent > (SESSIONS as u64) << 20,
        "the attack reached the server: {sent} bytes"
    );
    // DESIGN §12.3: per session, the unsent floor and one answer over it, the queued
    // bytes and what one read decodes over them; all sessions: the listener's unsent
    // budget.
    let answer = FLOOD_BLOCK as u64 + 4096;
    let per_session = limits.unsent_floor as u64
        + answer
        + limits.max_queued_bytes as u64
        + limits.max_request_frame as u64
        + datdot_net::frame::REQUEST_READ_CHUNK as u64;
    let bound = limits.max_unsent_total as u64 + (SESSIONS as u64 + 1) * per_session;
    assert!(peak <= bound, "buffered peak {peak} > bound {bound}");
    assert!(grown < 100 * 1024, "memory bounded: grew {grown} KiB");
}
