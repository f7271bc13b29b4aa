//! The deployment files agree with each other and with the code.
//!
//! Parses `docker-compose.yml`, every manifest in `deploy/k8s/`, the `deploy/env/*.env.example`
//! files, the PostgreSQL init script and `schema/supergraph.graphql`, and checks what would
//! otherwise only fail at deploy time: ports, URLs, environment variable names, start order,
//! exposure and network isolation. Each test collects every problem it finds and reports them
//! together.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;
use switchyard_subgraph_kit::ConfigLoader;

/// The subgraph services of the platform, by the name the supergraph, compose and k8s use.
const SUBGRAPHS: [&str; 5] = ["auth", "profile", "content", "chat", "analytics"];

/// The serialized default `Config` of each service: its field names (what `<PREFIX>_<FIELD>`
/// can set) and the types of their values.
fn service_config_defaults() -> BTreeMap<&'static str, serde_json::Value> {
    fn value(config: impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(config).expect("a service Config serializes")
    }
    BTreeMap::from([
        ("auth", value(switchyard_auth::Config::default())),
        ("profile", value(switchyard_profile::Config::default())),
        ("content", value(switchyard_content::Config::default())),
        ("chat", value(switchyard_chat::Config::default())),
        ("analytics", value(switchyard_analytics::Config::default())),
    ])
}

/// Loads `service`'s real `Config` from `env` the way its binary does (kit `ConfigLoader`,
/// prefix + the contract aliases), so a value of the wrong type fails here.
fn load_service_config(service: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    let fields = &service_config_defaults()[service];
    let mut loader = ConfigLoader::new(&service.to_ascii_uppercase());
    for (alias, field) in ALIASES {
        if fields.get(field).is_some() {
            loader = loader.alias(alias, field);
        }
    }
    let loader = loader.env_vars(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let loaded = match service {
        "auth" => loader.load::<switchyard_auth::Config>().map(drop),
        "profile" => loader.load::<switchyard_profile::Config>().map(drop),
        "content" => loader.load::<switchyard_content::Config>().map(drop),
        "chat" => loader.load::<switchyard_chat::Config>().map(drop),
        "analytics" => loader.load::<switchyard_analytics::Config>().map(drop),
        other => panic!("unknown service {other}"),
    };
    loaded.map_err(|e| e.to_string())
}

/// Un-prefixed variables every service's `ConfigLoader` maps (contracts.md), by field.
const ALIASES: [(&str, &str); 6] = [
    ("DATABASE_URL", "database_url"),
    ("REDIS_URL", "redis_url"),
    ("JWKS_URL", "jwks_url"),
    ("NEO4J_URI", "neo4j_uri"),
    ("NEO4J_USER", "neo4j_user"),
    ("NEO4J_PASSWORD", "neo4j_password"),
];

/// Variables read outside the `Config` struct: key material (kit::crypto, auth's JWT keys).
fn secret_variables(service: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut keyring = |base: String| {
        names.push(format!("{base}_FILE"));
        names.push(base);
    };
    if service == "auth" {
        keyring("AUTH_JWT_SIGNING_KEYS".into());
    }
    if service == "auth" || service == "chat" {
        let prefix = service.to_ascii_uppercase();
        keyring(format!("{prefix}_DATA_KEYS"));
        keyring(format!("{prefix}_HASH_KEY"));
    }
    names
}

/// Variables every program understands.
const COMMON_VARIABLES: [&str; 1] = ["RUST_LOG"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every YAML document in `text` (separated by `---` lines), with `<<` merge keys applied.
fn yaml_documents(text: &str, what: &str) -> Vec<Value> {
    let mut documents = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else {
            let current = documents.last_mut().unwrap();
            current.push_str(line);
            current.push('\n');
        }
    }
    documents
        .iter()
        .map(|doc| {
            let mut value: Value = serde_yaml_ng::from_str(doc)
                .unwrap_or_else(|e| panic!("{what}: invalid YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{what}: merge keys: {e}"));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Problems found so far; the test fails listing all of them.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }

    fn add(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn finish(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} problem(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

fn str_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|seq| seq.iter().filter_map(str_of).collect())
        .unwrap_or_default()
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .map(|m| m.keys().filter_map(str_of).collect())
        .unwrap_or_default()
}

/// A URL split into the parts these checks compare.
#[derive(Debug)]
struct Url {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
}

fn parse_url(text: &str) -> Option<Url> {
    let (scheme, rest) = text.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, String::new()),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user.to_owned()), Some(pw.to_owned())),
            None => (Some(u.to_owned()), None),
        },
        None => (None, None),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
        None => (hostport.to_owned(), None),
    };
    Some(Url {
        scheme: scheme.to_owned(),
        user: user.filter(|u| !u.is_empty()),
        password,
        host,
        port,
        path,
    })
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The committed example for an env file a deployment refers to (the real one is git-ignored).
fn env_example(path: &str) -> Option<BTreeMap<String, String>> {
    let example = root().join(format!("{path}.example"));
    std::fs::read_to_string(example)
        .ok()
        .map(|t| parse_env_file(&t))
}

/// Which program a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Program {
    Gateway,
    Subgraph(String),
}

fn program_of(command: &[String]) -> Option<Program> {
    let binary = command.first()?;
    if binary == "switchyard" {
        return (command.get(1).map(String::as_str) == Some("gateway")).then_some(Program::Gateway);
    }
    let service = binary.strip_prefix("switchyard-")?;
    SUBGRAPHS
        .contains(&service)
        .then(|| Program::Subgraph(service.to_owned()))
}

/// The environment variable names a program understands, derived from its config code.
struct AcceptedNames {
    services: BTreeMap<&'static str, serde_json::Value>,
    gateway: BTreeSet<String>,
}

impl AcceptedNames {
    fn load() -> Self {
        AcceptedNames {
            services: service_config_defaults(),
            gateway: gateway_variables(),
        }
    }

    /// Why `name` is not understood by `program`, or `None` when it is.
    fn reject(&self, program: &Program, name: &str) -> Option<String> {
        if COMMON_VARIABLES.contains(&name) {
            return None;
        }
        match program {
            Program::Gateway => {
                let known = self.gateway.contains(name)
                    || name == "SWITCHYARD_CONFIG"
                    || name
                        .strip_prefix("SWITCHYARD_SUBGRAPH_URL_")
                        .is_some_and(|s| !s.is_empty());
                (!known).then(|| format!("the gateway does not read {name}"))
            }
            Program::Subgraph(service) => {
                let defaults = &self.services[service.as_str()];
                let fields = defaults
                    .as_object()
                    .expect("Config serializes to an object");
                let prefix = format!("{}_", service.to_ascii_uppercase());
                // The config file's name, read by the kit's loader rather than a field.
                if secret_variables(service).iter().any(|s| s == name)
                    || name == format!("{prefix}CONFIG")
                {
                    return None;
                }
                if let Some((_, field)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
                    return (!fields.contains_key(*field)).then(|| {
                        format!("{service}: alias {name} maps to `{field}`, which its Config lacks")
                    });
                }
                let Some(rest) = name.strip_prefix(&prefix) else {
                    return Some(format!(
                        "{service} reads only {prefix}* and the aliases, not {name}"
                    ));
                };
                // `__` separates nesting levels (kit ConfigLoader).
                let mut node = defaults;
                for part in rest.split("__") {
                    match node.get(part.to_ascii_lowercase()) {
                        Some(child) => node = child,
                        None => return Some(format!("{service}'s Config has no field for {name}")),
                    }
                }
                None
            }
        }
    }
}

/// `SWITCHYARD_*` names the gateway reads: the variables its config loader reads for each key
/// (`GatewayConfig::variables`) and the `env = "…"` attributes of the CLI, read from the
/// source so a rename there fails here.
fn gateway_variables() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = switchyard_gateway::GatewayConfig::variables()
        .into_values()
        .flatten()
        .collect();
    let cli = read("src/main.rs");
    for piece in cli.split("env = \"").skip(1) {
        if let Some((name, _)) = piece.split_once('"') {
            names.insert(name.to_owned());
        }
    }
    assert!(
        names.contains("SWITCHYARD_LISTEN") && names.contains("SWITCHYARD_SUPERGRAPH"),
        "could not read the gateway's variables from its source: {names:?}"
    );
    names
}

/// The subgraphs of `schema/supergraph.graphql` (name → routing URL), parsed by the gateway's
/// own supergraph loader. `None` (with a note) while the file does not exist yet, except in CI.
fn supergraph_subgraphs() -> Option<BTreeMap<String, String>> {
    let path = root().join("schema/supergraph.graphql");
    let Ok(sdl) = std::fs::read_to_string(&path) else {
        let note = format!("{} does not exist yet", path.display());
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{note}; the deployment files route to its subgraphs");
        }
        eprintln!("note: {note}; skipping the supergraph checks");
        return None;
    };
    let supergraph = switchyard_planner::Supergraph::parse(&sdl)
        .unwrap_or_else(|e| panic!("schema/supergraph.graphql does not load: {e}"));
    Some(
        supergraph
            .subgraphs()
            .iter()
            .map(|s| (s.name.clone(), s.url.clone()))
            .collect(),
    )
}

/// The subgraph URLs the deployments must serve: from the supergraph, or from the Config
/// defaults (`http://<name>:<default port>/graphql`) while the supergraph is missing.
fn routing_urls() -> BTreeMap<String, String> {
    supergraph_subgraphs().unwrap_or_else(|| {
        service_config_defaults()
            .iter()
            .map(|(name, defaults)| {
                let listen: SocketAddr = defaults["listen"].as_str().unwrap().parse().unwrap();
                (
                    (*name).to_owned(),
                    format!("http://{name}:{}/graphql", listen.port()),
                )
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// One compose service, with the environment it will really get (env files read from their
/// committed examples).
struct ComposeService {
    name: String,
    spec: Value,
    program: Option<Program>,
    env: BTreeMap<String, String>,
}

fn compose() -> (Value, Vec<ComposeService>) {
    let text = read("docker-compose.yml");
    let doc = yaml_documents(&text, "docker-compose.yml")
        .pop()
        .expect("docker-compose.yml is empty");
    let services = doc["services"]
        .as_mapping()
        .expect("docker-compose.yml has services")
        .iter()
        .map(|(name, spec)| {
            let name = str_of(name).unwrap();
            let command = match &spec["command"] {
                Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
                other => strings(other),
            };
            let is_ours = spec["build"]["dockerfile"].as_str() == Some("deploy/Dockerfile")
                || spec["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("switchyard"));
            let program = if is_ours { program_of(&command) } else { None };
            let mut env = BTreeMap::new();
            for file in env_files(spec) {
                env.extend(env_example(&file).unwrap_or_default());
            }
            match &spec["environment"] {
                Value::Mapping(m) => {
                    for (k, v) in m {
                        env.insert(str_of(k).unwrap(), str_of(v).unwrap_or_default());
                    }
                }
                Value::Sequence(seq) => {
                    for item in seq.iter().filter_map(str_of) {
                        let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                        env.insert(k.to_owned(), v.to_owned());
                    }
                }
                _ => {}
            }
            ComposeService {
                name,
                spec: spec.clone(),
                program,
                env,
            }
        })
        .collect();
    (doc, services)
}

fn env_files(spec: &Value) -> Vec<String> {
    match &spec["env_file"] {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(seq) => seq
            .iter()
            .filter_map(|item| str_of(item).or_else(|| str_of(&item["path"])))
            .collect(),
        _ => Vec::new(),
    }
}

fn listen_variable(program: &Program) -> String {
    match program {
        Program::Gateway => "SWITCHYARD_LISTEN".into(),
        Program::Subgraph(s) => format!("{}_LISTEN", s.to_ascii_uppercase()),
    }
}

/// Checks values of the variables that set Config fields: they must fit the field's type.
fn check_values(
    problems: &mut Problems,
    where_: &str,
    program: &Program,
    env: &BTreeMap<String, String>,
) {
    match program {
        Program::Gateway => {
            let mut config = switchyard_gateway::GatewayConfig::default();
            let vars = env
                .iter()
                .filter(|(k, _)| k.starts_with("SWITCHYARD_"))
                .map(|(k, v)| (k.clone(), v.clone()));
            if let Err(e) = config.apply_env(vars) {
                problems.add(format!("{where_}: {e}"));
            }
        }
        Program::Subgraph(service) => {
            if let Err(e) = load_service_config(service, env) {
                problems.add(format!("{where_}: {e}"));
            }
        }
    }
}

#[test]
fn compose_services_are_healthy_ordered_and_only_the_gateway_is_exposed() {
    let (doc, services) = compose();
    let mut problems = Problems::default();
    let by_name: BTreeMap<&str, &ComposeService> =
        services.iter().map(|s| (s.name.as_str(), s)).collect();

    for service in &services {
        let name = &service.name;
        let test = strings(&service.spec["healthcheck"]["test"]);
        problems.check(
            test.len() >= 2 && service.spec["healthcheck"]["disable"].as_bool() != Some(true),
            || format!("{name}: no health check"),
        );
        // Start order: every dependency must be healthy, not merely started.
        if let Some(deps) = service.spec["depends_on"].as_mapping() {
            for (dep, how) in deps {
                let dep = str_of(dep).unwrap();
                problems.check(by_name.contains_key(dep.as_str()), || {
                    format!("{name}: depends on unknown service {dep}")
                });
                problems.check(how["condition"].as_str() == Some("service_healthy"), || {
                    format!("{name}: depends_on {dep} without condition: service_healthy")
                });
            }
        } else {
            problems.check(service.spec["depends_on"].is_null(), || {
                format!("{name}: depends_on must be a map with conditions")
            });
        }
        let publishes = !service.spec["ports"].is_null();
        problems.check(
            !publishes || service.program == Some(Program::Gateway),
            || format!("{name}: publishes ports; only the gateway may"),
        );
    }

    let ours: Vec<&ComposeService> = services.iter().filter(|s| s.program.is_some()).collect();
    let gateways: Vec<_> = ours
        .iter()
        .filter(|s| s.program == Some(Program::Gateway))
        .collect();
    problems.check(gateways.len() == 1, || {
        format!("expected one gateway service, found {}", gateways.len())
    });

    for service in &ours {
        let name = &service.name;
        let program = service.program.clone().unwrap();
        // Config and health: LISTEN set, on all interfaces, probed on that port.
        let listen_var = listen_variable(&program);
        let listen = service
            .env
            .get(&listen_var)
            .and_then(|v| v.parse::<SocketAddr>().ok());
        let Some(listen) = listen else {
            problems.add(format!("{name}: {listen_var} missing or not host:port"));
            continue;
        };
        problems.check(listen.ip().is_unspecified(), || {
            format!("{name}: {listen_var}={listen} is not reachable from other containers")
        });
        let test = strings(&service.spec["healthcheck"]["test"]);
        let probe_ok = test.first().map(String::as_str) == Some("CMD")
            && test.get(1).map(String::as_str) == Some("http-probe")
            && test.get(2) == Some(&listen.port().to_string())
            && test.iter().any(|t| t == "/health")
            && test.iter().any(|t| t == "/ready");
        problems.check(probe_ok, || {
            format!(
                "{name}: health check must be [CMD, http-probe, {}, /health, /ready], got {test:?}",
                listen.port()
            )
        });

        if let Program::Subgraph(subgraph) = &program {
            problems.check(name == subgraph, || {
                format!("compose service {name} runs switchyard-{subgraph}; name it {subgraph} (the supergraph routes by that host name)")
            });
            // Stores in the service's URLs must be compose services it waits for.
            for var in [
                "DATABASE_URL",
                "REDIS_URL",
                "NEO4J_URI",
                "PROFILE_GRAPH_URL",
            ] {
                let Some(value) = service.env.get(var) else {
                    continue;
                };
                let Some(url) = parse_url(value) else {
                    problems.add(format!("{name}: {var} is not a URL: {value}"));
                    continue;
                };
                problems.check(by_name.contains_key(url.host.as_str()), || {
                    format!(
                        "{name}: {var} points at {}, not a compose service",
                        url.host
                    )
                });
                problems.check(
                    service.spec["depends_on"][url.host.as_str()]["condition"].as_str()
                        == Some("service_healthy"),
                    || format!("{name}: must depend on {} (service_healthy)", url.host),
                );
            }
            problems.check(service.env.contains_key("REDIS_URL"), || {
                format!("{name}: no REDIS_URL; the services share the Redis event bus")
            });
            if subgraph != "auth" {
                check_jwks(&mut problems, name, service.env.get("JWKS_URL"), &|host| {
                    by_name
                        .get(host)
                        .and_then(|s| s.env.get("AUTH_LISTEN"))
                        .and_then(|l| l.parse::<SocketAddr>().ok())
                        .map(|a| a.port())
                });
            }
        }
    }

    // The gateway waits for every subgraph it routes to, and routes to compose services.
    if let Some(gateway) = gateways.first() {
        for (subgraph, url) in routing_urls() {
            let Some(url) = parse_url(&url) else {
                problems.add(format!("supergraph: {subgraph} has no valid URL"));
                continue;
            };
            let target = by_name.get(url.host.as_str());
            problems.check(target.is_some(), || {
                format!(
                    "supergraph routes {subgraph} to host {}, which is no compose service",
                    url.host
                )
            });
            if let Some(target) = target {
                let port = target
                    .env
                    .get(&format!("{}_LISTEN", subgraph.to_ascii_uppercase()))
                    .and_then(|l| l.parse::<SocketAddr>().ok())
                    .map(|a| a.port());
                problems.check(port.is_some() && port == url.port, || {
                    format!(
                        "supergraph routes {subgraph} to port {:?}; compose {} listens on {port:?}",
                        url.port, target.name
                    )
                });
            }
            problems.check(
                gateway.spec["depends_on"][url.host.as_str()]["condition"].as_str()
                    == Some("service_healthy"),
                || format!("gateway must depend on {} (service_healthy)", url.host),
            );
        }
        // The supergraph file the gateway reads is mounted from the repository.
        let supergraph = gateway.env.get("SWITCHYARD_SUPERGRAPH").cloned();
        let mounted = strings(&gateway.spec["volumes"]).iter().any(|v| {
            v.starts_with("./schema/supergraph.graphql:")
                && supergraph
                    .as_ref()
                    .is_some_and(|s| v.contains(&format!(":{s}")))
        });
        problems.check(mounted, || {
            "gateway: SWITCHYARD_SUPERGRAPH must name the mounted ./schema/supergraph.graphql"
                .into()
        });
        // Published: exactly its listen port.
        let listen = gateway
            .env
            .get("SWITCHYARD_LISTEN")
            .and_then(|l| l.parse::<SocketAddr>().ok());
        let ports = strings(&gateway.spec["ports"]);
        problems.check(
            ports.len() == 1
                && listen.is_some_and(|l| ports[0].ends_with(&format!(":{}", l.port()))),
            || format!("gateway: ports {ports:?} must publish its listen port only"),
        );
    }

    // Networks: the backend is internal; only the gateway also joins a routable network.
    let networks = &doc["networks"];
    let internal = |net: &str| networks[net]["internal"].as_bool() == Some(true);
    for service in &services {
        let joined = match &service.spec["networks"] {
            Value::Mapping(_) => keys(&service.spec["networks"]),
            other => strings(other),
        };
        problems.check(!joined.is_empty(), || {
            format!("{}: joins no network explicitly", service.name)
        });
        for net in &joined {
            problems.check(networks[net.as_str()].is_mapping(), || {
                format!("{}: unknown network {net}", service.name)
            });
        }
        let routable = joined.iter().any(|n| !internal(n));
        let is_gateway = service.program == Some(Program::Gateway);
        problems.check(routable == is_gateway, || {
            format!(
                "{}: {}",
                service.name,
                if is_gateway {
                    "the gateway needs a non-internal network"
                } else {
                    "only the gateway may join a non-internal network"
                }
            )
        });
    }
    problems.finish("docker-compose.yml");
}

fn check_jwks(
    problems: &mut Problems,
    name: &str,
    value: Option<&String>,
    auth_port_of: &dyn Fn(&str) -> Option<u16>,
) {
    let Some(value) = value else {
        problems.add(format!(
            "{name}: no JWKS_URL (the default points at 127.0.0.1)"
        ));
        return;
    };
    let ok = parse_url(value).is_some_and(|url| {
        url.scheme == "http"
            && url.host == "auth"
            && url.path == "/.well-known/jwks.json"
            && url.port.is_some()
            && url.port == auth_port_of(&url.host)
    });
    problems.check(ok, || {
        format!("{name}: JWKS_URL {value} must be http://auth:<auth's port>/.well-known/jwks.json")
    });
}

#[test]
fn compose_environment_is_understood_by_each_program() {
    let (_, services) = compose();
    let accepted = AcceptedNames::load();
    let mut problems = Problems::default();
    let gitignore = read(".gitignore");
    problems.check(
        gitignore.lines().any(|l| l.trim() == "deploy/env/*.env"),
        || ".gitignore must ignore deploy/env/*.env (the real secrets)".into(),
    );
    for service in &services {
        for file in env_files(&service.spec) {
            problems.check(
                file.starts_with("deploy/env/") && file.ends_with(".env"),
                || {
                    format!(
                        "{}: env file {file} must be deploy/env/*.env (git-ignored)",
                        service.name
                    )
                },
            );
            problems.check(env_example(&file).is_some(), || {
                format!("{}: {file}.example is missing", service.name)
            });
        }
        let Some(program) = &service.program else {
            continue;
        };
        for name in service.env.keys() {
            if let Some(why) = accepted.reject(program, name) {
                problems.add(format!("compose {}: {why}", service.name));
            }
        }
        check_values(
            &mut problems,
            &format!("compose {}", service.name),
            program,
            &service.env,
        );
    }
    problems.finish("compose environment");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL init script and secrets

/// The services the init script creates a role + database for (its default list).
fn init_script_services() -> BTreeSet<String> {
    let script = read("deploy/postgres/init-databases.sh");
    let list = script
        .split("${SWITCHYARD_SQL_SERVICES:-")
        .nth(1)
        .and_then(|rest| rest.split_once('}'))
        .map(|(list, _)| list)
        .expect("init-databases.sh sets services=${SWITCHYARD_SQL_SERVICES:-…}");
    list.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn postgres_init_script_creates_a_database_and_role_per_sql_service() {
    let (_, services) = compose();
    let mut problems = Problems::default();
    let created = init_script_services();
    let postgres = services
        .iter()
        .find(|s| s.name == "postgres")
        .expect("compose has a postgres service");
    problems.check(
        strings(&postgres.spec["volumes"]).iter().any(|v| {
            v.starts_with("./deploy/postgres/init-databases.sh:/docker-entrypoint-initdb.d/")
        }),
        || {
            "postgres must mount deploy/postgres/init-databases.sh into /docker-entrypoint-initdb.d"
                .into()
        },
    );
    let mut used = BTreeSet::new();
    for service in services.iter().filter(|s| s.program.is_some()) {
        let Some(url) = service.env.get("DATABASE_URL").and_then(|u| parse_url(u)) else {
            continue;
        };
        if !url.scheme.starts_with("postgres") {
            continue;
        }
        let database = url.path.trim_start_matches('/').to_owned();
        let name = &service.name;
        problems.check(
            url.user.as_deref() == Some(name.as_str()) && database == *name,
            || format!("{name}: DATABASE_URL must use role {name} and database {name}"),
        );
        problems.check(created.contains(name), || {
            format!("init-databases.sh does not create the {name} database")
        });
        let var = format!("{}_DB_PASSWORD", name.to_ascii_uppercase());
        problems.check(postgres.env.contains_key(&var), || {
            format!("postgres env has no {var} for the {name} role")
        });
        used.insert(name.clone());
    }
    problems.check(used == created, || {
        format!("init-databases.sh creates {created:?}, compose services use {used:?}")
    });
    problems.finish("postgres init");
}

#[test]
fn generated_secrets_fill_every_example_and_agree_with_each_other() {
    // Run deploy/gen-secrets.sh on a scratch copy so the repository's deploy/env is untouched.
    let scratch =
        std::env::temp_dir().join(format!("switchyard-gen-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("env")).unwrap();
    std::fs::copy(
        root().join("deploy/gen-secrets.sh"),
        scratch.join("gen-secrets.sh"),
    )
    .unwrap();
    let run = || {
        Command::new("bash")
            .arg(scratch.join("gen-secrets.sh"))
            .output()
            .expect("running bash")
    };
    let first = run();
    assert!(first.status.success(), "gen-secrets.sh failed: {first:?}");
    let again = run();
    assert!(
        !again.status.success(),
        "a second run must refuse to overwrite the secrets"
    );

    let mut problems = Problems::default();
    let mut generated = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("deploy/env")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".env.example") else {
            continue;
        };
        let example = parse_env_file(&std::fs::read_to_string(&path).unwrap());
        let out = scratch.join("env").join(format!("{name}.env"));
        let Ok(text) = std::fs::read_to_string(&out) else {
            problems.add(format!("gen-secrets.sh does not write {name}.env"));
            continue;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
            problems.check(mode == 0o600, || {
                format!("{name}.env has mode {mode:o}, not 600")
            });
        }
        let values = parse_env_file(&text);
        let example_keys: BTreeSet<_> = example.keys().collect();
        let generated_keys: BTreeSet<_> = values.keys().collect();
        problems.check(example_keys == generated_keys, || {
            format!("{name}.env: generated {generated_keys:?}, example has {example_keys:?}")
        });
        generated.insert(name.to_owned(), values);
    }
    let _ = std::fs::remove_dir_all(&scratch);

    let get = |file: &str, key: &str| generated.get(file).and_then(|v| v.get(key)).cloned();
    for sql in init_script_services() {
        let url = get(&sql, "DATABASE_URL").and_then(|u| parse_url(&u));
        let password = get(
            "postgres",
            &format!("{}_DB_PASSWORD", sql.to_ascii_uppercase()),
        );
        problems.check(
            password.is_some() && url.as_ref().and_then(|u| u.password.clone()) == password,
            || format!("{sql}.env's DATABASE_URL password differs from postgres.env's"),
        );
    }
    let redis = get("bus", "REDIS_URL").and_then(|u| parse_url(&u));
    problems.check(
        redis.and_then(|u| u.password) == get("redis", "REDIS_PASSWORD"),
        || "bus.env's REDIS_URL password differs from redis.env's REDIS_PASSWORD".into(),
    );
    let graph = get("profile", "PROFILE_GRAPH_URL").and_then(|u| parse_url(&u));
    let graph_password = graph.and_then(|u| u.password);
    problems.check(
        graph_password.is_some() && graph_password == get("falkordb", "FALKORDB_PASSWORD"),
        || "profile.env's PROFILE_GRAPH_URL password differs from falkordb.env's".into(),
    );
    problems.check(
        get("falkordb", "REDIS_ARGS").is_some_and(|args| {
            args.contains(&format!(
                "--requirepass {}",
                get("falkordb", "FALKORDB_PASSWORD").unwrap_or_default()
            ))
        }),
        || "falkordb.env's REDIS_ARGS does not require FALKORDB_PASSWORD".into(),
    );
    // Key material: "kid:base64 of 32 bytes" lists and a base64 hash key.
    for (file, key) in [
        ("auth", "AUTH_JWT_SIGNING_KEYS"),
        ("auth", "AUTH_DATA_KEYS"),
        ("chat", "CHAT_DATA_KEYS"),
    ] {
        let value = get(file, key).unwrap_or_default();
        let ok = value
            .split_once(':')
            .is_some_and(|(kid, key)| !kid.is_empty() && key.len() == 44 && key.ends_with('='));
        problems.check(ok, || {
            format!("{file}.env: {key}={value} is not kid:base64(32 bytes)")
        });
    }
    for (file, key) in [("auth", "AUTH_HASH_KEY"), ("chat", "CHAT_HASH_KEY")] {
        let value = get(file, key).unwrap_or_default();
        problems.check(value.len() == 44 && value.ends_with('='), || {
            format!("{file}.env: {key} is not base64(32 bytes)")
        });
    }
    problems.finish("gen-secrets.sh");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// Every object in `deploy/k8s/*.yaml` except the kustomization, with the file it came from.
fn k8s_objects() -> Vec<(String, Value)> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("kustomization")
        })
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in yaml_documents(&text, &file) {
            objects.push((file.clone(), doc));
        }
    }
    objects
}

fn kind_name(object: &Value) -> (String, String) {
    (
        object["kind"].as_str().unwrap_or_default().to_owned(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((str_of(k)?, str_of(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a label selector (`matchLabels` + `matchExpressions`) selects `pod` labels.
fn selects(selector: &Value, pod: &BTreeMap<String, String>) -> bool {
    let wanted = labels(&selector["matchLabels"]);
    if !wanted.iter().all(|(k, v)| pod.get(k) == Some(v)) {
        return false;
    }
    let empty = Vec::new();
    let expressions = selector["matchExpressions"].as_sequence().unwrap_or(&empty);
    expressions.iter().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values = strings(&e["values"]);
        let have = pod.get(key);
        match e["operator"].as_str() {
            Some("In") => have.is_some_and(|v| values.contains(v)),
            Some("NotIn") => have.is_none_or(|v| !values.contains(v)),
            Some("Exists") => have.is_some(),
            Some("DoesNotExist") => have.is_none(),
            _ => false,
        }
    })
}

/// A Deployment's single container, as the checks see it.
struct Workload {
    name: String,
    pod_labels: BTreeMap<String, String>,
    program: Option<Program>,
    container: Value,
    env: BTreeMap<String, String>,
    port: Option<u16>,
    /// Secrets referenced with no `deploy/env/<x>.env.example` describing their keys.
    unknown_secrets: Vec<String>,
}

fn workloads(objects: &[(String, Value)]) -> Vec<Workload> {
    objects
        .iter()
        .filter(|(_, o)| o["kind"].as_str() == Some("Deployment"))
        .map(|(_, o)| {
            let name = kind_name(o).1;
            let pod = &o["spec"]["template"];
            let containers = pod["spec"]["containers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            let container = containers.first().cloned().unwrap_or(Value::Null);
            let mut command = strings(&container["command"]);
            command.extend(strings(&container["args"]));
            let mut env = BTreeMap::new();
            let mut unknown_secrets = Vec::new();
            for secret in container["envFrom"].as_sequence().into_iter().flatten() {
                let name = secret["secretRef"]["name"].as_str().unwrap_or_default();
                // Secret switchyard-<x> is made from deploy/env/<x>.env.
                let example = name
                    .strip_prefix("switchyard-")
                    .and_then(|file| env_example(&format!("deploy/env/{file}.env")));
                match example {
                    Some(vars) => env.extend(vars),
                    None => unknown_secrets.push(name.to_owned()),
                }
            }
            for var in container["env"].as_sequence().into_iter().flatten() {
                if let Some(key) = var["name"].as_str() {
                    env.insert(key.to_owned(), str_of(&var["value"]).unwrap_or_default());
                }
            }
            let port = container["ports"]
                .as_sequence()
                .and_then(|p| p.first())
                .and_then(|p| p["containerPort"].as_u64())
                .map(|p| p as u16);
            Workload {
                name,
                pod_labels: labels(&pod["metadata"]["labels"]),
                program: program_of(&command),
                container,
                env,
                port,
                unknown_secrets,
            }
        })
        .collect()
}

#[test]
fn kustomization_lists_every_manifest_and_the_supergraph_copy_is_current() {
    let mut problems = Problems::default();
    let kustomization = yaml_documents(&read("deploy/k8s/kustomization.yaml"), "kustomization")
        .pop()
        .unwrap();
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(root().join("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && !f.starts_with("kustomization"))
        .collect();
    problems.check(listed == present, || {
        format!("kustomization resources {listed:?} != manifests {present:?}")
    });
    let generated = kustomization["configMapGenerator"]
        .as_sequence()
        .and_then(|g| g.iter().find(|c| c["name"].as_str() == Some("supergraph")))
        .map(|c| strings(&c["files"]));
    problems.check(generated == Some(vec!["supergraph.graphql".into()]), || {
        "kustomization must generate ConfigMap supergraph from supergraph.graphql".into()
    });
    if let Ok(source) = std::fs::read_to_string(root().join("schema/supergraph.graphql")) {
        let copy = std::fs::read_to_string(root().join("deploy/k8s/supergraph.graphql"));
        problems.check(copy.ok().as_deref() == Some(source.as_str()), || {
            "deploy/k8s/supergraph.graphql differs from schema/supergraph.graphql: \
             cp schema/supergraph.graphql deploy/k8s/"
                .into()
        });
    }
    problems.finish("deploy/k8s/kustomization.yaml");
}

#[test]
fn k8s_deployments_services_and_autoscaling_match_the_supergraph() {
    let objects = k8s_objects();
    let accepted = AcceptedNames::load();
    let mut problems = Problems::default();
    let deployments = workloads(&objects);
    let services: Vec<&Value> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"].as_str() == Some("Service"))
        .collect();

    for (file, object) in &objects {
        let (kind, name) = kind_name(object);
        problems.check(
            object["apiVersion"].is_string() && !kind.is_empty() && !name.is_empty(),
            || format!("{file}: an object without apiVersion, kind or name"),
        );
    }

    let (_, compose_services) = compose();
    for workload in &deployments {
        let name = &workload.name;
        let Some(program) = &workload.program else {
            problems.add(format!(
                "Deployment {name}: runs no known switchyard program"
            ));
            continue;
        };
        for secret in &workload.unknown_secrets {
            problems.add(format!(
                "Deployment {name}: envFrom Secret {secret} is not switchyard-<x> with a deploy/env/<x>.env.example"
            ));
        }
        // The same program gets the same settings in compose and in Kubernetes.
        if let Some(twin) = compose_services
            .iter()
            .find(|s| s.program.as_ref() == Some(program))
        {
            let here: BTreeSet<&String> = workload.env.keys().collect();
            let there: BTreeSet<&String> = twin.env.keys().collect();
            problems.check(here == there, || {
                format!(
                    "Deployment {name} sets {here:?}; compose {} sets {there:?}",
                    twin.name
                )
            });
        }
        let Some(port) = workload.port else {
            problems.add(format!("Deployment {name}: no containerPort"));
            continue;
        };
        let listen_var = listen_variable(program);
        let listen = workload
            .env
            .get(&listen_var)
            .and_then(|v| v.parse::<SocketAddr>().ok());
        problems.check(
            listen.is_some_and(|l| l.port() == port && l.ip().is_unspecified()),
            || format!("Deployment {name}: {listen_var} must be 0.0.0.0:{port}"),
        );
        for (probe, path) in [("readinessProbe", "/ready"), ("livenessProbe", "/health")] {
            let get = &workload.container[probe]["httpGet"];
            let port_ok = get["port"].as_u64() == Some(port as u64)
                || get["port"].as_str() == workload.container["ports"][0]["name"].as_str();
            problems.check(get["path"].as_str() == Some(path) && port_ok, || {
                format!("Deployment {name}: {probe} must GET {path} on the container port")
            });
        }
        let resources = &workload.container["resources"];
        problems.check(
            resources["requests"]["cpu"].is_string() && resources["requests"]["memory"].is_string(),
            || format!("Deployment {name}: set resources.requests (cpu, memory)"),
        );
        let pod_security = &objects
            .iter()
            .find(|(_, o)| kind_name(o) == ("Deployment".into(), name.clone()))
            .unwrap()
            .1["spec"]["template"]["spec"]["securityContext"];
        problems.check(pod_security["runAsNonRoot"].as_bool() == Some(true), || {
            format!("Deployment {name}: pod must set runAsNonRoot")
        });
        for var in workload.env.keys() {
            if let Some(why) = accepted.reject(program, var) {
                problems.add(format!("Deployment {name}: {why}"));
            }
        }
        check_values(
            &mut problems,
            &format!("Deployment {name}"),
            program,
            &workload.env,
        );
        if let Program::Subgraph(subgraph) = program {
            problems.check(name == subgraph, || {
                format!("Deployment {name} runs switchyard-{subgraph}; name it {subgraph}")
            });
            if subgraph != "auth" {
                check_jwks(&mut problems, name, workload.env.get("JWKS_URL"), &|host| {
                    services
                        .iter()
                        .find(|s| s["metadata"]["name"].as_str() == Some(host))
                        .and_then(|s| s["spec"]["ports"][0]["port"].as_u64())
                        .map(|p| p as u16)
                });
            }
        }
    }

    // Services: each selects one Deployment and forwards to its container port.
    let mut service_ports = BTreeMap::new();
    for service in &services {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let selector = labels(&service["spec"]["selector"]);
        let targets: Vec<&Workload> = deployments
            .iter()
            .filter(|w| {
                !selector.is_empty() && selector.iter().all(|(k, v)| w.pod_labels.get(k) == Some(v))
            })
            .collect();
        problems.check(targets.len() == 1, || {
            format!(
                "Service {name} selects {} Deployments, expected 1",
                targets.len()
            )
        });
        problems.check(
            service["spec"]["type"].as_str().unwrap_or("ClusterIP") == "ClusterIP",
            || format!("Service {name}: expose through an Ingress, keep the Service ClusterIP"),
        );
        let port = &service["spec"]["ports"][0];
        let Some(target) = targets.first() else {
            continue;
        };
        let resolves = match &port["targetPort"] {
            Value::String(named) => target.container["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"].as_str() == Some(named)
                        && p["containerPort"].as_u64().map(|p| p as u16) == target.port
                }),
            Value::Number(n) => n.as_u64().map(|p| p as u16) == target.port,
            _ => port["port"].as_u64().map(|p| p as u16) == target.port,
        };
        problems.check(resolves, || {
            format!(
                "Service {name}: targetPort does not reach {}'s container port",
                target.name
            )
        });
        if let Some(p) = port["port"].as_u64() {
            service_ports.insert(name.to_owned(), p as u16);
        }
    }

    // Every subgraph of the supergraph: a Deployment and a Service at its routing URL.
    for (subgraph, url) in routing_urls() {
        let url = parse_url(&url);
        let host = url.as_ref().map(|u| u.host.clone()).unwrap_or_default();
        let deployment = deployments.iter().find(|w| w.name == host);
        problems.check(
            deployment.is_some_and(|w| w.program == Some(Program::Subgraph(subgraph.clone()))),
            || format!("no Deployment {host} running switchyard-{subgraph}"),
        );
        problems.check(
            service_ports.get(&host).copied() == url.as_ref().and_then(|u| u.port),
            || {
                format!(
                    "supergraph routes {subgraph} to {host}:{:?}; the k8s Service port is {:?}",
                    url.as_ref().and_then(|u| u.port),
                    service_ports.get(&host)
                )
            },
        );
    }

    // The gateway: stateless, at least 2 replicas, CPU autoscaling, the supergraph ConfigMap.
    let gateway = objects
        .iter()
        .find(|(_, o)| kind_name(o) == ("Deployment".into(), "gateway".into()))
        .map(|(_, o)| o);
    match gateway {
        None => problems.add("no gateway Deployment".into()),
        Some(gateway) => {
            problems.check(gateway["spec"]["replicas"].as_u64() >= Some(2), || {
                "gateway Deployment: replicas must be at least 2".into()
            });
            let uses_supergraph = gateway["spec"]["template"]["spec"]["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|v| v["configMap"]["name"].as_str() == Some("supergraph"));
            problems.check(uses_supergraph, || {
                "gateway Deployment must mount ConfigMap supergraph".into()
            });
        }
    }
    let hpa = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| o["kind"].as_str() == Some("HorizontalPodAutoscaler"));
    let hpa_ok = hpa.is_some_and(|h| {
        h["apiVersion"].as_str() == Some("autoscaling/v2")
            && h["spec"]["scaleTargetRef"]["kind"].as_str() == Some("Deployment")
            && h["spec"]["scaleTargetRef"]["name"].as_str() == Some("gateway")
            && h["spec"]["minReplicas"].as_u64() >= Some(2)
            && h["spec"]["metrics"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|m| m["resource"]["name"].as_str() == Some("cpu"))
    });
    problems.check(hpa_ok, || {
        "need an autoscaling/v2 HPA on Deployment gateway (minReplicas >= 2, CPU metric)".into()
    });
    problems.finish("deploy/k8s");
}

#[test]
fn network_policies_admit_only_the_gateway_to_subgraphs() {
    let objects = k8s_objects();
    let deployments = workloads(&objects);
    let policies: Vec<&Value> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"].as_str() == Some("NetworkPolicy"))
        .collect();
    let mut problems = Problems::default();

    let default_deny = policies.iter().any(|p| {
        p["spec"]["podSelector"]
            .as_mapping()
            .is_none_or(|m| m.is_empty())
            && strings(&p["spec"]["policyTypes"]).contains(&"Ingress".to_owned())
            && p["spec"]["ingress"]
                .as_sequence()
                .is_none_or(|s| s.is_empty())
    });
    problems.check(default_deny, || {
        "no default-deny ingress NetworkPolicy".into()
    });

    for workload in &deployments {
        let name = &workload.name;
        let port = workload.port.unwrap_or_default();
        let applying: Vec<&&Value> = policies
            .iter()
            .filter(|p| selects(&p["spec"]["podSelector"], &workload.pod_labels))
            .filter(|p| {
                !p["spec"]["podSelector"]
                    .as_mapping()
                    .is_none_or(|m| m.is_empty())
            })
            .collect();
        problems.check(!applying.is_empty(), || {
            format!("Deployment {name}: no NetworkPolicy selects its pods")
        });
        // Which Deployments (or "anyone") each rule admits, on which ports.
        let mut sources = BTreeSet::new();
        for policy in &applying {
            let policy_name = policy["metadata"]["name"].as_str().unwrap_or_default();
            for rule in policy["spec"]["ingress"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                let ports: Vec<u64> = rule["ports"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_u64())
                    .collect();
                problems.check(ports == [port as u64], || {
                    format!("NetworkPolicy {policy_name}: must open exactly port {port} of {name}")
                });
                let from = rule["from"].as_sequence().cloned().unwrap_or_default();
                if from.is_empty() {
                    sources.insert("<anyone>".to_owned());
                }
                for peer in &from {
                    if !peer["ipBlock"].is_null() || !peer["namespaceSelector"].is_null() {
                        sources.insert("<outside the namespace>".to_owned());
                    }
                    if peer["podSelector"].is_null() {
                        continue;
                    }
                    for other in &deployments {
                        if selects(&peer["podSelector"], &other.pod_labels) {
                            sources.insert(other.name.clone());
                        }
                    }
                }
            }
        }
        let expected: BTreeSet<String> = match &workload.program {
            Some(Program::Gateway) => ["<anyone>".to_owned()].into(),
            // The other subgraphs verify tokens against auth's JWKS.
            Some(Program::Subgraph(s)) if s == "auth" => deployments
                .iter()
                .filter(|w| w.name != "auth")
                .map(|w| w.name.clone())
                .collect(),
            _ => ["gateway".to_owned()].into(),
        };
        problems.check(sources == expected, || {
            format!("Deployment {name}: ingress admitted from {sources:?}, expected {expected:?}")
        });
    }
    problems.finish("deploy/k8s NetworkPolicies");
}

// ---------------------------------------------------------------------------------------------
// The image

#[test]
fn the_image_builds_every_program_the_deployments_run() {
    let dockerfile = read("deploy/Dockerfile");
    let (_, services) = compose();
    let objects = k8s_objects();
    let mut problems = Problems::default();
    let mut programs: BTreeSet<String> = services
        .iter()
        .filter_map(|s| s.program.as_ref())
        .map(|p| match p {
            Program::Gateway => "switchyard".to_owned(),
            Program::Subgraph(s) => format!("switchyard-{s}"),
        })
        .collect();
    for workload in workloads(&objects) {
        match workload.program {
            Some(Program::Gateway) => programs.insert("switchyard".into()),
            Some(Program::Subgraph(s)) => programs.insert(format!("switchyard-{s}")),
            None => false,
        };
    }
    // `cargo build … -p <package> …` and the `for bin in …; do cp` list.
    let tokens: Vec<&str> = dockerfile.split_whitespace().collect();
    let built: BTreeSet<&str> = tokens
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    let copied: BTreeSet<&str> = dockerfile
        .split("for bin in ")
        .nth(1)
        .and_then(|rest| rest.split_once("; do"))
        .map(|(list, _)| list.split_whitespace().filter(|t| *t != "\\").collect())
        .unwrap_or_default();
    for program in &programs {
        problems.check(built.contains(program.as_str()), || {
            format!("deploy/Dockerfile does not build package {program}")
        });
        problems.check(copied.contains(program.as_str()), || {
            format!("deploy/Dockerfile does not copy {program} into the image")
        });
    }
    // The gateway image runs the gateway alone: a build with the services linked in maps their
    // code into the gateway process (ARCHITECTURE.md, "Peak RSS").
    problems.check(
        dockerfile.contains("-p switchyard --no-default-features"),
        || "deploy/Dockerfile must build the gateway without the `stack` feature".into(),
    );
    problems.check(
        dockerfile.contains("COPY deploy/docker/http-probe /usr/local/bin/http-probe"),
        || "the image must carry http-probe for the compose health checks".into(),
    );
    problems.check(dockerfile.contains("\nUSER 10001"), || {
        "the image must run as a non-root user".into()
    });
    let ignore = read(".dockerignore");
    for must in ["target", ".git", "deploy/env"] {
        problems.check(ignore.lines().any(|l| l.trim() == must), || {
            format!(".dockerignore must exclude {must}")
        });
    }
    problems.finish("deploy/Dockerfile");
}

/// Serves `status` for `/health` and 503 for anything else, for `count` connections.
fn one_shot_server(count: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            // Read the whole head: answering early would reset the connection mid-request.
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let status = if request.starts_with("GET /health ") {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    (port, handle)
}

#[test]
fn http_probe_passes_only_when_every_path_answers_200() {
    let probe = root().join("deploy/docker/http-probe");
    let run = |port: u16, paths: &[&str]| {
        Command::new("bash")
            .arg(&probe)
            .arg(port.to_string())
            .args(paths)
            .output()
            .expect("running bash")
    };
    let (port, server) = one_shot_server(4);
    let healthy = run(port, &["/health"]);
    assert!(healthy.status.success(), "200 must pass: {healthy:?}");
    let default_path = run(port, &[]);
    assert!(
        default_path.status.success(),
        "the default path is /health: {default_path:?}"
    );
    let not_ready = run(port, &["/health", "/ready"]);
    assert!(
        !not_ready.status.success(),
        "a 503 on /ready must fail the probe"
    );
    assert!(
        String::from_utf8_lossy(&not_ready.stderr).contains("503"),
        "the failure names the status: {not_ready:?}"
    );
    server.join().unwrap();
    // Nothing listens on the port any more.
    let refused = run(port, &["/health"]);
    assert!(
        !refused.status.success(),
        "a closed port must fail the probe"
    );
}
