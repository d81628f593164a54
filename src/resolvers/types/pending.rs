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

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum FlashSaleStatus {
    Scheduled,
    Active,
    SoldOut,
    Ended,
}

#[derive(SimpleObject, Clone)]
pub struct FlashSale {
    pub id: ID,
    pub product: Product,
    pub sale_price: Money,
    pub quantity: i32,
    pub remaining: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Units one shopper may buy in this sale.
    pub per_user_limit: i32,
    pub status: FlashSaleStatus,
    /// Shoppers in the waiting room now.
    pub waiting: i32,
    /// How many waiting shoppers are let through to the stock per minute.
    pub admission_per_minute: i32,
    /// How long an admitted shopper holds a unit before it goes back.
    pub hold_seconds: i32,
}

#[derive(InputObject, Debug)]
pub struct FlashSaleInput {
    pub product_id: ID,
    pub sale_price_cents: i32,
    pub quantity: i32,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub per_user_limit: Option<i32>,
    /// Default 6000.
    pub admission_per_minute: Option<i32>,
    /// Default 120 (the seed's two minutes); at least 5.
    pub hold_seconds: Option<i32>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct FlashSaleEntry {
    pub sale_id: ID,
    pub status: FlashSaleEntryStatus,
    /// Place in the waiting room while WAITING (1 = next to be let through).
    pub position: Option<i32>,
    /// While WAITING: the expected wait from the admission rate and the people ahead.
    pub estimated_wait_seconds: Option<i32>,
    /// Units this entry asked for / holds.
    pub quantity: i32,
    /// While RESERVED: the checkout session holding the units at the sale price; pay it with placeOrder. May be null for a moment after admission, until the order worker has created it (pushed by flashSaleEntryUpdated).
    pub checkout_session_id: Option<ID>,
    /// While RESERVED: when the hold lapses.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, Clone)]
pub struct FlashSaleReport {
    pub sale: FlashSale,
    /// Distinct shoppers who joined.
    pub joined: i32,
    pub admitted: i32,
    /// Units held right now.
    pub reserved: i32,
    /// Units in paid orders.
    pub purchased: i32,
    /// Holds that lapsed (their units went back to the sale).
    pub expired: i32,
    /// Shoppers told SOLD_OUT.
    pub sold_out: i32,
    /// Join attempts refused with RATE_LIMITED.
    pub rate_limited: i32,
    /// purchased / joined.
    pub conversion_rate: f64,
    /// Units given back to the product's regular stock when the sale ended.
    pub returned_to_stock: i32,
    /// After reconciliation: the fast counter minus what the store says is left. 0 when consistent.
    pub discrepancy: i32,
    pub reconciled_at: Option<DateTime<Utc>>,
}
