//! Cross-entropy against soft targets, built from differentiable candle ops
//! (`candle_nn::ops::log_softmax` is composed, unlike `softmax_last_dim`).

use candle_core::{DType, Device, Result, Tensor, D};

/// `mean_i( -sum_k targets[i, k] * log_softmax(logits)[i, k] )` for `logits` and
/// `targets` both `[N, K]` (target rows sum to 1: one-hot, smoothed or mixed).
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    (log_p * targets)?.sum(D::Minus1)?.mean(0)?.neg()
}

/// One-hot rows `[N, K]` for class ids.
pub fn one_hot(labels: &[usize], num_classes: usize, device: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; labels.len() * num_classes];
    for (i, &label) in labels.iter().enumerate() {
        if label >= num_classes {
            candle_core::bail!("label {label} is not below {num_classes}");
        }
        data[i * num_classes + label] = 1.0;
    }
    Tensor::from_vec(data, (labels.len(), num_classes), device)
}

/// Label smoothing as PyTorch's `CrossEntropyLoss(label_smoothing = eps)`:
/// `(1 - eps) * targets + eps / K`.
pub fn smooth(targets: &Tensor, eps: f64) -> Result<Tensor> {
    if eps == 0.0 {
        return Ok(targets.clone());
    }
    let k = targets.dim(D::Minus1)? as f64;
    targets.affine(1.0 - eps, eps / k)
}

/// The index of the largest value of each row of `[N, K]` (first on ties).
pub fn argmax_rows(t: &Tensor) -> Result<Vec<usize>> {
    let (_, k) = t.dims2()?;
    let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(values
        .chunks(k.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logits (0, ln 3) give probabilities (1/4, 3/4).
    #[test]
    fn cross_entropy_by_hand() {
        let d = Device::Cpu;
        let logits = Tensor::new(&[[0f32, 3f32.ln()], [0.0, 3f32.ln()]], &d).unwrap();
        let hard = one_hot(&[1, 0], 2, &d).unwrap();
        let loss = soft_cross_entropy(&logits, &hard).unwrap();
        let want = -(0.75f32.ln() + 0.25f32.ln()) / 2.0;
        assert!((loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        // Soft targets (1/2, 1/2) on the first row only.
        let soft = Tensor::new(&[[0.5f32, 0.5]], &d).unwrap();
        let loss = soft_cross_entropy(&logits.narrow(0, 0, 1).unwrap(), &soft).unwrap();
        let want = -(0.5 * 0.25f32.ln() + 0.5 * 0.75f32.ln());
        assert!((loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
    }

    #[test]
    fn smoothing_matches_pytorch_and_labels_are_checked() {
        let d = Device::Cpu;
        let t = smooth(&one_hot(&[2], 4, &d).unwrap(), 0.2).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![0.05, 0.05, 0.85, 0.05]]
        );
        assert!(one_hot(&[4], 4, &d).is_err());
        let rows = Tensor::new(&[[1f32, 3.0, 3.0], [-1.0, -2.0, -0.5]], &d).unwrap();
        assert_eq!(argmax_rows(&rows).unwrap(), vec![1, 2]);
    }
}
