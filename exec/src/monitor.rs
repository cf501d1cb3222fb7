//! Monitoring: which calls a monitor checks, and the signed report it files.
//!
//! After an executor's final commit the chain draws a committee of monitors and a seed;
//! member *m* checks the calls [`sample`]`(member_seed(seed, m), calls, k)` — drawn
//! after the log is committed, so the executor cannot tailor the calls it gets right.
//! A monitor fetches each sampled input block (verified against the published input
//! tree) and output block (verified against the committed output root), re-runs the
//! call and files a [`MonitorReport`] (tag `0x63`, context `datdot/v1/monitor`) with one
//! [`CallCheck`] per sampled call. A mismatch is proven separately with a
//! [`crate::CallFraudProof`]; the report is what the monitor is paid for, and a report
//! that said "agrees" for a call later proven wrong is not paid.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use datdot_protocol::codec::{Decode, DecodeError, Encode, Message, Reader, Writer};
use datdot_protocol::hash::{Hash, blake2b256};
use datdot_protocol::identity::{ChainId, Domain, Keypair, PublicKey, Signature, SignatureError};

/// Most calls one monitor checks.
pub const MAX_SAMPLES: usize = 64;

/// Member `member`'s seed from the round's seed.
pub fn member_seed(seed: &[u8; 32], member: u8) -> [u8; 32] {
    blake2b256(&[b"datdot/v1/monitor-sample", seed, &[member]])
}

/// `min(k, calls)` distinct call indices below `calls`, ascending, drawn from `seed`
/// (Floyd's algorithm: exactly `min(k, calls)` draws; draw `j` is
/// `BLAKE2b-256(seed || j LE)` as a u64 LE modulo `j + 1`, a bias below 2^-40 for the
/// lengths a feed may have).
pub fn sample(seed: &[u8; 32], calls: u64, k: usize) -> Vec<u64> {
    let k = (k.min(MAX_SAMPLES) as u64).min(calls);
    let mut picked = BTreeSet::new();
    for j in calls - k..calls {
        let h = blake2b256(&[seed, &j.to_le_bytes()]);
        let mut word = [0u8; 8];
        word.copy_from_slice(&h[..8]);
        let t = u64::from_le_bytes(word) % (j + 1);
        if !picked.insert(t) {
            picked.insert(j);
        }
    }
    picked.into_iter().collect()
}

/// What a monitor found for one sampled call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallCheck {
    /// The re-run gives what the record says.
    Agrees,
    /// The re-run disagrees with the record (a fraud proof should follow).
    Mismatch,
    /// The input or output block could not be fetched verified.
    Unavailable,
}

impl Encode for CallCheck {
    fn encode(&self, w: &mut Writer) {
        w.u8(match self {
            CallCheck::Agrees => 0,
            CallCheck::Mismatch => 1,
            CallCheck::Unavailable => 2,
        });
    }
}

impl Decode for CallCheck {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(CallCheck::Agrees),
            1 => Ok(CallCheck::Mismatch),
            2 => Ok(CallCheck::Unavailable),
            _ => Err(DecodeError::Invalid("call check")),
        }
    }
}

/// A monitor's signed findings on its sampled calls of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorReport {
    /// The chain.
    pub chain: ChainId,
    /// The job.
    pub job: u64,
    /// The monitor's protocol signing key.
    pub monitor: PublicKey,
    /// Length of the output root it checked against (the final commit's).
    pub output_length: u64,
    /// Tree hash of that root.
    pub output_tree: Hash,
    /// One check per sampled call, in the sample's (ascending) order.
    pub checks: Vec<CallCheck>,
    /// The monitor's signature over everything above.
    pub signature: Signature,
}

impl MonitorReport {
    /// A signed report.
    pub fn sign(
        chain: ChainId,
        job: u64,
        output_length: u64,
        output_tree: Hash,
        checks: Vec<CallCheck>,
        monitor: &Keypair,
    ) -> Self {
        let mut r = MonitorReport {
            chain,
            job,
            monitor: monitor.public(),
            output_length,
            output_tree,
            checks,
            signature: Signature([0; 64]),
        };
        r.signature = monitor.sign(Domain::MonitorReport, &r.payload());
        r
    }

    fn payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_fields(&mut w);
        w.into_bytes()
    }

    fn encode_fields(&self, w: &mut Writer) {
        w.array(&self.chain);
        w.u64(self.job);
        self.monitor.encode(w);
        w.u64(self.output_length);
        w.array(&self.output_tree);
        w.list(&self.checks);
    }

    /// The signature verifies for the key the report names.
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.monitor
            .verify(Domain::MonitorReport, &self.payload(), &self.signature)
    }
}

impl Encode for MonitorReport {
    fn encode(&self, w: &mut Writer) {
        self.encode_fields(w);
        self.signature.encode(w);
    }
}

impl Decode for MonitorReport {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MonitorReport {
            chain: r.array()?,
            job: r.u64()?,
            monitor: PublicKey::decode(r)?,
            output_length: r.u64()?,
            output_tree: r.array()?,
            checks: r.list("call checks", MAX_SAMPLES)?,
            signature: Signature::decode(r)?,
        })
    }
}

impl Message for MonitorReport {
    const TAG: u8 = 0x63;
    const MAX_SIZE: usize = 2 + 32 + 8 + 32 + 8 + 32 + 4 + MAX_SAMPLES + 64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::codec::{from_bytes, to_bytes};

    #[test]
    fn samples_are_distinct_sorted_bounded_and_seeded() {
        for calls in [0u64, 1, 5, 63, 64, 65, 1000, 1 << 40] {
            for k in [0usize, 1, 8, 64, 100] {
                let s = sample(&[7; 32], calls, k);
                assert_eq!(s.len() as u64, (k.min(MAX_SAMPLES) as u64).min(calls));
                assert!(s.windows(2).all(|w| w[0] < w[1]));
                assert!(s.iter().all(|i| *i < calls));
                assert_eq!(s, sample(&[7; 32], calls, k));
            }
        }
        assert_ne!(sample(&[7; 32], 1000, 8), sample(&[8; 32], 1000, 8));
        assert_ne!(member_seed(&[7; 32], 0), member_seed(&[7; 32], 1));
    }

    #[test]
    fn every_call_is_sampled_about_equally() {
        let mut hits = [0u32; 20];
        for m in 0..=255u8 {
            for i in sample(&member_seed(&[1; 32], m), 20, 5) {
                hits[i as usize] += 1;
            }
        }
        // 256 · 5 / 20 = 64 expected per call.
        assert!(hits.iter().all(|h| (32..=96).contains(h)), "{hits:?}");
    }

    #[test]
    fn reports_round_trip_verify_and_reject_tampering() {
        let kp = Keypair::from_seed(&[5; 32]);
        let r = MonitorReport::sign(
            [1; 32],
            9,
            64,
            [2; 32],
            vec![
                CallCheck::Agrees,
                CallCheck::Mismatch,
                CallCheck::Unavailable,
            ],
            &kp,
        );
        assert!(r.verify_signature().is_ok());
        let bytes = to_bytes(&r);
        assert!(bytes.len() <= MonitorReport::MAX_SIZE);
        let back: MonitorReport = from_bytes(&bytes).unwrap();
        assert_eq!(back, r);
        let mut t = r.clone();
        t.checks[0] = CallCheck::Mismatch;
        assert!(t.verify_signature().is_err());
        for cut in 0..bytes.len() {
            assert!(from_bytes::<MonitorReport>(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        let at = 2 + 32 + 8 + 32 + 8 + 32 + 4;
        bad[at] = 3;
        assert!(from_bytes::<MonitorReport>(&bad).is_err());
    }
}
