//! Building pipelines from the CLI's parsed `key[=value]` items, e.g.
//! `classical:crop=4,flip` -> `[("crop", Some("4")), ("flip", None)]`.
//!
//! Every built transform is validated, so a pipeline that comes out of here is usable.

use std::str::FromStr;

use super::auto::{RandAugment, TrivialAugmentWide};
use super::color::{ColorJitter, MAX_JITTER_STRENGTH};
use super::erase::{Cutout, RandomErasing};
use super::error::{ensure, AugmentError};
use super::geometry::{HorizontalFlip, RandomCrop, RandomRotation};
use super::pipeline::{Classical, Transform};

/// The item names `classical:` accepts, with their optional values.
pub const CLASSICAL_ITEMS: &str = "crop[=padding px], flip[=p], jitter[=strength 0..=2.5], \
     rotate[=degrees 0..=180], cutout[=size px], erase[=p], randaugment, trivialaugment";

/// The augmentation methods [`Classical::from_method`] accepts.
pub const METHODS: &str = "classical, randaugment, trivialaugment";

fn parse<T: FromStr>(name: &str, value: &str, expected: &'static str) -> Result<T, AugmentError> {
    value.trim().parse().map_err(|_| AugmentError::BadValue {
        name: name.to_owned(),
        value: value.to_owned(),
        expected,
    })
}

/// Parse `value` when present, else keep `default`.
fn parse_or<T: FromStr>(
    name: &str,
    value: &Option<String>,
    default: T,
    expected: &'static str,
) -> Result<T, AugmentError> {
    value
        .as_deref()
        .map_or(Ok(default), |v| parse(name, v, expected))
}

fn refuse_value(
    name: &str,
    value: &Option<String>,
    hint: &'static str,
) -> Result<(), AugmentError> {
    match value {
        None => Ok(()),
        Some(v) => Err(AugmentError::BadValue {
            name: name.to_owned(),
            value: v.clone(),
            expected: hint,
        }),
    }
}

/// One `classical:` item to its transform.
fn classical_item(name: &str, value: &Option<String>) -> Result<Transform, AugmentError> {
    let transform = match name {
        "crop" => Transform::Crop(RandomCrop {
            padding: parse_or(name, value, 4, "a padding in whole pixels, 0..=1024")?,
            ..RandomCrop::default()
        }),
        "flip" => Transform::Flip(HorizontalFlip {
            p: parse_or(name, value, 0.5, "a probability, 0..=1")?,
        }),
        "jitter" => {
            let strength: f32 = parse_or(name, value, 0.5, "a strength, 0..=2.5")?;
            let ok = (0.0..=MAX_JITTER_STRENGTH).contains(&strength);
            ensure(ok, "jitter", "strength", strength, "0..=2.5")?;
            Transform::Jitter(ColorJitter::from_strength(strength))
        }
        "rotate" => {
            let degrees: f32 = parse_or(name, value, 15.0, "degrees, 0..=180")?;
            ensure(
                (0.0..=180.0).contains(&degrees),
                "rotate",
                "degrees",
                degrees,
                "0..=180",
            )?;
            Transform::Rotate(RandomRotation::symmetric(degrees))
        }
        "cutout" => Transform::Cutout(Cutout {
            size: parse_or(name, value, 16, "a side length in whole pixels, 1..=4096")?,
            ..Cutout::default()
        }),
        "erase" => Transform::Erase(RandomErasing {
            p: parse_or(name, value, 0.5, "a probability, 0..=1")?,
            ..RandomErasing::default()
        }),
        "randaugment" => {
            refuse_value(
                name,
                value,
                "no value here; use the randaugment method for n and m",
            )?;
            Transform::RandAugment(RandAugment::default())
        }
        "trivialaugment" => {
            refuse_value(name, value, "no value; trivialaugment has no strength")?;
            Transform::TrivialAugment(TrivialAugmentWide::default())
        }
        _ => {
            return Err(AugmentError::UnknownName {
                name: name.to_owned(),
                valid: CLASSICAL_ITEMS.to_owned(),
            })
        }
    };
    transform.validate()?;
    Ok(transform)
}

impl Classical {
    /// Build from `classical:` items in order; no items gives [`Classical::default`]
    /// (crop 4 + flip).
    pub fn from_spec_items(items: &[(String, Option<String>)]) -> Result<Self, AugmentError> {
        if items.is_empty() {
            return Ok(Self::default());
        }
        let transforms = items
            .iter()
            .map(|(name, value)| classical_item(name.trim(), value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(transforms))
    }

    /// Build any classical method by name: `classical`, `randaugment` or `trivialaugment`.
    pub fn from_method(
        method: &str,
        items: &[(String, Option<String>)],
    ) -> Result<Self, AugmentError> {
        match method.trim() {
            "classical" => Self::from_spec_items(items),
            "randaugment" => Ok(Self::new(vec![Transform::RandAugment(
                RandAugment::from_spec_items(items)?,
            )])),
            "trivialaugment" => Ok(Self::new(vec![Transform::TrivialAugment(
                TrivialAugmentWide::from_spec_items(items)?,
            )])),
            other => Err(AugmentError::UnknownName {
                name: other.to_owned(),
                valid: METHODS.to_owned(),
            }),
        }
    }
}

/// A key that needs a value.
fn required<'a>(
    name: &str,
    value: &'a Option<String>,
    expected: &'static str,
) -> Result<&'a str, AugmentError> {
    value.as_deref().ok_or_else(|| AugmentError::BadValue {
        name: name.to_owned(),
        value: String::new(),
        expected,
    })
}

impl RandAugment {
    /// `randaugment:n=2,m=9[,bins=31]`; absent keys keep torchvision's defaults.
    pub fn from_spec_items(items: &[(String, Option<String>)]) -> Result<Self, AugmentError> {
        let mut out = Self::default();
        for (key, value) in items {
            match key.trim() {
                "n" => {
                    out.num_ops = parse(key, required(key, value, "n=<ops 0..=16>")?, "ops 0..=16")?
                }
                "m" => {
                    out.magnitude =
                        parse(key, required(key, value, "m=<bin 0..=30>")?, "a bin 0..=30")?
                }
                "bins" => {
                    let v = required(key, value, "bins=<count 2..=1000>")?;
                    out.num_magnitude_bins = parse(key, v, "a bin count 2..=1000")?;
                }
                other => {
                    return Err(AugmentError::UnknownName {
                        name: other.to_owned(),
                        valid: "randaugment keys: n, m, bins".to_owned(),
                    })
                }
            }
        }
        out.validate()?;
        Ok(out)
    }
}

impl TrivialAugmentWide {
    /// `trivialaugment[:bins=31]`.
    pub fn from_spec_items(items: &[(String, Option<String>)]) -> Result<Self, AugmentError> {
        let mut out = Self::default();
        for (key, value) in items {
            match key.trim() {
                "bins" => {
                    let v = required(key, value, "bins=<count 2..=1000>")?;
                    out.num_magnitude_bins = parse(key, v, "a bin count 2..=1000")?;
                }
                other => {
                    return Err(AugmentError::UnknownName {
                        name: other.to_owned(),
                        valid: "trivialaugment keys: bins".to_owned(),
                    })
                }
            }
        }
        out.validate()?;
        Ok(out)
    }
}
