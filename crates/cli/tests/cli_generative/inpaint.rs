//! Inpainting keeps the known region bit for bit (the source images are 32x32 like the
//! model, so nothing is resized): `region=foreground,dilate=0` keeps every pixel outside
//! the mask, `region=background` every pixel inside it (the dilation only grows what is
//! kept), and without masks the central box is the object. Masked and unmasked methods
//! mix in one run.

use std::path::Path;

use image::{GrayImage, RgbImage};
use semaug_data::writer::{read_imagefolder, Record};

use crate::common::s;
use crate::fixture::{
    augment, check_manifest, dataset, fast, masks, pixels, source_pixels, Expected,
};

const CLASSES: [&str; 3] = ["0", "1", "2"];

/// Pixels where `keep(x, y)` holds equal the source exactly; of the others, some differ
/// (so the run regenerated something). Returns (kept pixels, changed pixels).
fn check_known_region(
    source: &RgbImage,
    output: &RgbImage,
    keep: impl Fn(u32, u32) -> bool,
    name: &str,
) -> (usize, usize) {
    assert_eq!(source.dimensions(), output.dimensions(), "{name}");
    let (mut kept, mut changed) = (0, 0);
    for (x, y, pixel) in output.enumerate_pixels() {
        if keep(x, y) {
            assert_eq!(
                pixel,
                source.get_pixel(x, y),
                "{name}: known pixel ({x}, {y}) changed"
            );
            kept += 1;
        } else if pixel != source.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(kept > 0, "{name}: nothing to keep");
    assert!(changed > 0, "{name}: nothing regenerated");
    (kept, changed)
}

/// The mask PNG of an output's source.
fn mask_of(masks: &Path, record: &Record) -> GrayImage {
    let file = Path::new(&record.source).with_extension("png");
    image::open(masks.join(file)).unwrap().to_luma8()
}

fn is_object(mask: &GrayImage, x: u32, y: u32) -> bool {
    mask.get_pixel(x, y).0[0] >= 128
}

#[test]
fn inpaint_with_masks_keeps_the_known_region_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &CLASSES, 2);
    let masks = masks(dir.path(), &data);
    let out = dir.path().join("out");
    let foreground = "inpaint:region=foreground,dilate=0";
    let background = "inpaint:region=background";
    let args = fast(&[
        "--masks",
        s(&masks),
        "--method",
        foreground,
        "--method",
        background,
    ]);
    augment(&data, &out, &args).assert_success();
    let outputs = read_imagefolder(&out).unwrap();
    check_manifest(
        outputs.iter().map(|(r, _)| r),
        &Expected {
            data: &data,
            methods: &["inpaint", "inpaint"],
            per_image: 1,
            seed: 0,
        },
    );
    // The same method twice gets tags `inpaint-0` (foreground) and `inpaint-1`.
    let mut checked = [0, 0];
    for (record, image) in &outputs {
        let source = source_pixels(&data, record);
        let mask = mask_of(&masks, record);
        let region = if record.file_name.contains("_inpaint-0_") {
            Some(0)
        } else if record.file_name.contains("_inpaint-1_") {
            Some(1)
        } else {
            None
        };
        match region {
            Some(0) => {
                check_known_region(
                    &source,
                    image,
                    |x, y| !is_object(&mask, x, y),
                    &record.file_name,
                );
            }
            Some(1) => {
                check_known_region(
                    &source,
                    image,
                    |x, y| is_object(&mask, x, y),
                    &record.file_name,
                );
            }
            _ => panic!("unexpected output {}", record.file_name),
        }
        checked[region.unwrap_or(0)] += 1;
    }
    assert_eq!(checked, [6, 6]);
}

#[test]
fn inpaint_without_masks_keeps_all_but_the_central_box() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &CLASSES, 1);
    let out = dir.path().join("out");
    let args = fast(&["--method", "inpaint:region=foreground,dilate=0"]);
    augment(&data, &out, &args).assert_success();
    let outputs = read_imagefolder(&out).unwrap();
    assert_eq!(outputs.len(), 3);
    // Half of each side, centred: 16x16 at (8, 8) in a 32x32 image.
    let in_box = |x: u32, y: u32| (8..24).contains(&x) && (8..24).contains(&y);
    for (record, image) in &outputs {
        let source = source_pixels(&data, record);
        let (kept, _) = check_known_region(&source, image, |x, y| !in_box(x, y), &record.file_name);
        assert_eq!(kept, 32 * 32 - 16 * 16);
    }
}

#[test]
fn masked_and_unmasked_methods_mix_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &CLASSES, 2);
    let masks = masks(dir.path(), &data);
    let out = dir.path().join("out");
    let args = fast(&[
        "--masks",
        s(&masks),
        "--method",
        "perturb:delta=0.3",
        "--method",
        "inpaint:region=background,dilate=0",
    ]);
    let outcome = augment(&data, &out, &args);
    outcome.assert_success();
    assert!(
        outcome.stdout.contains("wrote 12 images"),
        "{}",
        outcome.stdout
    );
    let outputs = read_imagefolder(&out).unwrap();
    check_manifest(
        outputs.iter().map(|(r, _)| r),
        &Expected {
            data: &data,
            methods: &["perturb", "inpaint"],
            per_image: 1,
            seed: 0,
        },
    );
    for (record, image) in &outputs {
        let source = source_pixels(&data, record);
        if record.method == "inpaint" {
            let mask = mask_of(&masks, record);
            check_known_region(
                &source,
                image,
                |x, y| is_object(&mask, x, y),
                &record.file_name,
            );
        } else {
            assert_ne!(source.as_raw(), image.as_raw(), "{}", record.file_name);
        }
    }
    // The perturb outputs are the same as a perturb-only run's: the masks and the other
    // method do not leak into them.
    let alone = dir.path().join("alone");
    augment(&data, &alone, &fast(&["--method", "perturb:delta=0.3"])).assert_success();
    for (record, image) in read_imagefolder(&alone).unwrap() {
        let mixed = pixels(&out.join(&record.file_name));
        assert_eq!(mixed.as_raw(), image.as_raw(), "{}", record.file_name);
    }
}
