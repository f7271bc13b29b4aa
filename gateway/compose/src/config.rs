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
    // The reason is in the message and deliberately not a `source`: error reporters print the
    // message and then its sources, which said "No such file or directory" twice.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        reason: std::io::Error,
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
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
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
                let sdl = std::fs::read_to_string(&path).map_err(|reason| ConfigError::Read {
                    path: path.clone(),
                    reason,
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

/// The environment variable naming a PEM bundle of extra CAs trusted for `https://`
/// subgraphs (the gateway's `subgraph_tls_ca_file` setting reads the same variable).
pub const TLS_CA_FILE_ENV: &str = "SWITCHYARD_SUBGRAPH_TLS_CA_FILE";

/// TLS settings for introspecting `https://` subgraphs: the bundled Mozilla roots, the
/// system store and the CAs in [`TLS_CA_FILE_ENV`]'s file (rustls with the ring provider).
fn tls_config(ca_file: Option<&Path>) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| format!("reading {} ({TLS_CA_FILE_ENV}): {err}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "no PEM certificates in {} ({TLS_CA_FILE_ENV})",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|err| err.to_string())?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| err.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// Fetches `{ _service { sdl } }` with a small blocking HTTP/1.1 client (`http://`, or
/// `https://` over rustls trusting also the CAs in [`TLS_CA_FILE_ENV`]'s file), so the CLI
/// needs no async runtime for it.
pub fn fetch_sdl(
    subgraph: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let ca_file = std::env::var_os(TLS_CA_FILE_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    fetch_sdl_trusting(subgraph, url, headers, ca_file.as_deref())
}

/// [`fetch_sdl`] trusting the CAs in `ca_file` too (instead of reading the environment).
pub fn fetch_sdl_trusting(
    subgraph: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    ca_file: Option<&Path>,
) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::Fetch {
        subgraph: subgraph.to_string(),
        url: url.to_string(),
        message,
    };
    let (rest, secure) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(fail("expected an http:// or https:// URL".into())),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // `[::1]:4000`, `host:4000` or a bare host (default port of the scheme).
    let has_port = authority.rsplit_once(':').is_some_and(|(host, port)| {
        !port.is_empty() && (!host.contains(':') || host.ends_with(']'))
    });
    let host_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if secure { 443 } else { 80 })
    };
    let host = host_port
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("host did not resolve".into()))?;
    let timeout = Duration::from_secs(10);
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(e.to_string()))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let mut stream: Box<dyn ReadWrite> = if secure {
        let server_name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|e| fail(format!("invalid host name: {e}")))?;
        let connection =
            rustls::ClientConnection::new(tls_config(ca_file).map_err(fail)?, server_name)
                .map_err(|e| fail(e.to_string()))?;
        Box::new(rustls::StreamOwned::new(connection, tcp))
    } else {
        Box::new(tcp)
    };
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
    // The TLS handshake happens on the first write: say how to fix an untrusted certificate.
    let io_fail = |e: std::io::Error| {
        let message = e.to_string();
        if message.contains("UnknownIssuer") {
            fail(format!(
                "{message} (trust the subgraph's CA by naming a PEM bundle in {TLS_CA_FILE_ENV})"
            ))
        } else {
            fail(message)
        }
    };
    stream.write_all(req.as_bytes()).map_err(io_fail)?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers often close TLS without close_notify after `Connection: close`; the body is
        // complete by then (its framing is checked below).
        Err(e) if secure && e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(io_fail(e)),
    }
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

/// A byte stream: a TCP connection or TLS over one.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

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

    #[test]
    fn fetches_service_sdl_over_https_once_the_ca_is_trusted() {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use std::sync::Arc;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
        );
        let dir = std::env::temp_dir().join(format!("sy-compose-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut served = 0;
            for socket in listener.incoming().take(2) {
                let connection = rustls::ServerConnection::new(server_config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, socket.unwrap());
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let complete = loop {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                    if String::from_utf8_lossy(&request).contains("sdl } }\"}") {
                        break true;
                    }
                };
                if !complete {
                    continue; // the untrusting client gave up during the handshake
                }
                let body = r#"{"data":{"_service":{"sdl":"type Query { secure: Int }"}}}"#;
                write!(
                    tls,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                tls.conn.send_close_notify();
                tls.flush().unwrap();
                served += 1;
            }
            served
        });
        let url = format!("https://127.0.0.1:{port}/graphql");
        let err = fetch_sdl_trusting("s", &url, &BTreeMap::new(), None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("UnknownIssuer"), "{message}");
        assert!(message.contains(TLS_CA_FILE_ENV), "{message}");
        let sdl = fetch_sdl_trusting("s", &url, &BTreeMap::new(), Some(&ca_file)).unwrap();
        assert_eq!(sdl, "type Query { secure: Int }");
        assert_eq!(server.join().unwrap(), 1);
        let err = fetch_sdl_trusting("s", "ftp://x/", &BTreeMap::new(), None).unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");
    }
}
