//! `semaug augment` with classical methods: the output loads back (ImageFolder and
//! WebDataset) with the right labels, sources and methods; equal seeds give equal bytes;
//! a rerun resumes to the same bytes; a changed setting into the same folder is refused.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use semaug_data::dataset::{open_dataset, Dataset, OpenOptions};
use semaug_data::writer::{read_classes, read_imagefolder, read_metadata, read_webdataset, Record};

use crate::common::{
    augment, cifar_subset, flowers_subset, s, semaug, snapshot, METHODS, METHOD_NAMES, PER_IMAGE,
};

const CIFAR_CLASSES: [&str; 3] = ["airplane", "cat", "truck"];

fn open(data: &Path) -> Dataset {
    open_dataset(data, &OpenOptions::default()).unwrap()
}

/// Every record names an input source, that source's label and class, one of the
/// methods, a variant below `--per-image`, and the seed; each (source, method, variant)
/// appears once, so the count is sources x methods x per_image.
fn check_records<'a>(records: impl IntoIterator<Item = &'a Record>, input: &Dataset, seed: u64) {
    let class_of: HashMap<&str, usize> = input
        .samples
        .iter()
        .map(|s| (s.id.as_str(), s.class.unwrap()))
        .collect();
    let mut seen = HashSet::new();
    for record in records {
        let class = class_of[record.source.as_str()];
        assert_eq!(record.label as usize, class, "{record:?}");
        assert_eq!(record.class_name, input.classes[class], "{record:?}");
        assert!(
            record
                .file_name
                .starts_with(&format!("{}/", record.class_name)),
            "{record:?}"
        );
        assert!(record.file_name.ends_with(".png"), "{record:?}");
        assert!(METHOD_NAMES.contains(&record.method.as_str()), "{record:?}");
        assert!((record.variant as usize) < PER_IMAGE, "{record:?}");
        assert_eq!(record.seed, seed);
        let triple = (record.source.clone(), record.method.clone(), record.variant);
        assert!(seen.insert(triple), "duplicate output for {record:?}");
    }
    assert_eq!(
        seen.len(),
        input.len() * METHOD_NAMES.len() * PER_IMAGE,
        "not every source got every method and variant"
    );
}

/// The ImageFolder at `out` opens as a dataset with the input's classes in order,
/// each image in its label's class folder, and every record's image decodes at `size`.
fn check_imagefolder(out: &Path, input: &Dataset, seed: u64, size: (u32, u32)) {
    let records = read_imagefolder(out).unwrap();
    check_records(records.iter().map(|(r, _)| r), input, seed);
    for (record, image) in &records {
        assert_eq!(image.dimensions(), size, "{}", record.file_name);
    }
    let output = open(out);
    assert_eq!(output.classes, input.classes);
    assert_eq!(read_classes(out).unwrap(), input.classes);
    assert_eq!(output.len(), records.len(), "images on disk != records");
    let label_of: HashMap<&str, u32> = records
        .iter()
        .map(|(r, _)| (r.file_name.as_str(), r.label))
        .collect();
    for sample in &output.samples {
        let label = label_of[sample.id.as_str()] as usize;
        assert_eq!(sample.class, Some(label), "{}", sample.id);
        let folder = sample.id.split('/').next().unwrap();
        assert_eq!(folder, input.classes[label], "{}", sample.id);
    }
}

#[test]
fn cifar_subset_augments_into_a_loadable_imagefolder() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 4);
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &METHODS);
    outcome.assert_success();
    assert!(
        outcome.stdout.contains("wrote 48 images"),
        "{}",
        outcome.stdout
    );
    check_imagefolder(&out, &open(&data), 0, (32, 32));
}

#[test]
fn flowers_subset_with_masks_augments_into_a_loadable_imagefolder() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = flowers_subset(dir.path(), &["daisy", "iris", "tulip"], 3);
    let out = dir.path().join("out");
    let mut args = vec!["--masks", s(&masks), "--seed", "3"];
    args.extend(METHODS);
    augment(&images, &out, &args).assert_success();
    check_imagefolder(&out, &open(&images), 3, (256, 256));
}

#[test]
fn input_class_order_from_classes_json_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 2);
    // Not the folder-name order, so a writer that re-sorted classes would fail.
    let order = ["truck", "airplane", "cat"];
    fs::write(
        data.join("classes.json"),
        serde_json::to_vec(&order).unwrap(),
    )
    .unwrap();
    let out = dir.path().join("out");
    augment(&data, &out, &METHODS).assert_success();
    assert_eq!(read_classes(&out).unwrap(), order);
    check_imagefolder(&out, &open(&data), 0, (32, 32));
}

#[test]
fn webdataset_holds_the_same_records_and_pixels_as_imagefolder() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 3);
    let (folder, tars) = (dir.path().join("folder"), dir.path().join("tars"));
    augment(&data, &folder, &METHODS).assert_success();
    let mut args = vec!["--format", "webdataset"];
    args.extend(METHODS);
    augment(&data, &tars, &args).assert_success();

    let mut from_tars = read_webdataset(&tars).unwrap();
    check_records(from_tars.iter().map(|(r, _)| r), &open(&data), 0);
    let mut from_folder = read_imagefolder(&folder).unwrap();
    from_tars.sort_by(|a, b| a.0.file_name.cmp(&b.0.file_name));
    from_folder.sort_by(|a, b| a.0.file_name.cmp(&b.0.file_name));
    assert_eq!(from_tars.len(), from_folder.len());
    for ((tar_record, tar_image), (record, image)) in from_tars.iter().zip(&from_folder) {
        assert_eq!(tar_record, record);
        assert_eq!(tar_image.as_raw(), image.as_raw(), "{}", record.file_name);
    }
    assert_eq!(read_metadata(&tars).unwrap().len(), from_tars.len());
}

#[test]
fn equal_seeds_give_equal_bytes_and_another_seed_other_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 4);
    let run = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let mut args = vec!["--seed", seed];
        args.extend(METHODS);
        augment(&data, &out, &args).assert_success();
        snapshot(&out)
    };
    let (a, b, other) = (run("a", "7"), run("b", "7"), run("c", "8"));
    assert!(a.contains_key("metadata.jsonl"));
    assert_eq!(a, b, "same seed, different bytes");

    let pngs = |files: &std::collections::BTreeMap<String, Vec<u8>>| {
        files
            .iter()
            .filter(|(name, _)| name.ends_with(".png"))
            .map(|(name, bytes)| (name.clone(), bytes.clone()))
            .collect::<Vec<_>>()
    };
    let (a_pngs, other_pngs) = (pngs(&a), pngs(&other));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&a_pngs),
        names(&other_pngs),
        "the seed changed file names"
    );
    let differing = a_pngs
        .iter()
        .zip(&other_pngs)
        .filter(|(x, y)| x.1 != y.1)
        .count();
    assert!(
        differing * 2 > a_pngs.len(),
        "only {differing} of {} images changed with the seed",
        a_pngs.len()
    );
}

#[test]
fn rerun_into_the_same_folder_writes_nothing_and_keeps_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 4);
    let out = dir.path().join("out");
    augment(&data, &out, &METHODS).assert_success();
    let before = snapshot(&out);
    let again = augment(&data, &out, &METHODS);
    again.assert_success();
    assert!(
        again.stdout.contains("wrote 0 images") && again.stdout.contains("48 already done"),
        "{}",
        again.stdout
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn lost_outputs_are_remade_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 4);
    let out = dir.path().join("out");
    augment(&data, &out, &METHODS).assert_success();
    let before = snapshot(&out);
    // As if the run had been killed: two images and the manifest gone.
    fs::remove_file(out.join("cat/0001_randaugment_1.png")).unwrap();
    fs::remove_file(out.join("truck/0003_classical_0.png")).unwrap();
    fs::remove_file(out.join("metadata.jsonl")).unwrap();
    let resumed = augment(&data, &out, &METHODS);
    resumed.assert_success();
    assert!(
        resumed.stdout.contains("wrote 2 images") && resumed.stdout.contains("46 already done"),
        "{}",
        resumed.stdout
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn another_seed_into_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 2);
    let out = dir.path().join("out");
    augment(&data, &out, &METHODS).assert_success();
    let before = snapshot(&out);
    let mut args = vec!["--seed", "1"];
    args.extend(METHODS);
    let refused = augment(&data, &out, &args);
    let line = refused.assert_error_line(1);
    assert!(line.contains("different settings"), "{line}");
    assert!(line.contains(s(&out)), "{line}");
    assert_eq!(snapshot(&out), before, "a refused run changed the folder");
}

#[test]
fn settings_changed_error_suggests_only_existing_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &CIFAR_CLASSES, 1);
    let out = dir.path().join("out");
    augment(&data, &out, &METHODS).assert_success();
    let mut args = vec!["--seed", "1"];
    args.extend(METHODS);
    let line = augment(&data, &out, &args).assert_error_line(1).to_owned();
    let help = semaug(&["augment", "--help"]);
    help.assert_success();
    for flag in line.split_whitespace().filter(|w| w.starts_with("--")) {
        let flag = flag.trim_end_matches(|c: char| !c.is_alphanumeric());
        assert!(
            help.stdout.contains(flag),
            "the error suggests {flag}, which `augment` lacks: {line}"
        );
    }
}
