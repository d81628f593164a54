//! Starting and stopping the HTTP server, and what runs once at start: the admin from the
//! environment and the first-start demo catalog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::AppContext;
use crate::config::Config;
use crate::domain::catalog::generator::CatalogGenerator;
use crate::domain::clock::{Clock, SystemClock};
use crate::http;
use crate::resolvers::build_schema;

/// Seed of the first-start demo catalog, so every fresh install shows the same products.
pub const DEMO_SEED: u64 = 42;

pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: AppContext,
    shutdown: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets running requests finish, and waits.
    pub async fn stop(self) -> anyhow::Result<()> {
        for task in &self.background {
            task.abort();
        }
        let _ = self.shutdown.send(());
        self.serving.await.context("server task")?.context("serving")
    }
}

/// A checkout still CHARGING after this long has lost its request (a crash, a hung gateway).
const STUCK_CHECKOUT: chrono::Duration = chrono::Duration::minutes(2);

/// Returns expired reservations' stock, resumes stuck checkouts, deletes expired carts and old
/// published events, every `sweep_interval`.
async fn sweep(app: AppContext) {
    let mut ticks =
        tokio::time::interval(app.config.sweep_interval.to_std().unwrap_or(std::time::Duration::from_secs(60)));
    loop {
        ticks.tick().await;
        match app.checkout.expire_due().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired checkout reservations returned to stock"),
            Err(err) => tracing::warn!(error = %err, "expiring reservations failed"),
        }
        if let Err(err) = app.checkout.recover(app.clock.now() - STUCK_CHECKOUT).await {
            tracing::warn!(error = %err, "resuming stuck checkouts failed");
        }
        match app.carts.sweep_expired().await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired carts deleted"),
            Err(err) => tracing::warn!(error = %err, "sweeping carts failed"),
        }
        let published_before = app.clock.now() - chrono::Duration::hours(1);
        if let Err(err) = app.store.delete_published_events(published_before).await {
            tracing::warn!(error = %err, "cleaning the outbox failed");
        }
    }
}

/// Binds, starts serving, and starts the first-start work; `/readyz` turns 200 when it is done.
pub async fn start(app: AppContext) -> anyhow::Result<RunningServer> {
    if let Some((email, password)) = app.config.admin.clone() {
        app.auth.ensure_admin(&email, &password).await.context("creating the configured admin")?;
        tracing::info!(email, "admin account ensured");
    }
    let listener = tokio::net::TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("binding {}", app.config.listen))?;
    let addr = listener.local_addr()?;
    let router = http::router(app.clone(), build_schema(app.clone()));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    // A checkout a crash interrupted is finished (or undone) before new ones start.
    let resumed = app.checkout.recover(app.clock.now() + chrono::Duration::seconds(1)).await;
    match resumed {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "unfinished checkouts resumed"),
        Err(err) => tracing::warn!(error = %err, "resuming unfinished checkouts failed"),
    }
    let background = vec![
        tokio::spawn(app.notification_worker().run()),
        tokio::spawn(prepare_catalog(app.clone())),
        tokio::spawn(app.outbox_dispatcher().run()),
        tokio::spawn(sweep(app.clone())),
        tokio::spawn(app.search.clone().follow_catalog(app.bus.clone())),
        tokio::spawn(app.search.clone().follow_replacements()),
    ];
    Ok(RunningServer { addr, app, shutdown, serving, background })
}

/// Seeds the demo catalog into an empty store, makes sure search holds the whole catalog,
/// then marks the catalog ready.
async fn prepare_catalog(app: AppContext) {
    let wanted = app.config.seed_products;
    let outcome = async {
        if wanted > 0 && app.catalog.product_count().await.map_err(|e| e.to_string())? == 0 {
            let started = Instant::now();
            tracing::info!(products = wanted, "empty store: seeding the demo catalog");
            let generator = CatalogGenerator::new(DEMO_SEED);
            let written = app
                .catalog
                .import_all((0..wanted).map(|i| generator.product(i)), |_| ())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(products = written, seconds = started.elapsed().as_secs_f64(), "demo catalog seeded");
        }
        let started = Instant::now();
        let indexed = app.search.rebuild_if_stale().await.map_err(|e| e.to_string())?;
        if indexed > 0 {
            tracing::info!(products = indexed, seconds = started.elapsed().as_secs_f64(), "search index built");
        }
        Ok::<_, String>(())
    }
    .await;
    match outcome {
        Ok(()) => app.catalog_ready.store(true, Ordering::Release),
        Err(err) => tracing::error!(error = %err, "preparing the catalog failed; /readyz stays unavailable"),
    }
}

/// `shop serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = AppContext::build(config, clock).await?;
    let server = start(app).await?;
    tracing::info!(
        address = %server.addr,
        startup_ms = started.elapsed().as_millis() as u64,
        "serving GraphQL at http://{0}/graphql, playground at http://{0}/",
        server.addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
