//! Nested decoders `metrics::Sla` and `metrics::MetricSummary`, then settlement on what
//! decoded: `aggregate`, `outliers`, `Sla::verdict`.
//!
//! Input: `tolerance_percent: u32 || Sla || MetricSummary*` (at most 64 summaries). The
//! whole input must be consumed and re-encode to the same bytes.
#![no_main]

use datdot_protocol::codec::{Decode, Encode, Reader, Writer};
use datdot_protocol::metrics::{MetricSummary, PPM, Sla, aggregate, outliers};
use libfuzzer_sys::fuzz_target;

const MAX_REPORTS: usize = 64;

/// Every field as a u64, in declaration order (outcome excluded).
fn fields(s: &MetricSummary) -> [u64; 15] {
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

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let Ok(tolerance) = r.u32() else { return };
    let Ok(sla) = Sla::decode(&mut r) else { return };
    let mut reports = Vec::new();
    while r.remaining() > 0 && reports.len() < MAX_REPORTS {
        match MetricSummary::decode(&mut r) {
            Ok(s) => reports.push(s),
            Err(_) => return,
        }
    }
    if r.remaining() != 0 {
        return; // trailing bytes: not a valid input
    }

    // Canonical: re-encoding gives back the input.
    let mut w = Writer::new();
    w.u32(tolerance);
    sla.encode(&mut w);
    for s in &reports {
        assert!(s.well_formed(), "decoder accepted {s:?}");
        s.encode(&mut w);
    }
    assert_eq!(w.into_bytes(), data);

    for s in &reports {
        assert!(s.availability_ppm() <= PPM);
        let _ = sla.verdict(s).passed();
    }
    let Some(median) = aggregate(&reports) else {
        assert!(reports.is_empty());
        return;
    };
    // Documented: the aggregate of well-formed reports is well formed, and every metric
    // is a value some report carries.
    assert!(
        median.well_formed(),
        "aggregate {median:?} is not well formed"
    );
    let mf = fields(&median);
    for (i, v) in mf.iter().enumerate() {
        assert!(
            reports.iter().any(|s| fields(s)[i] == *v),
            "metric {i} = {v} is no report's value"
        );
    }
    assert!(reports.iter().any(|s| s.outcome == median.outcome));
    let flags = outliers(&reports, &median, tolerance);
    assert_eq!(flags.len(), reports.len());
    let _ = sla.verdict(&median).failed_clauses().count();
});
