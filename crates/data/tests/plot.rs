//! Charts: sizes, where series land, text metrics, the font table, ticks, and that bad
//! input degrades without panicking. Sample PNGs go to a temp dir, or to the folder in
//! `SEMAUG_PLOT_SAMPLES` when set, for looking at.

use image::{Rgb, RgbImage};
use semaug_data::image_io::{decode_file, encode_png, Limits};
use semaug_data::plot::ticks::{linear_ticks, log_ticks};
use semaug_data::plot::{
    glyph_rows, palette_color, text, text_height, text_width, Bar, BarChart, LineChart, Series,
};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const RED: Rgb<u8> = Rgb([200, 0, 0]);
const BLUE: Rgb<u8> = Rgb([0, 0, 200]);

fn pixels_of(img: &RgbImage, color: Rgb<u8>) -> Vec<(f64, f64)> {
    img.enumerate_pixels()
        .filter(|(_, _, p)| **p == color)
        .map(|(x, y, _)| (f64::from(x), f64::from(y)))
        .collect()
}

fn bbox(px: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    px.iter().fold(
        (f64::MAX, f64::MAX, f64::MIN, f64::MIN),
        |(a, b, c, d), &(x, y)| (a.min(x), b.min(y), c.max(x), d.max(y)),
    )
}

fn line(name: &str, points: Vec<(f64, f64)>, color: Rgb<u8>) -> LineChart {
    let mut chart = LineChart::new("t", "x", "y");
    chart
        .series
        .push(Series::new(name, points).with_color(color));
    chart
}

/// y = x sampled densely (no markers), so the only red pixels are the stroke.
fn diagonal() -> Vec<(f64, f64)> {
    (0..=100)
        .map(|i| (f64::from(i) / 100.0, f64::from(i) / 100.0))
        .collect()
}

#[test]
fn render_returns_the_requested_size() {
    for (w, h) in [
        (800, 500),
        (1200, 300),
        (300, 1200),
        (64, 48),
        (1, 1),
        (0, 0),
        (0, 40),
    ] {
        let mut chart = line("a", diagonal(), RED);
        (chart.width, chart.height) = (w, h);
        assert_eq!(chart.render().dimensions(), (w, h));
        let bars = BarChart {
            bars: vec![Bar::new("a", 1.0)],
            width: w,
            height: h,
            ..BarChart::default()
        };
        assert_eq!(bars.render().dimensions(), (w, h));
    }
}

/// Distance from (x, y) to the line through the bottom-left and top-right corners of
/// `bbox` (inset by a pixel for the stroke's round ends).
fn off_diagonal(bbox: (f64, f64, f64, f64), x: f64, y: f64) -> f64 {
    let (x0, y0, x1, y1) = bbox;
    let (ax, ay, bx, by) = (x0 + 1.0, y1 - 1.0, x1 - 1.0, y0 + 1.0);
    let len = ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt();
    ((bx - ax) * (ay - y) - (ax - x) * (by - ay)).abs() / len
}

/// The `color` pixels form a stroke from the plot's bottom-left to its top-right.
fn assert_stroked_on_diagonal(img: &RgbImage, color: Rgb<u8>) {
    let px = pixels_of(img, color);
    assert!(px.len() > 500, "only {} series pixels", px.len());
    let b = bbox(&px);
    let (x0, y0, x1, y1) = b;
    // Inside the plot: clear of the y tick labels on the left and x labels below.
    assert!(
        x0 > 40.0 && x1 < 790.0 && y0 > 20.0 && y1 < 460.0,
        "bbox {x0} {y0} {x1} {y1}"
    );
    assert!(x1 - x0 > 400.0 && y1 - y0 > 250.0);
    for &(x, y) in &px {
        let d = off_diagonal(b, x, y);
        assert!(d <= 2.5, "pixel ({x}, {y}) is {d} px off the diagonal");
    }
    // And the stroke passes through the middle.
    let (mx, my) = (((x0 + x1) / 2.0) as u32, ((y0 + y1) / 2.0) as u32);
    let near = (0..3).flat_map(|dy| (0..3).map(move |dx| (mx + dx - 1, my + dy - 1)));
    assert!(near.into_iter().any(|(x, y)| *img.get_pixel(x, y) == color));
}

#[test]
fn y_equals_x_is_stroked_along_the_plot_diagonal() {
    assert_stroked_on_diagonal(&line("", diagonal(), RED).render(), RED);
}

#[test]
fn an_exponential_is_straight_on_a_log_y_axis() {
    let points = (0..=100)
        .map(|i| f64::from(i) / 100.0)
        .map(|x| (x, 10f64.powf(3.0 * x)))
        .collect();
    let mut chart = line("", points, RED);
    chart.log_y = true;
    assert_stroked_on_diagonal(&chart.render(), RED);
}

#[test]
fn a_named_series_gets_a_legend_clear_of_its_line() {
    const INK: Rgb<u8> = Rgb([34, 34, 34]);
    let inside_ink = |name: &str| {
        let img = line(name, diagonal(), RED).render();
        let b = bbox(&pixels_of(&img, RED));
        let ink: Vec<(f64, f64)> = pixels_of(&img, INK)
            .into_iter()
            .filter(|&(x, y)| x > b.0 && x < b.2 && y > b.1 && y < b.3)
            .collect();
        (b, ink)
    };
    let (_, none) = inside_ink("");
    assert!(none.is_empty(), "no name, no legend");
    let (b, ink) = inside_ink("validation accuracy");
    assert!(ink.len() > 100, "legend text: {} px", ink.len());
    assert!(ink.iter().all(|&(x, y)| off_diagonal(b, x, y) > 10.0));
}

#[test]
fn series_get_distinct_palette_colours() {
    let mut chart = LineChart::new("", "", "");
    chart.series.push(Series::new("up", diagonal()));
    let down = diagonal().into_iter().map(|(x, y)| (x, 1.0 - y)).collect();
    chart.series.push(Series::new("down", down));
    let img = chart.render();
    let (a, b) = (palette_color(0), palette_color(1));
    assert_ne!(a, b);
    assert!(pixels_of(&img, a).len() > 500 && pixels_of(&img, b).len() > 500);
}

#[test]
fn a_nan_breaks_the_line_instead_of_bridging_it() {
    let img = line("", vec![(0.0, 0.0), (0.5, f64::NAN), (1.0, 1.0)], RED).render();
    let red = pixels_of(&img, RED);
    assert!(!red.is_empty(), "isolated points still get markers");
    let (x0, y0, x1, y1) = bbox(&red);
    let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    assert!(red
        .iter()
        .all(|&(x, y)| (x - mx).abs() + (y - my).abs() > 20.0));
}

#[test]
fn a_band_is_shaded_symmetrically_around_its_line() {
    let flat: Vec<(f64, f64)> = (0..=40).map(|i| (f64::from(i) / 40.0, 0.5)).collect();
    let band = flat.iter().map(|&(x, _)| (x, 0.25, 0.75)).collect();
    let mut chart = line("", flat, BLUE);
    chart.series[0].band = Some(band);
    let img = chart.render();
    let blue = pixels_of(&img, BLUE);
    let (x0, _, x1, _) = bbox(&blue);
    let col = ((x0 + x1) / 2.0 + 3.0) as u32;
    let rows: Vec<u32> = (0..img.height())
        .filter(|&y| *img.get_pixel(col, y) == BLUE)
        .collect();
    let (first, last) = (rows[0], rows[rows.len() - 1]);
    // A tint mixes blue into white: blue channel stays high, red drops.
    let tinted = |y: u32| {
        let p = img.get_pixel(col, y).0;
        p != WHITE.0 && p[2] > 220 && p[0] > 150 && p[0] < 250
    };
    // Start 3 px off the stroke, past its anti-aliased fringe.
    let above = (0..first - 2)
        .rev()
        .take_while(|&y| tinted(y) || is_grid(&img, col, y))
        .count();
    let below = (last + 3..img.height())
        .take_while(|&y| tinted(y) || is_grid(&img, col, y))
        .count();
    assert!(above > 30, "band above the line is only {above} px");
    assert!(above.abs_diff(below) <= 3, "above {above} vs below {below}");
}

/// Grid lines cross the band; a tinted grid pixel is still part of it.
fn is_grid(img: &RgbImage, x: u32, y: u32) -> bool {
    let p = img.get_pixel(x, y).0;
    p[2] > p[0] && p[0] > 150
}

#[test]
fn bar_heights_are_proportional_to_values() {
    let colors = [
        Rgb([200, 0, 0]),
        Rgb([0, 150, 0]),
        Rgb([0, 0, 200]),
        Rgb([150, 0, 150]),
    ];
    let bars = [1.0, 2.0, 3.0, 4.0]
        .iter()
        .zip(colors)
        .map(|(&v, c)| Bar::new(format!("m{v}"), v).with_color(c));
    let chart = BarChart {
        bars: bars.collect(),
        ..BarChart::new("bars", "accuracy")
    };
    let img = chart.render();
    let heights: Vec<f64> = colors
        .iter()
        .map(|&c| bbox(&pixels_of(&img, c)))
        .map(|b| b.3 - b.1 + 1.0)
        .collect();
    let mut lefts: Vec<f64> = colors
        .iter()
        .map(|&c| bbox(&pixels_of(&img, c)).0)
        .collect();
    for (i, h) in heights.iter().enumerate() {
        let ratio = h / heights[0];
        assert!(
            (ratio - (i + 1) as f64).abs() < 0.05 * (i + 1) as f64,
            "bar {i}: ratio {ratio}"
        );
    }
    let sorted = {
        lefts.sort_by(f64::total_cmp);
        lefts.clone()
    };
    assert_eq!(lefts, sorted, "bars are laid out left to right in order");
}

#[test]
fn text_draws_ink_exactly_as_wide_as_text_width() {
    for scale in 1..=3 {
        let s = "Hello, World";
        let mut img = RgbImage::from_pixel(300, 60, WHITE);
        text(&mut img, 5, 7, scale, RED, s);
        let red = pixels_of(&img, RED);
        let (x0, y0, x1, y1) = bbox(&red);
        assert_eq!((x0, y0), (5.0, 7.0), "H starts at the top-left corner");
        assert_eq!(x1 - x0 + 1.0, f64::from(text_width(scale, s)));
        assert!(y1 - y0 + 1.0 <= f64::from(text_height(scale)));
        assert!(red.len() as u32 > 40 * scale * scale);
    }
    assert_eq!(text_width(2, ""), 0);
    assert_eq!(
        text_width(1, "ab"),
        text_width(1, "a") + 1 + text_width(1, "b")
    );
}

#[test]
fn descenders_reach_below_the_baseline_and_stay_in_the_box() {
    let mut img = RgbImage::from_pixel(40, 20, WHITE);
    text(&mut img, 0, 0, 1, RED, "gy");
    let (_, _, _, y1) = bbox(&pixels_of(&img, RED));
    assert_eq!(y1 + 1.0, f64::from(text_height(1)));
}

#[test]
fn text_off_the_edge_is_clipped_not_a_panic() {
    let mut img = RgbImage::from_pixel(10, 10, WHITE);
    text(&mut img, -7, -3, 3, RED, "clipped text");
    text(&mut img, i32::MAX - 5, i32::MIN, 2, RED, "far away");
    assert!(!pixels_of(&img, RED).is_empty());
}

#[test]
fn every_printable_ascii_glyph_exists_and_is_unique() {
    let glyphs: Vec<[u8; 9]> = (' '..='~')
        .map(|c| glyph_rows(c).unwrap_or_else(|| panic!("no glyph for {c:?}")))
        .collect();
    for (i, g) in glyphs.iter().enumerate() {
        let c = char::from(b' ' + i as u8);
        assert_eq!(g.iter().any(|&r| r != 0), c != ' ', "{c:?} ink");
        assert!(g.iter().all(|&r| r < 32), "{c:?} is wider than 5 columns");
        for (j, h) in glyphs.iter().enumerate().skip(i + 1) {
            assert_ne!(
                g,
                h,
                "{c:?} and {:?} look the same",
                char::from(b' ' + j as u8)
            );
        }
    }
}

#[test]
fn unknown_characters_draw_something() {
    assert!(glyph_rows('€').is_none());
    let mut img = RgbImage::from_pixel(20, 12, WHITE);
    text(&mut img, 1, 1, 1, RED, "€");
    assert!(!pixels_of(&img, RED).is_empty());
}

#[test]
fn log_ticks_are_powers_of_ten_covering_the_range() {
    let t = log_ticks(0.003, 420.0);
    assert_eq!(t.len(), 7);
    assert!(t[0] <= 0.003 && t[t.len() - 1] >= 420.0);
    for v in &t {
        let e = v.log10();
        assert!((e - e.round()).abs() < 1e-12, "{v} is not a power of ten");
    }
    assert_eq!(
        log_ticks(10.0, 1000.0).len(),
        3,
        "exact decades are not widened"
    );
    assert_eq!(log_ticks(5.0, 5.0).len(), 2);
    assert!(log_ticks(0.0, 10.0).is_empty() && log_ticks(f64::NAN, 1.0).is_empty());
}

#[test]
fn linear_ticks_use_one_two_five_steps() {
    for (lo, hi, n) in [
        (0.0, 0.93, 5),
        (-3.7, 12.2, 6),
        (1e-6, 3e-6, 4),
        (0.0, 25000.0, 8),
        (5.0, 5.0, 5),
    ] {
        let t = linear_ticks(lo, hi, n);
        assert!(t.len() >= 2 && t.len() <= n + 1, "{lo}..{hi}: {t:?}");
        assert!(t[0] <= lo && t[t.len() - 1] >= hi);
        let step = t[1] - t[0];
        let mantissa = step / 10f64.powf(step.log10().floor());
        assert!(
            [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
            "step {step}"
        );
        assert!(t
            .windows(2)
            .all(|w| ((w[1] - w[0]) - step).abs() < step * 1e-6));
    }
    assert_eq!(
        linear_ticks(0.0, 1.0, 5),
        vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    );
}

#[test]
fn degenerate_line_charts_render() {
    let cases: Vec<Vec<(f64, f64)>> = vec![
        vec![],
        vec![(3.0, 4.0)],
        vec![(1.0, 2.0), (1.0, 2.0), (1.0, 2.0)],
        vec![
            (0.0, f64::NAN),
            (f64::INFINITY, 1.0),
            (f64::NEG_INFINITY, f64::NAN),
        ],
        vec![(0.0, -1.0), (1.0, 0.0), (2.0, 1e-300), (3.0, 1e300)],
        vec![(-1e300, 1e300), (1e300, -1e300)],
        vec![(0.0, 0.0), (1e-300, 1e-300)],
    ];
    for points in cases {
        for (log_x, log_y) in [(false, false), (false, true), (true, true)] {
            let mut chart = line(
                "a series with a rather long name indeed",
                points.clone(),
                RED,
            );
            chart.series.push(
                Series::new("empty", vec![])
                    .with_band(vec![(0.0, f64::NAN, 1.0), (1.0, 2.0, -1.0)]),
            );
            (chart.log_x, chart.log_y) = (log_x, log_y);
            assert_eq!(chart.render().dimensions(), (800, 500), "{points:?}");
        }
    }
    let single = line("", vec![(3.0, 4.0)], RED).render();
    assert!(
        pixels_of(&single, RED).len() > 10,
        "a single point shows as a marker"
    );
    let many: Vec<Series> = (0..40)
        .map(|i| Series::new(format!("series {i}"), vec![(0.0, f64::from(i))]))
        .collect();
    let chart = LineChart {
        series: many,
        ..LineChart::default()
    };
    assert_eq!(chart.render().dimensions(), (800, 500));
}

#[test]
fn degenerate_bar_charts_render() {
    let long = "a very long method name that cannot possibly fit under one narrow bar";
    let cases: Vec<Vec<Bar>> = vec![
        vec![],
        vec![Bar::new("", 0.0)],
        vec![
            Bar::new("nan", f64::NAN).with_err(1.0),
            Bar::new("inf", f64::INFINITY),
            Bar::new("ok", 1.0).with_err(f64::NAN),
        ],
        vec![
            Bar::new("neg", -2.0).with_err(0.5),
            Bar::new("pos", 3.0).with_err(-0.5),
        ],
        vec![
            Bar::new(long, 1e12),
            Bar::new("Supercalifragilisticexpialidocious", 1e-12),
        ],
        (0..60)
            .map(|i| Bar::new(format!("method-{i}"), f64::from(i)))
            .collect(),
    ];
    for bars in cases {
        for (w, h) in [(800, 500), (120, 90), (20, 20)] {
            let chart = BarChart {
                bars: bars.clone(),
                width: w,
                height: h,
                ..BarChart::new(long, long)
            };
            assert_eq!(chart.render().dimensions(), (w, h));
        }
    }
}

#[test]
fn sample_charts_are_written_as_png() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::env::var_os("SEMAUG_PLOT_SAMPLES").map_or(dir.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&out).expect("samples dir");
    for (name, img) in samples() {
        let path = out.join(format!("{name}.png"));
        std::fs::write(&path, encode_png(&img).expect("encode")).expect("write");
        let back = decode_file(&path, &Limits::default()).expect("decode");
        assert_eq!(back, img, "{name}");
    }
}

fn samples() -> Vec<(&'static str, RgbImage)> {
    vec![
        ("loss", loss_chart()),
        ("shots", shots_chart()),
        ("fraction", fraction_chart()),
        ("methods", methods_chart()),
        ("small", small_chart()),
        ("edge_bars", edge_bars_chart()),
        ("empty", LineChart::new("Nothing yet", "x", "y").render()),
        ("font", font_sheet()),
        ("flat", flat_chart()),
        ("crowded", crowded_chart()),
    ]
}

/// A single point and a constant series: ranges are widened, not divided by zero.
fn flat_chart() -> RgbImage {
    let mut chart = LineChart::new("One point, one flat line", "x", "y");
    chart.series.push(Series::new("single", vec![(2.0, 0.7)]));
    chart.series.push(Series::new(
        "flat",
        vec![(0.0, 0.7), (1.0, 0.7), (4.0, 0.7)],
    ));
    (chart.width, chart.height) = (480, 320);
    chart.render()
}

/// More series than fit the legend.
fn crowded_chart() -> RgbImage {
    let series = (0..24).map(|i| {
        let k = f64::from(i);
        let pts = (0..=60)
            .map(|t| f64::from(t) / 10.0)
            .map(|x| (x, (x + k * 0.4).sin() + k * 0.1));
        Series::new(format!("run {i} with seed {}", 1000 + i), pts.collect())
    });
    let mut chart = LineChart::new("Twenty-four runs", "x", "y");
    chart.series = series.collect();
    (chart.width, chart.height) = (640, 400);
    chart.render()
}

/// Every glyph at 1x, 2x and 3x.
fn font_sheet() -> RgbImage {
    let all: String = (' '..='~').collect();
    let mut img = RgbImage::from_pixel(620, 230, WHITE);
    let mut y = 4;
    for scale in 1..=3u32 {
        for chunk in all.as_bytes().chunks(32) {
            let line = std::str::from_utf8(chunk).unwrap_or_default();
            text(&mut img, 4, y, scale, Rgb([34, 34, 34]), line);
            y += text_height(scale) as i32 + 2;
        }
    }
    text(
        &mut img,
        4,
        y,
        2,
        Rgb([34, 34, 34]),
        "0.873±0.012  3×3  Sphinx of black quartz, judge my vow.",
    );
    img
}

/// A small chart drawn with 1x text.
fn small_chart() -> RgbImage {
    let mut chart = LineChart::new("Validation accuracy", "epoch", "accuracy");
    let pts = |k: f64| {
        (0..=50)
            .map(f64::from)
            .map(|e| (e, 0.9 - 0.5 * (-e / k).exp()))
            .collect()
    };
    chart.series.push(Series::new("ResNet-18", pts(8.0)));
    chart
        .series
        .push(Series::new("ResNet-18 + semaug", pts(5.0)));
    (chart.width, chart.height) = (360, 240);
    chart.render()
}

/// Negative values, missing values and long names.
fn edge_bars_chart() -> RgbImage {
    let bars = vec![
        Bar::new("baseline", 0.0),
        Bar::new("a method with a very long descriptive name", 1.25).with_err(0.3),
        Bar::new("negative_transfer_experiment", -0.8).with_err(0.2),
        Bar::new("diverged", f64::NAN),
        Bar::new("Supercalifragilisticexpialidocious", 2.4),
        Bar::new("x", 0.4).with_err(0.05),
    ];
    let mut chart = BarChart::new(
        "Accuracy change vs. real only (points)",
        "delta accuracy (%)",
    );
    chart.bars = bars;
    (chart.width, chart.height) = (640, 400);
    chart.render()
}

/// Training loss, log y: a decaying curve with noise from a fixed formula.
fn loss_chart() -> RgbImage {
    let curve = |scale: f64, floor: f64| -> Vec<(f64, f64)> {
        (0..=400)
            .map(|i| {
                let step = f64::from(i) * 50.0;
                let wiggle = 1.0 + 0.15 * (f64::from(i) * 1.7).sin() * (f64::from(i) * 0.31).cos();
                (step, (scale * (-step / 3000.0).exp() + floor) * wiggle)
            })
            .collect()
    };
    let mut chart = LineChart::new("Training loss", "step", "loss (MSE)");
    chart
        .series
        .push(Series::new("flow matching, real only", curve(2.0, 0.05)));
    chart
        .series
        .push(Series::new("flow matching + synthetic", curve(1.5, 0.02)));
    chart.log_y = true;
    chart.render()
}

/// Accuracy against shots per class with 95% bands, log x.
fn shots_chart() -> RgbImage {
    let shots = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
    let series = |name: &str, ceiling: f64, rate: f64| {
        let acc = |s: f64| ceiling - (ceiling - 0.1) * (-s / rate).exp();
        let width = |s: f64| 0.12 / s.sqrt();
        Series::new(name, shots.iter().map(|&s| (s, acc(s))).collect()).with_band(
            shots
                .iter()
                .map(|&s| (s, acc(s) - width(s), acc(s) + width(s)))
                .collect(),
        )
    };
    let mut chart = LineChart::new(
        "Few-shot accuracy (95% CI)",
        "shots per class",
        "test accuracy",
    );
    chart.series.push(series("real only", 0.82, 18.0));
    chart.series.push(series("real + splice", 0.86, 10.0));
    chart.series.push(series("real + perturb", 0.84, 12.0));
    chart.log_x = true;
    chart.render()
}

/// Accuracy against the synthetic fraction of the training set.
fn fraction_chart() -> RgbImage {
    let fr: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();
    let mut chart = LineChart::new(
        "Accuracy vs synthetic fraction",
        "synthetic fraction",
        "accuracy",
    );
    for (name, peak, at) in [
        ("strength=0.3", 0.78, 0.4),
        ("strength=0.6", 0.80, 0.3),
        ("strength=0.9", 0.74, 0.2),
    ] {
        let points = fr
            .iter()
            .map(|&f| {
                (
                    f,
                    peak - 0.25 * (f - at).powi(2) - if f == 1.0 { 0.1 } else { 0.0 },
                )
            })
            .collect();
        chart.series.push(Series::new(name, points));
    }
    chart.width = 640;
    chart.height = 420;
    chart.render()
}

/// Methods side by side with error bars.
fn methods_chart() -> RgbImage {
    let bars = [
        ("real only", 0.712, 0.011),
        ("flip + crop", 0.745, 0.009),
        ("SDEdit", 0.761, 0.012),
        ("splice (ours)", 0.793, 0.008),
        ("perturb (ours)", 0.781, 0.010),
        ("DA-Fusion", 0.770, 0.013),
        ("real-guidance", 0.752, 0.015),
    ];
    let mut chart = BarChart::new(
        "Top-1 accuracy by method (mean ± 95% CI, 5 seeds)",
        "accuracy",
    );
    chart.bars = bars
        .iter()
        .map(|&(l, v, e)| Bar::new(l, v).with_err(e))
        .collect();
    chart.render()
}
