//! Two shards of a generative run written into one folder end with the bytes of one
//! unsharded run, in ImageFolder and WebDataset layouts alike.

use std::path::Path;

use crate::common::snapshot;
use crate::fixture::{augment, dataset, fast};

const CLASSES: [&str; 3] = ["0", "1", "2"];
/// 3 classes x 2 images x 2 methods x 2 per image.
const TOTAL: usize = 24;

fn methods(format: &str) -> Vec<&str> {
    fast(&[
        "--method",
        "perturb:delta=0.3",
        "--method",
        "da-fusion",
        "--per-image",
        "2",
        "--format",
        format,
    ])
}

fn shards_equal_one_run(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), &CLASSES, 2);
    let (sharded, single) = (dir.path().join("sharded"), dir.path().join("single"));
    // Shard 1 first: the order of the shards must not matter either.
    for index in ["1", "0"] {
        let mut args = methods(format);
        args.extend(["--shard-index", index, "--num-shards", "2"]);
        let outcome = augment(&data, &sharded, &args);
        outcome.assert_success();
        let expected = format!("wrote {} images", TOTAL / 2);
        assert!(outcome.stdout.contains(&expected), "{}", outcome.stdout);
    }
    augment(&data, &single, &methods(format)).assert_success();
    let (a, b) = (snapshot(&sharded), snapshot(&single));
    assert!(a.contains_key("metadata.jsonl"), "{:?}", a.keys());
    assert_eq!(a, b, "{format}: the shards' union differs from one run");
    check_not_empty(&single, format);
}

fn check_not_empty(out: &Path, format: &str) {
    let records = semaug_data::writer::read_metadata(out).unwrap();
    assert_eq!(records.len(), TOTAL, "{format}");
}

#[test]
fn imagefolder_shards_into_one_folder_equal_one_run() {
    shards_equal_one_run("imagefolder");
}

#[test]
fn webdataset_shards_into_one_folder_equal_one_run() {
    shards_equal_one_run("webdataset");
}
