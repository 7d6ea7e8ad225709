//! Hub ids resolved from a local Hugging Face cache, never the network.

use std::fs;
use std::path::Path;

use crate::common::{s, semaug_env};
use crate::{fixture, photos, FAST};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `cache/models--tiny--sd/` with `refs/main` naming a snapshot that holds sd-tiny.
fn cache_with_sd_tiny(cache: &Path) {
    let repo = cache.join("models--tiny--sd");
    copy_tree(&fixture("sd-tiny"), &repo.join("snapshots").join(COMMIT));
    fs::create_dir_all(repo.join("refs")).unwrap();
    fs::write(repo.join("refs/main"), COMMIT).unwrap();
    // A repository without usable weights is listed with its problem.
    let broken = cache.join("models--tiny--broken/snapshots").join(COMMIT);
    fs::create_dir_all(&broken).unwrap();
    fs::write(
        broken.join("config.json"),
        r#"{"_class_name": "UNet2DModel"}"#,
    )
    .unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            if entry.file_name() != "golden" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn models_lists_the_cache_and_augment_resolves_an_id_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    cache_with_sd_tiny(&cache);
    let env = [("HF_HUB_CACHE", s(&cache))];

    let listing = semaug_env(&["models"], &env);
    listing.assert_success();
    let line = |id: &str| {
        listing
            .stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{}", listing.stdout))
            .to_string()
    };
    assert!(line("embedded").contains("embedded"));
    assert!(line("tiny/sd").contains("StableDiffusionPipeline"));
    assert!(line("tiny/broken").contains("not usable"));

    let data = photos(dir.path(), &["dog"]);
    let out = dir.path().join("out");
    let mut args = vec!["augment", "--data", s(&data), "--out", s(&out)];
    args.extend_from_slice(&["--model", "tiny/sd", "--method", "splice:strength=0.5"]);
    args.extend_from_slice(&FAST);
    semaug_env(&args, &env).assert_success();
    let records = semaug_data::writer::read_imagefolder(&out).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0.model.as_deref(), Some("tiny/sd"));
}

#[test]
fn an_id_missing_from_the_cache_is_a_usage_error_that_downloads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    fs::create_dir_all(&cache).unwrap();
    let data = photos(dir.path(), &["dog"]);
    let out = dir.path().join("out");
    let args = [
        "augment",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--model",
        "org/absent",
        "--method",
        "splice",
    ];
    let outcome = semaug_env(&args, &[("HF_HUB_CACHE", s(&cache))]);
    let line = outcome.assert_error_line(2);
    assert!(
        line.contains("org/absent") && line.contains("not in the local"),
        "{line}"
    );
    assert!(
        fs::read_dir(&cache).unwrap().next().is_none(),
        "the cache was written to"
    );
    assert!(!out.exists());
}
