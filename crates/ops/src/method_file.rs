//! Method files: `--method methods.toml` loads several methods from one TOML file.
//!
//! Each `[[method]]` table becomes the same [`MethodSpec`] the text grammar produces, so
//! validation, defaults and the recorded parameters have one source of truth:
//!
//! ```toml
//! [[method]]
//! name = "perturb"          # perturb:delta=0.3,steps=20,solver=heun
//! delta = 0.3
//! steps = 20
//! solver = "heun"
//!
//! [[method]]
//! name = "compose"          # compose:levels=4,p=0.4,0.3,0.2,0.1
//! levels = 4
//! p = [0.4, 0.3, 0.2, 0.1]
//! ```
//!
//! Values map onto grammar items: a number or a string is `key=value`, a list of numbers
//! is `key=a,b,c`, `true` is the bare flag `key` and `false` is `key=0`. Keys keep their
//! order in the file (a classical pipeline applies its transforms in that order). A spec
//! ending in `.toml` is always a file: method names cannot contain a dot.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit as toml;

use crate::method::Method;
use crate::spec::{Item, MethodSpec, SpecError};

/// The array-of-tables key every method lives under.
const METHOD_KEY: &str = "method";
/// The key naming the method inside its table.
const NAME_KEY: &str = "name";

/// Whether a `--method` argument names a method file rather than a text spec.
pub fn is_method_file(spec: &str) -> bool {
    Path::new(spec)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"))
}

/// Where one method of a file was written, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    /// 1-based position among the file's `[[method]]` tables.
    pub index: usize,
    /// 1-based line of the table (or of the offending key), when known.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, [[method]] {}", self.path.display(), self.index)?;
        match self.line {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
    }
}

/// One method of a file: its spec (before run-wide defaults) and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMethod {
    pub origin: Origin,
    pub spec: MethodSpec,
    /// The line of each key, so a refused parameter points at its own line.
    pub key_lines: Vec<(String, usize)>,
}

impl FileMethod {
    /// Validates the spec into a [`Method`], naming the file and table on error.
    pub fn to_method(&self) -> Result<Method, MethodFileError> {
        Method::from_spec(&self.spec).map_err(|error| {
            let key = match &error {
                SpecError::UnknownKey { key, .. } | SpecError::BadValue { key, .. } => Some(key),
                _ => None,
            };
            let line = key.and_then(|key| {
                self.key_lines
                    .iter()
                    .find_map(|(k, line)| (k == key).then_some(*line))
            });
            let mut origin = self.origin.clone();
            origin.line = line.or(origin.line);
            MethodFileError::Method {
                origin,
                error: Box::new(error),
            }
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MethodFileError {
    #[error("cannot read method file {}: {error}; check the path", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("method file {}, line {line}: {message}; fix the TOML syntax", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("method file {}: {problem}", path.display())]
    Layout { path: PathBuf, problem: String },
    #[error("method file {origin}: no `name`; add e.g. `name = \"perturb\"` (valid: {valid})")]
    MissingName { origin: Origin, valid: String },
    #[error("method file {origin}: `{key}` {problem}")]
    BadKey {
        origin: Origin,
        key: String,
        problem: String,
    },
    #[error("method file {origin}: {error}")]
    Method {
        origin: Origin,
        error: Box<SpecError>,
    },
}

/// Reads `path` and returns its methods' specs, in file order.
pub fn load_specs(path: &Path) -> Result<Vec<FileMethod>, MethodFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| MethodFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_specs(&text, path)
}

/// Reads `path` and validates every method in it.
pub fn load_methods(path: &Path) -> Result<Vec<Method>, MethodFileError> {
    load_specs(path)?
        .iter()
        .map(FileMethod::to_method)
        .collect()
}

/// Parses method-file `text`; `path` only names the file in errors.
pub fn parse_specs(text: &str, path: &Path) -> Result<Vec<FileMethod>, MethodFileError> {
    let document = toml::Document::parse(text).map_err(|e| MethodFileError::Syntax {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |span| line_of(text, span.start)),
        // One line: the parser's message may carry its own line breaks.
        message: e.message().split_whitespace().collect::<Vec<_>>().join(" "),
    })?;
    let layout = |problem: String| MethodFileError::Layout {
        path: path.to_path_buf(),
        problem,
    };
    let root = document.as_table();
    if let Some((key, _)) = root.iter().find(|(key, _)| *key != METHOD_KEY) {
        return Err(layout(format!(
            "unknown top-level key `{key}`; a method file holds only [[method]] tables"
        )));
    }
    let tables = method_tables(root.get(METHOD_KEY)).ok_or_else(|| {
        layout(
            "holds no methods; add one [[method]] table per method, e.g. \
             `[[method]]` then `name = \"perturb\"`"
                .into(),
        )
    })?;
    let locate = |index: usize, span: Option<Range<usize>>| Origin {
        path: path.to_path_buf(),
        index: index + 1,
        line: span.map(|s| line_of(text, s.start)),
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(index, (table, span))| {
            file_method(table, text, |key_span| {
                locate(index, key_span.or(span.clone()))
            })
        })
        .collect()
}

/// The method tables under `method`, with their spans: `[[method]]` tables, an array of
/// inline tables, or one `[method]` table. `None` when there are none or they are not tables.
fn method_tables(item: Option<&toml::Item>) -> Option<Vec<(&dyn toml::TableLike, Span)>> {
    let tables: Vec<(&dyn toml::TableLike, Span)> = match item? {
        toml::Item::ArrayOfTables(array) => array
            .iter()
            .map(|t| (t as &dyn toml::TableLike, t.span()))
            .collect(),
        toml::Item::Table(table) => vec![(table as &dyn toml::TableLike, table.span())],
        toml::Item::Value(toml::Value::InlineTable(table)) => {
            vec![(table as &dyn toml::TableLike, table.span())]
        }
        toml::Item::Value(toml::Value::Array(array)) => array
            .iter()
            .map(|v| {
                v.as_inline_table()
                    .map(|t| (t as &dyn toml::TableLike, v.span()))
            })
            .collect::<Option<_>>()?,
        _ => return None,
    };
    (!tables.is_empty()).then_some(tables)
}

type Span = Option<Range<usize>>;

/// One method table to its spec; `origin` locates a key's span (or the table's).
fn file_method(
    table: &dyn toml::TableLike,
    text: &str,
    origin: impl Fn(Span) -> Origin,
) -> Result<FileMethod, MethodFileError> {
    let mut name = None;
    let mut items = Vec::new();
    let mut key_lines = Vec::new();
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(toml::Key::span);
        if let Some(span) = &key_span {
            key_lines.push((key.to_string(), line_of(text, span.start)));
        }
        let bad = |problem: &str| MethodFileError::BadKey {
            origin: origin(key_span.clone()),
            key: key.to_string(),
            problem: problem.to_string(),
        };
        let value = item.as_value().ok_or_else(|| {
            bad("must be a number, a string, true/false or a list of numbers, not a table")
        })?;
        if key == NAME_KEY {
            let text = value
                .as_str()
                .ok_or_else(|| bad("must be a string, e.g. `name = \"perturb\"`"))?;
            name = Some(text.trim().to_string());
        } else {
            items.push(Item {
                key: key.to_string(),
                values: grammar_values(value).map_err(|problem| bad(&problem))?,
            });
        }
    }
    let origin = origin(None);
    let Some(name) = name else {
        return Err(MethodFileError::MissingName {
            origin,
            valid: Method::names().join(", "),
        });
    };
    Ok(FileMethod {
        origin,
        spec: MethodSpec { name, items },
        key_lines,
    })
}

/// A TOML value as the values of a grammar item (see the module doc).
fn grammar_values(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::Boolean(flag) => Ok(if *flag.value() {
            Vec::new()
        } else {
            vec!["0".into()]
        }),
        toml::Value::Array(array) => {
            if array.is_empty() {
                return Err("is an empty list; give at least one number".into());
            }
            array
                .iter()
                .map(number_text)
                .collect::<Option<_>>()
                .ok_or_else(|| "must be a list of numbers, e.g. `p = [0.5, 0.5]`".to_string())
        }
        toml::Value::String(text) => Ok(vec![text.value().trim().to_string()]),
        other => number_text(other).map(|n| vec![n]).ok_or_else(|| {
            format!(
                "must be a number, a string, true/false or a list of numbers, not {}",
                other.type_name()
            )
        }),
    }
}

/// A number as the grammar writes it; f64's `Display` is the shortest exact form.
fn number_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Integer(n) => Some(n.value().to_string()),
        toml::Value::Float(x) => Some(x.value().to_string()),
        _ => None,
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.as_bytes()[..byte.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
