//! What the backends share in answering a [`Condition`]: the error for one a model cannot
//! take ([`unknown_condition`]), and the rows a pixel-space UNet adds to its time
//! embedding (`ClassRows`), read the same way by the embedded and the diffusers UNet2D
//! generators.
//!
//! Key decision: the null condition is the class table's last row, as this project trains
//! class-conditional models; an unconditional model gives one all-zero row to the null
//! condition and every class, so guidance has no effect on it.

use std::collections::BTreeMap;

use candle_core::Tensor;
use semaug_core::Condition;

use crate::unet::UNet2DModel;

/// The error for a `condition` the model `generator` cannot take; `hint` says what to do.
pub fn unknown_condition(generator: &str, condition: &Condition, hint: &str) -> semaug_core::Error {
    semaug_core::Error::UnknownCondition {
        condition: condition.to_string(),
        generator: generator.to_string(),
        hint: hint.to_string(),
    }
}

/// Conditions as rows of a UNet's class-embedding table, or learned concept rows.
pub(crate) struct ClassRows<'a> {
    /// The generator's name, for errors.
    generator: &'a str,
    unet: &'a UNet2DModel,
    /// Learned concept rows `[T]` by token name.
    concepts: &'a BTreeMap<String, Tensor>,
    /// What to say of a text prompt, which these models cannot take.
    prompt_hint: &'a str,
}

impl<'a> ClassRows<'a> {
    pub fn new(
        generator: &'a str,
        unet: &'a UNet2DModel,
        concepts: &'a BTreeMap<String, Tensor>,
        prompt_hint: &'a str,
    ) -> Self {
        Self {
            generator,
            unet,
            concepts,
            prompt_hint,
        }
    }

    /// One row per condition, `[B, T]` in the UNet's dtype.
    pub fn embed(&self, conditions: &[Condition]) -> semaug_core::Result<Tensor> {
        let rows = conditions
            .iter()
            .map(|c| self.row(c))
            .collect::<semaug_core::Result<Vec<_>>>()?;
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// The row of one condition, `[T]` in the UNet's dtype.
    fn row(&self, condition: &Condition) -> semaug_core::Result<Tensor> {
        let unknown = |hint: &str| unknown_condition(self.generator, condition, hint);
        let Some(table) = self.unet.class_embedding_table() else {
            return match condition {
                Condition::Null | Condition::Class(_) => {
                    let width = self.unet.config().time_embed_dim();
                    Ok(Tensor::zeros(width, self.unet.dtype(), self.unet.device())?)
                }
                _ => Err(unknown("the model is unconditional")),
            };
        };
        let null = self.unet.null_class().unwrap_or(0);
        match condition {
            Condition::Null => Ok(table.get(null)?),
            Condition::Class(c) if *c < null => Ok(table.get(*c)?),
            Condition::Class(_) => Err(unknown(&format!("the model has {null} classes"))),
            Condition::Concept(name) => match self.concepts.get(name) {
                Some(row) => Ok(row.to_dtype(self.unet.dtype())?),
                None => Err(unknown("load it with --concepts")),
            },
            Condition::Prompt(_) => Err(unknown(self.prompt_hint)),
        }
    }
}
