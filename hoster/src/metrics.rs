//! Prometheus text exposition on `GET /metrics`, served by a tiny bounded HTTP/1.0
//! responder (request head ≤ 8 KiB, 5 s to send it, 64 concurrent scrapes).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use datdot_net::Counters;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info};

use crate::hook::HookCounters;
use crate::store::Store;

/// Render all metrics.
pub fn render(c: &Counters, hook: &HookCounters, store: &Store) -> String {
    let mut out = String::new();
    let mut m = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    m(
        "datdot_hoster_blocks_served_total",
        "counter",
        "Blocks served to readers.",
        c.blocks_served.load(Relaxed),
    );
    m(
        "datdot_hoster_bytes_served_total",
        "counter",
        "Block bytes served to readers.",
        c.bytes_served.load(Relaxed),
    );
    m(
        "datdot_hoster_receipts_sent_total",
        "counter",
        "Signed receipts sent.",
        c.receipts_sent.load(Relaxed),
    );
    m(
        "datdot_hoster_connections_total",
        "counter",
        "Connections accepted (handshake done).",
        c.connections_total.load(Relaxed),
    );
    m(
        "datdot_hoster_connections_open",
        "gauge",
        "Connections open now.",
        c.connections_open.load(Relaxed),
    );
    m(
        "datdot_hoster_connections_refused_total",
        "counter",
        "Connections refused (limit) or failed in the handshake.",
        c.connections_refused.load(Relaxed),
    );
    m(
        "datdot_hoster_peer_errors_total",
        "counter",
        "Sessions ended because the peer misbehaved.",
        c.peer_errors.load(Relaxed),
    );
    m(
        "datdot_hoster_local_errors_total",
        "counter",
        "Sessions ended by a local storage error.",
        c.local_errors.load(Relaxed),
    );
    m(
        "datdot_hoster_feeds",
        "gauge",
        "Feeds served.",
        store.len() as u64,
    );
    m(
        "datdot_hoster_chain_assignments_total",
        "counter",
        "Hosting assignments received from the chain (events and pending contracts at start).",
        hook.assignments.load(Relaxed),
    );
    m(
        "datdot_hoster_chain_confirmations_total",
        "counter",
        "confirm_hosting calls the chain accepted.",
        hook.confirmations.load(Relaxed),
    );
    m(
        "datdot_hoster_chain_fetch_failures_total",
        "counter",
        "Fetches of an assigned feed from one peer that failed.",
        hook.fetch_failures.load(Relaxed),
    );
    m(
        "datdot_hoster_chain_errors_total",
        "counter",
        "Chain calls and reads that failed (refusals included).",
        hook.chain_errors.load(Relaxed),
    );
    out
}

/// Serve `/metrics` on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    counters: Arc<Counters>,
    hook: Arc<HookCounters>,
    store: Arc<Store>,
) -> anyhow::Result<()> {
    let l = TcpListener::bind(addr).await?;
    info!(addr = %l.local_addr()?, "metrics on /metrics");
    let permits = Arc::new(Semaphore::new(64));
    loop {
        let (mut s, _) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let counters = counters.clone();
        let hook = hook.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    let r = s.read(&mut buf[n..]).await.ok()?;
                    if r == 0 {
                        return None;
                    }
                    n += r;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
                        || buf[..n].windows(2).any(|w| w == b"\n\n")
                    {
                        return Some(());
                    }
                }
                None
            })
            .await;
            let (status, body) = match head {
                Ok(Some(()))
                    if buf.starts_with(b"GET /metrics ") || buf.starts_with(b"GET /metrics?") =>
                {
                    ("200 OK", render(&counters, &hook, &store))
                }
                Ok(Some(())) => ("404 Not Found", "try GET /metrics\n".to_string()),
                _ => return,
            };
            let resp = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ =
                tokio::time::timeout(Duration::from_secs(5), s.write_all(resp.as_bytes())).await;
        });
    }
}
