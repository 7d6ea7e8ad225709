//! Drawing strings with the bitmap font at integer scales, measuring them, and fitting
//! them into a width (shrink, wrap, or truncate with `..`).
//!
//! A string's box is `text_width` wide and `text_height` tall; `(x, y)` is its top-left
//! corner. Pixels outside the image are skipped, so text may hang off an edge.

use image::{Rgb, RgbImage};

use super::font::{glyph, Glyph, ROWS};

/// Empty columns between two glyphs, in font pixels.
const GAP: u32 = 1;

/// Width in pixels of `s` drawn at `scale`: from the first inked column to the last
/// glyph's last column (no trailing gap).
pub fn text_width(scale: u32, s: &str) -> u32 {
    let glyphs = s.chars().map(|c| glyph(c).width);
    let (sum, count) = glyphs.fold((0u32, 0u32), |(w, n), g| (w.saturating_add(g), n + 1));
    let gaps = count.saturating_sub(1) * GAP;
    sum.saturating_add(gaps).saturating_mul(scale)
}

/// Height in pixels of a line of text at `scale`, descenders included.
pub fn text_height(scale: u32) -> u32 {
    ROWS * scale
}

/// Draw `s` with its box's top-left corner at (`x`, `y`), each font pixel a
/// `scale` x `scale` square of `color`.
pub fn text(img: &mut RgbImage, x: i32, y: i32, scale: u32, color: Rgb<u8>, s: &str) {
    let mut pen = i64::from(x);
    for c in s.chars() {
        let g = glyph(c);
        draw_glyph(&g, scale, |gx, gy| {
            put(img, pen + gx, i64::from(y) + gy, color);
        });
        pen += i64::from((g.width + GAP) * scale);
    }
}

/// Draw `s` turned a quarter turn counter-clockwise (read bottom to top), as for a
/// y-axis label. Its box is `text_height` wide and `text_width` tall, top-left at
/// (`x`, `y`).
pub(crate) fn text_up(img: &mut RgbImage, x: i32, y: i32, scale: u32, color: Rgb<u8>, s: &str) {
    let bottom = i64::from(y) + i64::from(text_width(scale, s)) - 1;
    let mut pen = 0i64;
    for c in s.chars() {
        let g = glyph(c);
        draw_glyph(&g, scale, |gx, gy| {
            put(img, i64::from(x) + gy, bottom - (pen + gx), color);
        });
        pen += i64::from((g.width + GAP) * scale);
    }
}

/// Call `plot(dx, dy)` for every screen pixel of `g` at `scale`, relative to its box.
fn draw_glyph(g: &Glyph, scale: u32, mut plot: impl FnMut(i64, i64)) {
    for row in 0..ROWS {
        for col in 0..g.width {
            if !g.ink(col, row) {
                continue;
            }
            for sy in 0..scale {
                for sx in 0..scale {
                    plot(i64::from(col * scale + sx), i64::from(row * scale + sy));
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(img.width()) && y < i64::from(img.height()) {
        img.put_pixel(x as u32, y as u32, color);
    }
}

/// `s` cut to at most `max_width` px at `scale`, ending in `..` when cut.
pub(crate) fn truncate(scale: u32, s: &str, max_width: u32) -> String {
    if text_width(scale, s) <= max_width {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    for keep in (0..chars.len()).rev() {
        let cut: String = chars[..keep]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_string()
            + "..";
        if text_width(scale, &cut) <= max_width {
            return cut;
        }
    }
    String::new()
}

/// `s` broken into lines no wider than `max_width` px at `scale`: at spaces, or after
/// `-`, `_` and `/` inside long words. `None` when a piece cannot fit or more than
/// `max_lines` lines are needed.
pub(crate) fn wrap(scale: u32, s: &str, max_width: u32, max_lines: usize) -> Option<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for (sep, piece) in pieces(s) {
        let joined = format!("{line}{sep}{piece}");
        if line.is_empty() || text_width(scale, &joined) <= max_width {
            line = if line.is_empty() {
                piece.to_string()
            } else {
                joined
            };
        } else {
            lines.push(std::mem::replace(&mut line, piece.to_string()));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    let fits = lines.iter().all(|l| text_width(scale, l) <= max_width);
    (fits && lines.len() <= max_lines).then_some(lines)
}

/// The breakable pieces of `s` with the separator that joins each to the one before:
/// a space between words, nothing after a `-`, `_` or `/` inside a word.
fn pieces(s: &str) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut sep = " ";
        let mut start = 0;
        for (i, c) in word.char_indices() {
            if matches!(c, '-' | '_' | '/') && i + 1 < word.len() {
                out.push((sep, &word[start..=i]));
                sep = "";
                start = i + 1;
            }
        }
        out.push((sep, &word[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_after_hyphens_within_the_width() {
        let lines = wrap(1, "real-guidance with DA-Fusion", 50, 4).unwrap_or_default();
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(lines.iter().all(|l| text_width(1, l) <= 50), "{lines:?}");
        // Rejoining restores the words: hyphen breaks add no space.
        let joined = lines.iter().fold(String::new(), |acc, l| {
            if acc.is_empty() || acc.ends_with('-') {
                acc + l
            } else {
                acc + " " + l
            }
        });
        assert_eq!(joined, "real-guidance with DA-Fusion");
        assert_eq!(wrap(1, "Supercalifragilistic", 30, 3), None);
        assert_eq!(wrap(1, "a b c d e f", 1, 3), None, "too many lines");
    }

    #[test]
    fn truncate_fits_and_marks_the_cut() {
        let s = "a very long method name";
        assert_eq!(truncate(2, s, 10_000), s);
        let cut = truncate(2, s, 100);
        assert!(cut.ends_with("..") && text_width(2, &cut) <= 100, "{cut}");
        assert_eq!(truncate(2, s, 3), "");
    }
}
