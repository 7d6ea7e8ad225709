//! The one loop: inversion round trips, splicing from a strength, the per-step hook,
//! and errors that say where they happened.

mod common;

use candle_core::{Device, Tensor};
use common::{image, max_abs_diff, observed_order, spread};
use semaug_core::field::analytic::{ExactFlow, Gaussian, TwoGaussians};
use semaug_core::field::from_fn;
use semaug_core::time::noised;
use semaug_core::{integrate, Error, Result, SigmaGrid, Solver, Strength, Tolerance};

const FIXED: [Solver; 4] = [Solver::Euler, Solver::Heun, Solver::Midpoint, Solver::Rk4];

/// Max error of inverting `x0` to noise and generating back over `steps` steps.
fn round_trip_error(solver: Solver, steps: usize) -> Result<f64> {
    let field = TwoGaussians::new(1.0, 0.5)?;
    let x0 = spread(-1.8, 1.8, 37);
    let grid = SigmaGrid::uniform(steps)?;
    let noise = integrate(&field, &x0, &grid.reversed(), &solver, None)?.x;
    let back = integrate(&field, &noise, &grid, &solver, None)?.x;
    Ok(max_abs_diff(&back, &x0))
}

#[test]
fn invert_then_generate_converges_at_least_at_each_order() -> Result<()> {
    for solver in FIXED {
        let errors: Vec<f64> = [8, 16, 32]
            .into_iter()
            .map(|steps| round_trip_error(solver, steps))
            .collect::<Result<_>>()?;
        for pair in errors.windows(2) {
            let order = observed_order(pair[0], pair[1]);
            eprintln!("round trip {solver}: errors {errors:?}, order {order:.3}");
            // Going there and back cancels even-order error terms, so rules of even
            // order may return faster than their order; never slower.
            assert!(
                order > solver.order() as f64 - 0.2,
                "{solver}: order {order}"
            );
        }
    }
    let dopri = Solver::Dopri5(Tolerance::new(1e-8, 1e-8)?);
    let error = round_trip_error(dopri, 4)?;
    eprintln!("round trip dopri5 (tol 1e-8, 4 grid steps): error {error:.3e}");
    assert!(error < 1e-6, "dopri5 round trip: {error}");
    Ok(())
}

fn gaussian() -> Result<Gaussian> {
    Gaussian::new(image().affine(0.6, 0.1)?, 0.3)
}

#[test]
fn inversion_on_the_reversed_grid_follows_the_exact_flow() -> Result<()> {
    let field = gaussian()?;
    let x0 = image().affine(-0.7, 0.2)?;
    let grid = SigmaGrid::uniform(32)?.reversed();
    let got = integrate(&field, &x0, &grid, &Solver::Rk4, None)?.x;
    let error = max_abs_diff(&got, &field.transport(&x0, 0.0, 1.0)?);
    eprintln!("inversion rk4 32 steps: {error:.3e}");
    assert!(error < 1e-5, "{error}");
    Ok(())
}

#[test]
fn splicing_starts_at_the_strength_and_ends_at_data() -> Result<()> {
    let field = gaussian()?;
    let x0 = image();
    let eps = image().sqr()?.affine(-2.0, 0.9)?;
    let strength = Strength::new(0.45)?;
    let start = noised(&x0, &eps, strength.sigma())?;
    let grid = SigmaGrid::uniform(40)?.truncated(strength)?;
    assert_eq!((grid.first(), grid.steps()), (0.45, 18));
    let run = integrate(&field, &start, &grid, &Solver::Heun, None)?;
    let exact = field.transport(&start, strength.sigma(), 0.0)?;
    let error = max_abs_diff(&run.x, &exact);
    eprintln!("splice heun 18 steps from 0.45: {error:.3e}");
    assert!(error < 1e-3, "{error}");
    assert_eq!(run.steps, grid.steps());
    Ok(())
}

#[test]
fn a_zero_step_grid_is_the_identity() -> Result<()> {
    let x = image();
    let grid = SigmaGrid::uniform(10)?.truncated(Strength::NONE)?;
    let run = integrate(&gaussian()?, &x, &grid, &Solver::Rk4, None)?;
    assert_eq!(max_abs_diff(&run.x, &x), 0.0);
    assert_eq!((run.nfe, run.steps), (0, 0));
    Ok(())
}

#[test]
fn the_hook_runs_once_per_grid_step_with_the_sigma_reached() -> Result<()> {
    let grid = SigmaGrid::shifted(5, 3.0)?;
    let solvers = [Solver::Euler, Solver::Dopri5(Tolerance::default())];
    for solver in solvers {
        for grid in [grid.clone(), grid.reversed()] {
            let mut calls = Vec::new();
            let mut record = |step: usize, sigma: f64, x: &Tensor| {
                calls.push((step, sigma));
                Ok(x.clone())
            };
            integrate(&gaussian()?, &image(), &grid, &solver, Some(&mut record))?;
            let expected: Vec<(usize, f64)> = grid.sigmas()[1..]
                .iter()
                .enumerate()
                .map(|(i, &s)| (i, s))
                .collect();
            assert_eq!(calls, expected, "{solver}");
        }
    }
    Ok(())
}

/// Inpainting: the hook re-imposes the known region's exact trajectory after every
/// step, so the known region ends exactly on its data and the rest follows the flow.
#[test]
fn an_inpainting_hook_reimposes_the_known_region() -> Result<()> {
    let field = gaussian()?;
    let known_x0 = image().affine(0.5, 0.0)?;
    let eps = image().affine(-1.0, 0.3)?;
    // The mask keeps channel 0 (1 = generate) and re-imposes channel 1 (0 = known).
    let mask = Tensor::from_vec(vec![1.0f64, 0.0], (1, 2, 1, 1), &Device::Cpu)?
        .broadcast_as((1, 2, 3, 3))?
        .contiguous()?;
    let keep = mask.affine(-1.0, 1.0)?;
    let mut reimpose = |_step: usize, sigma: f64, x: &Tensor| {
        let known = noised(&known_x0, &eps, sigma)?;
        (x * &mask)? + (known * &keep)?
    };
    let grid = SigmaGrid::uniform(30)?;
    let run = integrate(&field, &eps, &grid, &Solver::Rk4, Some(&mut reimpose))?;
    let known_region = (&run.x * &keep)?;
    assert_eq!(max_abs_diff(&known_region, &(&known_x0 * &keep)?), 0.0);
    // The field acts elementwise, so the generated region is the exact flow's.
    let generated = (&run.x * &mask)?;
    let exact = (field.transport(&eps, 1.0, 0.0)? * &mask)?;
    assert!(max_abs_diff(&generated, &exact) < 1e-6);
    Ok(())
}

#[test]
fn failures_name_the_step_they_happened_in() -> Result<()> {
    let grid = SigmaGrid::uniform(4)?;
    let fails_late = from_fn(|x: &Tensor, sigma: f64| {
        if sigma < 0.4 {
            candle_core::bail!("model failed at sigma {sigma}")
        }
        Ok(x.clone())
    });
    let error = integrate(&fails_late, &image(), &grid, &Solver::Euler, None)
        .expect_err("the field fails at sigma 0.25");
    assert!(
        matches!(
            error,
            Error::Step {
                step: 3,
                from: 0.25,
                to: 0.0,
                ..
            }
        ),
        "{error:?}"
    );

    let mut refuses = |step: usize, _: f64, x: &Tensor| {
        if step == 1 {
            candle_core::bail!("mask shape mismatch")
        }
        Ok(x.clone())
    };
    let error = integrate(
        &gaussian()?,
        &image(),
        &grid,
        &Solver::Heun,
        Some(&mut refuses),
    )
    .expect_err("the hook fails after step 1");
    assert!(
        matches!(
            error,
            Error::Hook {
                step: 1,
                sigma: 0.5,
                ..
            }
        ),
        "{error:?}"
    );
    Ok(())
}
