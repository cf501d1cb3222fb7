//! Hostile clients for the tests and benches that measure a listener under attack
//! (`net/tests/hostile_peers.rs`, `benches/src/bin/hoster_hostile.rs`): one place for
//! each attack, so the test and the bench measure the same thing.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use hypercore_protocol::schema::{Bitfield, Request};
use hypercore_protocol::{Event, Message};
use hypercore_schema::RequestBlock;

use crate::{Expect, Limits, dial_from};

/// What [`ask_without_reading`] does.
#[derive(Clone, Copy, Debug)]
pub struct Flood {
    /// Blocks `0..requests` asked for, then no byte read.
    pub requests: u64,
    /// ~8 KiB `Bitfield` messages sent after the requests.
    pub messages: usize,
    /// How long the session is held (unread) after the last message.
    pub hold: Duration,
}

/// One attacker session from `from`: open the channel of `key`, ask for blocks
/// `0..flood.requests`, stop reading, then send `flood.messages` ~8 KiB `Bitfield`
/// messages, each only once the previous ones have left this process (so what piles up
/// is the server's, not ours), until the server stops taking them for 1.5 s; then hold
/// the session for `flood.hold`. Returns the bytes it got onto the wire after the
/// requests (0 if the session could not be set up).
pub async fn ask_without_reading(
    from: IpAddr,
    addr: SocketAddr,
    noise: [u8; 32],
    key: [u8; 32],
    limits: &Limits,
    flood: Flood,
) -> u64 {
    let Ok(conn) = dial_from(Some(from), addr, Expect::Key(noise), limits).await else {
        return 0;
    };
    let (mut protocol, gate) = conn.into_parts();
    if protocol.open(key).await.is_err() {
        return 0;
    }
    let channel = loop {
        match tokio::time::timeout(Duration::from_secs(10), protocol.next()).await {
            Ok(Some(Ok(Event::Channel(c)))) => break c,
            Ok(Some(Ok(_))) => {}
            _ => return 0,
        }
    };
    let written_from = std::sync::atomic::AtomicU64::new(u64::MAX);
    let send = async {
        // The protocol's outbound queue is bounded: this runs beside `drive`.
        for index in 0..flood.requests {
            let r = Message::Request(Request {
                id: index + 1,
                fork: 0,
                block: Some(RequestBlock { index, nodes: 0 }),
                hash: None,
                seek: None,
                upgrade: None,
                manifest: false,
                priority: 0,
            });
            if channel.send(r).await.is_err() {
                return;
            }
        }
        gate.pause();
        let start = gate.written();
        written_from.store(start, std::sync::atomic::Ordering::Relaxed);
        let message = Message::Bitfield(Bitfield {
            start: 0,
            bitfield: vec![u32::MAX; 2000],
        });
        for k in 0..flood.messages as u64 {
            // At most 4 messages of ours wait to be written.
            let want = start + k.saturating_sub(4) * 8000;
            let waited = tokio::time::timeout(Duration::from_millis(1500), async {
                while gate.written() < want {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            if waited.is_err() || channel.send(message.clone()).await.is_err() {
                break;
            }
        }
    };
    // Drive the protocol (it writes; it reads nothing while paused) while sending; an
    // error ends the session (polling on would spin).
    let drive = async { while let Some(Ok(_)) = protocol.next().await {} };
    tokio::select! {
        _ = send => {}
        _ = drive => {}
    }
    let _ = tokio::time::timeout(flood.hold, async {
        while let Some(Ok(_)) = protocol.next().await {}
    })
    .await;
    gate.written()
        .saturating_sub(written_from.load(std::sync::atomic::Ordering::Relaxed))
}
