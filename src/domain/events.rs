//! Domain events: written to the outbox with the change they describe, published after commit
//! through the EventBus port, and delivered to subscribers by topic.

use crate::domain::primitives::Shopper;

/// Product ids whose catalog data (fields, price, and stock too) changed, as a JSON array.
pub const CATALOG_TOPIC: &str = "catalog.products";

/// Product ids whose stock alone changed (reservations, units given back, counts set), as a
/// JSON array: caches keep what they hold of the products themselves.
pub const STOCK_TOPIC: &str = "catalog.stock";

/// Both, for what follows every change that search or browsing can see.
pub const CATALOG_TOPICS: [&str; 2] = [CATALOG_TOPIC, STOCK_TOPIC];

/// A shopper's views, orders or sign-in changed what their picks leave out or lean on; the
/// payload is the shopper's key. Every instance drops what it holds of that shopper.
pub const SHOPPER_ACTIVITY_TOPIC: &str = "shopper.activity";

/// Every version of one shopper's cart.
pub fn cart_topic(owner: &Shopper) -> String {
    format!("cart.{owner}")
}

/// Events of every order of one shopper.
pub fn order_topic(owner: &Shopper) -> String {
    format!("order.{owner}")
}

/// A flash sale's tick: its `NowServing`, for every watcher of the sale.
pub fn flash_sale_topic(sale_id: &str) -> String {
    format!("flash.{sale_id}")
}

/// One shopper's entry in a flash sale changed: its watcher reads it again.
pub fn flash_entry_topic(sale_id: &str, shopper: &str) -> String {
    format!("flash.{sale_id}.{shopper}")
}
