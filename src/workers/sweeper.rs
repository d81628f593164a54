//! Every `sweep_interval`: returns expired reservations' stock, cancels orders that waited for
//! review longer than a reservation lasts, deletes expired carts and old published events.

use tokio_util::sync::CancellationToken;

use super::next_round;
use crate::app::AppContext;
use crate::db::outbox;

/// Published catalog and stock events are kept this long (search catches up on rebuilds from
/// them); the others are deleted once published.
const PUBLISHED_RETENTION: chrono::Duration = chrono::Duration::hours(1);

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let period = app.config.sweep_interval.to_std().unwrap_or(std::time::Duration::from_secs(60));
    while next_round(&cancel, None, period).await.is_some() {
        sweep(&app).await;
    }
}

async fn sweep(app: &AppContext) {
    match app.checkout.expire_due().await {
        Ok(0) => {}
        Ok(expired) => tracing::info!(expired, "expired checkout reservations returned to stock"),
        Err(err) => tracing::warn!(error = %err, "expiring reservations failed"),
    }
    match app.orders.expire_reviews().await {
        Ok(0) => {}
        Ok(cancelled) => tracing::info!(cancelled, "orders past their review time cancelled and restocked"),
        Err(err) => tracing::warn!(error = %err, "cancelling orders past their review time failed"),
    }
    match app.carts.sweep_expired().await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "expired carts deleted"),
        Err(err) => tracing::warn!(error = %err, "sweeping carts failed"),
    }
    let published_before = app.clock.now() - PUBLISHED_RETENTION;
    if let Err(err) = app.db.write(async |c| outbox::delete_published(c, published_before).await).await {
        tracing::warn!(error = %err, "cleaning the outbox failed");
    }
}
