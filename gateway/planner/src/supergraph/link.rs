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
        for (dir, url) in links(schema) {
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

/// The schema's link directives (any with a `url:`, so a renamed `@link` or `@core` counts),
/// with their URLs.
fn links(schema: &Schema) -> impl Iterator<Item = (&apollo_compiler::ast::Directive, &str)> {
    schema
        .schema_definition
        .directives
        .iter()
        .filter_map(|dir| {
            let url = dir.specified_argument_by_name("url")?.as_str()?;
            Some((&***dir, url))
        })
}

/// `https://specs.apollo.dev/join/v0.3` -> `v0.3`.
fn join_version(url: &str) -> Option<&str> {
    let (spec, version) = spec_and_version(url)?;
    (spec == "join").then_some(version)
}

/// `https://specs.apollo.dev/join/v0.3` -> (`join`, `v0.3`).
fn spec_and_version(url: &str) -> Option<(&str, &str)> {
    let rest = url.trim_end_matches('/');
    let (base, version) = rest.rsplit_once('/')?;
    let (_, spec) = base.rsplit_once('/')?;
    Some((spec, version))
}

/// The specs linked `for: SECURITY` or `for: EXECUTION` that the gateway carries out: the link
/// machinery itself, `join` (the query planner) and `inaccessible` (the API schema).
const SUPPORTED_PURPOSEFUL_SPECS: [&str; 4] = ["link", "core", "join", "inaccessible"];

/// Refuses a supergraph that links a spec `for: SECURITY` or `for: EXECUTION` the gateway does
/// not carry out (`@authenticated`, `@requiresScopes`, `@policy`, `@context`, ...). The link spec
/// forbids serving the fields such a spec annotates: a SECURITY one would be served to clients
/// it should refuse, an EXECUTION one answered wrongly (a `@fromContext` argument would never
/// reach its subgraph). It allows refusing the whole schema, which is what this does, so the
/// operator learns at load time rather than from a leak.
pub(crate) fn check_link_purposes(schema: &Schema) -> Result<(), SupergraphError> {
    let mut refused = Vec::new();
    for (dir, url) in links(schema) {
        let Some(purpose) = dir
            .specified_argument_by_name("for")
            .and_then(|v| v.as_enum())
            .map(|p| p.as_str())
        else {
            continue;
        };
        if !matches!(purpose, "SECURITY" | "EXECUTION") {
            continue;
        }
        let spec = spec_and_version(url).map_or(url, |(spec, _)| spec);
        if !SUPPORTED_PURPOSEFUL_SPECS.contains(&spec) {
            refused.push(format!("{url} (for: {purpose})"));
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(SupergraphError::Unsupported(format!(
        "it links {}, which Switchyard does not carry out. The link spec forbids serving the \
         fields such a spec annotates: a SECURITY spec's fields would be open to every client, \
         an EXECUTION spec's would be answered wrongly. Remove those directives from the \
         subgraphs (enforce access in the subgraphs instead), or serve this supergraph with a \
         router that implements them",
        refused.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::{check_link_purposes, join_version};

    #[test]
    fn refuses_unsupported_security_and_execution_links() {
        let schema = |links: &str| {
            let sdl = format!(
                "schema {links} {{ query: Query }}\n\
                 directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA\n\
                 scalar link__Import\nenum link__Purpose {{ SECURITY EXECUTION }}\ntype Query {{ a: Int }}"
            );
            apollo_compiler::Schema::parse_and_validate(sdl, "s.graphql").unwrap()
        };
        let supported = schema(
            r#"@link(url: "https://specs.apollo.dev/link/v1.0")
               @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION)
               @link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)
               @link(url: "https://specs.apollo.dev/tag/v0.3")
               @link(url: "https://specs.apollo.dev/cost/v0.1", import: ["@cost"])"#,
        );
        assert!(check_link_purposes(&supported).is_ok());
        for (link, named) in [
            (
                r#"@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)"#,
                "https://specs.apollo.dev/authenticated/v0.1 (for: SECURITY)",
            ),
            (
                r#"@link(url: "https://specs.apollo.dev/requiresScopes/v0.1", for: SECURITY)"#,
                "requiresScopes/v0.1 (for: SECURITY)",
            ),
            (
                r#"@link(url: "https://specs.apollo.dev/policy/v0.1", for: SECURITY)"#,
                "policy/v0.1 (for: SECURITY)",
            ),
            (
                r#"@link(url: "https://specs.apollo.dev/context/v0.1", for: SECURITY)"#,
                "context/v0.1 (for: SECURITY)",
            ),
            (
                r#"@link(url: "https://example.com/resolvers/v1.0", for: EXECUTION)"#,
                "https://example.com/resolvers/v1.0 (for: EXECUTION)",
            ),
        ] {
            let err = check_link_purposes(&schema(link)).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
            assert!(err.contains("does not carry out"), "{err}");
        }
    }

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
