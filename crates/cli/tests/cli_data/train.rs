//! `semaug train` and `semaug export` on a few CIFAR images with the `test` preset: a run
//! on a subset of classes records them, its exported model knows exactly those classes
//! and samples, a resume with other classes is refused, and an export from a folder that
//! is not a run writes nothing.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::{cifar_subset, s, semaug};

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn train_args<'a>(data: &'a str, run: &'a str, classes: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--classes",
        classes,
        "--out",
        run,
        "--preset",
        "test",
        "--batch",
        "4",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--checkpoint-every",
        "1",
        "-q",
    ]
}

#[test]
fn a_class_subset_run_exports_a_model_of_those_classes() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["airplane", "cat", "ship"], 4);
    let run = dir.path().join("run");
    semaug(&train_args(s(&data), s(&run), "airplane,ship")).assert_success();

    let expected = serde_json::json!(["airplane", "ship"]);
    assert_eq!(read_json(&run.join("classes.json")), expected);
    let model = run.join("model");
    assert_eq!(read_json(&model.join("classes.json")), expected);
    assert_eq!(
        read_json(&model.join("config.json"))["num_class_embeds"],
        3,
        "2 classes + null"
    );

    let again = dir.path().join("again");
    let args = ["export", "--run", s(&run), "--out", s(&again), "-q"];
    semaug(&args).assert_success();
    assert_eq!(read_json(&again.join("classes.json")), expected);

    let grid = dir.path().join("grid.png");
    let args = [
        "sample",
        "--model",
        s(&model),
        "--per-class",
        "1",
        "--steps",
        "1",
        "--out",
        s(&grid),
        "-q",
    ];
    semaug(&args).assert_success();
    assert!(grid.exists());
}

#[test]
fn resuming_with_other_classes_is_refused_and_a_non_run_exports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["airplane", "cat", "ship"], 4);
    let run = dir.path().join("run");
    semaug(&train_args(s(&data), s(&run), "airplane,ship")).assert_success();
    let before = fs::read(run.join("classes.json")).unwrap();

    let outcome = semaug(&train_args(s(&data), s(&run), "airplane,cat"));
    let line = outcome.assert_usage_error();
    assert!(
        line.contains("classes.json") && line.contains("airplane,ship"),
        "{line}"
    );
    assert_eq!(fs::read(run.join("classes.json")).unwrap(), before);

    let out = dir.path().join("model");
    let args = ["export", "--run", s(&data), "--out", s(&out)];
    let line = semaug(&args).assert_error_line(1).to_string();
    assert!(line.contains("classes.json"), "{line}");
    assert!(!out.exists(), "a failed export left {}", out.display());
}
