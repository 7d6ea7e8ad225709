//! Mask operations against analytic answers and brute-force references.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use candle_core::Device;
use image::{GrayImage, Luma};
use semaug_core::seeds::Stream;
use semaug_data::mask::{
    central_box, dilate, foreground_fraction, invert, nearest_source_index, resize_nearest,
    threshold, to_tensor,
};

fn point(w: u32, h: u32, x: u32, y: u32) -> GrayImage {
    let mut m = GrayImage::new(w, h);
    m.put_pixel(x, y, Luma([255]));
    m
}

fn random_mask(w: u32, h: u32, seed: u64, p_on: f32) -> GrayImage {
    let mut s = Stream::new(seed, 0, 0, 0);
    GrayImage::from_fn(w, h, |_, _| {
        Luma([if s.bernoulli(p_on) {
            1 + s.below(255) as u8
        } else {
            0
        }])
    })
}

/// max over all pixels within Euclidean distance r, by definition.
fn dilate_reference(m: &GrayImage, r: i64) -> GrayImage {
    let (w, h) = (m.width() as i64, m.height() as i64);
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        let mut best = 0;
        for dy in -r..=r {
            for dx in -r..=r {
                let (sx, sy) = (x as i64 + dx, y as i64 + dy);
                if dx * dx + dy * dy <= r * r && (0..w).contains(&sx) && (0..h).contains(&sy) {
                    best = best.max(m.get_pixel(sx as u32, sy as u32)[0]);
                }
            }
        }
        Luma([best])
    })
}

#[test]
fn dilating_a_point_gives_a_symmetric_disk() {
    for r in [1u32, 2, 5, 16] {
        let c = 40;
        let out = dilate(&point(81, 81, c, c), r);
        let lattice_points = {
            let r = r as i64;
            (-r..=r)
                .flat_map(|y| (-r..=r).map(move |x| (x, y)))
                .filter(|(x, y)| x * x + y * y <= r * r)
                .count()
        };
        let area = out.pixels().filter(|p| p[0] == 255).count();
        assert_eq!(area, lattice_points, "r = {r}");
        if r == 16 {
            let disk = std::f64::consts::PI * 256.0;
            assert!(
                (area as f64 - disk).abs() / disk < 0.02,
                "area {area} vs pi r^2 {disk}"
            );
        }
        for (x, y) in out
            .enumerate_pixels()
            .filter(|(_, _, p)| p[0] == 255)
            .map(|(x, y, _)| (x, y))
        {
            let (dx, dy) = (x as i64 - c as i64, y as i64 - c as i64);
            for (mx, my) in [(-dx, dy), (dx, -dy), (dy, dx), (-dy, -dx)] {
                let p = out.get_pixel((c as i64 + mx) as u32, (c as i64 + my) as u32);
                assert_eq!(p[0], 255, "r = {r}: ({dx}, {dy}) set but ({mx}, {my}) not");
            }
        }
        assert_eq!(out.get_pixel(c + r, c)[0], 255);
        assert_eq!(out.get_pixel(c + r + 1, c)[0], 0);
    }
}

#[test]
fn dilate_matches_the_definition_on_random_grey_masks_and_borders() {
    for (w, h, r, seed) in [
        (37u32, 23u32, 3u32, 1u64),
        (20, 31, 7, 2),
        (9, 5, 12, 3),
        (16, 16, 1, 4),
    ] {
        let m = random_mask(w, h, seed, 0.05);
        assert_eq!(
            dilate(&m, r),
            dilate_reference(&m, r as i64),
            "{w}x{h} r={r}"
        );
    }
    let m = random_mask(10, 10, 5, 0.3);
    assert_eq!(dilate(&m, 0), m);
    assert_eq!(dilate(&GrayImage::new(30, 30), 5), GrayImage::new(30, 30));
}

#[test]
fn dilate_16px_on_256_is_fast() {
    let m = threshold(&random_mask(256, 256, 9, 0.02), 1);
    let start = std::time::Instant::now();
    let runs = 20;
    let mut out = GrayImage::new(1, 1);
    for _ in 0..runs {
        out = dilate(&m, 16);
    }
    let per_call = start.elapsed() / runs;
    println!("dilate 256x256 r=16: {per_call:?} per call");
    assert!(foreground_fraction(&out) > 0.9);
    assert!(per_call.as_millis() < 100, "{per_call:?}");
}

#[test]
fn threshold_and_invert() {
    let m = GrayImage::from_raw(4, 1, vec![0, 127, 128, 255]).unwrap();
    assert_eq!(threshold(&m, 128).into_raw(), [0, 0, 255, 255]);
    assert_eq!(invert(&m).into_raw(), [255, 128, 127, 0]);
    let r = random_mask(13, 7, 6, 0.5);
    assert_eq!(invert(&invert(&r)), r);
}

#[test]
fn resize_nearest_matches_the_sampling_rule() {
    // Latent sizes divide the image size: out[i, j] = in[floor(i H / h), floor(j W / w)].
    let m = GrayImage::from_fn(64, 48, |x, y| Luma([(x * 3 + y * 5) as u8]));
    for (w, h) in [(8u32, 6u32), (32, 24), (16, 48), (64, 48)] {
        let out = resize_nearest(&m, w, h);
        assert_eq!(out.dimensions(), (w, h));
        for (x, y, p) in out.enumerate_pixels() {
            let (sx, sy) = (x * 64 / w, y * 48 / h);
            assert_eq!(p, m.get_pixel(sx, sy), "{w}x{h} at ({x}, {y})");
        }
    }
    // Upsampling by 2 repeats each pixel.
    let up = resize_nearest(&m, 128, 96);
    assert_eq!(up.get_pixel(127, 95), m.get_pixel(63, 47));
    assert_eq!(up.get_pixel(5, 6), m.get_pixel(2, 3));
    // PyTorch computes floor(f32(i) * f32(26 / 22)): for i = 11 that is 12, not 13
    // (worked out independently in f32 arithmetic).
    assert_eq!(nearest_source_index(11, 26, 22), 12);
    assert_eq!(nearest_source_index(21, 26, 22), 24);
    assert_eq!(
        resize_nearest(&GrayImage::new(0, 0), 3, 2),
        GrayImage::new(3, 2)
    );
}

#[test]
fn to_tensor_is_binary_nchw() {
    let m = GrayImage::from_raw(3, 2, vec![0, 255, 127, 128, 200, 0]).unwrap();
    let t = to_tensor(&m, &Device::Cpu).unwrap();
    assert_eq!(t.dims4().unwrap(), (1, 1, 2, 3));
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v, [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]);
}

#[test]
fn central_box_is_centred_with_the_given_side_fraction() {
    let m = central_box(100, 50, 0.5);
    let on: Vec<(u32, u32)> = m
        .enumerate_pixels()
        .filter(|(_, _, p)| p[0] == 255)
        .map(|(x, y, _)| (x, y))
        .collect();
    assert_eq!(on.len(), 50 * 25);
    assert_eq!(on.first(), Some(&(25, 12)));
    assert_eq!(on.last(), Some(&(74, 36)));
    assert_eq!(foreground_fraction(&central_box(8, 8, 1.0)), 1.0);
    assert_eq!(foreground_fraction(&central_box(8, 8, 0.0)), 0.0);
    assert_eq!(foreground_fraction(&central_box(8, 8, f32::NAN)), 0.0);
}
