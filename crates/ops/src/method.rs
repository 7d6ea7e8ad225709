//! The methods `--method` can name, parsed from a [`MethodSpec`] into typed configs,
//! and resolved per output into a concrete [`Recipe`].
//!
//! | spec | what |
//! |---|---|
//! | `classical:crop=4,flip,...`, `randaugment:n=2,m=9`, `trivialaugment` | classical transforms |
//! | `perturb:delta=0.3,invert_to=1,renormalize=1` | invert, add noise, regenerate |
//! | `splice:strength=0.5` | SDEdit from `strength` on the image's class |
//! | `inpaint:region=foreground,dilate=16,strength=1` | regenerate inside (or outside) the mask |
//! | `compose:levels=4,p=0.25,0.25,0.25,0.25,op=splice` | level `i` of `k` drawn with `p_i`, at strength `1 - i/k` |
//! | `real-guidance:strength=0.5` | He et al.: splice at 0.5 with the class |
//! | `da-fusion:strengths=0.25,0.5,0.75,1` | Trabucco et al.: splice at a strength drawn uniformly |
//!
//! Every generative method also takes `steps`, `solver` (euler, heun, midpoint, rk4,
//! dopri5) and `guidance`.

use serde::Serialize;

use semaug_core::seeds::Stream;
use semaug_core::{Solver, Strength};
use semaug_data::augment::Classical;

use crate::generative::{InpaintConfig, PerturbConfig, Region, Sampling, SpliceConfig};
use crate::spec::{MethodSpec, SpecError};

/// Methods built from classical transforms only.
const CLASSICAL_METHODS: [&str; 3] = ["classical", "randaugment", "trivialaugment"];
const GENERATIVE_METHODS: [&str; 6] = [
    "perturb",
    "splice",
    "inpaint",
    "compose",
    "real-guidance",
    "da-fusion",
];
const SAMPLING_KEYS: [&str; 3] = ["steps", "solver", "guidance"];

/// One augmentation method with its validated parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Classical transforms (`classical`, `randaugment`, `trivialaugment`).
    Classical {
        name: String,
        pipeline: Classical,
    },
    Perturb(PerturbConfig),
    Splice {
        name: String,
        config: SpliceConfig,
    },
    Inpaint(InpaintConfig),
    Compose(ComposeConfig),
    /// Splice at a strength drawn uniformly from `strengths` for each output.
    DaFusion {
        strengths: Vec<Strength>,
        sampling: Sampling,
    },
}

/// The noise-level hierarchy of the paper's section 3.4.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeConfig {
    pub levels: usize,
    /// Probability of each level `1..=levels`.
    pub probabilities: Vec<f64>,
    /// The operator applied at a level's strength: splice or perturb (inverting to it).
    pub op: ComposeOp,
    pub sampling: Sampling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComposeOp {
    Splice,
    Perturb,
}

/// What one output actually gets, after its random choices are drawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    Classical,
    Perturb(PerturbConfig),
    Splice(SpliceConfig),
    Inpaint(InpaintConfig),
    /// Strength 0: the source image itself.
    Identity,
}

impl Method {
    /// Every method name `--method` accepts.
    pub fn names() -> Vec<&'static str> {
        CLASSICAL_METHODS
            .iter()
            .chain(GENERATIVE_METHODS.iter())
            .copied()
            .collect()
    }

    pub fn parse(text: &str) -> Result<Self, SpecError> {
        Self::from_spec(&MethodSpec::parse(text)?)
    }

    /// Whether `name` is a generative method (so run-wide sampling defaults apply).
    pub fn is_generative_name(name: &str) -> bool {
        GENERATIVE_METHODS.contains(&name)
    }

    pub fn from_spec(spec: &MethodSpec) -> Result<Self, SpecError> {
        let name = spec.name.as_str();
        if CLASSICAL_METHODS.contains(&name) {
            return classical(spec);
        }
        match name {
            "perturb" => perturb_method(spec),
            "splice" | "real-guidance" => splice_method(spec),
            "inpaint" => inpaint_method(spec),
            "compose" => compose_method(spec),
            "da-fusion" => da_fusion_method(spec),
            _ => Err(SpecError::UnknownMethod {
                name: spec.name.clone(),
                valid: Self::names().join(", "),
            }),
        }
    }

    /// The short name used in file names (`classical`, `perturb`, ...).
    pub fn name(&self) -> &str {
        match self {
            Self::Classical { name, .. } | Self::Splice { name, .. } => name,
            Self::Perturb(_) => "perturb",
            Self::Inpaint(_) => "inpaint",
            Self::Compose(_) => "compose",
            Self::DaFusion { .. } => "da-fusion",
        }
    }

    /// The parameters recorded in every output's provenance. Printed through text so
    /// f32 fields keep their short form (`0.4`, not `0.4000000059604645`).
    pub fn params(&self) -> serde_json::Value {
        let text = match self {
            Self::Classical { pipeline, .. } => serde_json::to_string(pipeline),
            other => serde_json::to_string(other),
        };
        text.ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Whether the method needs a generative model.
    pub fn is_generative(&self) -> bool {
        !matches!(self, Self::Classical { .. })
    }

    /// Whether the method reads masks.
    pub fn uses_masks(&self) -> bool {
        matches!(self, Self::Inpaint(_))
    }

    /// Draw this output's random choices (a composition level, a DA-Fusion strength).
    pub fn recipe(&self, rng: &mut Stream) -> Recipe {
        match self {
            Self::Classical { .. } => Recipe::Classical,
            Self::Perturb(c) => Recipe::Perturb(*c),
            Self::Splice { config, .. } => Recipe::Splice(*config),
            Self::Inpaint(c) => Recipe::Inpaint(*c),
            Self::DaFusion {
                strengths,
                sampling,
            } => Recipe::Splice(SpliceConfig {
                strength: strengths[rng.below(strengths.len())],
                sampling: *sampling,
            }),
            Self::Compose(c) => {
                let weights: Vec<f32> = c.probabilities.iter().map(|p| *p as f32).collect();
                let level = rng.weighted_index(&weights) + 1;
                let strength =
                    Strength::new(1.0 - level as f64 / c.levels as f64).unwrap_or(Strength::NONE);
                match (strength.sigma() == 0.0, c.op) {
                    (true, _) => Recipe::Identity,
                    (false, ComposeOp::Splice) => Recipe::Splice(SpliceConfig {
                        strength,
                        sampling: c.sampling,
                    }),
                    (false, ComposeOp::Perturb) => Recipe::Perturb(PerturbConfig {
                        invert_to: strength,
                        sampling: c.sampling,
                        ..PerturbConfig::default()
                    }),
                }
            }
        }
    }
}

fn classical(spec: &MethodSpec) -> Result<Method, SpecError> {
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
    let pipeline = Classical::from_method(&spec.name, &items).map_err(|e| SpecError::BadValue {
        method: spec.name.clone(),
        key: "spec".into(),
        problem: e.to_string(),
    })?;
    Ok(Method::Classical {
        name: spec.name.clone(),
        pipeline,
    })
}

fn keys<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(SAMPLING_KEYS).collect()
}

fn sampling(spec: &MethodSpec, default: Sampling) -> Result<Sampling, SpecError> {
    let solver = match spec.text("solver")? {
        Some(text) => text
            .parse::<Solver>()
            .map_err(|e| spec.bad("solver", &e.to_string()))?,
        None => default.solver,
    };
    let sampling = Sampling {
        steps: count(spec, "steps", default.steps)?,
        solver,
        guidance: spec.number("guidance", default.guidance)?,
    };
    sampling
        .validate()
        .map_err(|e| spec.bad("sampling", &e.to_string()))?;
    Ok(sampling)
}

fn count(spec: &MethodSpec, key: &str, default: usize) -> Result<usize, SpecError> {
    let value = spec.number(key, default as f64)?;
    if value < 1.0 || value.fract() != 0.0 {
        return Err(spec.bad(key, "must be a positive whole number"));
    }
    Ok(value as usize)
}

fn strength(spec: &MethodSpec, key: &str, default: Strength) -> Result<Strength, SpecError> {
    Strength::new(spec.number(key, default.sigma())?).map_err(|e| spec.bad(key, &e.to_string()))
}

fn flag(spec: &MethodSpec, key: &str, default: bool) -> Result<bool, SpecError> {
    match spec.get(key) {
        None => Ok(default),
        Some(item) if item.values.is_empty() => Ok(true),
        Some(_) => Ok(spec.number(key, 0.0)? != 0.0),
    }
}

fn perturb_method(spec: &MethodSpec) -> Result<Method, SpecError> {
    spec.expect_keys(&keys(&["delta", "invert_to", "renormalize"]))?;
    let default = PerturbConfig::default();
    let config = PerturbConfig {
        delta: spec.number("delta", default.delta)?,
        invert_to: strength(spec, "invert_to", default.invert_to)?,
        renormalize: flag(spec, "renormalize", default.renormalize)?,
        sampling: sampling(spec, default.sampling)?,
    };
    config
        .validate()
        .map_err(|e| spec.bad("delta", &e.to_string()))?;
    Ok(Method::Perturb(config))
}

fn splice_method(spec: &MethodSpec) -> Result<Method, SpecError> {
    spec.expect_keys(&keys(&["strength"]))?;
    let default = SpliceConfig::default();
    Ok(Method::Splice {
        name: spec.name.clone(),
        config: SpliceConfig {
            strength: strength(spec, "strength", default.strength)?,
            sampling: sampling(spec, default.sampling)?,
        },
    })
}

fn inpaint_method(spec: &MethodSpec) -> Result<Method, SpecError> {
    spec.expect_keys(&keys(&["region", "dilate", "strength"]))?;
    let default = InpaintConfig::default();
    let region = match spec.text("region")? {
        None | Some("foreground") => Region::Foreground,
        Some("background") => Region::Background,
        Some(other) => {
            return Err(spec.bad(
                "region",
                &format!("must be foreground or background, got `{other}`"),
            ))
        }
    };
    let dilate = match spec.get("dilate") {
        None => None,
        Some(_) => {
            let px = spec.number("dilate", 0.0)?;
            if !(0.0..=256.0).contains(&px) || px.fract() != 0.0 {
                return Err(spec.bad("dilate", "must be a whole number of pixels in 0..=256"));
            }
            Some(px as u32)
        }
    };
    Ok(Method::Inpaint(InpaintConfig {
        region,
        dilate,
        strength: strength(spec, "strength", default.strength)?,
        sampling: sampling(spec, default.sampling)?,
    }))
}

fn compose_method(spec: &MethodSpec) -> Result<Method, SpecError> {
    spec.expect_keys(&keys(&["levels", "p", "op"]))?;
    let levels = count(spec, "levels", 4)?;
    let probabilities = spec
        .numbers("p")?
        .unwrap_or_else(|| vec![1.0 / levels as f64; levels]);
    if probabilities.len() != levels {
        return Err(spec.bad(
            "p",
            &format!(
                "needs one probability per level ({levels}), got {}",
                probabilities.len()
            ),
        ));
    }
    let total: f64 = probabilities.iter().sum();
    if probabilities.iter().any(|p| *p < 0.0) || (total - 1.0).abs() > 1e-6 {
        return Err(spec.bad(
            "p",
            &format!("must be non-negative and sum to 1, got sum {total}"),
        ));
    }
    let op = match spec.text("op")? {
        None | Some("splice") => ComposeOp::Splice,
        Some("perturb") => ComposeOp::Perturb,
        Some(other) => {
            return Err(spec.bad("op", &format!("must be splice or perturb, got `{other}`")))
        }
    };
    Ok(Method::Compose(ComposeConfig {
        levels,
        probabilities,
        op,
        sampling: sampling(spec, SpliceConfig::default().sampling)?,
    }))
}

fn da_fusion_method(spec: &MethodSpec) -> Result<Method, SpecError> {
    spec.expect_keys(&keys(&["strengths"]))?;
    let values = spec
        .numbers("strengths")?
        .unwrap_or_else(|| vec![0.25, 0.5, 0.75, 1.0]);
    let strengths = values
        .iter()
        .map(|v| Strength::new(*v).map_err(|e| spec.bad("strengths", &e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Method::DaFusion {
        strengths,
        sampling: sampling(spec, SpliceConfig::default().sampling)?,
    })
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
            err.contains("unknown method `blur`") && err.contains("da-fusion"),
            "{err}"
        );
        let err = Method::parse("classical:crop=-3").unwrap_err().to_string();
        assert!(err.contains("crop"), "{err}");
    }

    #[test]
    fn generative_specs_parse_with_their_parameters() {
        let Method::Perturb(p) = Method::parse("perturb:delta=0.5,steps=10,solver=rk4").unwrap()
        else {
            panic!("not perturb")
        };
        assert_eq!(
            (p.delta, p.sampling.steps, p.sampling.solver),
            (0.5, 10, Solver::Rk4)
        );
        let Method::Inpaint(i) = Method::parse("inpaint:region=background,dilate=8").unwrap()
        else {
            panic!("not inpaint")
        };
        assert_eq!((i.region, i.dilate), (Region::Background, Some(8)));
        assert!(Method::parse("compose:levels=4,p=0.25,0.25,0.25,0.25")
            .unwrap()
            .is_generative());
        let real = Method::parse("real-guidance").unwrap();
        assert_eq!(real.name(), "real-guidance");
        for bad in [
            "perturb:delat=0.3",
            "splice:strength=1.5",
            "compose:levels=3,p=0.5,0.5",
            "compose:levels=2,p=0.7,0.7",
            "inpaint:region=sky",
            "perturb:solver=magic",
            "splice:steps=0",
        ] {
            assert!(Method::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn compose_draws_levels_with_their_probabilities() {
        let m = Method::parse("compose:levels=4,p=0.5,0,0,0.5").unwrap();
        let mut rng = Stream::new(1, 0, 0, 0);
        let mut seen = [0usize; 2];
        for _ in 0..400 {
            match m.recipe(&mut rng) {
                Recipe::Splice(c) => {
                    assert!((c.strength.sigma() - 0.75).abs() < 1e-12);
                    seen[0] += 1
                }
                Recipe::Identity => seen[1] += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(seen.iter().all(|n| (150..250).contains(n)), "{seen:?}");
    }
}
