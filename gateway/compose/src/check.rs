//! `switchyard check`: composition errors, drift of the committed supergraph, and a classified
//! API-schema diff against a base version — rendered as text, JSON or GitHub annotations.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::api::{self, Change, Severity};
use crate::config::{self, ConfigError};
use crate::error::CompositionError;

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// rover-style `supergraph.yaml`.
    pub config: PathBuf,
    /// Committed supergraph; default `supergraph.graphql` next to the config (skipped if absent).
    pub supergraph: Option<PathBuf>,
    /// Base for the API diff: a file, or a git ref to read the committed supergraph at.
    pub against: Option<String>,
    /// Do not fail on breaking changes.
    pub allow_breaking: bool,
}

/// Errors that stop a check before it can report (bad config, unreadable base).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The config or a subgraph schema could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `--against` base could not be read.
    #[error("cannot read base schema {against}: {message}")]
    Base {
        /// What was asked for.
        against: String,
        /// Why it failed.
        message: String,
    },
}

/// Drift between the committed supergraph and what the subgraphs compose to.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// Committed supergraph file.
    pub file: PathBuf,
    /// Explanation (first differing line, or missing file).
    pub message: String,
    /// 1-based first differing line, if the file exists.
    pub line: Option<usize>,
}

/// The full result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Composition errors (non-empty means composition failed).
    pub errors: Vec<CompositionError>,
    /// Drift of the committed supergraph, if any.
    pub drift: Option<Drift>,
    /// Where the API diff's base came from, if there was one.
    pub base: Option<String>,
    /// Classified API changes against the base.
    pub changes: Vec<Change>,
    /// Whether breaking changes were allowed.
    pub allow_breaking: bool,
    /// Overall verdict.
    pub passed: bool,
}

impl CheckReport {
    fn count(&self, s: Severity) -> usize {
        self.changes.iter().filter(|c| c.severity == s).count()
    }
}

fn read_base(against: &str, supergraph: &Path) -> Result<String, CheckError> {
    let as_path = Path::new(against);
    if as_path.is_file() {
        return std::fs::read_to_string(as_path).map_err(|e| CheckError::Base {
            against: against.into(),
            message: e.to_string(),
        });
    }
    // Not a file: a git ref; read the committed supergraph as of that ref.
    let dir = supergraph
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = supergraph
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("show")
        .arg(format!("{against}:./{name}"))
        .output()
        .map_err(|e| CheckError::Base {
            against: against.into(),
            message: format!("running git: {e}"),
        })?;
    if !out.status.success() {
        return Err(CheckError::Base {
            against: against.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn normalize(s: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Runs the whole check.
pub fn check(opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    let sources = config::load_subgraphs(&opts.config)?;
    let explicit = opts.supergraph.is_some();
    let supergraph_path = opts.supergraph.clone().unwrap_or_else(|| {
        opts.config
            .parent()
            .unwrap_or(Path::new("."))
            .join("supergraph.graphql")
    });
    let composed = crate::compose(&sources);
    let mut report = CheckReport {
        errors: Vec::new(),
        drift: None,
        base: None,
        changes: Vec::new(),
        allow_breaking: opts.allow_breaking,
        passed: false,
    };
    let new_sdl = match composed {
        Ok(c) => Some(c.supergraph_sdl),
        Err(e) => {
            report.errors = e.0;
            None
        }
    };
    let committed = std::fs::read_to_string(&supergraph_path).ok();
    if let Some(new_sdl) = &new_sdl {
        match &committed {
            Some(old) => {
                let (a, b) = (normalize(old), normalize(new_sdl));
                if a != b {
                    let line = a
                        .iter()
                        .zip(&b)
                        .position(|(x, y)| x != y)
                        .unwrap_or(a.len().min(b.len()))
                        + 1;
                    report.drift = Some(Drift {
                        file: supergraph_path.clone(),
                        line: Some(line),
                        message: format!(
                            "committed supergraph differs from what the subgraphs compose to (first difference at line {line}); run `switchyard compose --config {} -o {}`",
                            opts.config.display(),
                            supergraph_path.display()
                        ),
                    });
                }
            }
            None if explicit => {
                report.drift = Some(Drift {
                    file: supergraph_path.clone(),
                    line: None,
                    message:
                        "committed supergraph is missing; run `switchyard compose -o` and commit it"
                            .into(),
                });
            }
            None => {}
        }
        let base = match &opts.against {
            Some(a) => Some((a.clone(), read_base(a, &supergraph_path)?)),
            None => committed
                .clone()
                .map(|c| (supergraph_path.display().to_string(), c)),
        };
        if let Some((label, base_sdl)) = base {
            let old = api::api_schema(&base_sdl).map_err(|m| CheckError::Base {
                against: label.clone(),
                message: m,
            })?;
            let new = api::api_schema(new_sdl).map_err(|m| CheckError::Base {
                against: "composed supergraph".into(),
                message: m,
            })?;
            report.changes = api::diff(&old, &new);
            report.base = Some(label);
        }
    }
    let breaking = report.count(Severity::Breaking) > 0;
    report.passed =
        report.errors.is_empty() && report.drift.is_none() && (opts.allow_breaking || !breaking);
    Ok(report)
}

/// Output formats of `switchyard check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human readable.
    Text,
    /// One JSON document.
    Json,
    /// GitHub Actions workflow commands (`::error file=...::`).
    Github,
}

fn gh_escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn gh_escape_prop(s: &str) -> String {
    gh_escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders a report in the given format.
pub fn render(report: &CheckReport, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(report).unwrap_or_default() + "\n",
        Format::Text => {
            let mut out = String::new();
            for e in &report.errors {
                out.push_str(&format!("error{e}\n"));
            }
            if let Some(d) = &report.drift {
                out.push_str(&format!(
                    "error[DRIFT] {}: {}\n",
                    d.file.display(),
                    d.message
                ));
            }
            if let Some(base) = &report.base {
                out.push_str(&format!(
                    "API changes against {base}: {} breaking, {} dangerous, {} safe\n",
                    report.count(Severity::Breaking),
                    report.count(Severity::Dangerous),
                    report.count(Severity::Safe)
                ));
                for c in &report.changes {
                    let tag = match c.severity {
                        Severity::Breaking => "BREAKING ",
                        Severity::Dangerous => "DANGEROUS",
                        Severity::Safe => "safe     ",
                    };
                    out.push_str(&format!("  {tag} {:<28} {}\n", c.code, c.message));
                }
            }
            out.push_str(if report.passed {
                "check passed\n"
            } else {
                "check failed\n"
            });
            out
        }
        Format::Github => {
            let mut out = String::new();
            for e in &report.errors {
                let mut props = Vec::new();
                if let Some(f) = &e.file {
                    props.push(format!("file={}", gh_escape_prop(&f.display().to_string())));
                }
                if let Some(l) = e.line {
                    props.push(format!("line={l}"));
                }
                props.push(format!("title={}", gh_escape_prop(e.code)));
                let loc = match (&e.subgraph, &e.coordinate) {
                    (Some(s), Some(c)) => format!("[{s}] {c}: "),
                    (Some(s), None) => format!("[{s}] "),
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "::error {}::{}\n",
                    props.join(","),
                    gh_escape_data(&format!("{loc}{}", e.message))
                ));
            }
            if let Some(d) = &report.drift {
                let line = d.line.map(|l| format!(",line={l}")).unwrap_or_default();
                out.push_str(&format!(
                    "::error file={}{line},title=Supergraph drift::{}\n",
                    gh_escape_prop(&d.file.display().to_string()),
                    gh_escape_data(&d.message)
                ));
            }
            for c in &report.changes {
                let level = match c.severity {
                    Severity::Breaking if report.allow_breaking => "warning",
                    Severity::Breaking => "error",
                    Severity::Dangerous => "warning",
                    Severity::Safe => "notice",
                };
                let title = match c.severity {
                    Severity::Breaking => "Breaking change",
                    Severity::Dangerous => "Dangerous change",
                    Severity::Safe => "Safe change",
                };
                out.push_str(&format!(
                    "::{level} title={}::{}\n",
                    gh_escape_prop(&format!("{title} ({})", c.code)),
                    gh_escape_data(&c.message)
                ));
            }
            out.push_str(if report.passed {
                "check passed\n"
            } else {
                "check failed\n"
            });
            out
        }
    }
}
