//! Geometric transforms: random crop with padding, horizontal flip, random rotation.
//!
//! torchvision's `transforms/transforms.py` (`RandomCrop`, `RandomHorizontalFlip`,
//! `RandomRotation`) defines the semantics; the output always has the input's size, as in
//! the CIFAR recipe `RandomCrop(32, padding=4)`.

use image::{Rgb, RgbImage};
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::error::{ensure, ensure_probability, AugmentError};
use super::ops::{self, Interpolation};

/// How the border added by [`RandomCrop`] is filled (torchvision `padding_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// The `fill` colour.
    #[default]
    Constant,
    /// Mirror without repeating the edge pixel (numpy `reflect`).
    Reflect,
    /// Repeat the edge pixel.
    Edge,
}

/// Pad every side by `padding`, then cut a window of the original size at a uniform offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomCrop {
    pub padding: u32,
    pub pad_mode: PadMode,
    pub fill: [u8; 3],
}

impl Default for RandomCrop {
    fn default() -> Self {
        Self {
            padding: 4,
            pad_mode: PadMode::Constant,
            fill: [0; 3],
        }
    }
}

/// Largest accepted padding; far beyond any sensible crop jitter.
pub const MAX_PADDING: u32 = 1024;

impl RandomCrop {
    pub fn validate(&self) -> Result<(), AugmentError> {
        ensure(
            self.padding <= MAX_PADDING,
            "crop",
            "padding",
            self.padding,
            "0..=1024 pixels",
        )
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let span = 2 * self.padding as usize + 1;
        // Top first, then left, as torchvision's get_params draws them.
        let top = rng.below(span) as i64 - self.padding as i64;
        let left = rng.below(span) as i64 - self.padding as i64;
        RgbImage::from_fn(img.width(), img.height(), |x, y| {
            self.padded_pixel(img, x as i64 + left, y as i64 + top)
        })
    }

    /// The pixel at `(x, y)` of the image extended by the pad mode.
    fn padded_pixel(&self, img: &RgbImage, x: i64, y: i64) -> Rgb<u8> {
        let (w, h) = (img.width() as i64, img.height() as i64);
        let inside = (0..w).contains(&x) && (0..h).contains(&y);
        let (x, y) = match (inside, self.pad_mode) {
            (true, _) => (x, y),
            (false, PadMode::Constant) => return Rgb(self.fill),
            (false, PadMode::Reflect) => (reflect(x, w), reflect(y, h)),
            (false, PadMode::Edge) => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
        };
        *img.get_pixel(x as u32, y as u32)
    }
}

/// Index `i` mirrored into `0..n` without repeating the edge (period `2 (n - 1)`).
fn reflect(i: i64, n: i64) -> i64 {
    if n <= 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    if m < n {
        m
    } else {
        period - m
    }
}

/// Mirror left-right with probability `p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HorizontalFlip {
    pub p: f32,
}

impl Default for HorizontalFlip {
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

impl HorizontalFlip {
    pub fn validate(&self) -> Result<(), AugmentError> {
        ensure_probability(self.p, "flip", "p")
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        if rng.bernoulli(self.p) {
            ops::hflip(img)
        } else {
            img.clone()
        }
    }
}

/// Rotate by an angle drawn uniformly from `degrees` (counter-clockwise positive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomRotation {
    /// `[low, high]` in degrees.
    pub degrees: [f32; 2],
    pub interpolation: Interpolation,
    pub fill: [u8; 3],
}

impl Default for RandomRotation {
    /// 15 degrees either way, the DA-Fusion "classical" baseline.
    fn default() -> Self {
        Self::symmetric(15.0)
    }
}

impl RandomRotation {
    /// Angles in `[-degrees, degrees]`, bilinear, black fill.
    pub fn symmetric(degrees: f32) -> Self {
        Self {
            degrees: [-degrees, degrees],
            interpolation: Interpolation::Bilinear,
            fill: [0; 3],
        }
    }

    pub fn validate(&self) -> Result<(), AugmentError> {
        let [lo, hi] = self.degrees;
        let ok = (-360.0..=360.0).contains(&lo) && (-360.0..=360.0).contains(&hi) && lo <= hi;
        ensure(
            ok,
            "rotate",
            "degrees",
            self.degrees,
            "[low, high] with -360 <= low <= high <= 360",
        )
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let [lo, hi] = self.degrees;
        let angle = rng.range(lo, hi);
        ops::rotate(img, angle as f64, self.interpolation, self.fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_without_repeating_the_edge() {
        let got: Vec<i64> = (-4..8).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn crop_window_is_a_shifted_copy_of_the_padded_image() {
        let img = RgbImage::from_fn(6, 5, |x, y| Rgb([x as u8 + 1, y as u8 + 1, 9]));
        let crop = RandomCrop {
            padding: 3,
            pad_mode: PadMode::Edge,
            fill: [0; 3],
        };
        let mut rng = Stream::new(4, 0, 0, 0);
        for _ in 0..20 {
            let mut probe = rng.clone();
            let top = probe.below(7) as i64 - 3;
            let left = probe.below(7) as i64 - 3;
            let out = crop.apply(&img, &mut rng);
            for (x, y, p) in out.enumerate_pixels() {
                let sx = (x as i64 + left).clamp(0, 5) as u8;
                let sy = (y as i64 + top).clamp(0, 4) as u8;
                assert_eq!(p.0, [sx + 1, sy + 1, 9]);
            }
        }
    }
}
