//! Crash-safe training checkpoints.
//!
//! A checkpoint is a folder `step-<NNNNNNNNNN>/` holding one safetensors file per group
//! (`model`, `ema`, `optimizer`, ...) and a `state.json` written last. The folder is
//! assembled under a temporary name and renamed into place, so a folder with the final
//! name is always complete; a run killed at any moment resumes from the newest complete
//! folder. Only the newest `keep` folders are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Tensors { path: PathBuf, detail: String },
    #[error("{path}: invalid checkpoint state: {detail}")]
    State { path: PathBuf, detail: String },
}

/// A checkpoint found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    pub step: u64,
    pub dir: PathBuf,
    pub state: serde_json::Value,
}

impl Found {
    /// The tensors of one group, by name.
    pub fn tensors(&self, group: &str) -> Result<HashMap<String, Tensor>, CheckpointError> {
        let path = self.dir.join(format!("{group}.safetensors"));
        candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| CheckpointError::Tensors {
            path,
            detail: e.to_string(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Checkpoints {
    pub dir: PathBuf,
    pub keep: usize,
}

impl Checkpoints {
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> Self {
        Self {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    /// Write checkpoint `step` with the given tensor groups and JSON state.
    pub fn save(
        &self,
        step: u64,
        groups: &[(&str, Vec<(String, Tensor)>)],
        state: &serde_json::Value,
    ) -> Result<PathBuf, CheckpointError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CheckpointError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = format!("step-{step:010}");
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(io(&tmp))?;
        for (group, tensors) in groups {
            let path = tmp.join(format!("{group}.safetensors"));
            let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
            candle_core::safetensors::save(&map, &path).map_err(|e| CheckpointError::Tensors {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        }
        let state_path = tmp.join("state.json");
        let text = serde_json::to_vec_pretty(state).map_err(|e| CheckpointError::State {
            path: state_path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&state_path, text).map_err(io(&state_path))?;
        sync_dir(&tmp);
        let dest = self.dir.join(&name);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(&self.dir);
        self.prune()?;
        Ok(dest)
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<Found>, CheckpointError> {
        let Some((step, dir)) = self.complete()?.into_iter().last() else {
            return Ok(None);
        };
        let path = dir.join("state.json");
        let text = std::fs::read(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        let state = serde_json::from_slice(&text).map_err(|e| CheckpointError::State {
            path,
            detail: e.to_string(),
        })?;
        Ok(Some(Found { step, dir, state }))
    }

    /// Complete checkpoint folders, oldest first.
    fn complete(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut found: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step = name.strip_prefix("step-")?.parse().ok()?;
                e.path()
                    .join("state.json")
                    .is_file()
                    .then(|| (step, e.path()))
            })
            .collect();
        found.sort();
        Ok(found)
    }

    fn prune(&self) -> Result<(), CheckpointError> {
        let complete = self.complete()?;
        let excess = complete.len().saturating_sub(self.keep);
        for (_, dir) in complete.into_iter().take(excess) {
            std::fs::remove_dir_all(&dir)
                .map_err(|source| CheckpointError::Io { path: dir, source })?;
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) {
    // Best effort: durability of the rename on power loss; not needed for correctness
    // after a process kill.
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let ck = Checkpoints::new(tmp.path().join("ck"), 2);
        assert!(ck.latest().unwrap().is_none());
        for step in [10u64, 20, 30] {
            let t = Tensor::new(&[step as f32, 1.0], &Device::Cpu).unwrap();
            ck.save(
                step,
                &[("model", vec![("w".into(), t)])],
                &serde_json::json!({"step": step}),
            )
            .unwrap();
        }
        // A half-written folder from a killed run is ignored.
        std::fs::create_dir_all(tmp.path().join("ck/step-0000000040")).unwrap();
        let found = ck.latest().unwrap().unwrap();
        assert_eq!(found.step, 30);
        assert_eq!(found.state["step"], 30);
        let w = found.tensors("model").unwrap()["w"]
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(w, vec![30.0, 1.0]);
        assert!(!tmp.path().join("ck/step-0000000010").exists());
        assert!(tmp.path().join("ck/step-0000000020").exists());
    }
}
