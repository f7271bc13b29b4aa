//! The OTLP/HTTP exporter: a bounded queue filled without blocking by ending spans, drained by
//! one background thread that batches spans and POSTs them as protobuf.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};

use super::{SpanData, TraceConfig};

/// Most spans in one export request.
const MAX_BATCH: usize = 512;
/// How long one export request may take before its batch is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a tracer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The endpoint is not an `http://` URL.
    #[error("OTLP endpoint {endpoint:?}: {message}")]
    Endpoint {
        /// The configured value.
        endpoint: String,
        /// What is wrong with it.
        message: String,
    },
    /// The export thread could not start.
    #[error("starting the OTLP export thread: {0}")]
    Thread(#[from] std::io::Error),
}

enum Message {
    Span(SpanData),
    Flush(oneshot::Sender<()>),
}

pub(super) struct Exporter {
    queue: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    endpoint: Uri,
}

/// `base` with `/v1/traces` appended unless it already names that path (the
/// `OTEL_EXPORTER_OTLP_ENDPOINT` convention).
fn traces_uri(base: &str) -> Result<Uri, TraceError> {
    let error = |message: String| TraceError::Endpoint {
        endpoint: base.to_owned(),
        message,
    };
    let trimmed = base.trim_end_matches('/');
    let full = if trimmed.ends_with("/v1/traces") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    };
    let uri: Uri = full.parse().map_err(|e| error(format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => Ok(uri),
        Some("https") => Err(error(
            "https is not supported; send to a collector (agent or sidecar) over http".into(),
        )),
        _ => Err(error("expected http://host:port".into())),
    }
}

impl Exporter {
    pub(super) fn start(config: &TraceConfig) -> Result<Exporter, TraceError> {
        let endpoint = traces_uri(&config.endpoint)?;
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let worker = Worker {
            endpoint: endpoint.clone(),
            service_name: config.service_name.clone(),
            interval: config.batch_interval,
            dropped: Arc::clone(&dropped),
        };
        // A thread of its own: the tracer can be made outside any runtime (the gateway is built
        // synchronously), and export work never queues behind request handling.
        std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(worker.run(receiver)),
                    Err(e) => tracing::warn!(error = %e, "OTLP export runtime did not start"),
                }
            })?;
        Ok(Exporter {
            queue,
            dropped,
            endpoint,
        })
    }

    pub(super) fn endpoint(&self) -> &Uri {
        &self.endpoint
    }

    /// Queues an ended span; never blocks (a full queue drops it).
    pub(super) fn offer(&self, span: SpanData) {
        if self.queue.try_send(Message::Span(span)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Worker {
    endpoint: Uri,
    service_name: String,
    interval: Duration,
    dropped: Arc<AtomicU64>,
}

impl Worker {
    /// Collects spans until a batch is full or the interval since its first span has passed,
    /// then sends it; ends when every tracer handle is gone (after sending what is left).
    async fn run(self, mut receiver: mpsc::Receiver<Message>) {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(connector);
        let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
        let mut failing = false;
        loop {
            let message = if batch.is_empty() {
                receiver.recv().await
            } else {
                match tokio::time::timeout(self.interval, receiver.recv()).await {
                    Ok(message) => message,
                    Err(_) => {
                        self.send(&client, &mut batch, &mut failing).await;
                        continue;
                    }
                }
            };
            match message {
                None => {
                    self.send(&client, &mut batch, &mut failing).await;
                    return;
                }
                Some(Message::Span(span)) => {
                    batch.push(span);
                    if batch.len() >= MAX_BATCH {
                        self.send(&client, &mut batch, &mut failing).await;
                    }
                }
                Some(Message::Flush(done)) => {
                    // Spans queued before the flush request are already received (the queue
                    // is FIFO), so sending the batch now covers them all.
                    self.send(&client, &mut batch, &mut failing).await;
                    let _ = done.send(());
                }
            }
        }
    }

    async fn send(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        batch: &mut Vec<SpanData>,
        failing: &mut bool,
    ) {
        if batch.is_empty() {
            return;
        }
        let body = super::otlp::encode_request(&self.service_name, batch);
        let count = batch.len() as u64;
        batch.clear();
        let request = Request::post(self.endpoint.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(Bytes::from(body)))
            .expect("a POST to a parsed URI is a valid request");
        let outcome = tokio::time::timeout(EXPORT_TIMEOUT, async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            // Read the body so the connection goes back to the pool.
            let _ = response.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP status {status}"))
            }
        })
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
        match outcome {
            Ok(()) => {
                if *failing {
                    tracing::info!(endpoint = %self.endpoint, "OTLP export works again");
                }
                *failing = false;
            }
            Err(reason) => {
                self.dropped.fetch_add(count, Ordering::Relaxed);
                // Once per outage, not once per batch: a collector that is down for an hour
                // should not fill the logs.
                if !*failing {
                    tracing::warn!(endpoint = %self.endpoint, error = %reason, spans = count,
                        "OTLP export failed; dropping spans until it works again");
                }
                *failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_otlp_convention() {
        assert_eq!(
            traces_uri("http://collector:4318").unwrap().to_string(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_uri("http://collector:4318/").unwrap().to_string(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_uri("http://c:4318/custom/v1/traces")
                .unwrap()
                .to_string(),
            "http://c:4318/custom/v1/traces"
        );
        assert!(traces_uri("https://collector:4318").is_err());
        assert!(traces_uri("collector:4318").is_err());
        assert!(traces_uri("not a url").is_err());
    }
}
