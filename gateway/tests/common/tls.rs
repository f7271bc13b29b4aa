//! TLS test support: a CA generated per test run (rcgen), server and client certificates it
//! signs, and a recording front that serves over TLS (or cleartext) with HTTP/1.1 and HTTP/2
//! and forwards GraphQL requests to a real subgraph.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// A certificate authority made for one test, with its PEM written to a temporary directory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub dir: PathBuf,
}

/// A certificate and key signed by a [`TestCa`], as DER and as PEM files.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its files under a fresh directory.
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Switchyard test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "switchyard-tls-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
        TestCa { issuer, dir }
    }

    /// The CA certificate's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn leaf(&self, file: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_file,
            key_file,
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate (for mTLS).
    pub fn client(&self, file: &str) -> Leaf {
        self.leaf(file, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A rustls server config for `leaf`, offering `alpn`, asking for client certificates signed
/// by `client_ca` when given.
pub fn server_config(leaf: &Leaf, alpn: &[&[u8]], client_ca: Option<&TestCa>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.ca_der()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What the front saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub headers: http::HeaderMap,
}

/// A subgraph front: records each request's HTTP version and headers, forwards the body to a
/// real subgraph over plain HTTP/1.1, and adds `response_headers` to its answers.
#[derive(Clone)]
pub struct Front {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    response_headers: Arc<Vec<(String, String)>>,
}

impl Front {
    pub fn versions(&self) -> Vec<http::Version> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.version)
            .collect()
    }
    pub fn headers(&self) -> Vec<http::HeaderMap> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.headers.clone())
            .collect()
    }
}

async fn forward(State(front): State<Front>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    front.seen.lock().unwrap().push(Seen {
        version: parts.version,
        headers: parts.headers,
    });
    let body = body.collect().await.unwrap().to_bytes();
    let upstream = http::Request::post(&front.upstream)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let answer = front.client.request(upstream).await.unwrap();
    let bytes = answer.into_body().collect().await.unwrap().to_bytes();
    let mut response = ([("content-type", "application/json")], bytes).into_response();
    for (name, value) in front.response_headers.iter() {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// Serves a [`Front`] for `upstream` on a loopback port, over TLS when `tls` is given (HTTP/1.1
/// or HTTP/2 as ALPN decides), else cleartext (HTTP/1.1, or HTTP/2 with prior knowledge).
/// Returns the front and its `/graphql` URL.
pub async fn start_front(
    upstream: &str,
    tls: Option<Arc<ServerConfig>>,
    response_headers: &[(&str, &str)],
) -> (Front, String) {
    let front = Front {
        seen: Arc::default(),
        upstream: upstream.to_owned(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        response_headers: Arc::new(
            response_headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        ),
    };
    let router = Router::new()
        .route("/graphql", post(forward))
        .with_state(front.clone());
    let addr = serve(router, tls.clone()).await;
    let scheme = if tls.is_some() { "https" } else { "http" };
    (
        front,
        format!("{scheme}://127.0.0.1:{}/graphql", addr.port()),
    )
}

/// Serves `router` on a loopback port, over TLS when `tls` is given (HTTP/1.1 or HTTP/2 as
/// ALPN decides), else cleartext (HTTP/1.1, or HTTP/2 with prior knowledge).
pub async fn serve(router: Router, tls: Option<Arc<ServerConfig>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = hyper_util::service::TowerToHyperService::new(router);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        // A refused handshake (untrusted client, no client certificate) ends
                        // the connection, as a real server's would.
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

/// Reads a PEM file's text (for assertions on written files).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
