//! The hoster's Prometheus metrics (served by `datdot_node::prometheus`).

use std::sync::atomic::Ordering::Relaxed;

use datdot_net::Counters;
use datdot_node::prometheus::Exposition;

use crate::hook::HookCounters;
use datdot_store::Store;

/// Render all metrics.
pub fn render(c: &Counters, hook: &HookCounters, store: &Store) -> String {
    let mut e = Exposition::new();
    let mut m = |name: &str, kind: &str, help: &str, v: u64| {
        e.metric(name, kind, help, &[("", v as f64)]);
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
        "datdot_hoster_connections_evicted_total",
        "counter",
        "Pending handshakes or idle sessions cancelled to make room for a newcomer.",
        c.connections_evicted.load(Relaxed),
    );
    m(
        "datdot_hoster_buffered_bytes",
        "gauge",
        "Answer bytes waiting for the socket and peers' messages waiting to be handled, all sessions.",
        c.unsent.load(Relaxed) + c.queued.load(Relaxed),
    );
    m(
        "datdot_hoster_buffered_peak_bytes",
        "gauge",
        "The most datdot_hoster_buffered_bytes has been since start.",
        c.buffered_peak.load(Relaxed),
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
    let chain = hook.chain.get();
    m(
        "datdot_hoster_chain_outages_total",
        "counter",
        "Times the chain did not answer for 10 s or more.",
        chain.map_or(0, |h| h.outages()),
    );
    m(
        "datdot_hoster_chain_silent_seconds",
        "gauge",
        "Seconds since the chain last answered (0 before connecting).",
        chain.map_or(0, |h| h.silent_for().as_secs()),
    );
    e.finish()
}
