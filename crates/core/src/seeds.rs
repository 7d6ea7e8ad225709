//! The one source of randomness in semaug: a counter-based generator.
//!
//! Every random draw in the project (noise, parameter init, shuffles, augmentation
//! parameters) comes from a [`Stream`] keyed by `(run seed, sample id, variant, step)`.
//! A draw depends only on its key and its position in the stream, never on thread
//! count, batch size or the order in which samples are processed; that is what makes a
//! run reproducible byte for byte and resumable from any point. candle's CPU RNG cannot
//! be seeded, so tensors of random numbers are built here with `Tensor::from_vec`.
//!
//! The generator is SplitMix64's output function applied to `key + counter * gamma`
//! (Steele, Lea, Flood 2014); the key is a chain of the same mixer over the four key
//! parts. It passes BigCrush as a counter-based generator and is trivially portable.
//! Normals use the Box-Muller transform, so the stream of normals is fixed by the key.

use candle_core::{Device, Result, Shape, Tensor};

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit id for a name (FNV-1a), so variants can be named in code:
/// `Stream::new(seed, sample, label("perturb/noise"), 0)`.
pub const fn label(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// One reproducible stream of random numbers, fixed by its key.
#[derive(Debug, Clone)]
pub struct Stream {
    key: u64,
    counter: u64,
    spare_normal: Option<f32>,
}

impl Stream {
    /// The stream for `(run seed, sample id, variant, step)`.
    pub fn new(seed: u64, sample: u64, variant: u64, step: u64) -> Self {
        let mut key = mix64(seed ^ 0x5345_4d41_5547_0001);
        for part in [sample, variant, step] {
            key = mix64(key.wrapping_add(GAMMA) ^ mix64(part));
        }
        Self {
            key,
            counter: 0,
            spare_normal: None,
        }
    }

    /// A child stream, for handing independent randomness to a sub-operation.
    pub fn fork(&self, variant: u64) -> Self {
        Self::new(self.key, self.counter, variant, 0)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        mix64(self.key.wrapping_add(self.counter.wrapping_mul(GAMMA)))
    }

    /// Uniform in [0, 1), with 24 bits of resolution (exact in f32).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 bits, for samplers that need the precision.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in [0, n). `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0, "below(0)");
        // Lemire's multiply-shift; the bias for n << 2^64 is negligible.
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// True with probability `p`.
    pub fn bernoulli(&mut self, p: f32) -> bool {
        self.uniform() < p
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u is in (0, 1], so the log is finite.
        let u1 = 1.0 - self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some((r * theta.sin()) as f32);
        (r * theta.cos()) as f32
    }

    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal()).collect()
    }

    /// A tensor of standard normals in row-major order of `shape`.
    pub fn normal_tensor<S: Into<Shape>>(&mut self, shape: S, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let data = self.normal_vec(shape.elem_count());
        Tensor::from_vec(data, shape, device)
    }

    /// Gamma(shape = alpha, scale = 1) by Marsaglia and Tsang (2000).
    pub fn gamma(&mut self, alpha: f32) -> f32 {
        if alpha < 1.0 {
            // Boost: Gamma(a) = Gamma(a + 1) * U^(1/a).
            let u = 1.0 - self.uniform();
            return self.gamma(alpha + 1.0) * u.powf(1.0 / alpha);
        }
        let d = alpha - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// Beta(a, b), as used by Mixup and CutMix.
    pub fn beta(&mut self, a: f32, b: f32) -> f32 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        if x + y == 0.0 {
            0.5
        } else {
            x / (x + y)
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// An index drawn with probability proportional to `weights` (non-negative,
    /// not all zero).
    pub fn weighted_index(&mut self, weights: &[f32]) -> usize {
        let total: f32 = weights.iter().sum();
        let mut target = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                return i;
            }
            target -= w;
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_stream_and_keys_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut s = Stream::new(7, 1, 2, 3);
                move |_| s.next_u64()
            })
            .collect();
        let mut again = Stream::new(7, 1, 2, 3);
        assert!(a.iter().all(|x| *x == again.next_u64()));
        for other in [
            Stream::new(8, 1, 2, 3),
            Stream::new(7, 2, 2, 3),
            Stream::new(7, 1, 3, 3),
            Stream::new(7, 1, 2, 4),
            Stream::new(7, 2, 1, 3),
        ] {
            let mut other = other;
            assert_ne!(a[0], other.next_u64());
        }
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut s = Stream::new(1, 0, label("test"), 0);
        let n = 200_000;
        let u: Vec<f32> = (0..n).map(|_| s.uniform()).collect();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = u.iter().sum::<f32>() / n as f32;
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        let z = s.normal_vec(n);
        let mean = z.iter().sum::<f32>() / n as f32;
        let var = z.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 0.01, "normal mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "normal var {var}");
    }

    #[test]
    fn beta_mean_matches() {
        let mut s = Stream::new(3, 0, 0, 0);
        for (a, b) in [(0.2f32, 0.2f32), (1.0, 1.0), (2.0, 5.0)] {
            let n = 50_000;
            let mean = (0..n).map(|_| s.beta(a, b)).sum::<f32>() / n as f32;
            let want = a / (a + b);
            assert!((mean - want).abs() < 0.01, "beta({a},{b}) mean {mean}");
        }
    }

    #[test]
    fn below_is_in_range_and_covers() {
        let mut s = Stream::new(0, 0, 0, 0);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[s.below(7)] += 1;
        }
        assert!(seen.iter().all(|c| *c > 800), "{seen:?}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut s = Stream::new(5, 0, 0, 0);
        let mut v: Vec<usize> = (0..100).collect();
        s.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn weighted_index_skips_zero_weights() {
        let mut s = Stream::new(9, 0, 0, 0);
        for _ in 0..1000 {
            let i = s.weighted_index(&[0.0, 1.0, 0.0, 3.0]);
            assert!(i == 1 || i == 3);
        }
    }
}
