//! Everything that can go wrong opening or slicing a dataset, each naming the file
//! or folder involved and saying what to do about it.

use std::path::PathBuf;

use crate::image_io::ImageError;

/// A dataset could not be opened, loaded or sliced.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: no such file or folder; check the dataset path")]
    NotFound { path: PathBuf },
    #[error("{path}: not a folder; point at a folder of class sub-folders, of images, or of CIFAR .bin files")]
    NotADirectory { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: no class folders and no images (png, jpg, jpeg, bmp, webp, gif) found; point at a \
         folder of class sub-folders or a folder of images"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: class folder '{class}' has no images; add images, remove the folder \
         (or its entry in classes.json), or use --lenient to skip it"
    )]
    EmptyClass { class: String, path: PathBuf },
    #[error(
        "{path}: image lies directly in a dataset root that also has class folders; move it \
         into a class folder, or use --lenient to skip it"
    )]
    ImageOutsideClass { path: PathBuf },
    #[error(
        "{path}: folder '{class}' is not listed in classes.json; add it to classes.json, remove \
         it, or use --lenient to skip it"
    )]
    UnlistedClass { class: String, path: PathBuf },
    #[error("{path}: invalid classes.json ({detail}); it must be a JSON array of distinct, non-empty class names")]
    ClassesJson { path: PathBuf, detail: String },
    #[error(
        "{path}: folders nested more than {max_depth} deep (a symlink loop?); flatten the tree"
    )]
    TooDeep { path: PathBuf, max_depth: usize },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: already exists and is not empty; choose a new output folder")]
    OutputExists { path: PathBuf },
    #[error("{path}: masks folder not found; check the --masks path")]
    MasksNotFound { path: PathBuf },
    #[error(
        "{mask}: mask is {mask_width}x{mask_height} but its image {image} is \
         {image_width}x{image_height}; masks must have their image's size"
    )]
    MaskSizeMismatch {
        image: PathBuf,
        mask: PathBuf,
        image_width: u32,
        image_height: u32,
        mask_width: u32,
        mask_height: u32,
    },
    #[error(
        "{path}: no CIFAR .bin files found (data_batch_*.bin, test_batch.bin, train.bin, test.bin)"
    )]
    NoCifarFiles { path: PathBuf },
    #[error(
        "{path}: size {len} bytes is not a multiple of the {record}-byte {format} record; the \
         file is truncated or not CIFAR binary"
    )]
    CifarSize {
        path: PathBuf,
        len: u64,
        record: usize,
        format: &'static str,
    },
    #[error(
        "{path}: cannot tell CIFAR-10 from CIFAR-100; name the file data_batch_N.bin / \
         test_batch.bin (CIFAR-10) or train.bin / test.bin (CIFAR-100)"
    )]
    CifarFormat { path: PathBuf },
    #[error("{path}: mixes CIFAR-10 and CIFAR-100 files; open them separately")]
    CifarMixed { path: PathBuf },
    #[error("{path}: record {record} has label {label}, but {format} has {classes} classes; the file is corrupt")]
    CifarLabel {
        path: PathBuf,
        record: usize,
        label: u8,
        classes: usize,
        format: &'static str,
    },
    #[error("{path}: lists {found} class names, expected {expected}; fix or remove the file")]
    CifarLabelNames {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("unknown class '{name}'; the dataset's classes are: {known}")]
    UnknownClass { name: String, known: String },
    #[error("class '{name}' is chosen twice; list each class once")]
    DuplicateClass { name: String },
    #[error("{what} must be in {range}, got {value}")]
    OutOfRange {
        what: &'static str,
        range: &'static str,
        value: f64,
    },
    #[error(
        "class '{class}' has {have} images, fewer than the {want} asked for; lower the count or \
         use --lenient to take all of them"
    )]
    TooFewInClass {
        class: String,
        have: usize,
        want: usize,
    },
    #[error(
        "class '{class}' has {have} images; holding out {n_val} would leave none to train on; \
         hold out fewer"
    )]
    SplitTooLarge {
        class: String,
        have: usize,
        n_val: usize,
    },
    #[error("{count} unreadable or invalid files, the first: {first}; fix or remove them, or use --lenient to skip them")]
    InvalidFiles { count: usize, first: String },
}
