//! PIL-like image operations on 8-bit RGB, the building blocks of every transform here.
//!
//! Semantics follow torchvision's `transforms/functional.py` (PIL path, `_functional_pil.py`)
//! and PIL's `ImageEnhance` / `ImageOps`: enhancement ops blend the image with a
//! "degenerate" image (black, mean grey, per-pixel grey, smoothed) by a factor, where 1
//! returns the image unchanged; blends truncate to u8 as PIL's `Image.blend` does.
//! Geometry works in continuous coordinates where pixel `i` covers `[i, i + 1)`, so the
//! default centre `(w / 2, h / 2)` is the true image centre, as in PIL's affine transform.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// How geometric ops read between pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    Nearest,
    #[default]
    Bilinear,
}

/// An affine map in torchvision's `F.affine` parameterisation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Affine {
    /// Rotation in degrees, clockwise on screen (torchvision `affine`'s convention).
    pub angle: f64,
    /// Translation in pixels (x right, y down).
    pub translate: (f64, f64),
    /// Shear angles in degrees along x and y.
    pub shear: (f64, f64),
    /// Centre of rotation and shear; `None` is the image centre.
    pub center: Option<(f64, f64)>,
}

impl Affine {
    /// The output -> input map `[a, b, c, d, e, f]`: `x_in = a x + b y + c`, `y_in = d x + e y + f`.
    /// The forward map is `T * C * R(angle) * ShY * ShX * C^-1`, shears with negative
    /// tangents as torchvision's `_get_inverse_affine_matrix` defines them.
    pub fn inverse_matrix(&self, width: u32, height: u32) -> [f64; 6] {
        let (cx, cy) = self
            .center
            .unwrap_or((width as f64 * 0.5, height as f64 * 0.5));
        let (tx, ty) = self.translate;
        let (rot, sx, sy) = (
            self.angle.to_radians(),
            self.shear.0.to_radians().tan(),
            self.shear.1.to_radians().tan(),
        );
        let r = [[rot.cos(), -rot.sin()], [rot.sin(), rot.cos()]];
        let shy = [[1.0, 0.0], [-sy, 1.0]];
        let shx = [[1.0, -sx], [0.0, 1.0]];
        let m = mat_mul(mat_mul(r, shy), shx);
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let inv = [
            [m[1][1] / det, -m[0][1] / det],
            [-m[1][0] / det, m[0][0] / det],
        ];
        // x_in = inv * (p - c - t) + c
        let (ox, oy) = (-cx - tx, -cy - ty);
        [
            inv[0][0],
            inv[0][1],
            inv[0][0] * ox + inv[0][1] * oy + cx,
            inv[1][0],
            inv[1][1],
            inv[1][0] * ox + inv[1][1] * oy + cy,
        ]
    }
}

fn mat_mul(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let cell = |i: usize, j: usize| a[i][0] * b[0][j] + a[i][1] * b[1][j];
    [[cell(0, 0), cell(0, 1)], [cell(1, 0), cell(1, 1)]]
}

/// Apply an affine map; pixels mapped from outside the image take `fill`.
pub fn affine(img: &RgbImage, map: &Affine, interp: Interpolation, fill: [u8; 3]) -> RgbImage {
    let (w, h) = img.dimensions();
    let [a, b, c, d, e, f] = map.inverse_matrix(w, h);
    RgbImage::from_fn(w, h, |x, y| {
        let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
        let (qx, qy) = (a * px + b * py + c, d * px + e * py + f);
        match interp {
            Interpolation::Nearest => Rgb(pixel_or_fill(img, qx.floor(), qy.floor(), fill)),
            Interpolation::Bilinear => bilinear(img, qx - 0.5, qy - 0.5, fill),
        }
    })
}

/// Rotate by `degrees` counter-clockwise about the centre (torchvision `rotate`).
pub fn rotate(img: &RgbImage, degrees: f64, interp: Interpolation, fill: [u8; 3]) -> RgbImage {
    let map = Affine {
        angle: -degrees,
        ..Affine::default()
    };
    affine(img, &map, interp, fill)
}

fn pixel_or_fill(img: &RgbImage, x: f64, y: f64, fill: [u8; 3]) -> [u8; 3] {
    let inside = x >= 0.0 && y >= 0.0 && x < img.width() as f64 && y < img.height() as f64;
    if inside {
        img.get_pixel(x as u32, y as u32).0
    } else {
        fill
    }
}

/// Bilinear read at pixel-centre coordinates `(u, v)`; taps outside the image are `fill`.
fn bilinear(img: &RgbImage, u: f64, v: f64, fill: [u8; 3]) -> Rgb<u8> {
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let taps = [
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x0 + 1.0, y0, fx * (1.0 - fy)),
        (x0, y0 + 1.0, (1.0 - fx) * fy),
        (x0 + 1.0, y0 + 1.0, fx * fy),
    ];
    let mut acc = [0.0f64; 3];
    for (x, y, weight) in taps {
        let p = pixel_or_fill(img, x, y, fill);
        for (a, v) in acc.iter_mut().zip(p) {
            *a += weight * v as f64;
        }
    }
    Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
}

/// Mirror left-right.
pub fn hflip(img: &RgbImage) -> RgbImage {
    image::imageops::flip_horizontal(img)
}

/// ITU-R 601-2 luma, rounded, as PIL's `convert("L")`.
pub fn luma(p: [u8; 3]) -> u8 {
    ((299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32 + 500) / 1000) as u8
}

/// `degenerate + factor * (img - degenerate)`, clipped and truncated (PIL `Image.blend`).
fn blend(img: &RgbImage, degenerate: &RgbImage, factor: f32) -> RgbImage {
    let mut out = img.clone();
    for (o, d) in out.iter_mut().zip(degenerate.iter()) {
        let v = *d as f32 + factor * (*o as f32 - *d as f32);
        *o = v.clamp(0.0, 255.0) as u8;
    }
    out
}

/// Brightness: blend with black; 0 gives black, 1 the image.
pub fn adjust_brightness(img: &RgbImage, factor: f32) -> RgbImage {
    let black = RgbImage::new(img.width(), img.height());
    blend(img, &black, factor)
}

/// Contrast: blend with the image's mean grey level; 0 gives flat grey.
pub fn adjust_contrast(img: &RgbImage, factor: f32) -> RgbImage {
    let count = (img.width() as u64 * img.height() as u64).max(1);
    let sum: u64 = img.pixels().map(|p| luma(p.0) as u64).sum();
    let mean = ((sum as f64 / count as f64) + 0.5) as u8;
    let grey = RgbImage::from_pixel(img.width(), img.height(), Rgb([mean; 3]));
    blend(img, &grey, factor)
}

/// Saturation (PIL "Color"): blend with the per-pixel grey; 0 gives greyscale.
pub fn adjust_saturation(img: &RgbImage, factor: f32) -> RgbImage {
    let mut grey = img.clone();
    for p in grey.pixels_mut() {
        p.0 = [luma(p.0); 3];
    }
    blend(img, &grey, factor)
}

/// Sharpness: blend with PIL's SMOOTH filter (3x3 kernel, centre 5, others 1, /13);
/// border pixels of the smoothed image are the original ones, as in PIL and torchvision.
pub fn adjust_sharpness(img: &RgbImage, factor: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut smooth = img.clone();
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let mut acc = [0u32; 3];
            for (dx, dy) in (0..3).flat_map(|dy| (0..3).map(move |dx| (dx, dy))) {
                let weight = if dx == 1 && dy == 1 { 5 } else { 1 };
                let p = img.get_pixel(x + dx - 1, y + dy - 1).0;
                for (a, v) in acc.iter_mut().zip(p) {
                    *a += weight * v as u32;
                }
            }
            // Rounded division by 13.
            smooth.put_pixel(x, y, Rgb(acc.map(|a| ((a * 2 + 13) / 26) as u8)));
        }
    }
    blend(img, &smooth, factor)
}

/// Hue: rotate the hue by `shift` turns (torchvision `adjust_hue`, `shift` in [-0.5, 0.5]).
pub fn adjust_hue(img: &RgbImage, shift: f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
        let (hue, s, v) = rgb_to_hsv(r, g, b);
        let rgb = hsv_to_rgb((hue + shift).rem_euclid(1.0), s, v);
        p.0 = rgb.map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8);
    }
    out
}

/// HSV with hue in [0, 1) turns (the `colorsys` convention).
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let range = max - min;
    if range == 0.0 {
        return (0.0, 0.0, max);
    }
    let (rc, gc, bc) = ((max - r) / range, (max - g) / range, (max - b) / range);
    let sector = if max == r {
        bc - gc
    } else if max == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    ((sector / 6.0).rem_euclid(1.0), range / max, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let sector = (h * 6.0).floor();
    let f = h * 6.0 - sector;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (sector as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Keep the top `bits` bits of every channel (0..=8; 8 is the identity).
pub fn posterize(img: &RgbImage, bits: u8) -> RgbImage {
    let mask = !((1u16 << (8 - bits.min(8))) - 1) as u8;
    map_channels(img, |v| v & mask)
}

/// Invert every channel value at or above `threshold` (torchvision/PIL `solarize`).
pub fn solarize(img: &RgbImage, threshold: f32) -> RgbImage {
    map_channels(img, |v| if v as f32 >= threshold { 255 - v } else { v })
}

fn map_channels(img: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let mut out = img.clone();
    out.iter_mut().for_each(|v| *v = f(*v));
    out
}

/// Apply a per-channel lookup table built from each channel's histogram.
fn per_channel_lut(img: &RgbImage, build: impl Fn(&[u64; 256]) -> [u8; 256]) -> RgbImage {
    let mut hist = [[0u64; 256]; 3];
    for p in img.pixels() {
        for c in 0..3 {
            hist[c][p.0[c] as usize] += 1;
        }
    }
    let luts = hist.map(|h| build(&h));
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in 0..3 {
            p.0[c] = luts[c][p.0[c] as usize];
        }
    }
    out
}

fn identity_lut() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// Stretch each channel to span 0..=255 (PIL `ImageOps.autocontrast`, cutoff 0);
/// a constant channel is left as it is.
pub fn autocontrast(img: &RgbImage) -> RgbImage {
    per_channel_lut(img, |h| {
        let lo = h.iter().position(|&n| n > 0);
        let hi = h.iter().rposition(|&n| n > 0);
        match (lo, hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let scale = 255.0 / (hi - lo) as f32;
                std::array::from_fn(|i| ((i as f32 - lo as f32) * scale).clamp(0.0, 255.0) as u8)
            }
            _ => identity_lut(),
        }
    })
}

/// Histogram equalisation per channel (PIL `ImageOps.equalize`): the step is the pixel
/// count outside the last occupied bin over 255; a channel with one level is unchanged.
pub fn equalize(img: &RgbImage) -> RgbImage {
    per_channel_lut(img, |h| {
        let last = h.iter().rposition(|&n| n > 0).map_or(0, |i| h[i]);
        let total: u64 = h.iter().sum();
        let step = (total - last) / 255;
        if step == 0 {
            return identity_lut();
        }
        let mut acc = step / 2;
        std::array::from_fn(|i| {
            let v = (acc / step).min(255) as u8;
            acc += h[i];
            v
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 7 + y) as u8, (y * 11 + 3) as u8, (x * y % 251) as u8])
        })
    }

    #[test]
    fn rotate_90_matches_exact_pixel_rotation() {
        let img = gradient(6, 6);
        let ccw = rotate(&img, 90.0, Interpolation::Nearest, [0; 3]);
        assert_eq!(ccw, image::imageops::rotate270(&img));
        let cw = rotate(&img, -90.0, Interpolation::Bilinear, [0; 3]);
        assert_eq!(cw, image::imageops::rotate90(&img));
    }

    #[test]
    fn translate_moves_content_and_fills() {
        let img = gradient(5, 4);
        let map = Affine {
            translate: (2.0, 1.0),
            ..Affine::default()
        };
        let out = affine(&img, &map, Interpolation::Nearest, [9, 8, 7]);
        for (x, y, p) in out.enumerate_pixels() {
            let want = if x >= 2 && y >= 1 {
                img.get_pixel(x - 2, y - 1).0
            } else {
                [9, 8, 7]
            };
            assert_eq!(p.0, want, "at ({x}, {y})");
        }
    }

    #[test]
    fn shear_x_about_origin_shifts_rows_by_row_index() {
        // torchvision ShearX with magnitude m reads input x = x_out + m * y (PIL matrix
        // (1, m, 0, 0, 1, 0)) in continuous coordinates. With m = 2 the centre of output
        // pixel (x, y) reads x + 0.5 + 2 (y + 0.5) = (x + 2y + 1) + 0.5, a pixel centre.
        let img = gradient(12, 4);
        let map = Affine {
            shear: (2f64.atan().to_degrees(), 0.0),
            center: Some((0.0, 0.0)),
            ..Affine::default()
        };
        let out = affine(&img, &map, Interpolation::Nearest, [0; 3]);
        for (x, y, p) in out.enumerate_pixels() {
            let source = x + 2 * y + 1;
            let want = if source < 12 {
                img.get_pixel(source, y).0
            } else {
                [0; 3]
            };
            assert_eq!(p.0, want, "at ({x}, {y})");
        }
    }

    #[test]
    fn enhance_factors_have_their_analytic_extremes() {
        let img = gradient(7, 5);
        assert_eq!(adjust_brightness(&img, 0.0), RgbImage::new(7, 5));
        for f in [
            adjust_brightness,
            adjust_contrast,
            adjust_saturation,
            adjust_sharpness,
        ] {
            assert_eq!(f(&img, 1.0), img);
        }
        let grey = adjust_saturation(&img, 0.0);
        assert!(grey.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
        let flat = adjust_contrast(&img, 0.0);
        assert!(flat
            .pixels()
            .all(|p| *p == flat.pixels().next().copied().unwrap_or(*p)));
        assert_eq!(adjust_brightness(&img, 2.0).get_pixel(1, 0).0[0], 14);
    }

    #[test]
    fn hue_shift_cycles_primaries() {
        let red = RgbImage::from_pixel(2, 2, Rgb([255, 0, 0]));
        assert_eq!(adjust_hue(&red, 1.0 / 3.0).get_pixel(0, 0).0, [0, 255, 0]);
        assert_eq!(adjust_hue(&red, -1.0 / 3.0).get_pixel(0, 0).0, [0, 0, 255]);
        let img = gradient(9, 9);
        assert_eq!(adjust_hue(&img, 0.0), img);
    }

    #[test]
    fn posterize_and_solarize_by_hand() {
        let img = RgbImage::from_pixel(1, 1, Rgb([0b1011_0111, 128, 127]));
        assert_eq!(posterize(&img, 3).get_pixel(0, 0).0, [0b1010_0000, 128, 96]);
        assert_eq!(posterize(&img, 8), img);
        assert_eq!(posterize(&img, 0).get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(solarize(&img, 128.0).get_pixel(0, 0).0, [72, 127, 127]);
    }

    #[test]
    fn autocontrast_stretches_to_full_range() {
        let img = RgbImage::from_fn(4, 1, |x, _| Rgb([50 + x as u8 * 10, 7, 200 - x as u8]));
        let out = autocontrast(&img);
        let red: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(red, vec![0, 85, 170, 255]);
        assert!(out.pixels().all(|p| p.0[1] == 7));
        assert_eq!(out.get_pixel(0, 0).0[2], 255);
        assert_eq!(out.get_pixel(3, 0).0[2], 0);
    }

    #[test]
    fn equalize_spreads_two_levels() {
        // 300 pixels at 10 and 300 at 20: step = 300 / 255 = 1; level 10 maps to
        // (0 + 0) / 1 = 0 and level 20 to (0 + 300) / 1 clipped to 255.
        let img = RgbImage::from_fn(600, 1, |x, _| Rgb([if x < 300 { 10 } else { 20 }; 3]));
        let out = equalize(&img);
        assert_eq!(out.get_pixel(0, 0).0, [0; 3]);
        assert_eq!(out.get_pixel(599, 0).0, [255; 3]);
        let flat = RgbImage::from_pixel(3, 3, Rgb([77; 3]));
        assert_eq!(equalize(&flat), flat);
    }
}
