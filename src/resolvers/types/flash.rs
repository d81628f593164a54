//! Flash sales as clients see them.

use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Money, Product};
use crate::domain::flash::{self as domain, EntryStatus, EntryView, NewSale, SaleStatus};
use crate::error::{ApiError, ApiResult};
use crate::resolvers::loaders;
use crate::services::flash_sales::{SaleReport, SaleState};

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
#[graphql(complex)]
pub struct FlashSale {
    pub id: ID,
    #[graphql(skip)]
    pub product_id: String,
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

#[derive(SimpleObject, Clone, Debug, PartialEq)]
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

#[ComplexObject]
impl FlashSale {
    async fn product(&self, ctx: &Context<'_>) -> ApiResult<Product> {
        loaders(ctx)
            .products()
            .load_one(self.product_id.clone())
            .await?
            .ok_or_else(|| ApiError::internal("flash sales", &format!("product {} of a sale is gone", self.product_id)))
    }
}

impl From<SaleState> for FlashSale {
    fn from(state: SaleState) -> Self {
        let sale = state.sale;
        FlashSale {
            id: ID(sale.id),
            product_id: sale.product_id,
            sale_price: Money::from(&sale.sale_price),
            quantity: sale.quantity,
            remaining: sale.remaining,
            starts_at: sale.starts_at,
            ends_at: sale.ends_at,
            per_user_limit: sale.per_user_limit,
            status: match state.status {
                SaleStatus::Scheduled => FlashSaleStatus::Scheduled,
                SaleStatus::Active => FlashSaleStatus::Active,
                SaleStatus::SoldOut => FlashSaleStatus::SoldOut,
                SaleStatus::Ended => FlashSaleStatus::Ended,
            },
            waiting: count(state.counts.waiting),
            admission_per_minute: sale.admission_per_minute,
            hold_seconds: sale.hold_seconds,
        }
    }
}

fn count(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl From<FlashSaleInput> for NewSale {
    fn from(input: FlashSaleInput) -> Self {
        NewSale {
            product_id: input.product_id.0,
            sale_price_cents: i64::from(input.sale_price_cents),
            quantity: input.quantity,
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            per_user_limit: input.per_user_limit,
            admission_per_minute: input.admission_per_minute,
            hold_seconds: input.hold_seconds,
        }
    }
}

impl From<EntryView> for FlashSaleEntry {
    fn from(view: EntryView) -> Self {
        let entry: domain::Entry = view.entry;
        let held = entry.status == EntryStatus::Reserved;
        FlashSaleEntry {
            sale_id: ID(entry.sale_id),
            status: match entry.status {
                EntryStatus::Waiting => FlashSaleEntryStatus::Waiting,
                EntryStatus::Reserved => FlashSaleEntryStatus::Reserved,
                EntryStatus::Purchased => FlashSaleEntryStatus::Purchased,
                EntryStatus::SoldOut => FlashSaleEntryStatus::SoldOut,
                EntryStatus::Expired => FlashSaleEntryStatus::Expired,
            },
            position: view.position.map(count),
            estimated_wait_seconds: view.estimated_wait_seconds.map(count),
            quantity: entry.quantity,
            checkout_session_id: entry.checkout_session_id.filter(|_| held).map(ID),
            expires_at: entry.expires_at.filter(|_| held),
        }
    }
}

impl From<SaleReport> for FlashSaleReport {
    fn from(report: SaleReport) -> Self {
        let counts = report.state.counts;
        let sale = &report.state.sale;
        FlashSaleReport {
            joined: count(counts.joined),
            admitted: count(counts.admitted),
            reserved: count(counts.held_units),
            purchased: count(counts.purchased_units),
            expired: count(counts.expired),
            sold_out: count(counts.sold_out),
            rate_limited: sale.rate_limited,
            conversion_rate: report.conversion_rate,
            returned_to_stock: sale.returned_to_stock,
            discrepancy: count(report.discrepancy),
            reconciled_at: report.reconciled_at,
            sale: FlashSale::from(report.state),
        }
    }
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
