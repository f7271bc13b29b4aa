//! Header rules: which client headers reach each subgraph (propagate by name or pattern, rename,
//! insert static values, remove) and which subgraph response headers reach the client
//! (`Cache-Control` merged so the most restrictive directive wins).

use http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL};
use serde::{Deserialize, Serialize};

/// A header name, or a pattern with `*` wildcards (`x-tenant-*`), matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    /// Exactly this header.
    Name(HeaderName),
    /// Every header the lower-case glob matches (`*` is any run of characters).
    Glob(Box<str>),
}

impl HeaderPattern {
    /// Parses a name or a `*` pattern.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.contains('*') {
            let valid = text
                .bytes()
                .all(|b| b == b'*' || HeaderName::from_bytes(&[b]).is_ok());
            if !valid {
                return Err(format!("invalid header pattern {text:?}"));
            }
            return Ok(HeaderPattern::Glob(text.into()));
        }
        HeaderName::from_bytes(text.as_bytes())
            .map(HeaderPattern::Name)
            .map_err(|_| format!("invalid header name {text:?}"))
    }

    /// The name or pattern as written (lower case).
    pub fn as_str(&self) -> &str {
        match self {
            HeaderPattern::Name(name) => name.as_str(),
            HeaderPattern::Glob(glob) => glob,
        }
    }

    /// Whether `name` is matched.
    pub fn matches(&self, name: &HeaderName) -> bool {
        match self {
            HeaderPattern::Name(own) => own == name,
            HeaderPattern::Glob(glob) => glob_match(glob.as_bytes(), name.as_str().as_bytes()),
        }
    }
}

/// `*`-only glob matching with backtracking to the last star (linear in practice).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// Headers the gateway manages itself or that belong to one connection: never copied by a
/// pattern, and an error to name in a rule. (`x-forwarded-for` always carries the client's
/// address, set by the gateway.)
fn reserved(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "accept"
            | "accept-encoding"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "x-forwarded-for"
    ) || name.starts_with("sec-websocket-")
}

/// One rule for the headers of subgraph requests; rules run in order on the outgoing set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHeaderRule {
    /// Copy the client's matching headers (replacing earlier values of the same name).
    Propagate {
        /// Which client headers.
        pattern: HeaderPattern,
        /// Send it under this name instead (single-name rules only).
        rename: Option<HeaderName>,
        /// Value sent when the client sent none (single-name rules only).
        default: Option<HeaderValue>,
    },
    /// Set a static header.
    Insert {
        /// The header.
        name: HeaderName,
        /// Its value.
        value: HeaderValue,
    },
    /// Drop matching headers set by earlier rules.
    Remove {
        /// Which headers.
        pattern: HeaderPattern,
    },
}

/// How values of one response header from several subgraph responses become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMerge {
    /// The first subgraph response's value.
    #[default]
    First,
    /// The last subgraph response's value.
    Last,
    /// Every distinct value.
    Append,
}

/// One rule for subgraph response headers passed back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeaderRule {
    /// Which response headers.
    pub pattern: HeaderPattern,
    /// How values from several fetches combine (`Cache-Control` is always merged
    /// conservatively instead).
    pub merge: ResponseMerge,
}

/// Header rules for all subgraphs (`[headers]`) or one (`[subgraphs.<name>.headers]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderRules {
    /// Rules for what subgraph requests carry.
    pub request: Vec<RequestHeaderRule>,
    /// Rules for which subgraph response headers reach the client.
    pub response: Vec<ResponseHeaderRule>,
}

/// The config file's form of [`HeaderRules`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileHeaderRules {
    #[serde(default)]
    request: Vec<FileRequestRule>,
    #[serde(default)]
    response: Vec<FileResponseRule>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRequestRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    propagate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    insert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remove: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileResponseRule {
    propagate: String,
    #[serde(default)]
    merge: Option<String>,
}

/// Rules are read in the file's form and compiled as they load (`value_env` is looked up in
/// the process environment then), so a bad rule is refused with its key named.
impl<'de> Deserialize<'de> for HeaderRules {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FileHeaderRules::deserialize(deserializer)?
            .compile(&|var| std::env::var(var).ok())
            .map_err(serde::de::Error::custom)
    }
}

/// Written back in the file's form, with `value_env` already replaced by its value: the config
/// loader layers the file and the environment over this form of the current settings.
impl Serialize for HeaderRules {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let request = self
            .request
            .iter()
            .map(|rule| match rule {
                RequestHeaderRule::Propagate {
                    pattern,
                    rename,
                    default,
                } => FileRequestRule {
                    propagate: Some(pattern.as_str().to_owned()),
                    rename: rename.as_ref().map(|n| n.as_str().to_owned()),
                    default: default.as_ref().map(text),
                    ..FileRequestRule::default()
                },
                RequestHeaderRule::Insert { name, value } => FileRequestRule {
                    insert: Some(name.as_str().to_owned()),
                    value: Some(text(value)),
                    ..FileRequestRule::default()
                },
                RequestHeaderRule::Remove { pattern } => FileRequestRule {
                    remove: Some(pattern.as_str().to_owned()),
                    ..FileRequestRule::default()
                },
            })
            .collect();
        let response = self
            .response
            .iter()
            .map(|rule| FileResponseRule {
                propagate: rule.pattern.as_str().to_owned(),
                merge: Some(
                    match rule.merge {
                        ResponseMerge::First => "first",
                        ResponseMerge::Last => "last",
                        ResponseMerge::Append => "append",
                    }
                    .to_owned(),
                ),
            })
            .collect();
        FileHeaderRules { request, response }.serialize(serializer)
    }
}

fn header_name(text: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(text.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {text:?}"))?;
    if reserved(name.as_str()) {
        return Err(format!(
            "header {name:?} is managed by the gateway and cannot be set by a rule"
        ));
    }
    Ok(name)
}

fn header_value(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| format!("invalid header value {text:?}"))
}

impl FileHeaderRules {
    /// Checks and compiles the rules; `env` looks up `value_env` variables.
    pub(crate) fn compile(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HeaderRules, String> {
        let mut rules = HeaderRules::default();
        for rule in self.request {
            rules.request.push(rule.compile(env)?);
        }
        for rule in self.response {
            let pattern = HeaderPattern::parse(&rule.propagate)?;
            if let HeaderPattern::Name(name) = &pattern {
                if reserved(name.as_str()) {
                    return Err(format!(
                        "response header {name:?} belongs to the gateway's own response"
                    ));
                }
            }
            let merge = match rule.merge.as_deref().map(str::trim) {
                None | Some("first") => ResponseMerge::First,
                Some("last") => ResponseMerge::Last,
                Some("append") => ResponseMerge::Append,
                Some(other) => {
                    return Err(format!(
                        "merge must be \"first\", \"last\" or \"append\", got {other:?}"
                    ))
                }
            };
            rules.response.push(ResponseHeaderRule { pattern, merge });
        }
        Ok(rules)
    }
}

impl FileRequestRule {
    fn compile(self, env: &dyn Fn(&str) -> Option<String>) -> Result<RequestHeaderRule, String> {
        let kinds = [&self.propagate, &self.insert, &self.remove]
            .iter()
            .filter(|k| k.is_some())
            .count();
        if kinds != 1 {
            return Err(
                "each request header rule needs exactly one of propagate, insert or remove"
                    .to_owned(),
            );
        }
        if let Some(propagate) = self.propagate {
            if self.value.is_some() || self.value_env.is_some() {
                return Err("value / value_env belong to insert rules".to_owned());
            }
            let pattern = HeaderPattern::parse(&propagate)?;
            let single = matches!(pattern, HeaderPattern::Name(_));
            if let HeaderPattern::Name(name) = &pattern {
                if reserved(name.as_str()) {
                    return Err(format!(
                        "header {name:?} is managed by the gateway and cannot be propagated"
                    ));
                }
            }
            if !single && (self.rename.is_some() || self.default.is_some()) {
                return Err(format!(
                    "rename and default need a single header name, not the pattern {propagate:?}"
                ));
            }
            return Ok(RequestHeaderRule::Propagate {
                pattern,
                rename: self.rename.as_deref().map(header_name).transpose()?,
                default: self.default.as_deref().map(header_value).transpose()?,
            });
        }
        if self.rename.is_some() || self.default.is_some() {
            return Err("rename / default belong to propagate rules".to_owned());
        }
        if let Some(insert) = self.insert {
            let name = header_name(&insert)?;
            let text = match (self.value, self.value_env) {
                (Some(value), None) => value,
                (None, Some(var)) => env(&var).ok_or_else(|| {
                    format!("insert {insert:?}: environment variable {var} is not set")
                })?,
                _ => {
                    return Err(format!(
                        "insert {insert:?} needs exactly one of value or value_env"
                    ))
                }
            };
            let mut value = header_value(&text)?;
            if is_secret(&name) {
                value.set_sensitive(true);
            }
            return Ok(RequestHeaderRule::Insert { name, value });
        }
        if self.value.is_some() || self.value_env.is_some() {
            return Err("value / value_env belong to insert rules".to_owned());
        }
        let remove = self.remove.expect("one kind is set");
        Ok(RequestHeaderRule::Remove {
            pattern: HeaderPattern::parse(&remove)?,
        })
    }
}

/// Headers whose values stay out of debug output.
fn is_secret(name: &HeaderName) -> bool {
    matches!(name.as_str(), "authorization" | "cookie" | "x-api-key")
}

/// Request rules from the `propagate_headers` list (names or patterns).
pub(crate) fn propagate_list(names: &[String]) -> Vec<RequestHeaderRule> {
    names
        .iter()
        .filter_map(|name| match HeaderPattern::parse(name) {
            Ok(pattern) => Some(RequestHeaderRule::Propagate {
                pattern,
                rename: None,
                default: None,
            }),
            Err(err) => {
                tracing::warn!(error = %err, "ignoring an entry of propagate_headers");
                None
            }
        })
        .collect()
}

/// The headers a subgraph request carries: `rules` applied in order to the client's `headers`,
/// then the client address (`x-forwarded-for`, set by the HTTP layer) whatever the rules did.
pub(crate) fn apply(
    rules: &[RequestHeaderRule],
    client: &HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for rule in rules {
        match rule {
            RequestHeaderRule::Propagate {
                pattern: HeaderPattern::Name(name),
                rename,
                default,
            } => {
                let target = rename.as_ref().unwrap_or(name);
                let mut values = client.get_all(name).iter().peekable();
                if values.peek().is_none() && default.is_none() {
                    continue;
                }
                out.retain(|(n, _)| n != target);
                if values.peek().is_none() {
                    out.extend(default.iter().map(|v| (target.clone(), v.clone())));
                } else {
                    out.extend(values.map(|v| (target.clone(), v.clone())));
                }
            }
            RequestHeaderRule::Propagate { pattern, .. } => {
                let mut replaced: Vec<&HeaderName> = Vec::new();
                for (name, value) in client {
                    if reserved(name.as_str()) || !pattern.matches(name) {
                        continue;
                    }
                    if !replaced.contains(&name) {
                        out.retain(|(n, _)| n != name);
                        replaced.push(name);
                    }
                    out.push((name.clone(), value.clone()));
                }
            }
            RequestHeaderRule::Insert { name, value } => {
                out.retain(|(n, _)| n != name);
                out.push((name.clone(), value.clone()));
            }
            RequestHeaderRule::Remove { pattern } => out.retain(|(n, _)| !pattern.matches(n)),
        }
    }
    let address = crate::http::X_FORWARDED_FOR;
    for value in client.get_all(&address) {
        out.push((address.clone(), value.clone()));
    }
    out
}

/// Whether any of `rules` wants response header `name`.
pub(crate) fn wanted(rules: &[ResponseHeaderRule], name: &HeaderName) -> bool {
    !reserved(name.as_str()) && rules.iter().any(|rule| rule.pattern.matches(name))
}

/// The response headers `rules` pass back, taken from one subgraph response.
pub(crate) fn capture(
    rules: &[ResponseHeaderRule],
    headers: &HeaderMap,
) -> Vec<(HeaderName, HeaderValue)> {
    if rules.is_empty() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|(name, _)| wanted(rules, name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Collects the passed-back headers of every fetch of one client request.
#[derive(Debug, Default)]
pub(crate) struct ResponseHeaders {
    out: HeaderMap,
    cache: Option<CacheControl>,
    /// Whether some fetch whose rules pass `Cache-Control` back came without one (or failed).
    uncached: bool,
}

impl ResponseHeaders {
    /// Adds one fetch's captured headers (`None`: the fetch failed) under `rules`.
    pub(crate) fn add(
        &mut self,
        rules: &[ResponseHeaderRule],
        captured: Option<&[(HeaderName, HeaderValue)]>,
    ) {
        if rules.is_empty() {
            return;
        }
        let captured = captured.unwrap_or_default();
        if wanted(rules, &CACHE_CONTROL) {
            let mut directives = captured
                .iter()
                .filter(|(name, _)| name == CACHE_CONTROL)
                .peekable();
            if directives.peek().is_none() {
                self.uncached = true;
            } else {
                let parsed = CacheControl::parse(directives.map(|(_, v)| v));
                self.cache = Some(match self.cache.take() {
                    Some(seen) => seen.most_restrictive(parsed),
                    None => parsed,
                });
            }
        }
        for (name, value) in captured {
            if name == CACHE_CONTROL {
                continue;
            }
            let merge = rules
                .iter()
                .find(|rule| rule.pattern.matches(name))
                .map_or(ResponseMerge::First, |rule| rule.merge);
            match merge {
                ResponseMerge::First => {
                    if !self.out.contains_key(name) {
                        self.out.insert(name.clone(), value.clone());
                    }
                }
                ResponseMerge::Last => {
                    self.out.insert(name.clone(), value.clone());
                }
                ResponseMerge::Append => {
                    if !self.out.get_all(name).iter().any(|v| v == value) {
                        self.out.append(name.clone(), value.clone());
                    }
                }
            }
        }
    }

    /// The headers for the client's response.
    pub(crate) fn finish(mut self) -> HeaderMap {
        let cache = match (self.cache, self.uncached) {
            (_, true) => Some(HeaderValue::from_static("no-store")),
            (Some(cache), false) => Some(cache.render()),
            (None, false) => None,
        };
        if let Some(value) = cache {
            self.out.insert(CACHE_CONTROL, value);
        }
        self.out
    }
}

/// The parts of a `Cache-Control` header that decide how long and by whom a response may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CacheControl {
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    must_revalidate: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

impl CacheControl {
    pub(crate) fn parse<'v>(values: impl Iterator<Item = &'v HeaderValue>) -> Self {
        let mut out = CacheControl::default();
        for value in values {
            let Ok(text) = value.to_str() else {
                out.no_store = true;
                continue;
            };
            for directive in text.split(',') {
                let directive = directive.trim().to_ascii_lowercase();
                let (key, arg) = match directive.split_once('=') {
                    Some((key, arg)) => (key.trim(), Some(arg.trim().trim_matches('"'))),
                    None => (directive.as_str(), None),
                };
                let seconds = arg.and_then(|a| a.parse::<u64>().ok());
                match key {
                    "no-store" => out.no_store = true,
                    "no-cache" => out.no_cache = true,
                    "private" => out.private = true,
                    "public" => out.public = true,
                    "must-revalidate" | "proxy-revalidate" => out.must_revalidate = true,
                    // An unreadable age is read as "do not keep".
                    "max-age" => out.max_age = Some(min_opt(out.max_age, seconds.unwrap_or(0))),
                    "s-maxage" => out.s_maxage = Some(min_opt(out.s_maxage, seconds.unwrap_or(0))),
                    _ => {}
                }
            }
        }
        out
    }

    /// What both responses allow: every restriction of either, the shorter lifetime.
    pub(crate) fn most_restrictive(self, other: Self) -> Self {
        // A response without max-age has no stated lifetime: the combination gets none either.
        let max_age = match (self.max_age, other.max_age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => Some(0),
        };
        let s_maxage = match (self.s_maxage, other.s_maxage) {
            (None, None) => None,
            (a, b) => Some(
                a.or(self.max_age)
                    .unwrap_or(0)
                    .min(b.or(other.max_age).unwrap_or(0)),
            ),
        };
        CacheControl {
            no_store: self.no_store || other.no_store,
            no_cache: self.no_cache || other.no_cache,
            private: self.private || other.private,
            public: self.public && other.public,
            must_revalidate: self.must_revalidate || other.must_revalidate,
            max_age,
            s_maxage,
        }
    }

    pub(crate) fn render(&self) -> HeaderValue {
        if self.no_store {
            return HeaderValue::from_static("no-store");
        }
        let mut parts: Vec<String> = Vec::new();
        if self.no_cache {
            parts.push("no-cache".into());
        }
        if self.private {
            parts.push("private".into());
        } else if self.public {
            parts.push("public".into());
        }
        parts.push(format!("max-age={}", self.max_age.unwrap_or(0)));
        if let (Some(s), false) = (self.s_maxage, self.private) {
            parts.push(format!("s-maxage={s}"));
        }
        if self.must_revalidate {
            parts.push("must-revalidate".into());
        }
        HeaderValue::from_str(&parts.join(", ")).expect("directives are ASCII")
    }
}

fn min_opt(current: Option<u64>, new: u64) -> u64 {
    current.map_or(new, |c| c.min(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml_text: &str) -> Result<HeaderRules, String> {
        let file: FileHeaderRules = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        file.compile(&|var| (var == "API_KEY").then(|| "s3cret".to_owned()))
    }

    fn client(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn pairs(list: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn globs_match_header_names() {
        assert!(glob_match(b"x-tenant-*", b"x-tenant-id"));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"x-*-id", b"x-a-b-id"));
        assert!(!glob_match(b"x-*-id", b"x-a-b-idx"));
        assert!(!glob_match(b"x-tenant-*", b"x-tenan"));
        assert!(glob_match(b"x-**", b"x-"));
    }

    #[test]
    fn request_rules_run_in_order() {
        let rules = rules(
            r#"
            request = [
              { propagate = "X-Tenant-*" },
              { propagate = "x-old", rename = "x-new" },
              { propagate = "x-locale", default = "en" },
              { propagate = "*" },
              { remove = "x-secret*" },
              { insert = "x-gateway", value = "switchyard" },
              { insert = "x-api-key", value_env = "API_KEY" },
            ]
            "#,
        )
        .unwrap();
        let out = apply(
            &rules.request,
            &client(&[
                ("x-tenant-id", "7"),
                ("x-old", "o"),
                ("x-secret-token", "t"),
                ("host", "evil"),
                ("content-length", "5"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-gateway", "spoofed"),
            ]),
        );
        assert_eq!(
            pairs(&out),
            [
                ("x-new", "o"),
                ("x-locale", "en"),
                ("x-tenant-id", "7"),
                ("x-old", "o"),
                ("x-gateway", "switchyard"),
                ("x-api-key", "s3cret"),
                ("x-forwarded-for", "10.0.0.1"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (text, expected) in [
            (
                r#"request = [{ propagate = "host" }]"#,
                "managed by the gateway",
            ),
            (
                r#"request = [{ insert = "content-length", value = "1" }]"#,
                "managed",
            ),
            (
                r#"request = [{ propagate = "x-*", rename = "y" }]"#,
                "single header name",
            ),
            (r#"request = [{ insert = "x-a" }]"#, "value or value_env"),
            (
                r#"request = [{ insert = "x-a", value_env = "NOPE" }]"#,
                "NOPE is not set",
            ),
            (
                r#"request = [{ remove = "x-a", insert = "x-b", value = "1" }]"#,
                "exactly one",
            ),
            (
                r#"request = [{ propagate = "bad header" }]"#,
                "invalid header",
            ),
            (
                r#"response = [{ propagate = "x-a", merge = "sum" }]"#,
                "merge must be",
            ),
            (r#"request = [{ drop = "x" }]"#, "unknown field"),
        ] {
            let err = rules(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    fn cache(values: &[&str]) -> CacheControl {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        CacheControl::parse(values.iter())
    }

    #[test]
    fn cache_control_merges_to_the_most_restrictive() {
        let merged = cache(&["public, max-age=600, s-maxage=900"])
            .most_restrictive(cache(&["public, max-age=60"]));
        assert_eq!(merged.render(), "public, max-age=60, s-maxage=60");
        let merged =
            cache(&["public, max-age=600"]).most_restrictive(cache(&["private, max-age=300"]));
        assert_eq!(merged.render(), "private, max-age=300");
        let merged = cache(&["max-age=600"]).most_restrictive(cache(&["no-store"]));
        assert_eq!(merged.render(), "no-store");
        let merged = cache(&["max-age=600, must-revalidate"])
            .most_restrictive(cache(&["no-cache, max-age=900"]));
        assert_eq!(merged.render(), "no-cache, max-age=600, must-revalidate");
        let merged = cache(&["public, max-age=600"]).most_restrictive(cache(&["public"]));
        assert_eq!(merged.render(), "public, max-age=0");
        assert_eq!(cache(&["max-age=soon"]).render(), "max-age=0");
    }

    #[test]
    fn response_headers_pass_back_per_rule() {
        let rules = rules(
            r#"
            response = [
              { propagate = "cache-control" },
              { propagate = "x-served-by", merge = "append" },
              { propagate = "x-version", merge = "last" },
              { propagate = "x-region" },
            ]
            "#,
        )
        .unwrap()
        .response;
        let first = capture(
            &rules,
            &client(&[
                ("cache-control", "max-age=60"),
                ("x-served-by", "a"),
                ("x-version", "1"),
                ("x-region", "eu"),
                ("x-other", "no"),
                ("content-type", "application/json"),
            ]),
        );
        assert_eq!(first.len(), 4);
        let second = capture(
            &rules,
            &client(&[
                ("cache-control", "max-age=30, private"),
                ("x-served-by", "b"),
                ("x-version", "2"),
                ("x-region", "us"),
            ]),
        );
        let mut merged = ResponseHeaders::default();
        merged.add(&rules, Some(&first));
        merged.add(&rules, Some(&second));
        let out = merged.finish();
        assert_eq!(out["cache-control"], "private, max-age=30");
        let served: Vec<_> = out.get_all("x-served-by").iter().collect();
        assert_eq!(served, ["a", "b"]);
        assert_eq!(out["x-version"], "2");
        assert_eq!(out["x-region"], "eu");
        assert!(!out.contains_key("x-other"));

        // A fetch without Cache-Control (or a failed one) makes the whole response uncacheable.
        let mut merged = ResponseHeaders::default();
        merged.add(&rules, Some(&first));
        merged.add(&rules, None);
        assert_eq!(merged.finish()["cache-control"], "no-store");
        // No rules: nothing is passed back.
        let mut merged = ResponseHeaders::default();
        merged.add(&[], Some(&first));
        assert!(merged.finish().is_empty());
    }
}
