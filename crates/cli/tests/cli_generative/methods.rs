//! Every generative method writes a dataset that loads as an ImageFolder and, with
//! `--format webdataset`, as tar shards holding the same records and pixels, with a
//! complete manifest; compose and DA-Fusion record the recipe they drew, and the
//! recorded recipe is the one applied (an identity draw returns the source exactly).

use std::path::Path;

use image::RgbImage;
use semaug_data::dataset::{open_dataset, OpenOptions};
use semaug_data::writer::{read_classes, read_imagefolder, read_metadata, read_webdataset, Record};

use crate::common::s;
use crate::fixture::{
    augment, changed_outputs, check_manifest, dataset, fast, masks, source_pixels, Expected,
};

const CLASSES: [&str; 3] = ["0", "1", "2"];

/// Runs `spec` into an ImageFolder and a WebDataset, checks both and that they agree,
/// and returns the ImageFolder outputs (sorted by file name) with the data folder.
fn run_both_formats(
    dir: &Path,
    spec: &str,
    per_image: usize,
    with_masks: bool,
) -> (std::path::PathBuf, Vec<(Record, RgbImage)>) {
    let data = dataset(dir, &CLASSES, 1);
    let masks = with_masks.then(|| masks(dir, &data));
    let per = per_image.to_string();
    let mut args = fast(&["--method", spec, "--per-image", &per]);
    if let Some(masks) = &masks {
        args.extend(["--masks", s(masks)]);
    }
    let (folder, tars) = (dir.join("folder"), dir.join("tars"));
    augment(&data, &folder, &args).assert_success();
    args.extend(["--format", "webdataset"]);
    augment(&data, &tars, &args).assert_success();

    let name = spec.split(':').next().unwrap();
    let expected = Expected {
        data: &data,
        methods: &[name],
        per_image,
        seed: 0,
    };
    let mut from_folder = read_imagefolder(&folder).unwrap();
    check_manifest(from_folder.iter().map(|(r, _)| r), &expected);
    for (record, image) in &from_folder {
        assert_eq!(image.dimensions(), (32, 32), "{}", record.file_name);
    }
    let opened = open_dataset(&folder, &OpenOptions::default()).unwrap();
    assert_eq!(opened.classes, CLASSES);
    assert_eq!(read_classes(&folder).unwrap(), CLASSES);
    assert_eq!(opened.len(), from_folder.len(), "images on disk != records");

    let mut from_tars = read_webdataset(&tars).unwrap();
    check_manifest(from_tars.iter().map(|(r, _)| r), &expected);
    assert_eq!(read_metadata(&tars).unwrap().len(), from_tars.len());
    from_folder.sort_by(|a, b| a.0.file_name.cmp(&b.0.file_name));
    from_tars.sort_by(|a, b| a.0.file_name.cmp(&b.0.file_name));
    assert_eq!(from_tars.len(), from_folder.len());
    for ((tar_record, tar_image), (record, image)) in from_tars.iter().zip(&from_folder) {
        assert_eq!(tar_record, record);
        assert_eq!(tar_image.as_raw(), image.as_raw(), "{}", record.file_name);
    }
    (data, from_folder)
}

/// The method regenerated something: not every output is a copy of its source.
fn assert_changed(data: &Path, outputs: &[(Record, RgbImage)]) {
    assert_eq!(
        changed_outputs(data, outputs),
        outputs.len(),
        "some outputs equal their source"
    );
}

#[test]
fn perturb_writes_both_formats_with_full_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "perturb:delta=0.3", 1, false);
    assert_changed(&data, &outputs);
}

#[test]
fn splice_writes_both_formats_with_full_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "splice:strength=0.5", 1, false);
    assert_changed(&data, &outputs);
}

#[test]
fn real_guidance_writes_both_formats_with_full_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "real-guidance", 1, false);
    assert_changed(&data, &outputs);
}

#[test]
fn inpaint_foreground_with_masks_writes_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "inpaint:region=foreground", 1, true);
    assert_changed(&data, &outputs);
}

#[test]
fn inpaint_background_with_masks_writes_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "inpaint:region=background", 1, true);
    assert_changed(&data, &outputs);
}

#[test]
fn inpaint_background_without_masks_writes_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    run_both_formats(dir.path(), "inpaint:region=background", 1, false);
}

#[test]
fn inpaint_background_without_masks_changes_small_images() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "inpaint:region=background", 1, false);
    assert_changed(&data, &outputs);
}

/// The `strength` of a recorded `{"splice": {...}}` recipe, or `None` for `identity`.
fn recipe_strength(record: &Record) -> Option<f64> {
    let recipe = &record.extra["recipe"];
    if recipe == "identity" {
        return None;
    }
    let strength = recipe["splice"]["strength"].as_f64();
    assert!(strength.is_some(), "unexpected recipe {recipe}");
    strength
}

/// Each output's recorded recipe is one of `allowed` (None = identity) and was applied:
/// identity outputs are their source exactly, spliced ones are not. Returns the
/// distinct recipes seen.
fn check_recipes(data: &Path, outputs: &[(Record, RgbImage)], allowed: &[Option<f64>]) -> usize {
    let mut seen: Vec<Option<f64>> = Vec::new();
    for (record, image) in outputs {
        let strength = recipe_strength(record);
        assert!(allowed.contains(&strength), "{record:?}");
        let source = source_pixels(data, record);
        assert_eq!(
            source.as_raw() == image.as_raw(),
            strength.is_none(),
            "recipe {strength:?} but the output {} the source ({})",
            if strength.is_none() {
                "differs from"
            } else {
                "equals"
            },
            record.file_name
        );
        if !seen.contains(&strength) {
            seen.push(strength);
        }
    }
    seen.len()
}

#[test]
fn compose_records_the_drawn_level_and_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "compose:levels=4,p=0.25,0.25,0.25,0.25";
    let (data, outputs) = run_both_formats(dir.path(), spec, 4, false);
    // Level i of 4 splices at strength 1 - i/4; level 4 is the image itself.
    let allowed = [Some(0.75), Some(0.5), Some(0.25), None];
    let distinct = check_recipes(&data, &outputs, &allowed);
    assert!(distinct >= 2, "12 draws gave only {distinct} level(s)");
}

#[test]
fn da_fusion_records_the_drawn_strength_and_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, outputs) = run_both_formats(dir.path(), "da-fusion", 4, false);
    let allowed = [Some(0.25), Some(0.5), Some(0.75), Some(1.0)];
    let distinct = check_recipes(&data, &outputs, &allowed);
    assert!(distinct >= 2, "12 draws gave only {distinct} strength(s)");
}
