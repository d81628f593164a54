//! Rows of checkout, payments, orders and notifications, and their conversion to domain types.
//! Structured parts (lines, addresses, requests, event data) are JSON in text columns.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{checkout_sagas, checkout_sessions, notifications, order_events, orders, payments, reservations};
use crate::domain::cart::{CartLine, CartOwner};
use crate::domain::catalog::Money;
use crate::domain::checkout::{CheckoutSession, CheckoutStatus, Saga, SagaStep, Totals};
use crate::domain::notify::Notification;
use crate::domain::orders::{Order, OrderEvent, OrderEventData, OrderStatus, PlacedOrder};
use crate::domain::payments::{Payment, PaymentStatus};
use crate::domain::ports::{StoreError, StoreResult};

fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|err| StoreError::internal(what, err))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::internal(what, err))
}

fn parsed<T>(value: Option<T>, text: &str, what: &'static str) -> StoreResult<T> {
    value.ok_or_else(|| StoreError::internal(what, std::io::Error::other(format!("unknown value `{text}`"))))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = checkout_sessions)]
pub struct CheckoutSessionRow {
    pub id: String,
    pub owner: String,
    pub status: String,
    pub items: String,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub currency_code: String,
    pub saga_id: Option<String>,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl CheckoutSessionRow {
    pub fn new(session: &CheckoutSession) -> StoreResult<Self> {
        let t = &session.totals;
        Ok(Self {
            id: session.id.clone(),
            owner: session.owner.0.clone(),
            status: session.status.as_str().to_owned(),
            items: to_json(&session.lines, "serializing checkout lines")?,
            subtotal_cents: t.subtotal,
            shipping_cents: t.shipping,
            tax_cents: t.tax,
            total_cents: t.total,
            currency_code: t.currency.clone(),
            saga_id: session.saga_id.clone(),
            expires_at: session.expires_at.naive_utc(),
            created_at: session.created_at.naive_utc(),
            updated_at: session.created_at.naive_utc(),
        })
    }

    pub fn into_session(self) -> StoreResult<CheckoutSession> {
        Ok(CheckoutSession {
            status: parsed(CheckoutStatus::parse(&self.status), &self.status, "reading a checkout status")?,
            lines: from_json(&self.items, "reading checkout lines")?,
            totals: Totals {
                subtotal: self.subtotal_cents,
                shipping: self.shipping_cents,
                tax: self.tax_cents,
                total: self.total_cents,
                currency: self.currency_code,
            },
            id: self.id,
            owner: CartOwner(self.owner),
            saga_id: self.saga_id,
            expires_at: self.expires_at.and_utc(),
            created_at: self.created_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = reservations)]
pub struct ReservationRow {
    pub session_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub owner: String,
    pub status: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

/// Reservation states as stored.
pub const RESERVED: &str = "RESERVED";
pub const CONFIRMED: &str = "CONFIRMED";
pub const RELEASED: &str = "RELEASED";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = checkout_sagas)]
pub struct SagaRow {
    pub id: String,
    pub owner: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub session_id: String,
    pub step: String,
    pub request: String,
    pub order_id: Option<String>,
    pub failure: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl SagaRow {
    pub fn new(saga: &Saga) -> StoreResult<Self> {
        Ok(Self {
            id: saga.id.clone(),
            owner: saga.owner.0.clone(),
            idempotency_key: saga.idempotency_key.clone(),
            request_hash: saga.request_hash.clone(),
            session_id: saga.request.session_id.clone(),
            step: saga.step.as_str().to_owned(),
            request: to_json(&saga.request, "serializing an order request")?,
            order_id: saga.order_id.clone(),
            failure: saga.failure.clone(),
            created_at: saga.updated_at.naive_utc(),
            updated_at: saga.updated_at.naive_utc(),
        })
    }

    pub fn into_saga(self) -> StoreResult<Saga> {
        Ok(Saga {
            step: parsed(SagaStep::parse(&self.step), &self.step, "reading a saga step")?,
            request: from_json(&self.request, "reading an order request")?,
            id: self.id,
            owner: CartOwner(self.owner),
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            order_id: self.order_id,
            failure: self.failure,
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = payments)]
pub struct PaymentRow {
    pub id: String,
    pub saga_id: String,
    pub owner: String,
    pub attempt: i32,
    pub idempotency_key: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency_code: String,
    pub payment_method: String,
    pub gateway_reference: Option<String>,
    pub failure: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl PaymentRow {
    pub fn into_payment(self) -> StoreResult<Payment> {
        Ok(Payment {
            status: parsed(PaymentStatus::parse(&self.status), &self.status, "reading a payment status")?,
            id: self.id,
            saga_id: self.saga_id,
            attempt: self.attempt,
            idempotency_key: self.idempotency_key,
            amount: Money { cents: self.amount_cents, currency: self.currency_code },
            payment_method: self.payment_method,
            gateway_reference: self.gateway_reference,
            failure: self.failure,
            created_at: self.created_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    pub id: String,
    pub owner: String,
    pub status: String,
    pub items: String,
    pub subtotal_cents: i64,
    pub shipping_cents: i64,
    pub tax_cents: i64,
    pub total_cents: i64,
    pub currency_code: String,
    pub shipping_address: String,
    pub session_id: String,
    pub saga_id: String,
    pub payment_id: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl OrderRow {
    /// The projection row of a new order (its first event applied).
    pub fn new(order: &Order) -> StoreResult<Self> {
        let (p, t) = (&order.placed, &order.placed.totals);
        Ok(Self {
            id: p.id.clone(),
            owner: p.owner.0.clone(),
            status: order.status.as_str().to_owned(),
            items: to_json(&p.lines, "serializing order lines")?,
            subtotal_cents: t.subtotal,
            shipping_cents: t.shipping,
            tax_cents: t.tax,
            total_cents: t.total,
            currency_code: t.currency.clone(),
            shipping_address: to_json(&p.shipping_address, "serializing an address")?,
            session_id: p.session_id.clone(),
            saga_id: p.saga_id.clone(),
            payment_id: order.payment_id.clone(),
            version: order.version,
            created_at: p.created_at.naive_utc(),
            updated_at: order.updated_at.naive_utc(),
        })
    }

    pub fn into_order(self) -> StoreResult<Order> {
        let lines: Vec<CartLine> = from_json(&self.items, "reading order lines")?;
        Ok(Order {
            status: parsed(OrderStatus::parse(&self.status), &self.status, "reading an order status")?,
            placed: PlacedOrder {
                owner: CartOwner(self.owner),
                lines,
                totals: Totals {
                    subtotal: self.subtotal_cents,
                    shipping: self.shipping_cents,
                    tax: self.tax_cents,
                    total: self.total_cents,
                    currency: self.currency_code,
                },
                shipping_address: from_json(&self.shipping_address, "reading an address")?,
                session_id: self.session_id,
                saga_id: self.saga_id,
                created_at: self.created_at.and_utc(),
                id: self.id,
            },
            payment_id: self.payment_id,
            version: self.version,
            updated_at: self.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_events)]
pub struct OrderEventRow {
    pub order_id: String,
    pub seq: i64,
    pub event_type: String,
    pub status: String,
    pub data: String,
    pub at: NaiveDateTime,
}

impl OrderEventRow {
    pub fn new(event: &OrderEvent) -> StoreResult<Self> {
        Ok(Self {
            order_id: event.order_id.clone(),
            seq: event.seq,
            event_type: event.kind.clone(),
            status: event.status.as_str().to_owned(),
            data: to_json(&event.data, "serializing an order event")?,
            at: event.at.naive_utc(),
        })
    }

    pub fn into_event(self) -> StoreResult<OrderEvent> {
        let data: OrderEventData = from_json(&self.data, "reading an order event")?;
        Ok(OrderEvent {
            status: parsed(OrderStatus::parse(&self.status), &self.status, "reading an order status")?,
            order_id: self.order_id,
            seq: self.seq,
            kind: self.event_type,
            data,
            at: self.at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = notifications)]
pub struct NotificationRow {
    pub id: String,
    pub order_id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

impl NotificationRow {
    pub fn new(n: &Notification, now: NaiveDateTime) -> Self {
        Self {
            id: n.id.clone(),
            order_id: n.order_id.clone(),
            recipient: n.recipient.clone(),
            subject: n.subject.clone(),
            body: n.body.clone(),
            attempts: n.attempts,
            next_attempt_at: now,
            sent_at: None,
            last_error: None,
            created_at: now,
        }
    }
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Notification {
            id: row.id,
            order_id: row.order_id,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            attempts: row.attempts,
        }
    }
}
