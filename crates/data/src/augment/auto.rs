//! RandAugment (Cubuk et al. 2020) and TrivialAugmentWide (Müller & Hutter 2021) with
//! torchvision's op list, magnitude bins and sign convention
//! (`transforms/autoaugment.py`: `_augmentation_space`, `_apply_op`).
//!
//! A magnitude is bin `i` of `num_magnitude_bins` linearly spaced values from 0 to the op's
//! maximum; signed ops negate it with probability 1/2. Enhancement ops use factor
//! `1 + magnitude`, so magnitude 0 leaves the image unchanged for every op except
//! Solarize (threshold 255 still inverts pure 255), AutoContrast and Equalize.

use image::RgbImage;
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::error::{ensure, AugmentError};
use super::ops::{self, Affine, Interpolation};

/// One operation of the RandAugment / TrivialAugment search space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugOp {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

/// Which magnitude table: RandAugment's or TrivialAugmentWide's wider one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    RandAugment,
    Wide,
}

impl AugOp {
    /// torchvision's op list, in its order (uniform choice makes the order matter only
    /// for reproducing draws).
    pub const ALL: [AugOp; 14] = [
        AugOp::Identity,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
        AugOp::Rotate,
        AugOp::Brightness,
        AugOp::Color,
        AugOp::Contrast,
        AugOp::Sharpness,
        AugOp::Posterize,
        AugOp::Solarize,
        AugOp::AutoContrast,
        AugOp::Equalize,
    ];

    /// Whether the magnitude gets a random sign.
    pub fn signed(self) -> bool {
        use AugOp::*;
        matches!(
            self,
            ShearX
                | ShearY
                | TranslateX
                | TranslateY
                | Rotate
                | Brightness
                | Color
                | Contrast
                | Sharpness
        )
    }

    /// Whether the op takes a magnitude at all (torchvision's non-scalar tables).
    pub fn has_magnitude(self) -> bool {
        !matches!(
            self,
            AugOp::Identity | AugOp::AutoContrast | AugOp::Equalize
        )
    }

    /// Unsigned magnitude of bin `bin` of `bins` (`bins >= 2`) for a `width x height` image.
    pub fn magnitude(self, space: Space, bin: u32, bins: u32, width: u32, height: u32) -> f32 {
        let t = bin as f64 / (bins - 1) as f64;
        let wide = space == Space::Wide;
        let pick = |rand: f64, wide_max: f64| if wide { wide_max } else { rand };
        let value = match self {
            AugOp::ShearX | AugOp::ShearY => pick(0.3, 0.99) * t,
            AugOp::TranslateX => pick(150.0 / 331.0 * width as f64, 32.0) * t,
            AugOp::TranslateY => pick(150.0 / 331.0 * height as f64, 32.0) * t,
            AugOp::Rotate => pick(30.0, 135.0) * t,
            AugOp::Brightness | AugOp::Color | AugOp::Contrast | AugOp::Sharpness => {
                pick(0.9, 0.99) * t
            }
            AugOp::Posterize => {
                let levels = pick(4.0, 6.0);
                8.0 - (bin as f64 / ((bins - 1) as f64 / levels)).round_ties_even()
            }
            AugOp::Solarize => 255.0 * (1.0 - t),
            AugOp::Identity | AugOp::AutoContrast | AugOp::Equalize => 0.0,
        };
        value as f32
    }

    /// Apply with a signed magnitude (torchvision `_apply_op`). Shears act about the
    /// top-left corner; translations truncate to whole pixels.
    pub fn apply(
        self,
        img: &RgbImage,
        magnitude: f32,
        interp: Interpolation,
        fill: [u8; 3],
    ) -> RgbImage {
        let m = magnitude as f64;
        let corner = Some((0.0, 0.0));
        let shear_deg = m.atan().to_degrees();
        let warp = |map: Affine| ops::affine(img, &map, interp, fill);
        match self {
            AugOp::Identity => img.clone(),
            AugOp::ShearX => warp(Affine {
                shear: (shear_deg, 0.0),
                center: corner,
                ..Affine::default()
            }),
            AugOp::ShearY => warp(Affine {
                shear: (0.0, shear_deg),
                center: corner,
                ..Affine::default()
            }),
            AugOp::TranslateX => warp(Affine {
                translate: (m.trunc(), 0.0),
                ..Affine::default()
            }),
            AugOp::TranslateY => warp(Affine {
                translate: (0.0, m.trunc()),
                ..Affine::default()
            }),
            AugOp::Rotate => ops::rotate(img, m, interp, fill),
            AugOp::Brightness => ops::adjust_brightness(img, 1.0 + magnitude),
            AugOp::Color => ops::adjust_saturation(img, 1.0 + magnitude),
            AugOp::Contrast => ops::adjust_contrast(img, 1.0 + magnitude),
            AugOp::Sharpness => ops::adjust_sharpness(img, 1.0 + magnitude),
            AugOp::Posterize => ops::posterize(img, magnitude.clamp(0.0, 8.0) as u8),
            AugOp::Solarize => ops::solarize(img, magnitude),
            AugOp::AutoContrast => ops::autocontrast(img),
            AugOp::Equalize => ops::equalize(img),
        }
    }
}

/// Draw an op uniformly from `ops`, then its sign when it is signed.
fn draw_signed(
    ops: &[AugOp],
    rng: &mut Stream,
    magnitude_of: impl FnOnce(AugOp, &mut Stream) -> f32,
) -> (AugOp, f32) {
    let op = ops[rng.below(ops.len())];
    let magnitude = magnitude_of(op, rng);
    let negate = op.signed() && rng.bernoulli(0.5);
    (op, if negate { -magnitude } else { magnitude })
}

fn validate_ops(transform: &'static str, ops: &[AugOp]) -> Result<(), AugmentError> {
    if ops.is_empty() {
        return Err(AugmentError::Empty {
            transform,
            param: "ops",
        });
    }
    Ok(())
}

/// RandAugment: `num_ops` ops drawn uniformly, all at magnitude bin `magnitude`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandAugment {
    pub num_ops: u32,
    pub magnitude: u32,
    pub num_magnitude_bins: u32,
    pub interpolation: Interpolation,
    pub fill: [u8; 3],
    /// The op list to draw from; torchvision's full list by default.
    pub ops: Vec<AugOp>,
}

impl Default for RandAugment {
    /// torchvision's defaults: n = 2, m = 9, 31 bins, nearest, black fill.
    fn default() -> Self {
        Self {
            num_ops: 2,
            magnitude: 9,
            num_magnitude_bins: 31,
            interpolation: Interpolation::Nearest,
            fill: [0; 3],
            ops: AugOp::ALL.to_vec(),
        }
    }
}

impl RandAugment {
    pub fn validate(&self) -> Result<(), AugmentError> {
        let t = "randaugment";
        ensure(self.num_ops <= 16, t, "n (num_ops)", self.num_ops, "0..=16")?;
        let ok = (2..=1000).contains(&self.num_magnitude_bins);
        ensure(
            ok,
            t,
            "num_magnitude_bins",
            self.num_magnitude_bins,
            "2..=1000",
        )?;
        let ok = self.magnitude < self.num_magnitude_bins;
        ensure(
            ok,
            t,
            "m (magnitude)",
            self.magnitude,
            "0..num_magnitude_bins (0..=30 by default)",
        )?;
        validate_ops(t, &self.ops)
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let mut out = img.clone();
        for _ in 0..self.num_ops {
            let (w, h) = out.dimensions();
            let bins = self.num_magnitude_bins;
            let (op, m) = draw_signed(&self.ops, rng, |op, _| {
                op.magnitude(Space::RandAugment, self.magnitude, bins, w, h)
            });
            out = op.apply(&out, m, self.interpolation, self.fill);
        }
        out
    }
}

/// TrivialAugmentWide: one op drawn uniformly, at a uniformly drawn magnitude bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrivialAugmentWide {
    pub num_magnitude_bins: u32,
    pub interpolation: Interpolation,
    pub fill: [u8; 3],
    pub ops: Vec<AugOp>,
}

impl Default for TrivialAugmentWide {
    /// torchvision's defaults: 31 bins, nearest, black fill, full op list.
    fn default() -> Self {
        Self {
            num_magnitude_bins: 31,
            interpolation: Interpolation::Nearest,
            fill: [0; 3],
            ops: AugOp::ALL.to_vec(),
        }
    }
}

impl TrivialAugmentWide {
    pub fn validate(&self) -> Result<(), AugmentError> {
        let t = "trivialaugment";
        let ok = (2..=1000).contains(&self.num_magnitude_bins);
        ensure(
            ok,
            t,
            "num_magnitude_bins",
            self.num_magnitude_bins,
            "2..=1000",
        )?;
        validate_ops(t, &self.ops)
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let (w, h) = img.dimensions();
        let bins = self.num_magnitude_bins;
        let (op, m) = draw_signed(&self.ops, rng, |op, rng| {
            if !op.has_magnitude() {
                return 0.0;
            }
            let bin = rng.below(bins as usize) as u32;
            op.magnitude(Space::Wide, bin, bins, w, h)
        });
        op.apply(img, m, self.interpolation, self.fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_tables_match_torchvision_at_known_bins() {
        let ra = |op: AugOp, bin| op.magnitude(Space::RandAugment, bin, 31, 32, 32);
        assert!((ra(AugOp::ShearX, 9) - 0.09).abs() < 1e-6);
        assert!((ra(AugOp::Rotate, 9) - 9.0).abs() < 1e-5);
        assert!((ra(AugOp::TranslateX, 30) - 150.0 / 331.0 * 32.0).abs() < 1e-4);
        assert!((ra(AugOp::Brightness, 30) - 0.9).abs() < 1e-6);
        assert_eq!(ra(AugOp::Solarize, 0), 255.0);
        assert_eq!(ra(AugOp::Solarize, 30), 0.0);
        // 8 - round(i / 7.5): bins 0..=3 -> 8, 4..=11 -> 7, ..., 30 -> 4.
        let bits: Vec<f32> = [0, 3, 4, 9, 11, 12, 30]
            .iter()
            .map(|&b| ra(AugOp::Posterize, b))
            .collect();
        assert_eq!(bits, vec![8.0, 8.0, 7.0, 7.0, 7.0, 6.0, 4.0]);
        let wide = |op: AugOp, bin| op.magnitude(Space::Wide, bin, 31, 32, 32);
        assert!((wide(AugOp::Rotate, 30) - 135.0).abs() < 1e-4);
        assert!((wide(AugOp::TranslateY, 15) - 16.0).abs() < 1e-5);
        assert_eq!(wide(AugOp::Posterize, 30), 2.0);
        assert!((wide(AugOp::Sharpness, 30) - 0.99).abs() < 1e-6);
    }

    #[test]
    fn signs_are_drawn_only_for_signed_ops() {
        let mut rng = Stream::new(3, 0, 0, 0);
        let mut negative = 0;
        for _ in 0..400 {
            let (op, m) = draw_signed(&AugOp::ALL, &mut rng, |_, _| 1.0);
            if m < 0.0 {
                negative += 1;
                assert!(op.signed(), "{op:?} came out negative");
            }
        }
        // 9 of 14 ops are signed: about 9/28 of 400 = 129 negatives expected.
        assert!((90..170).contains(&negative), "{negative}");
    }
}
