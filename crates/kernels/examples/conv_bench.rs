//! Times candle's conv2d / GroupNorm against semaug-kernels' on representative layers of
//! a 32x32 conv UNet and a CIFAR ResNet (batch 64), forward and forward+backward.
//!
//! `cargo run --release -p semaug-kernels --example conv_bench [-- --quick] [--no-retain]`
//! (`--no-retain` leaves glibc's malloc at its defaults; see `retain_freed_memory`).
//! Uses 2 threads unless RAYON_NUM_THREADS is set. Times are the best of a few runs after
//! a warm-up (the minimum is the least disturbed by other processes).

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};

struct ConvLayer {
    name: &'static str,
    c_in: usize,
    c_out: usize,
    size: usize,
    kernel: usize,
    stride: usize,
}

const fn layer(
    name: &'static str,
    c_in: usize,
    c_out: usize,
    size: usize,
    kernel: usize,
    stride: usize,
) -> ConvLayer {
    ConvLayer {
        name,
        c_in,
        c_out,
        size,
        kernel,
        stride,
    }
}

const CONV_LAYERS: &[ConvLayer] = &[
    // UNet (base 64, mults 1, 2, 2)
    layer("stem 3->64 32x32 3x3", 3, 64, 32, 3, 1),
    layer("64->64 32x32 3x3", 64, 64, 32, 3, 1),
    layer("128->128 16x16 3x3", 128, 128, 16, 3, 1),
    layer("128->128 8x8 3x3", 128, 128, 8, 3, 1),
    layer("64->128 32->16 3x3 s2", 64, 128, 32, 3, 2),
    layer("128->128 16->8 3x3 s2", 128, 128, 16, 3, 2),
    layer("128->64 32x32 1x1", 128, 64, 32, 1, 1),
    // CIFAR ResNet-20
    layer("r20 16->16 32x32 3x3", 16, 16, 32, 3, 1),
    layer("r20 32->32 16x16 3x3", 32, 32, 16, 3, 1),
    layer("r20 64->64 8x8 3x3", 64, 64, 8, 3, 1),
    layer("r20 16->32 32->16 3x3 s2", 16, 32, 32, 3, 2),
    layer("r20 16->32 32->16 1x1 s2", 16, 32, 32, 1, 2),
];

const BATCH: usize = 64;

/// Deterministic filler (no RNG needed for timing).
fn filled(dims: &[usize], seed: usize) -> Result<Tensor> {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0) - 1.0)
        .collect();
    Tensor::from_vec(data, dims, &Device::Cpu)
}

/// Best wall time in ms of `runs` calls after one warm-up.
fn best_ms(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

type ConvFn = fn(&Tensor, &Tensor, &Tensor, usize, usize) -> Result<Tensor>;

fn candle_conv(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, p: usize) -> Result<Tensor> {
    x.conv2d(w, p, s, 1, 1)?
        .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)
}

fn our_conv(x: &Tensor, w: &Tensor, b: &Tensor, s: usize, p: usize) -> Result<Tensor> {
    semaug_kernels::conv2d(x, w, Some(b), s, p)
}

/// (forward ms, forward+backward ms) of one conv implementation on one layer.
fn time_conv(l: &ConvLayer, conv: ConvFn, runs: usize) -> Result<(f64, f64)> {
    let x = filled(&[BATCH, l.c_in, l.size, l.size], 1)?;
    let w = Var::from_tensor(&(filled(&[l.c_out, l.c_in, l.kernel, l.kernel], 2)? * 0.05)?)?;
    let b = Var::from_tensor(&filled(&[l.c_out], 3)?)?;
    // The stem sees constant images; other layers need the input gradient too.
    let x = if l.c_in == 3 {
        x
    } else {
        Var::from_tensor(&x)?.as_tensor().clone()
    };
    let pad = l.kernel / 2;
    let fwd = best_ms(runs, || conv(&x, &w, &b, l.stride, pad).map(|_| ()))?;
    let train = best_ms(runs, || {
        let y = conv(&x, &w, &b, l.stride, pad)?;
        y.sum_all()?.backward().map(|_| ())
    })?;
    Ok((fwd, train))
}

/// (forward ms, forward+backward ms) of a 2x-upsampling transposed conv, 128->64
/// channels 16x16 -> 32x32, 4x4 kernel, stride 2, padding 1.
fn time_conv_transpose(ours: bool, runs: usize) -> Result<(f64, f64)> {
    let x = Var::from_tensor(&filled(&[BATCH, 128, 16, 16], 7)?)?;
    let w = Var::from_tensor(&(filled(&[128, 64, 4, 4], 8)? * 0.05)?)?;
    let up = |x: &Tensor| match ours {
        true => semaug_kernels::conv_transpose2d(x, &w, None, 2, 1, 0),
        false => x.conv_transpose2d(&w, 1, 0, 2, 1),
    };
    let fwd = best_ms(runs, || up(&x).map(|_| ()))?;
    let train = best_ms(runs, || up(&x)?.sum_all()?.backward().map(|_| ()))?;
    Ok((fwd, train))
}

/// (forward ms, forward+backward ms) of a UNet up block: nearest 2x then 3x3 conv with
/// bias, 128->128 channels, 16x16 -> 32x32. Candle upsamples then convolves; ours folds
/// both into one transposed conv.
fn time_up_block(ours: bool, runs: usize) -> Result<(f64, f64)> {
    let x = Var::from_tensor(&filled(&[BATCH, 128, 16, 16], 18)?)?;
    let w = Var::from_tensor(&(filled(&[128, 128, 3, 3], 19)? * 0.05)?)?;
    let b = Var::from_tensor(&filled(&[128], 20)?)?;
    let up = |x: &Tensor| match ours {
        true => semaug_kernels::upsample2x_conv3x3(x, &w, Some(&b)),
        false => candle_conv(&x.upsample_nearest2d(32, 32)?, &w, &b, 1, 1),
    };
    let fwd = best_ms(runs, || up(&x).map(|_| ()))?;
    let train = best_ms(runs, || up(&x)?.sum_all()?.backward().map(|_| ()))?;
    Ok((fwd, train))
}

type NormFn = fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>;

fn candle_group_norm_silu(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let groups = 32;
    let xg = x.reshape((n, groups, c / groups * h * w))?;
    let mean = xg.mean_keepdim(2)?;
    let centered = xg.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(2)?;
    let normed = centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    let y = normed
        .reshape((n, c, h, w))?
        .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
        .broadcast_add(&beta.reshape((1, c, 1, 1))?)?;
    y.silu()
}

fn our_group_norm_silu(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    semaug_kernels::group_norm(x, 32, gamma, beta, 1e-5, true)
}

fn time_norm(channels: usize, size: usize, norm: NormFn, runs: usize) -> Result<(f64, f64)> {
    let x = Var::from_tensor(&filled(&[BATCH, channels, size, size], 4)?)?;
    let gamma = Var::from_tensor(&(filled(&[channels], 5)? + 1.0)?)?;
    let beta = Var::from_tensor(&filled(&[channels], 6)?)?;
    let fwd = best_ms(runs, || norm(&x, &gamma, &beta).map(|_| ()))?;
    let train = best_ms(runs, || {
        norm(&x, &gamma, &beta)?.sum_all()?.backward().map(|_| ())
    })?;
    Ok((fwd, train))
}

/// Parameters of a residual block: GN+SiLU, conv3x3, GN+SiLU, conv3x3, plus the input.
struct ResBlock {
    gammas: [Var; 2],
    betas: [Var; 2],
    weights: [Var; 2],
    biases: [Var; 2],
}

impl ResBlock {
    fn new(channels: usize) -> Result<Self> {
        let var = |dims: &[usize], seed: usize, scale: f64, offset: f64| {
            Var::from_tensor(&filled(dims, seed)?.affine(scale, offset)?)
        };
        let c = channels;
        Ok(ResBlock {
            gammas: [var(&[c], 10, 0.1, 1.0)?, var(&[c], 11, 0.1, 1.0)?],
            betas: [var(&[c], 12, 0.1, 0.0)?, var(&[c], 13, 0.1, 0.0)?],
            weights: [
                var(&[c, c, 3, 3], 14, 0.05, 0.0)?,
                var(&[c, c, 3, 3], 15, 0.05, 0.0)?,
            ],
            biases: [var(&[c], 16, 0.1, 0.0)?, var(&[c], 17, 0.1, 0.0)?],
        })
    }

    fn forward(&self, x: &Tensor, norm: NormFn, conv: ConvFn) -> Result<Tensor> {
        let mut h = x.clone();
        for i in 0..2 {
            h = norm(&h, &self.gammas[i], &self.betas[i])?;
            h = conv(&h, &self.weights[i], &self.biases[i], 1, 1)?;
        }
        h + x
    }
}

/// (forward ms, forward+backward ms) of a residual block on `[64, channels, size, size]`.
fn time_res_block(channels: usize, size: usize, ours: bool, runs: usize) -> Result<(f64, f64)> {
    let block = ResBlock::new(channels)?;
    let x = Var::from_tensor(&filled(&[BATCH, channels, size, size], 9)?)?;
    let (norm, conv): (NormFn, ConvFn) = match ours {
        true => (our_group_norm_silu, our_conv),
        false => (candle_group_norm_silu, candle_conv),
    };
    let fwd = best_ms(runs, || block.forward(&x, norm, conv).map(|_| ()))?;
    let train = best_ms(runs, || {
        block
            .forward(&x, norm, conv)?
            .sum_all()?
            .backward()
            .map(|_| ())
    })?;
    Ok((fwd, train))
}

fn row(name: &str, candle: (f64, f64), ours: (f64, f64)) {
    println!(
        "{name:<26} {:>9.1} {:>9.1} {:>7.2}x {:>10.1} {:>10.1} {:>7.2}x",
        candle.0,
        ours.0,
        candle.0 / ours.0,
        candle.1,
        ours.1,
        candle.1 / ours.1
    );
}

fn main() -> Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Must happen before rayon's pool starts; candle reads it on every call.
        std::env::set_var("RAYON_NUM_THREADS", "2");
    }
    let quick = std::env::args().any(|a| a == "--quick");
    if !std::env::args().any(|a| a == "--no-retain") {
        semaug_kernels::retain_freed_memory();
    }
    let runs = if quick { 1 } else { 5 };
    println!(
        "batch {BATCH}, {} threads, best of {runs} runs, ms",
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>8} {:>10} {:>10} {:>8}",
        "layer", "candle", "ours", "fwd", "candle", "ours", "f+b"
    );
    println!(
        "{:<26} {:>9} {:>9} {:>8} {:>10} {:>10}",
        "", "fwd", "fwd", "speedup", "fwd+bwd", "fwd+bwd"
    );
    for l in CONV_LAYERS {
        let candle = time_conv(l, candle_conv, runs)?;
        let ours = time_conv(l, our_conv, runs)?;
        row(l.name, candle, ours);
    }
    let candle = time_conv_transpose(false, runs)?;
    let ours = time_conv_transpose(true, runs)?;
    row("convT 128->64 16->32 4x4 s2", candle, ours);
    let candle = time_up_block(false, runs)?;
    let ours = time_up_block(true, runs)?;
    row("up2x+conv 128->128 16->32", candle, ours);
    for (channels, size) in [(64, 32), (128, 16), (128, 8)] {
        let candle = time_norm(channels, size, candle_group_norm_silu, runs)?;
        let ours = time_norm(channels, size, our_group_norm_silu, runs)?;
        row(
            &format!("GN32+SiLU {channels}ch {size}x{size}"),
            candle,
            ours,
        );
    }
    for (channels, size) in [(64, 32), (128, 16)] {
        let candle = time_res_block(channels, size, false, runs)?;
        let ours = time_res_block(channels, size, true, runs)?;
        row(
            &format!("res block {channels}ch {size}x{size}"),
            candle,
            ours,
        );
    }
    Ok(())
}
