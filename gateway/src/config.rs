//! Gateway settings: defaults, a TOML file, then `SWITCHYARD_*` environment overrides.
//!
//! Every key is defined once, by a field of [`GatewayConfig`] (or of [`CorsSettings`] under
//! `[cors]`, [`SubgraphOverrides`] under `[subgraphs.<name>]`); `switchyard-config`'s loader
//! layers the file and the environment over the serialized defaults and deserializes the
//! result, so there is no per-key loading code. The variable of a key is `SWITCHYARD_` + its
//! path in capitals with `_` between levels (`SWITCHYARD_CORS_MAX_AGE`), except
//! `SWITCHYARD_SUBGRAPH_URL_<NAME>` for `[subgraphs.<name>] url`; `[headers]` and the rest of
//! `[subgraphs.<name>]` are file-only.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_config::{ConfigLoader, EnvNames};
use switchyard_guard::{ConnectionLimits, RequestLimits};

pub use crate::execute::transport::{Http2Mode, SubgraphTransport};
use crate::headers::{HeaderRules, RequestHeaderRule, ResponseHeaderRule};
pub use switchyard_config::{parse_optional_addr, ConfigError};

/// Gateway settings (from the config file, with environment overrides applied by
/// [`GatewayConfig::load`]). Each field is one key: its name is the file's key, and
/// `SWITCHYARD_` + the key path in capitals (`_` between levels) its variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Default subgraph request timeout (a subgraph's own `timeout` replaces it).
    #[serde(with = "switchyard_config::duration")]
    pub subgraph_timeout: Duration,
    /// Default time a subgraph has to start answering (response head); a frozen subgraph is
    /// found out this soon instead of after the whole `subgraph_timeout`.
    #[serde(with = "switchyard_config::duration")]
    pub subgraph_first_byte_timeout: Duration,
    /// Whether every subgraph's circuit breaker is on (by default); when off every request
    /// goes to the network.
    pub circuit_breaker: bool,
    /// Consecutive failures (connect error, timeout, HTTP 5xx) that open a circuit (at least 1).
    pub breaker_failure_threshold: u32,
    /// How long a circuit stays open before one probe request is let through.
    #[serde(with = "switchyard_config::duration")]
    pub breaker_cool_down: Duration,
    /// Default cap on in-flight requests to one subgraph; fetches over it fail at once.
    pub subgraph_max_inflight: usize,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Address of the metrics listener (`/metrics`, `/status`), apart from the public port;
    /// `None` serves no metrics.
    #[serde(with = "switchyard_config::listen")]
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
    /// Collapse identical in-flight subgraph queries into one request (and let requests that
    /// merged the same responses share what was derived from them: `execute/memo.rs`).
    pub dedupe: bool,
    /// Collapse identical in-flight client queries (same operation, variables and headers every
    /// subgraph would get) into one execution whose answer each of them gets. Off by default.
    pub collapse_client_requests: bool,
    /// For tests: read every subgraph response the way a de-duplicated (shared) one is read
    /// (`ExecutorOptions::share_every_response`). Not a setting: no key, no variable.
    #[doc(hidden)]
    #[serde(skip)]
    pub share_every_response: bool,
    /// Client request headers (lower-case names) forwarded to every subgraph.
    pub propagate_headers: Vec<String>,
    /// Header rules for every subgraph (`[headers]`), run after `propagate_headers` and
    /// before a subgraph's own rules.
    pub headers: HeaderRules,
    /// Default PEM bundle of extra CAs trusted for `https://` subgraphs (besides the bundled web
    /// PKI roots and the system store).
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub subgraph_tls_ca_file: Option<PathBuf>,
    /// Default client certificate chain (PEM) for subgraphs that require mTLS.
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub subgraph_tls_client_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `subgraph_tls_client_cert_file`.
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub subgraph_tls_client_key_file: Option<PathBuf>,
    /// Default HTTP/2 use towards subgraphs.
    pub subgraph_http2: Http2Mode,
    /// How long an unused pooled subgraph connection is kept open.
    #[serde(with = "switchyard_config::duration")]
    pub subgraph_pool_idle_timeout: Duration,
    /// Most idle pooled connections kept per subgraph host.
    pub subgraph_pool_max_idle: usize,
    /// Progressive-override labels treated as enabled for every request.
    pub override_labels: Vec<String>,
    /// Most planned operations the plan cache keeps.
    pub plan_cache_size: usize,
    /// Memory budget of the plan cache: each operation is charged for its text, parsed and
    /// validated documents and plan; the least recently used go when the total is over.
    #[serde(with = "switchyard_config::size")]
    pub plan_cache_bytes: usize,
    /// Time a client has to send a complete request head (from connect, or from the first
    /// byte of a later request on a kept-alive connection).
    #[serde(with = "switchyard_config::duration")]
    pub header_read_timeout: Duration,
    /// How long a kept-alive client connection may sit idle between requests.
    #[serde(with = "switchyard_config::duration")]
    pub idle_timeout: Duration,
    /// Most client connections open at once; when full, the longest-idle or half-open one is
    /// closed for a newcomer (kept under 3/4 of the process's file-descriptor limit).
    pub max_connections: usize,
    /// Deadline for a whole request, body included, to its response (408 / 504 past it).
    #[serde(with = "switchyard_config::duration")]
    pub request_timeout: Duration,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a load balancer
    /// that sets it) instead of the connection's peer address.
    pub trust_forwarded_for: bool,
    /// Whether subscriptions are served (graphql-transport-ws over WebSocket on `/graphql`).
    pub subscriptions: bool,
    /// Most active operations one WebSocket connection may run at once.
    pub max_subscriptions_per_connection: usize,
    /// How long a WebSocket client has to send `connection_init` before it is closed (4408).
    #[serde(with = "switchyard_config::duration")]
    pub subscription_init_timeout: Duration,
    /// How often an idle-looking WebSocket gets a ping frame, so proxies and load balancers do
    /// not cut long-quiet subscriptions; zero turns pings off.
    #[serde(with = "switchyard_config::duration")]
    pub subscription_keepalive: Duration,
    /// OTLP/HTTP endpoint traces are exported to (`http://collector:4318`); `None` (the
    /// default) turns tracing off: no span is made and no `traceparent` read or sent.
    #[serde(deserialize_with = "switchyard_config::optional_text")]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded (0.0–1.0); requests with a `traceparent` follow its
    /// `sampled` flag.
    #[serde(deserialize_with = "sample_ratio")]
    pub trace_sample_ratio: f64,
    /// On SIGTERM/Ctrl-C: how long in-flight requests get to finish (WebSockets are closed
    /// with 1001 at once) before the process exits anyway.
    #[serde(with = "switchyard_config::duration")]
    pub drain_timeout: Duration,
    /// Poll the supergraph and config files and reload when they change (SIGHUP reloads
    /// either way).
    pub watch: bool,
    /// How often `watch` looks at the files.
    #[serde(with = "switchyard_config::duration")]
    pub watch_interval: Duration,
    /// Cross-origin requests from browsers: which origins may call the gateway.
    pub cors: CorsSettings,
    /// Per-subgraph settings by subgraph name (`[subgraphs.<name>]`): its URL, replacing the
    /// supergraph's `join__graph(url:)`, and replacements for the defaults above.
    pub subgraphs: HashMap<String, SubgraphOverrides>,
}

/// Which browser origins may call the gateway (CORS). Empty lists (the default) allow none:
/// only same-origin pages (GraphiQL served by the gateway itself) can use it from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    #[serde(with = "switchyard_config::duration")]
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
            subgraph_timeout: Duration::from_secs(30),
            subgraph_first_byte_timeout: Duration::from_secs(5),
            circuit_breaker: BreakerSettings::default().enabled,
            breaker_failure_threshold: BreakerSettings::default().failure_threshold,
            breaker_cool_down: BreakerSettings::default().cool_down,
            subgraph_max_inflight: 256,
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
            share_every_response: false,
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
            subgraphs: HashMap::new(),
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

/// One subgraph's own settings (from `[subgraphs.<name>]`); `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubgraphOverrides {
    /// Where the subgraph is reached, replacing the supergraph's `join__graph(url:)`.
    #[serde(deserialize_with = "switchyard_config::optional_text")]
    pub url: Option<String>,
    /// Request timeout.
    #[serde(with = "switchyard_config::duration::option")]
    pub timeout: Option<Duration>,
    /// Time to the response head.
    #[serde(with = "switchyard_config::duration::option")]
    pub first_byte_timeout: Option<Duration>,
    /// Whether the circuit breaker is on.
    pub circuit_breaker: Option<bool>,
    /// Consecutive failures that open the circuit.
    pub breaker_failure_threshold: Option<u32>,
    /// How long the circuit stays open.
    #[serde(with = "switchyard_config::duration::option")]
    pub breaker_cool_down: Option<Duration>,
    /// Most in-flight requests.
    pub max_inflight: Option<usize>,
    /// Extra CA bundle (replaces `subgraph_tls_ca_file`).
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate chain for mTLS.
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub tls_client_cert_file: Option<PathBuf>,
    /// Its private key.
    #[serde(deserialize_with = "switchyard_config::optional_path")]
    pub tls_client_key_file: Option<PathBuf>,
    /// HTTP/2 use.
    pub http2: Option<Http2Mode>,
    /// Idle pooled connection lifetime.
    #[serde(with = "switchyard_config::duration::option")]
    pub pool_idle_timeout: Option<Duration>,
    /// Most idle pooled connections.
    pub pool_max_idle: Option<usize>,
    /// Header rules run after the ones for all subgraphs.
    pub headers: Option<HeaderRules>,
}

impl SubgraphOverrides {
    /// One entry per subgraph that only sets its URL: `subgraphs` for a gateway in front of
    /// subgraphs started on ports chosen at runtime.
    pub fn from_urls(urls: &HashMap<String, String>) -> HashMap<String, SubgraphOverrides> {
        urls.iter()
            .map(|(name, url)| {
                let own = SubgraphOverrides {
                    url: Some(url.clone()),
                    ..SubgraphOverrides::default()
                };
                (name.clone(), own)
            })
            .collect()
    }
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

/// The gateway's loader: flat variable names, `subgraph_timeout_ms` as the older name of
/// `subgraph_timeout`, one URL variable per subgraph, OpenTelemetry's endpoint variable below
/// Switchyard's own. `SWITCHYARD_CONFIG` is read by the CLI (`--config`), not here.
fn loader() -> ConfigLoader {
    ConfigLoader::new("SWITCHYARD")
        .env_names(EnvNames::Flat)
        .file_variable(false)
        .rename("subgraph_timeout_ms", "subgraph_timeout")
        .env_skip("headers")
        .env_skip("subgraphs")
        .keyed_variable("SUBGRAPH_URL_", "subgraphs", "url")
        .fallback("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
}

/// A trace sample ratio: a share between 0 and 1.
fn sample_ratio<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let ratio = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(serde::de::Error::custom(format!(
            "a sample ratio is between 0 and 1, got {ratio}"
        )))
    }
}

impl GatewayConfig {
    /// Defaults, then the TOML file at `path` (if any), then `SWITCHYARD_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        loader()
            .file(path)
            .load::<Self>()?
            .checked()
            .map_err(ConfigError::Invalid)
    }

    /// Applies the settings present in a TOML document over `self`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        *self = loader()
            .toml_text(text)
            .env_vars([])
            .load_over(self)?
            .checked()
            .map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// Applies `SWITCHYARD_*` variables (and `OTEL_EXPORTER_OTLP_ENDPOINT` when no endpoint is
    /// set) from `vars` over `self`.
    ///
    /// `SWITCHYARD_SUBGRAPH_URL_<NAME>` overrides one subgraph's URL (`<NAME>` matched
    /// case-insensitively against the subgraph name, `-` written as `_`).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        *self = loader()
            .env_vars(vars)
            .load_over(self)?
            .checked()
            .map_err(|message| ConfigError::Env {
                name: "SWITCHYARD_CORS_*".to_owned(),
                message,
            })?;
        Ok(())
    }

    /// Every key of the config (dotted: `cors.max_age`, `subgraphs.<name>.url`) with the
    /// variables that set it, for documentation and deployment checks.
    pub fn variables() -> BTreeMap<String, Vec<String>> {
        let mut keys = loader().variables::<Self>();
        keys.remove("subgraphs");
        let own = serde_json::to_value(SubgraphOverrides::default()).unwrap_or_default();
        for key in own.as_object().into_iter().flatten().map(|(key, _)| key) {
            let key = format!("subgraphs.<name>.{key}");
            if key.ends_with(".headers") {
                keys.insert(format!("{key}.request"), Vec::new());
                keys.insert(format!("{key}.response"), Vec::new());
            } else {
                keys.entry(key).or_default();
            }
        }
        keys
    }

    /// Normalizes what loading leaves as written (header names to lower case) and refuses
    /// settings that cannot work together.
    fn checked(mut self) -> Result<Self, String> {
        for list in [
            &mut self.propagate_headers,
            &mut self.cors.allow_headers,
            &mut self.cors.expose_headers,
        ] {
            for name in list.iter_mut() {
                name.make_ascii_lowercase();
            }
        }
        self.cors.check()?;
        Ok(self)
    }

    /// The timeout, breaker and concurrency cap in force for `subgraph`.
    pub fn subgraph_policy(&self, subgraph: &str) -> SubgraphPolicy {
        let overrides = self.subgraphs.get(subgraph).cloned().unwrap_or_default();
        let defaults = self.breaker();
        let timeout = overrides.timeout.unwrap_or(self.subgraph_timeout);
        SubgraphPolicy {
            timeout,
            first_byte_timeout: overrides
                .first_byte_timeout
                .unwrap_or(self.subgraph_first_byte_timeout)
                .min(timeout),
            breaker: BreakerSettings {
                enabled: overrides.circuit_breaker.unwrap_or(defaults.enabled),
                failure_threshold: overrides
                    .breaker_failure_threshold
                    .unwrap_or(defaults.failure_threshold)
                    .max(1),
                cool_down: overrides.breaker_cool_down.unwrap_or(defaults.cool_down),
            },
            max_inflight: overrides
                .max_inflight
                .unwrap_or(self.subgraph_max_inflight)
                .max(1),
        }
    }

    /// TLS, HTTP/2 and pool settings in force for `subgraph`.
    pub fn subgraph_transport(&self, subgraph: &str) -> SubgraphTransport {
        let own = self.subgraphs.get(subgraph);
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
            .subgraphs
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
            .subgraphs
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
        let url = |name: &str| self.subgraphs.get(name).and_then(|s| s.url.as_deref());
        // Keys from `SWITCHYARD_SUBGRAPH_URL_<NAME>` are lower-case with `_` for `-`.
        url(subgraph).or_else(|| url(&subgraph.to_ascii_lowercase().replace('-', "_")))
    }

    /// The default circuit breaker settings (`circuit_breaker`, `breaker_*`).
    pub fn breaker(&self) -> BreakerSettings {
        BreakerSettings {
            enabled: self.circuit_breaker,
            failure_threshold: self.breaker_failure_threshold,
            cool_down: self.breaker_cool_down,
        }
    }
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
        let mut config = GatewayConfig::default();
        config
            .apply_toml("subgraph_timeout = \"1.5s\"\n[subgraphs.a]\ntimeout = 40")
            .unwrap();
        assert_eq!(config.subgraph_timeout, Duration::from_millis(1500));
        assert_eq!(
            config.subgraph_policy("a").timeout,
            Duration::from_millis(40)
        );
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
        assert!(err.to_string().contains("SWITCHYARD_MAX_DEPTH"), "{err}");
        let err = config
            .apply_env([("SWITCHYARD_INTROSPECTION".to_owned(), "maybe".to_owned())])
            .unwrap_err();
        assert!(
            err.to_string().contains("SWITCHYARD_INTROSPECTION"),
            "{err}"
        );
        let err = config.apply_toml("unknown_key = 1").unwrap_err();
        assert!(err.to_string().contains("unknown_key"), "{err}");
        let err = config
            .apply_toml("[subgraphs.feed]\ntimeuot = \"1s\"")
            .unwrap_err();
        assert!(err.to_string().contains("timeuot"), "{err}");
        let err = config.apply_toml("[cors]\nmax_age = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("cors.max_age"), "{err}");
        let err = config
            .apply_toml("[headers]\nrequest = [{ insert = \"x-a\" }]")
            .unwrap_err();
        assert!(err.to_string().contains("headers"), "{err}");
        // Nothing was applied by the failed calls.
        assert_eq!(config.max_depth, GatewayConfig::default().max_depth);
    }

    #[test]
    fn the_loaded_values_round_trip_through_the_defaults_tree() {
        let mut config = GatewayConfig::default();
        config
            .apply_toml(
                r#"
                metrics_listen = "off"
                subgraph_http2 = "always"
                subgraph_pool_idle_timeout = "1.5s"
                [headers]
                request = [
                  { propagate = "x-tenant-*" },
                  { propagate = "accept-language", rename = "x-lang", default = "en" },
                  { insert = "x-gateway", value = "switchyard" },
                  { remove = "x-internal-*" },
                ]
                response = [{ propagate = "x-served-by", merge = "append" }]
                [subgraphs.feed]
                url = "http://feed/graphql"
                http2 = "off"
                "#,
            )
            .unwrap();
        let before = format!("{config:?}");
        // An empty layer over the current values changes nothing.
        config.apply_toml("").unwrap();
        config.apply_env([]).unwrap();
        assert_eq!(format!("{config:?}"), before);
        assert_eq!(config.metrics_listen, None);
        assert_eq!(config.subgraph_http2, Http2Mode::Always);
        assert_eq!(config.subgraph_transport("feed").http2, Http2Mode::Off);
        assert_eq!(config.headers.request.len(), 4);
        assert_eq!(config.request_header_rules("feed").len(), 5);
    }

    /// README.md's configuration table has a row for every key and names exactly the
    /// variables the loader reads for it; every row names a real key.
    #[test]
    fn readme_table_matches_the_keys_and_variables() {
        let readme = include_str!("../../README.md");
        switchyard_config::docs::check_readme(readme, &GatewayConfig::variables()).unwrap();
    }
}
