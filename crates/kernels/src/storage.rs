//! Getting at the f32 data of tensors and CPU storages, with clear errors otherwise.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Tensor};

use crate::error::KernelError;

/// Errors unless `t` is f32.
pub(crate) fn require_f32(
    op: &'static str,
    arg: &'static str,
    t: &Tensor,
) -> Result<(), KernelError> {
    match t.dtype() {
        DType::F32 => Ok(()),
        dtype => Err(KernelError::UnsupportedDtype { op, arg, dtype }),
    }
}

/// The contiguous f32 data a custom op received for argument `arg`.
pub(crate) fn f32_slice<'a>(
    op: &'static str,
    arg: &'static str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> Result<&'a [f32], KernelError> {
    let CpuStorage::F32(data) = storage else {
        let dtype = storage.dtype();
        return Err(KernelError::UnsupportedDtype { op, arg, dtype });
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => Err(KernelError::NotContiguous { op, arg }),
    }
}
