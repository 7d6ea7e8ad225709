//! Typed errors for the kernels, carried inside `candle_core::Error` so callers keep
//! one error type across tensor code.

use candle_core::{DType, Tensor};

/// What was wrong with the arguments of a kernel call.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{op}: `{arg}` has dtype {dtype:?}, only f32 is supported; convert it with `.to_dtype(DType::F32)`")]
    UnsupportedDtype {
        op: &'static str,
        arg: &'static str,
        dtype: DType,
    },
    #[error("{op}: `{arg}` has shape {shape:?}, expected {expected}")]
    BadShape {
        op: &'static str,
        arg: &'static str,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("{op}: {what}")]
    BadParameter { op: &'static str, what: String },
    #[error(
        "{op}: `{arg}` reached the kernel in a non-contiguous layout (a bug in semaug-kernels)"
    )]
    NotContiguous { op: &'static str, arg: &'static str },
}

impl KernelError {
    /// Argument `arg` (tensor `t`) of `op` has the wrong shape.
    pub(crate) fn bad_shape(
        op: &'static str,
        arg: &'static str,
        t: &Tensor,
        expected: impl Into<String>,
    ) -> Self {
        KernelError::BadShape {
            op,
            arg,
            shape: t.dims().to_vec(),
            expected: expected.into(),
        }
    }
}

impl From<KernelError> for candle_core::Error {
    fn from(err: KernelError) -> Self {
        candle_core::Error::wrap(err)
    }
}
