//! Classifier-free guidance: the arithmetic, and which fields each scale evaluates.

mod common;

use candle_core::Tensor;
use common::{counting, image, max_abs_diff};
use semaug_core::field::analytic::{Affine, Constant};
use semaug_core::field::{from_fn, VelocityField};
use semaug_core::{Error, Guided, Result};

fn unconditional() -> Affine {
    Affine {
        scale: -0.5,
        offset: 0.2,
    }
}

fn conditional() -> Affine {
    Affine {
        scale: 1.5,
        offset: -0.1,
    }
}

#[test]
fn guidance_extrapolates_from_unconditional_towards_conditional() -> Result<()> {
    let x = image();
    let v_u = unconditional().velocity(&x, 0.3)?;
    let v_c = conditional().velocity(&x, 0.3)?;
    for scale in [-1.0, 0.5, 2.0, 7.5] {
        let guided = Guided::new(unconditional(), conditional(), scale)?;
        let expected = (&v_u + ((&v_c - &v_u)? * scale)?)?;
        assert!(max_abs_diff(&guided.velocity(&x, 0.3)?, &expected) < 1e-14);
    }
    // Constant fields: 1 + 3 (5 - 1) = 13 everywhere.
    let cpu = candle_core::Device::Cpu;
    let guided = Guided::new(
        Constant::new(Tensor::new(1.0f64, &cpu)?),
        Constant::new(Tensor::new(5.0f64, &cpu)?),
        3.0,
    )?;
    let thirteen = image().ones_like()?.affine(13.0, 0.0)?;
    assert_eq!(
        max_abs_diff(&guided.velocity(&image(), 0.9)?, &thirteen),
        0.0
    );
    Ok(())
}

#[test]
fn scales_one_and_zero_evaluate_a_single_field() -> Result<()> {
    let x = image();
    let broken = from_fn(|_: &Tensor, _: f64| candle_core::bail!("must not be evaluated"));

    let (conditional_only, calls) = counting(conditional());
    let guided = Guided::new(&broken, &conditional_only, 1.0)?;
    let v = guided.velocity(&x, 0.5)?;
    assert_eq!(max_abs_diff(&v, &conditional().velocity(&x, 0.5)?), 0.0);
    assert_eq!(calls.get(), 1);

    let guided = Guided::new(unconditional(), &broken, 0.0)?;
    let v = guided.velocity(&x, 0.5)?;
    assert_eq!(max_abs_diff(&v, &unconditional().velocity(&x, 0.5)?), 0.0);

    let (both, calls) = counting(conditional());
    Guided::new(&both, &both, 4.0)?.velocity(&x, 0.5)?;
    assert_eq!(calls.get(), 2);
    Ok(())
}

#[test]
fn guidance_scale_must_be_finite() {
    let error = Guided::new(unconditional(), conditional(), f64::NAN).expect_err("NaN scale");
    assert!(matches!(error, Error::InvalidParameter { .. }));
    assert!(Guided::new(unconditional(), conditional(), f64::INFINITY).is_err());
}
