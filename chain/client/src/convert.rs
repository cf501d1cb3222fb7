//! The chain's generated types as the protocol's.

use datdot_protocol::metrics::{MetricSummary, Outcome, Sla};

use crate::{Endpoint, Metrics, SlaTerms, datdot};

/// Wrap bytes in the generated `BoundedVec` type (the chain checks the bound).
pub fn bounded(
    bytes: Vec<u8>,
) -> datdot::runtime_types::bounded_collections::bounded_vec::BoundedVec<u8> {
    datdot::runtime_types::bounded_collections::bounded_vec::BoundedVec(bytes)
}

/// An endpoint with a `host:port` address.
pub fn endpoint(addr: &str, noise_key: [u8; 32], signing_key: [u8; 32]) -> Endpoint {
    Endpoint {
        addr: bounded(addr.as_bytes().to_vec()),
        noise_key,
        signing_key,
    }
}

/// The chain's stored metrics as the protocol's summary (what the pallet settled on).
pub fn summary(m: &Metrics) -> MetricSummary {
    MetricSummary {
        requests: m.requests,
        ok_blocks: m.ok_blocks,
        bytes_received: m.bytes_received,
        latency_p50_us: m.latency_p50_us,
        latency_p90_us: m.latency_p90_us,
        latency_p99_us: m.latency_p99_us,
        latency_max_us: m.latency_max_us,
        ttfb_p50_us: m.ttfb_p50_us,
        ttfb_p99_us: m.ttfb_p99_us,
        throughput_bps: m.throughput_bps,
        throughput_p50_bps: m.throughput_p50_bps,
        connect_time_us: m.connect_time_us,
        lacks_data: m.lacks_data,
        misbehaved: m.misbehaved,
        timeouts: m.timeouts,
        outcome: Outcome::from_u8(m.outcome).unwrap_or(Outcome::ConnectFailed),
    }
}

/// The plan's SLA as the protocol's type.
pub fn sla(s: &SlaTerms) -> Sla {
    Sla {
        min_throughput_bps: s.min_throughput_bps,
        max_p99_latency_us: s.max_p99_latency_us,
        min_availability_ppm: s.min_availability_ppm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_round_trips_the_outcome() {
        let m = Metrics {
            requests: 1,
            ok_blocks: 1,
            bytes_received: 2,
            latency_p50_us: 3,
            latency_p90_us: 4,
            latency_p99_us: 5,
            latency_max_us: 6,
            ttfb_p50_us: 7,
            ttfb_p99_us: 8,
            throughput_bps: 9,
            throughput_p50_bps: 10,
            connect_time_us: 11,
            lacks_data: 0,
            misbehaved: 0,
            timeouts: 0,
            outcome: Outcome::ProgressTimeout.to_u8(),
        };
        let s = summary(&m);
        assert_eq!(s.outcome, Outcome::ProgressTimeout);
        assert_eq!((s.throughput_bps, s.latency_p99_us), (9, 5));
    }
}
