//! The legend: one row per named series (a stroke sample, a marker or band swatch, the
//! name) in a box placed in whichever plot corner covers the fewest data pixels.

use image::{Rgb, RgbImage};

use super::canvas::{Canvas, Rect};
use super::frame::clamp_i32;
use super::style::{Style, BACKGROUND, BAND_ALPHA, GRID, INK, MUTED};
use super::text::{text, text_height, text_width, truncate};

/// One legend row.
pub(crate) struct Entry {
    pub name: String,
    pub color: Rgb<u8>,
    pub marker: bool,
    pub band: bool,
}

/// The legend may cover at most this fraction of the plot's height and width.
const MAX_COVER: f64 = 0.5;

/// Sizes of the legend's parts at one text scale.
struct Metrics {
    scale: u32,
    pad: i64,
    row_h: i64,
    swatch_w: i64,
}

impl Metrics {
    fn new(scale: u32) -> Self {
        let s = i64::from(scale);
        Metrics {
            scale,
            pad: 3 + 3 * s,
            row_h: i64::from(text_height(scale)) + 2 * s,
            swatch_w: 10 + 8 * s,
        }
    }

    /// Box height for `rows` rows.
    fn height(&self, rows: usize) -> i64 {
        2 * self.pad + rows as i64 * self.row_h - 2 * i64::from(self.scale)
    }
}

/// Draw the legend for `entries` inside `plot`, avoiding the pixels in `occupied`
/// (data points and stroke samples, in image coordinates) as far as a corner allows.
pub(crate) fn draw_legend(
    img: &mut RgbImage,
    plot: Rect,
    style: &Style,
    entries: &[Entry],
    occupied: &[(f64, f64)],
) {
    let room_h = (plot.height() as f64 * MAX_COVER) as i64;
    // The label scale if every row fits half the plot, else 1x with what fits.
    let m = (1..=style.scale)
        .rev()
        .map(Metrics::new)
        .find(|m| m.height(entries.len()) <= room_h)
        .unwrap_or_else(|| Metrics::new(1));
    let rows = fit_rows(entries, plot, room_h, &m);
    if rows.is_empty() {
        return;
    }
    let name_w = rows
        .iter()
        .map(|(_, n)| i64::from(text_width(m.scale, n)))
        .max()
        .unwrap_or(0);
    let w = 3 * m.pad + m.swatch_w + name_w;
    let h = m.height(rows.len());
    if w > plot.width() || h > plot.height() {
        return;
    }
    let spot = best_corner(plot, w, h, m.pad, occupied);
    let mut c = Canvas::new(img);
    c.fill(spot, BACKGROUND, 0.9);
    outline(&mut c, spot, GRID);
    for (i, (entry, name)) in rows.iter().enumerate() {
        let top = spot.y0 + m.pad + i as i64 * m.row_h;
        draw_row(img, style, &m, (spot.x0 + m.pad, top), entry, name);
    }
}

/// The rows that fit `room_h` px, names cut to fit half the plot's width; a last
/// `+N more` row stands for the entries left out.
fn fit_rows<'a>(
    entries: &'a [Entry],
    plot: Rect,
    room_h: i64,
    m: &Metrics,
) -> Vec<(Option<&'a Entry>, String)> {
    let room_w = (plot.width() as f64 * MAX_COVER) as i64;
    let max_name = u32::try_from(room_w - m.swatch_w - 3 * m.pad).unwrap_or(0);
    let max_rows = ((room_h - 2 * m.pad) / m.row_h.max(1)).max(1) as usize;
    let mut rows: Vec<(Option<&Entry>, String)> = entries
        .iter()
        .map(|e| (Some(e), truncate(m.scale, &e.name, max_name)))
        .collect();
    if rows.len() > max_rows {
        rows.truncate(max_rows.saturating_sub(1));
        let more = entries.len() - rows.len();
        rows.push((None, format!("+{more} more")));
    }
    rows.retain(|(_, n)| !n.is_empty());
    rows
}

/// The corner box (top-right, top-left, bottom-right, bottom-left, in order of
/// preference) holding the fewest occupied points.
fn best_corner(plot: Rect, w: i64, h: i64, margin: i64, occupied: &[(f64, f64)]) -> Rect {
    let (l, r) = (plot.x0 + margin, plot.x1 - margin - w);
    let (t, b) = (plot.y0 + margin, plot.y1 - margin - h);
    let corners = [(r, t), (l, t), (r, b), (l, b)].map(|(x, y)| Rect::new(x, y, x + w, y + h));
    let covered = |rect: &Rect| {
        let grown = Rect::new(
            rect.x0 - margin,
            rect.y0 - margin,
            rect.x1 + margin,
            rect.y1 + margin,
        );
        occupied
            .iter()
            .filter(|&&(x, y)| grown.contains(x, y))
            .count()
    };
    let mut best = corners[0];
    let mut best_count = covered(&best);
    for rect in &corners[1..] {
        let n = covered(rect);
        if n < best_count {
            best = *rect;
            best_count = n;
        }
    }
    best
}

fn outline(c: &mut Canvas, r: Rect, color: Rgb<u8>) {
    c.fill(Rect::new(r.x0, r.y0, r.x1, r.y0 + 1), color, 1.0);
    c.fill(Rect::new(r.x0, r.y1 - 1, r.x1, r.y1), color, 1.0);
    c.fill(Rect::new(r.x0, r.y0, r.x0 + 1, r.y1), color, 1.0);
    c.fill(Rect::new(r.x1 - 1, r.y0, r.x1, r.y1), color, 1.0);
}

/// One row at `at` (its top-left): band swatch, stroke and marker for `entry`, then
/// its name. Strokes keep the chart's widths so they match the plot.
fn draw_row(
    img: &mut RgbImage,
    style: &Style,
    m: &Metrics,
    at: (i64, i64),
    entry: &Option<&Entry>,
    name: &str,
) {
    let (x, top) = at;
    let cap = i64::from(7 * m.scale);
    let mid = top as f64 + cap as f64 / 2.0;
    let (name_x, name_y) = (clamp_i32(x + m.swatch_w + m.pad), clamp_i32(top));
    let Some(e) = entry else {
        text(img, name_x, name_y, m.scale, MUTED, name);
        return;
    };
    let mut c = Canvas::new(img);
    if e.band {
        let swatch = Rect::new(x, top - 1, x + m.swatch_w, top + cap + 1);
        c.fill(swatch, e.color, BAND_ALPHA);
    }
    let (x0, x1) = (x as f64 + 1.0, (x + m.swatch_w) as f64 - 1.0);
    c.line((x0, mid), (x1, mid), style.line_width, e.color);
    if e.marker {
        c.disc(((x0 + x1) / 2.0, mid), style.marker_radius, e.color);
    }
    text(img, name_x, name_y, m.scale, INK, name);
}
