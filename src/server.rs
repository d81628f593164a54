//! Starting and stopping the HTTP server with its background workers, and the admin from the
//! environment, ensured at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::AppContext;
use crate::config::Config;
use crate::connections::{self, ConnectionLimits};
use crate::domain::clock::SystemClock;
use crate::http;
use crate::ports::Clock;
use crate::resolvers::build_executor;
use crate::workers::Workers;

/// Seed of the first-start demo catalog, so every fresh install shows the same products.
pub const DEMO_SEED: u64 = 42;

pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: AppContext,
    shutdown: oneshot::Sender<()>,
    /// Tells open websockets to close (1001) so that serving can finish.
    closing: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    workers: Workers,
}

/// How long shutdown lets in-flight requests finish.
const REQUEST_DRAIN: Duration = Duration::from_secs(20);

/// How long shutdown waits for background workers to finish the item they are on.
const WORKER_DRAIN: Duration = Duration::from_secs(10);

impl RunningServer {
    /// Stops accepting connections, closes websockets with 1001 (going away), lets running
    /// requests finish, then lets the background workers finish their current item, and waits.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.closing.cancel();
        let served = self.serving.await.context("server task")?.context("serving");
        self.workers.stop(WORKER_DRAIN).await;
        served
    }
}

/// Binds, starts serving, resumes interrupted checkouts and starts the background workers
/// (the first-start catalog among them); `/readyz` turns 200 when the catalog is ready.
pub async fn start(app: AppContext) -> anyhow::Result<RunningServer> {
    if let Some((email, password)) = app.config.admin.clone() {
        app.auth.ensure_admin(&email, password.expose()).await.context("creating the configured admin")?;
        tracing::info!(email, "admin account ensured");
    }
    let listener = tokio::net::TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("binding {}", app.config.listen))?;
    let addr = listener.local_addr()?;
    let closing = CancellationToken::new();
    let router = http::router(app.clone(), build_executor(app.clone()), closing.clone());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let limits = ConnectionLimits {
        max_connections: app.config.http_max_connections,
        header_timeout: app.config.http_header_timeout.to_std().unwrap_or(Duration::from_secs(10)),
        idle_timeout: app.config.http_idle_timeout.to_std().unwrap_or(Duration::from_secs(60)),
        drain: REQUEST_DRAIN,
    };
    let serving = tokio::spawn(connections::serve(listener, router, limits, app.metrics.clone(), async move {
        let _ = stopped.await;
    }));
    let workers = Workers::start(&app);
    Ok(RunningServer { addr, app, shutdown, closing, serving, workers })
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
