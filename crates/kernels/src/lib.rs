//! semaug-kernels: fast CPU kernels for training small conv nets with candle.
//!
//! Principal functions: [`conv2d`] and [`conv_transpose2d`] (im2col + gemm convolutions
//! with their own backward, bias fused) and [`group_norm`] (GroupNorm, optionally fused
//! with SiLU, forward and backward). All are candle custom ops: they plug into candle's
//! autograd like built-in ops, run their gradients as single no-backward kernels, and use
//! candle's thread count (`RAYON_NUM_THREADS`) on rayon's global pool.
//! 3x3 stride-1 convs with at least 16 input channels run as Winograd F(2x2, 3x3)
//! (16 instead of 36 multiply-adds per 2x2 output tile and channel pair), and
//! [`upsample2x_conv3x3`] runs a UNet up block (nearest 2x + 3x3 conv) as a Winograd conv
//! that reads the low-resolution input (9 instead of 36).
//! [`linear`] is a linear layer whose samples are multiplied one at a time (batch
//! invariant) without copying the weight per sample.
//! [`retain_freed_memory`] stops glibc from returning freed tensors' pages to the OS,
//! which otherwise dominates the cost of candle's elementwise ops in a training step.
//!
//! Key decision: f32 NCHW on CPU only; other devices fall back to candle's own ops, other
//! dtypes are an error ([`KernelError`]). Second-order gradients are not supported.

mod conv2d;
mod conv_engine;
mod conv_grads;
mod conv_transpose2d;
mod error;
mod group_norm;
mod im2col;
mod layer_op;
mod linear;
mod matmul;
mod memory;
mod parallel;
mod simd;
mod storage;
mod upsample_conv;
mod winograd;
mod winograd_transforms;

pub use conv2d::conv2d;
pub use conv_transpose2d::conv_transpose2d;
pub use error::KernelError;
pub use group_norm::group_norm;
pub use linear::linear;
pub use memory::retain_freed_memory;
pub use upsample_conv::upsample2x_conv3x3;
