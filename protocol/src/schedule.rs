//! The audit schedule derived from the coin flip's result `R` and each member's own
//! secret (SPEC §3.4).
//!
//! A pure function: a member computes its join time and sample from `R` and its own
//! secret `s` (the preimage of the `x` it contributed to `R`, see
//! [`crate::coinflip::x_of`]); the chain recomputes the sample after the fact, when the
//! report opens `s`. Nobody who does not know `R` can predict any of it, and a colluding
//! member — who knows `R` and every `x`, but no other member's `s` — can hand the hoster
//! only its own.
//!
//! ## The PRNG (normative)
//! - seed `= BLAKE2b-256("datdot/v1/schedule" || R || s)`; generator: ChaCha20
//!   (`rand_chacha::ChaCha20Rng::from_seed(seed)`), 64-bit outputs via `next_u64`.
//! - stream 1 gives the join time, stream 2 the sample (so the chain recomputes the
//!   sample without knowing the window in ms).
//! - `uniform(n)`: draw `v = next_u64()` until `v < n · ⌊2⁶⁴ / n⌋`, return `v mod n`
//!   (rejection sampling: exactly uniform, independent of any library's range code).
//!
//! ## Join time
//! `start + uniform(end − start)`: uniform over the joins phase, independent of every other
//! member's. (An earlier schedule gave each member a slot of a permutation drawn from `R`
//! and jittered ± 20 % of a slot inside it: spread out, but a colluder who knows `R` knew
//! every member's slot, hence its join time to a tenth of the window; DESIGN §16.3.)
//!
//! ## Phases of a challenge window (normative)
//! A challenge's audit window, `L` time units from its start block, has three phases:
//! the coin flip in `[0, F)` with `F = min(⌊L/6⌋, MAX_FLIP_MS)` (in ms), the joins in
//! `[F, L − ⌊L/10⌋)` (the [`Window`] the join times are drawn in), and a tail of
//! `⌊L/10⌋` in which the last member to join still audits. A flip that is not over by `F` is
//! abandoned (the member audits with a private `R`), so a silent, withholding or slow
//! member cannot push the audits out of the window: the hoster is audited in full
//! whatever the committee does (DESIGN §16.3). [`phases`].
//!
//! ## Samples
//! `k = min(samples, length)` distinct block indices, uniform without replacement
//! (Floyd's algorithm), returned in ascending order (the request order of a reader
//! that skims a feed front to back).

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::hash::{Hash, blake2b256};

/// What a schedule is computed for. Times are in any unit (block numbers, ms) the caller
/// uses consistently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Window start (inclusive).
    pub start: u64,
    /// Window end (exclusive).
    pub end: u64,
    /// Number of blocks in the feed.
    pub feed_length: u64,
    /// Blocks each attestor samples.
    pub samples: u32,
}

/// Longest coin-flip phase in ms (a long window still starts auditing within a minute).
pub const MAX_FLIP_MS: u64 = 60_000;

/// The phases of a window of `len` ms (module docs, "Phases").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// The coin flip ends here; joins start.
    pub flip_end: u64,
    /// Joins end here; the rest of the window is the last audit's tail.
    pub joins_end: u64,
}

/// Split a window of `len` ms into its phases.
pub fn phases(len: u64) -> Phases {
    Phases {
        flip_end: (len / 6).min(MAX_FLIP_MS),
        joins_end: len - len / 10,
    }
}

/// One attestor's part of the schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// When to join the hoster's swarm.
    pub join_at: u64,
    /// Which blocks to request, ascending.
    pub indices: Vec<u64>,
}

/// Why no schedule can be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// `end <= start`.
    #[error("the joins window is empty")]
    EmptyWindow,
}

fn uniform(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let zone = n.wrapping_mul(u64::MAX / n);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return v % n;
        }
    }
}

fn rng(r: &Hash, own: &[u8; 32], stream: u64) -> ChaCha20Rng {
    let mut g = ChaCha20Rng::from_seed(blake2b256(&[b"datdot/v1/schedule", r, own]));
    g.set_stream(stream);
    g
}

/// The sample of the member with own secret `own` for result `r`: `min(samples, length)`
/// distinct indices below `length`, ascending. What the chain recomputes from a report.
pub fn sample(r: &Hash, own: &[u8; 32], feed_length: u64, samples: u32) -> Vec<u64> {
    let mut g = rng(r, own, 2);
    let n = feed_length;
    let k = u64::from(samples).min(n);
    let mut chosen = BTreeSet::new();
    for j in (n - k)..n {
        let t = uniform(&mut g, j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// The assignment of the member with own secret `own` for result `r`.
pub fn assignment(r: &Hash, own: &[u8; 32], w: &Window) -> Result<Assignment, ScheduleError> {
    let len = w.end.saturating_sub(w.start);
    if len == 0 {
        return Err(ScheduleError::EmptyWindow);
    }
    let join_at = w.start + uniform(&mut rng(r, own, 1), len);
    Ok(Assignment {
        join_at,
        indices: sample(r, own, w.feed_length, w.samples),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The flip's phase comes first, the joins after it, and the last member to join
        /// keeps a tenth of the window to audit in.
        #[test]
        fn phases_leave_every_join_after_the_flip_and_a_tail(
            r in any::<[u8; 32]>(),
            own in any::<[u8; 32]>(),
            len in 0u64..1 << 40,
        ) {
            let p = phases(len);
            prop_assert!(p.flip_end <= len / 6 && p.flip_end <= MAX_FLIP_MS);
            prop_assert!(p.flip_end <= p.joins_end && p.joins_end <= len);
            prop_assert_eq!(len - p.joins_end, len / 10);
            let w = Window { start: p.flip_end, end: p.joins_end, feed_length: 10, samples: 2 };
            if let Ok(a) = assignment(&r, &own, &w) {
                prop_assert!(a.join_at >= p.flip_end && a.join_at < p.joins_end);
            }
        }

        #[test]
        fn inside_window_and_deterministic(
            r in any::<[u8; 32]>(),
            own in any::<[u8; 32]>(),
            start in 0u64..1 << 40,
            len in 1u64..1 << 30,
            feed_length in 0u64..10_000,
            samples in 0u32..200,
        ) {
            let w = Window { start, end: start + len, feed_length, samples };
            let a = assignment(&r, &own, &w).unwrap();
            prop_assert_eq!(&a, &assignment(&r, &own, &w).unwrap());
            prop_assert!(a.join_at >= w.start && a.join_at < w.end);
            prop_assert_eq!(a.indices.len() as u64, u64::from(samples).min(feed_length));
            prop_assert!(a.indices.windows(2).all(|p| p[0] < p[1]));
            prop_assert!(a.indices.iter().all(|&i| i < feed_length));
            // The sample does not depend on the window (the chain recomputes it).
            prop_assert_eq!(&a.indices, &sample(&r, &own, feed_length, samples));
        }
    }

    /// A colluding member knows `R` and every member's `x`, but not another member's own
    /// secret: with `R` fixed, another secret gives another sample and join time, so
    /// what the colluder can compute (its own schedule) says nothing about anyone else's.
    #[test]
    fn a_colluder_who_knows_r_cannot_compute_another_members_schedule() {
        let w = Window {
            start: 1000,
            end: 61_000,
            feed_length: 1 << 20,
            samples: 32,
        };
        let r = [9; 32];
        let colluder = assignment(&r, &[1; 32], &w).unwrap();
        let victim = assignment(&r, &[2; 32], &w).unwrap();
        assert_ne!(colluder.indices, victim.indices);
        assert_ne!(colluder.join_at, victim.join_at);
        // Nor does R alone fix a schedule: the same secret under another R differs too.
        assert_ne!(assignment(&[8; 32], &[2; 32], &w).unwrap(), victim);
        // Join times are spread over the whole phase, not tied to a slot R reveals:
        // 4,000 secrets under one R fill all ten tenths of the window.
        let mut tenths = [0u32; 10];
        for i in 0u32..4000 {
            let mut own = [0u8; 32];
            own[..4].copy_from_slice(&i.to_le_bytes());
            let a = assignment(&r, &own, &w).unwrap();
            tenths[((a.join_at - w.start) * 10 / (w.end - w.start)) as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&c| (300..=500).contains(&c)),
            "{tenths:?}"
        );
    }

    #[test]
    fn samples_are_roughly_uniform() {
        // 2000 schedules × 8 samples over 16 blocks: each block expected 1000 times.
        let mut counts = [0u32; 16];
        for i in 0u32..2000 {
            let mut r = [0u8; 32];
            r[..4].copy_from_slice(&i.to_le_bytes());
            for ix in sample(&r, &[0; 32], 16, 8) {
                counts[ix as usize] += 1;
            }
        }
        // ±15 %: about 5 standard deviations for a binomial(2000, 1/2).
        assert!(
            counts.iter().all(|&c| (850..=1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn errors() {
        let w = Window {
            start: 10,
            end: 10,
            feed_length: 1,
            samples: 1,
        };
        assert_eq!(
            assignment(&[0; 32], &[0; 32], &w),
            Err(ScheduleError::EmptyWindow)
        );
    }
}
