//! `@link` handling: the local names of the join spec's directives and types, which a
//! supergraph may rename with `as:` or bring in unprefixed with `import:`.

use apollo_compiler::ast::Value;
use apollo_compiler::Schema;

use super::SupergraphError;

/// Local names of the join spec elements the model reads.
#[derive(Debug, Clone)]
pub(crate) struct JoinNames {
    pub graph_enum: String,
    pub graph: String,
    pub type_: String,
    pub field: String,
    pub implements: String,
    pub union_member: String,
}

impl JoinNames {
    /// Finds the join `@link` (any schema directive with a join spec `url:`, so a renamed
    /// `@link` works too) and derives local names from its `as:` and `import:`.
    pub fn from_schema(schema: &Schema) -> Result<Self, SupergraphError> {
        let mut prefix = "join".to_string();
        let mut imports: Vec<(String, String)> = Vec::new();
        let mut found = false;
        for dir in schema.schema_definition.directives.iter() {
            let Some(url) = dir
                .specified_argument_by_name("url")
                .and_then(|v| v.as_str())
            else {
                continue;
            };
            let Some(version) = join_version(url) else {
                continue;
            };
            if !matches!(version, "v0.1" | "v0.2" | "v0.3" | "v0.4" | "v0.5") {
                return Err(SupergraphError::Unsupported(format!(
                    "join spec {version} (supported: v0.3–v0.5)"
                )));
            }
            found = true;
            if let Some(alias) = dir
                .specified_argument_by_name("as")
                .and_then(|v| v.as_str())
            {
                prefix = alias.to_string();
            }
            if let Some(list) = dir.specified_argument_by_name("import") {
                if let Some(items) = list.as_list() {
                    for item in items {
                        match item.as_ref() {
                            Value::String(name) => imports.push((name.clone(), name.clone())),
                            Value::Object(fields) => {
                                let get = |k: &str| {
                                    fields
                                        .iter()
                                        .find(|(n, _)| n == k)
                                        .and_then(|(_, v)| v.as_str())
                                };
                                if let Some(name) = get("name") {
                                    let local = get("as").unwrap_or(name);
                                    imports.push((name.to_string(), local.to_string()));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        if !found {
            return Err(SupergraphError::Unsupported(
                "no @link to the join spec (https://specs.apollo.dev/join/v0.x)".into(),
            ));
        }
        let local = |element: &str, is_directive: bool| -> String {
            let wanted = if is_directive {
                format!("@{element}")
            } else {
                element.to_string()
            };
            for (name, alias) in &imports {
                if *name == wanted {
                    return alias.trim_start_matches('@').to_string();
                }
            }
            format!("{prefix}__{element}")
        };
        Ok(Self {
            graph_enum: local("Graph", false),
            graph: local("graph", true),
            type_: local("type", true),
            field: local("field", true),
            implements: local("implements", true),
            union_member: local("unionMember", true),
        })
    }
}

/// `https://specs.apollo.dev/join/v0.3` -> `v0.3`.
fn join_version(url: &str) -> Option<&str> {
    let rest = url.trim_end_matches('/');
    let (base, version) = rest.rsplit_once('/')?;
    let (_, spec) = base.rsplit_once('/')?;
    (spec == "join").then_some(version)
}

#[cfg(test)]
mod tests {
    use super::join_version;

    #[test]
    fn join_urls() {
        assert_eq!(
            join_version("https://specs.apollo.dev/join/v0.3"),
            Some("v0.3")
        );
        assert_eq!(
            join_version("https://specs.apollo.dev/join/v0.5/"),
            Some("v0.5")
        );
        assert_eq!(join_version("https://specs.apollo.dev/link/v1.0"), None);
    }
}
