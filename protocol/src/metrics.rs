//! Audit metrics as the chain sees them: one attestor's [`MetricSummary`] of one hoster,
//! the per-metric median across a committee's reports ([`aggregate`]), outlier flags
//! ([`outliers`]) and the SLA verdict ([`Sla::verdict`]).
//!
//! Files: this one holds the summary and its codec; `settle` the committee-wide median
//! and outlier rule; `sla` the service-level check; `select` SLA-based hoster ranking.
//!
//! `no_std` + `alloc` and integer-only, so the chain pallet settles with exactly the
//! arithmetic every client uses. The HDR-histogram accumulator that *produces* a summary
//! lives in `audit` (feature `std`).

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

/// The derives of a chain-facing type: SCALE and type info with feature `chain` (the
/// pallet stores and takes it as it is), subxt's dynamic encoding with feature `subxt`
/// (the client substitutes it for the type it would generate). One definition, no
/// mirror on either side.
macro_rules! chain_facing {
    ($item:item) => {
        #[cfg_attr(
            feature = "chain",
            derive(
                codec::Encode,
                codec::Decode,
                codec::DecodeWithMemTracking,
                codec::MaxEncodedLen,
                scale_info::TypeInfo
            )
        )]
        #[cfg_attr(
            feature = "subxt",
            derive(scale_encode::EncodeAsType, scale_decode::DecodeAsType)
        )]
        $item
    };
}

mod select;
mod settle;
mod sla;
#[cfg(test)]
mod testing;

pub use select::{SELECTION_WINDOW, Selected, select};
pub use settle::{aggregate, outliers};
pub use sla::{Sla, SlaClause, SlaVerdict};

/// Parts per million: the unit of [`MetricSummary::availability_ppm`].
pub const PPM: u32 = 1_000_000;

chain_facing! {
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
    /// The attestor did not audit: its own trouble (it restarted, or learned of the
    /// challenge, too late to audit in the window). Says nothing about the hoster: such
    /// a report is left out of the median and the outlier rule, and is not paid. Its
    /// summary is [`MetricSummary::empty`] (enforced by [`MetricSummary::well_formed`]).
    NotAudited,
}
}

impl Outcome {
    /// All outcomes, in wire order.
    pub const ALL: [Outcome; 5] = [
        Outcome::Completed,
        Outcome::ConnectFailed,
        Outcome::ProgressTimeout,
        Outcome::HardMaxDuration,
        Outcome::NotAudited,
    ];

    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::ConnectFailed => 1,
            Outcome::ProgressTimeout => 2,
            Outcome::HardMaxDuration => 3,
            Outcome::NotAudited => 4,
        }
    }

    /// The outcome for a wire value; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// How bad the outcome is for the hoster, used to break ties in [`aggregate`]:
    /// `Completed` (0) < `HardMaxDuration` (1, slow but serving) < `ProgressTimeout`
    /// (2, stalled) < `ConnectFailed` (3, unreachable); `NotAudited` (0) never takes
    /// part.
    pub fn severity(self) -> u8 {
        match self {
            Outcome::Completed | Outcome::NotAudited => 0,
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

chain_facing! {
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

    /// Whether this is an audit's summary ([`Outcome::NotAudited`] is not): only those
    /// say anything about the hoster.
    pub fn conclusive(&self) -> bool {
        self.outcome != Outcome::NotAudited
    }

    /// The invariants decoding enforces (see the type's documentation).
    pub fn well_formed(&self) -> bool {
        if !self.conclusive() {
            return *self == MetricSummary::empty(Outcome::NotAudited);
        }
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

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encoded_size_is_fixed() {
        assert_eq!(MetricSummary::ENCODED_SIZE, 101);
        assert_eq!(encode(&sample()).len(), MetricSummary::ENCODED_SIZE);
        assert_eq!(
            encode(&MetricSummary::empty(Outcome::ConnectFailed)).len(),
            101
        );
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
        for bad in [5u8, 6, 0x80, 0xff] {
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
    fn failure_codec_rejects_unknown_kinds() {
        for v in [5u8, 0xff] {
            assert!(decode_exact::<FailureKind>(&[v]).is_err());
        }
        let f = Failure {
            block_index: 7,
            kind: FailureKind::BadReceipt,
        };
        assert_eq!(decode_exact::<Failure>(&encode(&f)), Ok(f));
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

    }
}

/// The chain's encoding of these types (feature `chain`): SCALE, every field
/// fixed-width, the outcome as its wire value.
#[cfg(all(test, feature = "chain"))]
mod chain_encoding {
    use super::*;
    use codec::{Decode as Scale, MaxEncodedLen};

    #[test]
    fn the_chain_stores_an_outcome_as_its_wire_value_and_a_summary_at_a_fixed_size() {
        for o in Outcome::ALL {
            assert_eq!(codec::Encode::encode(&o), [o.to_u8()]);
        }
        assert_eq!(
            MetricSummary::max_encoded_len(),
            MetricSummary::ENCODED_SIZE
        );
        let s = MetricSummary {
            requests: 32,
            ok_blocks: 30,
            outcome: Outcome::HardMaxDuration,
            ..MetricSummary::empty(Outcome::Completed)
        };
        let bytes = codec::Encode::encode(&s);
        assert_eq!(bytes.len(), MetricSummary::ENCODED_SIZE);
        assert_eq!(<MetricSummary as Scale>::decode(&mut &bytes[..]), Ok(s));
        assert_eq!(Sla::max_encoded_len(), 8 + 8 + 4);
    }
}
