//! The shared real data: the CIFAR-10 ImageFolder and the flowers with their masks.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use semaug_data::dataset::{open_dataset, ImageFolder, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_data::mask::threshold;

#[test]
fn cifar10_train_folder_has_10_classes_of_5000() {
    let root = semaug_testdata::cifar10_train();
    let start = std::time::Instant::now();
    let dataset = open_dataset(&root, &OpenOptions::default()).unwrap();
    println!(
        "opened {} CIFAR-10 paths in {:?}",
        dataset.len(),
        start.elapsed()
    );
    let names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    assert_eq!(dataset.classes, names);
    assert_eq!(dataset.class_counts(), [5000; 10]);
    assert!(dataset.skipped.is_empty());
    let first = &dataset.samples[0];
    assert!(first.id.starts_with("airplane/"), "{}", first.id);

    // Decode a balanced 1 % sample: all 32x32 and all readable.
    let sample = dataset.subset_fraction(0.01, 0).unwrap();
    assert_eq!(sample.class_counts(), [50; 10]);
    assert!(sample.check(&Limits::default()).is_empty());
    let summary = sample.summary();
    assert_eq!(summary.sizes.len(), 1);
    assert_eq!(
        (
            summary.sizes[0].width,
            summary.sizes[0].height,
            summary.sizes[0].count
        ),
        (32, 32, 500)
    );
}

#[test]
fn flowers_train_split_has_a_mask_of_the_same_size_for_every_image() {
    let root = semaug_testdata::flowers();
    let options = OpenOptions::default().with_masks(root.join("masks/train"));
    let dataset = ImageFolder::open(&root.join("images/train"), &options).unwrap();
    assert_eq!(dataset.classes.len(), 16);
    assert!(dataset.len() > 400, "{} images", dataset.len());
    assert_eq!(dataset.mask_counts(), Some((dataset.len(), 0)));
    let start = std::time::Instant::now();
    assert_eq!(dataset.check(&Limits::default()), []);
    println!(
        "decoded {} image/mask pairs in {:?}",
        dataset.len(),
        start.elapsed()
    );
    let summary = dataset.summary();
    assert_eq!(summary.sizes.len(), 1);
    assert_eq!(
        (summary.sizes[0].width, summary.sizes[0].height),
        (256, 256)
    );
    // Masks are binary, 255 = flower.
    let (_, mask) = dataset.samples[0]
        .load_image_and_mask(&Limits::default())
        .unwrap();
    let mask = mask.unwrap();
    assert_eq!(threshold(&mask, 128), mask);
    let fg = mask.pixels().filter(|p| p[0] == 255).count();
    assert!(fg > 0 && fg < 256 * 256);
}
