//! 2-D convolution as candle custom ops: im2col + gemm forward, and a backward that
//! computes grad-w, grad-x (gemm + col2im) and grad-b in one pass over the batch.
//!
//! The backward is itself a no-backward custom op producing one packed buffer
//! `[dx | dw | db]`, split into views afterwards, so it adds no graph nodes.

use std::ops::Range;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use gemm::Parallelism;

use crate::error::KernelError;
use crate::im2col::{col2im, im2col, merge_phases, split_phases, ConvGeometry};
use crate::matmul::{matmul, DstLayout, Mat};
use crate::parallel::{over_batch, with_scratch};
use crate::storage::{f32_slice, require_f32};

const OP: &str = "semaug_kernels::conv2d";

/// 2-D convolution of `x` (`[N, C_in, H, W]`) with `w` (`[C_out, C_in, kh, kw]`) plus an
/// optional `bias` (`[C_out]`); dilation 1, one group, the same stride and zero padding on
/// both axes. Differentiable in `x`, `w` and `bias`.
///
/// Runs the fast kernel on CPU f32 tensors; on other devices it falls back to candle's
/// `conv2d`. Other dtypes on CPU are an error.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let geometry = conv_geometry(x, w, bias, stride, padding)?;
    if !x.device().is_cpu() {
        return candle_fallback(x, w, bias, stride, padding);
    }
    require_f32(OP, "x", x)?;
    require_f32(OP, "w", w)?;
    let op = Conv2dOp { geometry };
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match bias {
        Some(b) => {
            require_f32(OP, "bias", b)?;
            x.apply_op3(&w, &b.contiguous()?, op)
        }
        None => x.apply_op2(&w, op),
    }
}

fn candle_fallback(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> candle_core::Result<Tensor> {
    let y = x.conv2d(w, padding, stride, 1, 1)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y),
    }
}

/// Checks the shapes and derives the geometry.
fn conv_geometry(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<ConvGeometry, KernelError> {
    let bad_shape = |arg, t: &Tensor, expected: String| KernelError::BadShape {
        op: OP,
        arg,
        shape: t.dims().to_vec(),
        expected,
    };
    let &[batch, c_in, h, w_in] = x.dims() else {
        return Err(bad_shape("x", x, "rank 4 [N, C_in, H, W]".into()));
    };
    let &[c_out, w_c_in, kh, kw] = w.dims() else {
        return Err(bad_shape("w", w, "rank 4 [C_out, C_in, kh, kw]".into()));
    };
    if w_c_in != c_in || c_in == 0 || kh == 0 || kw == 0 {
        let expected = format!("[C_out, {c_in}, kh >= 1, kw >= 1] to match x");
        return Err(bad_shape("w", w, expected));
    }
    if let Some(b) = bias {
        if b.dims() != [c_out] {
            return Err(bad_shape("bias", b, format!("[{c_out}] (C_out of w)")));
        }
    }
    if stride == 0 {
        let what = "stride must be at least 1".into();
        return Err(KernelError::BadParameter { op: OP, what });
    }
    if h + 2 * padding < kh || w_in + 2 * padding < kw {
        let expected = format!("H, W + 2 * padding ({padding}) >= kernel size {kh}x{kw}");
        return Err(bad_shape("x", x, expected));
    }
    Ok(ConvGeometry {
        batch,
        c_in,
        h,
        w: w_in,
        c_out,
        kh,
        kw,
        stride,
        padding,
        out_h: (h + 2 * padding - kh) / stride + 1,
        out_w: (w_in + 2 * padding - kw) / stride + 1,
    })
}

/// The forward op; `bwd` launches [`Conv2dBackward`].
struct Conv2dOp {
    geometry: ConvGeometry,
}

impl Conv2dOp {
    fn output_shape(&self) -> Shape {
        let g = &self.geometry;
        Shape::from((g.batch, g.c_out, g.out_h, g.out_w))
    }

    fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        grad: &Tensor,
        has_bias: bool,
    ) -> candle_core::Result<(Option<Tensor>, Tensor, Option<Tensor>)> {
        let g = self.geometry;
        // Inputs that are constants (e.g. the images fed to the first layer) need no grad.
        let need_dx = x.track_op();
        let op = Conv2dBackward {
            geometry: g,
            need_dx,
            has_bias,
        };
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &op)?;
        let dx_len = if need_dx { x.elem_count() } else { 0 };
        let dx = match need_dx {
            true => Some(packed.narrow(0, 0, dx_len)?.reshape(x.shape())?),
            false => None,
        };
        let dw = packed
            .narrow(0, dx_len, w.elem_count())?
            .reshape(w.shape())?;
        let db = match has_bias {
            true => Some(packed.narrow(0, dx_len + w.elem_count(), g.c_out)?),
            false => None,
        };
        Ok((dx, dw, db))
    }
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "semaug-conv2d"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let w = f32_slice(OP, "w", w, w_l)?;
        let y = forward(&self.geometry, x, w, None);
        Ok((CpuStorage::F32(y), self.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, w, grad, false)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "semaug-conv2d-bias"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        b: &CpuStorage,
        b_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let w = f32_slice(OP, "w", w, w_l)?;
        let b = f32_slice(OP, "bias", b, b_l)?;
        let y = forward(&self.geometry, x, w, Some(b));
        Ok((CpuStorage::F32(y), self.output_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.backward(x, w, grad, true)?;
        Ok((dx, Some(dw), db))
    }
}

/// `y = W x col(x) (+ b)` image by image, written straight into NCHW.
fn forward(g: &ConvGeometry, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut y = vec![0.0f32; g.batch * g.output_per_image()];
    let (k, p) = (g.k(), g.p());
    let w_mat = Mat::row_major(w, g.c_out, k);
    let work = |images: Range<usize>, y_chunk: &mut [f32], par| {
        let (col_len, phase_len) = (col_tile_len(g), phase_len(g));
        with_scratch(col_len + phase_len, |scratch| {
            let (col_buf, phase_buf) = scratch.split_at_mut(col_len);
            let y_images = y_chunk.chunks_exact_mut(g.output_per_image());
            for (image, y_img) in images.zip(y_images) {
                let x_img = &x[image * g.input_per_image()..][..g.input_per_image()];
                let source = im2col_source(g, x_img, phase_buf);
                if let Some(b) = bias {
                    for (row, &b) in y_img.chunks_exact_mut(p).zip(b) {
                        row.fill(b);
                    }
                }
                for rows in row_tiles(g) {
                    let n = rows.len() * g.out_w;
                    let col = Mat::row_major(columns(g, source, col_buf, rows.clone()), k, n);
                    let y_tile = &mut y_img[rows.start * g.out_w..];
                    let accumulate = bias.is_some();
                    matmul(y_tile, DstLayout::RowMajor(p), w_mat, col, accumulate, par);
                }
            }
        })
    };
    over_batch(g.batch, &mut y, g.output_per_image(), work);
    y
}

/// Floats in one im2col tile; sized to stay in a core's L2 cache between im2col and gemm.
const COL_TILE_FLOATS: usize = 192 * 1024;
/// Fewest output pixels per tile, so the gemm does not get too thin.
const MIN_TILE_PIXELS: usize = 128;

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
        g.k() * rows_per_tile(g) * g.out_w
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

/// The column matrix of output rows `rows` of one image: the image itself for pointwise
/// convs (one tile), else im2col into `buffer`.
fn columns<'a>(
    g: &ConvGeometry,
    source: &'a [f32],
    buffer: &'a mut [f32],
    rows: Range<usize>,
) -> &'a [f32] {
    if g.is_pointwise() {
        source
    } else {
        let len = g.k() * rows.len() * g.out_w;
        im2col(g, source, &mut buffer[..len], rows);
        &buffer[..len]
    }
}

/// Gradients of the convolution, packed as `[dx (if need_dx) | dw | db (if has_bias)]`.
struct Conv2dBackward {
    geometry: ConvGeometry,
    need_dx: bool,
    has_bias: bool,
}

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "semaug-conv2d-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_l: &Layout,
        w: &CpuStorage,
        w_l: &Layout,
        dy: &CpuStorage,
        dy_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(OP, "x", x, x_l)?;
        let w = f32_slice(OP, "w", w, w_l)?;
        let dy = f32_slice(OP, "grad of the output", dy, dy_l)?;
        let packed = self.run(x, w, dy);
        let len = packed.len();
        Ok((CpuStorage::F32(packed), Shape::from(len)))
    }
}

/// One chunk's share of the weight and bias gradients.
struct PartialGrads {
    /// The transpose of dw, `[K, c_out]`.
    dw_t: Vec<f32>,
    db: Vec<f32>,
}

impl Conv2dBackward {
    fn run(&self, x: &[f32], w: &[f32], dy: &[f32]) -> Vec<f32> {
        let g = &self.geometry;
        let dx_per_image = if self.need_dx { g.input_per_image() } else { 0 };
        let dw_len = g.c_out * g.k();
        let db_len = if self.has_bias { g.c_out } else { 0 };
        let mut packed = vec![0.0f32; g.batch * dx_per_image + dw_len + db_len];
        let (dx, rest) = packed.split_at_mut(g.batch * dx_per_image);
        let partials = over_batch(g.batch, dx, dx_per_image, |images, dx_chunk, par| {
            self.chunk(images, x, w, dy, dx_chunk, par)
        });
        let (dw, db) = rest.split_at_mut(dw_len);
        let mut dw_t = vec![0.0f32; dw_len];
        for part in &partials {
            add_into(&mut dw_t, &part.dw_t);
            add_into(db, &part.db);
        }
        transpose_into(&dw_t, g.k(), g.c_out, dw);
        packed
    }

    /// Gradients for images `images`; writes their dx into `dx_chunk` and returns the
    /// chunk's contribution to dw and db.
    fn chunk(
        &self,
        images: Range<usize>,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        dx_chunk: &mut [f32],
        par: Parallelism,
    ) -> PartialGrads {
        let g = &self.geometry;
        let mut grads = PartialGrads {
            dw_t: vec![0.0; g.c_out * g.k()],
            db: vec![0.0; if self.has_bias { g.c_out } else { 0 }],
        };
        let (col_len, phase_len) = (col_tile_len(g), phase_len(g));
        let dx_scratch = if self.need_dx { col_len + phase_len } else { 0 };
        with_scratch(col_len + phase_len + dx_scratch, |scratch| {
            let (col_buf, rest) = scratch.split_at_mut(col_len);
            let (phase_buf, dx_buf) = rest.split_at_mut(phase_len);
            for (i, image) in images.enumerate() {
                let x_img = &x[image * g.input_per_image()..][..g.input_per_image()];
                let dy_img = &dy[image * g.output_per_image()..][..g.output_per_image()];
                let source = im2col_source(g, x_img, phase_buf);
                self.add_weight_grad(source, dy_img, col_buf, &mut grads.dw_t, par);
                if self.need_dx {
                    let dx_img = &mut dx_chunk[i * g.input_per_image()..][..g.input_per_image()];
                    self.input_grad(w, dy_img, dx_buf, dx_img, par);
                }
                for (db, row) in grads.db.iter_mut().zip(dy_img.chunks_exact(g.p())) {
                    *db += crate::simd::sum(row) as f32;
                }
            }
        });
        grads
    }

    /// `dw^T += (dY [c_out, P] x col^T [P, K])^T` for one image, tile by tile (gemm is
    /// faster writing the transpose).
    fn add_weight_grad(
        &self,
        source: &[f32],
        dy_img: &[f32],
        col_buf: &mut [f32],
        dw_t: &mut [f32],
        par: Parallelism,
    ) {
        let g = &self.geometry;
        for rows in row_tiles(g) {
            let n = rows.len() * g.out_w;
            let col = Mat::row_major(columns(g, source, col_buf, rows.clone()), g.k(), n);
            let dy_tile = Mat::strided(&dy_img[rows.start * g.out_w..], g.c_out, n, g.p());
            matmul(
                dw_t,
                DstLayout::ColMajor(g.c_out),
                dy_tile,
                col.t(),
                true,
                par,
            );
        }
    }

    /// `dx = col2im(W^T [K, c_out] x dY [c_out, P])` for one image, tile by tile; strided
    /// convs gather into phase planes first. `scratch` holds a column tile and the phases.
    fn input_grad(
        &self,
        w: &[f32],
        dy_img: &[f32],
        scratch: &mut [f32],
        dx_img: &mut [f32],
        par: Parallelism,
    ) {
        let g = &self.geometry;
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
                let dcol = &mut dcol_buf[..k * n];
                matmul(dcol, DstLayout::RowMajor(n), w_t, dy_tile, false, par);
                col2im(g, dcol, dsource, rows);
            }
        };
        if g.uses_phases() {
            dphase.fill(0.0);
            scatter(dphase);
            merge_phases(g, dphase, dx_img);
        } else {
            scatter(dx_img);
        }
    }
}

/// `dst [cols, rows] = src [rows, cols]^T`.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for (r, src_row) in src.chunks_exact(cols).take(rows).enumerate() {
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
