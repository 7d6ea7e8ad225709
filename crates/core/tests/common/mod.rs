//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use semaug_core::field::{from_fn, VelocityField};
use std::cell::Cell;
use std::rc::Rc;

/// A small f64 tensor of evenly spread values in [lo, hi].
pub fn spread(lo: f64, hi: f64, n: usize) -> Tensor {
    let values: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    Tensor::from_vec(values, n, &Device::Cpu).expect("cpu tensor")
}

/// A 1x2x3x3 NCHW f64 batch with distinct values in [-1, 1].
pub fn image() -> Tensor {
    spread(-1.0, 1.0, 18)
        .reshape((1, 2, 3, 3))
        .expect("18 elements")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("same shapes")
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("tensor to vec")
}

/// Wraps `field` so that every evaluation is counted.
pub fn counting<F: VelocityField>(field: F) -> (impl VelocityField, Rc<Cell<usize>>) {
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let counted = from_fn(move |x: &Tensor, sigma: f64| {
        seen.set(seen.get() + 1);
        field.velocity(x, sigma)
    });
    (counted, calls)
}

/// The observed order of convergence from errors at step counts n and 2n.
pub fn observed_order(coarse: f64, fine: f64) -> f64 {
    (coarse / fine).log2()
}
