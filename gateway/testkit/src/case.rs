//! The federation case-file format (gateway/tests/federation/README.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::TestkitError;

/// Where a case's supergraph comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupergraphSource {
    /// `=== supergraph`: the SDL itself.
    Inline(String),
    /// `=== supergraph-file`: a path relative to the cases directory.
    File(String),
}

/// `=== options`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseOptions {
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Progressive-override labels switched on.
    #[serde(default)]
    pub override_labels: Vec<String>,
    /// Subgraphs that are not started (their URL refuses connections).
    #[serde(default)]
    pub down: Vec<String>,
    /// HTTP headers the client sends to the gateway.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// One parsed case file.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// What the case checks.
    pub description: String,
    /// The supergraph, inline or by file.
    pub supergraph: SupergraphSource,
    /// Fixture per subgraph name.
    pub fixtures: BTreeMap<String, Value>,
    /// The client operation.
    pub operation: String,
    /// Operation variables (`{}` when absent).
    pub variables: Value,
    /// Options.
    pub options: CaseOptions,
    /// Expected response.
    pub response: Value,
    /// Expected HTTP request counts per subgraph, for the listed subgraphs.
    pub requests: Option<BTreeMap<String, u64>>,
}

impl Case {
    /// Parses a case file's text.
    pub fn parse(text: &str) -> Result<Self, TestkitError> {
        let mut sections: Vec<(String, usize, String)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(header) = line.strip_prefix("===") {
                sections.push((header.trim().to_string(), index + 1, String::new()));
            } else if let Some((_, _, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            } else if !line.trim().is_empty() {
                return Err(TestkitError::Case(format!(
                    "line {}: text before the first `=== section`",
                    index + 1
                )));
            }
        }
        let mut description = None;
        let mut supergraph = None;
        let mut fixtures = BTreeMap::new();
        let mut operation = None;
        let mut variables = None;
        let mut options = None;
        let mut response = None;
        let mut requests = None;
        for (header, line, body) in sections {
            let err =
                |msg: String| TestkitError::Case(format!("line {line} (`=== {header}`): {msg}"));
            let json = |body: &str| -> Result<Value, TestkitError> {
                serde_json::from_str(body).map_err(|e| err(format!("invalid JSON: {e}")))
            };
            let (kind, arg) = match header.split_once(char::is_whitespace) {
                Some((k, a)) => (k, a.trim()),
                None => (header.as_str(), ""),
            };
            let duplicate = |present: bool| {
                if present {
                    Err(err("section appears twice".into()))
                } else {
                    Ok(())
                }
            };
            match kind {
                "description" => {
                    duplicate(description.is_some())?;
                    description = Some(body.trim().to_string());
                }
                "supergraph" => {
                    duplicate(supergraph.is_some())?;
                    supergraph = Some(SupergraphSource::Inline(body));
                }
                "supergraph-file" => {
                    duplicate(supergraph.is_some())?;
                    supergraph = Some(SupergraphSource::File(body.trim().to_string()));
                }
                "fixture" => {
                    if arg.is_empty() {
                        return Err(err("`=== fixture` needs a subgraph name".into()));
                    }
                    let value = json(&body)?;
                    if !value.is_object() {
                        return Err(err("a fixture must be a JSON object".into()));
                    }
                    if fixtures.insert(arg.to_string(), value).is_some() {
                        return Err(err("fixture appears twice".into()));
                    }
                }
                "operation" => {
                    duplicate(operation.is_some())?;
                    operation = Some(body.trim().to_string());
                }
                "variables" => {
                    duplicate(variables.is_some())?;
                    let value = json(&body)?;
                    if !value.is_object() {
                        return Err(err("variables must be a JSON object".into()));
                    }
                    variables = Some(value);
                }
                "options" => {
                    duplicate(options.is_some())?;
                    options = Some(
                        serde_json::from_str::<CaseOptions>(&body)
                            .map_err(|e| err(format!("invalid options: {e}")))?,
                    );
                }
                "response" => {
                    duplicate(response.is_some())?;
                    response = Some(json(&body)?);
                }
                "requests" => {
                    duplicate(requests.is_some())?;
                    requests = Some(
                        serde_json::from_str::<BTreeMap<String, u64>>(&body)
                            .map_err(|e| err(format!("invalid requests: {e}")))?,
                    );
                }
                other => return Err(err(format!("unknown section `{other}`"))),
            }
        }
        let missing = |name: &str| TestkitError::Case(format!("missing `=== {name}` section"));
        Ok(Case {
            description: description.ok_or_else(|| missing("description"))?,
            supergraph: supergraph.ok_or_else(|| missing("supergraph"))?,
            fixtures,
            operation: operation.ok_or_else(|| missing("operation"))?,
            variables: variables.unwrap_or_else(|| Value::Object(Default::default())),
            options: options.unwrap_or_default(),
            response: response.ok_or_else(|| missing("response"))?,
            requests,
        })
    }

    /// Reads and parses a case file, resolving `supergraph-file` against the file's directory.
    pub fn load(path: &Path) -> Result<Self, TestkitError> {
        let text = std::fs::read_to_string(path).map_err(TestkitError::Io)?;
        let mut case = Self::parse(&text)?;
        if let SupergraphSource::File(relative) = &case.supergraph {
            let base = path.parent().unwrap_or(Path::new("."));
            let file = base.join(relative);
            let sdl = std::fs::read_to_string(&file).map_err(|e| {
                TestkitError::Case(format!("supergraph-file {}: {e}", file.display()))
            })?;
            case.supergraph = SupergraphSource::Inline(sdl);
        }
        Ok(case)
    }

    /// The supergraph SDL; `None` for an unresolved `supergraph-file` (use [`Case::load`]).
    pub fn supergraph_sdl(&self) -> Option<&str> {
        match &self.supergraph {
            SupergraphSource::Inline(sdl) => Some(sdl),
            SupergraphSource::File(_) => None,
        }
    }

    /// The client request body: `{"query", "variables", "operationName"?}`.
    pub fn request_body(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("query".into(), Value::String(self.operation.clone()));
        body.insert("variables".into(), self.variables.clone());
        if let Some(name) = &self.options.operation_name {
            body.insert("operationName".into(), Value::String(name.clone()));
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CASE: &str = r#"=== description
Checks a thing.
=== supergraph-file
shared/products.graphql
=== fixture products
{"Query": {"a": 1}}
=== operation
{ a }
=== options
{"down": ["reviews"], "operation_name": "Q"}
=== response
{"data": {"a": 1}}
=== requests
{"products": 1}
"#;

    #[test]
    fn parses_every_section() {
        let case = Case::parse(CASE).unwrap();
        assert_eq!(case.description, "Checks a thing.");
        assert_eq!(
            case.supergraph,
            SupergraphSource::File("shared/products.graphql".into())
        );
        assert_eq!(case.fixtures["products"], json!({"Query": {"a": 1}}));
        assert_eq!(case.operation, "{ a }");
        assert_eq!(case.variables, json!({}));
        assert_eq!(case.options.down, vec!["reviews".to_string()]);
        assert_eq!(case.response, json!({"data": {"a": 1}}));
        assert_eq!(case.requests.as_ref().unwrap()["products"], 1);
        assert_eq!(case.supergraph_sdl(), None);
    }

    #[test]
    fn reports_mistakes_with_line_numbers() {
        let err = Case::parse("=== description\nx\n=== response\n{oops\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = Case::parse("=== description\nx\n=== options\n{\"dwn\": []}\n").unwrap_err();
        assert!(err.to_string().contains("dwn"), "{err}");
        let err = Case::parse("=== description\nx\n").unwrap_err();
        assert!(err.to_string().contains("supergraph"), "{err}");
        assert!(Case::parse("hello\n=== description\nx\n").is_err());
    }
}
