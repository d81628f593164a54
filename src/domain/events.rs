//! Domain events: written to the outbox with the change they describe, published after commit
//! through the EventBus port, and delivered to subscribers by topic.

use crate::domain::primitives::Shopper;

/// Product ids whose catalog data (fields, price, stock) changed, as a JSON array.
pub const CATALOG_TOPIC: &str = "catalog.products";

/// Every version of one shopper's cart.
pub fn cart_topic(owner: &Shopper) -> String {
    format!("cart.{owner}")
}

/// Events of every order of one shopper.
pub fn order_topic(owner: &Shopper) -> String {
    format!("order.{owner}")
}
