//! Usage errors exit 2 before anything is written; a missing dataset or an output inside
//! the input exits 1. Every error is one `error:` line (clap adds its usage block).

use crate::common::{augment, cifar_subset, s, semaug, semaug_env, snapshot, METHODS};

#[test]
fn unknown_method_is_a_usage_error_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &["--method", "blur:radius=2"]);
    let line = outcome.assert_error_line(2);
    assert!(
        line.contains("blur") && line.contains("classical"),
        "{line}"
    );
    assert!(!out.exists(), "a usage error created the output folder");
}

#[test]
fn missing_data_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let outcome = semaug(&["augment", "--out", s(&out), "--method", "classical:flip"]);
    outcome.assert_usage_error();
    assert!(outcome.stderr.contains("--data"), "{}", outcome.stderr);
    assert!(!out.exists());
}

#[test]
fn zero_per_image_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let out = dir.path().join("out");
    let args = ["--method", "classical:flip", "--per-image", "0"];
    let line = augment(&data, &out, &args).assert_error_line(2).to_owned();
    assert!(line.contains("--per-image"), "{line}");
}

#[test]
fn shard_outside_the_shard_count_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let out = dir.path().join("out");
    for (index, count) in [("2", "2"), ("0", "0")] {
        let mut args = vec!["--shard-index", index, "--num-shards", count];
        args.extend(METHODS);
        let line = augment(&data, &out, &args).assert_error_line(2).to_owned();
        assert!(line.contains("shard"), "{line}");
    }
    assert!(!out.exists());
}

#[test]
fn malformed_slurm_variable_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let out = dir.path().join("out");
    let mut args = vec!["augment", "--data", s(&data), "--out", s(&out)];
    args.extend(METHODS);
    let outcome = semaug_env(&args, &[("SLURM_ARRAY_TASK_ID", "first")]);
    let line = outcome.assert_error_line(2);
    assert!(line.contains("SLURM_ARRAY_TASK_ID"), "{line}");
}

#[test]
fn missing_dataset_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-data");
    let line = semaug(&["info", s(&missing)])
        .assert_error_line(1)
        .to_owned();
    assert!(line.contains(s(&missing)), "{line}");
    let out = dir.path().join("out");
    let line = augment(&missing, &out, &METHODS)
        .assert_error_line(1)
        .to_owned();
    assert!(line.contains(s(&missing)), "{line}");
}

#[test]
fn output_inside_the_input_is_refused_and_the_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog", "ship"], 2);
    let before = snapshot(&data);
    let line = augment(&data, &data.join("augmented"), &METHODS)
        .assert_error_line(1)
        .to_owned();
    assert!(line.contains("inside the input"), "{line}");
    assert_eq!(snapshot(&data), before);
}
