//! Reading and writing diffusers `UNet2DModel` directories:
//! `config.json` + `diffusion_pytorch_model.safetensors`.
//!
//! Weights may be f32, f16 or bf16 on disk and are f32 in memory. Attention weights saved by
//! old diffusers versions (`query`, `key`, `value`, `proj_attn`) are renamed on load as
//! diffusers itself does (`_convert_deprecated_attention_blocks` in `modeling_utils.py`).
//! Every file is written to a temporary name in the same directory and renamed into place,
//! so a reader never sees half a file. The provenance hash of a model is the sha256 of its
//! safetensors bytes.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use super::config::UNet2DConfig;
use super::error::UnetError;
use super::model::UNet2DModel;

/// The config file of a diffusers model directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a diffusers model directory.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";
/// The PyTorch-pickle weights file (not read: it can run code; convert it to safetensors).
const PICKLE_WEIGHTS_FILE: &str = "diffusion_pytorch_model.bin";

/// The dtype weights are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightsDtype {
    #[default]
    F32,
    F16,
    Bf16,
}

impl WeightsDtype {
    fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::Bf16 => DType::BF16,
        }
    }
}

/// sha256 (lowercase hex) of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The provenance hash of the model in `dir`: sha256 (hex) of its safetensors file.
pub fn weights_sha256(dir: &Path) -> Result<String, UnetError> {
    let path = dir.join(WEIGHTS_FILE);
    Ok(sha256_hex(&read_file(&path, "")?))
}

/// Reads and validates `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<UNet2DConfig, UnetError> {
    let path = dir.join(CONFIG_FILE);
    let bytes = read_file(&path, "")?;
    let text = String::from_utf8_lossy(&bytes);
    let config = UNet2DConfig::from_json(&text).map_err(|source| UnetError::ConfigJson {
        path: path.clone(),
        source,
    })?;
    config
        .validate()
        .map_err(|source| UnetError::InvalidConfigFile { path, source })?;
    Ok(config)
}

fn read_file(path: &Path, hint: &str) -> Result<Vec<u8>, UnetError> {
    fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            UnetError::MissingFile {
                path: path.to_path_buf(),
                hint: hint.into(),
            }
        } else {
            UnetError::io(path, source)
        }
    })
}

/// diffusers < 0.14 attention names -> current ones, as `from_pretrained` converts them.
pub(crate) fn modern_attention_name(name: &str) -> String {
    const RENAMES: [(&str, &str); 4] = [
        ("query", "to_q"),
        ("key", "to_k"),
        ("value", "to_v"),
        ("proj_attn", "to_out.0"),
    ];
    let parts: Vec<&str> = name.split('.').collect();
    for i in 2..parts.len() {
        if parts[i - 2] != "attentions" {
            continue;
        }
        if let Some((_, new)) = RENAMES.iter().find(|(old, _)| *old == parts[i]) {
            let mut renamed: Vec<&str> = parts[..i].to_vec();
            renamed.push(new);
            renamed.extend_from_slice(&parts[i + 1..]);
            return renamed.join(".");
        }
    }
    name.to_string()
}

fn decode_weights(
    bytes: &[u8],
    path: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, UnetError> {
    let tensors = candle_core::safetensors::load_buffer(bytes, device).map_err(|e| {
        UnetError::Safetensors {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }
    })?;
    Ok(tensors
        .into_iter()
        .map(|(name, t)| (modern_attention_name(&name), t))
        .collect())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), UnetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&tmp);
        UnetError::io(path, source)
    })
}

impl UNet2DModel {
    /// Loads a diffusers `UNet2DModel` directory (`config.json` +
    /// `diffusion_pytorch_model.safetensors`) onto `device`, weights as f32.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, UnetError> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Self::load`] with the weights converted to `dtype` (f32, f16 or bf16; half
    /// precision is meant for GPUs and for inference only).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Self, UnetError> {
        let config = read_config(dir)?;
        let path = dir.join(WEIGHTS_FILE);
        let hint = if dir.join(PICKLE_WEIGHTS_FILE).exists() {
            "; only the PyTorch pickle `diffusion_pytorch_model.bin` is there: convert it \
             with diffusers `save_pretrained(..., safe_serialization=True)`"
        } else {
            ""
        };
        let bytes = read_file(&path, hint)?;
        let tensors = decode_weights(&bytes, &path, device)?;
        let origin = path.display().to_string();
        let mut model = Self::from_tensors_named(&config, tensors, device, dtype, &origin)?;
        model.weights_sha256 = Some(sha256_hex(&bytes));
        Ok(model)
    }

    /// Writes `dir/config.json` and `dir/diffusion_pytorch_model.safetensors` (creating
    /// `dir`), loadable by diffusers `UNet2DModel.from_pretrained(dir)`. Returns the sha256 of
    /// the weights file, which also becomes [`Self::weights_sha256`].
    pub fn save(&mut self, dir: &Path, dtype: WeightsDtype) -> Result<String, UnetError> {
        fs::create_dir_all(dir).map_err(|e| UnetError::io(dir, e))?;
        let bytes = self.safetensors_bytes(dtype)?;
        let text = self.config().to_json().map_err(|e| UnetError::Save {
            detail: format!("config.json: {e}"),
        })?;
        write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
        write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())?;
        let hash = sha256_hex(&bytes);
        self.weights_sha256 = Some(hash.clone());
        Ok(hash)
    }

    /// The weights as a safetensors file (`{"format": "pt"}` metadata, as diffusers writes).
    pub fn safetensors_bytes(&self, dtype: WeightsDtype) -> Result<Vec<u8>, UnetError> {
        let mut converted = Vec::with_capacity(self.weights().len());
        for (name, tensor) in self.weights() {
            let t = tensor
                .detach()
                .to_dtype(dtype.dtype())?
                .to_device(&Device::Cpu)?;
            converted.push((name.clone(), t));
        }
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::tensor::serialize(converted, Some(metadata)).map_err(|e| UnetError::Save {
            detail: format!("serialising the weights: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::modern_attention_name;

    #[test]
    fn deprecated_attention_names_are_modernised() {
        assert_eq!(
            modern_attention_name("mid_block.attentions.0.query.weight"),
            "mid_block.attentions.0.to_q.weight"
        );
        assert_eq!(
            modern_attention_name("down_blocks.1.attentions.1.proj_attn.bias"),
            "down_blocks.1.attentions.1.to_out.0.bias"
        );
        assert_eq!(
            modern_attention_name("down_blocks.1.attentions.1.to_k.bias"),
            "down_blocks.1.attentions.1.to_k.bias"
        );
        // `key` outside an attention layer is left alone.
        assert_eq!(modern_attention_name("key.weight"), "key.weight");
    }
}
