//! Orders: the append-only event log and the projection row it keeps current.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, on_conn};
use super::schema::{order_claims, order_events, orders};
use super::writes::Write;
use super::{converted, from_json, parsed, shopper, store_error, to_json};
use crate::domain::cart::CartLine;
use crate::domain::checkout::Totals;
use crate::domain::orders::{Order, OrderEvent, OrderEventData, OrderStatus, PlacedOrder};
use crate::domain::primitives::Shopper;
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = orders)]
struct OrderRow {
    id: String,
    owner: String,
    status: String,
    items: String,
    subtotal_cents: i64,
    shipping_cents: i64,
    tax_cents: i64,
    total_cents: i64,
    currency_code: String,
    shipping_address: String,
    session_id: String,
    saga_id: String,
    payment_id: Option<String>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<&Order> for OrderRow {
    type Error = StoreError;

    fn try_from(order: &Order) -> StoreResult<Self> {
        let (p, t) = (&order.placed, &order.placed.totals);
        Ok(Self {
            id: p.id.clone(),
            owner: p.owner.key(),
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
}

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;

    fn try_from(row: OrderRow) -> StoreResult<Self> {
        let lines: Vec<CartLine> = from_json(&row.items, "reading order lines")?;
        Ok(Order {
            status: parsed(OrderStatus::parse(&row.status), &row.status, "reading an order status")?,
            placed: PlacedOrder {
                owner: shopper(&row.owner)?,
                lines,
                totals: Totals {
                    subtotal: row.subtotal_cents,
                    shipping: row.shipping_cents,
                    tax: row.tax_cents,
                    total: row.total_cents,
                    currency: row.currency_code,
                },
                shipping_address: from_json(&row.shipping_address, "reading an address")?,
                session_id: row.session_id,
                saga_id: row.saga_id,
                created_at: row.created_at.and_utc(),
                id: row.id,
            },
            payment_id: row.payment_id,
            version: row.version,
            updated_at: row.updated_at.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_events)]
struct EventRow {
    order_id: String,
    seq: i64,
    event_type: String,
    status: String,
    data: String,
    at: NaiveDateTime,
}

impl TryFrom<&OrderEvent> for EventRow {
    type Error = StoreError;

    fn try_from(event: &OrderEvent) -> StoreResult<Self> {
        Ok(Self {
            order_id: event.order_id.clone(),
            seq: event.seq,
            event_type: event.kind.clone(),
            status: event.status.as_str().to_owned(),
            data: to_json(&event.data, "serializing an order event")?,
            at: event.at.naive_utc(),
        })
    }
}

impl TryFrom<EventRow> for OrderEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> StoreResult<Self> {
        let data: OrderEventData = from_json(&row.data, "reading an order event")?;
        Ok(OrderEvent {
            status: parsed(OrderStatus::parse(&row.status), &row.status, "reading an order status")?,
            order_id: row.order_id,
            seq: row.seq,
            kind: row.event_type,
            data,
            at: row.at.and_utc(),
        })
    }
}

/// The projection row of a new order (its first event applied).
pub fn insert(order: &Order) -> StoreResult<impl Write> {
    Ok(diesel::insert_into(orders::table).values(OrderRow::try_from(order)?))
}

pub fn append(event: &OrderEvent) -> StoreResult<impl Write> {
    Ok(diesel::insert_into(order_events::table).values(EventRow::try_from(event)?))
}

/// Applies the next event to the projection if it is still at `event.seq - 1`; changes no row
/// otherwise.
pub fn advance(event: &OrderEvent) -> impl Write {
    let target = orders::table.find(event.order_id.clone()).filter(orders::version.eq(event.seq - 1));
    diesel::update(target).set((
        orders::status.eq(event.status.as_str()),
        orders::version.eq(event.seq),
        orders::updated_at.eq(event.at.naive_utc()),
        orders::payment_id.eq(orders::payment_id),
    ))
}

/// As `advance`, recording the payment the event names.
pub fn advance_paid(event: &OrderEvent, payment_id: &str) -> impl Write {
    let target = orders::table.find(event.order_id.clone()).filter(orders::version.eq(event.seq - 1));
    diesel::update(target).set((
        orders::status.eq(event.status.as_str()),
        orders::version.eq(event.seq),
        orders::updated_at.eq(event.at.naive_utc()),
        orders::payment_id.eq(payment_id.to_owned()),
    ))
}

/// Later than any real moment. Text timestamps (SQLite) compare as text, so it is a date both
/// backends order alike.
fn end_of_time() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or(NaiveDateTime::MAX)
}

/// Claims the order at the version it was read at for one move until `until`, unless another
/// move holds that version's claim (unexpired, or finished); changes no row when it cannot.
pub fn claim_transition(order: &Order, now: DateTime<Utc>, until: DateTime<Utc>) -> impl Write {
    let insert = diesel::insert_into(order_claims::table)
        .values((
            order_claims::order_id.eq(order.placed.id.clone()),
            order_claims::version.eq(order.version),
            order_claims::claimed_until.eq(until.naive_utc()),
        ))
        .on_conflict((order_claims::order_id, order_claims::version))
        .do_update()
        .set(order_claims::claimed_until.eq(until.naive_utc()));
    // An upsert's WHERE: only a lapsed claim is taken over.
    diesel::query_dsl::methods::FilterDsl::filter(insert, order_claims::claimed_until.lt(now.naive_utc()))
}

/// The move that held the claim changed the order: the claim never lapses.
pub fn finish_transition(order: &Order) -> impl Write {
    let target = order_claims::table.find((order.placed.id.clone(), order.version));
    diesel::update(target).set(order_claims::claimed_until.eq(end_of_time()))
}

/// Gives up a claim whose move failed before it changed the order.
pub fn release_transition(order: &Order) -> impl Write {
    diesel::delete(order_claims::table.find((order.placed.id.clone(), order.version)))
}

/// Orders still waiting for review that were placed before `cutoff`, oldest first.
pub async fn awaiting_review_before(
    conn: &mut Conn<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => orders::table
        .filter(orders::status.eq(OrderStatus::PendingPayment.as_str()))
        .filter(orders::created_at.lt(cutoff.naive_utc()))
        .order(orders::created_at)
        .limit(limit)
        .select(orders::id)
        .load(c)
        .await)
    .map_err(store_error("finding orders past their review time"))
}

/// How many of the shopper's orders wait for review.
pub async fn awaiting_review_of(conn: &mut Conn<'_>, owner: &Shopper) -> StoreResult<i64> {
    on_conn!(conn, c => orders::table
        .filter(orders::owner.eq(owner.key()))
        .filter(orders::status.eq(OrderStatus::PendingPayment.as_str()))
        .count()
        .get_result(c)
        .await)
    .map_err(store_error("counting orders awaiting review"))
}

pub async fn by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<Order>> {
    let rows: Vec<OrderRow> = on_conn!(conn, c => orders::table
        .filter(orders::id.eq_any(ids))
        .select(OrderRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading orders"))?;
    converted(rows)
}

/// The shopper's orders, newest first, strictly after the (created_at, id) cursor.
pub async fn of_shopper(
    conn: &mut Conn<'_>,
    owner: &Shopper,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> StoreResult<Vec<Order>> {
    let (at, id) = match after {
        Some((at, id)) => (at.naive_utc(), id),
        None => (end_of_time(), String::new()),
    };
    let rows: Vec<OrderRow> = on_conn!(conn, c => orders::table
        .filter(orders::owner.eq(owner.key()))
        .filter(orders::created_at.lt(at).or(orders::created_at.eq(at).and(orders::id.lt(&id))))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("listing orders"))?;
    converted(rows)
}

/// Events of the orders, each order's oldest first.
pub async fn events_of(conn: &mut Conn<'_>, order_ids: &[String]) -> StoreResult<Vec<OrderEvent>> {
    let rows: Vec<EventRow> = on_conn!(conn, c => order_events::table
        .filter(order_events::order_id.eq_any(order_ids))
        .order((order_events::order_id, order_events::seq))
        .select(EventRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading order events"))?;
    converted(rows)
}
