//! Step rules against closed-form flows: exactness on constant fields, the global
//! order of accuracy measured by halving the step, Dopri5's error control and cost.

mod common;

use candle_core::{Device, Tensor};
use common::{counting, image, max_abs_diff, observed_order};
use semaug_core::field::analytic::{Affine, Constant, ExactFlow, Gaussian};
use semaug_core::solver::{dopri5, Tolerance};
use semaug_core::{integrate, Error, Result, SigmaGrid, Solver};

const FIXED: [Solver; 4] = [Solver::Euler, Solver::Heun, Solver::Midpoint, Solver::Rk4];

fn all_solvers() -> Vec<Solver> {
    let mut solvers = FIXED.to_vec();
    solvers.push(Solver::Dopri5(Tolerance::default()));
    solvers
}

/// Max error at sigma = 0 of generating from `x` at sigma = 1 in `steps` steps.
fn generation_error<F: ExactFlow>(field: &F, solver: Solver, steps: usize) -> Result<f64> {
    let x = image();
    // Shifted, so that steps of several sizes are exercised.
    let grid = SigmaGrid::shifted(steps, 2.0)?;
    let got = integrate(field, &x, &grid, &solver, None)?.x;
    Ok(max_abs_diff(&got, &field.transport(&x, 1.0, 0.0)?))
}

#[test]
fn every_solver_is_exact_on_a_constant_field() -> Result<()> {
    let field = Constant::new(image().affine(-0.5, 0.2)?);
    let x = image();
    for grid in [
        SigmaGrid::uniform(3)?,
        SigmaGrid::shifted(5, 3.0)?.reversed(),
    ] {
        for solver in all_solvers() {
            let got = integrate(&field, &x, &grid, &solver, None)?.x;
            let exact = field.transport(&x, grid.first(), grid.last())?;
            assert!(max_abs_diff(&got, &exact) < 1e-14, "{solver}");
        }
    }
    Ok(())
}

/// Halving the step divides the global error by at least 2^order; with `exact`, by
/// 2^order and no more.
fn check_orders<F: ExactFlow>(name: &str, field: &F, exact: bool) -> Result<()> {
    for solver in FIXED {
        let errors: Vec<f64> = [16, 32, 64]
            .into_iter()
            .map(|steps| generation_error(field, solver, steps))
            .collect::<Result<_>>()?;
        let expected = solver.order() as f64;
        for pair in errors.windows(2) {
            let order = observed_order(pair[0], pair[1]);
            eprintln!("{name} {solver}: errors {errors:?}, order {order:.3}");
            let upper = if exact { expected + 0.2 } else { f64::INFINITY };
            assert!(
                order > expected - 0.2 && order < upper,
                "{name} {solver}: order {order}, expected {expected}"
            );
        }
    }
    Ok(())
}

#[test]
fn fixed_step_orders_on_a_linear_field() -> Result<()> {
    check_orders(
        "affine",
        &Affine {
            scale: 1.5,
            offset: 0.3,
        },
        true,
    )
}

#[test]
fn fixed_step_orders_on_a_time_dependent_field() -> Result<()> {
    // The Gaussian flow depends on sigma, so a stage evaluated at the wrong sigma
    // shows up as a lost order. Its error terms partly cancel at sigma = 0, so some
    // rules converge faster than their order here: only the lower bound is checked.
    check_orders(
        "gaussian",
        &Gaussian::new(image().affine(0.8, 0.1)?, 0.5)?,
        false,
    )
}

#[test]
fn dopri5_meets_its_tolerance_and_tighter_costs_more() -> Result<()> {
    let field = Gaussian::new(image().affine(0.8, 0.1)?, 0.3)?;
    let x = image();
    let exact = field.transport(&x, 1.0, 0.0)?;
    let grid = SigmaGrid::uniform(1)?;
    let mut previous_nfe = 0;
    for tol in [1e-3, 1e-6, 1e-9] {
        let solver = Solver::Dopri5(Tolerance::new(tol, tol)?);
        let run = integrate(&field, &x, &grid, &solver, None)?;
        let error = max_abs_diff(&run.x, &exact);
        eprintln!(
            "dopri5 tol {tol:e}: error {error:.3e}, nfe {}, accepted {}, rejected {}",
            run.nfe, run.accepted, run.rejected
        );
        // The tolerance bounds each step's local error; the global error stays
        // within a small multiple of it and shrinks with it.
        assert!(error < 50.0 * tol, "tol {tol}: error {error}");
        assert!(run.nfe > previous_nfe);
        previous_nfe = run.nfe;
    }
    Ok(())
}

#[test]
fn dopri5_reports_every_evaluation_and_rejection() -> Result<()> {
    // A fast-decaying field: trying the whole interval at once must be rejected.
    let (field, calls) = counting(Affine {
        scale: 25.0,
        offset: 0.0,
    });
    let tol = Tolerance::new(1e-7, 1e-7)?;
    let run = dopri5(&field, &image(), 1.0, 0.0, &tol, None)?;
    assert!(run.rejected > 0, "expected rejections, got none");
    assert!(run.accepted > 1);
    // One first evaluation, then six per attempt (the seventh is reused: FSAL).
    assert_eq!(run.nfe, 1 + 6 * (run.accepted + run.rejected));
    assert_eq!(run.nfe, calls.get());
    let exact = Affine {
        scale: 25.0,
        offset: 0.0,
    }
    .transport(&image(), 1.0, 0.0)?;
    assert!(max_abs_diff(&run.x, &exact) < 1e-6);
    Ok(())
}

#[test]
fn dopri5_fails_loudly_on_a_field_it_cannot_resolve() -> Result<()> {
    // x = C exp(1 / (sigma - 0.5)) explodes as sigma comes down to 0.5.
    let blowing_up = semaug_core::field::from_fn(|x: &Tensor, sigma: f64| {
        x.affine(-1.0 / (sigma - 0.5).powi(2), 0.0)
    });
    let result = dopri5(&blowing_up, &image(), 1.0, 0.0, &Tolerance::default(), None);
    assert!(
        matches!(
            result,
            Err(Error::StepUnderflow { .. } | Error::TooManySteps { .. })
        ),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn fixed_solvers_cost_what_they_say() -> Result<()> {
    let grid = SigmaGrid::shifted(7, 3.0)?;
    for solver in FIXED {
        let (field, calls) = counting(Affine {
            scale: -0.5,
            offset: 0.1,
        });
        let run = integrate(&field, &image(), &grid, &solver, None)?;
        let per_step = solver
            .nfe_per_step()
            .expect("fixed solvers have a fixed cost");
        assert_eq!(run.nfe, 7 * per_step, "{solver}");
        assert_eq!(calls.get(), run.nfe, "{solver}");
        assert_eq!((run.steps, run.accepted, run.rejected), (7, 7, 0));
    }
    assert_eq!(Solver::Dopri5(Tolerance::default()).nfe_per_step(), None);
    Ok(())
}

#[test]
fn solvers_parse_print_and_serialise_by_name() -> Result<()> {
    for (text, solver) in [
        ("euler", Solver::Euler),
        ("Heun", Solver::Heun),
        (" midpoint ", Solver::Midpoint),
        ("RK4", Solver::Rk4),
        ("dopri5", Solver::Dopri5(Tolerance::default())),
    ] {
        assert_eq!(text.parse::<Solver>()?, solver);
    }
    let custom = Solver::Dopri5(Tolerance::new(1e-4, 1e-6)?);
    assert_eq!(custom.to_string(), "dopri5:rtol=1e-4,atol=1e-6");
    assert_eq!(custom.to_string().parse::<Solver>()?, custom);
    let half: Solver = "dopri5:atol=1e-3".parse()?;
    assert_eq!(half, Solver::Dopri5(Tolerance::new(1e-5, 1e-3)?));

    let json = serde_json::to_string(&Solver::Rk4).expect("serialise");
    assert_eq!(json, "\"rk4\"");
    let back: Solver = serde_json::from_str("\"heun\"").expect("deserialise");
    assert_eq!(back, Solver::Heun);

    let unknown = "ddim".parse::<Solver>().expect_err("not a solver");
    assert!(unknown
        .to_string()
        .contains("euler, heun, midpoint, rk4, dopri5"));
    assert!("dopri5:rtol=-1".parse::<Solver>().is_err());
    assert!("dopri5:speed=2".parse::<Solver>().is_err());
    assert!(serde_json::from_str::<Solver>("\"ddim\"").is_err());
    Ok(())
}

#[test]
fn steps_run_on_f32_tensors_too() -> Result<()> {
    let x = image().to_dtype(candle_core::DType::F32)?;
    let field = Gaussian::new(Tensor::new(0.5f32, &Device::Cpu)?, 0.3)?;
    let exact = field.transport(&x, 1.0, 0.0)?;
    for solver in all_solvers() {
        let got = integrate(&field, &x, &SigmaGrid::uniform(20)?, &solver, None)?.x;
        assert_eq!(got.dtype(), candle_core::DType::F32);
        let tolerance = if solver == Solver::Euler { 0.05 } else { 1e-3 };
        assert!(max_abs_diff(&got, &exact) < tolerance, "{solver}");
    }
    Ok(())
}
