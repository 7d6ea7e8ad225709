//! Colour jitter with torchvision's `ColorJitter` semantics (`transforms/transforms.py`):
//! brightness, contrast and saturation factors are drawn uniformly from
//! `[max(0, 1 - x), 1 + x]`, the hue shift from `[-hue, hue]` turns, and the four
//! adjustments run in a fresh random order each call (torchvision always shuffles; here it
//! can be switched off). A parameter of 0 skips its adjustment and its draw.

use image::RgbImage;
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::error::{ensure, AugmentError};
use super::ops;

/// Random brightness, contrast, saturation and hue changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Largest hue shift in turns, at most 0.5.
    pub hue: f32,
    /// Shuffle the order of the four adjustments on every call.
    pub random_order: bool,
}

impl Default for ColorJitter {
    /// The common ImageNet recipe `ColorJitter(0.4, 0.4, 0.4, 0.1)` (= strength 0.5).
    fn default() -> Self {
        Self::from_strength(0.5)
    }
}

/// Upper limit for brightness/contrast/saturation; beyond it images saturate to nothing.
const MAX_FACTOR_SPREAD: f32 = 10.0;

/// Largest `strength` for [`ColorJitter::from_strength`]: keeps `hue = 0.2 s <= 0.5`.
pub const MAX_JITTER_STRENGTH: f32 = 2.5;

impl ColorJitter {
    /// SimCLR's parameterisation: `(0.8 s, 0.8 s, 0.8 s, 0.2 s)`, random order.
    pub fn from_strength(strength: f32) -> Self {
        Self {
            brightness: 0.8 * strength,
            contrast: 0.8 * strength,
            saturation: 0.8 * strength,
            hue: 0.2 * strength,
            random_order: true,
        }
    }

    pub fn validate(&self) -> Result<(), AugmentError> {
        for (param, value) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            let ok = (0.0..=MAX_FACTOR_SPREAD).contains(&value);
            ensure(ok, "jitter", param, value, "0..=10")?;
        }
        let ok = (0.0..=0.5).contains(&self.hue);
        ensure(ok, "jitter", "hue", self.hue, "0..=0.5 turns")
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let mut order = [0usize, 1, 2, 3];
        if self.random_order {
            rng.shuffle(&mut order);
        }
        let factors = [
            draw_factor(self.brightness, rng),
            draw_factor(self.contrast, rng),
            draw_factor(self.saturation, rng),
            (self.hue > 0.0).then(|| rng.range(-self.hue, self.hue)),
        ];
        let mut out = img.clone();
        for index in order {
            let Some(factor) = factors[index] else {
                continue;
            };
            out = match index {
                0 => ops::adjust_brightness(&out, factor),
                1 => ops::adjust_contrast(&out, factor),
                2 => ops::adjust_saturation(&out, factor),
                _ => ops::adjust_hue(&out, factor),
            };
        }
        out
    }
}

/// A factor uniform in `[max(0, 1 - spread), 1 + spread]`, or `None` when `spread` is 0.
fn draw_factor(spread: f32, rng: &mut Stream) -> Option<f32> {
    (spread > 0.0).then(|| rng.range((1.0 - spread).max(0.0), 1.0 + spread))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn zero_jitter_is_identity_and_factors_stay_in_range() {
        let img = RgbImage::from_fn(5, 5, |x, y| Rgb([x as u8 * 40, y as u8 * 50, 77]));
        let none = ColorJitter::from_strength(0.0);
        let mut rng = Stream::new(1, 2, 3, 4);
        assert_eq!(none.apply(&img, &mut rng), img);
        for _ in 0..1000 {
            let f = draw_factor(1.5, &mut rng).unwrap_or(f32::NAN);
            assert!((0.0..=2.5).contains(&f), "{f}");
        }
    }

    #[test]
    fn brightness_only_jitter_scales_every_channel_by_one_factor() {
        let img = RgbImage::from_pixel(3, 3, Rgb([100, 100, 100]));
        let jitter = ColorJitter {
            brightness: 0.5,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            random_order: true,
        };
        let mut rng = Stream::new(9, 0, 0, 0);
        let mut probe = rng.clone();
        probe.shuffle(&mut [0usize, 1, 2, 3]);
        let factor = probe.range(0.5, 1.5);
        let out = jitter.apply(&img, &mut rng);
        assert_eq!(out.get_pixel(1, 1).0, [(100.0 * factor) as u8; 3]);
    }
}
