//! A lock file that lets several writer processes share one output folder.
//!
//! Only the steps that read everything other writers produced and publish one combined
//! file (a WebDataset shard, `metadata.jsonl`) take a lock, so that a slower process can
//! never publish an older combination over a newer one. The lock is a file created with
//! `create_new` holding `<host>-<pid>`; a lock left by a killed process is broken by the
//! same rule as a temp file (see `owner`).

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::owner;
use super::WriterError;

/// A lock untouched for this long is abandoned whoever holds it.
const LOCK_MAX_AGE: Duration = Duration::from_secs(30 * 60);

/// A lock file with no readable owner (killed between create and write) after this long.
const UNNAMED_MAX_AGE: Duration = Duration::from_secs(10);

/// Held while alive; the file is removed on drop.
#[derive(Debug)]
pub(crate) struct FileLock {
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock if it is free (or abandoned); `None` when a live writer holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>, WriterError> {
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    file.write_all(owner::current_tag().as_bytes())
                        .map_err(|e| WriterError::io(path, "write a lock file", e))?;
                    return Ok(Some(Self {
                        path: path.to_owned(),
                    }));
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if !is_abandoned(path) {
                        return Ok(None);
                    }
                    let _ = fs::remove_file(path);
                }
                Err(e) => return Err(WriterError::io(path, "create a lock file", e)),
            }
        }
        Ok(None)
    }

    /// Waits for the lock (polling) until it is free or abandoned.
    pub(crate) fn acquire(path: &Path) -> Result<Self, WriterError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            // Past this the lock would have been judged abandoned by age already.
            if start.elapsed() > LOCK_MAX_AGE + Duration::from_secs(60) {
                return Err(WriterError::LockTimeout {
                    path: path.to_owned(),
                    owner: fs::read_to_string(path).unwrap_or_default(),
                    waited_s: start.elapsed().as_secs(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn is_abandoned(path: &Path) -> bool {
    let Ok(modified) = fs::metadata(path).and_then(|m| m.modified()) else {
        // Gone already: free.
        return true;
    };
    let tag = fs::read_to_string(path).unwrap_or_default();
    if owner::parse_tag(&tag).is_none() {
        return owner::is_abandoned("", modified, UNNAMED_MAX_AGE);
    }
    owner::is_abandoned(&tag, modified, LOCK_MAX_AGE)
}
