//! Occlusion transforms: Cutout (DeVries & Taylor 2017, `uoguelph-mlrg/Cutout`
//! `util/cutout.py`) and random erasing (Zhong et al. 2020; torchvision
//! `transforms/transforms.py` `RandomErasing`).

use image::{Rgb, RgbImage};
use semaug_core::seeds::Stream;
use serde::{Deserialize, Serialize};

use super::error::{ensure, ensure_probability, AugmentError};

/// An axis-aligned pixel rectangle `[x, x + width) x [y, y + height)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn area(&self) -> u64 {
        self.width as u64 * self.height as u64
    }

    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.width && y - self.y < self.height
    }
}

/// Fill `rect` of `img` with colours from `colour`.
fn fill_rect(img: &mut RgbImage, rect: Rect, mut colour: impl FnMut() -> [u8; 3]) {
    for y in rect.y..rect.y + rect.height {
        for x in rect.x..rect.x + rect.width {
            img.put_pixel(x, y, Rgb(colour()));
        }
    }
}

/// Cutout: `holes` squares of side `size`, centres uniform over the image, clipped at the
/// borders, filled with `fill` (black by default; the paper zeroes normalised tensors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cutout {
    pub size: u32,
    pub holes: u32,
    pub fill: [u8; 3],
}

impl Default for Cutout {
    /// One 16-pixel hole, the paper's CIFAR-10 setting.
    fn default() -> Self {
        Self {
            size: 16,
            holes: 1,
            fill: [0; 3],
        }
    }
}

impl Cutout {
    pub fn validate(&self) -> Result<(), AugmentError> {
        let ok = (1..=4096).contains(&self.size);
        ensure(ok, "cutout", "size", self.size, "1..=4096 pixels")?;
        let ok = (1..=64).contains(&self.holes);
        ensure(ok, "cutout", "holes", self.holes, "1..=64")
    }

    /// One hole: centre `(cx, cy)` uniform over the pixels (row drawn first, as the
    /// reference does), square `[c - size/2, c - size/2 + size)` clipped to the image.
    pub fn sample_box(&self, width: u32, height: u32, rng: &mut Stream) -> Rect {
        let cy = rng.below(height.max(1) as usize) as i64;
        let cx = rng.below(width.max(1) as usize) as i64;
        let (x0, x1) = clipped_span(cx, self.size, width);
        let (y0, y1) = clipped_span(cy, self.size, height);
        Rect {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let mut out = img.clone();
        for _ in 0..self.holes {
            let rect = self.sample_box(img.width(), img.height(), rng);
            fill_rect(&mut out, rect, || self.fill);
        }
        out
    }
}

/// `[centre - size/2, centre - size/2 + size)` clipped to `[0, limit)`.
fn clipped_span(centre: i64, size: u32, limit: u32) -> (u32, u32) {
    let start = centre - (size / 2) as i64;
    let end = start + size as i64;
    let clip = |v: i64| v.clamp(0, limit as i64) as u32;
    (clip(start), clip(end))
}

/// What random erasing paints into its rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseFill {
    /// An independent uniform byte per pixel and channel (Zhong et al.'s choice).
    #[default]
    Random,
    Constant([u8; 3]),
}

/// Random erasing: with probability `p`, a rectangle of area fraction in `scale` and
/// aspect ratio (height / width) log-uniform in `ratio` is filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomErasing {
    pub p: f32,
    pub scale: [f32; 2],
    pub ratio: [f32; 2],
    pub fill: EraseFill,
}

impl Default for RandomErasing {
    fn default() -> Self {
        Self {
            p: 0.5,
            scale: [0.02, 0.33],
            ratio: [0.3, 3.3],
            fill: EraseFill::Random,
        }
    }
}

/// torchvision tries this many rectangles before giving up and leaving the image as is.
const ERASE_ATTEMPTS: usize = 10;

impl RandomErasing {
    pub fn validate(&self) -> Result<(), AugmentError> {
        ensure_probability(self.p, "erase", "p")?;
        let [lo, hi] = self.scale;
        let ok = lo > 0.0 && lo <= hi && hi <= 1.0;
        ensure(
            ok,
            "erase",
            "scale",
            self.scale,
            "[lo, hi], 0 < lo <= hi <= 1",
        )?;
        let [lo, hi] = self.ratio;
        let ok = lo > 0.0 && lo <= hi && hi.is_finite();
        ensure(
            ok,
            "erase",
            "ratio",
            self.ratio,
            "[lo, hi], 0 < lo <= hi, finite",
        )
    }

    /// The rectangle torchvision's `get_params` would pick, or `None` when ten tries
    /// all produced a rectangle that does not fit strictly inside the image.
    pub fn sample_region(&self, width: u32, height: u32, rng: &mut Stream) -> Option<Rect> {
        let area = width as f32 * height as f32;
        let [log_lo, log_hi] = self.ratio.map(f32::ln);
        for _ in 0..ERASE_ATTEMPTS {
            let target = area * rng.range(self.scale[0], self.scale[1]);
            let aspect = rng.range(log_lo, log_hi).exp();
            let h = (target * aspect).sqrt().round_ties_even() as u32;
            let w = (target / aspect).sqrt().round_ties_even() as u32;
            if !(h < height && w < width) {
                continue;
            }
            let y = rng.below((height - h + 1) as usize) as u32;
            let x = rng.below((width - w + 1) as usize) as u32;
            return Some(Rect {
                x,
                y,
                width: w,
                height: h,
            });
        }
        None
    }

    pub fn apply(&self, img: &RgbImage, rng: &mut Stream) -> RgbImage {
        let mut out = img.clone();
        if !rng.bernoulli(self.p) {
            return out;
        }
        let Some(rect) = self.sample_region(img.width(), img.height(), rng) else {
            return out;
        };
        match self.fill {
            EraseFill::Constant(colour) => fill_rect(&mut out, rect, || colour),
            EraseFill::Random => fill_rect(&mut out, rect, || [0; 3].map(|_| rng.below(256) as u8)),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_span_at_borders() {
        assert_eq!(clipped_span(0, 16, 32), (0, 8));
        assert_eq!(clipped_span(31, 16, 32), (23, 32));
        assert_eq!(clipped_span(16, 16, 32), (8, 24));
        assert_eq!(clipped_span(2, 5, 32), (0, 5));
        assert_eq!(clipped_span(3, 100, 4), (0, 4));
    }

    #[test]
    fn erasing_regions_respect_scale_and_ratio() {
        let erase = RandomErasing::default();
        let mut rng = Stream::new(2, 0, 0, 0);
        let mut found = 0;
        for _ in 0..500 {
            let Some(r) = erase.sample_region(64, 48, &mut rng) else {
                continue;
            };
            found += 1;
            assert!(r.x + r.width <= 64 && r.y + r.height <= 48);
            assert!(r.width < 64 && r.height < 48);
            // Rounding each side moves the area a little off the sampled fraction.
            let frac = r.area() as f32 / (64.0 * 48.0);
            assert!((0.01..=0.36).contains(&frac), "area fraction {frac}");
        }
        assert!(found > 450, "only {found} of 500 draws fitted");
    }
}
