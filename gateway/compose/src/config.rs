//! `supergraph.yaml` in rover's shape, and loading every subgraph's SDL from a file or by
//! introspecting a running subgraph (`{ _service { sdl } }`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::subgraph::SubgraphSource;

/// Errors loading a supergraph config or a subgraph schema.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The config is not valid YAML of the expected shape.
    #[error("invalid supergraph config {path}: {message}")]
    Parse {
        /// Config file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A subgraph entry is incomplete or uses an unsupported source.
    #[error("subgraph \"{subgraph}\": {message}")]
    Subgraph {
        /// Subgraph name.
        subgraph: String,
        /// What is wrong.
        message: String,
    },
    /// Fetching `_service.sdl` from a running subgraph failed.
    #[error("subgraph \"{subgraph}\": cannot fetch SDL from {url}: {message}")]
    Fetch {
        /// Subgraph name.
        subgraph: String,
        /// URL that was queried.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// rover's `supergraph.yaml`.
#[derive(Debug, Clone, Deserialize)]
pub struct SupergraphConfig {
    /// `federation_version`, e.g. `2`, `=2.3.2` (informational: composition follows the subgraphs).
    #[serde(default)]
    pub federation_version: Option<serde_yaml_ng::Value>,
    /// Subgraphs by name (a sorted map: output order does not depend on the file's order).
    pub subgraphs: BTreeMap<String, SubgraphConfig>,
}

/// One subgraph entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SubgraphConfig {
    /// URL the gateway routes to; defaults to `schema.subgraph_url`.
    #[serde(default)]
    pub routing_url: Option<String>,
    /// Where the SDL comes from.
    pub schema: SchemaSource,
}

/// `schema:` of a subgraph entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaSource {
    /// SDL file, relative to the config file.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Running subgraph to introspect with `{ _service { sdl } }`.
    #[serde(default)]
    pub subgraph_url: Option<String>,
    /// Extra headers for that request.
    #[serde(default)]
    pub introspection_headers: BTreeMap<String, String>,
    /// Registry references are recognised only to reject them with a clear message.
    #[serde(default)]
    pub graphref: Option<String>,
}

impl SupergraphConfig {
    /// Parses YAML text.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Loads every subgraph's SDL; files are resolved relative to `base_dir`.
    pub fn resolve(&self, base_dir: &Path) -> Result<Vec<SubgraphSource>, ConfigError> {
        let mut out = Vec::new();
        for (name, sub) in &self.subgraphs {
            let bad = |message: &str| ConfigError::Subgraph {
                subgraph: name.clone(),
                message: message.to_string(),
            };
            let routing_url = sub
                .routing_url
                .clone()
                .or_else(|| sub.schema.subgraph_url.clone())
                .ok_or_else(|| bad("missing routing_url"))?;
            let (sdl, file) = if let Some(file) = &sub.schema.file {
                let path = base_dir.join(file);
                let sdl = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                (sdl, Some(path))
            } else if let Some(url) = &sub.schema.subgraph_url {
                (
                    fetch_sdl(name, url, &sub.schema.introspection_headers)?,
                    None,
                )
            } else if sub.schema.graphref.is_some() {
                return Err(bad("schema.graphref (a registry) is not supported: use schema.file or schema.subgraph_url"));
            } else {
                return Err(bad("schema needs `file` or `subgraph_url`"));
            };
            out.push(SubgraphSource {
                name: name.clone(),
                url: routing_url,
                sdl,
                file,
            });
        }
        Ok(out)
    }
}

/// Loads a config file and all its subgraph SDLs.
pub fn load_subgraphs(config_path: &Path) -> Result<Vec<SubgraphSource>, ConfigError> {
    let config = SupergraphConfig::load(config_path)?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    config.resolve(base)
}

/// Fetches `{ _service { sdl } }` with a small blocking HTTP/1.1 client (plain `http://` only),
/// so the CLI needs no async runtime for it.
pub fn fetch_sdl(
    subgraph: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::Fetch {
        subgraph: subgraph.to_string(),
        url: url.to_string(),
        message,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// URLs are supported for introspection".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("host did not resolve".into()))?;
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(e.to_string()))?;
    stream.set_read_timeout(Some(timeout)).ok();
    stream.set_write_timeout(Some(timeout)).ok();
    let body = r#"{"query":"query SubgraphIntrospectQuery { _service { sdl } }"}"#;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| fail(e.to_string()))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if !status.starts_with('2') {
        return Err(fail(format!("HTTP status {status}")));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload).ok_or_else(|| fail("malformed chunked body".into()))?;
    }
    let json: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    json.pointer("/data/_service/sdl")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| fail(format!("response has no data._service.sdl: {json}")))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_rover_config_and_reads_files() {
        let dir = std::env::temp_dir().join(format!("sy-compose-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.graphql"), "type Query { a: Int }").unwrap();
        let cfg = SupergraphConfig::from_yaml(
            "federation_version: =2.3.2\nsubgraphs:\n  a:\n    routing_url: http://a:4000/graphql\n    schema:\n      file: ./a.graphql\n",
            Path::new("supergraph.yaml"),
        )
        .unwrap();
        let subs = cfg.resolve(&dir).unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0].url, "http://a:4000/graphql");
        assert!(subs[0].sdl.contains("a: Int"));
        let missing =
            SupergraphConfig::from_yaml("subgraphs:\n  b:\n    schema: {}\n", Path::new("x"))
                .unwrap();
        assert!(matches!(
            missing.resolve(&dir),
            Err(ConfigError::Subgraph { .. })
        ));
    }

    #[test]
    fn fetches_service_sdl_over_http_with_chunked_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = r#"{"data":{"_service":{"sdl":"type Query { x: Int }"}}}"#;
            let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
            write!(
                s,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
            )
            .unwrap();
            req
        });
        let mut headers = BTreeMap::new();
        headers.insert("x-token".to_string(), "t".to_string());
        let sdl = fetch_sdl("s", &format!("http://127.0.0.1:{port}/graphql"), &headers).unwrap();
        assert_eq!(sdl, "type Query { x: Int }");
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /graphql HTTP/1.1"));
        assert!(req.contains("x-token: t"));
        assert!(req.contains("_service { sdl }"));
    }
}
