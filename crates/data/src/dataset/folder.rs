//! The ImageFolder layout: `root/<class>/<...>/<image>`, or a flat folder of unlabeled
//! images.
//!
//! Class order is the byte order of the folder names unless `root/classes.json` (a JSON
//! array of names, written by semaug's own writers) fixes it, so a dataset semaug wrote
//! opens with the class indices it was written with. Files are listed depth-first in
//! byte order of their names; hidden entries (`.name`) and non-image files are ignored.

use std::fs;
use std::path::{Path, PathBuf};

use super::{masks, strict_or_skip, Dataset, DatasetError, OpenOptions, Sample, Skipped, Source};

/// The file at the dataset root that fixes the class order.
pub const CLASSES_JSON: &str = "classes.json";

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "webp", "gif"];

/// Guards against symlink loops.
const MAX_DEPTH: usize = 32;

/// Opens ImageFolder trees.
#[derive(Debug, Clone, Copy)]
pub struct ImageFolder;

/// True for a file name with one of the [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The class names in `root/classes.json`, or `None` when there is no such file.
pub fn read_classes_json(root: &Path) -> Result<Option<Vec<String>>, DatasetError> {
    let path = root.join(CLASSES_JSON);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DatasetError::Io { path, source }),
    };
    let invalid = |detail: String| DatasetError::ClassesJson {
        path: path.clone(),
        detail,
    };
    let names: Vec<String> = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(invalid(format!("'{name}' is not a folder name")));
        }
        if names[..i].contains(name) {
            return Err(invalid(format!("'{name}' is listed twice")));
        }
    }
    Ok(Some(names))
}

/// The entries of one folder, split into sub-folders and image files.
#[derive(Default)]
struct Listing {
    dirs: Vec<PathBuf>,
    images: Vec<PathBuf>,
}

impl ImageFolder {
    /// Lists the dataset at `root` (nothing is decoded), attaching masks when
    /// `options.masks` is set.
    pub fn open(root: &Path, options: &OpenOptions) -> Result<Dataset, DatasetError> {
        check_is_dir(root)?;
        let mut dataset = Dataset {
            root: root.to_owned(),
            classes: Vec::new(),
            samples: Vec::new(),
            skipped: Vec::new(),
            masks_dir: None,
        };
        let listing = list(root)?;
        let listed = read_classes_json(root)?;
        if listed.is_none() && listing.dirs.is_empty() {
            if listing.images.is_empty() {
                return Err(DatasetError::Empty {
                    path: root.to_owned(),
                });
            }
            dataset.samples = listing
                .images
                .iter()
                .map(|path| file_sample(root, path, None))
                .collect();
        } else {
            open_classes(&mut dataset, &listing, listed, options.lenient)?;
        }
        if let Some(dir) = &options.masks {
            masks::attach(&mut dataset, dir)?;
        }
        Ok(dataset)
    }
}

fn check_is_dir(path: &Path) -> Result<(), DatasetError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(DatasetError::NotADirectory {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DatasetError::NotFound {
            path: path.to_owned(),
        }),
        Err(source) => Err(DatasetError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn open_classes(
    dataset: &mut Dataset,
    listing: &Listing,
    listed: Option<Vec<String>>,
    lenient: bool,
) -> Result<(), DatasetError> {
    let root = dataset.root.clone();
    for path in &listing.images {
        let error = DatasetError::ImageOutsideClass { path: path.clone() };
        strict_or_skip(
            lenient,
            &mut dataset.skipped,
            &relative_id(&root, path),
            path,
            error,
        )?;
    }
    let folder_names: Vec<String> = listing.dirs.iter().map(|d| file_name(d)).collect();
    dataset.classes = match listed {
        Some(names) => {
            for (name, dir) in folder_names.iter().zip(&listing.dirs) {
                if !names.contains(name) {
                    let error = DatasetError::UnlistedClass {
                        class: name.clone(),
                        path: dir.clone(),
                    };
                    strict_or_skip(lenient, &mut dataset.skipped, name, dir, error)?;
                }
            }
            names
        }
        None => folder_names,
    };
    for (index, class) in dataset.classes.clone().iter().enumerate() {
        let dir = root.join(class);
        match collect_images(&dir, lenient, &mut dataset.skipped) {
            Ok(files) if !files.is_empty() => dataset
                .samples
                .extend(files.iter().map(|f| file_sample(&root, f, Some(index)))),
            Ok(_) => {
                let error = DatasetError::EmptyClass {
                    class: class.clone(),
                    path: dir.clone(),
                };
                strict_or_skip(lenient, &mut dataset.skipped, class, &dir, error)?;
            }
            Err(error) => strict_or_skip(lenient, &mut dataset.skipped, class, &dir, error)?,
        }
    }
    Ok(())
}

/// All images under `dir`, depth-first in name order. A missing `dir` has none.
fn collect_images(
    dir: &Path,
    lenient: bool,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<PathBuf>, DatasetError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    walk(dir, 0, lenient, skipped, &mut files)?;
    Ok(files)
}

fn walk(
    dir: &Path,
    depth: usize,
    lenient: bool,
    skipped: &mut Vec<Skipped>,
    files: &mut Vec<PathBuf>,
) -> Result<(), DatasetError> {
    if depth > MAX_DEPTH {
        return Err(DatasetError::TooDeep {
            path: dir.to_owned(),
            max_depth: MAX_DEPTH,
        });
    }
    let listing = match list(dir) {
        Ok(listing) => listing,
        Err(error) if depth > 0 => {
            return strict_or_skip(lenient, skipped, &file_name(dir), dir, error);
        }
        Err(error) => return Err(error),
    };
    // Files and folders interleave in name order, as a sorted path listing would.
    let mut entries: Vec<(bool, &PathBuf)> = listing.dirs.iter().map(|d| (true, d)).collect();
    entries.extend(listing.images.iter().map(|f| (false, f)));
    entries.sort_by(|a, b| a.1.file_name().cmp(&b.1.file_name()));
    for (is_dir, path) in entries {
        if is_dir {
            walk(path, depth + 1, lenient, skipped, files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(())
}

/// The non-hidden sub-folders and image files of `dir`, each sorted by name.
fn list(dir: &Path) -> Result<Listing, DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut listing = Listing::default();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if file_name(&path).starts_with('.') {
            continue;
        }
        // Follows symlinks; a dangling one is neither a folder nor a file.
        if path.is_dir() {
            listing.dirs.push(path);
        } else if is_image_path(&path) {
            listing.images.push(path);
        }
    }
    listing.dirs.sort();
    listing.images.sort();
    Ok(listing)
}

fn file_sample(root: &Path, path: &Path, class: Option<usize>) -> Sample {
    Sample {
        id: relative_id(root, path),
        class,
        source: Source::File(path.to_owned()),
        mask: None,
    }
}

/// `path` relative to `root`, with `/` separators.
fn relative_id(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
