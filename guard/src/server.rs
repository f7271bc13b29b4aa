//! The HTTP/1.1 server loop with connection hygiene.
//!
//! Each connection is in one phase, kept in two atomics that the request path updates at no
//! more than a few points per request:
//!
//! | phase | from | deadline |
//! |---|---|---|
//! | head | accepted, or the first byte of a request arrived on an idle connection | `header_read_timeout` after that |
//! | busy | the request head is parsed, until the response body is written | `request_timeout + idle_timeout` (a client that stopped reading) |
//! | idle | the response was written (keep-alive) | `idle_timeout` |
//! | streaming | a 101 upgrade, or a `multipart/mixed` / `text/event-stream` response | none |
//!
//! A watchdog per connection closes it when its phase's deadline passes. The request deadline
//! itself is enforced around the handler: past `request_timeout` the client gets a 408 (its
//! body was still arriving) or a 504 (the server was still working), with a GraphQL error body.
//!
//! The cap: when `max_connections` are open, a new connection evicts the one that has waited
//! longest in the head or idle phase (a half-open or idle connection, never one in a request);
//! if every connection is in a request, the new one is refused. So a fresh client is served
//! even while thousands of half-open connections are held open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// `extensions.code` of the error sent when a request misses its deadline.
pub const REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";

/// Connection hygiene settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete request head, counted from the connection's
    /// accept (or from the first byte of a later request on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// Most connections open at once (also held under 3/4 of the file-descriptor limit).
    pub max_connections: usize,
    /// Whole-request deadline: from the parsed head to the response head, request body
    /// included.
    pub request_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// The connected client's address, in every request's extensions (also as axum's
/// `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

const HEAD: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;
const STREAMING: u8 = 3;

/// One connection's phase, shared by its stream, its requests and its watchdog.
struct Conn {
    id: u64,
    phase: AtomicU8,
    /// When the phase began, in milliseconds since the server's epoch.
    since: AtomicU64,
    epoch: Instant,
    evicted: Notify,
}

impl Conn {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// Moves from `from` to `to` only if the connection is still in `from`.
    fn advance(&self, from: u8, to: u8) {
        if self.phase.load(Ordering::Acquire) == from {
            self.enter(to);
        }
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let allowed = match self.phase.load(Ordering::Acquire) {
            HEAD => limits.header_read_timeout,
            IDLE => limits.idle_timeout,
            BUSY => limits.request_timeout + limits.idle_timeout,
            _ => return None,
        };
        let since = Duration::from_millis(self.since.load(Ordering::Relaxed));
        Some(self.epoch + since + allowed)
    }

    fn evictable(&self) -> bool {
        matches!(self.phase.load(Ordering::Acquire), HEAD | IDLE)
    }
}

/// The open connections, for the cap.
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: Instant,
    /// Mirrors `conns.len()` for the caller's metrics.
    open: Arc<AtomicUsize>,
}

impl Registry {
    /// Registers a new connection, evicting the longest-waiting idle or half-open one when
    /// `max` are open; `None` when all of them are in requests.
    fn admit(self: &Arc<Self>, max: usize) -> Option<Registration> {
        let mut conns = self.conns.lock().expect("registry lock poisoned");
        if conns.len() >= max {
            let oldest = conns
                .values()
                .filter(|c| c.evictable())
                .min_by_key(|c| c.since.load(Ordering::Relaxed))
                .map(|c| c.id)?;
            if let Some(victim) = conns.remove(&oldest) {
                victim.evicted.notify_one();
            }
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            phase: AtomicU8::new(HEAD),
            since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            epoch: self.epoch,
            evicted: Notify::new(),
        });
        conns.insert(conn.id, Arc::clone(&conn));
        self.open.store(conns.len(), Ordering::Relaxed);
        Some(Registration {
            registry: Arc::clone(self),
            conn,
        })
    }

    fn len(&self) -> usize {
        self.conns.lock().expect("registry lock poisoned").len()
    }
}

/// A connection's place in the registry; dropped with the socket (also after an upgrade, when
/// the socket lives on in a WebSocket task).
struct Registration {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut conns = self.registry.conns.lock().expect("registry lock poisoned");
        conns.remove(&self.conn.id);
        self.registry.open.store(conns.len(), Ordering::Relaxed);
    }
}

/// The socket, noticing the first byte of a request on an idle connection.
struct GuardedStream {
    stream: TcpStream,
    registration: Registration,
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.registration.conn.advance(IDLE, HEAD);
        }
        polled
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A request body that records when it has been read to the end.
struct TrackedBody {
    inner: Incoming,
    done: Arc<AtomicBool>,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that puts the connection back to idle once it has been written.
struct CompletionBody {
    inner: Body,
    conn: Arc<Conn>,
    /// The phase the response moved the connection to (busy or streaming); `None` for an
    /// upgrade, whose connection stays streaming.
    from: Option<u8>,
}

impl CompletionBody {
    fn finish(&mut self) {
        if let Some(from) = self.from.take() {
            self.conn.advance(from, IDLE);
        }
    }
}

impl HttpBody for CompletionBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CompletionBody {
    fn drop(&mut self) {
        self.finish();
    }
}

fn streams(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start().to_ascii_lowercase();
            v.starts_with("multipart/mixed") || v.starts_with("text/event-stream")
        })
}

fn deadline_response(limits: &ConnectionLimits, body_received: bool) -> Response<Body> {
    let (status, message) = if body_received {
        (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "The request was not answered within its {} ms deadline.",
                limits.request_timeout.as_millis()
            ),
        )
    } else {
        (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The request body did not arrive within the {} ms request deadline.",
                limits.request_timeout.as_millis()
            ),
        )
    };
    let body = format!(
        "{{\"errors\":[{{\"message\":{},\"extensions\":{{\"code\":\"{REQUEST_TIMEOUT}\"}}}}]}}",
        serde_json_string(&message)
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `text` as a JSON string literal (the messages above hold no characters needing escapes
/// beyond quotes and backslashes).
fn serde_json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

async fn handle(
    router: Router,
    conn: Arc<Conn>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    request: Request<Incoming>,
) -> Result<Response<CompletionBody>, Infallible> {
    conn.enter(BUSY);
    let received = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let (mut parts, incoming) = request.into_parts();
    parts.extensions.insert(ClientAddr(peer));
    parts
        .extensions
        .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
    let body = Body::new(TrackedBody {
        inner: incoming,
        done: Arc::clone(&received),
    });
    let request = Request::from_parts(parts, body);
    let response = match tokio::time::timeout(limits.request_timeout, router.oneshot(request)).await
    {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::debug!(%peer, "request deadline passed");
            deadline_response(&limits, received.load(Ordering::Relaxed))
        }
    };
    let from = if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.enter(STREAMING);
        None
    } else if streams(&response) {
        conn.enter(STREAMING);
        Some(STREAMING)
    } else {
        Some(BUSY)
    };
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        CompletionBody {
            inner: body,
            conn,
            from,
        },
    ))
}

/// Counts running connection tasks, so shutdown can wait for them.
#[derive(Clone)]
struct Tasks(Arc<(AtomicUsize, Notify)>);

impl Tasks {
    fn start(&self) -> TaskGuard {
        self.0 .0.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    async fn all_done(&self) {
        loop {
            let notified = self.0 .1.notified();
            if self.0 .0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

struct TaskGuard(Tasks);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0 .0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .0 .1.notify_waiters();
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    registration: Registration,
    router: Router,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
    _running: TaskGuard,
) {
    let conn = Arc::clone(&registration.conn);
    let io = TokioIo::new(GuardedStream {
        stream,
        registration,
    });
    let service_conn = Arc::clone(&conn);
    let service = service_fn(move |request| {
        handle(
            router.clone(),
            Arc::clone(&service_conn),
            peer,
            limits,
            request,
        )
    });
    let served = http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(served);
    let mut draining = false;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            result = served.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = conn.evicted.notified() => {
                tracing::debug!(%peer, "connection closed to make room for a new one");
                return;
            }
            changed = shutdown.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    served.as_mut().graceful_shutdown();
                }
            }
            () = sleep_until(deadline) => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, phase = conn.phase.load(Ordering::Relaxed), "connection timed out");
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Raises this process's soft file-descriptor limit to its hard limit (once) and returns the
/// soft limit in force, if it can be read.
#[allow(
    unsafe_code,
    reason = "getrlimit/setrlimit are foreign functions; std has no safe wrapper (SAFETY below)"
)]
pub fn raise_fd_limit() -> Option<u64> {
    static LIMIT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        // rlim_t is u64 on Linux but not on every platform.
        #[allow(clippy::unnecessary_cast)]
        Some(limit.rlim_cur as u64)
    })
}

fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves, then lets open
/// requests finish (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_counted(listener, router, limits, shutdown, Arc::default()).await
}

/// [`serve`], keeping `open` at the number of connections open now (upgraded WebSockets
/// included), for the caller's metrics.
pub async fn serve_counted(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    open: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut limits = limits;
    if let Some(fds) = raise_fd_limit() {
        let room = usize::try_from(fds / 4 * 3).unwrap_or(usize::MAX).max(16);
        if limits.max_connections > room {
            tracing::info!(
                configured = limits.max_connections,
                capped = room,
                fd_limit = fds,
                "connection cap lowered to 3/4 of the file-descriptor limit"
            );
            limits.max_connections = room;
        }
    }
    let registry = Arc::new(Registry {
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        epoch: Instant::now(),
        open,
    });
    let tasks = Tasks(Arc::new((AtomicUsize::new(0), Notify::new())));
    let (stop, stopped) = watch::channel(false);
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if is_out_of_descriptors(&err) {
                    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(error = %err, open = registry.len(), "accept failed: out of file descriptors; backing off");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        let Some(registration) = registry.admit(limits.max_connections) else {
            tracing::debug!(%peer, "connection refused: every open connection is in a request");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = tasks.start();
        tokio::spawn(connection(
            stream,
            peer,
            registration,
            router.clone(),
            limits,
            stopped.clone(),
            guard,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    tasks.all_done().await;
    Ok(())
}
