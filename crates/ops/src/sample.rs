//! Generation from pure noise, one row of samples per class: what a generator has
//! learned, as a picture.

use candle_core::{Device, Tensor};
use image::RgbImage;

use semaug_core::seeds::{label, Stream};
use semaug_core::{Condition, Generator};
use semaug_data::image_io::tensor_to_images;

use crate::generative::{splice, Result, Sampling, SpliceConfig};

/// `per_row` samples for each condition; sample `j` of row `i` uses the noise stream
/// `(seed, i, "sample", j)`. Returns the images row by row.
pub fn sample_rows<G: Generator + ?Sized>(
    generator: &G,
    rows: &[Condition],
    per_row: usize,
    sampling: &Sampling,
    seed: u64,
) -> Result<Vec<Vec<RgbImage>>> {
    let (h, w) = generator.info().image_size;
    // The shape of the working space, from a blank image.
    let blank = generator.encode(&Tensor::zeros(
        (1, 3, h, w),
        candle_core::DType::F32,
        &Device::Cpu,
    )?)?;
    let shape: Vec<usize> = blank.dims().to_vec();
    let config = SpliceConfig {
        strength: semaug_core::Strength::FULL,
        sampling: *sampling,
    };
    rows.iter()
        .enumerate()
        .map(|(i, condition)| {
            let noise = (0..per_row)
                .map(|j| {
                    Stream::new(seed, i as u64, label("sample"), j as u64)
                        .normal_tensor(shape.as_slice(), &Device::Cpu)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            let noise = Tensor::cat(&noise, 0)?;
            // Strength 1 ignores the image: this is plain generation from the noise.
            let zeros = noise.zeros_like()?;
            let out = splice(
                generator,
                &zeros,
                &vec![condition.clone(); per_row],
                &config,
                &noise,
            )?;
            Ok(tensor_to_images(&generator.decode(&out)?)?)
        })
        .collect()
}
