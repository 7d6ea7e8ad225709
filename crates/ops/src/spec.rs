//! The method-spec grammar: `name[:item,item,...]`, one line per method.
//!
//! An item is `key=value`, a bare `flag`, or a bare number that continues the value
//! list of the item before it, so `compose:levels=4,p=0.25,0.25,0.25,0.25` reads as
//! `levels = [4]`, `p = [0.25, 0.25, 0.25, 0.25]`. Whitespace around tokens is ignored.
//! Examples: `classical:crop=4,flip`, `randaugment:n=2,m=9`, `perturb:delta=0.3`.

use std::fmt;

/// One parsed method spec.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodSpec {
    pub name: String,
    pub items: Vec<Item>,
}

/// `key` with zero (a flag), one or several values.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("method spec is empty; write e.g. `classical:crop=4,flip`")]
    Empty,
    #[error("method spec `{spec}`: {problem}")]
    Malformed { spec: String, problem: String },
    #[error("method `{method}`: unknown parameter `{key}`; valid: {valid}")]
    UnknownKey {
        method: String,
        key: String,
        valid: String,
    },
    #[error("method `{method}`: `{key}` {problem}")]
    BadValue {
        method: String,
        key: String,
        problem: String,
    },
    #[error("unknown method `{name}`; valid: {valid}")]
    UnknownMethod { name: String, valid: String },
}

impl MethodSpec {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SpecError::Empty);
        }
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(malformed(
                text,
                "the method name must be letters, digits, `-` or `_`",
            ));
        }
        let mut items: Vec<Item> = Vec::new();
        for token in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.split_once('=') {
                Some((key, value)) => items.push(Item {
                    key: key.trim().to_string(),
                    values: vec![value.trim().to_string()],
                }),
                None if token.parse::<f64>().is_ok() => match items.last_mut() {
                    Some(last) if !last.values.is_empty() => last.values.push(token.to_string()),
                    _ => {
                        return Err(malformed(
                            text,
                            &format!("number `{token}` has no key before it"),
                        ))
                    }
                },
                None => items.push(Item {
                    key: token.to_string(),
                    values: Vec::new(),
                }),
            }
        }
        if let Some(item) = items.iter().find(|i| i.key.is_empty()) {
            return Err(malformed(
                text,
                &format!("empty key before `={}`", item.values.join(",")),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            items,
        })
    }

    /// Errors on any key not in `valid`: a typo must not silently fall back to a default.
    pub fn expect_keys(&self, valid: &[&str]) -> Result<(), SpecError> {
        match self.items.iter().find(|i| !valid.contains(&i.key.as_str())) {
            Some(item) => Err(SpecError::UnknownKey {
                method: self.name.clone(),
                key: item.key.clone(),
                valid: valid.join(", "),
            }),
            None => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.key == key)
    }

    /// The single number given for `key`, or `default` when absent.
    pub fn number(&self, key: &str, default: f64) -> Result<f64, SpecError> {
        match self.get(key) {
            None => Ok(default),
            Some(item) => match item.values.as_slice() {
                [one] => one
                    .parse()
                    .map_err(|_| self.bad(key, &format!("must be a number, got `{one}`"))),
                [] => Err(self.bad(key, "needs a value, e.g. `key=1`")),
                _ => Err(self.bad(key, "takes one value")),
            },
        }
    }

    /// A list of numbers for `key`, or `None` when absent.
    pub fn numbers(&self, key: &str) -> Result<Option<Vec<f64>>, SpecError> {
        let Some(item) = self.get(key) else {
            return Ok(None);
        };
        if item.values.is_empty() {
            return Err(self.bad(key, "needs values, e.g. `key=0.5,0.5`"));
        }
        item.values
            .iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| self.bad(key, &format!("must be numbers, got `{v}`")))
            })
            .collect::<Result<Vec<f64>, _>>()
            .map(Some)
    }

    /// The text value of `key`, or `None` when absent.
    pub fn text(&self, key: &str) -> Result<Option<&str>, SpecError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => match item.values.as_slice() {
                [one] => Ok(Some(one.as_str())),
                _ => Err(self.bad(key, "takes one value")),
            },
        }
    }

    pub fn bad(&self, key: &str, problem: &str) -> SpecError {
        SpecError::BadValue {
            method: self.name.clone(),
            key: key.to_string(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for MethodSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (i, item) in self.items.iter().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            f.write_str(&item.key)?;
            if !item.values.is_empty() {
                write!(f, "={}", item.values.join(","))?;
            }
        }
        Ok(())
    }
}

fn malformed(spec: &str, problem: &str) -> SpecError {
    SpecError::Malformed {
        spec: spec.to_string(),
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_values_and_lists() {
        let spec = MethodSpec::parse(" compose:levels=4, p=0.25,0.25,0.5 ,flip").unwrap();
        assert_eq!(spec.name, "compose");
        assert_eq!(spec.number("levels", 1.0).unwrap(), 4.0);
        assert_eq!(spec.numbers("p").unwrap().unwrap(), vec![0.25, 0.25, 0.5]);
        assert!(spec.get("flip").unwrap().values.is_empty());
        assert_eq!(spec.to_string(), "compose:levels=4,p=0.25,0.25,0.5,flip");
        assert_eq!(MethodSpec::parse(&spec.to_string()).unwrap(), spec);
    }

    #[test]
    fn bare_name_has_no_items() {
        let spec = MethodSpec::parse("trivialaugment").unwrap();
        assert!(spec.items.is_empty());
        assert_eq!(spec.number("m", 9.0).unwrap(), 9.0);
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(MethodSpec::parse("  "), Err(SpecError::Empty));
        assert!(matches!(
            MethodSpec::parse("a b:x"),
            Err(SpecError::Malformed { .. })
        ));
        assert!(matches!(
            MethodSpec::parse("m:0.5"),
            Err(SpecError::Malformed { .. })
        ));
        assert!(matches!(
            MethodSpec::parse("m:=3"),
            Err(SpecError::Malformed { .. })
        ));
        let spec = MethodSpec::parse("perturb:delat=0.3").unwrap();
        let err = spec.expect_keys(&["delta", "steps"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "method `perturb`: unknown parameter `delat`; valid: delta, steps"
        );
        let spec = MethodSpec::parse("perturb:delta=big").unwrap();
        assert!(spec
            .number("delta", 0.1)
            .unwrap_err()
            .to_string()
            .contains("got `big`"));
    }
}
