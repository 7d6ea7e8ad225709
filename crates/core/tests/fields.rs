//! The analytic fields are what they claim: exact flows (the velocity is the
//! derivative of the closed-form transport) and exact marginal velocities of their
//! data (the residual `eps - x0 - v(x_sigma)` is orthogonal to every function of
//! `x_sigma`, the defining property of a conditional expectation).

mod common;

use candle_core::{Device, Tensor};
use common::{image, max_abs_diff, spread, values};
use semaug_core::field::analytic::{Affine, Constant, ExactFlow, Gaussian, TwoGaussians};
use semaug_core::field::{from_fn, VelocityField};
use semaug_core::seeds::{label, Stream};
use semaug_core::time::{noised, velocity_target};
use semaug_core::{integrate, Result, SigmaGrid, Solver};

fn exact_flows() -> Result<Vec<(&'static str, Box<dyn ExactFlow>)>> {
    let cpu = Device::Cpu;
    Ok(vec![
        (
            "constant",
            Box::new(Constant::new(Tensor::new(0.3f64, &cpu)?)),
        ),
        (
            "affine",
            Box::new(Affine {
                scale: -1.7,
                offset: 0.4,
            }),
        ),
        (
            "affine a=0",
            Box::new(Affine {
                scale: 0.0,
                offset: 0.4,
            }),
        ),
        (
            "gaussian",
            Box::new(Gaussian::new(image().affine(0.5, 0.1)?, 0.2)?),
        ),
    ])
}

#[test]
fn velocity_is_the_derivative_of_the_transport() -> Result<()> {
    let x = image();
    let h = 1e-5;
    for (name, flow) in exact_flows()? {
        for sigma in [0.05, 0.5, 0.95] {
            let ahead = flow.transport(&x, sigma, sigma + h)?;
            let behind = flow.transport(&x, sigma, sigma - h)?;
            let derivative = ((ahead - behind)? / (2.0 * h))?;
            let error = max_abs_diff(&derivative, &flow.velocity(&x, sigma)?);
            assert!(error < 1e-7, "{name} at sigma {sigma}: {error}");
        }
    }
    Ok(())
}

#[test]
fn transports_compose_and_start_where_they_are() -> Result<()> {
    let x = image();
    for (name, flow) in exact_flows()? {
        assert!(
            max_abs_diff(&flow.transport(&x, 0.4, 0.4)?, &x) < 1e-15,
            "{name}"
        );
        let two_legs = flow.transport(&flow.transport(&x, 1.0, 0.3)?, 0.3, 0.0)?;
        let one_leg = flow.transport(&x, 1.0, 0.0)?;
        assert!(max_abs_diff(&two_legs, &one_leg) < 1e-12, "{name}");
    }
    Ok(())
}

/// Draws `n` data values from the mixture of N(+-separation, std^2) (a single
/// Gaussian at `separation` when `mixture` is false) and `n` noise values.
fn data_and_noise(n: usize, separation: f64, std: f64, mixture: bool) -> Result<(Tensor, Tensor)> {
    let mut rng = Stream::new(7, 0, label("fields/data"), 0);
    let x0: Vec<f64> = (0..n)
        .map(|_| {
            let side = if !mixture || rng.bernoulli(0.5) {
                1.0
            } else {
                -1.0
            };
            side * separation + std * rng.normal() as f64
        })
        .collect();
    let eps: Vec<f64> = (0..n).map(|_| rng.normal() as f64).collect();
    let cpu = Device::Cpu;
    Ok((
        Tensor::from_vec(x0, n, &cpu)?,
        Tensor::from_vec(eps, n, &cpu)?,
    ))
}

/// Largest `|E[(eps - x0 - v(x)) g(x)]|` over a few test functions g.
fn worst_orthogonality<F: VelocityField>(
    field: &F,
    x0: &Tensor,
    eps: &Tensor,
    sigma: f64,
) -> Result<f64> {
    let x = noised(x0, eps, sigma)?;
    let residual = (velocity_target(x0, eps)? - field.velocity(&x, sigma)?)?;
    let tests = [
        x.ones_like()?,
        x.clone(),
        x.sqr()?.affine(0.3, 0.0)?,
        x.tanh()?,
    ];
    let mut worst: f64 = 0.0;
    for g in tests {
        let mean = (&residual * g)?.mean_all()?.to_scalar::<f64>()?;
        worst = worst.max(mean.abs());
    }
    Ok(worst)
}

#[test]
fn gaussian_is_the_marginal_velocity_of_its_data() -> Result<()> {
    let (x0, eps) = data_and_noise(40_000, 0.7, 0.3, false)?;
    let field = Gaussian::new(Tensor::new(0.7f64, &Device::Cpu)?, 0.3)?;
    let wrong = Gaussian::new(Tensor::new(0.7f64, &Device::Cpu)?, 0.6)?;
    for sigma in [0.1, 0.5, 0.9] {
        let worst = worst_orthogonality(&field, &x0, &eps, sigma)?;
        assert!(worst < 0.015, "sigma {sigma}: {worst}");
    }
    // The test can tell: the field of other data fails it where the data shows.
    for sigma in [0.1, 0.5] {
        assert!(worst_orthogonality(&wrong, &x0, &eps, sigma)? > 0.05);
    }
    Ok(())
}

#[test]
fn two_gaussians_is_the_marginal_velocity_of_its_data() -> Result<()> {
    let (x0, eps) = data_and_noise(40_000, 1.0, 0.25, true)?;
    let field = TwoGaussians::new(1.0, 0.25)?;
    let wrong = TwoGaussians::new(0.8, 0.25)?;
    for sigma in [0.1, 0.5, 0.9] {
        let worst = worst_orthogonality(&field, &x0, &eps, sigma)?;
        assert!(worst < 0.015, "sigma {sigma}: {worst}");
    }
    for sigma in [0.1, 0.5] {
        assert!(worst_orthogonality(&wrong, &x0, &eps, sigma)? > 0.05);
    }
    Ok(())
}

#[test]
fn generating_with_two_gaussians_lands_on_both_modes() -> Result<()> {
    let (_, noise) = data_and_noise(4096, 1.0, 0.25, true)?;
    let field = TwoGaussians::new(1.0, 0.25)?;
    let x = integrate(&field, &noise, &SigmaGrid::uniform(40)?, &Solver::Rk4, None)?.x;
    let magnitudes = values(&x.abs()?);
    let n = magnitudes.len() as f64;
    let mean = magnitudes.iter().sum::<f64>() / n;
    let std = (magnitudes.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / n).sqrt();
    let positive = values(&x).iter().filter(|&&v| v > 0.0).count() as f64 / n;
    assert!((mean - 1.0).abs() < 0.02, "mean |x| {mean}");
    assert!((std - 0.25).abs() < 0.02, "std |x| {std}");
    assert!((positive - 0.5).abs() < 0.03, "share positive {positive}");
    Ok(())
}

#[test]
fn closures_and_references_are_fields() -> Result<()> {
    let doubling = from_fn(|x: &Tensor, sigma: f64| x.affine(2.0 * sigma, 0.0));
    let x = spread(-1.0, 1.0, 5);
    let by_ref: &dyn VelocityField = &doubling;
    let boxed: Box<dyn VelocityField> = Box::new(&doubling);
    let expected = x.affine(1.0, 0.0)?;
    assert_eq!(max_abs_diff(&by_ref.velocity(&x, 0.5)?, &expected), 0.0);
    assert_eq!(max_abs_diff(&boxed.velocity(&x, 0.5)?, &expected), 0.0);
    Ok(())
}

#[test]
fn analytic_fields_reject_degenerate_parameters() {
    let mean = Tensor::new(0.0f64, &Device::Cpu).expect("scalar");
    assert!(Gaussian::new(mean, 0.0).is_err());
    assert!(TwoGaussians::new(1.0, -0.1).is_err());
    assert!(TwoGaussians::new(f64::NAN, 0.1).is_err());
}
