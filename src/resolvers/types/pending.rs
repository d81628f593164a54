//! Contract types of capabilities that are not served yet (checkout, orders, flash sales). They are declared so that the schema carries the whole public contract; the
//! operations returning them answer NOT_IMPLEMENTED until their issue lands.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{CartItem, Money, PageInfo, Product};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum CheckoutStatus {
    Reserved,
    Completed,
    Expired,
    Cancelled,
    Failed,
}

#[derive(SimpleObject)]
pub struct CheckoutSession {
    pub id: ID,
    pub status: CheckoutStatus,
    pub expires_at: DateTime<Utc>,
    pub items: Vec<CartItem>,
    pub subtotal: Money,
    pub shipping: Money,
    pub tax: Money,
    pub total: Money,
}

#[derive(InputObject, Debug)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(InputObject, Debug)]
pub struct PlaceOrderInput {
    pub checkout_session_id: ID,
    /// Payment processor token, e.g. the test gateway's pm_card_visa.
    pub payment_method_id: String,
    pub shipping_address: AddressInput,
    /// Optional; when given, the fraud rules compare it with the shipping address.
    pub billing_address: Option<AddressInput>,
    pub idempotency_key: String,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    Processing,
    Completed,
    Failed,
    Refunded,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Payment {
    pub id: ID,
    pub status: PaymentStatus,
    pub amount: Money,
    pub gateway_reference: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct OrderEvent {
    pub order_id: ID,
    #[graphql(name = "type")]
    pub kind: String,
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct Order {
    pub id: ID,
    pub status: OrderStatus,
    pub items: Vec<CartItem>,
    pub total: Money,
    pub payment: Option<Payment>,
    /// Event-sourced history: every state change, oldest first.
    pub events: Vec<OrderEvent>,
    pub created_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct OrderEdge {
    pub node: Order,
    pub cursor: String,
}

#[derive(SimpleObject)]
pub struct OrderConnection {
    pub edges: Vec<OrderEdge>,
    pub page_info: PageInfo,
}

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
