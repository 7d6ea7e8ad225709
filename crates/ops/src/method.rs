//! The methods `--method` can name, parsed from a [`MethodSpec`] into typed configs.

use serde::Serialize;

use semaug_data::augment::Classical;

use crate::spec::{MethodSpec, SpecError};

/// Methods built from classical transforms only.
const CLASSICAL_METHODS: [&str; 3] = ["classical", "randaugment", "trivialaugment"];

/// One augmentation method with its validated parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Method {
    /// Classical transforms (`classical`, `randaugment`, `trivialaugment`).
    Classical { name: String, pipeline: Classical },
}

impl Method {
    /// Every method name `--method` accepts.
    pub fn names() -> Vec<&'static str> {
        CLASSICAL_METHODS.to_vec()
    }

    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let spec = MethodSpec::parse(text)?;
        if CLASSICAL_METHODS.contains(&spec.name.as_str()) {
            let items: Vec<(String, Option<String>)> = spec
                .items
                .iter()
                .map(|i| {
                    (
                        i.key.clone(),
                        (!i.values.is_empty()).then(|| i.values.join(",")),
                    )
                })
                .collect();
            let pipeline =
                Classical::from_method(&spec.name, &items).map_err(|e| SpecError::BadValue {
                    method: spec.name.clone(),
                    key: "spec".into(),
                    problem: e.to_string(),
                })?;
            return Ok(Self::Classical {
                name: spec.name,
                pipeline,
            });
        }
        Err(SpecError::UnknownMethod {
            name: spec.name,
            valid: Self::names().join(", "),
        })
    }

    /// The short name used in file names (`classical`, `perturb`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::Classical { name, .. } => name,
        }
    }

    /// The parameters recorded in every output's provenance. Printed through text so
    /// f32 fields keep their short form (`0.4`, not `0.4000000059604645`).
    pub fn params(&self) -> serde_json::Value {
        let text = match self {
            Self::Classical { pipeline, .. } => serde_json::to_string(pipeline),
        };
        text.ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Whether the method needs a generative model.
    pub fn is_generative(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classical_specs_parse_and_unknown_names_list_valid_ones() {
        let m = Method::parse("classical:crop=4,flip").unwrap();
        assert_eq!(m.name(), "classical");
        assert!(!m.is_generative());
        assert!(Method::parse("randaugment:n=2,m=9").is_ok());
        let err = Method::parse("blur:x=1").unwrap_err().to_string();
        assert!(
            err.contains("unknown method `blur`") && err.contains("classical"),
            "{err}"
        );
        let err = Method::parse("classical:crop=-3").unwrap_err().to_string();
        assert!(err.contains("crop"), "{err}");
    }
}
