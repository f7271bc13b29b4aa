//! GraphiQL served from the gateway binary itself, so it works without network access.
//!
//! The page and its assets are plain bytes here; routing, cache headers and compression are the
//! HTTP layer's job. Asset URLs carry the GraphiQL version as a query string so that callers can
//! cache them forever (`Cache-Control: public, max-age=31536000, immutable`).

/// Path prefix under which the page expects [`asset`] to be served.
pub const ASSETS_PREFIX: &str = "/graphiql/assets/";

/// Version of the bundled GraphiQL; part of every asset URL, so bump it with the files.
pub const GRAPHIQL_VERSION: &str = "3.8.3";

/// Bundled files: (name under [`ASSETS_PREFIX`], content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphiql-plugin-explorer.umd.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql-plugin-explorer.umd.js"),
    ),
    (
        "graphiql-plugin-explorer.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql-plugin-explorer.css"),
    ),
    (
        "switchyard-graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/switchyard-graphiql.js"),
    ),
    (
        "switchyard-graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/switchyard-graphiql.css"),
    ),
];

/// The page's Content-Security-Policy: scripts, styles, fonts and images from this origin
/// only (no inline scripts, no `eval`), requests (HTTP and WebSocket) to this origin only, no
/// framing, no plugins, no forms, no `<base>`. Inline styles stay allowed: GraphiQL's editor
/// and React set `style` attributes, and a style cannot run code.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A bundled asset by its path: either the bare file name (`graphiql.min.js`) or the full
/// request path (`/graphiql/assets/graphiql.min.js`); a query string is ignored. Returns
/// `(content type, bytes)`.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let name = path
        .strip_prefix(ASSETS_PREFIX)
        .unwrap_or(path)
        .trim_start_matches('/');
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}

/// Names of all bundled assets (relative to [`ASSETS_PREFIX`]).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

/// The GraphiQL page, talking to the GraphQL endpoint at `endpoint` (a path such as `/graphql`
/// or an absolute URL), and running subscriptions over graphql-transport-ws on the same URL
/// when `subscriptions` is on; it opens with `default_query` unless the browser kept one from
/// an earlier visit. Loads only same-origin assets under [`ASSETS_PREFIX`] and has no inline
/// script or style, so it runs under [`CONTENT_SECURITY_POLICY`].
pub fn graphiql_html(endpoint: &str, subscriptions: bool, default_query: Option<&str>) -> String {
    let default_query = default_query.map_or_else(String::new, |q| {
        format!(" data-default-query=\"{}\"", html_attribute(q))
    });
    let asset_url = |name: &str| format!("{ASSETS_PREFIX}{name}?v={GRAPHIQL_VERSION}");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Switchyard GraphiQL</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="{page_css}">
<link rel="stylesheet" href="{css}">
<link rel="stylesheet" href="{explorer_css}">
<script src="{react}"></script>
<script src="{react_dom}"></script>
<script src="{graphiql}"></script>
<script src="{explorer}"></script>
</head>
<body>
<div id="graphiql" data-endpoint="{endpoint}" data-subscriptions="{subscriptions}"{default_query}>Loading GraphiQL…</div>
<script src="{page_js}"></script>
</body>
</html>
"#,
        endpoint = html_attribute(endpoint),
        page_css = asset_url("switchyard-graphiql.css"),
        page_js = asset_url("switchyard-graphiql.js"),
        css = asset_url("graphiql.min.css"),
        react = asset_url("react.production.min.js"),
        react_dom = asset_url("react-dom.production.min.js"),
        graphiql = asset_url("graphiql.min.js"),
        explorer_css = asset_url("graphiql-plugin-explorer.css"),
        explorer = asset_url("graphiql-plugin-explorer.umd.js"),
        subscriptions = if subscriptions { "true" } else { "false" },
    )
}

/// `value` escaped for a double-quoted HTML attribute.
fn html_attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_references_is_bundled() {
        let html = graphiql_html("/graphql", true, None);
        let mut referenced = 0;
        for name in asset_names() {
            let url = format!("{ASSETS_PREFIX}{name}?v={GRAPHIQL_VERSION}");
            assert!(html.contains(&url), "page does not load {url}");
            let (content_type, bytes) = asset(&url).expect("served by full URL");
            assert!(bytes.len() > 100, "{name} is suspiciously small");
            let expected = if name.ends_with(".css") {
                "text/css; charset=utf-8"
            } else {
                "text/javascript; charset=utf-8"
            };
            assert_eq!(content_type, expected);
            referenced += 1;
        }
        assert_eq!(referenced, 8);
        assert!(
            !html.contains("<style") && !html.contains("<script>"),
            "{html}"
        );
        // Nothing is fetched from anywhere but this origin.
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        let total: usize = asset_names().map(|n| asset(n).unwrap().1.len()).sum();
        assert!(total < 3 * 1024 * 1024, "assets are {total} bytes");
    }

    #[test]
    fn asset_lookup_accepts_bare_and_prefixed_paths_only() {
        assert_eq!(
            asset("graphiql.min.css").map(|(ct, _)| ct),
            Some("text/css; charset=utf-8")
        );
        assert!(asset("/graphiql/assets/react.production.min.js").is_some());
        assert!(asset("/react-dom.production.min.js?v=1").is_some());
        assert!(asset("LICENSES.md").is_none());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }

    #[test]
    fn settings_reach_the_start_up_script_as_data_attributes() {
        assert!(graphiql_html("/graphql", true, None).contains(r#"data-subscriptions="true""#));
        assert!(graphiql_html("/graphql", false, None).contains(r#"data-subscriptions="false""#));
        let script = std::str::from_utf8(asset("switchyard-graphiql.js").unwrap().1).unwrap();
        assert!(script.contains("options.subscriptionUrl = ws.href;"));
    }

    #[test]
    fn endpoint_is_embedded_as_a_safe_attribute() {
        let html = graphiql_html("/api/graphql", true, None);
        assert!(html.contains(r#"data-endpoint="/api/graphql""#));
        let hostile = graphiql_html("/x\"></div><script>alert(1)</script>'", true, None);
        assert!(hostile.contains(
            r#"data-endpoint="/x&quot;&gt;&lt;/div&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#39;""#
        ));
        assert_eq!(
            hostile.matches("<script").count(),
            html.matches("<script").count()
        );
    }

    #[test]
    fn the_default_query_is_embedded_as_a_safe_attribute_when_given() {
        assert!(!graphiql_html("/graphql", true, None).contains("data-default-query"));
        let html = graphiql_html("/graphql", true, Some("{ me { handle } }\n# </script>"));
        assert!(
            html.contains("data-default-query=\"{ me { handle } }\n# &lt;/script&gt;\""),
            "{html}"
        );
    }

    /// Renders the page in headless Chromium with every non-loopback host unresolvable, serving
    /// the page, the assets and introspection from a throwaway HTTP/1.1 server, and checks that
    /// GraphiQL mounted and introspected the schema. Needs `chromium` on PATH; run with
    /// `cargo test -p switchyard-gateway graphiql -- --ignored`. Set `GRAPHIQL_SCREENSHOT=path.png`
    /// to also keep a screenshot.
    #[test]
    #[ignore = "needs chromium; run explicitly"]
    fn renders_offline_in_headless_chromium() {
        use std::sync::{Arc, Mutex};

        let server = test_server::TestServer::start();
        let url = format!("http://127.0.0.1:{}/graphql", server.port);
        let common = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--window-size=1280,800",
            "--enable-logging=stderr",
        ];
        let output = std::process::Command::new("chromium")
            .args(common)
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .expect("chromium runs");
        let dom = String::from_utf8_lossy(&output.stdout);
        assert!(
            dom.contains("graphiql-container"),
            "GraphiQL did not mount:\n{dom}"
        );
        assert!(!dom.contains("Loading GraphiQL"), "still loading:\n{dom}");
        assert!(dom.contains("Explorer"), "explorer plugin missing:\n{dom}");
        let console = String::from_utf8_lossy(&output.stderr);
        assert!(
            !console.contains("Uncaught") && !console.contains("Content Security Policy"),
            "JavaScript errors or CSP violations in the page:\n{console}"
        );
        if let Ok(path) = std::env::var("GRAPHIQL_DOM") {
            std::fs::write(path, dom.as_bytes()).expect("DOM dump is writable");
        }
        if let Ok(path) = std::env::var("GRAPHIQL_SCREENSHOT") {
            let status = std::process::Command::new("chromium")
                .args(common)
                .arg(format!("--screenshot={path}"))
                .arg(&url)
                .status()
                .expect("chromium runs");
            assert!(status.success());
        }
        let requests: Arc<Mutex<Vec<String>>> = server.requests.clone();
        let requests = requests.lock().unwrap().clone();
        assert!(
            requests.iter().any(|r| r.starts_with("POST /graphql")),
            "GraphiQL never introspected: {requests:?}"
        );
        for name in asset_names() {
            assert!(
                requests.iter().any(|r| r.contains(name)),
                "{name} never requested: {requests:?}"
            );
        }
    }

    /// A minimal blocking HTTP/1.1 server: GET /graphql -> the page, GET assets, POST /graphql ->
    /// introspection of a small schema. Good enough for one browser on loopback.
    mod test_server {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::{Arc, Mutex};

        use apollo_compiler::{ExecutableDocument, Schema};
        use serde_json::{json, Value};

        use crate::introspection::{IntrospectionOptions, SchemaIntrospection};

        /// A running server; its thread lives until the test process exits.
        pub(super) struct TestServer {
            /// Loopback port it listens on.
            pub port: u16,
            /// `METHOD path` of every request served, in order.
            pub requests: Arc<Mutex<Vec<String>>>,
        }

        impl TestServer {
            /// Binds a free loopback port and serves on a background thread.
            pub fn start() -> Self {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
                let port = listener.local_addr().unwrap().port();
                let requests = Arc::new(Mutex::new(Vec::new()));
                let schema = Schema::parse_and_validate(
                    "type Query { hello(name: String): String, answer: Int }",
                    "schema.graphql",
                )
                .unwrap();
                let introspection = Arc::new(SchemaIntrospection::new(
                    &schema,
                    IntrospectionOptions::default(),
                ));
                let log = requests.clone();
                std::thread::spawn(move || {
                    for stream in listener.incoming().flatten() {
                        let log = log.clone();
                        let introspection = introspection.clone();
                        std::thread::spawn(move || serve(stream, &log, &introspection));
                    }
                });
                Self { port, requests }
            }
        }

        fn serve(stream: TcpStream, log: &Mutex<Vec<String>>, introspection: &SchemaIntrospection) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                let mut content_length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            content_length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; content_length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let path = parts.next().unwrap_or_default().to_owned();
                log.lock().unwrap().push(format!("{method} {path}"));
                let (status, content_type, payload): (&str, &str, Vec<u8>) =
                    match (method.as_str(), path.as_str()) {
                        ("GET", "/graphql") => (
                            "200 OK",
                            "text/html; charset=utf-8",
                            super::graphiql_html("/graphql", true, None).into_bytes(),
                        ),
                        ("POST", "/graphql") => (
                            "200 OK",
                            "application/json",
                            execute(introspection, &body).to_string().into_bytes(),
                        ),
                        ("GET", path) => match super::asset(path) {
                            Some((content_type, bytes)) => ("200 OK", content_type, bytes.to_vec()),
                            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
                        },
                        _ => ("405 Method Not Allowed", "text/plain", Vec::new()),
                    };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                     content-security-policy: {}\r\n\r\n",
                    payload.len(),
                    super::CONTENT_SECURITY_POLICY,
                );
                if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&payload).is_err()
                {
                    return;
                }
            }
        }

        fn execute(introspection: &SchemaIntrospection, body: &[u8]) -> Value {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let query = request["query"].as_str().unwrap_or_default();
            let schema = Schema::parse_and_validate(
                "type Query { hello(name: String): String, answer: Int }",
                "schema.graphql",
            )
            .unwrap();
            let Ok(document) = ExecutableDocument::parse_and_validate(&schema, query, "q.graphql")
            else {
                return json!({ "errors": [{ "message": "invalid query" }] });
            };
            let name = request["operationName"].as_str();
            let Ok(operation) = document.operations.get(name) else {
                return json!({ "errors": [{ "message": "no such operation" }] });
            };
            let variables = request["variables"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            match introspection.execute(&document, operation, &variables) {
                Ok(response) => json!({ "data": response.data }),
                Err(err) => json!({ "errors": [err.to_graphql_error()] }),
            }
        }
    }
}
