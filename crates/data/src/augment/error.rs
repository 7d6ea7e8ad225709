//! The one error type of the augmentation module: every variant says which parameter or
//! name was wrong and what would have been accepted.

/// A bad augmentation parameter, spec item or batch.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    #[error("{transform}: {param} = {value} is out of range; valid: {valid}")]
    OutOfRange {
        transform: &'static str,
        param: &'static str,
        value: String,
        valid: &'static str,
    },
    #[error("unknown augmentation `{name}`; valid names: {valid}")]
    UnknownName { name: String, valid: String },
    #[error("{name}: cannot read `{value}` as {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("{transform}: empty {param}; give at least one entry")]
    Empty {
        transform: &'static str,
        param: &'static str,
    },
    #[error("{method}: bad batch: {detail}")]
    BadBatch {
        method: &'static str,
        detail: String,
    },
    #[error("{method}: tensor operation failed: {source}")]
    Tensor {
        method: &'static str,
        source: candle_core::Error,
    },
}

/// `Ok(())` when `ok`, else an [`AugmentError::OutOfRange`] naming the parameter.
pub(crate) fn ensure(
    ok: bool,
    transform: &'static str,
    param: &'static str,
    value: impl std::fmt::Debug,
    valid: &'static str,
) -> Result<(), AugmentError> {
    if ok {
        Ok(())
    } else {
        Err(AugmentError::OutOfRange {
            transform,
            param,
            value: format!("{value:?}"),
            valid,
        })
    }
}

/// A probability: finite and in [0, 1].
pub(crate) fn ensure_probability(
    p: f32,
    transform: &'static str,
    param: &'static str,
) -> Result<(), AugmentError> {
    ensure((0.0..=1.0).contains(&p), transform, param, p, "0 <= p <= 1")
}
