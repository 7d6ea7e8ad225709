//! The CIFAR-10 / CIFAR-100 binary release (Krizhevsky 2009).
//!
//! CIFAR-10 files (`data_batch_1..5.bin`, `test_batch.bin`) hold 3073-byte records: one
//! label byte, then 32x32 red, green and blue planes (1024 bytes each, row-major).
//! CIFAR-100 files (`train.bin`, `test.bin`) hold 3074-byte records: coarse label, fine
//! label, then the same 3072 pixel bytes; semaug uses the fine label. Class names come
//! from `batches.meta.txt` / `fine_label_names.txt` beside the files when present, else
//! they are "0".."N-1". Opening a folder reads its training files (or, if it has none,
//! every `.bin` file); open a single file to read e.g. the test split.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;

use super::{masks, strict_or_skip, Dataset, DatasetError, OpenOptions, Sample, Source};

const SIDE: u32 = 32;
const PIXEL_BYTES: usize = 3 * 32 * 32;

/// Which of the two CIFAR binary formats a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarFormat {
    Cifar10,
    Cifar100,
}

impl CifarFormat {
    /// Bytes per record: label byte(s) plus 3072 pixel bytes.
    pub fn record_len(self) -> usize {
        self.label_bytes() + PIXEL_BYTES
    }

    pub fn num_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Cifar10 => "CIFAR-10",
            Self::Cifar100 => "CIFAR-100",
        }
    }

    fn label_names_file(self) -> &'static str {
        match self {
            Self::Cifar10 => "batches.meta.txt",
            Self::Cifar100 => "fine_label_names.txt",
        }
    }

    /// The format a file's name says, if it is one of the release's names.
    fn from_name(name: &str) -> Option<Self> {
        if name.starts_with("data_batch") || name.starts_with("test_batch") {
            Some(Self::Cifar10)
        } else if name == "train.bin" || name == "test.bin" {
            Some(Self::Cifar100)
        } else {
            None
        }
    }
}

/// Opens CIFAR binary files.
#[derive(Debug, Clone, Copy)]
pub struct CifarBinary;

/// A `.bin` file, or a folder with `.bin` files directly inside.
pub(super) fn looks_like_cifar(path: &Path) -> bool {
    if path.is_file() {
        return is_bin(path);
    }
    fs::read_dir(path).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| is_bin(&e.path()) && e.path().is_file())
    })
}

impl CifarBinary {
    /// Reads every record of the file at `path`, or of the training files in the folder
    /// at `path`, into memory.
    pub fn open(path: &Path, options: &OpenOptions) -> Result<Dataset, DatasetError> {
        let (root, files) = files_to_read(path)?;
        let format = common_format(path, &files)?;
        let mut dataset = Dataset {
            classes: class_names(&root, format)?,
            root,
            samples: Vec::new(),
            skipped: Vec::new(),
            masks_dir: None,
        };
        for file in &files {
            read_file(&mut dataset, file, format, options.lenient)?;
        }
        if let Some(dir) = &options.masks {
            masks::attach(&mut dataset, dir)?;
        }
        Ok(dataset)
    }

    /// Decodes one record's pixel bytes (R, G, B planes of 32x32) into an image.
    pub fn record_image(pixels: &[u8]) -> Option<RgbImage> {
        let plane = (SIDE * SIDE) as usize;
        if pixels.len() != PIXEL_BYTES {
            return None;
        }
        let (red, rest) = pixels.split_at(plane);
        let (green, blue) = rest.split_at(plane);
        let mut rgb = Vec::with_capacity(PIXEL_BYTES);
        for i in 0..plane {
            rgb.extend_from_slice(&[red[i], green[i], blue[i]]);
        }
        RgbImage::from_raw(SIDE, SIDE, rgb)
    }
}

fn is_bin(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"))
}

/// The root folder and the files to read from `path`, in reading order.
fn files_to_read(path: &Path) -> Result<(PathBuf, Vec<PathBuf>), DatasetError> {
    let meta = fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DatasetError::NotFound {
            path: path.to_owned(),
        },
        _ => DatasetError::Io {
            path: path.to_owned(),
            source,
        },
    })?;
    if meta.is_file() {
        let root = path.parent().map(Path::to_owned).unwrap_or_default();
        return Ok((root, vec![path.to_owned()]));
    }
    let io = |source| DatasetError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bins = Vec::new();
    for entry in fs::read_dir(path).map_err(io)? {
        let file = entry.map_err(io)?.path();
        if is_bin(&file) && file.is_file() && !name_of(&file).starts_with('.') {
            bins.push(file);
        }
    }
    // data_batch_10 after data_batch_9: order by name length, then name.
    bins.sort_by_key(|p| (name_of(p).len(), name_of(p)));
    let training: Vec<PathBuf> = bins
        .iter()
        .filter(|p| {
            let name = name_of(p);
            name.starts_with("data_batch") || name == "train.bin"
        })
        .cloned()
        .collect();
    let files = if training.is_empty() { bins } else { training };
    if files.is_empty() {
        return Err(DatasetError::NoCifarFiles {
            path: path.to_owned(),
        });
    }
    Ok((path.to_owned(), files))
}

/// The one format all `files` share, from their names, else from the label-names file
/// beside them, else from the file sizes when only one record size divides them.
fn common_format(path: &Path, files: &[PathBuf]) -> Result<CifarFormat, DatasetError> {
    let mut found = None;
    for file in files {
        let format = format_of(file)?;
        if found.is_some_and(|f| f != format) {
            return Err(DatasetError::CifarMixed {
                path: path.to_owned(),
            });
        }
        found = Some(format);
    }
    found.ok_or_else(|| DatasetError::NoCifarFiles {
        path: path.to_owned(),
    })
}

fn format_of(file: &Path) -> Result<CifarFormat, DatasetError> {
    if let Some(format) = CifarFormat::from_name(&name_of(file)) {
        return Ok(format);
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let formats = [CifarFormat::Cifar10, CifarFormat::Cifar100];
    if let Some(f) = formats
        .into_iter()
        .find(|f| dir.join(f.label_names_file()).is_file())
    {
        return Ok(f);
    }
    let len = fs::metadata(file)
        .map_err(|source| DatasetError::Io {
            path: file.to_owned(),
            source,
        })?
        .len();
    let fits: Vec<CifarFormat> = formats
        .into_iter()
        .filter(|f| len > 0 && len % f.record_len() as u64 == 0)
        .collect();
    match fits.as_slice() {
        [only] => Ok(*only),
        _ => Err(DatasetError::CifarFormat {
            path: file.to_owned(),
        }),
    }
}

fn class_names(root: &Path, format: CifarFormat) -> Result<Vec<String>, DatasetError> {
    let path = root.join(format.label_names_file());
    let expected = format.num_classes();
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((0..expected).map(|i| i.to_string()).collect());
        }
        Err(source) => return Err(DatasetError::Io { path, source }),
    };
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if names.len() != expected {
        return Err(DatasetError::CifarLabelNames {
            path,
            expected,
            found: names.len(),
        });
    }
    Ok(names)
}

/// Appends the records of `file` to the dataset (or skips the file / bad records in
/// lenient mode).
fn read_file(
    dataset: &mut Dataset,
    file: &Path,
    format: CifarFormat,
    lenient: bool,
) -> Result<(), DatasetError> {
    let name = name_of(file);
    let bytes = fs::read(file).map_err(|source| DatasetError::Io {
        path: file.to_owned(),
        source,
    });
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(error) => return strict_or_skip(lenient, &mut dataset.skipped, &name, file, error),
    };
    let record_len = format.record_len();
    if bytes.is_empty() || bytes.len() % record_len != 0 {
        let error = DatasetError::CifarSize {
            path: file.to_owned(),
            len: bytes.len() as u64,
            record: record_len,
            format: format.name(),
        };
        return strict_or_skip(lenient, &mut dataset.skipped, &name, file, error);
    }
    for (record, chunk) in bytes.chunks_exact(record_len).enumerate() {
        let id = format!("{name}#{record}");
        // CIFAR-100: the fine label is the second byte.
        let label = chunk[format.label_bytes() - 1];
        if label as usize >= format.num_classes() {
            let error = DatasetError::CifarLabel {
                path: file.to_owned(),
                record,
                label,
                classes: format.num_classes(),
                format: format.name(),
            };
            strict_or_skip(lenient, &mut dataset.skipped, &id, file, error)?;
            continue;
        }
        let Some(image) = CifarBinary::record_image(&chunk[format.label_bytes()..]) else {
            continue; // unreachable: chunks are exactly one record long
        };
        dataset.samples.push(Sample {
            id,
            class: Some(label as usize),
            source: Source::Memory(Arc::new(image)),
            mask: None,
        });
    }
    Ok(())
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
