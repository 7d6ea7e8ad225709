//! The batch loops behind conv2d and conv_transpose2d: im2col + gemm products, the
//! input gradient (gemm + col2im) and the weight gradient, over tiles of output rows.
//!
//! Everything takes the geometry `g` of a *direct* convolution (input `[c_in, h, w]`,
//! output `[c_out, out_h, out_w]`, weight `[c_out, c_in, kh, kw]`). A transposed conv is
//! the same maps with roles swapped: its forward is the direct conv's input gradient.
//! Backward passes return one packed buffer `[dx | dw | db]`.

use std::ops::Range;

use gemm::Parallelism;

use crate::im2col::{col2im, im2col, merge_phases, split_phases, ConvGeometry};
use crate::matmul::{matmul, DstLayout, Mat};
use crate::parallel::{over_batch, with_scratch};
use crate::simd::sum;

/// Floats in one im2col tile; sized to stay in a core's L2 cache between im2col and gemm.
const COL_TILE_FLOATS: usize = 192 * 1024;
/// Fewest output pixels per tile, so the gemm does not get too thin.
const MIN_TILE_PIXELS: usize = 128;

/// `y = W x col(x) (+ b)` for every image, written straight into NCHW
/// (`[batch, c_out, out_h, out_w]`).
pub(crate) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0f32; g.batch * g.output_per_image()];
    let work = |images: Range<usize>, y_chunk: &mut [f32], par| {
        with_scratch(col_tile_len(g) + phase_len(g), |scratch| {
            let (col_buf, phase_buf) = scratch.split_at_mut(col_tile_len(g));
            let y_images = y_chunk.chunks_exact_mut(g.output_per_image());
            for (image, y_img) in images.zip(y_images) {
                let source = im2col_source(g, input_image(g, x, image), phase_buf);
                fill_rows(y_img, bias, g.p());
                for rows in row_tiles(g) {
                    let y_tile = &mut y_img[rows.start * g.out_w..];
                    let col = columns(g, source, col_buf, rows);
                    product_tile(g, w, col, y_tile, bias.is_some(), par);
                }
            }
        })
    };
    over_batch(g.batch, &mut y, g.output_per_image(), work);
    y
}

/// The input gradient `col2im(W^T dy)` of every image (`[batch, c_in, h, w]`), plus a
/// per-input-channel bias: the forward of the transposed conv.
pub(crate) fn input_grad(
    g: &ConvGeometry,
    w: &[f32],
    dy: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut dx = vec![0.0f32; g.batch * g.input_per_image()];
    let work = |images: Range<usize>, dx_chunk: &mut [f32], par| {
        with_scratch(col_tile_len(g) + phase_len(g), |scratch| {
            let dx_images = dx_chunk.chunks_exact_mut(g.input_per_image());
            for (image, dx_img) in images.zip(dx_images) {
                input_grad_image(g, w, output_image(g, dy, image), scratch, dx_img, par);
                add_rows(dx_img, bias, g.h * g.w);
            }
        })
    };
    over_batch(g.batch, &mut dx, g.input_per_image(), work);
    dx
}

/// Which gradients a backward pass returns besides dw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub dx: bool,
    pub db: bool,
}

/// Backward of the direct conv `y = conv(x, w) (+ b)`: packed `[dx | dw | db (c_out)]`.
pub(crate) fn conv_backward(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    want: Wanted,
) -> Vec<f32> {
    let scratch = col_tile_len(g) + phase_len(g);
    let dx_scratch = if want.dx { scratch } else { 0 };
    let sizes = PackedSizes::new(g, g.input_per_image(), g.c_out, want);
    backward_batch(
        g,
        sizes,
        scratch + dx_scratch,
        |image, dx_img, scratch, part, par| {
            let (own, dx_scratch) = scratch.split_at_mut(col_tile_len(g) + phase_len(g));
            let (col_buf, phase_buf) = own.split_at_mut(col_tile_len(g));
            let dy_img = output_image(g, dy, image);
            let source = im2col_source(g, input_image(g, x, image), phase_buf);
            for rows in row_tiles(g) {
                let n = rows.len() * g.out_w;
                let dy_tile = Mat::strided(&dy_img[rows.start * g.out_w..], g.c_out, n, g.p());
                let col = columns(g, source, col_buf, rows);
                add_weight_grad_tile(g, dy_tile, col, &mut part.dw_t, par);
            }
            if want.dx {
                input_grad_image(g, w, dy_img, dx_scratch, dx_img, par);
            }
            add_row_sums(&mut part.db, dy_img, g.p());
        },
    )
}

/// Backward of the transposed conv `y_t = input_grad(w, x_t) (+ b)`: packed
/// `[dx_t | dw | db (c_in)]`. Its input gradient is the direct conv of `dy_t`, and both
/// that and dw read the columns of `dy_t`, so each tile is built once.
pub(crate) fn transpose_backward(
    g: &ConvGeometry,
    x_t: &[f32],
    w: &[f32],
    dy_t: &[f32],
    want: Wanted,
) -> Vec<f32> {
    let sizes = PackedSizes::new(g, g.output_per_image(), g.c_in, want);
    let scratch = col_tile_len(g) + phase_len(g);
    backward_batch(g, sizes, scratch, |image, dx_img, scratch, part, par| {
        let (col_buf, phase_buf) = scratch.split_at_mut(col_tile_len(g));
        let x_img = output_image(g, x_t, image);
        let dy_img = input_image(g, dy_t, image);
        let source = im2col_source(g, dy_img, phase_buf);
        for rows in row_tiles(g) {
            let n = rows.len() * g.out_w;
            let x_tile = Mat::strided(&x_img[rows.start * g.out_w..], g.c_out, n, g.p());
            let start = rows.start * g.out_w;
            let col = columns(g, source, col_buf, rows);
            if want.dx {
                product_tile(g, w, col, &mut dx_img[start..], false, par);
            }
            add_weight_grad_tile(g, x_tile, col, &mut part.dw_t, par);
        }
        add_row_sums(&mut part.db, dy_img, g.h * g.w);
    })
}

/// Lengths of the parts of a packed gradient buffer.
#[derive(Clone, Copy, Debug)]
struct PackedSizes {
    dx_per_image: usize,
    dw: usize,
    db: usize,
}

impl PackedSizes {
    fn new(g: &ConvGeometry, dx_per_image: usize, bias_len: usize, want: Wanted) -> Self {
        PackedSizes {
            dx_per_image: if want.dx { dx_per_image } else { 0 },
            dw: g.c_out * g.k(),
            db: if want.db { bias_len } else { 0 },
        }
    }
}

/// One batch chunk's share of the weight and bias gradients.
struct PartialGrads {
    /// The transpose of dw, `[K, c_out]` (gemm writes it faster than dw itself).
    dw_t: Vec<f32>,
    db: Vec<f32>,
}

/// Runs `per_image(image, dx_img, scratch, partial, par)` over the batch in parallel
/// chunks, then sums the chunks' dw and db into the packed buffer.
fn backward_batch(
    g: &ConvGeometry,
    sizes: PackedSizes,
    scratch_len: usize,
    per_image: impl Fn(usize, &mut [f32], &mut [f32], &mut PartialGrads, Parallelism) + Sync,
) -> Vec<f32> {
    let dx_len = g.batch * sizes.dx_per_image;
    let mut packed = vec![0.0f32; dx_len + sizes.dw + sizes.db];
    let (dx, rest) = packed.split_at_mut(dx_len);
    let work = |images: Range<usize>, dx_chunk: &mut [f32], par| {
        let mut part = PartialGrads {
            dw_t: vec![0.0; sizes.dw],
            db: vec![0.0; sizes.db],
        };
        with_scratch(scratch_len, |scratch| {
            for (i, image) in images.enumerate() {
                let dx_img = &mut dx_chunk[i * sizes.dx_per_image..][..sizes.dx_per_image];
                per_image(image, dx_img, scratch, &mut part, par);
            }
        });
        part
    };
    let partials = over_batch(g.batch, dx, sizes.dx_per_image, work);
    let (dw, db) = rest.split_at_mut(sizes.dw);
    let mut dw_t = vec![0.0f32; sizes.dw];
    for part in &partials {
        add_into(&mut dw_t, &part.dw_t);
        add_into(db, &part.db);
    }
    transpose_into(&dw_t, g.k(), g.c_out, dw);
    packed
}

/// `dst[:, tile] (+)= W [c_out, K] x col [K, n]`, `dst` an image's output at the tile.
fn product_tile(
    g: &ConvGeometry,
    w: &[f32],
    col: Mat<'_>,
    dst: &mut [f32],
    accumulate: bool,
    par: Parallelism,
) {
    let w_mat = Mat::row_major(w, g.c_out, g.k());
    matmul(dst, DstLayout::RowMajor(g.p()), w_mat, col, accumulate, par);
}

/// `dw^T += (dy_tile [c_out, n] x col^T [n, K])^T`.
fn add_weight_grad_tile(
    g: &ConvGeometry,
    dy_tile: Mat<'_>,
    col: Mat<'_>,
    dw_t: &mut [f32],
    par: Parallelism,
) {
    let dw_t_layout = DstLayout::ColMajor(g.c_out);
    matmul(dw_t, dw_t_layout, dy_tile, col.t(), true, par);
}

/// `dx_img = col2im(W^T [K, c_out] x dy_img [c_out, P])`, tile by tile; strided convs
/// gather into phase planes first. `dx_img` must arrive zeroed; `scratch` holds a column
/// tile and the phases.
fn input_grad_image(
    g: &ConvGeometry,
    w: &[f32],
    dy_img: &[f32],
    scratch: &mut [f32],
    dx_img: &mut [f32],
    par: Parallelism,
) {
    let (k, p) = (g.k(), g.p());
    let w_t = Mat::row_major(w, g.c_out, k).t();
    if g.is_pointwise() {
        let dy_mat = Mat::row_major(dy_img, g.c_out, p);
        return matmul(dx_img, DstLayout::RowMajor(p), w_t, dy_mat, false, par);
    }
    let (dcol_buf, dphase) = scratch.split_at_mut(col_tile_len(g));
    let mut scatter = |dsource: &mut [f32]| {
        for rows in row_tiles(g) {
            let n = rows.len() * g.out_w;
            let dy_tile = Mat::strided(&dy_img[rows.start * g.out_w..], g.c_out, n, p);
            let stride = tile_row_stride(n);
            matmul(
                dcol_buf,
                DstLayout::RowMajor(stride),
                w_t,
                dy_tile,
                false,
                par,
            );
            col2im(g, dcol_buf, stride, dsource, rows);
        }
    };
    if g.uses_phases() {
        let dphase = &mut dphase[..g.input_per_image()];
        dphase.fill(0.0);
        scatter(dphase);
        merge_phases(g, dphase, dx_img);
    } else {
        scatter(dx_img);
    }
}

fn input_image<'a>(g: &ConvGeometry, x: &'a [f32], image: usize) -> &'a [f32] {
    &x[image * g.input_per_image()..][..g.input_per_image()]
}

fn output_image<'a>(g: &ConvGeometry, y: &'a [f32], image: usize) -> &'a [f32] {
    &y[image * g.output_per_image()..][..g.output_per_image()]
}

/// Output rows per im2col tile.
fn rows_per_tile(g: &ConvGeometry) -> usize {
    if g.is_pointwise() {
        return g.out_h.max(1);
    }
    let by_cache = COL_TILE_FLOATS / (g.k() * g.out_w).max(1);
    let by_gemm = MIN_TILE_PIXELS.div_ceil(g.out_w.max(1));
    by_cache.max(by_gemm).clamp(1, g.out_h.max(1))
}

/// The output-row tiles of one image.
fn row_tiles(g: &ConvGeometry) -> impl Iterator<Item = Range<usize>> {
    let (step, out_h) = (rows_per_tile(g), g.out_h);
    (0..out_h)
        .step_by(step)
        .map(move |r| r..(r + step).min(out_h))
}

/// Scratch floats for one column tile (none for pointwise convs).
fn col_tile_len(g: &ConvGeometry) -> usize {
    if g.is_pointwise() {
        0
    } else {
        g.k()
            * row_tiles(g)
                .map(|r| tile_row_stride(r.len() * g.out_w))
                .max()
                .unwrap_or(0)
    }
}

/// Scratch floats for one image's phase planes (strided convs only).
fn phase_len(g: &ConvGeometry) -> usize {
    if g.uses_phases() {
        g.input_per_image()
    } else {
        0
    }
}

/// What im2col reads for one image: the image, or its phase planes for strided convs.
fn im2col_source<'a>(g: &ConvGeometry, x_img: &'a [f32], phase_buf: &'a mut [f32]) -> &'a [f32] {
    if g.uses_phases() {
        split_phases(g, x_img, phase_buf);
        phase_buf
    } else {
        x_img
    }
}

/// The column matrix (`[K, n]`) of output rows `rows` of one image: the image itself for
/// pointwise convs (one tile), else im2col into `buffer`.
fn columns<'a>(
    g: &ConvGeometry,
    source: &'a [f32],
    buffer: &'a mut [f32],
    rows: Range<usize>,
) -> Mat<'a> {
    let n = rows.len() * g.out_w;
    if g.is_pointwise() {
        Mat::row_major(source, g.k(), n)
    } else {
        let stride = tile_row_stride(n);
        im2col(g, source, buffer, stride, rows);
        Mat::strided(buffer, g.k(), n, stride)
    }
}

/// Row stride for a column tile of `n` pixels. Strides that are multiples of 4 KiB make
/// gemm's reads of successive rows collide in the same cache sets (measured: 53 vs 104
/// GFLOP/s for a 16-channel 32x32 conv), so those get a little padding.
fn tile_row_stride(n: usize) -> usize {
    if n.is_multiple_of(256) {
        n + 16
    } else {
        n
    }
}

/// Sets each `row_len` row of `image` to its channel's bias (leaves it if none).
fn fill_rows(image: &mut [f32], bias: Option<&[f32]>, row_len: usize) {
    if let Some(bias) = bias {
        for (row, &b) in image.chunks_exact_mut(row_len).zip(bias) {
            row.fill(b);
        }
    }
}

/// Adds each channel's bias to its `row_len` row of `image`.
fn add_rows(image: &mut [f32], bias: Option<&[f32]>, row_len: usize) {
    if let Some(bias) = bias {
        for (row, &b) in image.chunks_exact_mut(row_len).zip(bias) {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// `sums[c] += sum of row c` for the `row_len` rows of `image` (none if `sums` is empty).
fn add_row_sums(sums: &mut [f32], image: &[f32], row_len: usize) {
    for (s, row) in sums.iter_mut().zip(image.chunks_exact(row_len.max(1))) {
        *s += sum(row) as f32;
    }
}

/// `dst [cols, rows] = src [rows, cols]^T`.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for (r, src_row) in src.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &v) in src_row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
