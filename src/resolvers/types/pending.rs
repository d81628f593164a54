//! Contract types of flash sales, which are not served yet. They are declared so that the
//! schema carries the whole public contract; the operations returning them answer
//! NOT_IMPLEMENTED until their issue lands.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Money, Product};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum FlashSaleEntryStatus {
    Waiting,
    Reserved,
    Purchased,
    SoldOut,
    Expired,
}

#[derive(SimpleObject)]
pub struct FlashSale {
    pub id: ID,
    pub product: Product,
    pub sale_price: Money,
    pub quantity: i32,
    pub remaining: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: i32,
}

#[derive(InputObject, Debug)]
pub struct FlashSaleInput {
    pub product_id: ID,
    pub sale_price_cents: i32,
    pub quantity: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: Option<i32>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct FlashSaleEntry {
    pub sale_id: ID,
    pub status: FlashSaleEntryStatus,
    /// Place in the waiting room while WAITING.
    pub position: Option<i32>,
    /// While RESERVED: a checkout session holding the unit for 2 minutes.
    pub checkout_session_id: Option<ID>,
    pub expires_at: Option<DateTime<Utc>>,
}
