//! How the gateway reaches subgraphs: plain HTTP or HTTPS (rustls with the ring provider, which
//! builds in a fraction of aws-lc's time on 2 cores), HTTP/2 by ALPN or by prior knowledge, and
//! the connection pool. Subgraphs with equal settings share one client, hence one pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Which HTTP version the gateway speaks to a subgraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http2Mode {
    /// HTTP/2 when the TLS handshake agrees on it (ALPN), HTTP/1.1 otherwise and in cleartext.
    #[default]
    Auto,
    /// HTTP/2 only: negotiated by ALPN over TLS, by prior knowledge (h2c) in cleartext.
    Always,
    /// HTTP/1.1 only.
    Off,
}

impl Http2Mode {
    /// The setting's word: `auto`, `always` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            Http2Mode::Auto => "auto",
            Http2Mode::Always => "always",
            Http2Mode::Off => "off",
        }
    }
}

impl serde::Serialize for Http2Mode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Http2Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Http2Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Http2Mode::Auto),
            "always" | "h2c" | "on" | "true" => Ok(Http2Mode::Always),
            "off" | "never" | "false" | "http1" => Ok(Http2Mode::Off),
            other => Err(format!(
                "expected \"auto\", \"always\" or \"off\" for HTTP/2, got {other:?}"
            )),
        }
    }
}

/// The connection settings in force for one subgraph (defaults with its overrides applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphTransport {
    /// A PEM bundle of CAs trusted in addition to the bundled web PKI roots and the system store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to subgraphs that ask for one (mTLS).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// HTTP/2 use.
    pub http2: Http2Mode,
    /// How long an unused pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per subgraph host.
    pub pool_max_idle: usize,
}

/// The pooled HTTP(S) client subgraph requests go through.
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The process's trust anchors: the bundled Mozilla roots plus the system store, read once.
fn base_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "reading the system's CA certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system CA certificates loaded");
        Arc::new(roots)
    }))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("reading certificates from {}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificates in {}", path.display()));
    }
    Ok(certs)
}

/// The rustls settings for `transport` (ALPN is set by the connector builder).
pub(crate) fn tls_config(transport: &SubgraphTransport) -> Result<ClientConfig, String> {
    let mut roots = base_roots();
    if let Some(path) = &transport.ca_file {
        let mut extended = (*roots).clone();
        for cert in read_certs(path)? {
            extended
                .add(cert)
                .map_err(|err| format!("CA certificate in {}: {err}", path.display()))?;
        }
        roots = Arc::new(extended);
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?
            .with_root_certificates(roots);
    match (&transport.client_cert_file, &transport.client_key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|err| format!("reading the private key {}: {err}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| format!("client certificate {}: {err}", cert.display()))
        }
        _ => Err("a client certificate needs both tls_client_cert_file and \
                  tls_client_key_file"
            .to_owned()),
    }
}

/// A pooled client for subgraphs reached with `transport`: `http://` and `https://` URLs alike.
pub(crate) fn client(transport: &SubgraphTransport) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let tls = tls_config(transport)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match transport.http2 {
        Http2Mode::Auto => https.enable_all_versions().wrap_connector(http),
        Http2Mode::Always => https.enable_http2().wrap_connector(http),
        Http2Mode::Off => https.enable_http1().wrap_connector(http),
    };
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(transport.pool_idle_timeout)
        .pool_max_idle_per_host(transport.pool_max_idle);
    if transport.http2 == Http2Mode::Always {
        builder.http2_only(true);
    }
    Ok(builder.build(connector))
}

/// A hint for connection errors a configuration change fixes.
pub(crate) fn hint(message: &str) -> Option<&'static str> {
    if message.contains("UnknownIssuer") || message.contains("invalid peer certificate") {
        Some(
            "the subgraph's certificate is not trusted: add its CA to subgraph_tls_ca_file \
             (or the subgraph's tls_ca_file)",
        )
    } else if message.contains("CertificateRequired") || message.contains("certificate required") {
        Some(
            "the subgraph asks for a client certificate: set tls_client_cert_file and \
             tls_client_key_file",
        )
    } else {
        None
    }
}
