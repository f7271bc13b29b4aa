//! A small OTLP/HTTP trace receiver on loopback, for tests and local debugging: it accepts
//! protobuf `POST /v1/traces` requests and keeps the decoded spans in memory.
//!
//! It speaks just enough HTTP/1.1 for an exporter (`Content-Length` bodies, keep-alive); it is
//! not a collector and never listens beyond the address it is given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::otlp::{decode_request, DecodedSpan};

/// Largest request body accepted (bigger requests are answered 413 and closed).
const MAX_BODY: usize = 16 << 20;

/// A running receiver; stops accepting when dropped.
pub struct OtlpReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<DecodedSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    pub async fn start() -> std::io::Result<OtlpReceiver> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&sink)));
            }
        });
        Ok(OtlpReceiver {
            endpoint,
            spans,
            task,
        })
    }

    /// The base URL to give an exporter (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<DecodedSpan> {
        self.spans.lock().expect("spans lock poisoned").clone()
    }

    /// Waits up to `timeout` until `done` holds for the spans received, and returns them
    /// (also when it never held, for the caller's assertion message).
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[DecodedSpan]) -> bool,
    ) -> Vec<DecodedSpan> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, sink: Arc<Mutex<Vec<DecodedSpan>>>) {
    let mut buffer = Vec::with_capacity(8192);
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.len() > 64 * 1024 || !read_more(&mut stream, &mut buffer).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if length > MAX_BODY {
            let _ = stream
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
        while buffer.len() < head_end + length {
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        }
        let body: Vec<u8> = buffer.drain(..head_end + length).skip(head_end).collect();
        let response: &[u8] = if head.starts_with("POST ") {
            match decode_request(&body) {
                Ok(spans) => {
                    sink.lock().expect("spans lock poisoned").extend(spans);
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                }
                Err(_) => b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            }
        } else {
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n"
        };
        if stream.write_all(response).await.is_err() {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SpanKind, TraceConfig, TraceContext, Tracer};
    use super::*;

    #[tokio::test]
    async fn spans_reach_the_receiver_with_their_parents() {
        let receiver = OtlpReceiver::start().await.unwrap();
        let tracer = Tracer::new(TraceConfig {
            batch_interval: Duration::from_millis(50),
            ..TraceConfig::new(receiver.endpoint(), "test-service")
        })
        .unwrap();
        let client =
            TraceContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        let mut request = tracer.start("query Me", SpanKind::Server, Some(&client));
        request.set_attribute("graphql.operation.name", "Me");
        let child = tracer.start("fetch", SpanKind::Client, request.context().as_ref());
        let child_id = child.context().unwrap().span_id;
        child.end();
        let request_id = request.context().unwrap().span_id;
        request.end();
        tracer.flush().await;
        let spans = receiver.spans();
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let (fetch, query) = (&spans[0], &spans[1]);
        assert!(spans
            .iter()
            .all(|s| s.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
                && s.service_name == "test-service"));
        assert_eq!(query.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(query.attribute("graphql.operation.name"), Some("Me"));
        assert_eq!(fetch.parent_span_id, Some(hex(&request_id)));
        assert_eq!(fetch.span_id, hex(&child_id));
        assert!(query.start_unix_nanos <= fetch.start_unix_nanos);
        assert!(fetch.end_unix_nanos <= query.end_unix_nanos);
        assert_eq!(tracer.dropped_spans(), 0);
    }

    #[tokio::test]
    async fn unsampled_parents_are_followed_and_ratio_zero_records_no_new_trace() {
        let receiver = OtlpReceiver::start().await.unwrap();
        let tracer = Tracer::new(TraceConfig {
            sample_ratio: 0.0,
            ..TraceConfig::new(receiver.endpoint(), "s")
        })
        .unwrap();
        let unsampled =
            TraceContext::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap();
        let span = tracer.start("a", SpanKind::Server, Some(&unsampled));
        assert!(!span.is_recording());
        // Still propagated, unsampled, so the next process skips it too.
        let context = span.context().unwrap();
        assert!(!context.sampled);
        assert_eq!(context.trace_id, unsampled.trace_id);
        drop(span);
        let root = tracer.start("b", SpanKind::Server, None);
        assert!(!root.is_recording());
        drop(root);
        let sampled = TraceContext {
            sampled: true,
            ..unsampled
        };
        drop(tracer.start("c", SpanKind::Server, Some(&sampled)));
        tracer.flush().await;
        let names: Vec<_> = receiver.spans().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["c"]);
    }

    #[tokio::test]
    async fn a_dead_endpoint_drops_spans_without_blocking() {
        // A port that was just free: nothing listens there.
        let endpoint = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let tracer = Tracer::new(TraceConfig::new(endpoint, "s")).unwrap();
        for _ in 0..10 {
            drop(tracer.start("x", SpanKind::Internal, None));
        }
        tracer.flush().await;
        assert_eq!(tracer.dropped_spans(), 10);
    }

    #[tokio::test]
    async fn flush_within_sends_a_waiting_batch_and_gives_up_on_a_silent_collector() {
        let receiver = OtlpReceiver::start().await.unwrap();
        // A batch that would wait a minute: only the flush sends it.
        let tracer = Tracer::new(TraceConfig {
            batch_interval: Duration::from_secs(60),
            ..TraceConfig::new(receiver.endpoint(), "s")
        })
        .unwrap();
        drop(tracer.start("last request", SpanKind::Server, None));
        assert!(tracer.flush_within(Duration::from_secs(5)).await);
        let names: Vec<_> = receiver.spans().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["last request"]);

        // A collector that accepts connections and never answers: the wait is bounded.
        let silent = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let tracer = Tracer::new(TraceConfig::new(
            format!("http://{}", silent.local_addr().unwrap()),
            "s",
        ))
        .unwrap();
        drop(tracer.start("lost", SpanKind::Server, None));
        let started = std::time::Instant::now();
        assert!(!tracer.flush_within(Duration::from_millis(300)).await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(Tracer::disabled().flush_within(Duration::ZERO).await);
    }

    fn hex(bytes: &[u8]) -> String {
        let mut out = String::new();
        crate::trace::push_hex(&mut out, bytes);
        out
    }
}
