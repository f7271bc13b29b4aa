//! Composition errors carrying Apollo's error codes and a source position.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One composition or validation error, shaped like Apollo's (code + message), located in a subgraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompositionError {
    /// Apollo's error code, e.g. `INVALID_FIELD_SHARING`.
    pub code: &'static str,
    /// Human readable explanation.
    pub message: String,
    /// Subgraph the error is located in, when there is one.
    pub subgraph: Option<String>,
    /// Schema coordinate (`Type`, `Type.field`, `Type.field(arg:)`), when there is one.
    pub coordinate: Option<String>,
    /// 1-based line in the subgraph SDL.
    pub line: Option<usize>,
    /// Subgraph schema file, when the SDL came from a file.
    pub file: Option<PathBuf>,
}

impl CompositionError {
    /// An error with just a code and a message; locate it with the builder methods.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            subgraph: None,
            coordinate: None,
            line: None,
            file: None,
        }
    }

    /// Attaches the subgraph name.
    pub fn in_subgraph(mut self, name: &str) -> Self {
        self.subgraph = Some(name.to_string());
        self
    }

    /// Attaches a schema coordinate.
    pub fn at(mut self, coordinate: impl Into<String>) -> Self {
        self.coordinate = Some(coordinate.into());
        self
    }

    /// Attaches a line number (ignored when unknown).
    pub fn line(mut self, line: Option<usize>) -> Self {
        if line.is_some() {
            self.line = line;
        }
        self
    }
}

impl fmt::Display for CompositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.code)?;
        if let Some(s) = &self.subgraph {
            write!(f, " [{s}")?;
            if let Some(file) = &self.file {
                write!(f, " {}", file.display())?;
            }
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
            write!(f, "]")?;
        }
        if let Some(c) = &self.coordinate {
            write!(f, " {c}:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Composition failed; every error found is listed (not just the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("composition failed with {} error(s):\n{}", .0.len(), render(.0))]
pub struct CompositionErrors(pub Vec<CompositionError>);

fn render(errors: &[CompositionError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
