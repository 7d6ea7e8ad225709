//! `semaug info` on the full CIFAR-10 training folder and on the flowers with masks.

use std::path::Path;

use crate::common::{s, semaug};

/// The CIFAR-10 classes, as listed in the data README.
const CIFAR_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

#[test]
fn info_table_lists_cifar_classes_counts_and_size() {
    let data = semaug_testdata::cifar10_train();
    let outcome = semaug(&["info", s(&data)]);
    outcome.assert_success();
    let lines: Vec<Vec<&str>> = outcome
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (index, class) in CIFAR_CLASSES.iter().enumerate() {
        let row = vec![index.to_string(), class.to_string(), "5000".to_string()];
        assert!(
            lines.iter().any(|l| *l == row),
            "no row {row:?} in:\n{}",
            outcome.stdout
        );
    }
    assert!(
        lines.contains(&vec!["32x32", "50000"]),
        "{}",
        outcome.stdout
    );
    assert!(
        lines.contains(&vec!["images", "50000"]),
        "{}",
        outcome.stdout
    );
}

#[test]
fn info_json_has_the_cifar_counts() {
    let data = semaug_testdata::cifar10_train();
    let outcome = semaug(&["info", "--json", s(&data)]);
    outcome.assert_success();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(json["samples"], 50_000);
    let classes = json["classes"].as_array().unwrap();
    let names: Vec<&str> = classes
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, CIFAR_CLASSES);
    assert!(classes.iter().all(|c| c["count"] == 5000), "{classes:?}");
    assert_eq!(
        json["sizes"],
        serde_json::json!([{"width": 32, "height": 32, "count": 50_000}])
    );
    assert_eq!(json["skipped"], serde_json::json!([]));
}

#[test]
fn info_finds_a_mask_for_every_flowers_image() {
    let root = semaug_testdata::flowers();
    let images = root.join("images/train");
    let masks = root.join("masks/train");
    let outcome = semaug(&["info", "--json", s(&images), "--masks", s(&masks)]);
    outcome.assert_success();
    let json: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    let on_disk = count_files(&images, "jpg");
    assert!(on_disk > 100, "only {on_disk} flower images found");
    assert_eq!(json["samples"], on_disk);
    assert_eq!(json["masks"]["found"], on_disk);
    assert_eq!(json["masks"]["missing"], 0);
    assert_eq!(
        json["sizes"],
        serde_json::json!([{"width": 256, "height": 256, "count": on_disk}])
    );
    // The table says the same.
    let table = semaug(&["info", s(&images), "--masks", s(&masks)]);
    table.assert_success();
    let expected = format!("masks    {on_disk} found, 0 missing");
    assert!(table.stdout.contains(&expected), "{}", table.stdout);
}

/// Files under `dir` (recursively) with extension `ext`.
fn count_files(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                count_files(&p, ext)
            } else {
                usize::from(p.extension().is_some_and(|e| e == ext))
            }
        })
        .sum()
}
