//! What each training sample looks like in a given epoch: the seeded data order, whether
//! a sample is replaced by one of its synthetic variants, and its classical augmentation,
//! turned into an f32 batch.
//!
//! Every random choice about sample `i` in epoch `e` comes from a stream keyed by
//! `(seed, i, variant, e)`, and the order from one keyed by `(seed, e)`, so a batch's
//! contents depend neither on thread count nor on whether the run was resumed.

use candle_core::{Device, Tensor};
use image::RgbImage;
use rayon::prelude::*;
use semaug_core::seeds::{label, Stream};
use semaug_data::augment::Classical;
use serde::{Deserialize, Serialize};

use crate::data::TrainSet;
use crate::error::{ensure, EvalError};

/// How synthetic variants take the place of real images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticMix {
    /// Each time a sample is drawn, it is replaced by one of its variants (chosen
    /// uniformly) with this probability; DA-Fusion's `synthetic_probability`, 0.5.
    PerSample { probability: f32 },
    /// In each epoch exactly `round(fraction * N)` samples (capped at the number that
    /// have variants) are replaced, chosen uniformly among those that have variants.
    Fraction { fraction: f32 },
}

impl Default for SyntheticMix {
    fn default() -> Self {
        Self::PerSample { probability: 0.5 }
    }
}

impl SyntheticMix {
    pub fn validate(&self) -> Result<(), EvalError> {
        match *self {
            Self::PerSample { probability } => ensure(
                (0.0..=1.0).contains(&probability),
                "synthetic probability",
                probability,
                "0..=1",
            ),
            Self::Fraction { fraction } => ensure(
                (0.0..=1.0).contains(&fraction),
                "synthetic fraction",
                fraction,
                "0..=1",
            ),
        }
    }
}

/// Where each sample's pixels come from in one epoch, and the order samples are drawn in.
#[derive(Debug, Clone)]
pub(crate) struct EpochPlan {
    pub order: Vec<usize>,
    /// `Some(v)`: sample `i` is replaced by its variant `v` this epoch.
    pub replacement: Vec<Option<usize>>,
}

impl EpochPlan {
    pub fn new(set: &TrainSet, mix: SyntheticMix, seed: u64, epoch: u64) -> Self {
        let n = set.len();
        let mut order: Vec<usize> = (0..n).collect();
        Stream::new(seed, epoch, label("trainer/order"), 0).shuffle(&mut order);
        let pick_variant = |i: usize| {
            let mut rng = Stream::new(seed, i as u64, label("trainer/synthetic"), epoch);
            let count = set.variants(i).len();
            (rng.uniform(), rng.below(count.max(1)))
        };
        let mut replacement = vec![None; n];
        match mix {
            SyntheticMix::PerSample { probability } => {
                for (i, slot) in replacement.iter_mut().enumerate() {
                    let (u, variant) = pick_variant(i);
                    if !set.variants(i).is_empty() && u < probability {
                        *slot = Some(variant);
                    }
                }
            }
            SyntheticMix::Fraction { fraction } => {
                let mut eligible: Vec<usize> =
                    (0..n).filter(|&i| !set.variants(i).is_empty()).collect();
                let wanted = ((fraction as f64) * n as f64).round() as usize;
                Stream::new(seed, epoch, label("trainer/synthetic-fraction"), 0)
                    .shuffle(&mut eligible);
                for &i in eligible.iter().take(wanted) {
                    replacement[i] = Some(pick_variant(i).1);
                }
            }
        }
        Self { order, replacement }
    }

    /// Fraction of samples replaced by synthetic variants.
    pub fn synthetic_fraction(&self) -> f64 {
        let replaced = self.replacement.iter().filter(|r| r.is_some()).count();
        replaced as f64 / self.replacement.len().max(1) as f64
    }
}

/// The augmented images of `indices` as `[B, 3, H, W]` f32 in [-1, 1], and their labels.
pub(crate) fn augmented_batch(
    set: &TrainSet,
    plan: &EpochPlan,
    indices: &[usize],
    classical: &Classical,
    seed: u64,
    epoch: u64,
    device: &Device,
) -> Result<(Tensor, Vec<usize>), EvalError> {
    let (w, h) = set.real().image_size();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; indices.len() * 3 * plane];
    data.par_chunks_mut(3 * plane)
        .zip(indices.par_iter())
        .try_for_each(|(out, &i)| {
            let source = match plan.replacement[i] {
                Some(v) => &set.variants(i)[v],
                None => &set.real().images()[i],
            };
            let mut rng = Stream::new(seed, i as u64, label("trainer/augment"), epoch);
            let image = classical.apply(source, &mut rng);
            write_pixels(&image, (w, h), out)
        })?;
    let labels = indices.iter().map(|&i| set.real().labels()[i]).collect();
    let tensor = Tensor::from_vec(data, (indices.len(), 3, h as usize, w as usize), device)?;
    Ok((tensor, labels))
}

/// `2 * (u / 255) - 1` per channel plane, as `semaug_data::image_io::images_to_tensor`.
pub(crate) fn write_pixels(
    image: &RgbImage,
    size: (u32, u32),
    out: &mut [f32],
) -> Result<(), EvalError> {
    if image.dimensions() != size {
        let detail = format!(
            "an augmentation changed the image size from {size:?} to {:?}; use size-preserving transforms",
            image.dimensions()
        );
        return Err(EvalError::Data {
            what: "augmentation",
            detail,
        });
    }
    let plane = (size.0 * size.1) as usize;
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = 2.0 * (px[c] as f32 / 255.0) - 1.0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::LabeledImages;

    /// `n` 2x2 images; image `i` has `i % 3` variants.
    fn set(n: usize) -> TrainSet {
        let images = vec![RgbImage::new(2, 2); n];
        let real = LabeledImages::new(images, vec![0; n], 1).unwrap();
        let variants = (0..n).map(|i| vec![RgbImage::new(2, 2); i % 3]).collect();
        TrainSet::with_synthetic(real, variants).unwrap()
    }

    #[test]
    fn order_is_a_seeded_permutation_per_epoch() {
        let set = set(50);
        let mix = SyntheticMix::default();
        let a = EpochPlan::new(&set, mix, 1, 0);
        assert_eq!(a.order, EpochPlan::new(&set, mix, 1, 0).order);
        assert_ne!(a.order, EpochPlan::new(&set, mix, 1, 1).order);
        assert_ne!(a.order, EpochPlan::new(&set, mix, 2, 0).order);
        let mut sorted = a.order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn per_sample_probability_replaces_only_samples_with_variants() {
        let set = set(3000);
        let plan = EpochPlan::new(&set, SyntheticMix::PerSample { probability: 0.5 }, 7, 3);
        let eligible = (0..3000).filter(|i| i % 3 != 0).count() as f64;
        let replaced = plan.replacement.iter().filter(|r| r.is_some()).count() as f64;
        // Binomial(2000, 0.5): sd 22; allow 5 sd.
        assert!(
            (replaced - 0.5 * eligible).abs() < 112.0,
            "{replaced} of {eligible}"
        );
        for (i, r) in plan.replacement.iter().enumerate() {
            if let Some(v) = r {
                assert!(*v < i % 3, "sample {i} variant {v}");
            }
        }
        // Both variants of samples with two get used.
        let second = plan.replacement.iter().filter(|r| **r == Some(1)).count();
        assert!(second > 200, "{second}");
        let none = EpochPlan::new(&set, SyntheticMix::PerSample { probability: 0.0 }, 7, 3);
        assert_eq!(none.synthetic_fraction(), 0.0);
        let all = EpochPlan::new(&set, SyntheticMix::PerSample { probability: 1.0 }, 7, 3);
        assert_eq!(all.synthetic_fraction(), eligible / 3000.0);
    }

    #[test]
    fn fixed_fraction_replaces_exactly_that_many_samples() {
        let set = set(300);
        for (fraction, want) in [(0.25f32, 75usize), (0.5, 150), (0.9, 200), (0.0, 0)] {
            let plan = EpochPlan::new(&set, SyntheticMix::Fraction { fraction }, 4, 0);
            let replaced = plan.replacement.iter().filter(|r| r.is_some()).count();
            assert_eq!(
                replaced, want,
                "fraction {fraction} (capped at the 200 with variants)"
            );
        }
        let a = EpochPlan::new(&set, SyntheticMix::Fraction { fraction: 0.25 }, 4, 0);
        let b = EpochPlan::new(&set, SyntheticMix::Fraction { fraction: 0.25 }, 4, 1);
        assert_ne!(a.replacement, b.replacement, "a new choice each epoch");
    }

    #[test]
    fn pixels_map_to_minus_one_one() {
        let image = RgbImage::from_fn(2, 1, |x, _| image::Rgb([0, 255, 51 * x as u8]));
        let mut out = vec![0f32; 6];
        write_pixels(&image, (2, 1), &mut out).unwrap();
        assert_eq!(
            out,
            vec![-1.0, -1.0, 1.0, 1.0, -1.0, 2.0 * 51.0 / 255.0 - 1.0]
        );
        assert!(write_pixels(&image, (1, 2), &mut out).is_err());
    }
}
