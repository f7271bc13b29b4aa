//! Gateway settings: defaults, a TOML file, then `SWITCHYARD_*` environment overrides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use switchyard_guard::{ConnectionLimits, RequestLimits};

pub use crate::execute::transport::{Http2Mode, SubgraphTransport};
use crate::headers::{FileHeaderRules, HeaderRules, RequestHeaderRule, ResponseHeaderRule};

/// Gateway settings (from the config file, with environment overrides applied by [`GatewayConfig::load`]).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Subgraph name -> URL, replacing the supergraph's `join__graph(url:)` for that subgraph.
    pub subgraph_url_overrides: HashMap<String, String>,
    /// Default subgraph request timeout (a subgraph's own `timeout` replaces it).
    pub subgraph_timeout: Duration,
    /// Default time a subgraph has to start answering (response head); a frozen subgraph is
    /// found out this soon instead of after the whole `subgraph_timeout`.
    pub subgraph_first_byte_timeout: Duration,
    /// Default circuit breaker for every subgraph.
    pub circuit_breaker: BreakerSettings,
    /// Default cap on in-flight requests to one subgraph; fetches over it fail at once.
    pub subgraph_max_inflight: usize,
    /// Per-subgraph replacements for the defaults above, by subgraph name.
    pub subgraph_overrides: HashMap<String, SubgraphOverrides>,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Address of the metrics listener (`/metrics`, `/status`), apart from the public port;
    /// `None` serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Largest accepted request body; bigger bodies get 413.
    pub max_body_bytes: usize,
    /// Deepest field nesting an operation may have (fragments expanded).
    pub max_depth: usize,
    /// Most aliased fields an operation may have.
    pub max_aliases: usize,
    /// Most root fields an operation may select.
    pub max_root_fields: usize,
    /// Most fields an operation may select once its fragments are expanded.
    pub max_fields: usize,
    /// Highest estimated cost an operation may have (lists multiply); 0 turns the limit off.
    pub max_cost: u64,
    /// How many items a list field counts as in cost estimates when the supergraph's
    /// `@listSize` does not say.
    pub default_list_size: u64,
    /// Whether `__schema` / `__type` queries are answered.
    pub introspection: bool,
    /// Whether GraphiQL is served to browsers on `GET /graphql`.
    pub graphiql: bool,
    /// Collapse identical in-flight subgraph queries into one request.
    pub dedupe: bool,
    /// Collapse identical in-flight client queries (same operation, variables and headers every
    /// subgraph would get) into one execution whose answer each of them gets. Off by default.
    pub collapse_client_requests: bool,
    /// Client request headers (lower-case names) forwarded to every subgraph.
    pub propagate_headers: Vec<String>,
    /// Header rules for every subgraph (`[headers]`), run after `propagate_headers` and
    /// before a subgraph's own rules.
    pub headers: HeaderRules,
    /// Default PEM bundle of extra CAs trusted for `https://` subgraphs (besides the bundled web
    /// PKI roots and the system store).
    pub subgraph_tls_ca_file: Option<PathBuf>,
    /// Default client certificate chain (PEM) for subgraphs that require mTLS.
    pub subgraph_tls_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `subgraph_tls_client_cert_file`.
    pub subgraph_tls_client_key_file: Option<PathBuf>,
    /// Default HTTP/2 use towards subgraphs.
    pub subgraph_http2: Http2Mode,
    /// How long an unused pooled subgraph connection is kept open.
    pub subgraph_pool_idle_timeout: Duration,
    /// Most idle pooled connections kept per subgraph host.
    pub subgraph_pool_max_idle: usize,
    /// Progressive-override labels treated as enabled for every request.
    pub override_labels: Vec<String>,
    /// Most planned operations the plan cache keeps.
    pub plan_cache_size: usize,
    /// Memory budget of the plan cache: each operation is charged for its text, parsed and
    /// validated documents and plan; the least recently used go when the total is over.
    pub plan_cache_bytes: usize,
    /// Time a client has to send a complete request head (from connect, or from the first
    /// byte of a later request on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// How long a kept-alive client connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Most client connections open at once; when full, the longest-idle or half-open one is
    /// closed for a newcomer (kept under 3/4 of the process's file-descriptor limit).
    pub max_connections: usize,
    /// Deadline for a whole request, body included, to its response (408 / 504 past it).
    pub request_timeout: Duration,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a load balancer
    /// that sets it) instead of the connection's peer address.
    pub trust_forwarded_for: bool,
    /// Whether subscriptions are served (graphql-transport-ws over WebSocket on `/graphql`).
    pub subscriptions: bool,
    /// Most active operations one WebSocket connection may run at once.
    pub max_subscriptions_per_connection: usize,
    /// How long a WebSocket client has to send `connection_init` before it is closed (4408).
    pub subscription_init_timeout: Duration,
    /// How often an idle-looking WebSocket gets a ping frame, so proxies and load balancers do
    /// not cut long-quiet subscriptions; zero turns pings off.
    pub subscription_keepalive: Duration,
    /// OTLP/HTTP endpoint traces are exported to (`http://collector:4318`); `None` (the
    /// default) turns tracing off: no span is made and no `traceparent` read or sent.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded (0.0–1.0); requests with a `traceparent` follow its
    /// `sampled` flag.
    pub trace_sample_ratio: f64,
    /// On SIGTERM/Ctrl-C: how long in-flight requests get to finish (WebSockets are closed
    /// with 1001 at once) before the process exits anyway.
    pub drain_timeout: Duration,
    /// Poll the supergraph and config files and reload when they change (SIGHUP reloads
    /// either way).
    pub watch: bool,
    /// How often `watch` looks at the files.
    pub watch_interval: Duration,
    /// Cross-origin requests from browsers: which origins may call the gateway.
    pub cors: CorsSettings,
}

/// Which browser origins may call the gateway (CORS). Empty lists (the default) allow none:
/// only same-origin pages (GraphiQL served by the gateway itself) can use it from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`); `*` alone allows any origin (never with
    /// `allow_credentials`).
    pub allow_origins: Vec<String>,
    /// Origin patterns where `*` stands for one or more host-name characters
    /// (`https://*.example.com`, `http://localhost:*`).
    pub allow_origin_patterns: Vec<String>,
    /// Whether browsers may send cookies and HTTP authentication (`Access-Control-Allow-Credentials`).
    pub allow_credentials: bool,
    /// Request headers a page may send besides the CORS-safelisted ones.
    pub allow_headers: Vec<String>,
    /// Response headers a page may read besides the CORS-safelisted ones.
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_origin_patterns: Vec::new(),
            allow_credentials: false,
            // What GraphQL clients send: JSON bodies, bearer tokens, Apollo's client-awareness
            // and CSRF-prevention headers, the GraphQL-over-HTTP accept header.
            allow_headers: [
                "content-type",
                "authorization",
                "accept",
                "apollographql-client-name",
                "apollographql-client-version",
                "apollo-require-preflight",
                "x-apollo-operation-name",
            ]
            .map(str::to_owned)
            .to_vec(),
            expose_headers: Vec::new(),
            max_age: Duration::from_secs(600),
        }
    }
}

impl CorsSettings {
    /// Whether any cross-origin caller is allowed at all.
    pub fn enabled(&self) -> bool {
        !self.allow_origins.is_empty() || !self.allow_origin_patterns.is_empty()
    }

    /// Whether `origin` (the `Origin` header's value) may call the gateway.
    pub fn allows(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            || self
                .allow_origin_patterns
                .iter()
                .any(|p| origin_matches(p, origin))
    }

    /// Settings that cannot work together (checked when the config loads).
    fn check(&self) -> Result<(), String> {
        if self.allow_credentials && self.allow_origins.iter().any(|o| o == "*") {
            return Err(
                "cors.allow_credentials cannot be combined with allow_origins = [\"*\"] \
                        (browsers refuse it); list the origins"
                    .into(),
            );
        }
        for name in self.allow_headers.iter().chain(&self.expose_headers) {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("cors: {name:?} is not a header name"));
            }
        }
        for pattern in &self.allow_origin_patterns {
            if !pattern.contains("://") {
                return Err(format!(
                    "cors.allow_origin_patterns: {pattern:?} needs a scheme, like \"https://*.example.com\""
                ));
            }
        }
        Ok(())
    }
}

/// Whether `origin` matches `pattern`, where each `*` stands for one or more characters that
/// can appear in a host name or port (letters, digits, `-`, `.`): a pattern can never match
/// across the scheme, and `https://*.example.com` does not match `https://example.com.evil`.
/// ASCII case is ignored. Dynamic programming over (pattern, origin) positions rather than a
/// backtracking walk or a regex, so no origin a client sends can make it slow.
pub(crate) fn origin_matches(pattern: &str, origin: &str) -> bool {
    fn host_char(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
    }
    let origin = origin.as_bytes();
    // An origin is a scheme, a host name (at most 253 bytes) and a port.
    if origin.len() > 300 {
        return false;
    }
    // matched[j]: the pattern so far matches the first j bytes of the origin.
    let mut matched = vec![false; origin.len() + 1];
    matched[0] = true;
    let mut next = vec![false; origin.len() + 1];
    for &p in pattern.as_bytes() {
        next[0] = false;
        for j in 1..=origin.len() {
            let c = origin[j - 1];
            next[j] = if p == b'*' {
                host_char(c) && (matched[j - 1] || next[j - 1])
            } else {
                matched[j - 1] && c.eq_ignore_ascii_case(&p)
            };
        }
        std::mem::swap(&mut matched, &mut next);
    }
    matched[origin.len()]
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            subgraph_url_overrides: HashMap::new(),
            subgraph_timeout: Duration::from_secs(30),
            subgraph_first_byte_timeout: Duration::from_secs(5),
            circuit_breaker: BreakerSettings::default(),
            subgraph_max_inflight: 256,
            subgraph_overrides: HashMap::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9400))),
            max_body_bytes: RequestLimits::GATEWAY.max_body_bytes,
            max_depth: RequestLimits::GATEWAY.max_depth,
            max_aliases: RequestLimits::GATEWAY.max_aliases,
            max_root_fields: RequestLimits::GATEWAY.max_root_fields,
            max_fields: RequestLimits::GATEWAY.max_fields,
            max_cost: 50_000,
            default_list_size: 10,
            introspection: true,
            graphiql: true,
            dedupe: true,
            collapse_client_requests: false,
            propagate_headers: vec!["authorization".to_owned()],
            headers: HeaderRules::default(),
            subgraph_tls_ca_file: None,
            subgraph_tls_client_cert_file: None,
            subgraph_tls_client_key_file: None,
            subgraph_http2: Http2Mode::Auto,
            subgraph_pool_idle_timeout: Duration::from_secs(90),
            subgraph_pool_max_idle: 256,
            override_labels: Vec::new(),
            plan_cache_size: 4096,
            plan_cache_bytes: 64 * 1024 * 1024,
            header_read_timeout: ConnectionLimits::default().header_read_timeout,
            idle_timeout: ConnectionLimits::default().idle_timeout,
            max_connections: ConnectionLimits::default().max_connections,
            request_timeout: ConnectionLimits::default().request_timeout,
            trust_forwarded_for: false,
            subscriptions: true,
            max_subscriptions_per_connection: 100,
            subscription_init_timeout: Duration::from_secs(10),
            subscription_keepalive: Duration::from_secs(15),
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            // Under Kubernetes' default 30 s grace period, so the drain finishes before SIGKILL.
            drain_timeout: Duration::from_secs(25),
            watch: false,
            watch_interval: Duration::from_secs(1),
            cors: CorsSettings::default(),
        }
    }
}

/// When a subgraph's circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Whether the breaker is on; when off every request goes to the network.
    pub enabled: bool,
    /// Consecutive failures (connect error, timeout, HTTP 5xx) that open the circuit (at least 1).
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe request is let through.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            cool_down: Duration::from_secs(5),
        }
    }
}

/// Settings one subgraph overrides (from `[subgraphs.<name>]`); `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubgraphOverrides {
    /// Request timeout.
    pub timeout: Option<Duration>,
    /// Time to the response head.
    pub first_byte_timeout: Option<Duration>,
    /// Whether the circuit breaker is on.
    pub circuit_breaker: Option<bool>,
    /// Consecutive failures that open the circuit.
    pub breaker_failure_threshold: Option<u32>,
    /// How long the circuit stays open.
    pub breaker_cool_down: Option<Duration>,
    /// Most in-flight requests.
    pub max_inflight: Option<usize>,
    /// Extra CA bundle (replaces `subgraph_tls_ca_file`).
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate chain for mTLS.
    pub tls_client_cert_file: Option<PathBuf>,
    /// Its private key.
    pub tls_client_key_file: Option<PathBuf>,
    /// HTTP/2 use.
    pub http2: Option<Http2Mode>,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Option<Duration>,
    /// Most idle pooled connections.
    pub pool_max_idle: Option<usize>,
    /// Header rules run after the ones for all subgraphs.
    pub headers: Option<HeaderRules>,
}

/// The resilience settings in force for one subgraph (defaults with its overrides applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubgraphPolicy {
    /// Request timeout.
    pub timeout: Duration,
    /// Time to the response head (capped by `timeout`).
    pub first_byte_timeout: Duration,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// Most in-flight requests; fetches over it fail at once.
    pub max_inflight: usize,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this struct.
    #[error("parsing config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: Box<toml::de::Error>,
    },
    /// An environment variable holds a value of the wrong shape.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The file format: every key optional; `*_ms` keys are milliseconds, other durations are
/// either milliseconds (a number) or a string with a unit (`"250ms"`, `"2s"`, `"1m"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<String>,
    subgraph_timeout_ms: Option<u64>,
    subgraph_timeout: Option<FileDuration>,
    subgraph_first_byte_timeout: Option<FileDuration>,
    subgraph_max_inflight: Option<usize>,
    circuit_breaker: Option<bool>,
    breaker_failure_threshold: Option<u32>,
    breaker_cool_down: Option<FileDuration>,
    max_body_bytes: Option<usize>,
    max_depth: Option<usize>,
    max_aliases: Option<usize>,
    max_root_fields: Option<usize>,
    max_fields: Option<usize>,
    max_cost: Option<u64>,
    default_list_size: Option<u64>,
    introspection: Option<bool>,
    graphiql: Option<bool>,
    dedupe: Option<bool>,
    collapse_client_requests: Option<bool>,
    propagate_headers: Option<Vec<String>>,
    headers: Option<FileHeaderRules>,
    subgraph_tls_ca_file: Option<PathBuf>,
    subgraph_tls_client_cert_file: Option<PathBuf>,
    subgraph_tls_client_key_file: Option<PathBuf>,
    subgraph_http2: Option<String>,
    subgraph_pool_idle_timeout: Option<FileDuration>,
    subgraph_pool_max_idle: Option<usize>,
    override_labels: Option<Vec<String>>,
    plan_cache_size: Option<usize>,
    plan_cache_bytes: Option<FileBytes>,
    header_read_timeout: Option<FileDuration>,
    idle_timeout: Option<FileDuration>,
    max_connections: Option<usize>,
    request_timeout: Option<FileDuration>,
    trust_forwarded_for: Option<bool>,
    subscriptions: Option<bool>,
    max_subscriptions_per_connection: Option<usize>,
    subscription_init_timeout: Option<FileDuration>,
    subscription_keepalive: Option<FileDuration>,
    otlp_endpoint: Option<String>,
    trace_sample_ratio: Option<f64>,
    drain_timeout: Option<FileDuration>,
    watch: Option<bool>,
    watch_interval: Option<FileDuration>,
    cors: Option<FileCors>,
    #[serde(default)]
    subgraphs: HashMap<String, FileSubgraph>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCors {
    allow_origins: Option<Vec<String>>,
    allow_origin_patterns: Option<Vec<String>>,
    allow_credentials: Option<bool>,
    allow_headers: Option<Vec<String>>,
    expose_headers: Option<Vec<String>>,
    max_age: Option<FileDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSubgraph {
    url: Option<String>,
    timeout: Option<FileDuration>,
    first_byte_timeout: Option<FileDuration>,
    circuit_breaker: Option<bool>,
    breaker_failure_threshold: Option<u32>,
    breaker_cool_down: Option<FileDuration>,
    max_inflight: Option<usize>,
    tls_ca_file: Option<PathBuf>,
    tls_client_cert_file: Option<PathBuf>,
    tls_client_key_file: Option<PathBuf>,
    http2: Option<String>,
    pool_idle_timeout: Option<FileDuration>,
    pool_max_idle: Option<usize>,
    headers: Option<FileHeaderRules>,
}

/// A duration in the config file: milliseconds, or text with a unit.
#[derive(Debug, Clone, Copy)]
struct FileDuration(Duration);

impl<'de> Deserialize<'de> for FileDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Millis(ms) => Ok(FileDuration(Duration::from_millis(ms))),
            Raw::Text(text) => parse_duration(&text)
                .map(FileDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A size in the config file: bytes, or text with a unit.
#[derive(Debug, Clone, Copy)]
struct FileBytes(usize);

impl<'de> Deserialize<'de> for FileBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(usize),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(n) => Ok(FileBytes(n)),
            Raw::Text(text) => parse_bytes(&text)
                .map(FileBytes)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"64MiB"`, `"512 KB"`, `"1GiB"` or a bare number of bytes (KB/MB/GB are powers of
/// 1000, KiB/MiB/GiB of 1024).
pub(crate) fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a size like \"64MiB\" or \"500000\", got {text:?}"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
            ))
        }
    };
    Ok((value * scale) as usize)
}

/// Parses a listen address, or `off` (also `none`, `false`, empty) for none.
pub fn parse_optional_addr(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty()
        || ["off", "none", "false"]
            .iter()
            .any(|w| text.eq_ignore_ascii_case(w))
    {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!("expected an address like \"127.0.0.1:9400\" or \"off\", got {text:?}")
    })
}

/// Parses `"250ms"`, `"2s"`, `"1.5s"`, `"1m"` or a bare number of milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like \"2s\" or \"500ms\", got {text:?}"))?;
    let seconds = match unit.trim() {
        "" | "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ms, s or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{text:?}: {err}"))
}

impl GatewayConfig {
    /// Defaults, then the TOML file at `path` (if any), then `SWITCHYARD_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            config
                .apply_toml(&text)
                .map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
        }
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Applies the settings present in a TOML document over `self`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), toml::de::Error> {
        let file: FileConfig = toml::from_str(text)?;
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.metrics_listen {
            self.metrics_listen = parse_optional_addr(&v).map_err(serde::de::Error::custom)?;
        }
        if let Some(v) = file.subgraph_timeout_ms {
            self.subgraph_timeout = Duration::from_millis(v);
        }
        if let Some(v) = file.subgraph_timeout {
            self.subgraph_timeout = v.0;
        }
        if let Some(v) = file.subgraph_first_byte_timeout {
            self.subgraph_first_byte_timeout = v.0;
        }
        set(&mut self.subgraph_max_inflight, file.subgraph_max_inflight);
        set(&mut self.circuit_breaker.enabled, file.circuit_breaker);
        set(
            &mut self.circuit_breaker.failure_threshold,
            file.breaker_failure_threshold,
        );
        if let Some(v) = file.breaker_cool_down {
            self.circuit_breaker.cool_down = v.0;
        }
        set(&mut self.max_body_bytes, file.max_body_bytes);
        set(&mut self.max_depth, file.max_depth);
        set(&mut self.max_aliases, file.max_aliases);
        set(&mut self.max_root_fields, file.max_root_fields);
        set(&mut self.max_fields, file.max_fields);
        set(&mut self.max_cost, file.max_cost);
        set(&mut self.default_list_size, file.default_list_size);
        set(&mut self.introspection, file.introspection);
        set(&mut self.graphiql, file.graphiql);
        set(&mut self.dedupe, file.dedupe);
        set(
            &mut self.collapse_client_requests,
            file.collapse_client_requests,
        );
        set(&mut self.plan_cache_size, file.plan_cache_size);
        if let Some(v) = file.plan_cache_bytes {
            self.plan_cache_bytes = v.0;
        }
        if let Some(v) = file.header_read_timeout {
            self.header_read_timeout = v.0;
        }
        if let Some(v) = file.idle_timeout {
            self.idle_timeout = v.0;
        }
        set(&mut self.max_connections, file.max_connections);
        if let Some(v) = file.request_timeout {
            self.request_timeout = v.0;
        }
        set(&mut self.trust_forwarded_for, file.trust_forwarded_for);
        set(&mut self.subscriptions, file.subscriptions);
        set(
            &mut self.max_subscriptions_per_connection,
            file.max_subscriptions_per_connection,
        );
        if let Some(v) = file.subscription_init_timeout {
            self.subscription_init_timeout = v.0;
        }
        if let Some(v) = file.subscription_keepalive {
            self.subscription_keepalive = v.0;
        }
        if let Some(v) = file.otlp_endpoint {
            self.otlp_endpoint = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = file.trace_sample_ratio {
            self.trace_sample_ratio = check_ratio(v).map_err(serde::de::Error::custom)?;
        }
        if let Some(v) = file.drain_timeout {
            self.drain_timeout = v.0;
        }
        set(&mut self.watch, file.watch);
        if let Some(v) = file.watch_interval {
            self.watch_interval = v.0;
        }
        if let Some(cors) = file.cors {
            let c = &mut self.cors;
            set(&mut c.allow_origins, cors.allow_origins);
            set(&mut c.allow_origin_patterns, cors.allow_origin_patterns);
            set(&mut c.allow_credentials, cors.allow_credentials);
            if let Some(v) = cors.allow_headers {
                c.allow_headers = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
            }
            if let Some(v) = cors.expose_headers {
                c.expose_headers = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
            }
            if let Some(v) = cors.max_age {
                c.max_age = v.0;
            }
            c.check().map_err(serde::de::Error::custom)?;
        }
        if let Some(v) = file.propagate_headers {
            self.propagate_headers = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        set(&mut self.override_labels, file.override_labels);
        let env = |var: &str| std::env::var(var).ok();
        if let Some(rules) = file.headers {
            self.headers = rules
                .compile(&env)
                .map_err(|err| serde::de::Error::custom(format!("[headers]: {err}")))?;
        }
        if file.subgraph_tls_ca_file.is_some() {
            self.subgraph_tls_ca_file = file.subgraph_tls_ca_file;
        }
        if file.subgraph_tls_client_cert_file.is_some() {
            self.subgraph_tls_client_cert_file = file.subgraph_tls_client_cert_file;
        }
        if file.subgraph_tls_client_key_file.is_some() {
            self.subgraph_tls_client_key_file = file.subgraph_tls_client_key_file;
        }
        if let Some(v) = file.subgraph_http2 {
            self.subgraph_http2 = v.parse().map_err(serde::de::Error::custom)?;
        }
        if let Some(v) = file.subgraph_pool_idle_timeout {
            self.subgraph_pool_idle_timeout = v.0;
        }
        set(
            &mut self.subgraph_pool_max_idle,
            file.subgraph_pool_max_idle,
        );
        for (name, sub) in file.subgraphs {
            let headers = sub
                .headers
                .map(|rules| rules.compile(&env))
                .transpose()
                .map_err(|err| {
                    serde::de::Error::custom(format!("[subgraphs.{name}.headers]: {err}"))
                })?;
            let overrides = SubgraphOverrides {
                timeout: sub.timeout.map(|d| d.0),
                first_byte_timeout: sub.first_byte_timeout.map(|d| d.0),
                circuit_breaker: sub.circuit_breaker,
                breaker_failure_threshold: sub.breaker_failure_threshold,
                breaker_cool_down: sub.breaker_cool_down.map(|d| d.0),
                max_inflight: sub.max_inflight,
                tls_ca_file: sub.tls_ca_file,
                tls_client_cert_file: sub.tls_client_cert_file,
                tls_client_key_file: sub.tls_client_key_file,
                http2: sub
                    .http2
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(serde::de::Error::custom)?,
                pool_idle_timeout: sub.pool_idle_timeout.map(|d| d.0),
                pool_max_idle: sub.pool_max_idle,
                headers,
            };
            if overrides != SubgraphOverrides::default() {
                self.subgraph_overrides.insert(name.clone(), overrides);
            }
            if let Some(url) = sub.url {
                self.subgraph_url_overrides.insert(name, url);
            }
        }
        Ok(())
    }

    /// Applies `SWITCHYARD_*` variables from `vars` over `self`.
    ///
    /// `SWITCHYARD_SUBGRAPH_URL_<NAME>` overrides one subgraph's URL (`<NAME>` matched
    /// case-insensitively against the subgraph name, `-` written as `_`).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        let mut otel_endpoint = None;
        for (name, value) in vars {
            if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                otel_endpoint = Some(value);
                continue;
            }
            let Some(key) = name.strip_prefix("SWITCHYARD_") else {
                continue;
            };
            match key {
                "LISTEN" => self.listen = parse_env(&name, &value)?,
                "METRICS_LISTEN" => {
                    self.metrics_listen =
                        parse_optional_addr(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "SUBGRAPH_TIMEOUT_MS" => {
                    self.subgraph_timeout = Duration::from_millis(parse_env(&name, &value)?)
                }
                "SUBGRAPH_TIMEOUT" => {
                    self.subgraph_timeout =
                        parse_duration(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "SUBGRAPH_FIRST_BYTE_TIMEOUT" => {
                    self.subgraph_first_byte_timeout =
                        parse_duration(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "SUBGRAPH_MAX_INFLIGHT" => self.subgraph_max_inflight = parse_env(&name, &value)?,
                "CIRCUIT_BREAKER" => self.circuit_breaker.enabled = parse_bool(&name, &value)?,
                "BREAKER_FAILURE_THRESHOLD" => {
                    self.circuit_breaker.failure_threshold = parse_env(&name, &value)?
                }
                "BREAKER_COOL_DOWN" => {
                    self.circuit_breaker.cool_down =
                        parse_duration(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "MAX_BODY_BYTES" => self.max_body_bytes = parse_env(&name, &value)?,
                "MAX_DEPTH" => self.max_depth = parse_env(&name, &value)?,
                "MAX_ALIASES" => self.max_aliases = parse_env(&name, &value)?,
                "MAX_ROOT_FIELDS" => self.max_root_fields = parse_env(&name, &value)?,
                "MAX_FIELDS" => self.max_fields = parse_env(&name, &value)?,
                "MAX_COST" => self.max_cost = parse_env(&name, &value)?,
                "DEFAULT_LIST_SIZE" => self.default_list_size = parse_env(&name, &value)?,
                "INTROSPECTION" => self.introspection = parse_bool(&name, &value)?,
                "GRAPHIQL" => self.graphiql = parse_bool(&name, &value)?,
                "DEDUPE" => self.dedupe = parse_bool(&name, &value)?,
                "COLLAPSE_CLIENT_REQUESTS" => {
                    self.collapse_client_requests = parse_bool(&name, &value)?
                }
                "PLAN_CACHE_SIZE" => self.plan_cache_size = parse_env(&name, &value)?,
                "PLAN_CACHE_BYTES" => {
                    self.plan_cache_bytes =
                        parse_bytes(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "HEADER_READ_TIMEOUT" => self.header_read_timeout = env_duration(&name, &value)?,
                "IDLE_TIMEOUT" => self.idle_timeout = env_duration(&name, &value)?,
                "MAX_CONNECTIONS" => self.max_connections = parse_env(&name, &value)?,
                "REQUEST_TIMEOUT" => self.request_timeout = env_duration(&name, &value)?,
                "TRUST_FORWARDED_FOR" => self.trust_forwarded_for = parse_bool(&name, &value)?,
                "SUBSCRIPTIONS" => self.subscriptions = parse_bool(&name, &value)?,
                "MAX_SUBSCRIPTIONS_PER_CONNECTION" => {
                    self.max_subscriptions_per_connection = parse_env(&name, &value)?
                }
                "SUBSCRIPTION_INIT_TIMEOUT" => {
                    self.subscription_init_timeout =
                        parse_duration(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "SUBSCRIPTION_KEEPALIVE" => {
                    self.subscription_keepalive =
                        parse_duration(&value).map_err(|message| ConfigError::Env {
                            name: name.clone(),
                            message,
                        })?
                }
                "DRAIN_TIMEOUT" => self.drain_timeout = env_duration(&name, &value)?,
                "WATCH" => self.watch = parse_bool(&name, &value)?,
                "WATCH_INTERVAL" => self.watch_interval = env_duration(&name, &value)?,
                "CORS_ALLOW_ORIGINS" => self.cors.allow_origins = parse_list(&value, false),
                "CORS_ALLOW_ORIGIN_PATTERNS" => {
                    self.cors.allow_origin_patterns = parse_list(&value, false)
                }
                "CORS_ALLOW_CREDENTIALS" => {
                    self.cors.allow_credentials = parse_bool(&name, &value)?
                }
                "CORS_ALLOW_HEADERS" => self.cors.allow_headers = parse_list(&value, true),
                "CORS_EXPOSE_HEADERS" => self.cors.expose_headers = parse_list(&value, true),
                "CORS_MAX_AGE" => self.cors.max_age = env_duration(&name, &value)?,
                "PROPAGATE_HEADERS" => self.propagate_headers = parse_list(&value, true),
                "SUBGRAPH_TLS_CA_FILE" => self.subgraph_tls_ca_file = env_path(&value),
                "SUBGRAPH_TLS_CLIENT_CERT_FILE" => {
                    self.subgraph_tls_client_cert_file = env_path(&value)
                }
                "SUBGRAPH_TLS_CLIENT_KEY_FILE" => {
                    self.subgraph_tls_client_key_file = env_path(&value)
                }
                "SUBGRAPH_HTTP2" => self.subgraph_http2 = parse_env(&name, &value)?,
                "SUBGRAPH_POOL_IDLE_TIMEOUT" => {
                    self.subgraph_pool_idle_timeout = env_duration(&name, &value)?
                }
                "SUBGRAPH_POOL_MAX_IDLE" => self.subgraph_pool_max_idle = parse_env(&name, &value)?,
                "OVERRIDE_LABELS" => self.override_labels = parse_list(&value, false),
                "OTLP_ENDPOINT" => {
                    self.otlp_endpoint = Some(value).filter(|v| !v.trim().is_empty())
                }
                "TRACE_SAMPLE_RATIO" => {
                    self.trace_sample_ratio =
                        check_ratio(parse_env(&name, &value)?).map_err(|message| {
                            ConfigError::Env {
                                name: name.clone(),
                                message,
                            }
                        })?
                }
                _ => {
                    if let Some(subgraph) = key.strip_prefix("SUBGRAPH_URL_") {
                        self.subgraph_url_overrides
                            .insert(subgraph.to_ascii_lowercase(), value);
                    }
                }
            }
        }
        // OpenTelemetry's own variable, so one setting can switch tracing on for every process;
        // Switchyard's own setting (file or environment) wins.
        if self.otlp_endpoint.is_none() {
            self.otlp_endpoint = otel_endpoint.filter(|v| !v.trim().is_empty());
        }
        self.cors.check().map_err(|message| ConfigError::Env {
            name: "SWITCHYARD_CORS_*".to_owned(),
            message,
        })
    }

    /// The timeout, breaker and concurrency cap in force for `subgraph`.
    pub fn subgraph_policy(&self, subgraph: &str) -> SubgraphPolicy {
        let overrides = self
            .subgraph_overrides
            .get(subgraph)
            .cloned()
            .unwrap_or_default();
        let timeout = overrides.timeout.unwrap_or(self.subgraph_timeout);
        SubgraphPolicy {
            timeout,
            first_byte_timeout: overrides
                .first_byte_timeout
                .unwrap_or(self.subgraph_first_byte_timeout)
                .min(timeout),
            breaker: BreakerSettings {
                enabled: overrides
                    .circuit_breaker
                    .unwrap_or(self.circuit_breaker.enabled),
                failure_threshold: overrides
                    .breaker_failure_threshold
                    .unwrap_or(self.circuit_breaker.failure_threshold)
                    .max(1),
                cool_down: overrides
                    .breaker_cool_down
                    .unwrap_or(self.circuit_breaker.cool_down),
            },
            max_inflight: overrides
                .max_inflight
                .unwrap_or(self.subgraph_max_inflight)
                .max(1),
        }
    }

    /// TLS, HTTP/2 and pool settings in force for `subgraph`.
    pub fn subgraph_transport(&self, subgraph: &str) -> SubgraphTransport {
        let own = self.subgraph_overrides.get(subgraph);
        let pick = |own: Option<&PathBuf>, default: &Option<PathBuf>| {
            own.cloned().or_else(|| default.clone())
        };
        // A subgraph's own client certificate comes with its own key: never mix the two.
        let (cert, key) = match own {
            Some(o) if o.tls_client_cert_file.is_some() || o.tls_client_key_file.is_some() => (
                o.tls_client_cert_file.clone(),
                o.tls_client_key_file.clone(),
            ),
            _ => (
                self.subgraph_tls_client_cert_file.clone(),
                self.subgraph_tls_client_key_file.clone(),
            ),
        };
        SubgraphTransport {
            ca_file: pick(
                own.and_then(|o| o.tls_ca_file.as_ref()),
                &self.subgraph_tls_ca_file,
            ),
            client_cert_file: cert,
            client_key_file: key,
            http2: own.and_then(|o| o.http2).unwrap_or(self.subgraph_http2),
            pool_idle_timeout: own
                .and_then(|o| o.pool_idle_timeout)
                .unwrap_or(self.subgraph_pool_idle_timeout),
            pool_max_idle: own
                .and_then(|o| o.pool_max_idle)
                .unwrap_or(self.subgraph_pool_max_idle),
        }
    }

    /// The request header rules for `subgraph`: `propagate_headers`, then `[headers]`, then the
    /// subgraph's own.
    pub fn request_header_rules(&self, subgraph: &str) -> Vec<RequestHeaderRule> {
        let mut rules = crate::headers::propagate_list(&self.propagate_headers);
        rules.extend(self.headers.request.iter().cloned());
        if let Some(own) = self
            .subgraph_overrides
            .get(subgraph)
            .and_then(|o| o.headers.as_ref())
        {
            rules.extend(own.request.iter().cloned());
        }
        rules
    }

    /// Which of `subgraph`'s response headers go back to the client.
    pub fn response_header_rules(&self, subgraph: &str) -> Vec<ResponseHeaderRule> {
        let mut rules = self.headers.response.clone();
        if let Some(own) = self
            .subgraph_overrides
            .get(subgraph)
            .and_then(|o| o.headers.as_ref())
        {
            rules.extend(own.response.iter().cloned());
        }
        rules
    }

    /// The connection hygiene settings for the HTTP server.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections.max(1),
            request_timeout: self.request_timeout,
        }
    }

    /// The request limits, for checking subgraphs against them.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_body_bytes: self.max_body_bytes,
            max_depth: self.max_depth,
            max_aliases: self.max_aliases,
            max_fields: self.max_fields,
            max_root_fields: self.max_root_fields,
        }
    }

    /// The override URL for `subgraph`, if one is configured.
    pub fn url_override(&self, subgraph: &str) -> Option<&str> {
        if let Some(url) = self.subgraph_url_overrides.get(subgraph) {
            return Some(url);
        }
        // Environment-derived keys are lower-case with `_` for `-`.
        let normalized = subgraph.to_ascii_lowercase().replace('-', "_");
        self.subgraph_url_overrides
            .get(&normalized)
            .map(String::as_str)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Env {
            name: name.to_owned(),
            message: err.to_string(),
        })
}

fn env_duration(name: &str, value: &str) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|message| ConfigError::Env {
        name: name.to_owned(),
        message,
    })
}

fn check_ratio(ratio: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("a sample ratio is between 0 and 1, got {ratio}"))
    }
}

fn env_path(value: &str) -> Option<PathBuf> {
    let value = value.trim();
    (!value.is_empty()).then(|| PathBuf::from(value))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Env {
            name: name.to_owned(),
            message: format!("expected a boolean, got {other:?}"),
        }),
    }
}

fn parse_list(value: &str, lowercase: bool) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if lowercase {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env_override_defaults() {
        let mut config = GatewayConfig::default();
        config
            .apply_toml(
                r#"
                listen = "0.0.0.0:5000"
                subgraph_timeout_ms = 1500
                introspection = false
                collapse_client_requests = true
                propagate_headers = ["Authorization", "X-Tenant"]
                [subgraphs.reviews]
                url = "http://reviews:4002/graphql"
                "#,
            )
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(config.subgraph_timeout, Duration::from_millis(1500));
        assert!(!config.introspection);
        assert!(config.collapse_client_requests);
        assert_eq!(config.propagate_headers, ["authorization", "x-tenant"]);
        assert_eq!(
            config.url_override("reviews"),
            Some("http://reviews:4002/graphql")
        );

        config
            .apply_env([
                ("SWITCHYARD_DEDUPE".to_owned(), "off".to_owned()),
                (
                    "SWITCHYARD_COLLAPSE_CLIENT_REQUESTS".to_owned(),
                    "off".to_owned(),
                ),
                ("SWITCHYARD_MAX_DEPTH".to_owned(), "7".to_owned()),
                (
                    "SWITCHYARD_SUBGRAPH_URL_USER_ACCOUNTS".to_owned(),
                    "http://a".to_owned(),
                ),
                ("OTHER".to_owned(), "ignored".to_owned()),
            ])
            .unwrap();
        assert!(!config.dedupe);
        assert!(!config.collapse_client_requests);
        assert_eq!(config.max_depth, 7);
        assert_eq!(config.url_override("user-accounts"), Some("http://a"));
    }

    #[test]
    fn tracing_is_off_by_default_and_switched_on_by_an_endpoint() {
        let config = GatewayConfig::default();
        assert_eq!(config.otlp_endpoint, None);
        assert_eq!(config.trace_sample_ratio, 1.0);
        let mut config = GatewayConfig::default();
        config
            .apply_toml("otlp_endpoint = \"http://collector:4318\"\ntrace_sample_ratio = 0.25")
            .unwrap();
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(config.trace_sample_ratio, 0.25);
        assert!(config.apply_toml("trace_sample_ratio = 1.5").is_err());
        // Switchyard's own variable beats OpenTelemetry's, which beats nothing.
        let mut config = GatewayConfig::default();
        config
            .apply_env([
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                    "http://otel:4318".to_owned(),
                ),
                (
                    "SWITCHYARD_OTLP_ENDPOINT".to_owned(),
                    "http://mine:4318".to_owned(),
                ),
            ])
            .unwrap();
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://mine:4318"));
        let mut config = GatewayConfig::default();
        config
            .apply_env([(
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
                "http://otel:4318".to_owned(),
            )])
            .unwrap();
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://otel:4318"));
        assert!(GatewayConfig::default()
            .apply_env([("SWITCHYARD_TRACE_SAMPLE_RATIO".to_owned(), "-1".to_owned())])
            .is_err());
    }

    #[test]
    fn metrics_listener_is_separate_by_default_and_can_be_moved_or_turned_off() {
        let mut config = GatewayConfig::default();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9400".parse().unwrap())
        );
        assert_ne!(config.metrics_listen, Some(config.listen));
        config
            .apply_toml(r#"metrics_listen = "0.0.0.0:9500""#)
            .unwrap();
        assert_eq!(config.metrics_listen, Some("0.0.0.0:9500".parse().unwrap()));
        config
            .apply_env([("SWITCHYARD_METRICS_LISTEN".to_owned(), "off".to_owned())])
            .unwrap();
        assert_eq!(config.metrics_listen, None);
        let err = config
            .apply_env([("SWITCHYARD_METRICS_LISTEN".to_owned(), "9400".to_owned())])
            .unwrap_err();
        assert!(
            err.to_string().contains("SWITCHYARD_METRICS_LISTEN"),
            "{err}"
        );
        assert!(config.apply_toml(r#"metrics_listen = "nope""#).is_err());
    }

    #[test]
    fn per_subgraph_resilience_settings() {
        let mut config = GatewayConfig::default();
        config
            .apply_toml(
                r#"
                subgraph_timeout = "3s"
                breaker_failure_threshold = 2
                breaker_cool_down = "750ms"
                subgraph_max_inflight = 10
                [subgraphs.chat]
                timeout = "2s"
                max_inflight = 4
                [subgraphs.feed]
                url = "http://feed/graphql"
                timeout = 1500
                circuit_breaker = false
                breaker_cool_down = "1m"
                "#,
            )
            .unwrap();
        let chat = config.subgraph_policy("chat");
        assert_eq!(chat.timeout, Duration::from_secs(2));
        assert_eq!(chat.max_inflight, 4);
        assert_eq!(
            chat.breaker,
            BreakerSettings {
                enabled: true,
                failure_threshold: 2,
                cool_down: Duration::from_millis(750)
            }
        );
        let feed = config.subgraph_policy("feed");
        assert_eq!(feed.timeout, Duration::from_millis(1500));
        assert!(!feed.breaker.enabled);
        assert_eq!(feed.breaker.cool_down, Duration::from_secs(60));
        assert_eq!(feed.max_inflight, 10);
        assert_eq!(config.url_override("feed"), Some("http://feed/graphql"));
        let other = config.subgraph_policy("other");
        assert_eq!(other.timeout, Duration::from_secs(3));

        config
            .apply_env([
                ("SWITCHYARD_SUBGRAPH_TIMEOUT".to_owned(), "250ms".to_owned()),
                ("SWITCHYARD_CIRCUIT_BREAKER".to_owned(), "off".to_owned()),
                ("SWITCHYARD_BREAKER_COOL_DOWN".to_owned(), "9s".to_owned()),
                (
                    "SWITCHYARD_SUBGRAPH_MAX_INFLIGHT".to_owned(),
                    "64".to_owned(),
                ),
            ])
            .unwrap();
        let other = config.subgraph_policy("other");
        assert_eq!(other.timeout, Duration::from_millis(250));
        assert!(!other.breaker.enabled);
        assert_eq!(other.breaker.cool_down, Duration::from_secs(9));
        assert_eq!(other.max_inflight, 64);
        // The subgraph's own timeout still wins over the environment default.
        assert_eq!(
            config.subgraph_policy("chat").timeout,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2 s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("40"), Ok(Duration::from_millis(40)));
        assert!(parse_duration("2h")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(parse_duration("soon").is_err());
        let mut config = GatewayConfig::default();
        assert!(config
            .apply_toml("[subgraphs.a]\ntimeout = \"fast\"")
            .is_err());
        let err = config
            .apply_env([("SWITCHYARD_SUBGRAPH_TIMEOUT".to_owned(), "x".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHYARD_SUBGRAPH_TIMEOUT"));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KB"), Ok(512_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 TB")
            .unwrap_err()
            .contains("unknown size unit"));
        let mut config = GatewayConfig::default();
        config.apply_toml("plan_cache_bytes = \"8MiB\"").unwrap();
        assert_eq!(config.plan_cache_bytes, 8 << 20);
        config.apply_toml("plan_cache_bytes = 1000").unwrap();
        assert_eq!(config.plan_cache_bytes, 1000);
        config
            .apply_env([("SWITCHYARD_PLAN_CACHE_BYTES".to_owned(), "2MB".to_owned())])
            .unwrap();
        assert_eq!(config.plan_cache_bytes, 2_000_000);
    }

    #[test]
    fn cors_origins_match_exactly_or_by_host_pattern() {
        let mut config = GatewayConfig::default();
        assert!(!config.cors.enabled());
        config
            .apply_toml(
                r#"
                [cors]
                allow_origins = ["https://app.example.com"]
                allow_origin_patterns = ["https://*.example.org", "http://localhost:*"]
                allow_credentials = true
                max_age = "1m"
                "#,
            )
            .unwrap();
        let cors = &config.cors;
        assert!(cors.enabled());
        assert_eq!(cors.max_age, Duration::from_secs(60));
        assert!(cors.allows("https://app.example.com"));
        assert!(cors.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(!cors.allows("https://app.example.com.evil.net"));
        assert!(!cors.allows("http://app.example.com"));
        assert!(cors.allows("https://a.b.example.org"));
        assert!(!cors.allows("https://example.org"));
        assert!(!cors.allows("https://evil.net/.example.org"));
        assert!(!cors.allows("https://evil.net?.example.org"));
        assert!(cors.allows("http://localhost:5173"));
        assert!(!cors.allows("http://localhost:"));
        assert!(!cors.allows("http://localhost:80/x"));
        // Linear however many stars and however long the origin.
        let long = format!("https://{}.example.org", "a.".repeat(140));
        let started = std::time::Instant::now();
        assert!(!origin_matches("https://*.*.*.*.*.*.*.*x", &long));
        assert!(started.elapsed() < Duration::from_millis(50));

        let err = config
            .apply_toml("[cors]\nallow_origins = [\"*\"]\nallow_credentials = true")
            .unwrap_err();
        assert!(err.to_string().contains("allow_credentials"), "{err}");
        assert!(config
            .apply_toml("[cors]\nallow_origin_patterns = [\"*.example.org\"]")
            .is_err());
        let mut env = GatewayConfig::default();
        env.apply_env([
            (
                "SWITCHYARD_CORS_ALLOW_ORIGINS".to_owned(),
                "https://a.test, https://b.test".to_owned(),
            ),
            ("SWITCHYARD_CORS_MAX_AGE".to_owned(), "5s".to_owned()),
        ])
        .unwrap();
        assert_eq!(env.cors.allow_origins, ["https://a.test", "https://b.test"]);
        assert_eq!(env.cors.max_age, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_are_reported() {
        let mut config = GatewayConfig::default();
        let err = config
            .apply_env([("SWITCHYARD_MAX_DEPTH".to_owned(), "deep".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHYARD_MAX_DEPTH"));
        assert!(config.apply_toml("unknown_key = 1").is_err());
    }
}
