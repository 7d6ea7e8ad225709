//! The DDIM loops of the SD pipelines, composed from the UNet and the DDIM schedule exactly
//! as diffusers runs them: classifier-free guidance, txt2img / img2img / legacy inpainting
//! (one denoising loop with an optional known-region blend) and DDIM inversion.
//!
//! Ports the denoising loops of `StableDiffusionPipeline`, `StableDiffusionImg2ImgPipeline`
//! and `StableDiffusionInpaintPipeline` (4-channel UNet branch) from diffusers
//! `pipelines/stable_diffusion/`, with `DDIMInverseScheduler` for inversion. These are the
//! parity reference for the SD backend; the project's flow-convention samplers reach the
//! same trajectories through the adapter.

use candle_core::Tensor;

use super::ddim::DdimSchedule;
use super::error::SdError;
use super::unet_cond::UNet2DConditionModel;

/// Text conditioning of a denoising loop.
#[derive(Debug, Clone, Copy)]
pub struct Guidance<'a> {
    /// `[1, L, D]` embeddings of the prompt.
    pub cond: &'a Tensor,
    /// `[1, L, D]` embeddings of the negative prompt (`""`); used when `scale != 1`.
    pub uncond: Option<&'a Tensor>,
    /// Classifier-free guidance scale (1 = conditional prediction only).
    pub scale: f64,
}

/// The region kept from a known image during legacy inpainting.
#[derive(Debug, Clone, Copy)]
pub struct KnownRegion<'a> {
    /// `[1, 1, h, w]` latent-resolution mask: 1 = repaint, 0 = keep.
    pub mask: &'a Tensor,
    /// The clean latent of the known image.
    pub clean: &'a Tensor,
    /// The noise that re-noises `clean` to each next timestep (the same tensor every step).
    pub noise: &'a Tensor,
}

/// Every latent of a denoising loop.
#[derive(Debug, Clone, Default)]
pub struct DdimTrajectory {
    /// `[0]` the start, `[i + 1]` after step `i` (and its blend, when inpainting).
    pub latents: Vec<Tensor>,
    /// The guided model output of each step.
    pub noise_preds: Vec<Tensor>,
    /// The scheduler's clean-sample estimate of each step.
    pub pred_original_samples: Vec<Tensor>,
    /// The step output before the known-region blend (inpainting only).
    pub latents_before_blend: Vec<Tensor>,
}

impl DdimTrajectory {
    /// The final latent.
    pub fn last(&self) -> Option<&Tensor> {
        self.latents.last()
    }
}

/// The (guided) model output at `x`, `t`: `e_u + g (e_c - e_u)` with `[uncond, cond]`
/// batched through one UNet call, or `unet(x, t, cond)` when `g == 1` or there is no
/// negative prompt.
pub fn guided_prediction(
    unet: &UNet2DConditionModel,
    x: &Tensor,
    t: i64,
    guidance: &Guidance,
) -> Result<Tensor, SdError> {
    let timestep = Tensor::new(t, x.device())?;
    match guidance.uncond {
        Some(uncond) if guidance.scale != 1.0 => {
            let b = x.dim(0)?;
            let batch = Tensor::cat(&[x, x], 0)?;
            let uncond = uncond.broadcast_as(guidance.cond.shape())?;
            let context = Tensor::cat(&[&uncond, guidance.cond], 0)?;
            let out = unet.forward(&batch, &timestep, &context)?;
            let (e_u, e_c) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
            Ok((&e_u + ((e_c - &e_u)? * guidance.scale)?)?)
        }
        _ => unet.forward(x, &timestep, guidance.cond),
    }
}

/// DDIM (eta = 0) from `start` over `timesteps` (descending, a suffix of the
/// `num_inference_steps` schedule). With `known`, after every step the kept region is
/// replaced by `add_noise(clean, noise, next t)` (by `clean` after the last step), as
/// diffusers' legacy inpainting does.
pub fn ddim_denoise(
    unet: &UNet2DConditionModel,
    schedule: &DdimSchedule,
    start: &Tensor,
    timesteps: &[i64],
    num_inference_steps: usize,
    guidance: &Guidance,
    known: Option<&KnownRegion>,
) -> Result<DdimTrajectory, SdError> {
    let mut trajectory = DdimTrajectory {
        latents: vec![start.clone()],
        ..Default::default()
    };
    let mut x = start.clone();
    for (i, &t) in timesteps.iter().enumerate() {
        let eps = guided_prediction(unet, &x, t, guidance)?;
        let step = schedule.step(&eps, t, &x, num_inference_steps)?;
        x = step.prev_sample;
        if let Some(k) = known {
            trajectory.latents_before_blend.push(x.clone());
            let known_now = match timesteps.get(i + 1) {
                Some(&next) => schedule.add_noise(k.clean, k.noise, next)?,
                None => k.clean.clone(),
            };
            x = blend(&x, &known_now, k.mask)?;
        }
        trajectory.noise_preds.push(eps);
        trajectory
            .pred_original_samples
            .push(step.pred_original_sample);
        trajectory.latents.push(x.clone());
    }
    Ok(trajectory)
}

/// DDIM inversion (`DDIMInverseScheduler`) from the clean latent `start` over `timesteps`
/// (ascending: 1, 101, ..., 901 for 10 steps): the latents `[start, after step 0, ...]`.
pub fn ddim_invert(
    unet: &UNet2DConditionModel,
    schedule: &DdimSchedule,
    start: &Tensor,
    timesteps: &[i64],
    num_inference_steps: usize,
    guidance: &Guidance,
) -> Result<Vec<Tensor>, SdError> {
    let mut latents = vec![start.clone()];
    let mut x = start.clone();
    for &t in timesteps {
        let eps = guided_prediction(unet, &x, t, guidance)?;
        x = schedule
            .inverse_step(&eps, t, &x, num_inference_steps)?
            .prev_sample;
        latents.push(x.clone());
    }
    Ok(latents)
}

/// The start latent of an inpainting run (diffusers `prepare_latents`): pure `noise` at
/// strength 1, else `clean` noised to the first timestep.
pub fn inpaint_start(
    schedule: &DdimSchedule,
    clean: &Tensor,
    noise: &Tensor,
    first_timestep: i64,
    strength: f64,
) -> Result<Tensor, SdError> {
    if strength >= 1.0 {
        Ok(noise.clone())
    } else {
        schedule.add_noise(clean, noise, first_timestep)
    }
}

/// `(1 - mask) * known + mask * x`: keep `known` where the mask is 0.
fn blend(x: &Tensor, known: &Tensor, mask: &Tensor) -> Result<Tensor, SdError> {
    let keep = (1.0 - mask)?;
    Ok((known.broadcast_mul(&keep)? + x.broadcast_mul(mask)?)?)
}
