//! Domain events: written to the outbox with the change they describe, published after commit
//! through the EventBus port, and delivered to subscribers by topic.

use async_trait::async_trait;
use futures::stream::BoxStream;

/// One event as it travels: a topic (whom it concerns) and a JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub topic: String,
    pub payload: String,
}

/// What a subscriber receives: an event, or word that it fell behind and missed some, so that
/// it re-reads the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event(Event),
    Lagged,
}

#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes to every instance's subscribers of each event's topic.
    async fn publish(&self, events: &[Event]) -> Result<(), BusError>;
    /// Deliveries for one topic on this instance, from now on.
    fn subscribe(&self, topic: &str) -> BoxStream<'static, Delivery>;
}

/// Product ids whose catalog data (fields, price, stock) changed, as a JSON array.
pub const CATALOG_TOPIC: &str = "catalog.products";

pub fn cart_topic(owner: &str) -> String {
    format!("cart.{owner}")
}

/// Events of every order of one owner.
pub fn order_topic(owner: &str) -> String {
    format!("order.{owner}")
}

/// Publishes the outbox after commit: at once when a change wakes it, and on a short timer
/// for anything left over (a failed publish, another process's writes).
pub struct OutboxDispatcher {
    pub store: std::sync::Arc<dyn crate::domain::ports::Store>,
    pub bus: std::sync::Arc<dyn EventBus>,
    pub clock: std::sync::Arc<dyn crate::domain::clock::Clock>,
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

const DISPATCH_BATCH: usize = 500;
const DISPATCH_POLL: std::time::Duration = std::time::Duration::from_millis(250);

impl OutboxDispatcher {
    /// Publishes everything pending; returns how many events went out.
    pub async fn dispatch_pending(&self) -> Result<usize, crate::domain::ports::StoreError> {
        let mut total = 0;
        loop {
            let sent = self.store.dispatch_outbox(DISPATCH_BATCH, self.clock.now(), self.bus.as_ref()).await?;
            total += sent;
            if sent < DISPATCH_BATCH {
                return Ok(total);
            }
        }
    }

    pub async fn run(self) {
        loop {
            let _ = tokio::time::timeout(DISPATCH_POLL, self.wake.notified()).await;
            if let Err(err) = self.dispatch_pending().await {
                tracing::warn!(error = %err, "publishing the outbox failed; retrying");
                tokio::time::sleep(DISPATCH_POLL).await;
            }
        }
    }
}
