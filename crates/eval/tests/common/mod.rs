//! Synthetic, cleanly separable image classes for training tests.
#![allow(dead_code)]

use image::{Rgb, RgbImage};
use semaug_core::seeds::Stream;
use semaug_eval::LabeledImages;

/// Four classes of `size`x`size` images: (warm or cool colour) x (horizontal or vertical
/// stripes of period 4), with a random stripe phase, brightness and pixel noise. Crops
/// and flips keep every class recognisable.
pub fn striped_image(class: usize, size: u32, rng: &mut Stream) -> RgbImage {
    let phase = rng.below(4) as u32;
    let brightness = rng.range(0.6, 1.0);
    let (on, off): ([f32; 3], [f32; 3]) = match class % 2 {
        0 => ([230.0, 90.0, 40.0], [60.0, 20.0, 10.0]),
        _ => ([40.0, 120.0, 230.0], [10.0, 30.0, 70.0]),
    };
    let horizontal = class / 2 == 0;
    let mut image = RgbImage::new(size, size);
    for (x, y, px) in image.enumerate_pixels_mut() {
        let t = if horizontal { y } else { x };
        let base = if (t + phase) % 4 < 2 { on } else { off };
        *px = Rgb(base.map(|v| (v * brightness + rng.range(-20.0, 20.0)).clamp(0.0, 255.0) as u8));
    }
    image
}

/// `per_class` images of each of the 4 classes, interleaved, drawn from `seed`.
pub fn striped_set(per_class: usize, size: u32, seed: u64) -> LabeledImages {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..per_class * 4 {
        let class = i % 4;
        let mut rng = Stream::new(seed, i as u64, 0, 0);
        images.push(striped_image(class, size, &mut rng));
        labels.push(class);
    }
    LabeledImages::new(images, labels, 4).unwrap()
}
