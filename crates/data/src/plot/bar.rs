//! Bar charts comparing methods: one bar per method from zero to its value, an optional
//! error bar, the value written above and the method's name below.
//!
//! Names are wrapped onto up to three lines at the widest font scale that fits every
//! bar's slot; a name that still does not fit at 1x is cut with `..`. A bar whose value
//! is not finite keeps its slot and reads `n/a`.

use image::{Rgb, RgbImage};

use super::canvas::{Canvas, Rect};
use super::frame::{self, Frame};
use super::line::MAX_SIDE;
use super::style::{palette_color, Style, AXIS, BACKGROUND, INK, MUTED};
use super::text::{text_height, text_width, truncate, wrap};
use super::ticks::{Axis, AxisKind};

/// Most lines a category label is wrapped onto.
const MAX_LABEL_LINES: usize = 3;

/// Bar width as a fraction of its slot.
const BAR_FILL: f64 = 0.66;

/// One bar of a [`BarChart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Half-width of an error bar drawn from `value - err` to `value + err`.
    pub err: Option<f64>,
    /// `None` takes the palette colour for the bar's position.
    pub color: Option<Rgb<u8>>,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: f64) -> Self {
        Bar {
            label: label.into(),
            value,
            err: None,
            color: None,
        }
    }

    /// The same bar with a ± `err` error bar.
    pub fn with_err(mut self, err: f64) -> Self {
        self.err = Some(err);
        self
    }

    /// The same bar in `color` instead of its palette colour.
    pub fn with_color(mut self, color: Rgb<u8>) -> Self {
        self.color = Some(color);
        self
    }

    /// The error half-width when it is usable (finite; its sign is ignored).
    fn half_width(&self) -> Option<f64> {
        self.err
            .filter(|e| e.is_finite() && *e != 0.0)
            .map(f64::abs)
    }
}

/// A chart of [`Bar`]s against a linear y axis that always includes zero.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub bars: Vec<Bar>,
    /// Image size in pixels (each side clamped to [`MAX_SIDE`]).
    pub width: u32,
    pub height: u32,
}

impl Default for BarChart {
    fn default() -> Self {
        BarChart {
            title: String::new(),
            y_label: String::new(),
            bars: Vec::new(),
            width: 800,
            height: 500,
        }
    }
}

/// Category labels fitted to the bar slots.
struct Labels {
    scale: u32,
    lines: Vec<Vec<String>>,
}

impl Labels {
    /// Pixel height of the tallest label.
    fn height(&self) -> i64 {
        let lines = self.lines.iter().map(Vec::len).max().unwrap_or(1).max(1) as i64;
        lines * i64::from(text_height(self.scale))
    }
}

impl BarChart {
    /// An 800 x 500 chart with these labels and no bars yet.
    pub fn new(title: impl Into<String>, y_label: impl Into<String>) -> Self {
        BarChart {
            title: title.into(),
            y_label: y_label.into(),
            ..Self::default()
        }
    }

    /// The chart as an image of the requested size.
    pub fn render(&self) -> RgbImage {
        let (w, h) = (self.width.min(MAX_SIDE), self.height.min(MAX_SIDE));
        let mut img = RgbImage::from_pixel(w, h, BACKGROUND);
        let style = Style::for_size(w, h);
        let top = frame::draw_title(&mut img, &style, &self.title);
        let Some((frame, labels)) = self.layout(&img, &style, top) else {
            return img;
        };
        frame::draw_grid(&mut img, &frame);
        let slot = frame.plot.width() as f64 / self.bars.len().max(1) as f64;
        let painter = Painter {
            frame: &frame,
            style: &style,
            slot,
            decimals: Decimals::for_values(self.bars.iter().map(|b| &b.value)),
        };
        for (i, (bar, lines)) in self.bars.iter().zip(&labels.lines).enumerate() {
            let cx = frame.plot.x0 as f64 + (i as f64 + 0.5) * slot;
            let color = bar.color.unwrap_or_else(|| palette_color(i));
            painter.bar(&mut img, bar, cx, color);
            painter.category(&mut img, &labels, lines, cx);
        }
        draw_baseline(&mut img, &frame, &style);
        frame::draw_y_axis(&mut img, &frame, &style, &self.y_label);
        if self.bars.is_empty() {
            frame::draw_no_data(&mut img, &frame, &style);
        }
        img
    }

    /// Plot rectangle, y axis and fitted labels; `None` when the image is too small.
    /// The parts depend on each other (label lines set the plot height, which sets the
    /// y ticks, whose width sets the slot width, which sets the label lines), so the
    /// layout is redone (a few times at most) until the labels fit the room left.
    fn layout(&self, img: &RgbImage, style: &Style, top: i64) -> Option<(Frame, Labels)> {
        let mut labels_h = style.line_h();
        let mut laid = self.layout_with(img, style, top, labels_h)?;
        for _ in 0..3 {
            if laid.1.height() <= labels_h {
                break;
            }
            labels_h = laid.1.height();
            laid = self.layout_with(img, style, top, labels_h)?;
        }
        Some(laid)
    }

    /// One layout pass with `labels_h` px below the plot for category labels.
    fn layout_with(
        &self,
        img: &RgbImage,
        style: &Style,
        top: i64,
        labels_h: i64,
    ) -> Option<(Frame, Labels)> {
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        let bottom = h - frame::x_axis_height(style, "", labels_h);
        let y = self.y_axis(bottom - top, style);
        let left = frame::y_axis_width(&y, style, &self.y_label);
        let right = w - style.pad;
        if right - left < 8 || bottom - top < 16 {
            return None;
        }
        let slot = (right - left) / self.bars.len().max(1) as i64;
        let labels = self.fit_labels(style, slot);
        let plot = Rect::new(left, top, right, bottom);
        Some((
            Frame {
                plot,
                inset: 0.0,
                x: None,
                y,
            },
            labels,
        ))
    }

    /// A y axis over zero, every bar and every error bar, with headroom above (and
    /// below, for negative bars) for the value labels.
    fn y_axis(&self, plot_h: i64, style: &Style) -> Axis {
        let ends = self
            .bars
            .iter()
            .filter(|b| b.value.is_finite())
            .flat_map(|b| {
                let e = b.half_width().unwrap_or(0.0);
                [b.value - e, b.value + e]
            });
        let (lo, hi) = ends.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if hi > lo { (lo, hi) } else { (0.0, 1.0) };
        let room = (2 * style.line_h()) as f64 / plot_h.max(1) as f64;
        let pad = (hi - lo) * room;
        let lo = if lo < 0.0 { lo - pad } else { lo };
        let hi = if hi > 0.0 { hi + pad } else { hi };
        frame::fit_y_axis(lo, hi, AxisKind::Whole, plot_h, style)
    }

    /// Every label wrapped to `slot` px at the largest scale where all fit, not
    /// counting labels that fit at no scale: those are cut with `..` at the chosen
    /// scale rather than shrinking every other label for nothing.
    fn fit_labels(&self, style: &Style, slot: i64) -> Labels {
        let room = u32::try_from(slot - 2 * i64::from(style.scale) - 2).unwrap_or(0);
        let fits = |b: &Bar, s: u32| wrap(s, &b.label, room, MAX_LABEL_LINES).is_some();
        let helped: Vec<&Bar> = self.bars.iter().filter(|b| fits(b, 1)).collect();
        let scale = (1..=style.scale)
            .rev()
            .find(|&s| helped.iter().all(|b| fits(b, s)))
            .unwrap_or(1);
        let lines = self
            .bars
            .iter()
            .map(|b| {
                wrap(scale, &b.label, room, MAX_LABEL_LINES)
                    .unwrap_or_else(|| cut_label(scale, &b.label, room))
            })
            .collect();
        Labels { scale, lines }
    }
}

/// `label` in at most [`MAX_LABEL_LINES`] lines of `room` px at `scale`, cut with `..`.
fn cut_label(scale: u32, label: &str, room: u32) -> Vec<String> {
    let Some(mut lines) = wrap(scale, label, room, usize::MAX) else {
        return vec![truncate(scale, label, room)];
    };
    if lines.len() > MAX_LABEL_LINES {
        lines.truncate(MAX_LABEL_LINES);
        if let Some(last) = lines.last_mut() {
            *last = truncate(scale, &format!("{last}.."), room);
        }
    }
    lines
}

/// What drawing one bar needs besides the bar: the frame, the sizes, the slot width
/// and the decimals shared by every value label.
struct Painter<'a> {
    frame: &'a Frame,
    style: &'a Style,
    slot: f64,
    decimals: Decimals,
}

impl Painter<'_> {
    /// One bar, its error bar and its value label, centred on column `cx`.
    fn bar(&self, img: &mut RgbImage, bar: &Bar, cx: f64, color: Rgb<u8>) {
        let (frame, style) = (self.frame, self.style);
        let (Some(zero), Some(top)) = (frame.py(0.0), frame.py(bar.value)) else {
            let y = frame.py(0.0).unwrap_or(frame.plot.y1 as f64) as i64 - style.line_h();
            frame::centred_text(img, cx as i64, y, style.scale, MUTED, "n/a");
            return;
        };
        let half = (self.slot * BAR_FILL / 2.0).max(1.0);
        let (x0, x1) = ((cx - half).round() as i64, (cx + half).round() as i64);
        let (y0, y1) = (zero.min(top).round() as i64, zero.max(top).round() as i64);
        Canvas::new(img).fill(Rect::new(x0, y0, x1, y1), color, 1.0);
        let err = bar.half_width().unwrap_or(0.0);
        if err > 0.0 {
            self.error_bar(img, bar.value, err, cx, half);
        }
        self.value(img, bar.value, err, cx);
    }

    /// A vertical whisker from `value - err` to `value + err` with caps.
    fn error_bar(&self, img: &mut RgbImage, value: f64, err: f64, cx: f64, half: f64) {
        let (Some(a), Some(b)) = (self.frame.py(value - err), self.frame.py(value + err)) else {
            return;
        };
        let w = self.style.line_width * 0.8;
        let cap = (half * 0.4).max(3.0);
        let mut c = Canvas::new(img);
        // A white halo first keeps the whisker visible on a dark bar.
        for (width, color) in [(w + 2.0, BACKGROUND), (w, INK)] {
            c.line((cx, a), (cx, b), width, color);
            c.line((cx - cap, a), (cx + cap, a), width, color);
            c.line((cx - cap, b), (cx + cap, b), width, color);
        }
    }

    /// The value (with ± err when that fits the slot) above a bar, or below a
    /// negative one, at the largest scale that fits the slot.
    fn value(&self, img: &mut RgbImage, value: f64, err: f64, cx: f64) {
        let room = u32::try_from(self.slot as i64 - 2).unwrap_or(0);
        let plain = self.decimals.format(value, None);
        let with_err = self.decimals.format(value, Some(err).filter(|e| *e > 0.0));
        let s = self.style.scale;
        let candidates = [(s, &with_err), (s, &plain), (1, &with_err), (1, &plain)];
        let Some((scale, label)) = candidates
            .into_iter()
            .find(|(s, l)| text_width(*s, l) <= room)
        else {
            return;
        };
        let gap = 2 * i64::from(s) + 2;
        let cap = i64::from(7 * scale);
        let y = if value >= 0.0 {
            self.frame.py(value + err).map(|y| y as i64 - gap - cap)
        } else {
            self.frame.py(value - err).map(|y| y as i64 + gap)
        };
        if let Some(y) = y {
            // Clear the grid behind the label so the digits read cleanly.
            let half = i64::from(text_width(scale, label)) / 2 + 2;
            let (x, bottom) = (cx as i64, y + cap + 2);
            Canvas::new(img).fill(
                Rect::new(x - half, y - 2, x + half + 1, bottom),
                BACKGROUND,
                1.0,
            );
            frame::centred_text(img, x, y, scale, INK, label);
        }
    }

    /// `lines` of a category label, centred under column `cx`.
    fn category(&self, img: &mut RgbImage, labels: &Labels, lines: &[String], cx: f64) {
        let line_h = i64::from(text_height(labels.scale));
        let mut y = self.frame.plot.y1 + self.style.tick_len + 2 * i64::from(self.style.scale);
        for line in lines {
            frame::centred_text(img, cx as i64, y, labels.scale, INK, line);
            y += line_h;
        }
    }
}

/// How value labels are written: one number of decimals for every bar (three
/// significant digits of the largest value), so labels line up and compare.
#[derive(Clone, Copy, Debug)]
enum Decimals {
    Fixed(usize),
    Scientific,
}

impl Decimals {
    fn for_values<'a>(values: impl Iterator<Item = &'a f64>) -> Decimals {
        let largest = values
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        if largest >= 1e6 {
            return Decimals::Scientific;
        }
        let magnitude = if largest > 0.0 {
            largest.log10().floor() as i32
        } else {
            0
        };
        Decimals::Fixed((2 - magnitude).clamp(0, 4) as usize)
    }

    /// `v`, and `± err` to the same precision when given.
    fn format(self, v: f64, err: Option<f64>) -> String {
        match (self, err) {
            (Decimals::Fixed(d), Some(e)) => format!("{v:.d$}±{e:.d$}"),
            (Decimals::Fixed(d), None) => format!("{v:.d$}"),
            (Decimals::Scientific, Some(e)) => format!("{v:.2e}±{e:.1e}"),
            (Decimals::Scientific, None) => format!("{v:.2e}"),
        }
    }
}

/// The zero line the bars stand on.
fn draw_baseline(img: &mut RgbImage, frame: &Frame, style: &Style) {
    let Some(y) = frame.py(0.0) else { return };
    let aw = i64::from(style.scale.min(2));
    let row = y.round() as i64;
    let p = frame.plot;
    Canvas::new(img).fill(Rect::new(p.x0 - aw, row, p.x1, row + aw), AXIS, 1.0);
}
