//! What the generative tests share: the tiny model, small CIFAR datasets whose class
//! folders are named like the model's classes (`0`, `1`, ...), hand-drawn masks, and
//! checks of the manifest every generative run must write.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, RgbImage};
use semaug_data::writer::Record;

use crate::common::{self, sorted_names, Outcome};

/// Cheap sampling for every run: two Euler steps over the whole noise range.
pub const FAST: [&str; 4] = ["--steps", "2", "--solver", "euler"];

/// CIFAR classes whose images fill the dataset folders `0`, `1`, `2`, ...
const CIFAR_SOURCES: [&str; 4] = ["airplane", "cat", "ship", "truck"];

/// The tiny random-weight diffusers UNet2DModel (32x32, classes `0`..`9`).
pub fn model_dir() -> PathBuf {
    semaug_testdata::fixtures_dir().join("unet2d-tiny/unet")
}

/// `--model` as the tests pass it (and as records must name it).
pub fn model_arg() -> String {
    model_dir().to_str().expect("UTF-8 fixture path").to_owned()
}

/// sha256 of the model's weights file, hashed here from its bytes.
pub fn model_sha256() -> String {
    let weights = model_dir().join(semaug_models::unet::WEIGHTS_FILE);
    sha256(&fs::read(weights).unwrap())
}

/// Lowercase hex sha256, checked once against the FIPS 180-2 "abc" vector so a wrong
/// hash function cannot make provenance checks agree by accident.
pub fn sha256(bytes: &[u8]) -> String {
    assert_eq!(
        semaug_models::unet::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    semaug_models::unet::sha256_hex(bytes)
}

/// An ImageFolder at `dir/data` with `per_class` 32x32 CIFAR images in each of
/// `classes` (folder `i` takes its images from the `i`-th CIFAR source class).
pub fn dataset(dir: &Path, classes: &[&str], per_class: usize) -> PathBuf {
    let data = dir.join("data");
    let cifar = semaug_testdata::cifar10_train();
    for (i, class) in classes.iter().enumerate() {
        let from = cifar.join(CIFAR_SOURCES[i % CIFAR_SOURCES.len()]);
        let to = data.join(class);
        fs::create_dir_all(&to).unwrap();
        for name in sorted_names(&from).into_iter().take(per_class) {
            fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
    data
}

/// A masks tree at `dir/masks` for every image of `data`: image `k` of a class gets an
/// off-centre rectangle (so a run that ignored the masks and used its central-box
/// default would be caught), `x in 2+4k..14+4k`, `y in 12..30`.
pub fn masks(dir: &Path, data: &Path) -> PathBuf {
    let masks = dir.join("masks");
    for class in sorted_names(data) {
        fs::create_dir_all(masks.join(&class)).unwrap();
        for (k, name) in sorted_names(&data.join(&class)).iter().enumerate() {
            let (width, height) = image::image_dimensions(data.join(&class).join(name)).unwrap();
            let left = 2 + 4 * (k as u32 % 4);
            let mask = GrayImage::from_fn(width, height, |x, y| {
                let inside = (left..left + 12).contains(&x) && (12..30).contains(&y);
                Luma([if inside { 255 } else { 0 }])
            });
            let file = Path::new(name).with_extension("png");
            mask.save(masks.join(&class).join(file)).unwrap();
        }
    }
    masks
}

/// `semaug augment --data DATA --out OUT --model <tiny> EXTRA...`.
pub fn augment(data: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let model = model_arg();
    let mut args = vec!["--model", model.as_str()];
    args.extend_from_slice(extra);
    common::augment(data, out, &args)
}

/// The RGB pixels of an image file.
pub fn pixels(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// The source image of an output record.
pub fn source_pixels(data: &Path, record: &Record) -> RgbImage {
    pixels(&data.join(&record.source))
}

/// What a run was asked to make, for [`check_manifest`].
pub struct Expected<'a> {
    pub data: &'a Path,
    /// One name per `--method` (repeated when a method is given twice).
    pub methods: &'a [&'a str],
    pub per_image: usize,
    pub seed: u64,
}

/// Every record is complete and true: its source exists and hashes to
/// `source_sha256`, its label matches the source's class folder, the method is one of
/// the run's with its parameters, the seed and tool version are the run's, the model is
/// the `--model` path with its weights' sha256, and only compose / da-fusion records
/// carry a drawn `recipe`. Each (source, method, params, variant) appears exactly once.
pub fn check_manifest<'a>(records: impl IntoIterator<Item = &'a Record>, expected: &Expected) {
    let classes = sorted_names(expected.data);
    let sources = source_files(expected.data);
    let (model, model_sha) = (model_arg(), model_sha256());
    let mut hashes = BTreeMap::new();
    let mut seen = HashSet::new();
    for record in records {
        let bytes = fs::read(expected.data.join(&record.source))
            .unwrap_or_else(|e| panic!("source {} of {record:?}: {e}", record.source));
        let hash = hashes
            .entry(record.source.clone())
            .or_insert_with(|| sha256(&bytes));
        assert_eq!(&record.source_sha256, hash, "{record:?}");
        let folder = record.source.split('/').next().unwrap();
        assert_eq!(record.class_name, folder, "{record:?}");
        assert_eq!(classes[record.label as usize], folder, "{record:?}");
        assert!(
            record.file_name.starts_with(&format!("{folder}/")),
            "{record:?}"
        );
        assert!(
            expected.methods.contains(&record.method.as_str()),
            "{record:?}"
        );
        assert!(
            record.params.as_object().is_some_and(|p| !p.is_empty()),
            "no params: {record:?}"
        );
        assert_eq!(record.seed, expected.seed, "{record:?}");
        assert_eq!(record.model.as_deref(), Some(model.as_str()), "{record:?}");
        assert_eq!(
            record.model_sha256.as_deref(),
            Some(model_sha.as_str()),
            "{record:?}"
        );
        assert_eq!(record.tool_version, env!("CARGO_PKG_VERSION"));
        let drawn = matches!(record.method.as_str(), "compose" | "da-fusion");
        assert_eq!(
            record.extra.contains_key("recipe"),
            drawn,
            "recipe in extra: {record:?}"
        );
        assert!((record.variant as usize) < expected.per_image, "{record:?}");
        // The params tell apart two `--method`s of one name.
        let output = (
            record.source.clone(),
            record.method.clone(),
            record.params.to_string(),
            record.variant,
        );
        assert!(seen.insert(output), "duplicate output {record:?}");
    }
    assert_eq!(
        seen.len(),
        sources.len() * expected.methods.len() * expected.per_image,
        "not every source got every method and variant"
    );
}

/// `<class>/<file>` of every image in the ImageFolder `data`.
pub fn source_files(data: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for class in sorted_names(data) {
        for name in sorted_names(&data.join(&class)) {
            files.push(format!("{class}/{name}"));
        }
    }
    files
}

/// How many of the outputs differ from their source image somewhere.
pub fn changed_outputs(data: &Path, outputs: &[(Record, RgbImage)]) -> usize {
    outputs
        .iter()
        .filter(|(record, image)| source_pixels(data, record).as_raw() != image.as_raw())
        .count()
}

/// Files under `dir` (hidden ones included) whose names mark an unfinished write.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if path.to_string_lossy().contains(".tmp.") {
            found.push(path);
        }
    }
    found
}

/// `args` with the run-wide `FAST` sampling flags appended.
pub fn fast<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(FAST);
    all
}
