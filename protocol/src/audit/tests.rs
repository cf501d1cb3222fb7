//! Tests of the audit state machine: scripted runs with exact virtual-time arithmetic,
//! and a proptest over arbitrary operation sequences.

use super::*;
use crate::codec::{Decode, Encode, Reader, Writer};
use proptest::prelude::*;

fn ms(v: u64) -> Instant {
    Instant(v * 1000)
}
fn secs(v: u64) -> Instant {
    Instant(v * 1_000_000)
}
fn cfg(progress: u64, hard: u64, request: u64) -> AuditConfig {
    AuditConfig::new(
        Duration::from_secs(progress),
        Duration::from_secs(hard),
        Duration::from_secs(request),
    )
    .expect("valid config")
}
fn events(a: &mut Audit) -> Vec<AuditEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}
/// `got` is the histogram's report of `want`: at least it, within 0.1%.
fn near(got: u64, want: u64) -> bool {
    got >= want && got - want <= want / 1000
}

#[test]
fn honest_run_exact_metrics() {
    let mut a = Audit::new(AuditConfig::default(), ms(0));
    a.connected(ms(50));
    let mut t = 50;
    for i in 0..10u64 {
        // 5 ms of attestor think time between requests: not transfer time.
        t += 5;
        a.request_sent(ms(t), i, 100 + i);
        a.first_byte(ms(t + 20), i);
        a.bytes(ms(t + 60), i, 32 * 1024);
        a.bytes(ms(t + 100), i, 32 * 1024);
        a.block_done(ms(t + 100), i, BlockResult::Ok { bytes: 65536 });
        t += 100;
    }
    assert!(events(&mut a).is_empty());
    let s = a.finish(ms(t + 1000));
    assert_eq!(
        events(&mut a),
        vec![AuditEvent::Stopped(Outcome::Completed)]
    );
    assert_eq!(s.requests, 10);
    assert_eq!(s.ok_blocks, 10);
    assert_eq!(s.bytes_received, 655_360);
    assert_eq!(
        s.throughput_bps, 655_360,
        "10 × 64 KiB over 1 s of transfer"
    );
    assert!(
        near(s.throughput_p50_bps, 655_360),
        "{}",
        s.throughput_p50_bps
    );
    for l in [
        s.latency_p50_us,
        s.latency_p90_us,
        s.latency_p99_us,
        s.latency_max_us,
    ] {
        assert!(near(l, 100_000), "{l}");
    }
    assert!(near(s.ttfb_p50_us, 20_000) && near(s.ttfb_p99_us, 20_000));
    assert_eq!(s.connect_time_us, 50_000);
    assert_eq!((s.lacks_data, s.misbehaved, s.timeouts), (0, 0, 0));
    assert_eq!(s.outcome, Outcome::Completed);
    assert_eq!(s.availability_ppm(), 1_000_000);
    assert!(a.failures().is_empty());
    assert_eq!(a.ignored_inputs(), 0);
    assert_eq!(a.finish(secs(999)), s, "finish is idempotent");
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn overlapping_requests_count_transfer_time_once() {
    let mut a = Audit::new(AuditConfig::default(), ms(0));
    a.connected(ms(0));
    a.request_sent(ms(0), 1, 0);
    a.request_sent(ms(500), 2, 1);
    a.block_done(ms(1000), 1, BlockResult::Ok { bytes: 1000 });
    a.block_done(ms(2000), 2, BlockResult::Ok { bytes: 1000 });
    // Idle from 2 s to 10 s, then one more request of 1 s.
    a.request_sent(ms(10_000), 3, 2);
    a.block_done(ms(11_000), 3, BlockResult::Ok { bytes: 1000 });
    let s = a.finish(ms(20_000));
    assert_eq!(s.throughput_bps, 1000, "3000 bytes over 3 s of transfer");
    assert!(near(s.latency_p50_us, 1_000_000));
    assert!(near(s.latency_max_us, 1_500_000));
    // TTFB falls back to completion time when no first byte was reported.
    assert_eq!(s.ttfb_p50_us, s.latency_p50_us);
}

#[test]
fn trickling_peer_stops_at_hard_max() {
    let mut a = Audit::new(cfg(10, 60, 60), secs(0));
    a.connected(secs(0));
    a.request_sent(secs(0), 7, 42);
    let mut t = 0;
    while t + 9 < 60 {
        t += 9;
        a.bytes(secs(t), 7, 1);
        assert_eq!(a.poll_timeout(), Some(secs((t + 10).min(60))), "t = {t}");
        assert!(!a.is_stopped());
    }
    assert_eq!(t, 54);
    a.handle_timeout(secs(59));
    assert!(!a.is_stopped());
    a.handle_timeout(secs(60));
    assert_eq!(
        events(&mut a),
        vec![AuditEvent::Stopped(Outcome::HardMaxDuration)]
    );
    let s = a.finish(secs(61));
    assert_eq!(s.outcome, Outcome::HardMaxDuration);
    assert_eq!((s.requests, s.ok_blocks, s.timeouts), (1, 0, 1));
    assert_eq!(
        a.failures(),
        &[Failure {
            block_index: 42,
            kind: FailureKind::Timeout
        }]
    );
}

#[test]
fn stalled_peer_hits_progress_timeout() {
    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.connected(secs(1));
    for id in 0..4 {
        a.request_sent(secs(1), id, id);
    }
    a.block_done(ms(1100), 0, BlockResult::Ok { bytes: 1010 });
    assert_eq!(a.poll_timeout(), Some(ms(11_100)));
    a.handle_timeout(ms(11_099));
    assert!(events(&mut a).is_empty());
    // The driver may wake late: the stop still happens at the deadline.
    a.handle_timeout(ms(30_000));
    assert_eq!(
        events(&mut a),
        vec![AuditEvent::Stopped(Outcome::ProgressTimeout)]
    );
    assert_eq!(a.poll_timeout(), None);
    // Stopped: later inputs are ignored, without counting them.
    a.block_done(ms(30_001), 1, BlockResult::Ok { bytes: 10 });
    a.request_sent(ms(30_002), 9, 9);
    a.connect_failed(ms(30_003));
    assert!(events(&mut a).is_empty());
    let s = a.finish(ms(40_000));
    assert_eq!(s.outcome, Outcome::ProgressTimeout);
    assert_eq!((s.requests, s.ok_blocks, s.timeouts), (4, 1, 3));
    assert_eq!(
        s.throughput_bps, 100,
        "1010 bytes over 10.1 s in flight (1.0 → 11.1)"
    );
    assert_eq!(a.ignored_inputs(), 0);
}

#[test]
fn connection_phase() {
    let mut a = Audit::new(AuditConfig::default(), secs(0));
    assert_eq!(a.poll_timeout(), Some(secs(10)));
    a.handle_timeout(secs(10));
    assert_eq!(
        events(&mut a),
        vec![AuditEvent::Stopped(Outcome::ConnectFailed)]
    );
    assert_eq!(
        a.finish(secs(11)),
        MetricSummary::empty(Outcome::ConnectFailed)
    );

    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.request_sent(secs(1), 1, 1); // before connected: ignored
    a.connect_failed(secs(2));
    assert_eq!(a.outcome(), Some(Outcome::ConnectFailed));
    assert_eq!(a.ignored_inputs(), 1);
    assert_eq!(a.finish(secs(3)).requests, 0);

    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.connected(secs(1));
    a.connected(secs(2)); // ignored, counted
    assert_eq!(a.ignored_inputs(), 1);
    // Connected but idle: only the hard maximum is armed.
    assert_eq!(a.poll_timeout(), Some(secs(60)));
    let s = a.finish(secs(5));
    assert_eq!(
        (s.connect_time_us, s.outcome),
        (1_000_000, Outcome::Completed)
    );
}

#[test]
fn lacks_data_and_misbehavior_counted_apart() {
    let mut a = Audit::new(AuditConfig::default(), ms(0));
    a.connected(ms(0));
    let results = [
        BlockResult::Ok { bytes: 100 },
        BlockResult::LacksData,
        BlockResult::Misbehaved(Misbehavior::BadProof),
        BlockResult::LacksData,
        BlockResult::Misbehaved(Misbehavior::BadData),
        BlockResult::Misbehaved(Misbehavior::BadReceipt),
    ];
    for (i, r) in (0u64..).zip(results) {
        a.request_sent(ms(i * 10), i, 1000 + i);
        a.block_done(ms(i * 10 + 5), i, r);
    }
    let s = a.finish(ms(100));
    assert_eq!(
        (s.requests, s.ok_blocks, s.lacks_data, s.misbehaved),
        (6, 1, 2, 3)
    );
    assert_eq!(s.bytes_received, 100, "failed blocks are not goodput");
    assert_eq!(s.availability_ppm(), 166_666);
    let kinds: Vec<_> = a
        .failures()
        .iter()
        .map(|f| (f.block_index, f.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1001, FailureKind::LacksData),
            (1002, FailureKind::BadProof),
            (1003, FailureKind::LacksData),
            (1004, FailureKind::BadData),
            (1005, FailureKind::BadReceipt),
        ]
    );
    assert_eq!(
        a.failures()
            .iter()
            .filter(|f| f.kind.is_misbehavior())
            .count(),
        3
    );
}

#[test]
fn skipped_request_times_out_while_others_progress() {
    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.connected(secs(0));
    a.request_sent(secs(0), 99, 5); // never answered
    for i in 0..5u64 {
        a.request_sent(secs(i * 5), i, i);
        a.block_done(secs(i * 5 + 4), i, BlockResult::Ok { bytes: 1 });
    }
    assert_eq!(
        events(&mut a),
        vec![AuditEvent::Timeout {
            req_id: 99,
            block_index: 5
        }]
    );
    assert!(!a.is_stopped());
    let s = a.finish(secs(30));
    assert_eq!((s.requests, s.ok_blocks, s.timeouts), (6, 5, 1));
    assert_eq!(s.outcome, Outcome::Completed);
}

#[test]
fn nonsense_inputs_are_ignored_and_counted() {
    let mut a = Audit::new(AuditConfig::default(), secs(100));
    a.connected(secs(100));
    a.first_byte(secs(101), 1); // unknown
    a.request_sent(secs(101), 1, 1);
    a.request_sent(secs(101), 1, 2); // duplicate id in flight
    a.bytes(secs(101), 1, 0); // empty read: not progress, not counted
    a.block_done(secs(102), 1, BlockResult::Ok { bytes: 8 });
    a.block_done(secs(103), 1, BlockResult::LacksData); // duplicate completion
    // Time going backwards is clamped to the latest time seen (103 s).
    a.request_sent(secs(5), 2, 3);
    a.block_done(secs(6), 2, BlockResult::Ok { bytes: 8 });
    assert_eq!(a.ignored_inputs(), 3);
    let s = a.finish(secs(0));
    assert_eq!((s.requests, s.ok_blocks, s.lacks_data), (2, 2, 0));
    assert_eq!(s.latency_p50_us, 0, "the clamped request took no time");
    assert!(near(s.latency_max_us, 1_000_000));
    // Reusing an id after completion is a new request.
    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.connected(secs(0));
    for _ in 0..3 {
        a.request_sent(secs(1), 1, 1);
        a.block_done(secs(1), 1, BlockResult::LacksData);
    }
    assert_eq!(a.finish(secs(2)).lacks_data, 3);
}

#[test]
fn failures_and_in_flight_are_bounded() {
    let mut a = Audit::new(AuditConfig::default(), secs(0));
    a.connected(secs(0));
    for i in 0..(MAX_IN_FLIGHT as u64 + 10) {
        a.request_sent(secs(0), i, i);
    }
    assert_eq!(a.in_flight(), MAX_IN_FLIGHT);
    assert_eq!(a.ignored_inputs(), 10);
    for i in 0..100 {
        a.block_done(secs(1), i, BlockResult::LacksData);
    }
    assert_eq!(a.failures().len(), MAX_FAILURES);
    assert_eq!(a.failures()[63].block_index, 63);
    let s = a.finish(secs(2));
    assert_eq!(s.lacks_data, 100);
    assert_eq!(s.timeouts, MAX_IN_FLIGHT as u32 - 100);
}

#[derive(Clone, Debug)]
enum Op {
    Connected,
    ConnectFailed,
    Sent(u8, u64),
    FirstByte(u8),
    Bytes(u8, u64),
    Done(u8, BlockResult),
    Timeout,
    Finish,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..6;
    let result = prop_oneof![
        any::<u64>().prop_map(|bytes| BlockResult::Ok { bytes }),
        Just(BlockResult::LacksData),
        Just(BlockResult::Misbehaved(Misbehavior::BadProof)),
        Just(BlockResult::Misbehaved(Misbehavior::BadReceipt)),
    ];
    prop_oneof![
        2 => Just(Op::Connected),
        1 => Just(Op::ConnectFailed),
        6 => (id.clone(), any::<u64>()).prop_map(|(i, b)| Op::Sent(i, b)),
        3 => id.clone().prop_map(Op::FirstByte),
        3 => (id.clone(), 0u64..4).prop_map(|(i, n)| Op::Bytes(i, n)),
        6 => (id, result).prop_map(|(i, r)| Op::Done(i, r)),
        3 => Just(Op::Timeout),
        1 => Just(Op::Finish),
    ]
}

/// A time step: mostly forward by up to 15 s, sometimes backwards, sometimes a jump.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 0i64..15_000_000,
        1 => -5_000_000i64..0,
        1 => any::<i64>(),
    ]
}

fn check(a: &Audit, latest: Instant, stops: usize) -> Result<(), TestCaseError> {
    let s = a.summary();
    prop_assert!(s.well_formed(), "{:?}", s);
    let ended = u64::from(s.ok_blocks)
        + u64::from(s.lacks_data)
        + u64::from(s.misbehaved)
        + u64::from(s.timeouts);
    prop_assert_eq!(ended + a.in_flight() as u64, u64::from(s.requests));
    let failed = s.lacks_data + s.misbehaved + s.timeouts;
    prop_assert_eq!(a.failures().len(), (failed as usize).min(MAX_FAILURES));
    prop_assert_eq!(stops, usize::from(a.is_stopped()));
    if let Some(t) = a.poll_timeout() {
        prop_assert!(t > latest, "deadline {:?} due by {:?}", t, latest);
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_operations_never_panic(
        pt in 1u64..20_000_000,
        extra in 0u64..60_000_000,
        rt in 1u64..80_000_000,
        start in any::<u64>(),
        ops in prop::collection::vec((op(), step()), 0..60),
    ) {
        let hard = pt + extra;
        let cfg = AuditConfig::new(
            Duration::from_micros(pt),
            Duration::from_micros(hard),
            Duration::from_micros(rt.min(hard)),
        ).expect("valid by construction");
        let mut t = Instant(start);
        let mut latest = t;
        let mut a = Audit::new(cfg, t);
        let mut stops = 0;
        for (op, dt) in ops {
            t = Instant(t.0.saturating_add_signed(dt));
            latest = latest.max(t);
            match op {
                Op::Connected => a.connected(t),
                Op::ConnectFailed => a.connect_failed(t),
                Op::Sent(i, b) => a.request_sent(t, i.into(), b),
                Op::FirstByte(i) => a.first_byte(t, i.into()),
                Op::Bytes(i, n) => a.bytes(t, i.into(), n),
                Op::Done(i, r) => a.block_done(t, i.into(), r),
                Op::Timeout => a.handle_timeout(t),
                Op::Finish => {
                    a.finish(t);
                }
            }
            while let Some(e) = a.poll_event() {
                if let AuditEvent::Stopped(o) = e {
                    prop_assert_eq!(Some(o), a.outcome());
                    stops += 1;
                }
            }
            check(&a, latest, stops)?;
        }
        let s = a.finish(t);
        stops += std::iter::from_fn(|| a.poll_event())
            .filter(|e| matches!(e, AuditEvent::Stopped(_)))
            .count();
        check(&a, latest, stops)?;
        prop_assert!(s.counts_consistent());
        prop_assert_eq!(a.in_flight(), 0);
        prop_assert_eq!(a.finish(Instant(u64::MAX)), s);
        let mut w = Writer::new();
        s.encode(&mut w);
        let bytes = w.into_bytes();
        prop_assert_eq!(MetricSummary::decode(&mut Reader::new(&bytes)), Ok(s));
    }
}
