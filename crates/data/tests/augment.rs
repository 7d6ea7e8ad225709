//! Properties of the classical augmentations: shapes kept, seeded determinism, analytic
//! identities (flip twice, zero padding, zero rotation, magnitude-0 RandAugment), exact
//! Cutout areas, Mixup/CutMix label algebra, validation errors, and a real CIFAR image.

use candle_core::{Device, Tensor};
use image::{Rgb, RgbImage};
use proptest::prelude::*;
use semaug_core::seeds::{label, Stream};
use semaug_data::augment::{
    AugOp, AugmentError, Classical, ColorJitter, CutMix, Cutout, EraseFill, HorizontalFlip,
    Interpolation, Mixup, PadMode, RandAugment, RandomCrop, RandomErasing, RandomRotation,
    Transform, TrivialAugmentWide,
};

fn stream(seed: u64) -> Stream {
    Stream::new(seed, 0, label("test/augment"), 0)
}

/// A textured image with every byte in 1..=254 (no pure black or white).
fn textured(w: u32, h: u32, salt: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = |k: u32| (1 + (x * 37 + y * 91 + salt * k + x * y * 13) % 254) as u8;
        Rgb([v(3), v(7), v(11)])
    })
}

fn arb_image() -> impl Strategy<Value = RgbImage> {
    (1u32..40, 1u32..40, any::<u32>()).prop_map(|(w, h, salt)| textured(w, h, salt % 1000))
}

/// Every transform, at defaults and at a few non-default settings.
fn every_transform() -> Vec<Transform> {
    vec![
        Transform::Crop(RandomCrop::default()),
        Transform::Crop(RandomCrop {
            padding: 6,
            pad_mode: PadMode::Reflect,
            fill: [0; 3],
        }),
        Transform::Crop(RandomCrop {
            padding: 3,
            pad_mode: PadMode::Edge,
            fill: [0; 3],
        }),
        Transform::Flip(HorizontalFlip::default()),
        Transform::Jitter(ColorJitter::default()),
        Transform::Jitter(ColorJitter {
            random_order: false,
            ..ColorJitter::from_strength(2.5)
        }),
        Transform::Rotate(RandomRotation::default()),
        Transform::Rotate(RandomRotation {
            degrees: [-180.0, 180.0],
            interpolation: Interpolation::Nearest,
            fill: [255, 0, 0],
        }),
        Transform::Cutout(Cutout::default()),
        Transform::Erase(RandomErasing::default()),
        Transform::Erase(RandomErasing {
            p: 1.0,
            fill: EraseFill::Constant([1, 2, 3]),
            ..RandomErasing::default()
        }),
        Transform::RandAugment(RandAugment::default()),
        Transform::RandAugment(RandAugment {
            num_ops: 4,
            magnitude: 30,
            interpolation: Interpolation::Bilinear,
            ..RandAugment::default()
        }),
        Transform::TrivialAugment(TrivialAugmentWide::default()),
    ]
}

/// Each op of the search space alone, so every op runs in the property tests.
fn every_single_op() -> Vec<Transform> {
    AugOp::ALL
        .iter()
        .map(|&op| {
            Transform::TrivialAugment(TrivialAugmentWide {
                ops: vec![op],
                ..TrivialAugmentWide::default()
            })
        })
        .collect()
}

#[test]
fn every_default_is_valid() {
    for t in every_transform().iter().chain(&every_single_op()) {
        t.validate().unwrap_or_else(|e| panic!("{t:?}: {e}"));
    }
    Classical::default().validate().expect("default pipeline");
    Mixup::default().validate().expect("mixup");
    CutMix::default().validate().expect("cutmix");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn transforms_keep_the_size(img in arb_image(), seed in any::<u64>()) {
        for t in every_transform().iter().chain(&every_single_op()) {
            let out = t.apply(&img, &mut stream(seed));
            prop_assert_eq!(out.dimensions(), img.dimensions(), "{:?}", t);
            prop_assert_eq!(out.as_raw().len(), img.as_raw().len());
        }
    }

    #[test]
    fn flipping_twice_is_identity(img in arb_image(), seed in any::<u64>()) {
        let flip = HorizontalFlip { p: 1.0 };
        let mut rng = stream(seed);
        let once = flip.apply(&img, &mut rng);
        prop_assert_eq!(flip.apply(&once, &mut rng), img.clone());
        if img.width() > 1 {
            prop_assert_eq!(once.get_pixel(0, 0), img.get_pixel(img.width() - 1, 0));
        }
    }

    #[test]
    fn zero_padding_crop_is_identity(img in arb_image(), seed in any::<u64>()) {
        for pad_mode in [PadMode::Constant, PadMode::Reflect, PadMode::Edge] {
            let crop = RandomCrop { padding: 0, pad_mode, fill: [9; 3] };
            prop_assert_eq!(crop.apply(&img, &mut stream(seed)), img.clone());
        }
    }

    #[test]
    fn zero_rotation_is_identity(img in arb_image(), seed in any::<u64>()) {
        for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
            let rotate = RandomRotation { degrees: [0.0, 0.0], interpolation, fill: [0; 3] };
            prop_assert_eq!(rotate.apply(&img, &mut stream(seed)), img.clone());
        }
    }

    #[test]
    fn cutout_zeroes_exactly_one_clipped_square(
        (w, h) in (1u32..48, 1u32..48),
        seed in any::<u64>(),
    ) {
        let img = textured(w, h, 5);
        let cutout = Cutout::default();
        let mut rng = stream(seed);
        let rect = cutout.sample_box(w, h, &mut rng.clone());
        let out = cutout.apply(&img, &mut rng);
        let zeroed = out.pixels().filter(|p| p.0 == [0; 3]).count() as u64;
        prop_assert_eq!(zeroed, rect.area());
        for (x, y, p) in out.enumerate_pixels() {
            let want = if rect.contains(x, y) { [0; 3] } else { img.get_pixel(x, y).0 };
            prop_assert_eq!(p.0, want);
        }
        // A 16-pixel span around a centre inside the image: 16 wide unless clipped, and
        // never less than the 8 pixels on the centre's far side.
        for (start, len, limit) in [(rect.x, rect.width, w), (rect.y, rect.height, h)] {
            prop_assert!(len <= 16 && len >= 8.min(limit), "span {start}+{len} in {limit}");
            let clipped = start == 0 || start + len == limit;
            prop_assert!(clipped || len == 16, "unclipped span of {len}");
        }
    }

    #[test]
    fn randaugment_at_magnitude_zero_keeps_the_image(
        img in arb_image(),
        seed in any::<u64>(),
        interpolation in prop_oneof![Just(Interpolation::Nearest), Just(Interpolation::Bilinear)],
    ) {
        // torchvision: at bin 0 shear/translate/rotate are 0, enhance factors are 1 and
        // posterize keeps 8 bits, so these ops return the input unchanged.
        let ops = vec![
            AugOp::Identity, AugOp::ShearX, AugOp::ShearY, AugOp::TranslateX,
            AugOp::TranslateY, AugOp::Rotate, AugOp::Brightness, AugOp::Color,
            AugOp::Contrast, AugOp::Sharpness, AugOp::Posterize,
        ];
        let ra = RandAugment { num_ops: 3, magnitude: 0, ops, interpolation, ..RandAugment::default() };
        prop_assert_eq!(ra.apply(&img, &mut stream(seed)), img.clone());
    }
}

#[test]
fn randaugment_solarize_at_zero_inverts_only_pure_white() {
    // Solarize's bin-0 threshold is 255: a no-op unless a channel is exactly 255.
    let ra = RandAugment {
        num_ops: 1,
        magnitude: 0,
        ops: vec![AugOp::Solarize],
        ..RandAugment::default()
    };
    let img = textured(16, 16, 3);
    assert_eq!(ra.apply(&img, &mut stream(1)), img);
    let mut white = img.clone();
    white.put_pixel(4, 5, Rgb([255, 254, 255]));
    let out = ra.apply(&white, &mut stream(1));
    assert_eq!(out.get_pixel(4, 5).0, [0, 254, 0]);
    let changed = out
        .pixels()
        .zip(white.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 1);
}

#[test]
fn randaugment_at_full_magnitude_changes_images() {
    let img = textured(32, 32, 1);
    let ra = RandAugment {
        magnitude: 30,
        ops: AugOp::ALL[1..].to_vec(),
        ..RandAugment::default()
    };
    let changed = (0..20)
        .filter(|&s| ra.apply(&img, &mut stream(s)) != img)
        .count();
    assert!(changed >= 18, "only {changed} of 20 changed");
}

#[test]
fn same_seed_same_output_different_seed_different_output() {
    let img = textured(32, 32, 7);
    for t in every_transform() {
        let first = t.apply(&img, &mut stream(100));
        assert_eq!(
            t.apply(&img, &mut stream(100)),
            first,
            "{t:?} not repeatable"
        );
        let distinct: std::collections::HashSet<Vec<u8>> = (0..16)
            .map(|s| t.apply(&img, &mut stream(200 + s)).into_raw())
            .collect();
        // A flip has two outcomes; everything else has many.
        let want = if matches!(t, Transform::Flip(_)) {
            2
        } else {
            4
        };
        assert!(
            distinct.len() >= want,
            "{t:?}: {} distinct outputs",
            distinct.len()
        );
    }
}

#[test]
fn flip_probability_matches_p() {
    let img = textured(4, 1, 0);
    let flip = HorizontalFlip::default();
    let mut rng = stream(3);
    let flipped = (0..4000)
        .filter(|_| flip.apply(&img, &mut rng) != img)
        .count();
    let rate = flipped as f32 / 4000.0;
    assert!((rate - 0.5).abs() < 0.03, "flip rate {rate}");
    let never = HorizontalFlip { p: 0.0 };
    assert_eq!(never.apply(&img, &mut rng), img);
}

#[test]
fn crop_offsets_cover_every_shift() {
    // A single white pixel in a black 9x9 image; with padding 4 it can land anywhere.
    let mut img = RgbImage::new(9, 9);
    img.put_pixel(4, 4, Rgb([255; 3]));
    let crop = RandomCrop::default();
    let mut rng = stream(8);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let out = crop.apply(&img, &mut rng);
        let (x, y, _) = out
            .enumerate_pixels()
            .find(|(_, _, p)| p.0 == [255; 3])
            .expect("the centre pixel is never cropped away with padding 4 in 9x9");
        seen.insert((x, y));
    }
    assert_eq!(seen.len(), 81, "all 9x9 offsets occur");
}

#[test]
fn erasing_with_p_zero_is_identity_and_p_one_erases_one_rectangle() {
    let img = textured(40, 30, 2);
    let off = RandomErasing {
        p: 0.0,
        ..RandomErasing::default()
    };
    assert_eq!(off.apply(&img, &mut stream(4)), img);
    let on = RandomErasing {
        p: 1.0,
        fill: EraseFill::Constant([0; 3]),
        ..RandomErasing::default()
    };
    for seed in 0..20 {
        let mut rng = stream(seed);
        let mut probe = rng.clone();
        assert!(probe.bernoulli(1.0));
        let rect = on
            .sample_region(40, 30, &mut probe)
            .expect("fits in 10 tries");
        let out = on.apply(&img, &mut rng);
        let zeroed = out.pixels().filter(|p| p.0 == [0; 3]).count() as u64;
        assert_eq!(zeroed, rect.area());
        let frac = rect.area() as f32 / 1200.0;
        assert!((0.01..=0.36).contains(&frac), "{frac}");
    }
}

fn tensor_batch(values: &[f32], b: usize, c: usize, h: usize, w: usize) -> Tensor {
    Tensor::from_vec(values.to_vec(), (b, c, h, w), &Device::Cpu).expect("batch tensor")
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().expect("rank-2 f32")
}

#[test]
fn mixup_is_a_convex_combination_with_matching_soft_labels() {
    let (b, c, h, w) = (6, 3, 4, 5);
    let mut rng = stream(11);
    let values: Vec<f32> = (0..b * c * h * w).map(|_| rng.range(-1.0, 1.0)).collect();
    let images = tensor_batch(&values, b, c, h, w);
    let labels = Tensor::new(&[0u32, 1, 2, 3, 1, 0], &Device::Cpu).expect("labels");
    let mixed = Mixup { alpha: 0.4 }
        .apply(&images, &labels, 4, &mut rng)
        .expect("mixup");
    let lam = mixed.lambda;
    assert!((0.0..=1.0).contains(&lam));
    let mut sorted = mixed.partners.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..b).collect::<Vec<_>>());
    let out = mixed
        .images
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("images");
    let per = c * h * w;
    for (i, &j) in mixed.partners.iter().enumerate() {
        for k in 0..per {
            let want = lam * values[i * per + k] + (1.0 - lam) * values[j * per + k];
            assert!((out[i * per + k] - want).abs() < 1e-5);
        }
    }
    let ids = [0usize, 1, 2, 3, 1, 0];
    for (i, row) in rows(&mixed.labels).iter().enumerate() {
        assert!(
            (row.iter().sum::<f32>() - 1.0).abs() < 1e-6,
            "row {i}: {row:?}"
        );
        let j = mixed.partners[i];
        let mut want = [0.0f32; 4];
        want[ids[i]] += lam;
        want[ids[j]] += 1.0 - lam;
        for (a, b) in row.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "row {i}: {row:?} vs {want:?}");
        }
    }
}

#[test]
fn cutmix_label_weights_equal_pasted_area_fractions() {
    // Sample i is the constant image i, with class i: the share of pixels showing its
    // partner's value must be the label weight on the partner's class.
    let (b, c, h, w) = (8, 3, 12, 10);
    let values: Vec<f32> = (0..b * c * h * w)
        .map(|n| (n / (c * h * w)) as f32)
        .collect();
    let images = tensor_batch(&values, b, c, h, w);
    let labels = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7], &Device::Cpu).expect("labels");
    let mut pasted_any = false;
    for seed in 0..10 {
        let mixed = CutMix::default()
            .apply(&images, &labels, b, &mut stream(seed))
            .expect("cutmix");
        let out = mixed
            .images
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("images");
        let soft = rows(&mixed.labels);
        let per = c * h * w;
        for (i, &j) in mixed.partners.iter().enumerate() {
            let row = &soft[i];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            if i == j {
                assert!((row[i] - 1.0).abs() < 1e-6);
                continue;
            }
            let from_partner = out[i * per..(i + 1) * per]
                .iter()
                .filter(|&&v| v == j as f32)
                .count();
            let from_self = out[i * per..(i + 1) * per]
                .iter()
                .filter(|&&v| v == i as f32)
                .count();
            assert_eq!(from_partner + from_self, per);
            let frac = from_partner as f32 / per as f32;
            assert!(
                (row[j] - frac).abs() < 1e-6,
                "partner weight {} vs area {frac}",
                row[j]
            );
            assert!((row[i] - (1.0 - frac)).abs() < 1e-6);
            assert!((mixed.lambda - (1.0 - frac)).abs() < 1e-6);
            pasted_any |= from_partner > 0;
        }
    }
    assert!(pasted_any, "no seed pasted anything");
}

#[test]
fn mixing_chains_through_soft_labels() {
    let images = tensor_batch(&[0.5; 4 * 3 * 2 * 2], 4, 3, 2, 2);
    let labels = Tensor::new(&[2u32, 0, 1, 2], &Device::Cpu).expect("labels");
    let first = CutMix::default()
        .apply(&images, &labels, 3, &mut stream(1))
        .expect("cutmix");
    let second = Mixup::default()
        .apply(&first.images, &first.labels, 3, &mut stream(2))
        .expect("mixup of soft labels");
    for row in rows(&second.labels) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn mixing_rejects_bad_batches() {
    let images = tensor_batch(&[0.0; 2 * 3 * 2 * 2], 2, 3, 2, 2);
    let ok_labels = Tensor::new(&[0u32, 1], &Device::Cpu).expect("labels");
    let cases = [
        (
            images.clone(),
            Tensor::new(&[0u32, 5], &Device::Cpu).expect("t"),
        ),
        (
            images.clone(),
            Tensor::new(&[0u32], &Device::Cpu).expect("t"),
        ),
        (images.flatten_all().expect("t"), ok_labels.clone()),
    ];
    for (imgs, labels) in cases {
        let err = Mixup::default().apply(&imgs, &labels, 3, &mut stream(0));
        assert!(
            matches!(
                err,
                Err(AugmentError::BadBatch {
                    method: "mixup",
                    ..
                })
            ),
            "{err:?}"
        );
    }
    let err = CutMix { alpha: 0.0 }.apply(&images, &ok_labels, 3, &mut stream(0));
    assert!(
        matches!(err, Err(AugmentError::OutOfRange { param: "alpha", .. })),
        "{err:?}"
    );
}

fn out_of_range_param(err: AugmentError) -> &'static str {
    match err {
        AugmentError::OutOfRange { param, .. } => param,
        other => panic!("expected OutOfRange, got {other}"),
    }
}

#[test]
fn validation_names_the_bad_parameter() {
    let bad: Vec<(Transform, &str)> = vec![
        (
            Transform::Crop(RandomCrop {
                padding: 5000,
                ..RandomCrop::default()
            }),
            "padding",
        ),
        (Transform::Flip(HorizontalFlip { p: 1.5 }), "p"),
        (Transform::Flip(HorizontalFlip { p: f32::NAN }), "p"),
        (
            Transform::Jitter(ColorJitter {
                hue: 0.6,
                ..ColorJitter::default()
            }),
            "hue",
        ),
        (
            Transform::Jitter(ColorJitter {
                contrast: -0.1,
                ..ColorJitter::default()
            }),
            "contrast",
        ),
        (
            Transform::Rotate(RandomRotation {
                degrees: [10.0, -10.0],
                ..RandomRotation::default()
            }),
            "degrees",
        ),
        (
            Transform::Cutout(Cutout {
                size: 0,
                ..Cutout::default()
            }),
            "size",
        ),
        (
            Transform::Erase(RandomErasing {
                scale: [0.5, 0.2],
                ..RandomErasing::default()
            }),
            "scale",
        ),
        (
            Transform::Erase(RandomErasing {
                ratio: [0.0, 3.3],
                ..RandomErasing::default()
            }),
            "ratio",
        ),
        (
            Transform::RandAugment(RandAugment {
                magnitude: 31,
                ..RandAugment::default()
            }),
            "m (magnitude)",
        ),
        (
            Transform::TrivialAugment(TrivialAugmentWide {
                num_magnitude_bins: 1,
                ..TrivialAugmentWide::default()
            }),
            "num_magnitude_bins",
        ),
    ];
    for (t, param) in bad {
        let err = t.validate().expect_err("invalid config accepted");
        let message = err.to_string();
        assert!(message.contains("valid"), "{message}");
        assert_eq!(out_of_range_param(err), param, "{t:?}");
    }
    let empty = RandAugment {
        ops: vec![],
        ..RandAugment::default()
    };
    assert!(matches!(
        empty.validate(),
        Err(AugmentError::Empty { param: "ops", .. })
    ));
}

fn items(spec: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    spec.iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

#[test]
fn spec_items_build_the_expected_pipeline() {
    let built = Classical::from_spec_items(&items(&[
        ("crop", Some("2")),
        ("flip", None),
        ("jitter", Some("1")),
        ("rotate", Some("30")),
        ("cutout", Some("8")),
        ("erase", Some("0.25")),
        ("trivialaugment", None),
    ]))
    .expect("valid spec");
    let json = r#"[
        {"crop": {"padding": 2}}, {"flip": {}},
        {"jitter": {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2}},
        {"rotate": {"degrees": [-30, 30]}}, {"cutout": {"size": 8}}, {"erase": {"p": 0.25}},
        {"trivialaugment": {}}
    ]"#;
    let parsed: Classical = serde_json::from_str(json).expect("pipeline JSON");
    assert_eq!(built, parsed);
    let again: Classical =
        serde_json::from_str(&serde_json::to_string(&built).expect("ser")).expect("de");
    assert_eq!(again, built);
    assert_eq!(
        Classical::from_spec_items(&[]).expect("empty"),
        Classical::default()
    );
    let ra = Classical::from_method("randaugment", &items(&[("n", Some("3")), ("m", Some("5"))]))
        .expect("ra");
    assert_eq!(
        ra.transforms,
        vec![Transform::RandAugment(RandAugment {
            num_ops: 3,
            magnitude: 5,
            ..RandAugment::default()
        })]
    );
    let ta = Classical::from_method("trivialaugment", &[]).expect("ta");
    assert_eq!(
        ta.transforms,
        vec![Transform::TrivialAugment(TrivialAugmentWide::default())]
    );
}

#[test]
fn bad_spec_items_say_what_is_valid() {
    let err =
        Classical::from_spec_items(&items(&[("crop", None), ("blur", None)])).expect_err("blur");
    assert!(matches!(&err, AugmentError::UnknownName { name, .. } if name == "blur"));
    let message = err.to_string();
    for name in [
        "crop",
        "flip",
        "jitter",
        "rotate",
        "cutout",
        "erase",
        "randaugment",
        "trivialaugment",
    ] {
        assert!(message.contains(name), "{message} lacks {name}");
    }
    let err = Classical::from_spec_items(&items(&[("crop", Some("four"))])).expect_err("four");
    assert!(matches!(err, AugmentError::BadValue { .. }), "{err}");
    let err = Classical::from_spec_items(&items(&[("flip", Some("2"))])).expect_err("p=2");
    assert_eq!(out_of_range_param(err), "p");
    let err = Classical::from_spec_items(&items(&[("rotate", Some("200"))])).expect_err("200");
    assert_eq!(out_of_range_param(err), "degrees");
    let err = Classical::from_spec_items(&items(&[("jitter", Some("3"))])).expect_err("3");
    assert_eq!(out_of_range_param(err), "strength");
    let err = Classical::from_method("randaugment", &items(&[("m", Some("31"))])).expect_err("m");
    assert_eq!(out_of_range_param(err), "m (magnitude)");
    let err = Classical::from_method("randaugment", &items(&[("k", Some("1"))])).expect_err("k");
    assert!(err.to_string().contains("n, m"), "{err}");
    let err = Classical::from_method("randaugment", &items(&[("n", None)])).expect_err("n");
    assert!(matches!(err, AugmentError::BadValue { .. }), "{err}");
    let err = Classical::from_method("autoaugment", &[]).expect_err("method");
    assert!(
        err.to_string()
            .contains("classical, randaugment, trivialaugment"),
        "{err}"
    );
}

#[test]
fn every_transform_runs_on_a_real_cifar_image() {
    let path = semaug_testdata::cifar10_train().join("cat/0000.jpg");
    let img = semaug_data::image_io::decode_file(&path, &Default::default()).expect("CIFAR jpeg");
    assert_eq!(img.dimensions(), (32, 32));
    let mut pipelines: Vec<Classical> = every_transform()
        .into_iter()
        .chain(every_single_op())
        .map(|t| Classical::new(vec![t]))
        .collect();
    pipelines.push(Classical::default());
    for method in ["classical", "randaugment", "trivialaugment"] {
        pipelines.push(Classical::from_method(method, &[]).expect("method"));
    }
    let mut changed = 0;
    for (i, pipeline) in pipelines.iter().enumerate() {
        let mut rng = Stream::new(0, i as u64, label("test/cifar"), 0);
        let out = pipeline.apply(&img, &mut rng);
        assert_eq!(out.dimensions(), (32, 32));
        changed += (out != img) as usize;
    }
    // Identity-only pipelines and unlucky coin flips may leave a few unchanged.
    assert!(
        changed + 4 >= pipelines.len(),
        "{changed} of {} changed",
        pipelines.len()
    );
}
