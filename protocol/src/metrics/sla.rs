//! Service levels: a plan's [`Sla`] and the [`SlaVerdict`] on a hoster's metrics.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};

use super::{MetricSummary, PPM};

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

chain_facing! {
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
    use super::super::Outcome;
    use super::super::testing::*;
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn sla_codecs_reject_unknown_values() {
        assert_eq!(encode(&Sla::default()).len(), Sla::ENCODED_SIZE);
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

    proptest! {
        #[test]
        fn sla_roundtrip(t in any::<u64>(), l in any::<u64>(), a in 0..=PPM) {
            let sla = Sla { min_throughput_bps: t, max_p99_latency_us: l, min_availability_ppm: a };
            prop_assert_eq!(decode_exact::<Sla>(&encode(&sla)), Ok(sla));
        }

    }
}
