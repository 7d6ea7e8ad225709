//! The time convention: the path, its velocity and the conversions between them.

mod common;

use common::{image, max_abs_diff};
use semaug_core::time::{
    composition_level, eps_from, flow_time, noised, noised_per_sample, velocity_target, x0_from,
};
use semaug_core::{Error, Result, Strength};

fn pair() -> Result<(candle_core::Tensor, candle_core::Tensor)> {
    let x0 = image();
    let eps = (image().sqr()? * 3.0)?.affine(1.0, -1.2)?;
    Ok((x0, eps))
}

#[test]
fn path_ends_are_data_and_noise() -> Result<()> {
    let (x0, eps) = pair()?;
    assert_eq!(max_abs_diff(&noised(&x0, &eps, 0.0)?, &x0), 0.0);
    assert_eq!(max_abs_diff(&noised(&x0, &eps, 1.0)?, &eps), 0.0);
    let half = ((&x0 + &eps)? * 0.5)?;
    assert!(max_abs_diff(&noised(&x0, &eps, 0.5)?, &half) < 1e-15);
    Ok(())
}

#[test]
fn velocity_target_is_the_path_derivative() -> Result<()> {
    let (x0, eps) = pair()?;
    let h = 1e-6;
    let ahead = noised(&x0, &eps, 0.3 + h)?;
    let behind = noised(&x0, &eps, 0.3 - h)?;
    let derivative = ((ahead - behind)? / (2.0 * h))?;
    assert!(max_abs_diff(&derivative, &velocity_target(&x0, &eps)?) < 1e-8);
    Ok(())
}

#[test]
fn predictions_from_the_true_velocity_recover_both_ends() -> Result<()> {
    let (x0, eps) = pair()?;
    let v = velocity_target(&x0, &eps)?;
    for sigma in [0.0, 0.2, 0.7, 1.0] {
        let x = noised(&x0, &eps, sigma)?;
        assert!(max_abs_diff(&x0_from(&x, &v, sigma)?, &x0) < 1e-14);
        assert!(max_abs_diff(&eps_from(&x, &v, sigma)?, &eps) < 1e-14);
    }
    Ok(())
}

#[test]
fn strength_accepts_the_unit_interval_only() {
    for ok in [0.0, 0.25, 1.0] {
        assert_eq!(Strength::new(ok).map(Strength::sigma).ok(), Some(ok));
    }
    for bad in [-0.01, 1.0001, f64::NAN, f64::INFINITY] {
        let error = Strength::new(bad).expect_err("outside [0, 1]");
        assert!(matches!(error, Error::StrengthOutOfRange { .. }));
        assert!(error.to_string().contains("[0, 1]"), "{error}");
    }
}

#[test]
fn strength_is_a_point_in_flow_time() -> Result<()> {
    let strength = Strength::new(0.8)?;
    assert!((strength.flow_time() - 0.2).abs() < 1e-15);
    assert_eq!(flow_time(1.0), 0.0);
    assert_eq!(flow_time(0.0), 1.0);
    Ok(())
}

#[test]
fn strength_deserialises_with_validation() {
    let parsed: Strength = serde_json::from_str("0.35").expect("valid strength");
    assert_eq!(parsed.sigma(), 0.35);
    assert_eq!(serde_json::to_string(&parsed).expect("serialise"), "0.35");
    let error = serde_json::from_str::<Strength>("1.5").expect_err("out of range");
    assert!(error.to_string().contains("[0, 1]"), "{error}");
}

#[test]
fn composition_levels_run_from_noise_to_the_image() -> Result<()> {
    let levels: Vec<f64> = (0..=4)
        .map(|i| composition_level(i, 4).map(Strength::sigma))
        .collect::<Result<_>>()?;
    assert_eq!(levels, vec![1.0, 0.75, 0.5, 0.25, 0.0]);
    // Level i of k sits at flow time i / k.
    assert!((composition_level(1, 3)?.flow_time() - 1.0 / 3.0).abs() < 1e-15);
    assert!(matches!(
        composition_level(5, 4),
        Err(Error::CompositionLevel {
            level: 5,
            levels: 4
        })
    ));
    assert!(composition_level(0, 0).is_err());
    Ok(())
}

#[test]
fn per_sample_noising_equals_one_sigma_per_row() -> Result<()> {
    let (x0, eps) = pair()?;
    let x0 = candle_core::Tensor::cat(&[&x0, &x0.affine(-1.0, 0.1)?], 0)?;
    let eps = candle_core::Tensor::cat(&[&eps, &eps.affine(0.5, 0.0)?], 0)?;
    let rows = x0.dim(0)?;
    let sigmas: Vec<f64> = (0..rows).map(|i| (i as f64 + 0.5) / rows as f64).collect();
    let sigma_tensor =
        candle_core::Tensor::new(sigmas.as_slice(), x0.device())?.to_dtype(x0.dtype())?;
    let all = noised_per_sample(&x0, &eps, &sigma_tensor)?;
    for (i, s) in sigmas.iter().enumerate() {
        let one = noised(&x0.narrow(0, i, 1)?, &eps.narrow(0, i, 1)?, *s)?;
        assert!(max_abs_diff(&all.narrow(0, i, 1)?, &one) < 1e-6);
    }
    Ok(())
}
