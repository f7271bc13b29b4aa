//! Distributed tracing: W3C trace context in and out, spans, and OTLP/HTTP export.
//!
//! A [`Tracer`] is either off ([`Tracer::disabled`], the default: every call is a branch on a
//! `None` and nothing is allocated, read or sent) or exporting to an OTLP/HTTP endpoint
//! ([`Tracer::new`]). Spans are plain values ended on drop; an ended span is handed to a bounded
//! queue without blocking (a full queue drops the span rather than slowing a request), and one
//! background thread batches the queue and POSTs it as OTLP protobuf.
//!
//! Why not the `opentelemetry` SDK: its OTLP exporter brings about a dozen crates (the SDK,
//! prost and its derive macro, an HTTP client shim, `tracing-opentelemetry`), and bridging
//! through `tracing` spans costs on every span whether or not anything is exported. What the
//! platform needs — ids, parent links, a name, a kind, a few attributes, an error status — fits
//! in the small protobuf writer of [`otlp`] over the hyper client the gateway already uses.
//!
//! Context travels three ways: the `traceparent` HTTP header (client → gateway → subgraph),
//! a task-local current context ([`scope`], [`current`]) inside a service, and a field stored
//! with each outbox event (service → bus → consumer).

mod export;
pub mod otlp;
pub mod receiver;

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use export::TraceError;

/// How long a process waits at shutdown for its last spans to be exported
/// ([`Tracer::flush_within`]).
pub const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The W3C Trace Context request header.
pub const TRACEPARENT: &str = "traceparent";

/// One position in a trace, as carried by a `traceparent` header: which trace, which span
/// within it, and whether the trace is being recorded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's 16-byte id (never all zeros).
    pub trace_id: [u8; 16],
    /// The span's 8-byte id (never all zeros).
    pub span_id: [u8; 8],
    /// The `sampled` flag: whether spans of this trace are recorded.
    pub sampled: bool,
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

impl TraceContext {
    /// Reads a `traceparent` value (W3C Trace Context level 1): `00-<32 hex>-<16 hex>-<2 hex>`.
    /// Later versions are read by their first four fields, as the specification asks; anything
    /// malformed (upper-case hex, all-zero ids, version `ff`) is `None`, and the caller starts a
    /// new trace instead.
    pub fn parse(value: &[u8]) -> Option<TraceContext> {
        if value.len() < 55 {
            return None;
        }
        let version = hex_byte(&value[0..2])?;
        if version == 0xff || (version == 0 && value.len() != 55) {
            return None;
        }
        if version != 0 && value.len() > 55 && value[55] != b'-' {
            return None;
        }
        if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, byte) in span_id.iter_mut().enumerate() {
            *byte = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
        }
        let flags = hex_byte(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// Reads a `traceparent` header from `headers`, if there is exactly one well-formed value.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<TraceContext> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        TraceContext::parse(value.as_bytes())
    }

    /// The `traceparent` header value for this context.
    pub fn to_traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// [`TraceContext::to_traceparent`] as an HTTP header value.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::try_from(self.to_traceparent()).expect("hex and dashes are valid")
    }

    /// The trace id in lower-case hex (as trace viewers show it).
    pub fn trace_id_hex(&self) -> String {
        let mut out = String::with_capacity(32);
        push_hex(&mut out, &self.trace_id);
        out
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some((digit(pair[0])? << 4) | digit(pair[1])?)
}

/// Appends `bytes` as lower-case hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
}

/// What a span stands for, as OTLP classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside one process (a plan node).
    Internal = 1,
    /// Answering a request from another process.
    Server = 2,
    /// A request to another process.
    Client = 3,
    /// Handing a message to a bus (the outbox relay).
    Producer = 4,
    /// Handling a message from a bus (an event consumer).
    Consumer = 5,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Text.
    Str(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
}

impl From<&'static str> for AttributeValue {
    fn from(value: &'static str) -> Self {
        AttributeValue::Str(Cow::Borrowed(value))
    }
}

impl From<String> for AttributeValue {
    fn from(value: String) -> Self {
        AttributeValue::Str(Cow::Owned(value))
    }
}

impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        AttributeValue::Int(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        AttributeValue::Bool(value)
    }
}

/// A span that has ended, waiting to be exported.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// Its trace and span ids.
    pub context: TraceContext,
    /// The span it is a child of (`None` for a trace's root).
    pub parent_span_id: Option<[u8; 8]>,
    /// What it is called in trace viewers.
    pub name: Cow<'static, str>,
    /// What it stands for.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Key/value pairs (keys follow OpenTelemetry's semantic conventions where one fits).
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// Set when the work failed: why.
    pub error: Option<String>,
}

/// Settings of an exporting tracer.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// The OTLP/HTTP endpoint: a base URL (`http://collector:4318`, `/v1/traces` is appended)
    /// or the full traces URL (ending in `/v1/traces`).
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Share of new traces (requests without a sampled parent) that are recorded, 0.0–1.0. A
    /// request with a `traceparent` follows its `sampled` flag.
    pub sample_ratio: f64,
    /// How long ended spans wait before a batch is sent (a full batch goes at once).
    pub batch_interval: Duration,
    /// Most ended spans waiting; beyond it spans are dropped (and counted) rather than queued.
    pub queue_capacity: usize,
}

impl TraceConfig {
    /// An exporter to `endpoint` for `service_name`, recording every trace, sending each second.
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        TraceConfig {
            endpoint: endpoint.into(),
            service_name: service_name.into(),
            sample_ratio: 1.0,
            batch_interval: Duration::from_secs(1),
            queue_capacity: 8192,
        }
    }
}

/// Starts spans and exports them; cheap to clone. The default is off.
#[derive(Clone, Default)]
pub struct Tracer {
    inner: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("Tracer(off)"),
            Some(shared) => write!(f, "Tracer({})", shared.exporter.endpoint()),
        }
    }
}

struct Shared {
    exporter: export::Exporter,
    /// Root traces are recorded when the low 8 bytes of their id fall under this bound
    /// (OpenTelemetry's trace-id-ratio rule, so every process decides alike).
    sample_bound: u64,
}

impl Tracer {
    /// A tracer that records nothing and costs nothing.
    pub const fn disabled() -> Tracer {
        Tracer { inner: None }
    }

    /// A tracer exporting to `config.endpoint` from a background thread of its own (so it
    /// needs no runtime from the caller and works in synchronous constructors).
    pub fn new(config: TraceConfig) -> Result<Tracer, TraceError> {
        let sample_bound = if config.sample_ratio >= 1.0 {
            u64::MAX
        } else if config.sample_ratio > 0.0 {
            (config.sample_ratio * u64::MAX as f64) as u64
        } else {
            0
        };
        let exporter = export::Exporter::start(&config)?;
        Ok(Tracer {
            inner: Some(Arc::new(Shared {
                exporter,
                sample_bound,
            })),
        })
    }

    /// A tracer for `endpoint` when one is set (empty counts as unset), else a disabled one.
    pub fn from_endpoint(
        endpoint: Option<&str>,
        service_name: &str,
        sample_ratio: f64,
    ) -> Result<Tracer, TraceError> {
        match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            None => Ok(Tracer::disabled()),
            Some(endpoint) => Tracer::new(TraceConfig {
                sample_ratio,
                ..TraceConfig::new(endpoint, service_name)
            }),
        }
    }

    /// Whether spans are exported at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Starts a span named `name` as a child of `parent` (a new trace when `None`). Off, this
    /// returns an inert span without allocating.
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<&TraceContext>,
    ) -> Span {
        let Some(shared) = &self.inner else {
            return Span::none();
        };
        let (trace_id, sampled) = match parent {
            Some(parent) => (parent.trace_id, parent.sampled),
            None => {
                let trace_id = random_trace_id();
                let low = u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes"));
                (
                    trace_id,
                    low < shared.sample_bound || shared.sample_bound == u64::MAX,
                )
            }
        };
        let context = TraceContext {
            trace_id,
            span_id: random_span_id(),
            sampled,
        };
        let recording = sampled.then(|| {
            Box::new(Recording {
                shared: Arc::clone(shared),
                parent_span_id: parent.map(|p| p.span_id),
                name: name.into(),
                kind,
                start_unix_nanos: unix_nanos(SystemTime::now()),
                attributes: Vec::new(),
                error: None,
            })
        });
        Span {
            context: Some(context),
            recording,
        }
    }

    /// Waits until every span ended so far has been offered to the endpoint (for tests and
    /// shutdown). Returns at once when off.
    pub async fn flush(&self) {
        if let Some(shared) = &self.inner {
            shared.exporter.flush().await;
        }
    }

    /// [`Tracer::flush`], waiting at most `limit`: what a process calls once it has stopped
    /// serving, so the spans of its last requests leave before it exits (the export thread
    /// dies with the process), while a collector that is down or slow cannot hold the
    /// shutdown for longer than `limit`. Returns whether everything was offered in time.
    pub async fn flush_within(&self, limit: Duration) -> bool {
        if self.inner.is_none() {
            return true;
        }
        let flushed = tokio::time::timeout(limit, self.flush()).await.is_ok();
        if !flushed {
            tracing::warn!(
                ?limit,
                "OTLP export did not finish in time at shutdown; the last spans may be lost"
            );
        }
        flushed
    }

    /// Spans dropped because the queue was full or the endpoint failed.
    pub fn dropped_spans(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |shared| shared.exporter.dropped())
    }
}

/// One unit of work in a trace. Ends (and is queued for export) when dropped.
#[must_use = "a span ends when dropped"]
pub struct Span {
    context: Option<TraceContext>,
    recording: Option<Box<Recording>>,
}

struct Recording {
    shared: Arc<Shared>,
    parent_span_id: Option<[u8; 8]>,
    name: Cow<'static, str>,
    kind: SpanKind,
    start_unix_nanos: u64,
    attributes: Vec<(&'static str, AttributeValue)>,
    error: Option<String>,
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("context", &self.context)
            .field("recording", &self.recording.is_some())
            .finish()
    }
}

impl Span {
    /// A span that records nothing and has no context (tracing is off).
    pub const fn none() -> Span {
        Span {
            context: None,
            recording: None,
        }
    }

    /// This span's position, to pass to children and other processes; `None` when tracing is
    /// off. Present but unsampled when the trace is not recorded, so downstream processes skip
    /// it too.
    pub fn context(&self) -> Option<TraceContext> {
        self.context
    }

    /// Whether this span will be exported (attributes on other spans are ignored).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Sets an attribute (ignored unless recording).
    pub fn set_attribute(&mut self, key: &'static str, value: impl Into<AttributeValue>) {
        if let Some(recording) = &mut self.recording {
            recording.attributes.push((key, value.into()));
        }
    }

    /// Marks the span failed, with why (ignored unless recording).
    pub fn set_error(&mut self, message: impl Into<String>) {
        if let Some(recording) = &mut self.recording {
            recording.error = Some(message.into());
        }
    }

    /// Renames the span (ignored unless recording), e.g. once the operation is known.
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(recording) = &mut self.recording {
            recording.name = name.into();
        }
    }

    /// Moves the start back to `start` (when the work began before the span could be made,
    /// e.g. an event's time in the outbox).
    pub fn set_start(&mut self, start: SystemTime) {
        if let Some(recording) = &mut self.recording {
            recording.start_unix_nanos = unix_nanos(start).min(recording.start_unix_nanos);
        }
    }

    /// Ends the span now (the same as dropping it).
    pub fn end(self) {}
}

impl Drop for Span {
    fn drop(&mut self) {
        let (Some(context), Some(recording)) = (self.context, self.recording.take()) else {
            return;
        };
        let Recording {
            shared,
            parent_span_id,
            name,
            kind,
            start_unix_nanos,
            attributes,
            error,
        } = *recording;
        shared.exporter.offer(SpanData {
            context,
            parent_span_id,
            name,
            kind,
            start_unix_nanos,
            end_unix_nanos: unix_nanos(SystemTime::now()).max(start_unix_nanos),
            attributes,
            error,
        });
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

thread_local! {
    /// wyrand state, seeded per thread from the standard library's random hash keys: ids must
    /// be unique and unpredictable enough to not collide across processes, not secret.
    static RNG: Cell<u64> = Cell::new({
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(unix_nanos(SystemTime::now()));
        hasher.finish()
    });
}

fn next_random() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    })
}

fn random_trace_id() -> [u8; 16] {
    loop {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next_random().to_be_bytes());
        id[8..].copy_from_slice(&next_random().to_be_bytes());
        if id != [0; 16] {
            return id;
        }
    }
}

fn random_span_id() -> [u8; 8] {
    loop {
        let id = next_random().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

tokio::task_local! {
    static CURRENT: Option<TraceContext>;
}

/// Runs `future` with `context` as the current trace position of this task, so code deep
/// inside it (an event written to the outbox by a resolver) can link to it via [`current`].
pub async fn scope<F: std::future::Future>(context: Option<TraceContext>, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// Runs `f` with `context` as the current trace position (what [`scope`] does for a future,
/// for one poll of a hand-written stream or future).
pub fn sync_scope<R>(context: Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(context, f)
}

/// The trace position [`scope`] set for this task, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|context| *context).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips() {
        let context = TraceContext::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            context.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(context.sampled);
        assert_eq!(context.to_traceparent(), EXAMPLE);
        let unsampled = TraceContext::parse(&EXAMPLE.replace("-01", "-00").into_bytes()).unwrap();
        assert!(!unsampled.sampled);
        assert!(unsampled.to_traceparent().ends_with("-00"));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad.as_bytes()), None, "{bad:?}");
        }
        // A later version may append fields after a dash; its first four are still read.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        assert!(TraceContext::parse(future.as_bytes()).is_some());
        assert!(
            TraceContext::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x")
                .is_none()
        );
    }

    #[test]
    fn two_traceparent_headers_are_ignored() {
        let mut headers = http::HeaderMap::new();
        headers.append(TRACEPARENT, http::HeaderValue::from_static(EXAMPLE));
        assert!(TraceContext::from_headers(&headers).is_some());
        headers.append(TRACEPARENT, http::HeaderValue::from_static(EXAMPLE));
        assert_eq!(TraceContext::from_headers(&headers), None);
    }

    #[test]
    fn a_disabled_tracer_makes_inert_spans() {
        let tracer = Tracer::disabled();
        let parent = TraceContext::parse(EXAMPLE.as_bytes()).unwrap();
        let mut span = tracer.start("request", SpanKind::Server, Some(&parent));
        span.set_attribute("k", "v");
        assert_eq!(span.context(), None);
        assert!(!span.is_recording());
    }

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = random_span_id();
            assert_ne!(id, [0; 8]);
            assert!(seen.insert(id));
        }
    }

    #[tokio::test]
    async fn current_context_follows_the_scope() {
        assert_eq!(current(), None);
        let context = TraceContext::parse(EXAMPLE.as_bytes()).unwrap();
        let seen = scope(Some(context), async { current() }).await;
        assert_eq!(seen, Some(context));
        assert_eq!(current(), None);
    }
}
