//! Bad inputs: each stops a strict run with exit 1 and one `error:` line naming the
//! file, never a panic and never a finished-looking manifest; with `--lenient` the file
//! is skipped, reported, and the rest is written.

use std::fs;
use std::path::{Path, PathBuf};

use semaug_data::writer::read_imagefolder;
use tempfile::TempDir;

use crate::common::{
    augment, cifar_subset, flowers_subset, png, png_with_header, s, semaug, Color, METHODS,
    METHOD_NAMES, PER_IMAGE,
};

/// A small dataset with one bad input in it.
struct Broken {
    dir: TempDir,
    data: PathBuf,
    masks: Option<PathBuf>,
    /// The file (or folder) the error must name.
    bad: PathBuf,
    /// The sample id of the bad image, when the bad input is a sample.
    bad_id: Option<String>,
    /// Readable samples left, which a lenient run augments.
    good_sources: usize,
}

/// 2 CIFAR classes x 3 images plus `cat/<name>` holding `bytes`.
fn cifar_with(name: &str, bytes: &[u8]) -> Broken {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["airplane", "cat"], 3);
    let bad = data.join("cat").join(name);
    fs::write(&bad, bytes).unwrap();
    Broken {
        dir,
        data,
        masks: None,
        bad,
        bad_id: Some(format!("cat/{name}")),
        good_sources: 6,
    }
}

fn garbage_jpeg() -> Broken {
    let garbage: Vec<u8> = b"these bytes are no image at all; "
        .iter()
        .cycle()
        .take(400)
        .copied()
        .collect();
    cifar_with("9999.jpg", &garbage)
}

fn truncated_jpeg() -> Broken {
    let source = semaug_testdata::cifar10_train().join("cat/0100.jpg");
    let bytes = fs::read(source).unwrap();
    cifar_with("9999.jpg", &bytes[..bytes.len() / 3])
}

fn truncated_png() -> Broken {
    let bytes = png(32, 32, Color::Rgb, 128);
    cifar_with("9999.png", &bytes[..bytes.len() / 2])
}

/// Signature, an IHDR claiming 100000x100000 with a correct CRC, a tiny IDAT, IEND.
fn png_bomb() -> Broken {
    cifar_with(
        "9999.png",
        &png_with_header(100_000, 100_000, Color::Rgb, &[0; 16]),
    )
}

fn empty_class() -> Broken {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["airplane", "cat"], 3);
    let bad = data.join("dog");
    fs::create_dir(&bad).unwrap();
    Broken {
        dir,
        data,
        masks: None,
        bad,
        bad_id: None,
        good_sources: 6,
    }
}

/// 2 flower classes x 2 images; the first daisy's mask is 16x16 instead of 256x256.
fn mask_of_other_size() -> Broken {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = flowers_subset(dir.path(), &["daisy", "tulip"], 2);
    let image = crate::common::sorted_names(&images.join("daisy")).remove(0);
    let mask_name = Path::new(&image).with_extension("png");
    let bad = masks.join("daisy").join(mask_name);
    fs::write(&bad, png(16, 16, Color::Gray, 255)).unwrap();
    Broken {
        dir,
        data: images,
        masks: Some(masks),
        bad,
        bad_id: Some(format!("daisy/{image}")),
        good_sources: 3,
    }
}

impl Broken {
    fn run(&self, out_name: &str, lenient: bool) -> (PathBuf, crate::common::Outcome) {
        let out = self.dir.path().join(out_name);
        let mut args: Vec<&str> = Vec::new();
        if let Some(masks) = &self.masks {
            args.extend(["--masks", s(masks)]);
        }
        if lenient {
            args.push("--lenient");
        }
        args.extend(METHODS);
        let outcome = augment(&self.data, &out, &args);
        (out, outcome)
    }

    /// Strict: exit 1, one error line naming the bad file (and `also`), no manifest.
    fn assert_rejected(&self, also: &str) {
        let (out, outcome) = self.run("strict", false);
        let line = outcome.assert_error_line(1);
        assert!(
            line.contains(s(&self.bad)),
            "does not name the file: {line}"
        );
        assert!(line.contains(also), "does not say {also:?}: {line}");
        assert!(
            !out.join("metadata.jsonl").exists(),
            "a failed run left a manifest"
        );
    }

    /// Lenient: exit 0, the bad input reported, every readable source augmented.
    fn assert_skipped(&self) {
        let (out, outcome) = self.run("lenient", true);
        outcome.assert_success();
        assert!(
            outcome.stderr.contains("skipped") && outcome.stderr.contains(s(&self.bad)),
            "the skipped input is not reported:\n{}",
            outcome.stderr
        );
        assert!(
            outcome.stdout.contains("1 sources skipped"),
            "{}",
            outcome.stdout
        );
        let records = read_imagefolder(&out).unwrap();
        let expected = self.good_sources * METHOD_NAMES.len() * PER_IMAGE;
        assert_eq!(records.len(), expected);
        if let Some(id) = &self.bad_id {
            assert!(records.iter().all(|(r, _)| &r.source != id));
        }
    }
}

#[test]
fn garbage_jpeg_is_rejected() {
    garbage_jpeg().assert_rejected("not a supported image");
}

#[test]
fn garbage_jpeg_is_skipped_when_lenient() {
    garbage_jpeg().assert_skipped();
}

#[test]
fn truncated_jpeg_is_rejected_on_one_line() {
    truncated_jpeg().assert_rejected("truncated");
}

#[test]
fn truncated_jpeg_is_skipped_when_lenient() {
    truncated_jpeg().assert_skipped();
}

#[test]
fn truncated_png_is_rejected() {
    truncated_png().assert_rejected("truncated");
}

#[test]
fn truncated_png_is_skipped_when_lenient() {
    truncated_png().assert_skipped();
}

#[test]
fn png_bomb_is_rejected_from_its_header() {
    png_bomb().assert_rejected("100000x100000");
}

#[test]
fn png_bomb_is_skipped_when_lenient() {
    png_bomb().assert_skipped();
}

#[test]
fn empty_class_folder_is_rejected() {
    empty_class().assert_rejected("no images");
}

#[test]
fn empty_class_folder_is_skipped_and_reported_when_lenient() {
    empty_class().assert_skipped();
}

#[test]
fn mask_of_another_size_is_rejected() {
    mask_of_other_size().assert_rejected("16x16");
}

#[test]
fn mask_of_another_size_is_skipped_when_lenient() {
    mask_of_other_size().assert_skipped();
}

/// The crafted PNGs are valid when whole, so the failures above come from the damage.
#[test]
fn crafted_png_image_and_mask_are_read_when_intact() {
    let broken = cifar_with("9999.png", &png(32, 32, Color::Rgb, 128));
    let (out, outcome) = broken.run("out", false);
    outcome.assert_success();
    let records = read_imagefolder(&out).unwrap();
    let from_crafted = records
        .iter()
        .filter(|(r, _)| r.source == "cat/9999.png")
        .count();
    assert_eq!(from_crafted, METHOD_NAMES.len() * PER_IMAGE);

    let masked = mask_of_other_size();
    fs::write(&masked.bad, png(256, 256, Color::Gray, 255)).unwrap();
    let (_, outcome) = masked.run("out", false);
    outcome.assert_success();
}

#[test]
fn info_check_lists_the_corrupt_file_and_succeeds() {
    let broken = garbage_jpeg();
    let outcome = semaug(&["info", "--check", s(&broken.data)]);
    outcome.assert_success();
    assert!(outcome.stdout.contains("skipped  1"), "{}", outcome.stdout);
    assert!(
        outcome.stdout.contains(s(&broken.bad)),
        "{}",
        outcome.stdout
    );
}
