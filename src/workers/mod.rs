//! Background work under one supervisor: each worker runs in its own task, named for the
//! statement metric (`worker:<name>`), restarted if it panics, and stopped through one
//! cancellation token. A worker finishes the item it is on before it stops; `Workers::stop`
//! waits for that, up to a deadline.
//!
//! Work written in a transaction wakes its worker through the pool (`db::Queue`), so services
//! never wake workers themselves.

mod catalog_cache;
mod catalog_setup;
mod checkout_recovery;
mod flash_sales;
mod notifications;
mod outbox;
mod recommender;
mod search;
mod stock_sales;
mod sweeper;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppContext;
use crate::db::{Queue, scoped};
use crate::domain::events::CATALOG_TOPICS;
use crate::ports::{Delivery, StoreError};

pub use outbox::dispatch_pending;

/// How long a worker that ended without being asked to (a panic, a closed event stream) waits
/// before it starts again, so that one failing at once does not spin.
const RESTART_DELAY: Duration = Duration::from_secs(1);

pub struct Workers {
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Workers {
    /// Starts every worker of the app.
    pub fn start(app: &AppContext) -> Self {
        let workers = Workers { cancel: CancellationToken::new(), tracker: TaskTracker::new() };
        workers.supervise("worker:outbox", app, outbox::run);
        workers.supervise("worker:notifications", app, notifications::run);
        workers.supervise("worker:sweeper", app, sweeper::run);
        workers.supervise("worker:checkout-recovery", app, checkout_recovery::run);
        workers.supervise("worker:search-follower", app, search::follow_catalog);
        workers.supervise("worker:catalog-cache", app, catalog_cache::follow_catalog);
        workers.supervise("worker:search-replacements", app, search::follow_replacements);
        workers.supervise("worker:recommender", app, recommender::run);
        workers.supervise("worker:shopper-activity", app, recommender::follow_activity);
        workers.supervise("worker:category-lists", app, recommender::refresh_category_lists);
        workers.supervise("worker:flash-sales", app, flash_sales::run);
        workers.supervise("worker:stock-sales", app, stock_sales::run);
        workers.once("worker:catalog-setup", catalog_setup::run(app.clone()));
        workers
    }

    /// Asks every worker to stop and waits until each has finished its current item, or until
    /// `deadline` passes (then the rest are left to the runtime's shutdown).
    pub async fn stop(self, deadline: Duration) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait()).await.is_err() {
            tracing::warn!(?deadline, "background workers did not finish in time");
        }
    }

    /// Runs `worker(app, cancel)` until cancelled, starting it again if it panics or ends. `name`
    /// is also the scope its statements are counted under.
    fn supervise<F, W>(&self, name: &'static str, app: &AppContext, worker: W)
    where
        W: Fn(AppContext, CancellationToken) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (app, cancel) = (app.clone(), self.cancel.clone());
        self.tracker.spawn(async move {
            while !cancel.is_cancelled() {
                let run = tokio::spawn(scoped(name, worker(app.clone(), cancel.clone())));
                match run.await {
                    Err(err) => tracing::error!(worker = name, error = %err, "background worker failed; restarting it"),
                    Ok(()) if !cancel.is_cancelled() => {
                        tracing::warn!(worker = name, "background worker ended; restarting it")
                    }
                    Ok(()) => return,
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
        });
    }

    /// Runs one-off start-up work; cancelling drops it where it stands.
    fn once(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(scoped(name, async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        }));
    }
}

/// Every catalog and stock event, from every instance.
fn catalog_events(app: &AppContext) -> BoxStream<'static, Delivery> {
    let [products, stock] = CATALOG_TOPICS.map(|topic| app.bus.subscribe(topic));
    futures::stream::select(products, stock).boxed()
}

/// The next delivery of a subscription; `None` when the worker is cancelled or the bus closed.
async fn next_delivery(cancel: &CancellationToken, deliveries: &mut BoxStream<'static, Delivery>) -> Option<Delivery> {
    tokio::select! {
        () = cancel.cancelled() => None,
        next = deliveries.next() => next,
    }
}

/// Why a worker's next round starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// A committed write handed it work.
    Woken,
    /// Its period passed without a wake-up.
    Timer,
}

/// Waits until `wake` is notified or `period` passes; `None` when the worker is cancelled
/// meanwhile (then it stops before its next item).
async fn next_round(cancel: &CancellationToken, wake: Option<&Notify>, period: Duration) -> Option<Round> {
    let woken = async {
        match wake {
            Some(wake) => match tokio::time::timeout(period, wake.notified()).await {
                Ok(()) => Round::Woken,
                Err(_) => Round::Timer,
            },
            None => {
                tokio::time::sleep(period).await;
                Round::Timer
            }
        }
    };
    tokio::select! {
        () = cancel.cancelled() => None,
        round = woken => Some(round),
    }
}

/// A worker of one queue: woken by committed writes that give it work, it waits `coalesce`
/// for more to take them together; on its `poll` timer it first takes one cheap look, counted
/// under `idle_scope` apart from the work it finds, and works only if something is pending.
struct QueueWorker {
    queue: Queue,
    poll: Duration,
    coalesce: Duration,
    idle_scope: &'static str,
    /// What the log says when a round fails (the next round tries again).
    failed: &'static str,
}

impl QueueWorker {
    /// Runs rounds of `work` until cancelled; `pending` is the timer's look.
    async fn serve(
        &self,
        app: AppContext,
        cancel: CancellationToken,
        pending: impl AsyncFn(&AppContext) -> Result<bool, StoreError>,
        work: impl AsyncFn(&AppContext) -> Result<usize, StoreError>,
    ) {
        let wake = app.db.wakers().clone();
        while let Some(round) = next_round(&cancel, Some(wake.of(self.queue)), self.poll).await {
            let worked = match round {
                Round::Woken => {
                    tokio::time::sleep(self.coalesce).await;
                    work(&app).await
                }
                Round::Timer => match scoped(self.idle_scope, pending(&app)).await {
                    Ok(true) => work(&app).await,
                    Ok(false) => Ok(0),
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = worked {
                tracing::warn!(error = %err, "{}; retrying", self.failed);
            }
        }
    }
}
