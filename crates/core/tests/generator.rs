//! The generator seam: batched classifier-free guidance equals guidance over two fields.

mod common;

use candle_core::{Device, Tensor};
use common::max_abs_diff;
use semaug_core::field::from_fn;
use semaug_core::{
    Condition, ConditionedField, Generator, GeneratorInfo, Guided, Result, VelocityField,
};

/// A toy backend: class `c` embeds as the row `[c, 1]`, null as `[-1, 0]`, and
/// `v = sigma * x + e0 - e1 * x` per row.
struct Toy;

impl Generator for Toy {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            name: "toy".into(),
            weights_sha256: None,
            image_size: (1, 2),
        }
    }
    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        Ok(images.clone())
    }
    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        Ok(latents.clone())
    }
    fn embed(&self, conditions: &[Condition]) -> Result<Tensor> {
        let rows: Vec<f64> = conditions
            .iter()
            .flat_map(|c| match c {
                Condition::Class(k) => [*k as f64, 1.0],
                _ => [-1.0, 0.0],
            })
            .collect();
        Ok(Tensor::from_vec(rows, (conditions.len(), 2), &Device::Cpu)?)
    }
    fn velocity(&self, x: &Tensor, sigma: f64, e: &Tensor) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        let e0 = e.narrow(1, 0, 1)?.reshape((b, 1))?;
        let e1 = e.narrow(1, 1, 1)?.reshape((b, 1))?;
        (x * sigma)? + e0.broadcast_as(x.shape())? - x.broadcast_mul(&e1)?
    }
}

#[test]
fn batched_guidance_equals_two_field_guidance() -> Result<()> {
    let x = Tensor::new(&[[0.5f64, -1.0], [2.0, 0.25]], &Device::Cpu)?;
    let conds = [Condition::Class(3), Condition::Class(7)];
    let batched = ConditionedField::new(&Toy, &conds, 2.5)?;
    let cond = ConditionedField::new(&Toy, &conds, 1.0)?;
    let uncond = ConditionedField::new(&Toy, &[Condition::Null, Condition::Null], 1.0)?;
    let reference = Guided::new(uncond, cond, 2.5)?;
    let a = batched.velocity(&x, 0.3)?;
    let b = reference.velocity(&x, 0.3)?;
    assert!(max_abs_diff(&a, &b) < 1e-12);
    // Guidance 1 is the conditional field alone.
    let plain = ConditionedField::new(&Toy, &conds, 1.0)?.velocity(&x, 0.3)?;
    let by_hand = from_fn(|x: &Tensor, s: f64| Toy.velocity(x, s, &Toy.embed(&conds).unwrap()));
    assert!(max_abs_diff(&plain, &by_hand.velocity(&x, 0.3)?) < 1e-12);
    Ok(())
}
