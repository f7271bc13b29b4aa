//! The OTLP trace export message (`ExportTraceServiceRequest`) as protobuf: a writer for the
//! fields Switchyard sets, and a reader for the same subset (for the test receiver and tools).
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto` and
//! `collector/trace/v1/trace_service.proto` (OTLP 1.x, stable).

use super::{AttributeValue, SpanData, TraceContext};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A nested message: written into `out` after a length prefix, which is fixed up once the
/// body's size is known (one memmove per message instead of a buffer per message).
fn message(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let start = out.len();
    body(out);
    let len = out.len() - start;
    let mut prefix = Vec::with_capacity(10);
    varint(&mut prefix, len as u64);
    out.splice(start..start, prefix);
}

fn any_value(out: &mut Vec<u8>, value: &AttributeValue) {
    match value {
        AttributeValue::Str(text) => bytes_field(out, 1, text.as_bytes()),
        AttributeValue::Bool(flag) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*flag));
        }
        AttributeValue::Int(number) => {
            key(out, 3, VARINT);
            varint(out, *number as u64);
        }
    }
}

fn key_value(out: &mut Vec<u8>, field: u32, name: &str, value: &AttributeValue) {
    message(out, field, |out| {
        bytes_field(out, 1, name.as_bytes());
        message(out, 2, |out| any_value(out, value));
    });
}

/// Encodes `spans` of `service_name` as an `ExportTraceServiceRequest`.
pub fn encode_request(service_name: &str, spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + spans.len() * 160);
    // ExportTraceServiceRequest.resource_spans
    message(&mut out, 1, |out| {
        // ResourceSpans.resource
        message(out, 1, |out| {
            key_value(
                out,
                1,
                "service.name",
                &AttributeValue::Str(service_name.to_owned().into()),
            );
        });
        // ResourceSpans.scope_spans
        message(out, 2, |out| {
            message(out, 1, |out| {
                bytes_field(out, 1, b"switchyard");
                bytes_field(out, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for span in spans {
                message(out, 2, |out| encode_span(out, span));
            }
        });
    });
    out
}

fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    bytes_field(out, 1, &span.context.trace_id);
    bytes_field(out, 2, &span.context.span_id);
    if let Some(parent) = &span.parent_span_id {
        bytes_field(out, 4, parent);
    }
    bytes_field(out, 5, span.name.as_bytes());
    key(out, 6, VARINT);
    varint(out, span.kind as u64);
    key(out, 7, FIXED64);
    out.extend_from_slice(&span.start_unix_nanos.to_le_bytes());
    key(out, 8, FIXED64);
    out.extend_from_slice(&span.end_unix_nanos.to_le_bytes());
    for (name, value) in &span.attributes {
        key_value(out, 9, name, value);
    }
    if let Some(error) = &span.error {
        message(out, 15, |out| {
            bytes_field(out, 2, error.as_bytes());
            key(out, 3, VARINT);
            varint(out, 2); // STATUS_CODE_ERROR
        });
    }
    // Span.flags: the W3C flags (sampled) in the low byte.
    key(out, 16, FIXED32);
    out.extend_from_slice(&u32::from(span.context.sampled).to_le_bytes());
}

/// A span as read back from an export request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedSpan {
    /// The `service.name` of the resource it was sent under.
    pub service_name: String,
    /// Trace id, lower-case hex.
    pub trace_id: String,
    /// Span id, lower-case hex.
    pub span_id: String,
    /// Parent span id, lower-case hex (`None` for a root).
    pub parent_span_id: Option<String>,
    /// The span's name.
    pub name: String,
    /// The OTLP `SpanKind` number (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: u64,
    /// Start and end, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes, values rendered as text.
    pub attributes: Vec<(String, String)>,
    /// The status message when the status code is ERROR.
    pub error: Option<String>,
}

impl DecodedSpan {
    /// The value of attribute `name`, as text.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A protobuf field: its number and its payload.
enum Field<'a> {
    Varint(u64),
    Fixed(u64),
    Bytes(&'a [u8]),
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn read_varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err("truncated field".into());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.read_varint()?;
        let field = match (tag & 7) as u8 {
            VARINT => Field::Varint(self.read_varint()?),
            FIXED64 => Field::Fixed(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            LEN => {
                let len = usize::try_from(self.read_varint()?).map_err(|e| e.to_string())?;
                Field::Bytes(self.take(len)?)
            }
            FIXED32 => Field::Fixed(u64::from(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            ))),
            other => return Err(format!("unsupported wire type {other}")),
        };
        Ok(Some((tag >> 3, field)))
    }
}

fn fields(bytes: &[u8]) -> impl Iterator<Item = Result<(u64, Field<'_>), String>> {
    let mut reader = Reader { rest: bytes };
    std::iter::from_fn(move || reader.next().transpose())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    super::push_hex(&mut out, bytes);
    out
}

fn decode_key_value(bytes: &[u8]) -> Result<(String, String), String> {
    let mut name = String::new();
    let mut value = String::new();
    for field in fields(bytes) {
        match field? {
            (1, Field::Bytes(b)) => name = text(b),
            (2, Field::Bytes(any)) => {
                for inner in fields(any) {
                    value = match inner? {
                        (1, Field::Bytes(b)) => text(b),
                        (2, Field::Varint(v)) => (v != 0).to_string(),
                        (3, Field::Varint(v)) => (v as i64).to_string(),
                        (4, Field::Fixed(v)) => f64::from_bits(v).to_string(),
                        _ => continue,
                    };
                }
            }
            _ => {}
        }
    }
    Ok((name, value))
}

fn decode_span(bytes: &[u8], service_name: &str) -> Result<DecodedSpan, String> {
    let mut span = DecodedSpan {
        service_name: service_name.to_owned(),
        ..DecodedSpan::default()
    };
    for field in fields(bytes) {
        match field? {
            (1, Field::Bytes(b)) => span.trace_id = hex(b),
            (2, Field::Bytes(b)) => span.span_id = hex(b),
            (4, Field::Bytes(b)) if !b.is_empty() => span.parent_span_id = Some(hex(b)),
            (5, Field::Bytes(b)) => span.name = text(b),
            (6, Field::Varint(v)) => span.kind = v,
            (7, Field::Fixed(v)) => span.start_unix_nanos = v,
            (8, Field::Fixed(v)) => span.end_unix_nanos = v,
            (9, Field::Bytes(b)) => span.attributes.push(decode_key_value(b)?),
            (15, Field::Bytes(status)) => {
                let mut message = String::new();
                let mut code = 0;
                for inner in fields(status) {
                    match inner? {
                        (2, Field::Bytes(b)) => message = text(b),
                        (3, Field::Varint(v)) => code = v,
                        _ => {}
                    }
                }
                if code == 2 {
                    span.error = Some(message);
                }
            }
            _ => {}
        }
    }
    Ok(span)
}

/// Reads the spans of an `ExportTraceServiceRequest` (the fields [`encode_request`] writes,
/// whoever wrote them; others are skipped).
pub fn decode_request(bytes: &[u8]) -> Result<Vec<DecodedSpan>, String> {
    let mut spans = Vec::new();
    for field in fields(bytes) {
        let (1, Field::Bytes(resource_spans)) = field? else {
            continue;
        };
        let mut service_name = String::new();
        let mut scopes = Vec::new();
        for inner in fields(resource_spans) {
            match inner? {
                (1, Field::Bytes(resource)) => {
                    for attribute in fields(resource) {
                        if let (1, Field::Bytes(kv)) = attribute? {
                            let (name, value) = decode_key_value(kv)?;
                            if name == "service.name" {
                                service_name = value;
                            }
                        }
                    }
                }
                (2, Field::Bytes(scope_spans)) => scopes.push(scope_spans),
                _ => {}
            }
        }
        for scope_spans in scopes {
            for inner in fields(scope_spans) {
                if let (2, Field::Bytes(span)) = inner? {
                    spans.push(decode_span(span, &service_name)?);
                }
            }
        }
    }
    Ok(spans)
}

/// The context a decoded span's ids stand for (sampled), e.g. to check a `traceparent`.
pub fn context_of(span: &DecodedSpan) -> Option<TraceContext> {
    TraceContext::parse(format!("00-{}-{}-01", span.trace_id, span.span_id).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::super::SpanKind;
    use super::*;

    #[test]
    fn spans_round_trip_through_the_protobuf_encoding() {
        let context = TraceContext {
            trace_id: [7; 16],
            span_id: [9; 8],
            sampled: true,
        };
        let spans = vec![
            SpanData {
                context,
                parent_span_id: Some([1, 2, 3, 4, 5, 6, 7, 8]),
                name: "query Me".into(),
                kind: SpanKind::Server,
                start_unix_nanos: 1_700_000_000_000_000_000,
                end_unix_nanos: 1_700_000_000_001_000_000,
                attributes: vec![
                    ("graphql.operation.name", "Me".into()),
                    ("http.response.body.size", AttributeValue::Int(-3)),
                    ("switchyard.collapsed", AttributeValue::Bool(true)),
                    // Long enough that its length prefix takes two bytes.
                    ("long", "x".repeat(300).into()),
                ],
                error: Some("subgraph down".into()),
            },
            SpanData {
                context,
                parent_span_id: None,
                name: "root".into(),
                kind: SpanKind::Consumer,
                start_unix_nanos: 1,
                end_unix_nanos: 2,
                attributes: Vec::new(),
                error: None,
            },
        ];
        let bytes = encode_request("switchyard-gateway", &spans);
        let decoded = decode_request(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        let first = &decoded[0];
        assert_eq!(first.service_name, "switchyard-gateway");
        assert_eq!(first.trace_id, "07".repeat(16));
        assert_eq!(first.span_id, "09".repeat(8));
        assert_eq!(first.parent_span_id.as_deref(), Some("0102030405060708"));
        assert_eq!(first.name, "query Me");
        assert_eq!(first.kind, 2);
        assert_eq!(first.start_unix_nanos, 1_700_000_000_000_000_000);
        assert_eq!(first.end_unix_nanos, 1_700_000_000_001_000_000);
        assert_eq!(first.attribute("graphql.operation.name"), Some("Me"));
        assert_eq!(first.attribute("http.response.body.size"), Some("-3"));
        assert_eq!(first.attribute("switchyard.collapsed"), Some("true"));
        assert_eq!(first.attribute("long").map(str::len), Some(300));
        assert_eq!(first.error.as_deref(), Some("subgraph down"));
        assert_eq!(decoded[1].parent_span_id, None);
        assert_eq!(decoded[1].kind, 5);
        assert_eq!(context_of(first), Some(context));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let spans = vec![SpanData {
            context: TraceContext {
                trace_id: [7; 16],
                span_id: [9; 8],
                sampled: true,
            },
            parent_span_id: None,
            name: "x".into(),
            kind: SpanKind::Internal,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: Vec::new(),
            error: None,
        }];
        let bytes = encode_request("s", &spans);
        for cut in 1..bytes.len() {
            let _ = decode_request(&bytes[..cut]);
        }
        assert!(decode_request(&bytes[..bytes.len() - 1]).is_err());
    }
}
