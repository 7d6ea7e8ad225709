//! Dataset classes as conditions, for any loaded model.
//!
//! A dataset names its classes; a model knows classes (a class table), prompts (a text
//! encoder) and learned concepts (`<name>` tokens). One rule for every backend: a class
//! conditions on its learned concept `<name>` when one is loaded, else on what the
//! model knows by that name (its class row, or the prompt template filled with the
//! name); a class-table model that has no such class generates it unconditionally, and
//! the caller is told which names those were so it can warn.

use std::collections::BTreeMap;

use candle_core::Tensor;
use semaug_core::Condition;

use super::error::PretrainedError;
use super::resolve::LoadedModel;

/// The token of a class's learned concept.
pub fn concept_token(class: &str) -> String {
    format!("<{class}>")
}

/// Conditions for a dataset's classes, and the classes the model did not know.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassConditions {
    /// One per dataset class, in dataset order.
    pub conditions: Vec<Condition>,
    /// Names generated unconditionally because the model has no such class.
    pub unknown: Vec<String>,
}

impl LoadedModel {
    /// The condition of each of `classes` (see the module docs). A text model takes the
    /// names as its class names, so [`Condition::Class`] fills its prompt template.
    pub fn class_conditions(&mut self, classes: &[String]) -> ClassConditions {
        let concepts = self.concept_tokens();
        if let Self::StableDiffusion(g) = self {
            g.class_names = classes.to_vec();
        }
        if let Self::StableDiffusion3(g) = self {
            g.class_names = classes.to_vec();
        }
        let known = self.class_names();
        let mut unknown = Vec::new();
        let conditions = classes
            .iter()
            .map(|name| {
                let token = concept_token(name);
                if concepts.contains(&token) {
                    return Condition::Concept(token);
                }
                match known.iter().position(|k| k == name) {
                    Some(k) => Condition::Class(k),
                    None => {
                        unknown.push(name.clone());
                        Condition::Null
                    }
                }
            })
            .collect();
        ClassConditions {
            conditions,
            unknown,
        }
    }

    /// Class names in label order (a text model: the names it was last given).
    pub fn class_names(&self) -> Vec<String> {
        match self {
            Self::Embedded(g) => g.classes.clone(),
            Self::Unet2d(g) => g.classes.clone(),
            Self::StableDiffusion(g) => g.class_names.clone(),
            Self::StableDiffusion3(g) => g.class_names.clone(),
        }
    }

    /// Whether conditions are prompts (any class name is known).
    pub fn is_text_conditioned(&self) -> bool {
        matches!(self, Self::StableDiffusion(_) | Self::StableDiffusion3(_))
    }

    /// Sets the prompt template (`{class}` is replaced by a class name or token) of a
    /// text model; a class-table model has no prompts and refuses.
    pub fn set_prompt_template(&mut self, template: &str) -> Result<(), PretrainedError> {
        match self {
            Self::StableDiffusion(g) => {
                g.prompt_template = template.to_string();
                Ok(())
            }
            Self::StableDiffusion3(g) => {
                g.prompt_template = template.to_string();
                Ok(())
            }
            _ => Err(PretrainedError::Unsupported(
                "--prompt needs a text-conditioned model (Stable Diffusion); this model \
                 conditions on class labels"
                    .into(),
            )),
        }
    }

    /// The prompt template of a text model (`None` for class-table models).
    pub fn prompt_template(&self) -> Option<&str> {
        match self {
            Self::StableDiffusion(g) => Some(&g.prompt_template),
            _ => None,
        }
    }

    /// Adds learned concepts `{token: embedding}`.
    pub fn attach_concepts(
        &mut self,
        concepts: BTreeMap<String, Tensor>,
    ) -> Result<(), PretrainedError> {
        match self {
            Self::Embedded(g) => g.concepts.extend(concepts),
            Self::Unet2d(g) => g.concepts.extend(concepts),
            Self::StableDiffusion(g) => {
                for (token, row) in concepts {
                    g.add_concept(&token, row)?;
                }
            }
            Self::StableDiffusion3(_) if concepts.is_empty() => {}
            Self::StableDiffusion3(_) => {
                return Err(PretrainedError::Unsupported(
                    "learned concepts are not supported by the SD3 backend yet; use prompts \
                     (--prompt) or a Stable Diffusion 1.x/2.x model"
                        .into(),
                ))
            }
        }
        Ok(())
    }

    /// The tokens of the concepts attached so far.
    pub fn concept_tokens(&self) -> Vec<String> {
        match self {
            Self::Embedded(g) => g.concepts.keys().cloned().collect(),
            Self::Unet2d(g) => g.concepts.keys().cloned().collect(),
            Self::StableDiffusion(g) => g.concept_tokens().map(str::to_string).collect(),
            Self::StableDiffusion3(_) => Vec::new(),
        }
    }
}
