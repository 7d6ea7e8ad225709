//! Shared test helpers: a tiny deterministic generator and tensor comparisons.
#![allow(dead_code)]

use candle_core::{Device, Result, Tensor};

/// 64-bit LCG (Knuth's MMIX constants); uniform values in [-1, 1).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn tensor(&mut self, dims: &[usize]) -> Result<Tensor> {
        let data: Vec<f32> = (0..dims.iter().product()).map(|_| self.uniform()).collect();
        Tensor::from_vec(data, dims, &Device::Cpu)
    }
}

/// Largest |a - b| divided by the largest |b| (at least 1e-3, so all-zero references do
/// not divide by zero).
pub fn relative_error(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok(diff / scale.max(1e-3))
}

/// Asserts `relative_error(a, b) <= tol`, naming `what` on failure.
pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) -> Result<()> {
    let err = relative_error(a, b)?;
    assert!(err <= tol, "{what}: relative error {err} > {tol}");
    Ok(())
}
