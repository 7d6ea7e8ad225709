//! Sigma grids: endpoints, shift, truncation at a strength, reversal, validation.

use semaug_core::{Error, Result, SigmaGrid, Strength};

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
}

fn strength(value: f64) -> Strength {
    Strength::new(value).expect("test strengths are in [0, 1]")
}

#[test]
fn uniform_runs_from_noise_to_data_in_equal_steps() -> Result<()> {
    let grid = SigmaGrid::uniform(4)?;
    assert_eq!(grid.sigmas(), &[1.0, 0.75, 0.5, 0.25, 0.0]);
    assert_eq!(grid.steps(), 4);
    assert!(!grid.is_ascending());
    assert!(matches!(
        SigmaGrid::uniform(0),
        Err(Error::InvalidParameter { name: "steps", .. })
    ));
    Ok(())
}

#[test]
fn shifted_keeps_exact_ends_and_spends_steps_at_high_noise() -> Result<()> {
    let uniform = SigmaGrid::uniform(10)?;
    for shift in [0.3, 1.0, 3.0, 7.5] {
        let grid = SigmaGrid::shifted(10, shift)?;
        assert_eq!(grid.first(), 1.0);
        assert_eq!(grid.last(), 0.0);
        assert_eq!(grid.steps(), 10);
        for (&s, &t) in grid.sigmas().iter().zip(uniform.sigmas()) {
            // SD3: sigma = shift t / (1 + (shift - 1) t).
            assert!((s - shift * t / (1.0 + (shift - 1.0) * t)).abs() < 1e-12);
            if shift > 1.0 && t > 0.0 && t < 1.0 {
                assert!(s > t);
            }
        }
    }
    assert!(close(
        SigmaGrid::shifted(10, 1.0)?.sigmas(),
        uniform.sigmas()
    ));
    assert!(SigmaGrid::shifted(10, 0.0).is_err());
    assert!(SigmaGrid::shifted(10, f64::NAN).is_err());
    Ok(())
}

#[test]
fn truncation_on_the_grid_is_the_grid_tail() -> Result<()> {
    let grid = SigmaGrid::uniform(10)?;
    let cut = grid.truncated(strength(0.6))?;
    assert!(close(cut.sigmas(), &[0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]));
    assert_eq!(cut.first(), 0.6);
    // 1 - 7/10 is not 0.3 in floating point; the grid point still counts as 0.3.
    let cut = grid.truncated(strength(1.0 - 0.7))?;
    assert_eq!(cut.steps(), 3);
    Ok(())
}

#[test]
fn truncation_off_the_grid_starts_with_a_shorter_step() -> Result<()> {
    let cut = SigmaGrid::uniform(10)?.truncated(strength(0.65))?;
    assert!(close(
        cut.sigmas(),
        &[0.65, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    ));
    let shifted = SigmaGrid::shifted(8, 3.0)?;
    let cut = shifted.truncated(strength(0.5))?;
    assert_eq!(cut.first(), 0.5);
    assert_eq!(cut.last(), 0.0);
    assert!(cut.sigmas()[1..]
        .iter()
        .all(|s| shifted.sigmas().contains(s)));
    Ok(())
}

#[test]
fn truncation_at_the_ends_is_identity_and_whole_grid() -> Result<()> {
    let grid = SigmaGrid::shifted(6, 2.0)?;
    let none = grid.truncated(Strength::NONE)?;
    assert_eq!(none.sigmas(), &[0.0]);
    assert_eq!(none.steps(), 0);
    assert_eq!(grid.truncated(Strength::FULL)?, grid);
    let partial = grid.truncated(strength(0.4))?;
    assert!(matches!(
        partial.truncated(strength(0.7)),
        Err(Error::GridBelowStrength { .. })
    ));
    Ok(())
}

#[test]
fn reversal_and_partial_inversion_retrace_the_same_sigmas() -> Result<()> {
    let grid = SigmaGrid::uniform(4)?;
    let up = grid.reversed();
    assert!(up.is_ascending());
    assert_eq!(up.sigmas(), &[0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(up.reversed(), grid);
    let invert = grid.inversion_to(strength(0.5))?;
    assert_eq!(invert.sigmas(), &[0.0, 0.25, 0.5]);
    assert_eq!(invert.reversed(), grid.truncated(strength(0.5))?);
    // Truncating an ascending grid keeps it ascending.
    assert_eq!(up.truncated(strength(0.5))?, invert);
    assert_eq!(
        grid.intervals().collect::<Vec<_>>(),
        vec![(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]
    );
    Ok(())
}

#[test]
fn explicit_grids_are_validated() {
    assert!(SigmaGrid::new(vec![1.0, 0.4, 0.0]).is_ok());
    assert!(SigmaGrid::new(vec![0.0, 0.4, 1.0]).is_ok());
    assert!(SigmaGrid::new(vec![0.3]).is_ok());
    assert!(matches!(SigmaGrid::new(vec![]), Err(Error::EmptyGrid)));
    assert!(matches!(
        SigmaGrid::new(vec![1.0, 0.5, 0.5, 0.0]),
        Err(Error::GridNotMonotone { index: 2, .. })
    ));
    assert!(matches!(
        SigmaGrid::new(vec![1.0, 0.5, 0.7]),
        Err(Error::GridNotMonotone { index: 2, .. })
    ));
    assert!(matches!(
        SigmaGrid::new(vec![1.2, 0.5]),
        Err(Error::GridSigmaOutOfRange { index: 0, .. })
    ));
    assert!(SigmaGrid::new(vec![1.0, f64::NAN]).is_err());
}
