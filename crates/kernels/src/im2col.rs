//! Convolution geometry and the im2col / col2im transforms for one image.
//!
//! Column matrix layout: `[K, n]` row-major, `K = c_in * kh * kw` in row order
//! `(ci, ky, kx)` (the order of a `[c_out, c_in, kh, kw]` weight row), `n` the pixels of a
//! tile of output rows, so `W [c_out, K] x col [K, n]` lands directly in NCHW.
//!
//! Strided convs first split each input plane into `stride x stride` phase planes (the
//! pixels `(ry + stride * i, rx + stride * j)`). Every column row is then a shifted
//! window of one phase plane (of the plane itself for stride 1), filled with long
//! contiguous copies instead of per-pixel gathers.

use std::ops::Range;

/// Shapes of a 2-D convolution (dilation 1, groups 1, square stride and padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl ConvGeometry {
    /// Rows of the column matrix (`c_in * kh * kw`).
    pub(crate) fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output pixels per image (`out_h * out_w`).
    pub(crate) fn p(&self) -> usize {
        self.out_h * self.out_w
    }

    pub(crate) fn input_per_image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    pub(crate) fn output_per_image(&self) -> usize {
        self.c_out * self.p()
    }

    /// True when the input image already is the column matrix (1x1, stride 1, no padding).
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    /// True when im2col reads phase planes rather than the image itself.
    pub(crate) fn uses_phases(&self) -> bool {
        self.stride > 1
    }

    /// Phase plane `(ry, rx)`: where it sits in a channel's block and its size.
    fn phase(&self, ry: usize, rx: usize) -> Plane {
        let s = self.stride;
        let rows_of = |r: usize| self.h.saturating_sub(r).div_ceil(s);
        let cols_of = |r: usize| self.w.saturating_sub(r).div_ceil(s);
        // Phases are stored row-phase major: all (0, *) planes, then (1, *), ...
        let before_rows: usize = (0..ry).map(rows_of).sum::<usize>() * self.w;
        let before_cols: usize = (0..rx).map(cols_of).sum::<usize>() * rows_of(ry);
        Plane {
            offset: before_rows + before_cols,
            rows: rows_of(ry),
            cols: cols_of(rx),
        }
    }

    /// How the column row of kernel tap `(ky, kx)` reads its source plane.
    fn tap(&self, ky: usize, kx: usize) -> Tap {
        let s = self.stride as isize;
        let (dy, dx) = (
            ky as isize - self.padding as isize,
            kx as isize - self.padding as isize,
        );
        let plane = self.phase(dy.rem_euclid(s) as usize, dx.rem_euclid(s) as usize);
        Tap {
            plane,
            dy: dy.div_euclid(s),
            dx: dx.div_euclid(s),
        }
    }
}

/// A plane inside one channel's block of the im2col source.
#[derive(Clone, Copy, Debug)]
struct Plane {
    offset: usize,
    rows: usize,
    cols: usize,
}

/// Output pixel `(oy, ox)` of a tap reads its plane at `(oy + dy, ox + dx)`.
#[derive(Clone, Copy, Debug)]
struct Tap {
    plane: Plane,
    dy: isize,
    dx: isize,
}

/// `0..out_len` positions `o` with `0 <= o + shift < in_len`.
fn valid_range(shift: isize, in_len: usize, out_len: usize) -> Range<usize> {
    let lo = (-shift).max(0) as usize;
    let hi = (in_len as isize - shift).clamp(0, out_len as isize) as usize;
    lo.min(hi)..hi
}

/// Where a tap's window over a tile of output rows meets real (non-padding) pixels.
struct Window {
    /// Tile rows (tile-relative) that read real rows.
    ys: Range<usize>,
    /// Output columns that read real columns.
    xs: Range<usize>,
    /// Plane index read by tile row `ys.start`, column `xs.start`.
    src_start: usize,
}

impl Window {
    fn new(g: &ConvGeometry, tap: &Tap, rows: &Range<usize>) -> Option<Self> {
        let valid = valid_range(tap.dy, tap.plane.rows, g.out_h);
        let (y0, y1) = (valid.start.max(rows.start), valid.end.min(rows.end));
        let xs = valid_range(tap.dx, tap.plane.cols, g.out_w);
        if y0 >= y1 || xs.is_empty() {
            return None;
        }
        let src_row = (y0 as isize + tap.dy) as usize;
        let src_col = (xs.start as isize + tap.dx) as usize;
        Some(Window {
            ys: y0 - rows.start..y1 - rows.start,
            xs,
            src_start: tap.plane.offset + src_row * tap.plane.cols + src_col,
        })
    }

    /// When plane rows are as long as output rows the whole window is one flat range:
    /// (tile range, plane start). Entries in between that wrap into a neighbouring row
    /// must be zeroed afterwards ([`Window::zero_padding`]).
    fn flat(&self, g: &ConvGeometry, tap: &Tap) -> Option<(Range<usize>, usize)> {
        (tap.plane.cols == g.out_w).then(|| {
            let w = g.out_w;
            let dst = self.ys.start * w + self.xs.start..(self.ys.end - 1) * w + self.xs.end;
            (dst, self.src_start)
        })
    }

    /// Zeroes every entry of the tile row `row` that reads padding.
    fn zero_padding(&self, g: &ConvGeometry, row: &mut [f32]) {
        let w = g.out_w;
        row[..self.ys.start * w + self.xs.start].fill(0.0);
        row[(self.ys.end - 1) * w + self.xs.end..].fill(0.0);
        // Padding columns are few (about the kernel radius): walk them down the rows.
        let valid_rows = &mut row[self.ys.start * w..self.ys.end * w];
        for ox in (0..self.xs.start).chain(self.xs.end..w) {
            for v in valid_rows[ox..].iter_mut().step_by(w) {
                *v = 0.0;
            }
        }
    }

    /// (tile offset, plane offset) of each valid line, for planes narrower or wider
    /// than the output.
    fn lines(&self, g: &ConvGeometry, tap: &Tap) -> impl Iterator<Item = (usize, usize)> {
        let (w, cols, src_start, x0) = (g.out_w, tap.plane.cols, self.src_start, self.xs.start);
        self.ys
            .clone()
            .enumerate()
            .map(move |(i, t)| (t * w + x0, src_start + i * cols))
    }
}

/// Fills `col` (`[K, rows.len() * out_w]` with rows `row_stride` apart, every used
/// element written) with the columns of output rows `rows`. `source` is the image
/// (`[c_in, h, w]`) or, for strided convs, its phase planes from [`split_phases`].
pub(crate) fn im2col(
    g: &ConvGeometry,
    source: &[f32],
    col: &mut [f32],
    row_stride: usize,
    rows: Range<usize>,
) {
    let (plane, tile) = (g.h * g.w, rows.len() * g.out_w);
    if tile == 0 {
        return;
    }
    let mut col_rows = col.chunks_mut(row_stride);
    for src in source.chunks_exact(plane).take(g.c_in) {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                copy_window(g, &g.tap(ky, kx), src, &mut col_row[..tile], &rows);
            }
        }
    }
}

/// Adds the columns `col` (rows `row_stride` apart) of output rows `rows` onto `dsource`
/// (the image gradient, or for strided convs its phase planes, merged later by
/// [`merge_phases`]): the adjoint of [`im2col`]. `col` is scratch: its padding entries
/// are zeroed.
pub(crate) fn col2im(
    g: &ConvGeometry,
    col: &mut [f32],
    row_stride: usize,
    dsource: &mut [f32],
    rows: Range<usize>,
) {
    let (plane, tile) = (g.h * g.w, rows.len() * g.out_w);
    if tile == 0 {
        return;
    }
    let mut col_rows = col.chunks_mut(row_stride);
    for dst in dsource.chunks_exact_mut(plane).take(g.c_in) {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(col_row) = col_rows.next() else {
                    return;
                };
                add_window(g, &g.tap(ky, kx), &mut col_row[..tile], dst, &rows);
            }
        }
    }
}

fn copy_window(g: &ConvGeometry, tap: &Tap, src: &[f32], row: &mut [f32], rows: &Range<usize>) {
    let Some(window) = Window::new(g, tap, rows) else {
        row.fill(0.0);
        return;
    };
    if let Some((dst, src_start)) = window.flat(g, tap) {
        let len = dst.len();
        row[dst].copy_from_slice(&src[src_start..][..len]);
    } else {
        let len = window.xs.len();
        for (dst_start, src_start) in window.lines(g, tap) {
            row[dst_start..][..len].copy_from_slice(&src[src_start..][..len]);
        }
    }
    window.zero_padding(g, row);
}

fn add_window(g: &ConvGeometry, tap: &Tap, row: &mut [f32], dst: &mut [f32], rows: &Range<usize>) {
    let Some(window) = Window::new(g, tap, rows) else {
        return;
    };
    if let Some((src, dst_start)) = window.flat(g, tap) {
        window.zero_padding(g, row);
        add_into(&mut dst[dst_start..][..src.len()], &row[src]);
    } else {
        let len = window.xs.len();
        for (row_start, dst_start) in window.lines(g, tap) {
            add_into(&mut dst[dst_start..][..len], &row[row_start..][..len]);
        }
    }
}

fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Rearranges one image (`[c_in, h, w]`) into its `stride x stride` phase planes per
/// channel (same number of values), for strided convs.
pub(crate) fn split_phases(g: &ConvGeometry, x: &[f32], phases: &mut [f32]) {
    let plane = g.h * g.w;
    for (src, dst) in x.chunks_exact(plane).zip(phases.chunks_exact_mut(plane)) {
        for_each_phase_row(g, |src_row, dst_range| {
            let line = &src[src_row.clone()];
            for (d, s) in dst[dst_range].iter_mut().zip(line.iter().step_by(g.stride)) {
                *d = *s;
            }
        });
    }
}

/// The inverse of [`split_phases`]: writes every pixel of `dx` from the phase planes.
pub(crate) fn merge_phases(g: &ConvGeometry, phases: &[f32], dx: &mut [f32]) {
    let plane = g.h * g.w;
    for (src, dst) in phases.chunks_exact(plane).zip(dx.chunks_exact_mut(plane)) {
        for_each_phase_row(g, |dst_row, src_range| {
            let line = &mut dst[dst_row];
            for (d, s) in line.iter_mut().step_by(g.stride).zip(&src[src_range]) {
                *d = *s;
            }
        });
    }
}

/// Calls `f(image row segment, phase row range)` for every row of every phase plane:
/// the segment starts at the phase's first pixel in that image row and runs to the row
/// end (take every `stride`-th value).
fn for_each_phase_row(g: &ConvGeometry, mut f: impl FnMut(Range<usize>, Range<usize>)) {
    for ry in 0..g.stride.min(g.h) {
        for rx in 0..g.stride.min(g.w) {
            let plane = g.phase(ry, rx);
            for i in 0..plane.rows {
                let iy = ry + i * g.stride;
                let dst = plane.offset + i * plane.cols;
                f(iy * g.w + rx..(iy + 1) * g.w, dst..dst + plane.cols);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(h: usize, w: usize, k: usize, stride: usize, padding: usize) -> ConvGeometry {
        ConvGeometry {
            batch: 1,
            c_in: 2,
            h,
            w,
            c_out: 1,
            kh: k,
            kw: k,
            stride,
            padding,
            out_h: (h + 2 * padding - k) / stride + 1,
            out_w: (w + 2 * padding - k) / stride + 1,
        }
    }

    /// The definition of im2col, one element at a time.
    fn naive_im2col(g: &ConvGeometry, x: &[f32]) -> Vec<f32> {
        let mut col = vec![0.0; g.k() * g.p()];
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (ci * g.kh + ky) * g.kw + kx;
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                            let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                                col[row * g.p() + oy * g.out_w + ox] =
                                    x[(ci * g.h + iy as usize) * g.w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
        col
    }

    /// im2col through phases when the geometry is strided, as the conv does.
    fn columns(g: &ConvGeometry, x: &[f32], rows: Range<usize>) -> Vec<f32> {
        let mut source = x.to_vec();
        if g.uses_phases() {
            split_phases(g, x, &mut source);
        }
        let n = rows.len() * g.out_w;
        // A padded row stride, as the conv uses to dodge cache-set aliasing.
        let stride = n + 3;
        let mut padded = vec![f32::NAN; g.k() * stride];
        im2col(g, &source, &mut padded, stride, rows);
        padded
            .chunks(stride)
            .flat_map(|row| row[..n].to_vec())
            .collect()
    }

    /// col2im through phases when the geometry is strided, as the conv backward does.
    fn scatter(g: &ConvGeometry, col: &[f32], tiles: &[Range<usize>]) -> Vec<f32> {
        let mut dsource = vec![0.0; g.input_per_image()];
        for tile in tiles {
            let n = tile.len() * g.out_w;
            let mut part: Vec<f32> = col
                .chunks_exact(g.p())
                .flat_map(|row| row[tile.start * g.out_w..][..n].to_vec())
                .collect();
            col2im(g, &mut part, n.max(1), &mut dsource, tile.clone());
        }
        if !g.uses_phases() {
            return dsource;
        }
        let mut dx = vec![f32::NAN; g.input_per_image()];
        merge_phases(g, &dsource, &mut dx);
        dx
    }

    const GEOMETRIES: &[(usize, usize, usize, usize, usize)] = &[
        (5, 7, 3, 1, 1),
        (6, 6, 3, 2, 1),
        (7, 5, 3, 2, 1),
        (4, 4, 1, 2, 0),
        (5, 5, 5, 1, 2),
        (3, 3, 3, 1, 0),
        (4, 6, 2, 3, 1),
        (2, 2, 3, 1, 2),
        (6, 6, 3, 1, 1),
        (1, 4, 3, 1, 1),
        (4, 1, 3, 1, 1),
        (3, 3, 1, 1, 0),
        (9, 8, 3, 2, 1),
        (7, 7, 1, 3, 0),
        (5, 6, 3, 3, 2),
        (2, 3, 3, 2, 1),
        (1, 1, 3, 2, 1),
    ];

    #[test]
    fn phases_round_trip() {
        for &(h, w, k, s, p) in GEOMETRIES {
            let g = geometry(h, w, k, s, p);
            let x: Vec<f32> = (0..g.input_per_image()).map(|v| v as f32).collect();
            let mut phases = vec![f32::NAN; x.len()];
            split_phases(&g, &x, &mut phases);
            let mut back = vec![f32::NAN; x.len()];
            merge_phases(&g, &phases, &mut back);
            assert_eq!(back, x, "{g:?}");
        }
    }

    #[test]
    fn im2col_matches_definition_in_tiles_and_col2im_is_its_adjoint() {
        for &(h, w, k, s, p) in GEOMETRIES {
            let g = geometry(h, w, k, s, p);
            let x: Vec<f32> = (0..g.input_per_image()).map(|v| v as f32 + 1.0).collect();
            let col = columns(&g, &x, 0..g.out_h);
            assert_eq!(col, naive_im2col(&g, &x), "im2col for {g:?}");
            // Tiles of output rows give the matching column blocks.
            for tile in [0..1, 1..g.out_h, g.out_h / 2..g.out_h] {
                let n = tile.len() * g.out_w;
                let part = columns(&g, &x, tile.clone());
                for (r, part_row) in part.chunks_exact(n.max(1)).enumerate().take(g.k()) {
                    let full_row = &col[r * g.p() + tile.start * g.out_w..][..n];
                    assert_eq!(&part_row[..n], full_row, "tile {tile:?} of {g:?}");
                }
            }
            // <im2col(x), c> == <x, col2im(c)> for any c, whole or tile by tile.
            let c: Vec<f32> = (0..col.len()).map(|v| ((v * 7) % 11) as f32).collect();
            let whole = 0..g.out_h;
            let back = scatter(&g, &c, std::slice::from_ref(&whole));
            let halves = [0..g.out_h / 2, g.out_h / 2..g.out_h];
            assert_eq!(back, scatter(&g, &c, &halves), "tiled col2im for {g:?}");
            let lhs: f32 = col.iter().zip(&c).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "adjoint for {g:?}");
        }
    }
}
