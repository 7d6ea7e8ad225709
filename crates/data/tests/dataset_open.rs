//! Opening datasets from trees built in a temp dir: ImageFolder order and errors,
//! classes.json, lenient skipping, corrupt and oversized files, masks, CIFAR binary.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};
use semaug_data::dataset::{
    open_dataset, CifarBinary, Dataset, DatasetError, ImageFolder, OpenOptions, Source,
};
use semaug_data::image_io::{encode_png, encode_png_luma, ImageError, Limits};

fn touch(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn png(w: u32, h: u32) -> Vec<u8> {
    encode_png(&RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]))).unwrap()
}

fn mask_png(w: u32, h: u32) -> Vec<u8> {
    encode_png_luma(&GrayImage::from_fn(w, h, |x, _| {
        Luma([if x % 2 == 0 { 255 } else { 0 }])
    }))
    .unwrap()
}

fn ids(dataset: &Dataset) -> Vec<&str> {
    dataset.ids().collect()
}

fn strict() -> OpenOptions {
    OpenOptions::default()
}

#[test]
fn classes_in_byte_order_and_files_sorted_depth_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in [
        "b/2.png",
        "b/10.png",
        "a/zz.png",
        "a/sub/z.PNG",
        "a/m.jpeg",
        "a/.hidden.png",
        "a/.cache/x.png",
        "a/notes.txt",
        "B/x.webp",
    ] {
        touch(&root.join(name), b"");
    }
    let dataset = ImageFolder::open(root, &strict()).unwrap();
    assert_eq!(dataset.classes, ["B", "a", "b"]);
    assert_eq!(
        ids(&dataset),
        [
            "B/x.webp",
            "a/m.jpeg",
            "a/sub/z.PNG",
            "a/zz.png",
            "b/10.png",
            "b/2.png"
        ]
    );
    let classes: Vec<_> = dataset.samples.iter().map(|s| s.class).collect();
    assert_eq!(
        classes,
        [Some(0), Some(1), Some(1), Some(1), Some(2), Some(2)]
    );
    assert!(dataset.skipped.is_empty());
    assert_eq!(dataset.class_counts(), [1, 3, 2]);
}

#[test]
fn classes_json_fixes_the_order_and_unlisted_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in ["cat/1.png", "dog/1.png", "ant/1.png"] {
        touch(&root.join(name), b"");
    }
    touch(&root.join("classes.json"), br#"["dog", "cat", "ant"]"#);
    let dataset = ImageFolder::open(root, &strict()).unwrap();
    assert_eq!(dataset.classes, ["dog", "cat", "ant"]);
    assert_eq!(ids(&dataset), ["dog/1.png", "cat/1.png", "ant/1.png"]);
    assert_eq!(dataset.samples[2].class, Some(2));

    touch(&root.join("classes.json"), br#"["dog", "cat"]"#);
    let err = ImageFolder::open(root, &strict()).unwrap_err();
    assert!(
        matches!(&err, DatasetError::UnlistedClass { class, .. } if class == "ant"),
        "{err}"
    );
    assert!(err.to_string().contains("ant"));
    let lenient = ImageFolder::open(root, &OpenOptions::lenient()).unwrap();
    assert_eq!(lenient.classes, ["dog", "cat"]);
    assert_eq!(lenient.skipped.len(), 1);
    assert_eq!(lenient.skipped[0].id, "ant");

    touch(&root.join("classes.json"), br#"{"dog": 0}"#);
    let err = ImageFolder::open(root, &strict()).unwrap_err();
    assert!(matches!(err, DatasetError::ClassesJson { .. }), "{err}");
    touch(&root.join("classes.json"), br#"["dog", "dog"]"#);
    assert!(matches!(
        ImageFolder::open(root, &strict()),
        Err(DatasetError::ClassesJson { .. })
    ));
}

#[test]
fn flat_folder_is_unlabeled() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.jpg", "a.png", "readme.md"] {
        touch(&dir.path().join(name), b"");
    }
    let dataset = ImageFolder::open(dir.path(), &strict()).unwrap();
    assert!(dataset.is_unlabeled());
    assert_eq!(ids(&dataset), ["a.png", "b.jpg"]);
    assert!(dataset.samples.iter().all(|s| s.class.is_none()));
}

#[test]
fn missing_file_and_empty_roots_are_typed_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = open_dataset(&missing, &strict()).unwrap_err();
    assert!(matches!(err, DatasetError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"));

    touch(&dir.path().join("file.txt"), b"x");
    let err = ImageFolder::open(&dir.path().join("file.txt"), &strict()).unwrap_err();
    assert!(matches!(err, DatasetError::NotADirectory { .. }), "{err}");

    let err = ImageFolder::open(dir.path(), &strict()).unwrap_err();
    assert!(matches!(err, DatasetError::Empty { .. }), "{err}");
}

#[test]
fn empty_class_is_an_error_when_strict_and_skipped_when_lenient() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("cat/1.png"), b"");
    touch(&root.join("dog/readme.txt"), b"");
    touch(&root.join("eel/1.png"), b"");
    let err = ImageFolder::open(root, &strict()).unwrap_err();
    assert!(
        matches!(&err, DatasetError::EmptyClass { class, .. } if class == "dog"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains(&root.join("dog").display().to_string()));

    let dataset = ImageFolder::open(root, &OpenOptions::lenient()).unwrap();
    // The class keeps its index so labels stay those of the folder names.
    assert_eq!(dataset.classes, ["cat", "dog", "eel"]);
    assert_eq!(dataset.class_counts(), [1, 0, 1]);
    assert_eq!(dataset.skipped.len(), 1);
    assert_eq!(dataset.skipped[0].path, root.join("dog"));
}

#[test]
fn images_beside_class_folders_are_refused_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("cat/1.png"), b"");
    touch(&dir.path().join("stray.png"), b"");
    let err = ImageFolder::open(dir.path(), &strict()).unwrap_err();
    assert!(
        matches!(err, DatasetError::ImageOutsideClass { .. }),
        "{err}"
    );
    let dataset = ImageFolder::open(dir.path(), &OpenOptions::lenient()).unwrap();
    assert_eq!(ids(&dataset), ["cat/1.png"]);
    assert_eq!(dataset.skipped[0].id, "stray.png");
}

/// A PNG signature and an IHDR chunk (with a correct CRC) claiming `w` x `h`, no data.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
    bytes
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as PNG uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn corrupt_truncated_and_oversized_files_name_the_file_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("cat/good.png"), &png(5, 4));
    touch(
        &root.join("cat/garbage.jpg"),
        b"this is not a jpeg at all, just text",
    );
    let full = png(64, 64);
    touch(&root.join("cat/truncated.png"), &full[..full.len() / 2]);
    touch(
        &root.join("cat/bomb.png"),
        &png_header_only(100_000, 100_000),
    );
    let mut dataset = ImageFolder::open(root, &strict()).unwrap();
    let limits = Limits::default();

    for (id, file) in [
        ("cat/garbage.jpg", "garbage.jpg"),
        ("cat/truncated.png", "truncated.png"),
        ("cat/bomb.png", "bomb.png"),
    ] {
        let err = dataset.get(id).unwrap().load_image(&limits).unwrap_err();
        assert!(err.to_string().contains(file), "{err}");
    }
    let bomb = dataset
        .get("cat/bomb.png")
        .unwrap()
        .load_image(&limits)
        .unwrap_err();
    // Refused by the size limits before any pixel buffer exists. (image_io reports the
    // decoder's own limit check as Corrupt today; either way the message says "limit".)
    assert!(
        matches!(
            bomb,
            ImageError::TooLarge { .. } | ImageError::Corrupt { .. }
        ),
        "{bomb}"
    );
    assert!(bomb.to_string().contains("limit"), "{bomb}");
    assert_eq!(
        dataset
            .get("cat/good.png")
            .unwrap()
            .load_image(&limits)
            .unwrap()
            .dimensions(),
        (5, 4)
    );

    let bad = dataset.check(&limits);
    let bad_ids: Vec<&str> = bad.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        bad_ids,
        ["cat/bomb.png", "cat/garbage.jpg", "cat/truncated.png"]
    );
    assert!(bad
        .iter()
        .all(|s| s.reason.contains(s.path.to_str().unwrap())));

    let err = dataset.clone().validate(&limits, false).unwrap_err();
    assert!(
        matches!(err, DatasetError::InvalidFiles { count: 3, .. }),
        "{err}"
    );
    assert_eq!(dataset.validate(&limits, true).unwrap(), 3);
    assert_eq!(ids(&dataset), ["cat/good.png"]);
    assert_eq!(dataset.skipped.len(), 3);
}

fn masked_tree(root: &Path) -> (PathBuf, PathBuf) {
    let images = root.join("images");
    let masks = root.join("masks");
    touch(&images.join("cat/a.jpg"), &png(8, 6)); // content sniffed, not the extension
    touch(&images.join("cat/b.png"), &png(8, 6));
    touch(&images.join("dog/c.png"), &png(8, 6));
    touch(&masks.join("cat/a.png"), &mask_png(8, 6));
    touch(&masks.join("cat/b.png"), &mask_png(6, 6));
    (images, masks)
}

#[test]
fn masks_are_found_by_relative_path_and_missing_ones_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = masked_tree(dir.path());
    let dataset = ImageFolder::open(&images, &strict().with_masks(&masks)).unwrap();
    assert_eq!(
        dataset.samples[0].mask.as_deref(),
        Some(masks.join("cat/a.png").as_path())
    );
    assert_eq!(dataset.samples[2].mask, None);
    assert_eq!(dataset.mask_counts(), Some((2, 1)));

    let (image, mask) = dataset.samples[0]
        .load_image_and_mask(&Limits::default())
        .unwrap();
    let mask = mask.unwrap();
    assert_eq!((image.dimensions(), mask.dimensions()), ((8, 6), (8, 6)));
    assert_eq!(
        (mask.get_pixel(0, 0).0, mask.get_pixel(1, 0).0),
        ([255], [0])
    );
    let (_, none) = dataset.samples[2]
        .load_image_and_mask(&Limits::default())
        .unwrap();
    assert!(none.is_none());

    let summary = dataset.summary();
    assert_eq!(
        summary.masks.as_ref().map(|m| (m.found, m.missing)),
        Some((2, 1))
    );
    assert_eq!(summary.sizes.len(), 1);
    assert_eq!(
        (
            summary.sizes[0].width,
            summary.sizes[0].height,
            summary.sizes[0].count
        ),
        (8, 6, 3)
    );
    let json = serde_json::to_string(&summary).unwrap();
    assert_eq!(
        serde_json::from_str::<semaug_data::dataset::Summary>(&json).unwrap(),
        summary
    );
}

#[test]
fn mask_of_another_size_is_an_error_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (images, masks) = masked_tree(dir.path());
    let mut dataset = ImageFolder::open(&images, &strict().with_masks(&masks)).unwrap();
    let err = dataset.samples[1]
        .load_image_and_mask(&Limits::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::MaskSizeMismatch {
                mask_width: 6,
                image_width: 8,
                ..
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&images.join("cat/b.png").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&masks.join("cat/b.png").display().to_string()),
        "{message}"
    );

    assert_eq!(dataset.validate(&Limits::default(), true).unwrap(), 1);
    assert_eq!(ids(&dataset), ["cat/a.jpg", "dog/c.png"]);

    let err =
        ImageFolder::open(&images, &strict().with_masks(dir.path().join("nope"))).unwrap_err();
    assert!(matches!(err, DatasetError::MasksNotFound { .. }), "{err}");
}

/// A CIFAR record's pixel value for (record, channel, pixel index): easy to predict.
fn cifar_pixel(record: usize, channel: usize, i: usize) -> u8 {
    (record * 31 + channel * 85 + i * 7) as u8
}

fn cifar_records(labels: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (record, label) in labels.iter().enumerate() {
        bytes.extend_from_slice(label);
        for channel in 0..3 {
            bytes.extend((0..1024).map(|i| cifar_pixel(record, channel, i)));
        }
    }
    bytes
}

#[test]
fn cifar10_binary_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(
        &root.join("data_batch_1.bin"),
        &cifar_records(&[&[0], &[9], &[3]]),
    );
    touch(&root.join("data_batch_2.bin"), &cifar_records(&[&[5]]));
    touch(&root.join("test_batch.bin"), &cifar_records(&[&[1], &[2]]));
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    touch(&root.join("batches.meta.txt"), names.as_bytes());

    let train = open_dataset(root, &strict()).unwrap();
    assert_eq!(train.classes.len(), 10);
    assert_eq!(train.classes[3], "cat");
    assert_eq!(
        ids(&train),
        [
            "data_batch_1.bin#0",
            "data_batch_1.bin#1",
            "data_batch_1.bin#2",
            "data_batch_2.bin#0"
        ]
    );
    let labels: Vec<_> = train.samples.iter().map(|s| s.class).collect();
    assert_eq!(labels, [Some(0), Some(9), Some(3), Some(5)]);
    assert!(matches!(train.samples[0].source, Source::Memory(_)));
    let image = train.samples[2].load_image(&Limits::default()).unwrap();
    assert_eq!(image.dimensions(), (32, 32));
    for (x, y) in [(0u32, 0u32), (31, 0), (5, 17), (31, 31)] {
        let i = (y * 32 + x) as usize;
        let want = [0, 1, 2].map(|c| cifar_pixel(2, c, i));
        assert_eq!(image.get_pixel(x, y).0, want, "pixel ({x}, {y})");
    }

    let test = CifarBinary::open(&root.join("test_batch.bin"), &strict()).unwrap();
    assert_eq!(ids(&test), ["test_batch.bin#0", "test_batch.bin#1"]);
    assert_eq!(test.classes[1], "automobile");
}

#[test]
fn cifar100_uses_the_fine_label_and_numbers_unnamed_classes() {
    let dir = tempfile::tempdir().unwrap();
    touch(
        &dir.path().join("train.bin"),
        &cifar_records(&[&[3, 77], &[19, 0]]),
    );
    let dataset = open_dataset(dir.path(), &strict()).unwrap();
    assert_eq!(dataset.classes.len(), 100);
    assert_eq!(dataset.classes[77], "77");
    let labels: Vec<_> = dataset.samples.iter().map(|s| s.class).collect();
    assert_eq!(labels, [Some(77), Some(0)]);
    let image = dataset.samples[1].load_image(&Limits::default()).unwrap();
    assert_eq!(
        image.get_pixel(3, 1).0,
        [0, 1, 2].map(|c| cifar_pixel(1, c, 35))
    );
}

#[test]
fn cifar_bad_size_and_bad_label_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = cifar_records(&[&[1], &[2]]);
    bytes.truncate(bytes.len() - 10);
    touch(&dir.path().join("data_batch_1.bin"), &bytes);
    touch(
        &dir.path().join("data_batch_2.bin"),
        &cifar_records(&[&[4]]),
    );
    let err = open_dataset(dir.path(), &strict()).unwrap_err();
    assert!(
        matches!(err, DatasetError::CifarSize { record: 3073, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("data_batch_1.bin"), "{err}");
    let lenient = open_dataset(dir.path(), &OpenOptions::lenient()).unwrap();
    assert_eq!(ids(&lenient), ["data_batch_2.bin#0"]);
    assert_eq!(lenient.skipped[0].id, "data_batch_1.bin");

    touch(
        &dir.path().join("data_batch_1.bin"),
        &cifar_records(&[&[10]]),
    );
    let err = open_dataset(dir.path(), &strict()).unwrap_err();
    assert!(
        matches!(
            err,
            DatasetError::CifarLabel {
                label: 10,
                record: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn open_dataset_tells_layouts_apart() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("folder/cat/1.png"), b"");
    touch(
        &dir.path().join("bins/data_batch_1.bin"),
        &cifar_records(&[&[1]]),
    );
    let folder = open_dataset(&dir.path().join("folder"), &strict()).unwrap();
    assert!(matches!(folder.samples[0].source, Source::File(_)));
    let bins = open_dataset(&dir.path().join("bins"), &strict()).unwrap();
    assert!(matches!(bins.samples[0].source, Source::Memory(_)));
}
