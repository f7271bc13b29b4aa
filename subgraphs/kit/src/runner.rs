//! One lifecycle for every service: serving, the outbox relay, event consumers, pruning and
//! shutdown, in one place instead of a copy per service.
//!
//! A service opens its own stores and builds its own schema and router; [`ServiceRunner`] runs
//! everything around them. What it does that each service used to do (or forgot to do):
//!
//! - The outbox relay ([`ServiceRunner::relay`]) runs until shutdown, then makes one last pass
//!   so events committed by the last requests leave now rather than at the next start.
//! - Consumers ([`ServiceRunner::consumer`]) join their group under the instance's stable name
//!   ([`crate::config::consumer_name`]), so a restarted instance takes back the events it had been
//!   handed instead of leaving them with a member that no longer exists.
//! - Published outbox rows and de-duplication records older than the retention are deleted at
//!   start and then hourly; without that both tables grow for ever.
//! - Shutdown stops every task whatever ended serving, waits for them, closes the pool, and
//!   exports the spans ended so far (waiting at most two seconds for the collector).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::AnyPool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::{outbox, EventBus, EventConsumer, EventError, EventHandler, OutboxRelay};
use crate::metrics::ServiceMetrics;
use crate::server;

/// How long published outbox rows and de-duplication records are kept: longer than any
/// redelivery can take (the Redis claim timeout is 30 s; outages of days are covered too), since
/// an event replayed after its record is gone would be processed again.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the runner prunes (also once at start, so a service restarted more often than
/// this still prunes).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long shutdown waits for the final outbox pass before giving up on it.
const FINAL_RELAY_TIMEOUT: Duration = Duration::from_secs(5);

type Task = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// Runs one service instance: its HTTP server, metrics listener, outbox relay, event consumers,
/// pruning and extra background tasks, and stops them all together.
pub struct ServiceRunner {
    service: String,
    pool: AnyPool,
    bus: EventBus,
    metrics: ServiceMetrics,
    consumer_name: String,
    relay: Option<OutboxRelay>,
    consumer_groups: Vec<String>,
    tasks: Vec<(&'static str, Task)>,
    retention: Duration,
    prune_every: Duration,
}

impl ServiceRunner {
    /// A runner for `service` (its name in metrics and in consumer names) over its SQL `pool`
    /// (outbox and de-duplication tables) and `bus`. Consumers join under
    /// `<service>-<hostname>` unless [`ServiceRunner::consumer_name`] says otherwise.
    pub fn new(service: &str, pool: AnyPool, bus: EventBus) -> Self {
        let metrics = ServiceMetrics::new(service);
        metrics.watch_database(pool.clone());
        ServiceRunner {
            service: service.to_owned(),
            consumer_name: crate::config::consumer_name(None, service),
            pool,
            bus,
            metrics,
            relay: None,
            consumer_groups: Vec::new(),
            tasks: Vec::new(),
            retention: RETENTION,
            prune_every: PRUNE_EVERY,
        }
    }

    /// Sets the configured consumer name (`<SERVICE>_CONSUMER_NAME`); empty or `None` keeps
    /// `<service>-<hostname>`. Call before [`ServiceRunner::consumer`].
    pub fn consumer_name(mut self, configured: Option<&str>) -> Self {
        self.consumer_name = crate::config::consumer_name(configured, &self.service);
        self
    }

    /// Sets how long published outbox rows and de-duplication records are kept, and how often
    /// they are pruned (tests shorten both).
    pub fn retention(mut self, keep: Duration, prune_every: Duration) -> Self {
        self.retention = keep;
        self.prune_every = prune_every;
        self
    }

    /// The service's metrics (for its router, probes and status lines).
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.metrics
    }

    /// The name this instance's consumers join their groups under.
    pub fn member_name(&self) -> &str {
        &self.consumer_name
    }

    /// Runs `relay` (this service publishes events): relayed until shutdown plus a final pass,
    /// its backlog in metrics and `/status`, its published rows pruned.
    pub fn relay(&mut self, relay: OutboxRelay) -> &mut Self {
        self.metrics.watch_outbox(self.pool.clone());
        self.relay = Some(relay.metrics(&self.metrics));
        self
    }

    /// Joins `consumer`'s group on the bus under this instance's stable name and runs it until
    /// shutdown; its lag in metrics and `/status`, its de-duplication records pruned.
    pub async fn consumer<H>(&mut self, consumer: EventConsumer<H>) -> Result<&mut Self, EventError>
    where
        H: EventHandler + 'static,
    {
        let group = consumer.group().to_owned();
        let subscription = self.bus.subscribe_as(&group, &self.consumer_name).await?;
        self.metrics.watch_consumer(self.bus.clone(), &group);
        let consumer = consumer.metrics(&self.metrics);
        self.consumer_groups.push(group);
        self.tasks.push((
            "event consumer",
            Box::new(move |stop| Box::pin(consumer.run(subscription, stop))),
        ));
        Ok(self)
    }

    /// Runs a service-specific background task (`run(stop)` must return once `stop` is
    /// cancelled); `name` labels it in errors.
    pub fn task<F, Fut>(&mut self, name: &'static str, run: F) -> &mut Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push((name, Box::new(move |stop| Box::pin(run(stop)))));
        self
    }

    /// Runs `erasure`'s finishing task: erasures a crashed run left started are finished at
    /// boot, new ones as the consumer starts them (see [`crate::erasure`]).
    pub fn erasure(&mut self, erasure: crate::erasure::Erasure) -> &mut Self {
        self.task("account erasure", move |stop| erasure.run(stop))
    }

    /// Serves `router` on `listener` (and the metrics listener on `metrics_listen`) and runs
    /// every task until `shutdown` is cancelled or serving fails; then stops the tasks, waits
    /// for them, relays what the last requests committed, closes the pool, and exports the
    /// last spans.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: axum::Router,
        metrics_listen: Option<SocketAddr>,
        shutdown: CancellationToken,
    ) -> io::Result<()> {
        if self.consumer_groups.is_empty() {
            // With no consumer lag to show it, a publish-only service reports the bus itself.
            self.metrics.watch_event_bus(self.bus.clone());
        }
        let metrics_task =
            server::serve_metrics(metrics_listen, &self.metrics, shutdown.clone()).await?;
        let mut running: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
        if let Some(relay) = &self.relay {
            running.push(("outbox relay", relay.spawn(shutdown.clone())));
        }
        for (name, task) in self.tasks {
            running.push((name, tokio::spawn(task(shutdown.clone()))));
        }
        let prune = Pruner {
            pool: self.pool.clone(),
            outbox: self.relay.is_some(),
            processed: !self.consumer_groups.is_empty(),
            keep: self.retention,
        };
        if prune.outbox || prune.processed {
            let (every, stop) = (self.prune_every, shutdown.clone());
            running.push(("pruning", tokio::spawn(prune.run(every, stop))));
        }

        let served = server::serve(listener, router, shutdown.clone().cancelled_owned()).await;
        // Whatever ended serving (shutdown or an accept error), the background work stops too.
        shutdown.cancel();
        let mut failed = None;
        for (name, task) in running {
            if let Err(e) = task.await {
                failed.get_or_insert(io::Error::other(format!("{name} task failed: {e}")));
            }
        }
        if let Some(task) = metrics_task {
            if let Err(e) = task.await {
                failed.get_or_insert(io::Error::other(format!("metrics listener failed: {e}")));
            }
        }
        if let Some(relay) = &self.relay {
            match tokio::time::timeout(FINAL_RELAY_TIMEOUT, relay.relay_once()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "final outbox relay pass failed"),
                Err(_) => tracing::warn!("final outbox relay pass timed out"),
            }
        }
        self.pool.close().await;
        // Last: the final relay pass and the consumers' last events have spans too. The export
        // thread dies with the process, so without this the last second's spans never leave;
        // bounded, so a collector that is down cannot hold the shutdown.
        self.metrics
            .tracer()
            .flush_within(switchyard_telemetry::trace::SHUTDOWN_FLUSH_TIMEOUT)
            .await;
        served?;
        failed.map_or(Ok(()), Err)
    }
}

/// Deletes what the service no longer needs from its event tables.
struct Pruner {
    pool: AnyPool,
    outbox: bool,
    processed: bool,
    keep: Duration,
}

impl Pruner {
    async fn run(self, every: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            self.once().await;
        }
    }

    async fn once(&self) {
        if self.outbox {
            match outbox::prune_published(&self.pool, self.keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned published outbox rows"),
                Err(e) => tracing::warn!(error = %e, "pruning the outbox failed"),
            }
        }
        if self.processed {
            match outbox::prune_processed(&self.pool, self.keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned processed-event records"),
                Err(e) => tracing::warn!(error = %e, "pruning processed-event records failed"),
            }
        }
    }
}
