//! A generator whose networks run on another device (a GPU) while the integration loop,
//! the noise and the images stay on the CPU in f32.
//!
//! Only the tensors that cross the seam move: pixels in, latents out of `encode`;
//! latents in, pixels out of `decode`; the state in and the velocity out of each
//! `velocity` call (a few hundred kilobytes per step). Embeddings stay on the device,
//! where `velocity` reads them. On the CPU every move is a no-op.
//!
//! Half-precision weights (f16 / bf16) do not change what crosses: each pretrained backend
//! takes f32 at the seam, casts to its weights' dtype only at its networks' inputs (after
//! the f32 VAE and VP scalings) and answers in f32, so the state is never rounded to half
//! precision before a step. Outputs are still cast to f32 here (a no-op for those
//! backends), so the CPU loop sees f32 whatever the generator; embeddings keep the
//! weights' dtype.

use candle_core::{DType, Device, Tensor};
use semaug_core::{Condition, Generator, GeneratorInfo, SigmaGrid};

/// `inner` (loaded on `device`) seen from the CPU.
pub struct OnDevice<'a> {
    inner: &'a dyn Generator,
    device: Device,
}

impl<'a> OnDevice<'a> {
    pub fn new(inner: &'a dyn Generator, device: Device) -> Self {
        Self { inner, device }
    }
}

impl Generator for OnDevice<'_> {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }

    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        to_cpu_f32(&self.inner.encode(&images.to_device(&self.device)?)?)
    }

    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        to_cpu_f32(&self.inner.decode(&latents.to_device(&self.device)?)?)
    }

    fn embed(&self, conditions: &[Condition]) -> semaug_core::Result<Tensor> {
        self.inner.embed(conditions)
    }

    fn velocity(&self, x: &Tensor, sigma: f64, embedding: &Tensor) -> candle_core::Result<Tensor> {
        to_cpu_f32(
            &self
                .inner
                .velocity(&x.to_device(&self.device)?, sigma, embedding)?,
        )
    }

    fn sigma_grid(&self, steps: usize) -> semaug_core::Result<SigmaGrid> {
        self.inner.sigma_grid(steps)
    }
}

/// `t` as f32 on the CPU (moved, then cast: a half tensor would cross at half the bytes).
fn to_cpu_f32(t: &Tensor) -> candle_core::Result<Tensor> {
    t.to_device(&Device::Cpu)?.to_dtype(DType::F32)
}

/// `cpu`, `cuda` or `cuda:N` as a device; CUDA needs a build with the `cuda` feature.
pub fn parse_device(spec: &str) -> Result<Device, String> {
    let ordinal = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => spec
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("--device {spec}: expected cpu, cuda or cuda:N"))?,
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(format!(
            "--device {spec}: this semaug was built without CUDA; rebuild with \
             `cargo build --release --features cuda` on a machine with the CUDA toolkit"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| format!("--device {spec}: {e}"))
}
