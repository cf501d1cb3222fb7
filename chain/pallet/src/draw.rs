//! Random draws from a 32-byte chain seed: hosters weighted by free capacity and score,
//! committees uniformly without replacement. Pure functions; the pallet supplies the
//! seed from `Config::Randomness` and the candidate lists.
//!
//! The stream is `BLAKE2b-256(seed || counter LE)`, 8 bytes per draw; a draw modulo `n`
//! has a bias below `n / 2^64`, negligible for the list sizes bounded by the pallet.

use alloc::vec::Vec;

use datdot_protocol::hash::blake2b256;

/// A deterministic stream of `u64`s from a seed.
#[derive(Debug)]
pub struct Stream {
    seed: [u8; 32],
    counter: u64,
}

impl Stream {
    /// Start a stream.
    pub fn new(seed: [u8; 32]) -> Self {
        Stream { seed, counter: 0 }
    }

    /// Next value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        let h = blake2b256(&[&self.seed, &self.counter.to_le_bytes()]);
        self.counter += 1;
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        u64::from_le_bytes(b) % n.max(1)
    }
}

/// Pick up to `k` distinct indices of `weights`, each draw proportional to weight among
/// those not yet picked; zero weights are never picked.
pub fn weighted(stream: &mut Stream, weights: &[u64], k: usize) -> Vec<usize> {
    let mut w: Vec<u64> = weights.to_vec();
    let mut picked = Vec::new();
    while picked.len() < k {
        let total: u128 = w.iter().map(|x| u128::from(*x)).sum();
        if total == 0 {
            break;
        }
        // total ≤ len · u64::MAX; reduce into u64 range by drawing twice when needed.
        let target = if let Ok(t) = u64::try_from(total) {
            u128::from(stream.below(t))
        } else {
            (u128::from(stream.below(u64::MAX)) << 64 | u128::from(stream.below(u64::MAX))) % total
        };
        let mut acc = 0u128;
        for (i, x) in w.iter_mut().enumerate() {
            acc += u128::from(*x);
            if target < acc {
                picked.push(i);
                *x = 0;
                break;
            }
        }
    }
    picked
}

/// Pick up to `k` distinct indices of `0..n` uniformly (partial Fisher–Yates), in draw order.
pub fn uniform(stream: &mut Stream, n: usize, k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let remaining = (n - i) as u64;
        let j = i + stream.below(remaining) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_distinct_and_bounded() {
        let mut s = Stream::new([1; 32]);
        for n in 0..20 {
            let got = uniform(&mut s, n, 10);
            assert_eq!(got.len(), n.min(10));
            let mut sorted = got.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len());
            assert!(got.iter().all(|i| *i < n));
        }
    }

    #[test]
    fn weighted_skips_zero_weights_and_follows_weights() {
        let mut s = Stream::new([2; 32]);
        assert_eq!(weighted(&mut s, &[0, 0, 5, 0], 3), vec![2]);
        let mut first = [0u32; 2];
        for _ in 0..2000 {
            first[weighted(&mut s, &[1, 3], 1)[0]] += 1;
        }
        // Expect ~500 / ~1500.
        assert!((400..600).contains(&first[0]), "{first:?}");
        let huge = weighted(&mut s, &[u64::MAX, u64::MAX, 1], 3);
        assert_eq!(huge.len(), 3);
    }

    #[test]
    fn same_seed_same_draw() {
        let a = uniform(&mut Stream::new([9; 32]), 50, 10);
        let b = uniform(&mut Stream::new([9; 32]), 50, 10);
        assert_eq!(a, b);
        assert_ne!(a, uniform(&mut Stream::new([8; 32]), 50, 10));
    }
}
