//! Mask operations on 8-bit grey masks (`image::GrayImage`, 255 = foreground, the region
//! a generative edit regenerates).
//!
//! [`dilate`] grows a mask by a Euclidean disk (the paper dilates object masks by 16 px
//! so an edit can reshape the object's outline). It is a grey-level max filter over the
//! disk, computed as, for each of the disk's 2r+1 rows, a 1-D running max over that row's
//! span (van Herk / Gil-Werman, O(1) per pixel), so the cost is O(W H r), not O(W H r^2).
//! [`resize_nearest`] uses PyTorch's nearest rule, so latent-size masks match diffusers.

use candle_core::{Device, Tensor};
use image::{GrayImage, Luma};

/// 255 where `mask >= t`, else 0.
pub fn threshold(mask: &GrayImage, t: u8) -> GrayImage {
    map(mask, |v| if v >= t { 255 } else { 0 })
}

/// 255 - mask: swaps the regions to keep and to regenerate.
pub fn invert(mask: &GrayImage) -> GrayImage {
    map(mask, |v| 255 - v)
}

fn map(mask: &GrayImage, f: impl Fn(u8) -> u8) -> GrayImage {
    let (w, h) = mask.dimensions();
    GrayImage::from_raw(w, h, mask.as_raw().iter().map(|&v| f(v)).collect())
        .unwrap_or_else(|| GrayImage::new(w, h)) // unreachable: same length
}

/// The max of `mask` over a Euclidean disk of `radius` px around each pixel: for a 0/255
/// mask, a pixel becomes foreground when a foreground pixel lies within `radius` of it
/// (offsets with dx^2 + dy^2 <= radius^2). Outside the image counts as background.
pub fn dilate(mask: &GrayImage, radius: u32) -> GrayImage {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    if radius == 0 || w == 0 || h == 0 {
        return mask.clone();
    }
    let r = radius as usize;
    let spans: Vec<usize> = (0..=r).map(|dy| isqrt(r * r - dy * dy)).collect();
    let src = mask.as_raw();
    let mut out = vec![0u8; w * h];
    let mut scratch = RunningMax::default();
    for sy in 0..h {
        let row = &src[sy * w..(sy + 1) * w];
        if row.iter().all(|&v| v == 0) {
            continue; // background rows contribute nothing
        }
        // Source row sy reaches output rows sy +- dy with span half-width spans[dy].
        for (dy, &span) in spans.iter().enumerate() {
            let targets = [
                sy.checked_sub(dy),
                Some(sy + dy).filter(|&y| y < h && dy > 0),
            ];
            if targets == [None, None] {
                break; // dy only grows: no further row is inside the image
            }
            let grown = scratch.run(row, span);
            for y in targets.into_iter().flatten() {
                let out_row = &mut out[y * w..(y + 1) * w];
                for (o, g) in out_row.iter_mut().zip(grown) {
                    *o = (*o).max(*g);
                }
            }
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out)
        .unwrap_or_else(|| GrayImage::new(w as u32, h as u32))
}

/// floor(sqrt(n)), exact for the small integers used here.
fn isqrt(n: usize) -> usize {
    let mut s = (n as f64).sqrt() as usize;
    while s * s > n {
        s -= 1;
    }
    while (s + 1) * (s + 1) <= n {
        s += 1;
    }
    s
}

/// Buffers for the 1-D running max `out[x] = max(row[x - k .. x + k])` (clipped).
#[derive(Default)]
struct RunningMax {
    padded: Vec<u8>,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    out: Vec<u8>,
}

impl RunningMax {
    /// van Herk / Gil-Werman: split the zero-padded row into blocks of the window length
    /// `n = 2k + 1`; a window then spans the suffix of one block and the prefix of the next.
    fn run(&mut self, row: &[u8], k: usize) -> &[u8] {
        let n = 2 * k + 1;
        self.padded.clear();
        self.padded.resize(k, 0);
        self.padded.extend_from_slice(row);
        self.padded.resize(row.len() + 2 * k, 0);
        self.prefix.clear();
        self.prefix.extend_from_slice(&self.padded);
        self.suffix.clear();
        self.suffix.extend_from_slice(&self.padded);
        for block in self.prefix.chunks_mut(n) {
            for i in 1..block.len() {
                block[i] = block[i].max(block[i - 1]);
            }
        }
        for block in self.suffix.chunks_mut(n) {
            for i in (0..block.len() - 1).rev() {
                block[i] = block[i].max(block[i + 1]);
            }
        }
        self.out.clear();
        self.out
            .extend((0..row.len()).map(|x| self.suffix[x].max(self.prefix[x + n - 1])));
        &self.out
    }
}

/// The input index PyTorch's `F.interpolate(mode="nearest")` reads for output index `i`
/// (ATen `nearest_idx`): `i` when the sizes agree, `i / 2` when doubling, otherwise
/// `min(floor(f32(i) * f32(in / out)), in - 1)` in f32 arithmetic. That equals
/// `floor(i * in / out)` whenever `out` divides `in` (every latent size) but can be one
/// less for other ratios (e.g. 26 -> 22: i = 11 reads 12, not 13), as in diffusers.
pub fn nearest_source_index(i: usize, in_size: usize, out_size: usize) -> usize {
    if out_size == in_size {
        i
    } else if out_size == 2 * in_size {
        i >> 1
    } else {
        let scale = in_size as f32 / out_size as f32;
        ((i as f32 * scale).floor() as usize).min(in_size.saturating_sub(1))
    }
}

/// Nearest-neighbour resize: `out[y, x] = in[nearest_source_index(y, H, h),
/// nearest_source_index(x, W, w)]`, bit-identical to diffusers' `F.interpolate` of a mask
/// to latent size. An empty input gives an all-background output.
pub fn resize_nearest(mask: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (in_w, in_h) = (mask.width() as usize, mask.height() as usize);
    if in_w == 0 || in_h == 0 {
        return GrayImage::new(width, height);
    }
    let columns: Vec<u32> = (0..width as usize)
        .map(|x| nearest_source_index(x, in_w, width as usize) as u32)
        .collect();
    GrayImage::from_fn(width, height, |x, y| {
        let sy = nearest_source_index(y as usize, in_h, height as usize) as u32;
        *mask.get_pixel(columns[x as usize], sy)
    })
}

/// The mask as a `[1, 1, H, W]` f32 tensor: 1 where `mask >= 128` (regenerate), else 0.
pub fn to_tensor(mask: &GrayImage, device: &Device) -> candle_core::Result<Tensor> {
    let (w, h) = mask.dimensions();
    let data: Vec<f32> = mask
        .as_raw()
        .iter()
        .map(|&v| if v >= 128 { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(data, (1, 1, h as usize, w as usize), device)
}

/// A default mask for images without one: a centred box whose sides are `fraction` of
/// the image's (so it covers `fraction^2` of the area). `fraction` is clamped to [0, 1].
pub fn central_box(width: u32, height: u32, fraction: f32) -> GrayImage {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let box_w = (width as f32 * fraction).round() as u32;
    let box_h = (height as f32 * fraction).round() as u32;
    let (x0, y0) = ((width - box_w) / 2, (height - box_h) / 2);
    GrayImage::from_fn(width, height, |x, y| {
        let inside = (x0..x0 + box_w).contains(&x) && (y0..y0 + box_h).contains(&y);
        Luma([if inside { 255 } else { 0 }])
    })
}

/// The fraction of pixels with `mask >= 128`.
pub fn foreground_fraction(mask: &GrayImage) -> f32 {
    let n = mask.as_raw().len();
    if n == 0 {
        return 0.0;
    }
    mask.as_raw().iter().filter(|&&v| v >= 128).count() as f32 / n as f32
}
