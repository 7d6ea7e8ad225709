//! The same seed gives the same bytes whatever the generator batch size (including one
//! that splits the work unevenly) and whatever the thread count, for perturb and for
//! inpaint with masks; and the outputs really are generated, not copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use semaug_data::writer::read_imagefolder;

use crate::common::{s, semaug, snapshot};
use crate::fixture::{changed_outputs, dataset, masks, model_arg, FAST};

const CLASSES: [&str; 3] = ["0", "1", "2"];

/// Two images per class, with masks: 12 outputs over perturb and inpaint.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dataset(dir, &CLASSES, 2);
    let masks = masks(dir, &data);
    (data, masks)
}

/// `semaug [--threads T] augment ... --batch B` into `dir/<name>`; returns its files.
fn run(
    dir: &Path,
    (data, masks): &(PathBuf, PathBuf),
    name: &str,
    batch: &str,
    threads: Option<&str>,
) -> BTreeMap<String, Vec<u8>> {
    let out = dir.join(name);
    let model = model_arg();
    let mut args = vec![];
    if let Some(threads) = threads {
        args.extend(["--threads", threads]);
    }
    args.extend(["augment", "--data", s(data), "--out", s(&out)]);
    args.extend(["--model", &model, "--masks", s(masks), "--batch", batch]);
    args.extend(["--method", "perturb:delta=0.3"]);
    args.extend(["--method", "inpaint:region=foreground", "--seed", "5"]);
    args.extend(FAST);
    semaug(&args).assert_success();
    let outputs = read_imagefolder(&out).unwrap();
    assert_eq!(outputs.len(), 12);
    assert_eq!(
        changed_outputs(data, &outputs),
        12,
        "some outputs are copies"
    );
    snapshot(&out)
}

#[test]
fn batch_size_does_not_change_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = setup(dir.path());
    let whole = run(dir.path(), &inputs, "b16", "16", None);
    assert_eq!(
        whole.len(),
        12 + 2,
        "images + metadata.jsonl + classes.json"
    );
    // Batches of 5 split each method's 6 outputs as 5 + 1.
    for batch in ["1", "5"] {
        let other = run(dir.path(), &inputs, &format!("b{batch}"), batch, None);
        assert_eq!(other, whole, "--batch {batch} changed the bytes");
    }
}

#[test]
fn thread_count_does_not_change_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = setup(dir.path());
    let one = run(dir.path(), &inputs, "t1", "16", Some("1"));
    let two = run(dir.path(), &inputs, "t2", "16", Some("2"));
    assert_eq!(one, two, "--threads 1 and --threads 2 differ");
}
