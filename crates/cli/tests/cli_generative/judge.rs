//! `semaug judge train | check` as a user runs them: a judge learns two classes that
//! differ in brightness, tells a method that keeps labels from one that swaps them in an
//! augmented folder, judges the tiny model's samples per class against the null
//! condition, and refuses classes it does not know.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{png, s, semaug, Color};
use crate::fixture::model_arg;

const CLASSES: [&str; 2] = ["0", "1"];

/// A dark and a bright grey level per class, varied per image.
fn level(class: usize, i: usize) -> u8 {
    let base = if class == 0 { 30 } else { 200 };
    base + (i % 8 * 4) as u8
}

/// `per_class` 16x16 grey images per class under `dir/name`; `swap` files each
/// image under the other class's folder.
fn grey_folder(dir: &Path, name: &str, per_class: usize, swap: bool) -> PathBuf {
    let root = dir.join(name);
    for (c, class) in CLASSES.iter().enumerate() {
        let folder = root.join(if swap { CLASSES[1 - c] } else { class });
        fs::create_dir_all(&folder).unwrap();
        for i in 0..per_class {
            let file = folder.join(format!("{name}_{class}_{i:02}.png"));
            fs::write(file, png(16, 16, Color::Rgb, level(c, i))).unwrap();
        }
    }
    root
}

fn train_judge(dir: &Path) -> PathBuf {
    let train = grey_folder(dir, "train", 24, false);
    let held_out = grey_folder(dir, "held_out", 8, false);
    let judge = dir.join("judge");
    let args = [
        "judge",
        "train",
        "--data",
        s(&train),
        "--eval-data",
        s(&held_out),
        "--out",
        s(&judge),
        "--epochs",
        "4",
        "--batch",
        "16",
        "--lr",
        "0.05",
        "--width",
        "8",
        "-q",
    ];
    semaug(&args).assert_success();
    judge
}

/// An "augmented" folder: one method keeps each image's class, another files it
/// under the other class; `metadata.jsonl` says which method made which file.
fn augmented(dir: &Path) -> PathBuf {
    let out = dir.join("augmented");
    let mut records = String::new();
    for (method, swap) in [("keep", false), ("swap", true)] {
        let made = grey_folder(dir, method, 6, swap);
        for class in CLASSES {
            fs::create_dir_all(out.join(class)).unwrap();
            for entry in fs::read_dir(made.join(class)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                fs::copy(made.join(class).join(&name), out.join(class).join(&name)).unwrap();
                records.push_str(&format!(
                    "{{\"file_name\":\"{class}/{name}\",\"method\":\"{method}\",\"params\":{{}}}}\n"
                ));
            }
        }
    }
    fs::write(out.join("metadata.jsonl"), records).unwrap();
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn judges_methods_of_an_augmented_folder_and_a_models_samples() {
    let dir = tempfile::tempdir().unwrap();
    let judge = train_judge(dir.path());
    let card = read_json(&judge.join("judge.json"));
    assert_eq!(card["eval_accuracy"].as_f64(), Some(1.0), "{card}");

    let data = augmented(dir.path());
    let report = dir.path().join("check.json");
    let args = [
        "judge",
        "check",
        "--judge",
        s(&judge),
        "--data",
        s(&data),
        "--json",
        s(&report),
    ];
    let out = semaug(&args).assert_success().stdout.clone();
    assert!(out.contains("keep: 12 images, 100.0 %"), "{out}");
    assert!(out.contains("swap: 12 images, 0.0 %"), "{out}");

    let samples = dir.path().join("samples.json");
    let args = [
        "judge",
        "check",
        "--judge",
        s(&judge),
        "--model",
        &model_arg(),
        "--per-class",
        "3",
        "--steps",
        "2",
        "--solver",
        "euler",
        "--json",
        s(&samples),
        "-q",
    ];
    semaug(&args).assert_success();
    let verdict = &read_json(&samples)["verdicts"][0];
    assert_eq!(verdict["images"], 6, "3 samples for each of 2 classes");
    let per_class = verdict["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 2);
    assert!(per_class[0]["class"]
        .as_str()
        .unwrap()
        .contains("class row 0"));
    let null_total: f64 = per_class
        .iter()
        .map(|c| c["null_rate"].as_f64().unwrap())
        .sum();
    assert!(
        (null_total - 1.0).abs() < 1e-9,
        "null samples land in some class: {null_total}"
    );
}

#[test]
fn a_class_the_judge_does_not_know_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let judge = train_judge(dir.path());
    let other = dir.path().join("other");
    fs::create_dir_all(other.join("7")).unwrap();
    fs::write(other.join("7/a.png"), png(16, 16, Color::Rgb, 9)).unwrap();
    let args = ["judge", "check", "--judge", s(&judge), "--data", s(&other)];
    let line = semaug(&args).assert_usage_error().to_string();
    assert!(
        line.contains("class `7`") && line.contains("0, 1"),
        "{line}"
    );

    let missing = dir.path().join("no-judge");
    let args = [
        "judge",
        "check",
        "--judge",
        s(&missing),
        "--data",
        s(&other),
    ];
    let line = semaug(&args).assert_error_line(1).to_string();
    assert!(line.contains("semaug judge train"), "{line}");
}
