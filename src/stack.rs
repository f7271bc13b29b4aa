//! The platform stack: the five services, each on its own loopback port with its own store under
//! one data directory, the supergraph composed from their schemas, and the gateway in front.
//!
//! `switchyard dev` runs it, and the end-to-end tests in `tests/` drive it (including stopping and
//! restarting one service to check failure isolation). Services still talk to each other only
//! through the gateway and the event bus; sharing a process changes nothing about that: each one
//! opens its own store and nobody is handed another's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use switchyard_compose::SubgraphSource;
use switchyard_gateway::{Gateway, GatewayConfig};
use switchyard_subgraph_kit::EventBus;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The platform's services, in start order (auth first: the others verify its tokens).
pub const SERVICES: [&str; 5] = ["auth", "profile", "content", "chat", "analytics"];

/// How to run the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Root of every service's data (`<data_dir>/<service>/`).
    pub data_dir: PathBuf,
    /// Where the gateway listens (port 0 picks a free port).
    pub gateway_listen: SocketAddr,
    /// Gateway settings (its `listen` is replaced by `gateway_listen`).
    pub gateway: GatewayConfig,
    /// Per-service `database_url` overrides (e.g. `auth` → a PostgreSQL URL).
    pub database_urls: BTreeMap<String, String>,
    /// Redis for the event bus; `None` uses the in-process bus.
    pub redis_url: Option<String>,
    /// OTLP/HTTP endpoint every service exports traces to (the gateway's is in `gateway`);
    /// `None` leaves each service's own setting (environment) in force.
    pub otlp_endpoint: Option<String>,
}

impl StackOptions {
    /// Embedded defaults: everything under `data_dir`, gateway on `gateway_listen`, its
    /// metrics listener on a free loopback port.
    pub fn embedded(data_dir: impl Into<PathBuf>, gateway_listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            gateway_listen,
            gateway: GatewayConfig {
                metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                ..GatewayConfig::default()
            },
            database_urls: BTreeMap::new(),
            redis_url: None,
            otlp_endpoint: None,
        }
    }
}

/// One service as the stack runs it.
struct RunningService {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<Result<()>>>,
}

/// A running stack. Dropping it without [`Stack::shutdown`] aborts the tasks.
pub struct Stack {
    options: StackOptions,
    bus: EventBus,
    gateway: Gateway,
    services: BTreeMap<&'static str, RunningService>,
    gateway_addr: SocketAddr,
    gateway_metrics_addr: Option<SocketAddr>,
    gateway_stop: CancellationToken,
    gateway_task: JoinHandle<std::io::Result<()>>,
    supergraph: String,
}

impl Stack {
    /// Starts every service, composes the supergraph from their SDLs and starts the gateway.
    pub async fn start(options: StackOptions) -> Result<Stack> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating data directory {}", options.data_dir.display()))?;
        // The gateway's port first: a second `switchyard dev` on the same address stops here,
        // before its services open stores the first one holds (the search index's lock).
        let gateway_listener = TcpListener::bind(options.gateway_listen)
            .await
            .map_err(|e| gateway_bind_error(options.gateway_listen, e))?;
        let bus = EventBus::from_redis_url(options.redis_url.as_deref())
            .await
            .context("connecting the event bus")?;

        // Bind every port first: services learn each other's URLs (the JWKS) before any starts.
        let mut listeners = Vec::new();
        for name in SERVICES {
            let listener = TcpListener::bind(("127.0.0.1", 0))
                .await
                .with_context(|| format!("binding a port for {name}"))?;
            listeners.push((name, listener));
        }
        let auth_addr = listeners[0].1.local_addr()?;
        let jwks_url = format!("http://{auth_addr}/.well-known/jwks.json");

        // Until the stack is assembled, a failure must not leave earlier services running.
        let mut stack_services = StartedServices::default();
        let mut sources = Vec::new();
        for (name, listener) in listeners {
            let addr = listener.local_addr()?;
            let stop = CancellationToken::new();
            let task = start_service(name, &options, &bus, &jwks_url, listener, stop.clone())
                .await
                .with_context(|| format!("starting the {name} service"))?;
            tracing::info!(service = name, "subgraph on http://{addr}/graphql");
            sources.push(SubgraphSource::new(
                name,
                format!("http://{addr}/graphql"),
                service_sdl(name),
            ));
            stack_services.0.insert(
                name,
                RunningService {
                    addr,
                    stop,
                    task: Some(task),
                },
            );
        }

        let supergraph = switchyard_compose::compose(&sources)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("composing the services' schemas")?
            .supergraph_sdl;
        let mut config = options.gateway.clone();
        config.listen = options.gateway_listen;
        let gateway = Gateway::from_supergraph_sdl(&supergraph, config)
            .context("loading the composed supergraph")?;
        let gateway_addr = gateway_listener.local_addr()?;
        let gateway_stop = CancellationToken::new();
        let mut gateway_metrics_addr = None;
        if let Some(addr) = gateway.config().metrics_listen {
            let metrics = TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "gateway metrics listener on {addr} (set metrics_listen / \
                     SWITCHYARD_METRICS_LISTEN to another address, or to `off`)"
                )
            })?;
            gateway_metrics_addr = Some(metrics.local_addr()?);
            tokio::spawn(switchyard_gateway::serve_metrics(
                metrics,
                gateway.clone(),
                gateway_stop.clone().cancelled_owned(),
            ));
        }
        let gateway_task = tokio::spawn(switchyard_gateway::serve(
            gateway_listener,
            gateway.clone(),
            gateway_stop.clone().cancelled_owned(),
        ));
        Ok(Stack {
            options,
            bus,
            gateway,
            services: std::mem::take(&mut stack_services.0),
            gateway_addr,
            gateway_metrics_addr,
            gateway_stop,
            gateway_task,
            supergraph,
        })
    }

    /// The gateway's GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.gateway_addr)
    }

    /// The gateway's metrics listener (`/metrics`, `/status`), when it has one.
    pub fn gateway_metrics_addr(&self) -> Option<SocketAddr> {
        self.gateway_metrics_addr
    }

    /// The running gateway (shared: settings changed through it apply at once).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The gateway's address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// A service's own GraphQL endpoint (behind the gateway; for diagnostics and tests).
    pub fn service_url(&self, name: &str) -> Option<String> {
        self.services
            .get(name)
            .map(|s| format!("http://{}/graphql", s.addr))
    }

    /// The supergraph composed at start-up.
    pub fn supergraph(&self) -> &str {
        &self.supergraph
    }

    /// The event bus the services share.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Stops one service (its port then refuses connections) and waits until it has drained.
    pub async fn stop_service(&mut self, name: &str) -> Result<()> {
        let Some(service) = self.services.get_mut(name) else {
            bail!("no service named {name}");
        };
        service.stop.cancel();
        if let Some(task) = service.task.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(10), task).await {
                Ok(joined) => joined.context("service task panicked")??,
                Err(_) => bail!("{name} did not stop within 10 s"),
            }
        }
        Ok(())
    }

    /// Starts a stopped service again on the same port with the same store.
    pub async fn restart_service(&mut self, name: &str) -> Result<()> {
        let jwks_url = format!(
            "http://{}/.well-known/jwks.json",
            self.services["auth"].addr
        );
        let Some((&key, service)) = self.services.get_key_value(name) else {
            bail!("no service named {name}");
        };
        if service.task.is_some() {
            bail!("{name} is running");
        }
        let addr = service.addr;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("rebinding {addr} for {name}"))?;
        let stop = CancellationToken::new();
        let task = start_service(
            key,
            &self.options,
            &self.bus,
            &jwks_url,
            listener,
            stop.clone(),
        )
        .await?;
        let service = self.services.get_mut(name).expect("checked above");
        service.stop = stop;
        service.task = Some(task);
        Ok(())
    }

    /// Stops the gateway, then every service, letting in-flight requests finish.
    pub async fn shutdown(mut self) -> Result<()> {
        self.gateway_stop.cancel();
        let _ = (&mut self.gateway_task).await;
        let names: Vec<&'static str> = self.services.keys().copied().collect();
        let mut first_error = None;
        for name in names.into_iter().rev() {
            if let Err(e) = self.stop_service(name).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.gateway_task.abort();
        abort_all(&mut self.services);
    }
}

/// Services started so far by [`Stack::start`]; stopped if start-up fails half way.
#[derive(Default)]
struct StartedServices(BTreeMap<&'static str, RunningService>);

impl Drop for StartedServices {
    fn drop(&mut self) {
        abort_all(&mut self.0);
    }
}

fn abort_all(services: &mut BTreeMap<&'static str, RunningService>) {
    for service in services.values_mut() {
        service.stop.cancel();
        if let Some(task) = service.task.take() {
            task.abort();
        }
    }
}

/// Why the gateway's address could not be bound, in the words a user needs: a taken port is
/// almost always a Switchyard already running.
fn gateway_bind_error(addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!(
            "{addr} is already in use: is Switchyard already running on :{}? Stop it, or pick \
             another address with --listen",
            addr.port()
        )
    } else {
        anyhow::Error::new(e).context(format!("listening on {addr}"))
    }
}

/// The data directory of one service.
pub fn service_data_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// A service's federation SDL, as its `--print-schema` prints it.
pub fn service_sdl(name: &str) -> String {
    match name {
        "auth" => switchyard_auth::sdl(),
        "profile" => switchyard_profile::sdl(),
        "content" => switchyard_content::sdl(),
        "chat" => switchyard_chat::sdl(),
        "analytics" => switchyard_analytics::sdl(),
        other => unreachable!("unknown service {other}"),
    }
}

/// Opens one service's stores and spawns its server; the returned task ends after `stop`.
async fn start_service(
    name: &'static str,
    options: &StackOptions,
    bus: &EventBus,
    jwks_url: &str,
    listener: TcpListener,
    stop: CancellationToken,
) -> Result<JoinHandle<Result<()>>> {
    let data_dir = service_data_dir(&options.data_dir, name);
    let database_url = options.database_urls.get(name).cloned();
    let redis_url = options.redis_url.clone();
    let listen = listener.local_addr()?;
    // Each arm is the same recipe over a different crate: its own config (defaults, then the
    // environment, so `AUTH_DATABASE_URL=postgres://… cargo run` works), with the stack's ports,
    // data directories and URLs laid over it.
    macro_rules! launch {
        // `$jwks` names the config field that points at auth's JWKS (auth has none).
        ($krate:ident $(, $jwks:ident)?) => {{
            let mut config = $krate::Config::load(None)?;
            config.listen = listen;
            // Metrics listeners on free loopback ports (each service's `/status` says which),
            // unless the environment names an address or `off`.
            if std::env::var(format!("{}_METRICS_LISTEN", name.to_ascii_uppercase())).is_err() {
                config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
            }
            config.data_dir = data_dir;
            if database_url.is_some() {
                config.database_url = database_url;
            }
            if redis_url.is_some() {
                config.redis_url = redis_url;
            }
            if options.otlp_endpoint.is_some() {
                config.otlp_endpoint = options.otlp_endpoint.clone();
            }
            $(config.$jwks = jwks_url.to_owned();)?
            let service = $krate::Service::open(config, bus.clone()).await?;
            tokio::spawn(async move { service.serve(listener, stop).await })
        }};
    }
    let task = match name {
        "auth" => launch!(switchyard_auth),
        "profile" => launch!(switchyard_profile, jwks_url),
        "content" => launch!(switchyard_content, jwks_url),
        "chat" => launch!(switchyard_chat, jwks_url),
        "analytics" => launch!(switchyard_analytics, jwks_url),
        other => bail!("unknown service {other}"),
    };
    Ok(task)
}
