//! semaug-kernels: fast CPU kernels for training small conv nets with candle.
//!
//! Principal functions: [`conv2d`] (im2col + gemm convolution with its own backward) and
//! [`group_norm`] (GroupNorm, optionally fused with SiLU, forward and backward). Both are
//! candle custom ops: they plug into candle's autograd like built-in ops, run their
//! gradients as single no-backward kernels, and use candle's thread count.
//! [`retain_freed_memory`] stops glibc from returning freed tensors' pages to the OS,
//! which otherwise dominates the cost of candle's elementwise ops in a training step.
//!
//! Key decision: f32 NCHW on CPU only; other devices fall back to candle's own ops, other
//! dtypes are an error ([`KernelError`]).

mod conv2d;
mod conv_engine;
mod conv_grads;
mod conv_transpose2d;
mod error;
mod group_norm;
mod im2col;
mod matmul;
mod memory;
mod parallel;
mod simd;
mod storage;

pub use conv2d::conv2d;
pub use conv_transpose2d::conv_transpose2d;
pub use error::KernelError;
pub use group_norm::group_norm;
pub use memory::retain_freed_memory;
