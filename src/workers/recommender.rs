//! Keeps recommendations current: trains every `recommender_interval` (one instance at a time,
//! by the store's lease) and loads whatever any instance, or `shop train-recommendations`,
//! trained last; follows shoppers' activity from every instance; and reads again the category
//! lists requests found stale.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{next_delivery, next_round};
use crate::app::AppContext;
use crate::db::scoped;
use crate::domain::events::SHOPPER_ACTIVITY_TOPIC;
use crate::ports::Delivery;

/// How soon a model trained elsewhere is in use here.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How often stale category lists are looked for when no request marked one (a safety net:
/// marking one wakes the worker).
const STALE_LISTS_POLL: Duration = Duration::from_secs(1);
/// The look for a newer model, counted apart from training and loading.
const IDLE_SCOPE: &str = "worker:recommender-idle";

pub async fn run(app: AppContext, cancel: CancellationToken) {
    let service = &app.recommendations;
    let interval = app.config.recommender_interval.to_std().unwrap_or(Duration::from_secs(600));
    // A store that was never trained (a new demo store) is trained as soon as its catalog is.
    let mut next_training = match service.refresh().await {
        Ok(false) if !service.has_model() => Instant::now(),
        _ => Instant::now() + interval,
    };
    while next_round(&cancel, None, RELOAD_POLL).await.is_some() {
        if Instant::now() >= next_training && app.catalog_ready.load(Ordering::Acquire) {
            next_training = Instant::now() + interval;
            let started = Instant::now();
            match service.train().await {
                Ok(Some(version)) => {
                    tracing::info!(version, seconds = started.elapsed().as_secs_f64(), "recommendations trained")
                }
                Ok(None) => tracing::debug!("another instance is training recommendations"),
                Err(err) => {
                    tracing::warn!(error = %err, "training recommendations failed; trying at the next interval")
                }
            }
        }
        if let Err(err) = scoped(IDLE_SCOPE, service.refresh()).await {
            tracing::warn!(error = %err, "loading the recommendation model failed; keeping the one held");
        }
    }
}

/// Drops the recommender's hold of a shopper's activity when any instance records that they
/// viewed, ordered or signed in.
pub async fn follow_activity(app: AppContext, cancel: CancellationToken) {
    let mut deliveries = app.bus.subscribe(SHOPPER_ACTIVITY_TOPIC);
    // A restarted follower may have missed events before it subscribed again.
    app.recommendations.forget_everyone();
    while let Some(delivery) = next_delivery(&cancel, &mut deliveries).await {
        match delivery {
            Delivery::Event(event) => match serde_json::from_str::<String>(&event.payload) {
                Ok(shopper) => app.recommendations.forget(&shopper),
                Err(err) => tracing::warn!(error = %err, "ignoring a malformed shopper activity event"),
            },
            Delivery::Lagged => app.recommendations.forget_everyone(),
        }
    }
}

/// Reads again the category lists that requests found stale, so that none of them waits on the
/// store for a list it already holds.
pub async fn refresh_category_lists(app: AppContext, cancel: CancellationToken) {
    let service = &app.recommendations;
    while next_round(&cancel, Some(service.stale_category_lists()), STALE_LISTS_POLL).await.is_some() {
        service.refresh_stale_category_lists().await;
    }
}
