//! Where the UNet's parameters come from, and the record of what was taken.
//!
//! A model is built from a [`VarBuilder`] over one of two sources:
//! * [`TensorSource`]: a map of tensors (a checkpoint), converted to f32;
//! * [`SeededSource`]: a `VarMap`; each parameter not yet in it becomes a new `Var`, drawn
//!   from `semaug_core::seeds::Stream` keyed by `(seed, parameter name)`, so the same seed
//!   always gives the same weights whatever the construction order or thread count.
//!
//! Both record every parameter handed out under its diffusers name ([`Recorder`]); the model
//! keeps that map to save itself and to count parameters. Problems (missing tensor, wrong
//! shape) are recorded too, so the loader can report them as typed errors.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use semaug_core::seeds::{label, Stream};

/// The first thing that went wrong while a source handed out weights.
#[derive(Debug, Clone)]
pub(crate) enum WeightProblem {
    Missing {
        name: String,
        shape: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

/// Parameters handed out so far, by name, and the first problem met.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    taken: Mutex<BTreeMap<String, Tensor>>,
    problem: Mutex<Option<WeightProblem>>,
}

impl Recorder {
    fn take(&self, name: &str, tensor: &Tensor) -> Result<()> {
        let mut taken = self
            .taken
            .lock()
            .map_err(|_| candle_core::Error::Msg("weight recorder lock poisoned".into()))?;
        taken.insert(name.to_string(), tensor.clone());
        Ok(())
    }

    fn fail(&self, problem: WeightProblem) -> candle_core::Error {
        let message = format!("{problem:?}");
        if let Ok(mut slot) = self.problem.lock() {
            slot.get_or_insert(problem);
        }
        candle_core::Error::Msg(message)
    }

    /// The recorded parameters.
    pub(crate) fn taken(&self) -> BTreeMap<String, Tensor> {
        self.taken.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The first problem met, if any.
    pub(crate) fn problem(&self) -> Option<WeightProblem> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }
}

/// Checkpoint tensors (already in the model's dtype) by diffusers name.
pub(crate) struct TensorSource {
    tensors: HashMap<String, Tensor>,
    recorder: Arc<Recorder>,
}

impl TensorSource {
    pub(crate) fn builder(
        tensors: HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> (VarBuilder<'static>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let source = Self {
            tensors,
            recorder: recorder.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(source), dtype, device.clone());
        (vb, recorder)
    }
}

impl SimpleBackend for TensorSource {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let Some(tensor) = self.tensors.get(name) else {
            return Err(self.recorder.fail(WeightProblem::Missing {
                name: name.into(),
                shape: shape.dims().to_vec(),
            }));
        };
        if tensor.shape() != &shape {
            return Err(self.recorder.fail(WeightProblem::Shape {
                name: name.into(),
                expected: shape.dims().to_vec(),
                found: tensor.dims().to_vec(),
            }));
        }
        let tensor = tensor.to_dtype(dtype)?.to_device(dev)?;
        self.recorder.take(name, &tensor)?;
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => t.to_dtype(dtype)?.to_device(dev),
            None => candle_core::bail!("no tensor named `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

/// New trainable `Var`s in a `VarMap`, initialised from the project's seeded generator.
pub(crate) struct SeededSource {
    varmap: VarMap,
    seed: u64,
    recorder: Arc<Recorder>,
}

impl SeededSource {
    pub(crate) fn builder(
        varmap: &VarMap,
        seed: u64,
        device: &Device,
    ) -> (VarBuilder<'static>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let source = Self {
            varmap: varmap.clone(),
            seed,
            recorder: recorder.clone(),
        };
        let vb = VarBuilder::from_backend(Box::new(source), DType::F32, device.clone());
        (vb, recorder)
    }

    /// The stream for one parameter: keyed by its name, so independent of build order.
    fn stream(&self, name: &str) -> Stream {
        Stream::new(self.seed, label(name), label("models/unet/init"), 0)
    }

    fn draw(&self, shape: &Shape, name: &str, init: Init, device: &Device) -> Result<Tensor> {
        let n = shape.elem_count();
        let mut stream = self.stream(name);
        let values: Vec<f32> = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::Uniform { lo, up } => {
                (0..n).map(|_| stream.range(lo as f32, up as f32)).collect()
            }
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| mean as f32 + stdev as f32 * stream.normal())
                .collect(),
            Init::Kaiming { .. } => {
                candle_core::bail!("`{name}`: the UNet layers never request candle's Kaiming init")
            }
        };
        Tensor::from_vec(values, shape.clone(), device)
    }
}

impl SimpleBackend for SeededSource {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut vars = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
        let tensor = match vars.get(name) {
            Some(var) if var.shape() != &shape => {
                return Err(self.recorder.fail(WeightProblem::Shape {
                    name: name.into(),
                    expected: shape.dims().to_vec(),
                    found: var.dims().to_vec(),
                }));
            }
            Some(var) => var.as_tensor().clone(),
            None => {
                let value = self.draw(&shape, name, init, dev)?.to_dtype(dtype)?;
                let var = Var::from_tensor(&value)?;
                let tensor = var.as_tensor().clone();
                vars.insert(name.to_string(), var);
                tensor
            }
        };
        self.recorder.take(name, &tensor)?;
        Ok(tensor)
    }

    fn get_unchecked(&self, _: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("the seeded UNet initialiser needs a shape for every parameter")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|vars| vars.contains_key(name))
            .unwrap_or(false)
    }
}
