//! The status view: one page that says, at a glance, whether the platform is well — every
//! subgraph's reachability, circuit breaker, latency and error rate over the last minutes, and
//! what each service reports about its own stores (its `/status`: database, outbox, consumer
//! lag, index queue). HTML for people (`/status` from a browser), JSON for machines.
//!
//! Built for a tired person at 3 a.m.: one colour per row (green / amber / red, always with a
//! word and a symbol beside it, never colour alone), plain sentences for every problem, the worst
//! news first in a banner, everything on one screen for five services. The page refreshes itself
//! every 10 s. Subgraphs that are not Switchyard services (no `/status`) still get the gateway's
//! own view of them.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use http::Uri;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use switchyard_telemetry::window::WindowSummary;

use crate::execute::transport::HttpClient;
use crate::execute::CircuitState;
use crate::Gateway;

/// How long the view waits for a service's `/status`.
pub const SERVICE_STATUS_TIMEOUT: Duration = Duration::from_millis(1500);
/// Error rate (over the window) at which a subgraph turns amber.
pub const ERROR_RATE_DEGRADED: f64 = 0.05;
/// Error rate at which a subgraph turns red.
pub const ERROR_RATE_DOWN: f64 = 0.5;
/// Failed requests needed before the error rate counts (a single failure is not a trend).
pub const MIN_ERRORS: u64 = 3;
/// p99 latency at which a subgraph turns amber.
pub const P99_DEGRADED: Duration = Duration::from_secs(1);

/// Green, amber, red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Green: nothing to do.
    Ok,
    /// Amber: works, needs a look.
    Degraded,
    /// Red: broken.
    Down,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Degraded => "NEEDS A LOOK",
            Level::Down => "DOWN",
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Level::Ok => "●",
            Level::Degraded => "▲",
            Level::Down => "✖",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Degraded => "degraded",
            Level::Down => "down",
        }
    }
}

/// Requests over the window, as the status view shows them.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// Seconds the numbers cover.
    pub window_seconds: u64,
    /// Requests.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// `errors / count`.
    pub error_rate: f64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

impl From<WindowSummary> for Traffic {
    fn from(s: WindowSummary) -> Self {
        Traffic {
            window_seconds: s.span.as_secs(),
            count: s.count,
            errors: s.errors,
            error_rate: s.error_rate(),
            p50_ms: s.p50.map(|d| d.as_secs_f64() * 1000.0),
            p99_ms: s.p99.map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// One line of a service's own report (its `/status` `checks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceCheck {
    /// What was checked.
    pub name: String,
    /// How it is.
    pub status: Level,
    /// Plain words.
    #[serde(default)]
    pub detail: String,
}

/// What a service said about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReport {
    /// Worst of its checks.
    pub status: Level,
    /// Its checks.
    #[serde(default)]
    pub checks: Vec<ServiceCheck>,
    /// Where it serves `/metrics`.
    #[serde(default)]
    pub metrics_address: Option<String>,
}

/// One subgraph in the view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubgraphStatus {
    /// Subgraph name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Overall colour.
    pub status: Level,
    /// Whether its status endpoint (or, for other subgraphs, its port) answered.
    pub reachable: bool,
    /// Circuit breaker: closed, half-open, open.
    pub breaker: &'static str,
    /// Requests in flight now.
    pub inflight: usize,
    /// Fetches over the window, as the gateway saw them.
    pub requests: Traffic,
    /// The service's own report, when it has a `/status`.
    pub service: Option<ServiceReport>,
    /// Plain sentences, worst first.
    pub problems: Vec<String>,
}

/// The gateway itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// Client requests over the window (failed: errors in the response or not plannable;
    /// requests rejected for the client's own mistakes do not count against health).
    pub requests: Traffic,
    /// Plan cache entries.
    pub plan_cache_entries: usize,
    /// Share of requests answered from the plan cache since start.
    pub plan_cache_hit_ratio: Option<f64>,
    /// Subscriptions running now.
    pub active_subscriptions: i64,
    /// Supergraph and config reloads, and why the latest was refused if it was.
    pub reload: crate::ReloadStatus,
}

/// The whole view.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformStatus {
    /// Worst of everything.
    pub status: Level,
    /// One sentence: what is wrong, or that nothing is.
    pub headline: String,
    /// The gateway.
    pub gateway: GatewayStatus,
    /// Every subgraph, in name order.
    pub subgraphs: Vec<SubgraphStatus>,
}

/// What asking a service for its `/status` gave.
enum Probe {
    Report(ServiceReport),
    /// Answered, but not with a status report (not a Switchyard service).
    NoReport,
    Unreachable(String),
}

fn status_uri(url: &Uri) -> Option<Uri> {
    let mut parts = url.clone().into_parts();
    parts.path_and_query = Some("/status".parse().ok()?);
    Uri::from_parts(parts).ok()
}

async fn probe(client: &HttpClient, url: &Uri) -> Probe {
    let Some(uri) = status_uri(url) else {
        return Probe::Unreachable("no usable URL".into());
    };
    let request = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()));
    let Ok(request) = request else {
        return Probe::Unreachable("no usable URL".into());
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| plain_error(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(SERVICE_STATUS_TIMEOUT, exchange).await {
        Err(_) => Probe::Unreachable(format!(
            "no answer within {} ms",
            SERVICE_STATUS_TIMEOUT.as_millis()
        )),
        Ok(Err(reason)) => Probe::Unreachable(reason),
        // A service reports itself down with 503 and its report in the body.
        Ok(Ok((_, body))) => match serde_json::from_slice::<ServiceReport>(&body) {
            Ok(report) => Probe::Report(report),
            Err(_) => Probe::NoReport,
        },
    }
}

/// The innermost cause in plain words: "connection refused", not the client's layers of
/// "client error (Connect): tcp connect error: …".
fn plain_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(inner) = innermost.source() {
        innermost = inner;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "no answer".to_owned(),
    }
}

fn ms(value: Option<f64>) -> String {
    match value {
        None => "–".to_owned(),
        Some(v) if v < 10.0 => format!("{v:.1} ms"),
        Some(v) if v < 10_000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.1} s", v / 1000.0),
    }
}

fn percent(rate: f64) -> String {
    if rate == 0.0 {
        "0%".to_owned()
    } else if rate < 0.01 {
        "<1%".to_owned()
    } else {
        format!("{:.0}%", rate * 100.0)
    }
}

fn judge(
    name: &str,
    circuit: CircuitState,
    traffic: &Traffic,
    probe: &Probe,
) -> (Level, Vec<String>) {
    let mut problems: Vec<(Level, String)> = Vec::new();
    match probe {
        Probe::Unreachable(reason) => {
            problems.push((Level::Down, format!("{name} cannot be reached ({reason})")))
        }
        Probe::Report(report) => {
            for check in report.checks.iter().filter(|c| c.status != Level::Ok) {
                problems.push((
                    check.status,
                    format!("{name} {}: {}", check.name, check.detail),
                ));
            }
        }
        Probe::NoReport => {}
    }
    match circuit {
        CircuitState::Open => problems.push((
            Level::Down,
            format!("{name}'s circuit breaker is open: the gateway fails its fields fast"),
        )),
        CircuitState::HalfOpen => problems.push((
            Level::Degraded,
            format!("{name}'s circuit breaker is testing whether it is back"),
        )),
        CircuitState::Closed => {}
    }
    if traffic.errors >= MIN_ERRORS && traffic.error_rate >= ERROR_RATE_DEGRADED {
        let level = if traffic.error_rate >= ERROR_RATE_DOWN {
            Level::Down
        } else {
            Level::Degraded
        };
        problems.push((
            level,
            format!(
                "{} of requests to {name} failed in the last {} min",
                percent(traffic.error_rate),
                traffic.window_seconds.div_ceil(60).max(1)
            ),
        ));
    }
    if traffic
        .p99_ms
        .is_some_and(|p99| p99 >= P99_DEGRADED.as_secs_f64() * 1000.0)
    {
        problems.push((
            Level::Degraded,
            format!(
                "{name} is slow: 1 in 100 requests takes {} or more",
                ms(traffic.p99_ms)
            ),
        ));
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.0));
    let level = problems.first().map_or(Level::Ok, |p| p.0);
    (level, problems.into_iter().map(|p| p.1).collect())
}

/// Looks at everything (asking every service for its `/status` at once) and judges it.
pub(crate) async fn platform_status(gateway: &Gateway) -> PlatformStatus {
    let now = Instant::now();
    let executor = &gateway.inner.executor;
    let metrics = gateway.metrics();
    let states = executor.subgraph_states();
    // Each subgraph is asked through its own client: the same TLS trust, client certificate
    // and pool as its GraphQL requests.
    let probes = join_all(states.iter().map(|s| probe(s.http, s.url))).await;
    let mut subgraphs = Vec::with_capacity(states.len());
    for (state, probe) in states.iter().zip(probes) {
        let requests = Traffic::from(state.metrics.window.summary(now));
        let (status, problems) = judge(state.name, state.circuit, &requests, &probe);
        let (reachable, service) = match probe {
            Probe::Report(report) => (true, Some(report)),
            Probe::NoReport => (true, None),
            Probe::Unreachable(_) => (false, None),
        };
        subgraphs.push(SubgraphStatus {
            name: state.name.to_owned(),
            url: state.url.to_string(),
            status,
            reachable,
            breaker: state.circuit.as_str(),
            inflight: state.inflight,
            requests,
            service,
            problems,
        });
    }
    let hits = metrics.plan_cache_hits.get();
    let misses = metrics.plan_cache_misses.get();
    let gateway_status = GatewayStatus {
        uptime_seconds: metrics.uptime().as_secs(),
        requests: metrics.window.summary(now).into(),
        plan_cache_entries: gateway.inner.cache.len(),
        plan_cache_hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        active_subscriptions: metrics.active_subscriptions.get(),
        reload: gateway.inner.shared.status(),
    };
    let status = subgraphs
        .iter()
        .map(|s| s.status)
        .max()
        .unwrap_or(Level::Ok);
    let down: Vec<&str> = subgraphs
        .iter()
        .filter(|s| s.status == Level::Down)
        .map(|s| s.name.as_str())
        .collect();
    let degraded: Vec<&str> = subgraphs
        .iter()
        .filter(|s| s.status == Level::Degraded)
        .map(|s| s.name.as_str())
        .collect();
    let headline = match (down.as_slice(), degraded.as_slice()) {
        ([], []) => "All systems normal".to_owned(),
        (down, degraded) => {
            let mut parts = Vec::new();
            if !down.is_empty() {
                parts.push(format!("{} {} down", down.join(", "), is_are(down.len())));
            }
            if !degraded.is_empty() {
                parts.push(format!(
                    "{} {} a look",
                    degraded.join(", "),
                    if degraded.len() == 1 { "needs" } else { "need" }
                ));
            }
            parts.join("; ")
        }
    };
    PlatformStatus {
        status,
        headline,
        gateway: gateway_status,
        subgraphs,
    }
}

fn is_are(n: usize) -> &'static str {
    if n == 1 {
        "is"
    } else {
        "are"
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ok:#1e7d32; --ok-bg:#e6f4ea; --deg:#8a5300; --deg-bg:#fff4d6; --down:#b3261e; --down-bg:#fde7e6; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; background: #fafafa; }
header { padding: 18px 28px; font-size: 30px; font-weight: 700; display: flex; gap: 16px; align-items: center; }
header.ok { background: var(--ok); color: #fff; } header.degraded { background: #f2a900; color: #1b1b1b; } header.down { background: var(--down); color: #fff; }
header small { font-size: 15px; font-weight: 400; margin-left: auto; opacity: .9; }
main { padding: 16px 28px; }
.strip { display: flex; gap: 28px; flex-wrap: wrap; margin-bottom: 14px; color: #444; }
.strip b { color: #1b1b1b; font-size: 18px; }
.strip.degraded { background: var(--deg-bg); padding: 8px 12px; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th { text-align: left; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #555; padding: 8px 12px; border-bottom: 2px solid #ddd; }
td { padding: 10px 12px; border-bottom: 1px solid #eee; vertical-align: top; }
td.name { font-size: 20px; font-weight: 700; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.ok td.state { color: var(--ok); } tr.degraded td.state { color: var(--deg); } tr.down td.state { color: var(--down); }
tr.degraded { background: var(--deg-bg); } tr.down { background: var(--down-bg); }
td.state { font-weight: 800; font-size: 18px; white-space: nowrap; }
.checks { display: flex; flex-wrap: wrap; gap: 6px; }
.check { border-radius: 4px; padding: 2px 8px; font-size: 14px; border: 1px solid #ccc; }
.check.ok { border-color: #9ccc9f; } .check.degraded { border-color: #e0b34d; background: #fff1c9; } .check.down { border-color: #e39a95; background: #fbd2cf; font-weight: 700; }
ul.problems { margin: 6px 0 0; padding-left: 18px; font-weight: 600; }
footer { padding: 0 28px 18px; color: #666; font-size: 13px; }
"#;

/// The view as one self-contained HTML page (no scripts, no external assets).
pub(crate) fn render_html(status: &PlatformStatus) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let g = &status.gateway;
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{symbol} {word} — Switchyard status</title><style>{STYLE}</style></head><body>\
         <header class=\"{class}\" id=\"overall\" data-status=\"{class}\"><span>{symbol}</span>\
         <span>{headline}</span><small>refreshes every 10 s · last 5 min</small></header><main>",
        symbol = status.status.symbol(),
        word = status.status.word(),
        class = status.status.class(),
        headline = escape(&status.headline),
    );
    let _ = write!(
        html,
        "<div class=\"strip\" id=\"gateway\"><span>Gateway up <b>{uptime}</b></span>\
         <span>Requests <b>{count}</b></span><span>Failed <b>{errors}</b></span>\
         <span>p50 <b>{p50}</b></span><span>p99 <b>{p99}</b></span>\
         <span>Plan cache hits <b>{hits}</b></span>\
         <span>Subscriptions <b>{subs}</b></span></div>",
        uptime = plain_duration(g.uptime_seconds),
        count = g.requests.count,
        errors = percent(g.requests.error_rate),
        p50 = ms(g.requests.p50_ms),
        p99 = ms(g.requests.p99_ms),
        hits = g.plan_cache_hit_ratio.map_or("–".to_owned(), percent),
        subs = g.active_subscriptions,
    );
    if let Some(reason) = &g.reload.refused {
        let _ = write!(
            html,
            "<div class=\"strip degraded\" id=\"reload\" data-status=\"refused\"><span>Reload \
             refused; the previous supergraph keeps serving: <b>{}</b></span></div>",
            escape(reason)
        );
    } else if g.reload.reloads > 0 {
        let _ = write!(
            html,
            "<div class=\"strip\" id=\"reload\" data-status=\"ok\"><span>Reloaded \
             <b>{}</b> times</span></div>",
            g.reload.reloads
        );
    }
    html.push_str(
        "<table><thead><tr><th>Service</th><th>State</th><th>Breaker</th><th>p50</th>\
         <th>p99</th><th>Failed</th><th>Requests</th><th>Stores and events</th></tr></thead><tbody>",
    );
    for s in &status.subgraphs {
        let class = s.status.class();
        let _ = write!(
            html,
            "<tr class=\"{class}\" id=\"subgraph-{id}\" data-status=\"{class}\">\
             <td class=\"name\">{name}</td><td class=\"state\">{symbol} {word}</td>\
             <td>{breaker}</td><td class=\"num\">{p50}</td><td class=\"num\">{p99}</td>\
             <td class=\"num\">{failed}</td><td class=\"num\">{count}</td><td>",
            id = escape(&s.name),
            name = escape(&s.name),
            symbol = s.status.symbol(),
            word = s.status.word(),
            breaker = s.breaker,
            p50 = ms(s.requests.p50_ms),
            p99 = ms(s.requests.p99_ms),
            failed = percent(s.requests.error_rate),
            count = s.requests.count,
        );
        html.push_str("<div class=\"checks\">");
        match &s.service {
            Some(report) => {
                for check in &report.checks {
                    let _ = write!(
                        html,
                        "<span class=\"check {}\" title=\"{}\">{} {}: {}</span>",
                        check.status.class(),
                        escape(&check.detail),
                        check.status.symbol(),
                        escape(&check.name),
                        escape(&check.detail),
                    );
                }
            }
            None if s.reachable => html.push_str(
                "<span class=\"check\">no store report (not a Switchyard service)</span>",
            ),
            None => {}
        }
        html.push_str("</div>");
        if !s.problems.is_empty() {
            html.push_str("<ul class=\"problems\">");
            for problem in &s.problems {
                let _ = write!(html, "<li>{}</li>", escape(problem));
            }
            html.push_str("</ul>");
        }
        html.push_str("</td></tr>");
    }
    html.push_str(
        "</tbody></table></main><footer>Green ● OK · Amber ▲ needs a look · Red ✖ down. \
         The same as JSON: <a href=\"/status.json\">/status.json</a> · \
         Prometheus: <a href=\"/metrics\">/metrics</a></footer></body></html>",
    );
    html
}

fn plain_duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(count: u64, errors: u64, p99_ms: Option<f64>) -> Traffic {
        Traffic {
            window_seconds: 300,
            count,
            errors,
            error_rate: if count == 0 {
                0.0
            } else {
                errors as f64 / count as f64
            },
            p50_ms: p99_ms.map(|v| v / 2.0),
            p99_ms,
        }
    }

    fn report(checks: &[(&str, Level, &str)]) -> Probe {
        Probe::Report(ServiceReport {
            status: checks.iter().map(|c| c.1).max().unwrap_or(Level::Ok),
            checks: checks
                .iter()
                .map(|(name, status, detail)| ServiceCheck {
                    name: (*name).to_owned(),
                    status: *status,
                    detail: (*detail).to_owned(),
                })
                .collect(),
            metrics_address: None,
        })
    }

    #[test]
    fn healthy_is_green_with_no_problems() {
        let (level, problems) = judge(
            "content",
            CircuitState::Closed,
            &traffic(1000, 2, Some(40.0)),
            &report(&[("database", Level::Ok, "reachable")]),
        );
        assert_eq!(level, Level::Ok);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn unreachable_or_open_breaker_is_red_and_says_why() {
        let (level, problems) = judge(
            "chat",
            CircuitState::Open,
            &traffic(10, 10, None),
            &Probe::Unreachable("connection refused".into()),
        );
        assert_eq!(level, Level::Down);
        assert!(problems[0].contains("chat cannot be reached (connection refused)"));
        assert!(problems
            .iter()
            .any(|p| p.contains("circuit breaker is open")));
        assert!(problems
            .iter()
            .any(|p| p.contains("100% of requests to chat failed")));
    }

    #[test]
    fn a_store_problem_reported_by_the_service_colours_its_row() {
        let (level, problems) = judge(
            "content",
            CircuitState::Closed,
            &traffic(100, 0, Some(20.0)),
            &report(&[
                ("database", Level::Ok, "reachable"),
                ("outbox", Level::Degraded, "40 waiting, oldest 3 min"),
            ]),
        );
        assert_eq!(level, Level::Degraded);
        assert_eq!(problems, ["content outbox: 40 waiting, oldest 3 min"]);
    }

    #[test]
    fn a_few_errors_are_not_a_trend_but_many_are() {
        let few = judge(
            "a",
            CircuitState::Closed,
            &traffic(4, 2, None),
            &Probe::NoReport,
        );
        assert_eq!(few.0, Level::Ok);
        let many = judge(
            "a",
            CircuitState::Closed,
            &traffic(100, 10, None),
            &Probe::NoReport,
        );
        assert_eq!(many.0, Level::Degraded);
        let slow = judge(
            "a",
            CircuitState::Closed,
            &traffic(100, 0, Some(1500.0)),
            &Probe::NoReport,
        );
        assert_eq!(slow.0, Level::Degraded);
        assert!(slow.1[0].contains("slow"), "{:?}", slow.1);
    }

    #[test]
    fn html_escapes_what_services_say() {
        let status = PlatformStatus {
            status: Level::Down,
            headline: "x <b>".into(),
            gateway: GatewayStatus {
                uptime_seconds: 5,
                requests: traffic(0, 0, None),
                plan_cache_entries: 0,
                plan_cache_hit_ratio: None,
                active_subscriptions: 0,
                reload: crate::ReloadStatus {
                    refused: Some("bad <supergraph>".into()),
                    ..crate::ReloadStatus::default()
                },
            },
            subgraphs: vec![SubgraphStatus {
                name: "chat".into(),
                url: "http://x/graphql".into(),
                status: Level::Down,
                reachable: false,
                breaker: "open",
                inflight: 0,
                requests: traffic(0, 0, None),
                service: None,
                problems: vec!["<script>alert(1)</script>".into()],
            }],
        };
        let html = render_html(&status);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("id=\"subgraph-chat\" data-status=\"down\""));
        assert!(html.contains("id=\"reload\" data-status=\"refused\""));
        assert!(html.contains("bad &lt;supergraph&gt;"));
    }
}
