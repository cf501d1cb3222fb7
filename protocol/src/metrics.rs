//! Audit metrics as the chain sees them: one attestor's [`MetricSummary`] of one hoster,
//! the per-metric median across a committee's reports ([`aggregate`]), outlier flags
//! ([`outliers`]) and the SLA verdict ([`Sla::verdict`]).
//!
//! `no_std` + `alloc` and integer-only, so the chain pallet settles with exactly the
//! arithmetic every client uses. The HDR-histogram accumulator that *produces* a summary
//! lives in `audit` (feature `std`).

use alloc::vec::Vec;

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

/// Parts per million: the unit of [`MetricSummary::availability_ppm`].
pub const PPM: u32 = 1_000_000;

/// How an audit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The attestor requested its whole sample (each request ended: served, refused,
    /// failed or timed out).
    Completed,
    /// The hoster could not be reached, or the connection did not complete in time.
    ConnectFailed,
    /// Requests were in flight but the hoster sent nothing for the progress timeout.
    ProgressTimeout,
    /// The audit hit its hard maximum duration (e.g. a hoster trickling bytes).
    HardMaxDuration,
}

impl Outcome {
    /// All outcomes, in wire order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Completed,
        Outcome::ConnectFailed,
        Outcome::ProgressTimeout,
        Outcome::HardMaxDuration,
    ];

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::ConnectFailed => 1,
            Outcome::ProgressTimeout => 2,
            Outcome::HardMaxDuration => 3,
        }
    }

    /// The outcome for a wire value; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// How bad the outcome is for the hoster, used to break ties in [`aggregate`]:
    /// `Completed` (0) < `HardMaxDuration` (1, slow but serving) < `ProgressTimeout`
    /// (2, stalled) < `ConnectFailed` (3, unreachable).
    pub fn severity(self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::HardMaxDuration => 1,
            Outcome::ProgressTimeout => 2,
            Outcome::ConnectFailed => 3,
        }
    }
}

impl Encode for Outcome {
    fn encode(&self, w: &mut Writer) {
        w.u8(self.to_u8());
    }
}

impl Decode for Outcome {
    const MIN_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Outcome::from_u8(r.u8()?).ok_or(DecodeError::Invalid("outcome"))
    }
}

/// Why a requested block was not counted as served.
///
/// *Lacks data* (the peer says it does not have the block, or sent nothing for it) is
/// kept apart from *misbehaved* (what it sent is provably wrong): only the latter is
/// evidence of fraud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The peer said it lacks the block, or answered without data.
    LacksData,
    /// The request got no answer within the request timeout, or the audit ended first.
    Timeout,
    /// The merkle proof did not verify against the feed's signed root.
    BadProof,
    /// The block data did not match its proven hash.
    BadData,
    /// The hoster's signed receipt contradicts what it served.
    BadReceipt,
}

impl FailureKind {
    /// Whether this failure is evidence that the peer misbehaved.
    pub fn is_misbehavior(self) -> bool {
        matches!(
            self,
            FailureKind::BadProof | FailureKind::BadData | FailureKind::BadReceipt
        )
    }

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            FailureKind::LacksData => 0,
            FailureKind::Timeout => 1,
            FailureKind::BadProof => 2,
            FailureKind::BadData => 3,
            FailureKind::BadReceipt => 4,
        }
    }

    /// The kind for a wire value; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => FailureKind::LacksData,
            1 => FailureKind::Timeout,
            2 => FailureKind::BadProof,
            3 => FailureKind::BadData,
            4 => FailureKind::BadReceipt,
            _ => return None,
        })
    }
}

impl Encode for FailureKind {
    fn encode(&self, w: &mut Writer) {
        w.u8(self.to_u8());
    }
}

impl Decode for FailureKind {
    const MIN_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        FailureKind::from_u8(r.u8()?).ok_or(DecodeError::Invalid("failure kind"))
    }
}

/// One failed block of an audit, as listed in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Failure {
    /// The block's index in the feed.
    pub block_index: u64,
    /// What went wrong.
    pub kind: FailureKind,
}

impl Encode for Failure {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.block_index);
        self.kind.encode(w);
    }
}

impl Decode for Failure {
    const MIN_SIZE: usize = 9;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Failure {
            block_index: r.u64()?,
            kind: FailureKind::decode(r)?,
        })
    }
}

/// One attestor's audit of one hoster, summarised in fixed-size integers.
///
/// Times are microseconds, throughputs bytes per second. Latency, TTFB and per-request
/// throughput are over *served* (verified) blocks only; a summary with no served block
/// reports them as 0.
///
/// A summary is *well-formed* ([`MetricSummary::well_formed`], enforced by decoding) when
/// each of `ok_blocks`, `lacks_data`, `misbehaved`, `timeouts` is at most `requests`,
/// `latency_p50 ≤ p90 ≤ p99 ≤ max` and `ttfb_p50 ≤ ttfb_p99`. These survive
/// [`aggregate`] (a per-metric order statistic preserves any componentwise `≤`); the
/// stronger per-audit rule `ok + lacks + misbehaved + timeouts ≤ requests`
/// ([`MetricSummary::counts_consistent`]) does not, so decoding does not enforce it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetricSummary {
    /// Blocks requested.
    pub requests: u32,
    /// Blocks received and verified.
    pub ok_blocks: u32,
    /// Bytes in verified blocks (goodput; failed or unverified data is not counted).
    pub bytes_received: u64,
    /// Median request latency (request sent → block done).
    pub latency_p50_us: u64,
    /// 90th-percentile request latency.
    pub latency_p90_us: u64,
    /// 99th-percentile request latency.
    pub latency_p99_us: u64,
    /// Largest request latency.
    pub latency_max_us: u64,
    /// Median time to first byte (request sent → first byte of the response).
    pub ttfb_p50_us: u64,
    /// 99th-percentile time to first byte.
    pub ttfb_p99_us: u64,
    /// `bytes_received` over the time at least one request was in flight.
    pub throughput_bps: u64,
    /// Median per-request throughput (block bytes over that request's latency).
    pub throughput_p50_bps: u64,
    /// Time from the start of the audit to the connection being ready; 0 if it never was.
    pub connect_time_us: u64,
    /// Requests the hoster answered without the block.
    pub lacks_data: u32,
    /// Requests answered with a bad proof, bad data or a bad receipt.
    pub misbehaved: u32,
    /// Requests that timed out (including those still in flight when the audit ended).
    pub timeouts: u32,
    /// How the audit ended.
    pub outcome: Outcome,
}

impl MetricSummary {
    /// The encoded size in bytes (every field is fixed-width).
    pub const ENCODED_SIZE: usize = 4 + 4 + 8 + 9 * 8 + 3 * 4 + 1;

    /// A summary of an audit that requested nothing.
    pub const fn empty(outcome: Outcome) -> Self {
        MetricSummary {
            requests: 0,
            ok_blocks: 0,
            bytes_received: 0,
            latency_p50_us: 0,
            latency_p90_us: 0,
            latency_p99_us: 0,
            latency_max_us: 0,
            ttfb_p50_us: 0,
            ttfb_p99_us: 0,
            throughput_bps: 0,
            throughput_p50_bps: 0,
            connect_time_us: 0,
            lacks_data: 0,
            misbehaved: 0,
            timeouts: 0,
            outcome,
        }
    }

    /// Served blocks per requested block, in parts per million (0 when nothing was
    /// requested; capped at [`PPM`]).
    pub fn availability_ppm(&self) -> u32 {
        if self.requests == 0 {
            return 0;
        }
        let ppm = u64::from(self.ok_blocks) * u64::from(PPM) / u64::from(self.requests);
        u32::try_from(ppm.min(u64::from(PPM))).unwrap_or(PPM)
    }

    /// The invariants decoding enforces (see the type's documentation).
    pub fn well_formed(&self) -> bool {
        let r = self.requests;
        self.ok_blocks <= r
            && self.lacks_data <= r
            && self.misbehaved <= r
            && self.timeouts <= r
            && self.latency_p50_us <= self.latency_p90_us
            && self.latency_p90_us <= self.latency_p99_us
            && self.latency_p99_us <= self.latency_max_us
            && self.ttfb_p50_us <= self.ttfb_p99_us
    }

    /// `ok + lacks + misbehaved + timeouts ≤ requests`: true of every single audit, not
    /// necessarily of an [`aggregate`].
    pub fn counts_consistent(&self) -> bool {
        let ended = u64::from(self.ok_blocks)
            + u64::from(self.lacks_data)
            + u64::from(self.misbehaved)
            + u64::from(self.timeouts);
        ended <= u64::from(self.requests)
    }
}

impl Encode for MetricSummary {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.requests);
        w.u32(self.ok_blocks);
        w.u64(self.bytes_received);
        w.u64(self.latency_p50_us);
        w.u64(self.latency_p90_us);
        w.u64(self.latency_p99_us);
        w.u64(self.latency_max_us);
        w.u64(self.ttfb_p50_us);
        w.u64(self.ttfb_p99_us);
        w.u64(self.throughput_bps);
        w.u64(self.throughput_p50_bps);
        w.u64(self.connect_time_us);
        w.u32(self.lacks_data);
        w.u32(self.misbehaved);
        w.u32(self.timeouts);
        self.outcome.encode(w);
    }
}

impl Decode for MetricSummary {
    const MIN_SIZE: usize = Self::ENCODED_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = MetricSummary {
            requests: r.u32()?,
            ok_blocks: r.u32()?,
            bytes_received: r.u64()?,
            latency_p50_us: r.u64()?,
            latency_p90_us: r.u64()?,
            latency_p99_us: r.u64()?,
            latency_max_us: r.u64()?,
            ttfb_p50_us: r.u64()?,
            ttfb_p99_us: r.u64()?,
            throughput_bps: r.u64()?,
            throughput_p50_bps: r.u64()?,
            connect_time_us: r.u64()?,
            lacks_data: r.u32()?,
            misbehaved: r.u32()?,
            timeouts: r.u32()?,
            outcome: Outcome::decode(r)?,
        };
        if !s.well_formed() {
            return Err(DecodeError::Invalid("metric summary"));
        }
        Ok(s)
    }
}

/// The lower median of `f` over non-empty `reports`: the element at index `(n - 1) / 2`
/// of the sorted values, so for an even count the smaller of the two middle values.
///
/// It is always one of the reported values (no averaging, no rounding) and, while fewer
/// than half of the reports lie (`2·liars < n`), it lies between the smallest and the
/// largest honest value, whatever the liars report.
fn lower_median<T: Ord + Copy>(reports: &[MetricSummary], f: impl Fn(&MetricSummary) -> T) -> T {
    let mut values: Vec<T> = reports.iter().map(f).collect();
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// The committee's view of a hoster: the per-metric lower median of `reports` (see
/// [`lower_median`]: index `(n - 1) / 2` of the sorted values), and as outcome the most
/// common one, ties going to the worst by [`Outcome::severity`]. `None` if there are no
/// reports.
///
/// Each metric is taken independently, so the result need not equal any one report; it
/// is well-formed whenever every report is.
pub fn aggregate(reports: &[MetricSummary]) -> Option<MetricSummary> {
    if reports.is_empty() {
        return None;
    }
    let mut counts = [0usize; 4];
    for r in reports {
        counts[usize::from(r.outcome.to_u8())] += 1;
    }
    let outcome = Outcome::ALL
        .into_iter()
        .max_by_key(|o| (counts[usize::from(o.to_u8())], o.severity()))
        .unwrap_or(Outcome::Completed);
    let m = |f: fn(&MetricSummary) -> u64| lower_median(reports, f);
    let m32 = |f: fn(&MetricSummary) -> u32| lower_median(reports, f);
    Some(MetricSummary {
        requests: m32(|s| s.requests),
        ok_blocks: m32(|s| s.ok_blocks),
        bytes_received: m(|s| s.bytes_received),
        latency_p50_us: m(|s| s.latency_p50_us),
        latency_p90_us: m(|s| s.latency_p90_us),
        latency_p99_us: m(|s| s.latency_p99_us),
        latency_max_us: m(|s| s.latency_max_us),
        ttfb_p50_us: m(|s| s.ttfb_p50_us),
        ttfb_p99_us: m(|s| s.ttfb_p99_us),
        throughput_bps: m(|s| s.throughput_bps),
        throughput_p50_bps: m(|s| s.throughput_p50_bps),
        connect_time_us: m(|s| s.connect_time_us),
        lacks_data: m32(|s| s.lacks_data),
        misbehaved: m32(|s| s.misbehaved),
        timeouts: m32(|s| s.timeouts),
        outcome,
    })
}

/// Flags reports that stray from the committee's `median` (normally [`aggregate`]'s
/// result): `out[i]` is true when any *key metric* of `reports[i]` deviates from the
/// median's by more than `tolerance_percent` percent of the median's value, that is
/// `|x - m| · 100 > m · tolerance_percent` in exact integer arithmetic.
///
/// Key metrics: [`availability_ppm`](MetricSummary::availability_ppm), `latency_p50_us`,
/// `latency_p99_us`, `throughput_bps`. A median of 0 tolerates only 0. The outcome is not
/// compared: an honest attestor may fail to connect for reasons of its own.
pub fn outliers(
    reports: &[MetricSummary],
    median: &MetricSummary,
    tolerance_percent: u32,
) -> Vec<bool> {
    let deviates = |x: u64, m: u64| {
        u128::from(x.abs_diff(m)) * 100 > u128::from(m) * u128::from(tolerance_percent)
    };
    reports
        .iter()
        .map(|r| {
            deviates(
                u64::from(r.availability_ppm()),
                u64::from(median.availability_ppm()),
            ) || deviates(r.latency_p50_us, median.latency_p50_us)
                || deviates(r.latency_p99_us, median.latency_p99_us)
                || deviates(r.throughput_bps, median.throughput_bps)
        })
        .collect()
}

/// A clause of an [`Sla`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlaClause {
    /// `throughput_bps >= min_throughput_bps`.
    Throughput,
    /// `latency_p99_us <= max_p99_latency_us`.
    Latency,
    /// `availability_ppm() >= min_availability_ppm`.
    Availability,
}

impl SlaClause {
    /// All clauses.
    pub const ALL: [SlaClause; 3] = [
        SlaClause::Throughput,
        SlaClause::Latency,
        SlaClause::Availability,
    ];

    fn bit(self) -> u8 {
        match self {
            SlaClause::Throughput => 1,
            SlaClause::Latency => 2,
            SlaClause::Availability => 4,
        }
    }
}

/// The result of [`Sla::verdict`]: the set of failed clauses (empty = pass).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlaVerdict {
    failed: u8,
}

impl SlaVerdict {
    /// Every clause met.
    pub const PASS: SlaVerdict = SlaVerdict { failed: 0 };
    const KNOWN_BITS: u8 = 0b111;

    /// Whether every clause was met.
    pub fn passed(self) -> bool {
        self.failed == 0
    }

    /// Whether `clause` failed.
    pub fn failed(self, clause: SlaClause) -> bool {
        self.failed & clause.bit() != 0
    }

    /// The failed clauses, in [`SlaClause::ALL`] order.
    pub fn failed_clauses(self) -> impl Iterator<Item = SlaClause> {
        SlaClause::ALL.into_iter().filter(move |c| self.failed(*c))
    }

    /// `self` with `clause` marked failed.
    pub fn with_failed(self, clause: SlaClause) -> Self {
        SlaVerdict {
            failed: self.failed | clause.bit(),
        }
    }
}

impl Encode for SlaVerdict {
    fn encode(&self, w: &mut Writer) {
        w.u8(self.failed);
    }
}

impl Decode for SlaVerdict {
    const MIN_SIZE: usize = 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let failed = r.u8()?;
        if failed & !Self::KNOWN_BITS != 0 {
            return Err(DecodeError::Invalid("sla verdict"));
        }
        Ok(SlaVerdict { failed })
    }
}

/// A hosting plan's service level, checked against the aggregated metrics.
///
/// Bounds are inclusive: a hoster exactly at a bound passes that clause. Decoding rejects
/// `min_availability_ppm` above [`PPM`] (unsatisfiable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sla {
    /// Minimum `throughput_bps`.
    pub min_throughput_bps: u64,
    /// Maximum `latency_p99_us`.
    pub max_p99_latency_us: u64,
    /// Minimum availability, parts per million.
    pub min_availability_ppm: u32,
}

impl Sla {
    /// The encoded size in bytes.
    pub const ENCODED_SIZE: usize = 8 + 8 + 4;

    /// Which clauses `m` fails.
    pub fn verdict(&self, m: &MetricSummary) -> SlaVerdict {
        let mut v = SlaVerdict::PASS;
        if m.throughput_bps < self.min_throughput_bps {
            v = v.with_failed(SlaClause::Throughput);
        }
        if m.latency_p99_us > self.max_p99_latency_us {
            v = v.with_failed(SlaClause::Latency);
        }
        if m.availability_ppm() < self.min_availability_ppm {
            v = v.with_failed(SlaClause::Availability);
        }
        v
    }
}

impl Encode for Sla {
    fn encode(&self, w: &mut Writer) {
        w.u64(self.min_throughput_bps);
        w.u64(self.max_p99_latency_us);
        w.u32(self.min_availability_ppm);
    }
}

impl Decode for Sla {
    const MIN_SIZE: usize = Self::ENCODED_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let sla = Sla {
            min_throughput_bps: r.u64()?,
            max_p99_latency_us: r.u64()?,
            min_availability_ppm: r.u32()?,
        };
        if sla.min_availability_ppm > PPM {
            return Err(DecodeError::Invalid("sla availability"));
        }
        Ok(sla)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    /// Decode a nested value, rejecting trailing bytes (as `codec::from_bytes` does for
    /// top-level messages).
    fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = T::decode(&mut r)?;
        match r.remaining() {
            0 => Ok(v),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn encode<T: Encode>(v: &T) -> Vec<u8> {
        let mut w = Writer::new();
        v.encode(&mut w);
        w.into_bytes()
    }

    /// Every metric as u64, in field order (outcome excluded).
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

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop::sample::select(Outcome::ALL.to_vec())
    }

    /// Any field values, well-formed or not: what a liar might claim.
    fn any_summary() -> impl Strategy<Value = MetricSummary> {
        (any::<[u32; 5]>(), any::<[u64; 10]>(), outcome()).prop_map(|(a, b, outcome)| {
            MetricSummary {
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
            }
        })
    }

    /// A well-formed summary: counts clamped to `requests`, percentiles sorted.
    fn well_formed_summary() -> impl Strategy<Value = MetricSummary> {
        any_summary().prop_map(|mut s| {
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

    fn sample() -> MetricSummary {
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

    #[test]
    fn encoded_size_is_fixed() {
        assert_eq!(MetricSummary::ENCODED_SIZE, 101);
        assert_eq!(encode(&sample()).len(), MetricSummary::ENCODED_SIZE);
        assert_eq!(
            encode(&MetricSummary::empty(Outcome::ConnectFailed)).len(),
            101
        );
        assert_eq!(encode(&Sla::default()).len(), Sla::ENCODED_SIZE);
    }

    #[test]
    fn summary_truncated_trailing_and_bad_outcome_rejected() {
        let good = encode(&sample());
        assert_eq!(decode_exact::<MetricSummary>(&good), Ok(sample()));
        for cut in 0..good.len() {
            assert_eq!(
                decode_exact::<MetricSummary>(&good[..cut]),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode_exact::<MetricSummary>(&long),
            Err(DecodeError::Trailing(1))
        );
        for bad in [4u8, 5, 0x80, 0xff] {
            let mut b = good.clone();
            *b.last_mut().expect("non-empty") = bad;
            assert_eq!(
                decode_exact::<MetricSummary>(&b),
                Err(DecodeError::Invalid("outcome"))
            );
        }
    }

    #[test]
    fn ill_formed_summary_rejected() {
        let bad = [
            MetricSummary {
                ok_blocks: 11,
                ..sample()
            },
            MetricSummary {
                timeouts: 11,
                ..sample()
            },
            MetricSummary {
                latency_p90_us: 99_999,
                ..sample()
            },
            MetricSummary {
                latency_max_us: 1,
                ..sample()
            },
            MetricSummary {
                ttfb_p50_us: 40_001,
                ..sample()
            },
        ];
        for s in bad {
            assert!(!s.well_formed());
            assert_eq!(
                decode_exact::<MetricSummary>(&encode(&s)),
                Err(DecodeError::Invalid("metric summary"))
            );
        }
    }

    #[test]
    fn small_codecs_reject_unknown_values() {
        for v in [5u8, 0xff] {
            assert!(decode_exact::<FailureKind>(&[v]).is_err());
        }
        let f = Failure {
            block_index: 7,
            kind: FailureKind::BadReceipt,
        };
        assert_eq!(decode_exact::<Failure>(&encode(&f)), Ok(f));
        assert_eq!(
            decode_exact::<SlaVerdict>(&[0b1000]),
            Err(DecodeError::Invalid("sla verdict"))
        );
        let sla = Sla {
            min_availability_ppm: PPM + 1,
            ..Sla::default()
        };
        assert_eq!(
            decode_exact::<Sla>(&encode(&sla)),
            Err(DecodeError::Invalid("sla availability"))
        );
    }

    #[test]
    fn availability_arithmetic() {
        let s = |requests, ok_blocks| MetricSummary {
            requests,
            ok_blocks,
            ..MetricSummary::empty(Outcome::Completed)
        };
        assert_eq!(s(0, 0).availability_ppm(), 0);
        assert_eq!(s(3, 2).availability_ppm(), 666_666);
        assert_eq!(s(3, 3).availability_ppm(), PPM);
        assert_eq!(s(u32::MAX, u32::MAX).availability_ppm(), PPM);
        assert_eq!(s(u32::MAX, u32::MAX - 1).availability_ppm(), 999_999);
        // Ill-formed (never decoded) but still capped, no overflow.
        assert_eq!(s(1, u32::MAX).availability_ppm(), PPM);
    }

    #[test]
    fn verdict_bounds_are_inclusive() {
        let sla = Sla {
            min_throughput_bps: 655_360,
            max_p99_latency_us: 150_000,
            min_availability_ppm: 900_000,
        };
        assert_eq!(sla.verdict(&sample()), SlaVerdict::PASS);
        assert!(sla.verdict(&sample()).passed());
        let slow = MetricSummary {
            throughput_bps: 655_359,
            latency_p99_us: 150_001,
            latency_max_us: 150_001,
            ..sample()
        };
        let v = sla.verdict(&slow);
        assert!(!v.passed());
        assert_eq!(
            v.failed_clauses().collect::<Vec<_>>(),
            vec![SlaClause::Throughput, SlaClause::Latency]
        );
        let flaky = MetricSummary {
            ok_blocks: 8,
            ..sample()
        };
        assert_eq!(
            sla.verdict(&flaky).failed_clauses().collect::<Vec<_>>(),
            vec![SlaClause::Availability]
        );
        // Nothing requested: availability 0 fails any positive minimum, passes a zero one.
        let nothing = MetricSummary::empty(Outcome::ConnectFailed);
        assert!(sla.verdict(&nothing).failed(SlaClause::Availability));
        assert!(Sla::default().verdict(&nothing).passed());
        // Extreme bounds.
        let strict = Sla {
            min_throughput_bps: u64::MAX,
            max_p99_latency_us: 0,
            min_availability_ppm: PPM,
        };
        assert_eq!(strict.verdict(&sample()).failed_clauses().count(), 3);
        let v = strict.verdict(&sample());
        assert_eq!(decode_exact::<SlaVerdict>(&encode(&v)), Ok(v));
    }

    #[test]
    fn lower_median_and_outcome_ties() {
        assert_eq!(aggregate(&[]), None);
        let with = |latency: u64, outcome| MetricSummary {
            latency_p50_us: latency,
            latency_p90_us: latency,
            latency_p99_us: latency,
            latency_max_us: latency,
            outcome,
            ..sample()
        };
        let reports = [
            with(4, Outcome::Completed),
            with(1, Outcome::ProgressTimeout),
            with(3, Outcome::Completed),
            with(2, Outcome::ProgressTimeout),
        ];
        let m = aggregate(&reports).expect("non-empty");
        assert_eq!(m.latency_p50_us, 2, "lower of the two middle values");
        assert_eq!(m.outcome, Outcome::ProgressTimeout, "tie goes to the worst");
        let m = aggregate(&reports[..3]).expect("non-empty");
        assert_eq!(m.latency_p50_us, 3);
        assert_eq!(m.outcome, Outcome::Completed);
        assert_eq!(aggregate(&[sample()]), Some(sample()));
    }

    #[test]
    fn outliers_rule() {
        let median = sample();
        let slower = |p99| MetricSummary {
            latency_p99_us: p99,
            latency_max_us: p99,
            ..sample()
        };
        // 10% of 150_000 = 15_000: 165_000 is in, 165_001 is out.
        let reports = [sample(), slower(165_000), slower(165_001), slower(135_000)];
        assert_eq!(
            outliers(&reports, &median, 10),
            vec![false, false, true, false]
        );
        let zero = MetricSummary::empty(Outcome::Completed);
        assert_eq!(outliers(&[zero, sample()], &zero, 1000), vec![false, true]);
    }

    proptest! {
        #[test]
        fn summary_roundtrip(s in well_formed_summary()) {
            let bytes = encode(&s);
            prop_assert_eq!(bytes.len(), MetricSummary::ENCODED_SIZE);
            prop_assert_eq!(decode_exact::<MetricSummary>(&bytes), Ok(s));
        }

        #[test]
        fn any_summary_decodes_iff_well_formed(s in any_summary()) {
            let decoded = decode_exact::<MetricSummary>(&encode(&s));
            prop_assert_eq!(decoded.is_ok(), s.well_formed());
        }

        #[test]
        fn sla_roundtrip(t in any::<u64>(), l in any::<u64>(), a in 0..=PPM) {
            let sla = Sla { min_throughput_bps: t, max_p99_latency_us: l, min_availability_ppm: a };
            prop_assert_eq!(decode_exact::<Sla>(&encode(&sla)), Ok(sla));
        }

        #[test]
        fn median_resists_a_minority_of_liars(
            honest in prop::collection::vec(well_formed_summary(), 1..12),
            liars in prop::collection::vec(any_summary(), 0..11),
            seed in any::<u64>(),
        ) {
            let keep = liars.len().min(honest.len() - 1);
            let mut all: Vec<MetricSummary> = honest.iter().chain(&liars[..keep]).copied().collect();
            // The order of reports must not matter.
            let n = all.len();
            all.rotate_left(usize::try_from(seed % n as u64).expect("small"));
            let m = fields(&aggregate(&all).expect("non-empty"));
            for (i, got) in m.iter().enumerate() {
                let lo = honest.iter().map(|s| fields(s)[i]).min().expect("non-empty");
                let hi = honest.iter().map(|s| fields(s)[i]).max().expect("non-empty");
                prop_assert!(lo <= *got && *got <= hi, "metric {} = {} outside [{}, {}]", i, got, lo, hi);
            }
        }

        #[test]
        fn aggregate_of_well_formed_is_well_formed(
            reports in prop::collection::vec(well_formed_summary(), 1..12),
        ) {
            let m = aggregate(&reports).expect("non-empty");
            prop_assert!(m.well_formed());
            prop_assert_eq!(outliers(&reports, &m, 0).len(), reports.len());
        }
    }
}
