//! Keeps this instance's search index in step: with the catalog events published through the
//! outbox, and with indexes `shop reindex` builds in another process.

use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{catalog_events, next_delivery, next_round};
use crate::app::AppContext;

/// Changes arriving within this window are indexed (and committed) together.
const INDEX_DEBOUNCE: Duration = Duration::from_millis(100);
/// How often a serving process looks for an index `shop reindex` built.
const REPLACEMENT_POLL: Duration = Duration::from_secs(1);

pub async fn follow_catalog(app: AppContext, cancel: CancellationToken) {
    let mut deliveries = catalog_events(&app);
    while let Some(first) = next_delivery(&cancel, &mut deliveries).await {
        let mut batch = vec![first];
        let window = tokio::time::sleep(INDEX_DEBOUNCE);
        tokio::pin!(window);
        loop {
            tokio::select! {
                () = &mut window => break,
                next = deliveries.next() => match next {
                    Some(delivery) => batch.push(delivery),
                    None => break,
                },
            }
        }
        if let Err(err) = app.search.apply_catalog_events(&batch).await {
            tracing::warn!(error = %err, "indexing catalog changes failed");
        }
    }
}

pub async fn follow_replacements(app: AppContext, cancel: CancellationToken) {
    while next_round(&cancel, None, REPLACEMENT_POLL).await.is_some() {
        if let Err(err) = app.search.adopt_replacement().await {
            tracing::warn!(error = %err, "adopting a rebuilt search index failed");
        }
    }
}
