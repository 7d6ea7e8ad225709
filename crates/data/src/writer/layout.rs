//! Where every file of an output folder lives (one place, so writers and readers agree).
//!
//! ```text
//! OUT/metadata.jsonl                  one record per line, sorted by file_name
//! OUT/classes.json                    class names in label order
//! OUT/<class>/<name>.png              ImageFolder images
//! OUT/00000.tar, OUT/00001.tar, ...   WebDataset shards (%05d.tar)
//! OUT/.semaug/run.json                the run fingerprint
//! OUT/.semaug/records/<key>.json      one finished output's record
//! OUT/.semaug/staging/<shard>/<key>.png  WebDataset images waiting for their shard
//! OUT/.semaug/locks/                  lock files held while combining outputs
//! ```

use std::path::{Path, PathBuf};

pub const METADATA_FILE: &str = "metadata.jsonl";
pub const CLASSES_FILE: &str = "classes.json";
/// The writer's own state, hidden from dataset loaders.
pub const STATE_DIR: &str = ".semaug";

/// Paths inside one output folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    out: PathBuf,
}

impl Layout {
    pub(crate) fn new(out: &Path) -> Self {
        Self {
            out: out.to_owned(),
        }
    }

    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.out.join(STATE_DIR)
    }

    pub(crate) fn run_json(&self) -> PathBuf {
        self.state().join("run.json")
    }

    pub(crate) fn records(&self) -> PathBuf {
        self.state().join("records")
    }

    pub(crate) fn record(&self, key: &str) -> PathBuf {
        self.records().join(format!("{key}.json"))
    }

    pub(crate) fn staging(&self) -> PathBuf {
        self.state().join("staging")
    }

    pub(crate) fn staging_shard(&self, shard: u64) -> PathBuf {
        self.staging().join(shard_stem(shard))
    }

    pub(crate) fn locks(&self) -> PathBuf {
        self.state().join("locks")
    }

    pub(crate) fn metadata(&self) -> PathBuf {
        self.out.join(METADATA_FILE)
    }

    pub(crate) fn classes(&self) -> PathBuf {
        self.out.join(CLASSES_FILE)
    }

    pub(crate) fn shard_tar(&self, shard: u64) -> PathBuf {
        self.out.join(format!("{}.tar", shard_stem(shard)))
    }
}

/// `00042`: five digits, more only past 99999 shards.
pub(crate) fn shard_stem(shard: u64) -> String {
    format!("{shard:05}")
}

/// The shard number of a `%05d.tar` / `%05d` name.
pub(crate) fn parse_shard_stem(stem: &str) -> Option<u64> {
    let digits = stem.len() >= 5 && stem.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| stem.parse().ok()).flatten()
}
