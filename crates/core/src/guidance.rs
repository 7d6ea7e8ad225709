//! Classifier-free guidance as a field adapter: `v = v_u + g (v_c - v_u)`.
//!
//! Guidance is just another [`VelocityField`], so every solver and operator gets it
//! for free. Scale 1 is the conditional field alone and scale 0 the unconditional one;
//! neither evaluates the field it does not need.

use crate::error::{Error, Result};
use crate::field::VelocityField;
use candle_core::Tensor;

/// The guided combination of an unconditional and a conditional field.
#[derive(Debug, Clone)]
pub struct Guided<U, C> {
    unconditional: U,
    conditional: C,
    scale: f64,
}

impl<U: VelocityField, C: VelocityField> Guided<U, C> {
    /// `scale` (the guidance weight `g`) must be finite; values above 1 extrapolate
    /// away from the unconditional field.
    pub fn new(unconditional: U, conditional: C, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(Error::InvalidParameter {
                name: "guidance scale",
                value: scale,
                expected: "a finite number (1 = conditional only, 0 = unconditional only)",
            });
        }
        Ok(Self {
            unconditional,
            conditional,
            scale,
        })
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl<U: VelocityField, C: VelocityField> VelocityField for Guided<U, C> {
    fn velocity(&self, x: &Tensor, sigma: f64) -> candle_core::Result<Tensor> {
        if self.scale == 1.0 {
            return self.conditional.velocity(x, sigma);
        }
        let unconditional = self.unconditional.velocity(x, sigma)?;
        if self.scale == 0.0 {
            return Ok(unconditional);
        }
        let conditional = self.conditional.velocity(x, sigma)?;
        // (1 - g) v_u + g v_c, the same sum written with one difference fewer.
        unconditional.affine(1.0 - self.scale, 0.0)? + conditional.affine(self.scale, 0.0)?
    }
}
