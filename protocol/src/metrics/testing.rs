//! Shared helpers for the metrics tests.

use alloc::vec::Vec;

use proptest::prelude::*;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

use super::{MetricSummary, Outcome};

/// Decode a nested value, rejecting trailing bytes (as `codec::from_bytes` does for
/// top-level messages).
pub(crate) fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = T::decode(&mut r)?;
    match r.remaining() {
        0 => Ok(v),
        n => Err(DecodeError::Trailing(n)),
    }
}

pub(crate) fn encode<T: Encode>(v: &T) -> Vec<u8> {
    let mut w = Writer::new();
    v.encode(&mut w);
    w.into_bytes()
}

/// Every metric as u64, in field order (outcome excluded).
pub(crate) fn fields(s: &MetricSummary) -> [u64; 15] {
    [
        s.requests.into(),
        s.ok_blocks.into(),
        s.bytes_received,
        s.latency_p50_us,
        s.latency_p90_us,
        s.latency_p99_us,
        s.latency_max_us,
        s.ttfb_p50_us,
        s.ttfb_p99_us,
        s.throughput_bps,
        s.throughput_p50_bps,
        s.connect_time_us,
        s.lacks_data.into(),
        s.misbehaved.into(),
        s.timeouts.into(),
    ]
}

pub(crate) fn outcome() -> impl Strategy<Value = Outcome> {
    prop::sample::select(Outcome::ALL.to_vec())
}

/// Any field values, well-formed or not: what a liar might claim.
pub(crate) fn any_summary() -> impl Strategy<Value = MetricSummary> {
    (any::<[u32; 5]>(), any::<[u64; 10]>(), outcome()).prop_map(|(a, b, outcome)| MetricSummary {
        requests: a[0],
        ok_blocks: a[1],
        lacks_data: a[2],
        misbehaved: a[3],
        timeouts: a[4],
        bytes_received: b[0],
        latency_p50_us: b[1],
        latency_p90_us: b[2],
        latency_p99_us: b[3],
        latency_max_us: b[4],
        ttfb_p50_us: b[5],
        ttfb_p99_us: b[6],
        throughput_bps: b[7],
        throughput_p50_bps: b[8],
        connect_time_us: b[9],
        outcome,
    })
}

/// A well-formed summary: counts clamped to `requests`, percentiles sorted.
pub(crate) fn well_formed_summary() -> impl Strategy<Value = MetricSummary> {
    any_summary().prop_map(|mut s| {
        if !s.conclusive() {
            return MetricSummary::empty(Outcome::NotAudited);
        }
        let r = s.requests;
        s.ok_blocks = s.ok_blocks.min(r);
        s.lacks_data = s.lacks_data.min(r);
        s.misbehaved = s.misbehaved.min(r);
        s.timeouts = s.timeouts.min(r);
        let mut lat = [
            s.latency_p50_us,
            s.latency_p90_us,
            s.latency_p99_us,
            s.latency_max_us,
        ];
        lat.sort_unstable();
        [
            s.latency_p50_us,
            s.latency_p90_us,
            s.latency_p99_us,
            s.latency_max_us,
        ] = lat;
        if s.ttfb_p50_us > s.ttfb_p99_us {
            core::mem::swap(&mut s.ttfb_p50_us, &mut s.ttfb_p99_us);
        }
        s
    })
}

/// A well-formed summary of an audit (not [`Outcome::NotAudited`]).
pub(crate) fn audit_summary() -> impl Strategy<Value = MetricSummary> {
    well_formed_summary().prop_filter("an audit", MetricSummary::conclusive)
}

pub(crate) fn sample() -> MetricSummary {
    MetricSummary {
        requests: 10,
        ok_blocks: 9,
        bytes_received: 9 * 65536,
        latency_p50_us: 100_000,
        latency_p90_us: 120_000,
        latency_p99_us: 150_000,
        latency_max_us: 150_000,
        ttfb_p50_us: 20_000,
        ttfb_p99_us: 40_000,
        throughput_bps: 655_360,
        throughput_p50_bps: 655_360,
        connect_time_us: 30_000,
        lacks_data: 1,
        misbehaved: 0,
        timeouts: 0,
        outcome: Outcome::Completed,
    }
}
