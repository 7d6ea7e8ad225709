//! Metrics on hand-computed cases, and the t table against the closed-form Student t
//! distribution function.

use semaug_eval::metrics::{
    accuracy, balanced_accuracy, mean_interval, t_quantile_975, ConfusionMatrix, MetricsError,
    Z_975,
};

#[test]
fn accuracy_counts_exact_matches() {
    assert_eq!(accuracy(&[0, 1, 2, 1], &[0, 1, 1, 1]).unwrap(), 0.75);
    assert_eq!(accuracy(&[3], &[3]).unwrap(), 1.0);
    assert!(matches!(
        accuracy(&[0, 1], &[0]),
        Err(MetricsError::LengthMismatch {
            predictions: 2,
            labels: 1
        })
    ));
    assert!(matches!(
        accuracy(&[], &[]),
        Err(MetricsError::Empty { .. })
    ));
}

/// Labels 0,0,0,0,1,1 predicted 0,0,0,0,0,1: accuracy 5/6, but class 1 is only half
/// right, so the balanced accuracy is (1 + 1/2) / 2 = 3/4.
#[test]
fn balanced_accuracy_weights_classes_equally() {
    let labels = [0, 0, 0, 0, 1, 1];
    let predictions = [0, 0, 0, 0, 0, 1];
    assert!((accuracy(&predictions, &labels).unwrap() - 5.0 / 6.0).abs() < 1e-15);
    assert_eq!(balanced_accuracy(&predictions, &labels, 2).unwrap(), 0.75);
    // A class with no samples (2) is left out of the mean, not counted as 0.
    assert_eq!(balanced_accuracy(&predictions, &labels, 3).unwrap(), 0.75);
    // Predicting only the majority class: accuracy 2/3, balanced 1/2.
    let majority = [0; 6];
    assert_eq!(balanced_accuracy(&majority, &labels, 2).unwrap(), 0.5);
}

#[test]
fn confusion_matrix_rows_are_truth_columns_predictions() {
    let m = ConfusionMatrix::from_predictions(&[1, 1, 0, 2, 2], &[0, 1, 0, 2, 1], 3).unwrap();
    assert_eq!(m.counts, vec![1, 1, 0, 0, 1, 1, 0, 0, 1]);
    assert_eq!((m.count(0, 1), m.count(1, 2), m.count(2, 2)), (1, 1, 1));
    assert_eq!((m.total(), m.correct()), (5, 3));
    assert_eq!(m.class_totals(), vec![2, 2, 1]);
    assert_eq!(m.accuracy(), Some(0.6));
    assert_eq!(m.per_class_recall(), vec![Some(0.5), Some(0.5), Some(1.0)]);
    assert_eq!(m.balanced_accuracy(), Some(2.0 / 3.0));
    assert_eq!(ConfusionMatrix::new(4).accuracy(), None);
    assert_eq!(ConfusionMatrix::new(4).balanced_accuracy(), None);
    assert!(matches!(
        ConfusionMatrix::from_predictions(&[3], &[0], 3),
        Err(MetricsError::ClassOutOfRange {
            class: 3,
            num_classes: 3
        })
    ));
}

/// 1, 2, 3: mean 2, sample standard deviation 1, half-width t(0.975, 2) / sqrt(3).
#[test]
fn mean_interval_by_hand() {
    let m = mean_interval(&[1.0, 2.0, 3.0]).unwrap();
    assert_eq!((m.n, m.mean, m.std), (3, 2.0, Some(1.0)));
    let half = m.half_width.unwrap();
    assert!((half - 4.302_652_7 / 3f64.sqrt()).abs() < 1e-6, "{half}");
    let (lo, hi) = m.bounds().unwrap();
    assert!((lo - (2.0 - half)).abs() < 1e-15 && (hi - (2.0 + half)).abs() < 1e-15);

    // Two runs 0.70 and 0.74: sd 0.02 * sqrt(2), half-width 12.7062 * 0.02.
    let m = mean_interval(&[0.70, 0.74]).unwrap();
    assert!((m.mean - 0.72).abs() < 1e-12);
    assert!((m.half_width.unwrap() - 12.706_204_7 * 0.02).abs() < 1e-7);

    // Identical runs: no spread. One run: no interval.
    assert_eq!(mean_interval(&[0.5; 4]).unwrap().half_width, Some(0.0));
    let one = mean_interval(&[0.9]).unwrap();
    assert_eq!(
        (one.mean, one.std, one.half_width, one.bounds()),
        (0.9, None, None, None)
    );
    assert!(matches!(
        mean_interval(&[]),
        Err(MetricsError::Empty { .. })
    ));
    assert!(matches!(
        mean_interval(&[0.1, f64::NAN]),
        Err(MetricsError::NotFinite { index: 1, .. })
    ));
}

/// P(|T| <= t) for integer degrees of freedom in closed form (Abramowitz & Stegun
/// 26.7.3 / 26.7.4), with theta = atan(t / sqrt(nu)).
fn t_central_probability(t: f64, nu: usize) -> f64 {
    let theta = (t / (nu as f64).sqrt()).atan();
    let (s, c) = theta.sin_cos();
    if nu % 2 == 1 {
        // 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), nu - 3 terms.
        let mut term = 1.0;
        let mut sum = if nu > 1 { 1.0 } else { 0.0 };
        for k in 1..(nu.saturating_sub(1) / 2) {
            term *= (2 * k) as f64 / (2 * k + 1) as f64 * c * c;
            sum += term;
        }
        2.0 / std::f64::consts::PI * (theta + s * c * sum)
    } else {
        // sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), up to cos^(nu - 2).
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..(nu / 2) {
            term *= (2 * k - 1) as f64 / (2 * k) as f64 * c * c;
            sum += term;
        }
        s * sum
    }
}

#[test]
fn t_table_holds_the_975_quantiles() {
    for df in 1..=30 {
        let p = t_central_probability(t_quantile_975(df), df);
        assert!((p - 0.95).abs() < 2e-8, "df {df}: P(|T| <= t) = {p}");
        assert!(t_quantile_975(df) > t_quantile_975(df + 1));
    }
    assert_eq!(t_quantile_975(31), Z_975);
    assert_eq!(t_quantile_975(1000), Z_975);
    assert!(t_quantile_975(0).is_infinite());
    // The closed form itself: t with 1 df is Cauchy, P(|T| <= 1) = 1/2.
    assert!((t_central_probability(1.0, 1) - 0.5).abs() < 1e-15);
    // With 2 df, P(|T| <= t) = t / sqrt(2 + t^2).
    let t = 2f64.sqrt();
    assert!((t_central_probability(t, 2) - t / 4f64.sqrt()).abs() < 1e-15);
}
