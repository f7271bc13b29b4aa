//! Composition with Switchyard's composer and, when Node and `@apollo/composition` are available,
//! with Apollo's, so a composer difference is not mistaken for a gateway one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_compose::SubgraphSource;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// The routing URL written into composed supergraphs; the runner swaps it for the real loopback
/// URL once the subgraph is listening (the subgraph is extracted from the supergraph first).
pub fn placeholder_url(subgraph: &str) -> String {
    format!("http://{subgraph}.difftest.invalid/graphql")
}

/// Replaces every subgraph's placeholder URL with its real one.
pub fn with_urls(supergraph: &str, urls: &std::collections::HashMap<String, String>) -> String {
    let mut out = supergraph.to_string();
    for (name, url) in urls {
        out = out.replace(&placeholder_url(name), url);
    }
    out
}

/// Composes with `switchyard-compose` (what `switchyard compose` runs); `Err` lists the errors.
pub fn compose_ours(subgraphs: &[(String, String)]) -> Result<String, String> {
    let sources: Vec<SubgraphSource> = subgraphs
        .iter()
        .map(|(name, sdl)| SubgraphSource::new(name, placeholder_url(name), sdl))
        .collect();
    switchyard_compose::compose(&sources)
        .map(|c| c.supergraph_sdl)
        .map_err(|e| e.to_string())
}

/// `sdl` with the `@key` directives of every type reversed on its definition line; `None` when
/// no type has two keys. Apollo's satisfiability check can depend on that order (its search
/// skips a second key move with the same fields as the move before it, assuming a direct one
/// exists), so a shape it rejects only in one order is an artefact of its search, not a rule.
pub fn with_keys_reversed(sdl: &str) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = sdl
        .lines()
        .map(|line| {
            let spans = key_spans(line);
            if spans.len() < 2 {
                return line.to_string();
            }
            changed = true;
            let mut out = String::new();
            let mut at = 0;
            for (i, (start, end)) in spans.iter().enumerate() {
                let (from, to) = spans[spans.len() - 1 - i];
                out.push_str(&line[at..*start]);
                out.push_str(&line[from..to]);
                at = *end;
            }
            out.push_str(&line[at..]);
            out
        })
        .collect();
    changed.then(|| lines.join("\n"))
}

/// Byte ranges of the `@key(...)` applications on a type or interface definition line.
fn key_spans(line: &str) -> Vec<(usize, usize)> {
    let trimmed = line.trim_start();
    if !["type ", "interface ", "extend type ", "extend interface "]
        .iter()
        .any(|p| trimmed.starts_with(p))
    {
        return Vec::new();
    }
    let bytes = line.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(found) = line[from..].find("@key(") {
        let start = from + found;
        let (mut depth, mut quoted, mut end) = (0usize, false, None);
        let mut i = start + "@key".len();
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'(' if !quoted => depth += 1,
                b')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            return Vec::new();
        };
        spans.push((start, end));
        from = end;
    }
    spans
}

/// Node helper: one JSON request per line in, one JSON answer per line out. Our own few lines
/// around `composeServices`; `@apollo/composition` itself is found through NODE_PATH.
const HELPER: &str = r#"'use strict';
const { composeServices } = require('@apollo/composition');
const { parse } = require('graphql');
const lines = require('readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let out;
  try {
    const request = JSON.parse(line);
    const result = composeServices(request.subgraphs.map((s) => ({ name: s.name, url: s.url, typeDefs: parse(s.sdl) })));
    out = result.errors ? { errors: result.errors.map((e) => e.message) } : { supergraph: result.supergraphSdl };
  } catch (e) {
    out = { errors: [String(e && e.message ? e.message : e)] };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
});
"#;

/// A long-running Node process composing with `@apollo/composition`.
#[derive(Debug)]
pub struct ApolloComposer {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The `@apollo/composition` version in use.
    pub version: String,
}

impl ApolloComposer {
    /// Starts the helper with `node_modules` (holding `@apollo/composition` and `graphql`) on
    /// NODE_PATH; the helper file is written into `work_dir`.
    pub async fn start(node_modules: &Path, work_dir: &Path) -> anyhow::Result<Self> {
        let package = node_modules.join("@apollo/composition/package.json");
        let version = std::fs::read_to_string(&package)
            .with_context(|| format!("no @apollo/composition at {}", package.display()))
            .and_then(|text| Ok(serde_json::from_str::<Value>(&text)?))?
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let helper: PathBuf = work_dir.join("apollo-compose.cjs");
        std::fs::write(&helper, HELPER)?;
        let mut child = tokio::process::Command::new("node")
            .arg(&helper)
            .env("NODE_PATH", node_modules)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting node (Apollo composition helper)")?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?).lines();
        let mut composer = ApolloComposer {
            child,
            stdin,
            stdout,
            version,
        };
        // A first composition proves the helper works before any shape depends on it.
        let probe = vec![(
            "probe".to_string(),
            "type Query { hello: String }".to_string(),
        )];
        composer
            .compose(&probe)
            .await?
            .map_err(|e| anyhow::anyhow!("Apollo composition helper cannot compose: {e}"))?;
        Ok(composer)
    }

    /// Composes; the outer `Err` is a broken helper, the inner one composition errors.
    pub async fn compose(
        &mut self,
        subgraphs: &[(String, String)],
    ) -> anyhow::Result<Result<String, String>> {
        let request = json!({
            "subgraphs": subgraphs.iter().map(|(name, sdl)| json!({"name": name, "url": placeholder_url(name), "sdl": sdl})).collect::<Vec<_>>()
        });
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let answer = self
            .stdout
            .next_line()
            .await?
            .context("Apollo composition helper exited")?;
        let answer: Value = serde_json::from_str(&answer)?;
        if let Some(sdl) = answer.get("supergraph").and_then(Value::as_str) {
            return Ok(Ok(sdl.to_string()));
        }
        let errors = answer
            .get("errors")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|| answer.to_string());
        Ok(Err(errors))
    }
}

impl Drop for ApolloComposer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reverse_on_definition_lines_only() {
        let sdl = r#"type Query {
  e: E
}

type E @key(fields: "id") @shareable @key(fields: "ref { code }") @key(fields: "x(a: \")\")") {
  id: ID!
}

interface I @key(fields: "id") {
  id: ID!
}"#;
        let reversed = with_keys_reversed(sdl).unwrap();
        assert!(reversed.contains(
            r#"type E @key(fields: "x(a: \")\")") @shareable @key(fields: "ref { code }") @key(fields: "id") {"#
        ));
        assert!(reversed.contains(r#"interface I @key(fields: "id") {"#));
        assert_eq!(reversed.lines().count(), sdl.lines().count());
        assert_eq!(
            with_keys_reversed(r#"type A @key(fields: "id") { id: ID! }"#),
            None
        );
    }
}
