//! Dropout with a mask that is a function of (seed, index) instead of a
//! stored tensor. burn's `Dropout` draws one Bernoulli value per element from
//! its (single-threaded) ChaCha generator into a mask tensor, multiplies by
//! it and by `1 / keep` (two passes), and takes both products back in the
//! backward pass (two more). Here the mask bit of element `i` is a hash of
//! `(seed, i)`, so the forward pass is one in-place pass on any number of
//! threads, nothing is stored for the backward pass, and the backward pass
//! (the same mask and scale on the gradient) is one in-place pass too. The
//! seed is drawn from burn's generator, so a seeded training run repeats
//! exactly; the masks differ from burn's, with the same distribution.

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

/// A 32-bit mixing function (Chris Wellons' `lowbias32`): a bijection with
/// good avalanche, in u32 arithmetic that compilers vectorise.
#[inline(always)]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The mask: element `i` is kept with probability `keep`, given `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mask {
    seed: u64,
    /// Kept when the hash is below this (out of 2³²).
    threshold: u64,
    /// `1 / keep`, what kept values are multiplied by.
    scale: f32,
}

impl Mask {
    /// `prob`: the probability of dropping an element, in `[0, 1)`.
    pub fn new(seed: u64, prob: f64) -> Self {
        assert!((0.0..1.0).contains(&prob), "dropout probability {prob} outside [0, 1)");
        let keep = 1.0 - prob;
        // The same f32 factor as burn's `x * (1.0 / prob_keep)`.
        Self { seed, threshold: (keep * 4_294_967_296.0).round() as u64, scale: (1.0 / keep) as f32 }
    }

    /// Whether element `i` is kept.
    #[inline(always)]
    pub fn keeps(&self, i: usize) -> bool {
        let (lo, hi) = (i as u32, (i as u64 >> 32) as u32);
        let h = mix(lo ^ self.seed as u32);
        let h = mix(h ^ (self.seed >> 32) as u32 ^ mix(hi));
        u64::from(h) < self.threshold
    }

    /// `x[i] = keeps(i) ? x[i] · scale : 0`, in place: the forward pass on
    /// the input and the backward pass on the output's gradient.
    pub fn apply(&self, x: &mut [f32]) {
        x.par_chunks_mut(CHUNK).enumerate().for_each(|(t, chunk)| {
            let first = t * CHUNK;
            // hi is constant inside a chunk (CHUNK divides 2³²).
            let hi = mix(((first as u64) >> 32) as u32) ^ (self.seed >> 32) as u32;
            let (s0, scale, threshold) = (self.seed as u32, self.scale, self.threshold);
            for (j, v) in chunk.iter_mut().enumerate() {
                let h = mix(mix((first + j) as u32 ^ s0) ^ hi);
                *v = if u64::from(h) < threshold { *v * scale } else { 0.0 };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_share_and_scales() {
        for prob in [0.2, 0.5] {
            let m = Mask::new(0x1234_5678_9abc_def0, prob);
            let n = 200_000;
            let mut x = vec![1.0f32; n];
            m.apply(&mut x);
            let kept = x.iter().filter(|&&v| v != 0.0).count();
            let share = kept as f64 / n as f64;
            assert!((share - (1.0 - prob)).abs() < 0.005, "{prob}: kept {share}");
            assert!(x.iter().all(|&v| v == 0.0 || v == (1.0 / (1.0 - prob)) as f32));
            // apply and keeps agree element by element.
            assert!((0..n).all(|i| (x[i] != 0.0) == m.keeps(i)));
        }
    }

    #[test]
    fn other_seeds_other_masks_same_seed_same_mask() {
        let (a, b) = (Mask::new(1, 0.5), Mask::new(2, 0.5));
        let same = (0..10_000).filter(|&i| a.keeps(i) == b.keeps(i)).count();
        assert!((4_500..5_500).contains(&same), "{same} of 10000 agree");
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let run = |n| {
            let mut x: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
            pool(n).install(|| a.apply(&mut x));
            x
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn neighbouring_elements_are_independent() {
        // Pairs (i, i+1) kept together about keep² of the time.
        let m = Mask::new(99, 0.5);
        let both = (0..100_000).filter(|&i| m.keeps(i) && m.keeps(i + 1)).count();
        assert!((23_500..26_500).contains(&both), "{both}");
    }
}
