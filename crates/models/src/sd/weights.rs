//! Reading a diffusers / transformers component folder: `config.json` and one safetensors file,
//! weights converted to the model's dtype (f32 unless asked otherwise) as they are taken,
//! handed to the model through a [`VarBuilder`] that records every name taken and the first
//! problem met, so loading ends in a typed error naming the file and the weight (missing,
//! wrong shape, or left over).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde::de::DeserializeOwned;

use super::error::SdError;

/// Reads `path` whole; a missing file becomes [`SdError::MissingFile`] saying `what` it is.
pub(crate) fn read_bytes(path: &Path, what: &str) -> Result<Vec<u8>, SdError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SdError::MissingFile {
                path: path.to_path_buf(),
                what: what.to_string(),
            }
        } else {
            SdError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Parses the JSON config at `path` into `T` (unknown keys are ignored, as diffusers does).
pub(crate) fn read_json<T: DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, SdError> {
    let bytes = read_bytes(path, &format!("the {what} config"))?;
    serde_json::from_slice(&bytes).map_err(|source| SdError::ConfigJson {
        path: path.to_path_buf(),
        what,
        source,
    })
}

/// The first of `names` that exists in `dir` (plain file first, then e.g. an fp16 variant).
pub(crate) fn first_existing(dir: &Path, names: &[&str]) -> PathBuf {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join(names.first().copied().unwrap_or_default()))
}

/// The tensors of a safetensors file, on the CPU in the file's float dtype (f32, f16 or
/// bf16; anything else is an error). [`build_checked`] converts each to the model's dtype
/// and then moves it to the model's device, so a GPU never holds a second copy.
pub(crate) fn read_safetensors(
    path: &Path,
    what: &str,
) -> Result<HashMap<String, Tensor>, SdError> {
    let bytes = read_bytes(path, what)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
        SdError::Safetensors {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    let origin = path.display().to_string();
    let mut out = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(SdError::WeightDtype {
                origin,
                name,
                dtype: format!("{:?}", tensor.dtype()),
            });
        }
        out.insert(name, tensor);
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Problem {
    Missing {
        name: String,
        shape: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

#[derive(Debug, Default)]
struct Record {
    taken: BTreeSet<String>,
    problem: Option<Problem>,
}

/// Hands out checkpoint tensors by name and remembers what was asked for.
struct RecordingSource {
    tensors: HashMap<String, Tensor>,
    record: Arc<Mutex<Record>>,
}

impl RecordingSource {
    fn fail(&self, problem: Problem) -> candle_core::Error {
        let message = format!("{problem:?}");
        if let Ok(mut record) = self.record.lock() {
            record.problem.get_or_insert(problem);
        }
        candle_core::Error::Msg(message)
    }
}

impl SimpleBackend for RecordingSource {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let Some(tensor) = self.tensors.get(name) else {
            return Err(self.fail(Problem::Missing {
                name: name.into(),
                shape: shape.dims().to_vec(),
            }));
        };
        if tensor.shape() != &shape {
            return Err(self.fail(Problem::Shape {
                name: name.into(),
                expected: shape.dims().to_vec(),
                found: tensor.dims().to_vec(),
            }));
        }
        if let Ok(mut record) = self.record.lock() {
            record.taken.insert(name.to_string());
        }
        tensor.to_dtype(dtype)?.to_device(dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("no tensor named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// Builds a model from checkpoint tensors and checks that every tensor was used exactly as
/// the config asks: a missing weight, a wrong shape or a weight left over is a typed error
/// naming `origin` (the file). Names in `ignored` (buffers such as `position_ids`) may be
/// left over. Every weight is converted to `dtype` (a sub-builder may ask for another).
pub(crate) fn build_checked<M>(
    tensors: HashMap<String, Tensor>,
    device: &Device,
    dtype: DType,
    origin: &str,
    ignored: &[&str],
    build: impl FnOnce(VarBuilder<'static>) -> candle_core::Result<M>,
) -> Result<M, SdError> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    let record = Arc::new(Mutex::new(Record::default()));
    let source = RecordingSource {
        tensors,
        record: record.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(source), dtype, device.clone());
    let built = build(vb);
    let record = record
        .lock()
        .map_err(|_| candle_core::Error::Msg("weight record lock poisoned".into()))?;
    if let Some(problem) = record.problem.clone() {
        return Err(match problem {
            Problem::Missing { name, shape } => SdError::MissingWeight {
                origin: origin.into(),
                name,
                shape,
            },
            Problem::Shape {
                name,
                expected,
                found,
            } => SdError::WeightShape {
                origin: origin.into(),
                name,
                expected,
                found,
            },
        });
    }
    let model = built?;
    let mut unused: Vec<String> = names
        .into_iter()
        .filter(|n| !record.taken.contains(n) && !ignored.iter().any(|i| n.ends_with(i)))
        .collect();
    if !unused.is_empty() {
        unused.sort();
        return Err(SdError::UnexpectedWeights {
            origin: origin.into(),
            names: unused,
        });
    }
    Ok(model)
}
