//! Test-only access to the real images in `../shared/data/` (beside the repository).
//!
//! Each archive is extracted once into `target/testdata/<name>/` and reused by every test
//! process; extraction goes to a temporary folder unique to the process that is renamed
//! into place, and a lock serialises the threads of one process, so tests running in
//! parallel never see a half-extracted tree.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Serialises extraction among the threads of one test process.
static EXTRACTING: Mutex<()> = Mutex::new(());

/// `../shared` beside the repository root.
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// The golden fixtures folder, `../shared/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    shared_dir().join("fixtures")
}

/// Extracts `../shared/data/<archive>.tar.gz` (once) and returns the folder it was
/// extracted into. Panics with a clear message when the archive is missing: tests
/// need `../shared` beside the clone.
pub fn extracted(archive: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/testdata");
    let dest = target.join(archive);
    let _guard = EXTRACTING.lock().unwrap_or_else(|e| e.into_inner());
    if dest.is_dir() {
        return dest;
    }
    let source = shared_dir().join("data").join(format!("{archive}.tar.gz"));
    let file = std::fs::File::open(&source).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; tests need ../shared beside the repository",
            source.display()
        )
    });
    std::fs::create_dir_all(&target).expect("create target/testdata");
    let tmp = target.join(format!(".{archive}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.unpack(&tmp)
        .unwrap_or_else(|e| panic!("{}: cannot extract: {e}", source.display()));
    // Another process may have won the race; then ours is redundant.
    if std::fs::rename(&tmp, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dest
}

/// The CIFAR-10 ImageFolder (`train/<class>/<NNNN>.jpg`).
pub fn cifar10_train() -> PathBuf {
    extracted("cifar10-train-jpg").join("train")
}

/// The flowers root (`images/<split>/<class>/`, `masks/<split>/<class>/`).
pub fn flowers() -> PathBuf {
    extracted("flowers17-seg").join("flowers17_seg")
}

/// The photos root (`images/`, `inpainting/`).
pub fn photos() -> PathBuf {
    extracted("photos").join("photos")
}
