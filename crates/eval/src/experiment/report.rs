//! The experiment's outputs a person reads: `results.md` (a table in the layout of the
//! paper's Table 1 for lowdata, methods x ratios for ratio, methods x shots with the
//! area under the curve for fewshot) and `results.png` (bars with 95 % error bars, or
//! accuracy curves with 95 % bands), written next to `results.json`.

use std::fmt::Write as _;
use std::path::Path;

use semaug_data::image_io::encode_png;
use semaug_data::plot::{Bar, BarChart, LineChart, Series};
use semaug_data::writer::atomic::publish;

use super::config::Kind;
use super::error::ExperimentError;
use super::results::{Aggregate, Results};
use crate::metrics::MeanInterval;

pub const RESULTS_JSON: &str = "results.json";
pub const RESULTS_MD: &str = "results.md";
pub const RESULTS_PNG: &str = "results.png";

/// Writes `results.json`, `results.md` and `results.png` into `out`.
pub fn write_all(out: &Path, results: &Results) -> Result<(), ExperimentError> {
    let json = serde_json::to_vec_pretty(results)
        .map_err(|e| ExperimentError::io(out.join(RESULTS_JSON), "encode", e))?;
    publish(&out.join(RESULTS_JSON), &json)?;
    publish(&out.join(RESULTS_MD), markdown(results).as_bytes())?;
    publish(&out.join(RESULTS_PNG), &encode_png(&chart(results))?)?;
    Ok(())
}

/// `mean ± half-width` in percent (`mean` alone for one seed).
pub fn percent(m: &MeanInterval) -> String {
    match m.half_width {
        Some(h) => format!("{:.1} ± {:.1}", 100.0 * m.mean, 100.0 * h),
        None => format!("{:.1}", 100.0 * m.mean),
    }
}

/// The table (what the command prints) without the surrounding notes.
pub fn table(results: &Results) -> String {
    match results.experiment {
        Kind::Lowdata => lowdata_table(results),
        Kind::Ratio => grid_table(results, "synthetic", |x| format!("{:.0} %", 100.0 * x)),
        Kind::Fewshot => grid_table(results, "shots", |k| format!("{k}")),
    }
}

/// The whole `results.md`.
pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let title = match results.experiment {
        Kind::Lowdata => "Low-data classification",
        Kind::Ratio => "Accuracy against the synthetic fraction",
        Kind::Fewshot => "Few-shot classification",
    };
    let _ = writeln!(
        md,
        "# {title} (`semaug eval {}`)\n",
        results.experiment.name()
    );
    let d = &results.data;
    let _ = writeln!(
        md,
        "- training: {} images of {} classes ({}; {})",
        d.train.images,
        d.classes.len(),
        d.train.origin,
        d.train.root
    );
    let _ = writeln!(
        md,
        "- evaluation: {} images ({}; {})",
        d.eval.images, d.eval.origin, d.eval.root
    );
    let _ = writeln!(md, "- model selection: {}", d.selection);
    let c = &results.config;
    let arch = serde_json::to_value(c.arch).unwrap_or_default();
    let width = c
        .width
        .map(|w| format!(" (first stage {w} channels)"))
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "- classifier: {}{width}, {} epochs, batch {}, lr {}, seeds {:?}",
        arch.as_str().unwrap_or("?"),
        c.train.epochs,
        c.train.batch_size,
        c.train.lr,
        c.seeds
    );
    if let Some(g) = &results.generator {
        let name = g.get("name").and_then(|v| v.as_str()).unwrap_or("?");
        let sha = g
            .get("weights_sha256")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let _ = writeln!(
            md,
            "- generator: {name} (sha256 {sha}), {} synthetic image(s) per real image, generation seed {}",
            c.synthetic.per_image, c.synthetic.generation_seed
        );
    }
    let w = &results.wall_seconds;
    let _ = writeln!(
        md,
        "- wall time of this invocation: generation {:.0} s, training {:.0} s, evaluation {:.0} s, total {:.0} s\n",
        w.generation, w.training, w.evaluation, w.total
    );
    md.push_str(&table(results));
    md.push_str(
        "\nAccuracy in % on the evaluation split: mean ± half-width of the 95 % t-interval \
         over seeds.\n",
    );
    md
}

fn lowdata_table(results: &Results) -> String {
    let mut t = String::from(
        "| Method | Low-data accuracy (%) | Class-balanced (%) | Seeds | Training s/run |\n\
         |---|---|---|---|---|\n",
    );
    for a in &results.aggregates {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            a.method,
            percent(&a.accuracy),
            percent(&a.balanced_accuracy),
            a.seeds.len(),
            seconds(a.training_seconds.mean)
        );
    }
    t
}

/// Methods down, points across; fewshot adds the curve area and its gain.
fn grid_table(results: &Results, what: &str, label: impl Fn(f64) -> String) -> String {
    let points = &results.config.points;
    let fewshot = results.experiment == Kind::Fewshot;
    let mut t = format!("| Method \\ {what} |");
    for &p in points {
        let _ = write!(t, " {} |", label(p));
    }
    if fewshot {
        t.push_str(" Area (%) | Gain over classical (points) |");
    }
    t.push_str("\n|---|");
    let extra = if fewshot { 2 } else { 0 };
    t.push_str(&"---|".repeat(points.len() + extra));
    t.push('\n');
    for method in &results.config.methods {
        let _ = write!(t, "| {method} |");
        for &p in points {
            let cell = find(&results.aggregates, method, p)
                .map(|a| percent(&a.accuracy))
                .unwrap_or_else(|| "-".into());
            let _ = write!(t, " {cell} |");
        }
        if fewshot {
            let gain = results.curve_gains.iter().find(|g| &g.method == method);
            let area = gain.map_or("-".into(), |g| percent(&g.area));
            let delta = gain
                .and_then(|g| g.gain.as_ref())
                .map_or("-".into(), signed_points);
            let _ = write!(t, " {area} | {delta} |");
        }
        t.push('\n');
    }
    t
}

/// Whole seconds, or one decimal below 10 s.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

fn signed_points(m: &MeanInterval) -> String {
    match m.half_width {
        Some(h) => format!("{:+.1} ± {:.1}", 100.0 * m.mean, 100.0 * h),
        None => format!("{:+.1}", 100.0 * m.mean),
    }
}

fn find<'a>(aggregates: &'a [Aggregate], method: &str, point: f64) -> Option<&'a Aggregate> {
    aggregates
        .iter()
        .find(|a| a.method == method && a.point == Some(point))
}

/// Bars (lowdata) or curves with bands (ratio, fewshot), accuracy in percent.
pub fn chart(results: &Results) -> image::RgbImage {
    match results.experiment {
        Kind::Lowdata => {
            let mut chart = BarChart::new("Low-data accuracy (95 % CI over seeds)", "accuracy (%)");
            chart.bars = results
                .aggregates
                .iter()
                .map(|a| {
                    let bar = Bar::new(a.method.clone(), 100.0 * a.accuracy.mean);
                    match a.accuracy.half_width {
                        Some(h) => bar.with_err(100.0 * h),
                        None => bar,
                    }
                })
                .collect();
            chart.render()
        }
        Kind::Ratio => curves(
            results,
            "Accuracy vs synthetic fraction",
            "synthetic (%)",
            100.0,
            false,
        ),
        Kind::Fewshot => curves(results, "Few-shot accuracy", "images per class", 1.0, true),
    }
}

/// The 95 % band of an accuracy in percent, cut to [0, 100]: with two seeds the
/// t-interval's half-width can exceed the mean, but no accuracy lies outside.
fn percent_band(m: &MeanInterval) -> (f64, f64) {
    let (mean, half) = (100.0 * m.mean, 100.0 * m.half_width.unwrap_or(0.0));
    ((mean - half).max(0.0), (mean + half).min(100.0))
}

fn curves(
    results: &Results,
    title: &str,
    x_label: &str,
    x_scale: f64,
    log_x: bool,
) -> image::RgbImage {
    let mut chart = LineChart::new(title, x_label, "accuracy (%)");
    chart.log_x = log_x;
    for method in &results.config.methods {
        let mine: Vec<&Aggregate> = results
            .config
            .points
            .iter()
            .filter_map(|&p| find(&results.aggregates, method, p))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let x = |a: &Aggregate| a.point.unwrap_or(0.0) * x_scale;
        let points = mine
            .iter()
            .map(|a| (x(a), 100.0 * a.accuracy.mean))
            .collect();
        let mut series = Series::new(method.clone(), points);
        if mine.iter().any(|a| a.accuracy.half_width.is_some()) {
            let band = mine
                .iter()
                .map(|a| {
                    let (low, high) = percent_band(&a.accuracy);
                    (x(a), low, high)
                })
                .collect();
            series = series.with_band(band);
        }
        chart.series.push(series);
    }
    chart.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(mean: f64, half_width: Option<f64>) -> MeanInterval {
        MeanInterval {
            mean,
            std: None,
            half_width,
            n: 2,
        }
    }

    #[test]
    fn accuracy_bands_stay_within_0_and_100_percent() {
        assert_eq!(percent_band(&interval(0.5, Some(0.1))), (40.0, 60.0));
        assert_eq!(percent_band(&interval(0.2, Some(0.3))), (0.0, 50.0));
        assert_eq!(percent_band(&interval(0.9, Some(0.25))), (65.0, 100.0));
        assert_eq!(percent_band(&interval(0.3, None)), (30.0, 30.0));
    }
}
