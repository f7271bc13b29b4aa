//! The guarded server loop over real loopback sockets: half-open and slow-header connections
//! time out, idle keep-alive connections close, the cap evicts idle and half-open connections
//! (never ones in a request) so a fresh client is still served, the request deadline answers
//! 408/504, and shutdown lets an open request finish.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use switchyard_guard::{serve, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/hold",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "held"
            }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/who",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
}

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        max_connections: 64,
        request_timeout: Duration::from_millis(500),
    }
}

async fn start(limits: ConnectionLimits) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(listener, router(), limits, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

/// Sends one request on `stream` and reads one response (status, body); the response must
/// carry a Content-Length.
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(stream).await.expect("a response")
}

async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server answers or closes")
            .ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return Some((status, text[end + 4..end + 4 + length].to_owned()));
            }
        }
    }
}

/// Whether the server has closed `stream` (reads EOF or a reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected bytes from the server"),
        Err(_) => false,
    }
}

const GET: &str = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn half_open_and_slow_header_connections_time_out() {
    let (addr, _stop) = start(limits()).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(!closed_within(&mut half, Duration::from_millis(100)).await);
    assert!(closed_within(&mut half, Duration::from_secs(2)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);

    // Slowloris: a byte every 50 ms keeps the socket busy but never completes the head.
    let mut drip = TcpStream::connect(addr).await.unwrap();
    let mut closed = false;
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if drip.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed || closed_within(&mut drip, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn kept_alive_connections_serve_requests_then_close_when_idle() {
    let (addr, _stop) = start(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut stream, GET).await, (200, "ok".to_owned()));
    // Idle for less than the idle timeout but longer than the header timeout: still open.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(exchange(&mut stream, GET).await, (200, "ok".to_owned()));
    assert!(closed_within(&mut stream, Duration::from_secs(2)).await);
    // A request body is read normally.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (status, body) = exchange(
        &mut stream,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let (_, who) = exchange(&mut stream, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(who, stream.local_addr().unwrap().to_string());
}

#[tokio::test]
async fn a_fresh_client_is_served_while_the_cap_is_full_of_half_open_connections() {
    let (addr, _stop) = start(ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 16,
        ..limits()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    assert_eq!(exchange(&mut fresh, GET).await, (200, "ok".to_owned()));
    // The oldest half-open ones made room.
    let mut closed = 0;
    for stream in held.iter_mut() {
        if closed_within(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(closed >= 40 + 1 - 16, "{closed} closed");
}

#[tokio::test]
async fn connections_in_a_request_are_never_evicted() {
    let (addr, _stop) = start(ConnectionLimits {
        max_connections: 4,
        request_timeout: Duration::from_secs(5),
        ..limits()
    })
    .await;
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Full of requests in progress: the newcomer is turned away...
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra.write_all(GET.as_bytes()).await;
    assert!(read_response(&mut extra).await.is_none());
    // ...and every request in progress completes.
    for stream in busy.iter_mut() {
        assert_eq!(read_response(stream).await, Some((200, "held".to_owned())));
    }
}

#[tokio::test]
async fn the_request_deadline_answers_408_or_504() {
    let (addr, _stop) = start(limits()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (status, body) = exchange(&mut stream, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 504);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["errors"][0]["extensions"]["code"], "REQUEST_TIMEOUT");
    assert!(closed_within(&mut stream, Duration::from_secs(1)).await);

    // A body that never finishes arriving.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
        .await
        .unwrap();
    let (status, body) = read_response(&mut stream).await.expect("a 408");
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("REQUEST_TIMEOUT"), "{body}");
}

#[tokio::test]
async fn shutdown_lets_an_open_request_finish() {
    let (addr, stop) = start(ConnectionLimits {
        request_timeout: Duration::from_secs(5),
        ..limits()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    assert_eq!(
        read_response(&mut stream).await,
        Some((200, "held".to_owned()))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
