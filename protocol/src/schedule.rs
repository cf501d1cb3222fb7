//! The audit schedule derived from the coin flip's result `R` (SPEC §3.4).
//!
//! A pure function: every committee member (and the chain, after the fact) computes
//! the same join times and samples from the same `R`; nobody who does not know `R`
//! can predict them.
//!
//! ## The PRNG (normative)
//! - seed `= BLAKE2b-256("datdot/v1/schedule" || R)`; generator: ChaCha20
//!   (`rand_chacha::ChaCha20Rng::from_seed(seed)`), 64-bit outputs via `next_u64`.
//! - stream 0 shuffles the slots: Fisher–Yates over `[0, X)` from the last position down,
//!   swapping position `i` with `uniform(i + 1)`. Attestor `Y` gets slot `perm[Y]`, so
//!   even the order in which attestors join is secret (the attestor index is public).
//! - stream `1 + Y` gives attestor `Y` its jitter, then its samples.
//! - `uniform(n)`: draw `v = next_u64()` until `v < n · ⌊2⁶⁴ / n⌋`, return `v mod n`
//!   (rejection sampling: exactly uniform, independent of any library's range code).
//!
//! ## Join time
//! Slot width `w = ⌊(end − start) / X⌋`. Attestor `Y` joins at
//! `start + slot·w + ⌊w/2⌋ + j` with `j` uniform in `[−⌊w/5⌋, +⌊w/5⌋]` — the centre of
//! its slot ± 20 % of a slot — so every join time lies inside `[start, end)` and inside
//! its own slot.
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
    /// Committee size `X`.
    pub committee: u16,
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
    /// Its slot (a secret permutation of attestor indices).
    pub slot: u16,
    /// When to join the hoster's swarm.
    pub join_at: u64,
    /// Which blocks to request, ascending.
    pub indices: Vec<u64>,
}

/// Why no schedule can be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Empty committee.
    #[error("committee is empty")]
    EmptyCommittee,
    /// `Y >= X`.
    #[error("attestor index {0} is outside the committee")]
    NotInCommittee(u16),
    /// Fewer time units than attestors.
    #[error("window of {len} units cannot hold {committee} slots")]
    WindowTooShort {
        /// `end - start`.
        len: u64,
        /// `X`.
        committee: u16,
    },
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

fn rng(r: &Hash, stream: u64) -> ChaCha20Rng {
    let mut g = ChaCha20Rng::from_seed(blake2b256(&[b"datdot/v1/schedule", r]));
    g.set_stream(stream);
    g
}

/// Attestor `y`'s assignment for result `r`.
pub fn assignment(r: &Hash, w: &Window, y: u16) -> Result<Assignment, ScheduleError> {
    if w.committee == 0 {
        return Err(ScheduleError::EmptyCommittee);
    }
    if y >= w.committee {
        return Err(ScheduleError::NotInCommittee(y));
    }
    let len = w.end.saturating_sub(w.start);
    if len < u64::from(w.committee) {
        return Err(ScheduleError::WindowTooShort {
            len,
            committee: w.committee,
        });
    }
    // The slot permutation.
    let mut perm: Vec<u16> = (0..w.committee).collect();
    let mut g = rng(r, 0);
    for i in (1..perm.len()).rev() {
        let j = uniform(&mut g, i as u64 + 1) as usize;
        perm.swap(i, j);
    }
    let slot = perm[usize::from(y)];

    let mut g = rng(r, 1 + u64::from(y));
    let width = len / u64::from(w.committee);
    let spread = width / 5;
    let jitter = uniform(&mut g, 2 * spread + 1);
    let join_at = w.start + u64::from(slot) * width + width / 2 + jitter - spread;

    let n = w.feed_length;
    let k = u64::from(w.samples).min(n);
    let mut chosen = BTreeSet::new();
    for j in (n - k)..n {
        let t = uniform(&mut g, j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    Ok(Assignment {
        slot,
        join_at,
        indices: chosen.into_iter().collect(),
    })
}

/// Every attestor's assignment, in attestor-index order.
pub fn schedule(r: &Hash, w: &Window) -> Result<Vec<Assignment>, ScheduleError> {
    (0..w.committee).map(|y| assignment(r, w, y)).collect()
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
            len in 0u64..1 << 40,
            committee in 1u16..64,
        ) {
            let p = phases(len);
            prop_assert!(p.flip_end <= len / 6 && p.flip_end <= MAX_FLIP_MS);
            prop_assert!(p.flip_end <= p.joins_end && p.joins_end <= len);
            prop_assert_eq!(len - p.joins_end, len / 10);
            let w = Window { start: p.flip_end, end: p.joins_end, committee, feed_length: 10, samples: 2 };
            if let Ok(all) = schedule(&r, &w) {
                for a in all {
                    prop_assert!(a.join_at >= p.flip_end && a.join_at < p.joins_end);
                }
            }
        }

        #[test]
        fn inside_window_slot_and_deterministic(
            r in any::<[u8; 32]>(),
            start in 0u64..1 << 40,
            len in 1u64..1 << 30,
            committee in 1u16..64,
            feed_length in 0u64..10_000,
            samples in 0u32..200,
        ) {
            prop_assume!(len >= u64::from(committee));
            let w = Window { start, end: start + len, committee, feed_length, samples };
            let all = schedule(&r, &w).unwrap();
            prop_assert_eq!(&all, &schedule(&r, &w).unwrap());
            let width = len / u64::from(committee);
            let mut slots: Vec<u16> = all.iter().map(|a| a.slot).collect();
            slots.sort();
            prop_assert_eq!(slots, (0..committee).collect::<Vec<_>>());
            for a in &all {
                prop_assert!(a.join_at >= w.start && a.join_at < w.end);
                let lo = w.start + u64::from(a.slot) * width;
                prop_assert!(a.join_at >= lo && a.join_at < lo + width.max(1));
                prop_assert_eq!(a.indices.len() as u64, u64::from(samples).min(feed_length));
                prop_assert!(a.indices.windows(2).all(|p| p[0] < p[1]));
                prop_assert!(a.indices.iter().all(|&i| i < feed_length));
            }
        }
    }

    #[test]
    fn different_results_give_different_schedules() {
        let w = Window {
            start: 1000,
            end: 61_000,
            committee: 10,
            feed_length: 1 << 20,
            samples: 32,
        };
        let a = schedule(&[1; 32], &w).unwrap();
        let b = schedule(&[2; 32], &w).unwrap();
        assert_ne!(a, b);
        // Attestors' samples are independent of each other.
        assert_ne!(a[0].indices, a[1].indices);
    }

    #[test]
    fn samples_are_roughly_uniform() {
        // 2000 schedules × 8 samples over 16 blocks: each block expected 1000 times.
        let w = Window {
            start: 0,
            end: 100,
            committee: 1,
            feed_length: 16,
            samples: 8,
        };
        let mut counts = [0u32; 16];
        for i in 0u32..2000 {
            let mut r = [0u8; 32];
            r[..4].copy_from_slice(&i.to_le_bytes());
            for ix in assignment(&r, &w, 0).unwrap().indices {
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
            end: 15,
            committee: 10,
            feed_length: 1,
            samples: 1,
        };
        assert!(matches!(
            assignment(&[0; 32], &w, 0),
            Err(ScheduleError::WindowTooShort { .. })
        ));
        let w = Window {
            start: 0,
            end: 100,
            committee: 3,
            feed_length: 1,
            samples: 1,
        };
        assert_eq!(
            assignment(&[0; 32], &w, 3),
            Err(ScheduleError::NotInCommittee(3))
        );
        let w = Window { committee: 0, ..w };
        assert_eq!(
            assignment(&[0; 32], &w, 0),
            Err(ScheduleError::EmptyCommittee)
        );
    }
}
