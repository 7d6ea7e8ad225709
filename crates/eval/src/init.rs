//! Seeded parameter creation: every variable of a model is built here, inserted into a
//! `candle_nn::VarMap` under its checkpoint name, and drawn from its own
//! [`Stream`] keyed by `(seed, label(name), label("init"))`, so a weight's initial value
//! depends only on the seed and its name, never on the order layers are built in.

use candle_core::{Device, Result, Shape, Tensor, Var};
use candle_nn::VarMap;
use semaug_core::seeds::{label, Stream};

/// Creates named variables under a dotted prefix (`layer1.0.conv1.weight`).
#[derive(Clone)]
pub struct ParamBuilder {
    map: VarMap,
    seed: u64,
    prefix: String,
    device: Device,
}

impl ParamBuilder {
    pub fn new(map: &VarMap, seed: u64, device: &Device) -> Self {
        Self {
            map: map.clone(),
            seed,
            prefix: String::new(),
            device: device.clone(),
        }
    }

    /// The same builder one level down: `pp("bn1")` names `bn1.weight`, ...
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = match self.prefix.is_empty() {
            true => name.to_string(),
            false => format!("{}.{name}", self.prefix),
        };
        Self {
            prefix,
            ..self.clone()
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn full_name(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_owned(),
            false => format!("{}.{name}", self.prefix),
        }
    }

    /// He et al. (2015) normal init for layers followed by ReLU: `N(0, 2 / fan)`.
    /// Convolutions pass `fan = C_out * kh * kw` (fan-out mode, as torchvision's ResNet).
    pub fn kaiming_normal(&self, name: &str, shape: impl Into<Shape>, fan: usize) -> Result<Var> {
        self.normal(name, shape, (2.0 / fan.max(1) as f64).sqrt() as f32)
    }

    /// `N(0, std^2)` from this variable's own stream.
    pub fn normal(&self, name: &str, shape: impl Into<Shape>, std: f32) -> Result<Var> {
        let full = self.full_name(name);
        let shape = shape.into();
        let mut rng = Stream::new(self.seed, label(&full), label("init"), 0);
        let values: Vec<f32> = rng
            .normal_vec(shape.elem_count())
            .into_iter()
            .map(|z| z * std)
            .collect();
        self.insert(full, Tensor::from_vec(values, shape, &self.device)?)
    }

    /// A variable filled with `value` (BatchNorm scales and shifts, biases, running stats).
    pub fn constant(&self, name: &str, shape: impl Into<Shape>, value: f32) -> Result<Var> {
        let full = self.full_name(name);
        let shape = shape.into();
        let values = vec![value; shape.elem_count()];
        self.insert(full, Tensor::from_vec(values, shape, &self.device)?)
    }

    fn insert(&self, name: String, value: Tensor) -> Result<Var> {
        let var = Var::from_tensor(&value)?;
        let mut data = self.map.data().lock().unwrap_or_else(|e| e.into_inner());
        if data.contains_key(&name) {
            // Two layers given the same name: a bug in a model definition.
            candle_core::bail!("parameter `{name}` defined twice");
        }
        data.insert(name, var.clone());
        Ok(var)
    }
}
