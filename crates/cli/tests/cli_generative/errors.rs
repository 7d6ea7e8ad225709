//! A generative method without a usable model is a one-line error that writes nothing;
//! a dataset class the model does not know is generated unconditionally, with a warning.

use std::fs;

use semaug_data::writer::read_imagefolder;

use crate::common::{augment as augment_with, s};
use crate::fixture::{augment, dataset, fast, model_arg};

#[test]
fn missing_model_folder_is_a_usage_error_that_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &["0", "1"], 1);
    let out = dir.path().join("out");
    let missing = dir.path().join("nonexistent");
    let args = ["--model", s(&missing), "--method", "perturb:delta=0.3"];
    let outcome = augment_with(&data, &out, &args);
    let line = outcome.assert_error_line(2);
    assert!(line.contains(s(&missing)), "{line}");
    assert!(!out.exists(), "a refused run created {}", out.display());
}

#[test]
fn folder_without_a_model_is_a_one_line_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &["0", "1"], 1);
    let out = dir.path().join("out");
    let empty = dir.path().join("empty-model");
    fs::create_dir_all(&empty).unwrap();
    let args = ["--model", s(&empty), "--method", "splice"];
    let outcome = augment_with(&data, &out, &args);
    assert_ne!(outcome.code, 0, "{}", outcome.stdout);
    let line = outcome.assert_error_line(outcome.code);
    assert!(line.contains("config.json"), "{line}");
    assert!(!out.exists(), "a refused run created {}", out.display());
}

#[test]
fn unknown_class_names_warn_and_generate_unconditionally() {
    let dir = tempfile::tempdir().unwrap();
    // `0` is a model class; `airplane` and `ship` are not: one warning names both.
    let data = dataset(dir.path(), &["0", "airplane", "ship"], 1);
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &fast(&["--method", "perturb:delta=0.3"]));
    outcome.assert_success();
    let warnings: Vec<&str> = outcome
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", outcome.stderr);
    assert!(
        warnings[0].contains("`airplane`, `ship`") && warnings[0].contains("unconditionally"),
        "{}",
        warnings[0]
    );
    let outputs = read_imagefolder(&out).unwrap();
    let mut names: Vec<&str> = outputs.iter().map(|(r, _)| r.class_name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["0", "airplane", "ship"]);
    let model = model_arg();
    assert!(outputs
        .iter()
        .all(|(r, _)| r.model.as_deref() == Some(model.as_str())));
}
