//! Drops the catalog read cache's entries of products that any instance changed, as their
//! catalog events arrive (the instance that committed a change dropped its own at once).

use tokio_util::sync::CancellationToken;

use super::{catalog_events, next_delivery};
use crate::app::AppContext;
use crate::ports::Delivery;

pub async fn follow_catalog(app: AppContext, cancel: CancellationToken) {
    let mut deliveries = catalog_events(&app);
    let cache = app.catalog.read_cache();
    // A restarted follower may have missed events before it subscribed again.
    cache.drop_all();
    while let Some(delivery) = next_delivery(&cancel, &mut deliveries).await {
        match delivery {
            Delivery::Event(event) => cache.apply(&event),
            // Missed some: any product may have changed.
            Delivery::Lagged => cache.drop_all(),
        }
    }
}
