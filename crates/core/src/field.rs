//! The one contract every sampler sees: a velocity field `v(x, sigma)`.
//!
//! Models, guidance and test flows all implement [`VelocityField`]; the solvers never
//! know which one they drive (k-diffusion's `model(x, sigma)`, flow_matching's
//! `ModelWrapper`). Sigma follows [`crate::time`]; one sigma serves the whole batch.
//! Fields with closed-form flows for testing live in [`analytic`].

pub mod analytic;

use candle_core::{Result, Tensor};
use std::rc::Rc;
use std::sync::Arc;

/// A velocity field `dx/dsigma = v(x, sigma)` in the convention of [`crate::time`].
pub trait VelocityField {
    /// The velocity at `x` (any shape, typically NCHW) and noise level `sigma`;
    /// the result has the shape of `x`.
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor>;
}

impl<T: VelocityField + ?Sized> VelocityField for &T {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        (**self).velocity(x, sigma)
    }
}

impl<T: VelocityField + ?Sized> VelocityField for Box<T> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        (**self).velocity(x, sigma)
    }
}

impl<T: VelocityField + ?Sized> VelocityField for Arc<T> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        (**self).velocity(x, sigma)
    }
}

impl<T: VelocityField + ?Sized> VelocityField for Rc<T> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        (**self).velocity(x, sigma)
    }
}

/// A closure as a velocity field; build it with [`from_fn`].
///
/// A wrapper rather than a blanket impl for closures, so that references and boxes of
/// any field are fields too without the two impls overlapping.
#[derive(Debug, Clone, Copy)]
pub struct FromFn<F>(F);

/// Wraps `f(x, sigma) -> velocity` as a [`VelocityField`].
pub fn from_fn<F>(f: F) -> FromFn<F>
where
    F: Fn(&Tensor, f64) -> Result<Tensor>,
{
    FromFn(f)
}

impl<F> VelocityField for FromFn<F>
where
    F: Fn(&Tensor, f64) -> Result<Tensor>,
{
    fn velocity(&self, x: &Tensor, sigma: f64) -> Result<Tensor> {
        (self.0)(x, sigma)
    }
}
