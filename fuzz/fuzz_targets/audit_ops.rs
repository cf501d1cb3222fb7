//! `audit::Audit` driven by an arbitrary sequence of shell inputs at arbitrary times
//! (including time going backwards and calls in nonsensical orders).
//!
//! Invariants: never panics; after any input, no deadline at or before the latest time
//! seen is left unprocessed; `poll_timeout` is `None` exactly when stopped; at most one
//! `Stopped` event; `finish` is idempotent and its summary is well formed, counts
//! consistent, and survives an encode/decode round trip.
#![no_main]

use core::time::Duration;

use arbitrary::Arbitrary;
use datdot_protocol::audit::{
    Audit, AuditConfig, AuditEvent, BlockResult, MAX_FAILURES, MAX_IN_FLIGHT, Misbehavior,
};
use datdot_protocol::codec::{Decode, Encode, Reader, Writer};
use datdot_protocol::metrics::MetricSummary;
use datdot_protocol::time::Instant;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Progress timeout, hard maximum, request timeout in ms (invalid → defaults).
    limits: Option<(u16, u16, u16)>,
    start: u32,
    ops: Vec<(When, Op)>,
}

/// When the next input happens relative to the latest time used.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum When {
    Same,
    After(u32),
    AfterMs(u16),
    Before(u32),
    /// Exactly at the instant `poll_timeout` names.
    AtDeadline,
    /// One microsecond before it.
    JustBeforeDeadline,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Result_ {
    Ok(u32),
    LacksData,
    BadProof,
    BadData,
    BadReceipt,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Connected,
    ConnectFailed,
    RequestSent {
        req: u8,
        block: u64,
    },
    FirstByte {
        req: u8,
    },
    Bytes {
        req: u8,
        n: u16,
    },
    BlockDone {
        req: u8,
        result: Result_,
    },
    HandleTimeout,
    /// `count % 2048 + 1` requests at once (to reach the in-flight limit).
    Burst {
        first: u16,
        count: u16,
    },
    Finish,
}

fn roundtrip(s: &MetricSummary) {
    assert!(s.well_formed(), "{s:?}");
    assert!(s.counts_consistent(), "{s:?}");
    let mut w = Writer::new();
    s.encode(&mut w);
    let bytes = w.into_bytes();
    assert_eq!(bytes.len(), MetricSummary::ENCODED_SIZE);
    let mut r = Reader::new(&bytes);
    assert_eq!(MetricSummary::decode(&mut r).as_ref(), Ok(s));
    assert_eq!(r.remaining(), 0);
}

fuzz_target!(|input: Input| {
    let cfg = input
        .limits
        .and_then(|(p, h, r)| {
            let ms = |v: u16| Duration::from_millis(u64::from(v));
            AuditConfig::new(ms(p), ms(h), ms(r)).ok()
        })
        .unwrap_or_default();
    let start = u64::from(input.start);
    let mut audit = Audit::new(cfg, Instant(start));
    let mut t = start; // the time of the last input
    let mut latest = start; // the latest time seen
    let mut stopped_events = 0;
    let mut finished: Option<MetricSummary> = None;

    for (when, op) in input.ops.iter().take(4096) {
        t = match *when {
            When::Same => t,
            When::After(us) => t.saturating_add(u64::from(us)),
            When::AfterMs(ms) => t.saturating_add(u64::from(ms) * 1000),
            When::Before(us) => t.saturating_sub(u64::from(us)),
            When::AtDeadline => audit.poll_timeout().map_or(t, |d| d.0),
            When::JustBeforeDeadline => audit.poll_timeout().map_or(t, |d| d.0.saturating_sub(1)),
        };
        latest = latest.max(t);
        let now = Instant(t);
        match *op {
            Op::Connected => audit.connected(now),
            Op::ConnectFailed => audit.connect_failed(now),
            Op::RequestSent { req, block } => audit.request_sent(now, req.into(), block),
            Op::FirstByte { req } => audit.first_byte(now, req.into()),
            Op::Bytes { req, n } => audit.bytes(now, req.into(), n.into()),
            Op::BlockDone { req, result } => {
                let result = match result {
                    Result_::Ok(bytes) => BlockResult::Ok {
                        bytes: bytes.into(),
                    },
                    Result_::LacksData => BlockResult::LacksData,
                    Result_::BadProof => BlockResult::Misbehaved(Misbehavior::BadProof),
                    Result_::BadData => BlockResult::Misbehaved(Misbehavior::BadData),
                    Result_::BadReceipt => BlockResult::Misbehaved(Misbehavior::BadReceipt),
                };
                audit.block_done(now, req.into(), result)
            }
            Op::HandleTimeout => audit.handle_timeout(now),
            Op::Burst { first, count } => {
                for i in 0..=u64::from(count % 2048) {
                    audit.request_sent(now, 1000 + u64::from(first) + i, i);
                }
            }
            Op::Finish => {
                let s = audit.finish(now);
                roundtrip(&s);
                if let Some(prev) = &finished {
                    assert_eq!(prev, &s, "finish is not idempotent");
                }
                finished = Some(s);
                assert!(audit.is_stopped());
            }
        }

        // Every input processes the deadlines due by the latest time seen.
        match audit.poll_timeout() {
            None => assert!(audit.is_stopped()),
            Some(d) => {
                assert!(!audit.is_stopped());
                assert!(d.0 > latest, "deadline {d:?} left unprocessed at {latest}");
            }
        }
        assert!(audit.in_flight() <= MAX_IN_FLIGHT);
        assert!(audit.failures().len() <= MAX_FAILURES);
        while let Some(ev) = audit.poll_event() {
            if let AuditEvent::Stopped(outcome) = ev {
                stopped_events += 1;
                assert_eq!(audit.outcome(), Some(outcome));
            }
        }
        assert!(stopped_events <= 1, "Stopped emitted twice");
        assert_eq!(stopped_events == 1, audit.is_stopped());
        let s = audit.summary();
        assert!(s.well_formed() && s.counts_consistent(), "{s:?}");
    }
    let s = audit.finish(Instant(t));
    roundtrip(&s);
    if let Some(prev) = finished {
        assert_eq!(prev, s, "finish is not idempotent");
    }
});
