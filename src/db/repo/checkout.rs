//! Queries of checkout sessions, reservations, inventory moves, sagas and payments.

use crate::db::prepared::PrepareOnce;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::checkout_models::{CheckoutSessionRow, PaymentRow, ReservationRow, SagaRow};
use crate::db::pool::{Conn, execute_batch, on_conn};
use crate::db::schema::{checkout_sagas, checkout_sessions, inventory, payments, reservations};
use crate::db::store_error;
use crate::domain::ports::StoreResult;

const RESERVED: &str = "RESERVED";

pub async fn insert_session(conn: &mut Conn<'_>, row: &CheckoutSessionRow) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(checkout_sessions::table).values(row.clone()))
        .map(drop)
        .map_err(store_error("creating a checkout session"))
}

pub async fn session_by_id(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<CheckoutSessionRow>> {
    on_conn!(conn, c => checkout_sessions::table
        .find(id)
        .select(CheckoutSessionRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout session"))
}

/// The owner's RESERVED sessions that no payment holds.
pub async fn free_open_sessions_of(conn: &mut Conn<'_>, owner: &str) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => checkout_sessions::table
        .filter(checkout_sessions::owner.eq(owner))
        .filter(checkout_sessions::status.eq(RESERVED))
        .filter(checkout_sessions::saga_id.is_null())
        .select(checkout_sessions::id)
        .load(c)
        .await)
    .map_err(store_error("loading open checkout sessions"))
}

pub async fn expired_sessions(conn: &mut Conn<'_>, now: NaiveDateTime, limit: i64) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => checkout_sessions::table
        .filter(checkout_sessions::status.eq(RESERVED))
        .filter(checkout_sessions::saga_id.is_null())
        .filter(checkout_sessions::expires_at.le(now))
        .order(checkout_sessions::expires_at)
        .limit(limit)
        .select(checkout_sessions::id)
        .load(c)
        .await)
    .map_err(store_error("loading expired checkout sessions"))
}

/// RESERVED and free -> `status`; false when the session was not both.
pub async fn close_free_session(conn: &mut Conn<'_>, id: &str, status: &str, now: NaiveDateTime) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(
        checkout_sessions::table
            .find(id)
            .filter(checkout_sessions::status.eq(RESERVED))
            .filter(checkout_sessions::saga_id.is_null()),
    )
    .set((checkout_sessions::status.eq(status), checkout_sessions::updated_at.eq(now)))
    .prepared()
    .execute(c)
    .await)
    .map(|n| n > 0)
    .map_err(store_error("closing a checkout session"))
}

/// Gives the session to a saga if it is RESERVED, unexpired and free (or already the saga's).
pub async fn claim_session(
    conn: &mut Conn<'_>,
    id: &str,
    owner: &str,
    saga_id: &str,
    now: NaiveDateTime,
) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(
        checkout_sessions::table
            .find(id)
            .filter(checkout_sessions::owner.eq(owner))
            .filter(checkout_sessions::status.eq(RESERVED))
            .filter(checkout_sessions::expires_at.gt(now))
            .filter(checkout_sessions::saga_id.is_null().or(checkout_sessions::saga_id.eq(saga_id))),
    )
    .set((checkout_sessions::saga_id.eq(saga_id), checkout_sessions::updated_at.eq(now)))
    .prepared()
    .execute(c)
    .await)
    .map(|n| n > 0)
    .map_err(store_error("claiming a checkout session"))
}

/// Lets go of the session if the saga holds it.
pub async fn free_session(conn: &mut Conn<'_>, id: &str, saga_id: &str, now: NaiveDateTime) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(
        checkout_sessions::table.find(id).filter(checkout_sessions::saga_id.eq(saga_id)),
    )
    .set((checkout_sessions::saga_id.eq(None::<String>), checkout_sessions::updated_at.eq(now)))
    .prepared()
    .execute(c)
    .await)
    .map(drop)
    .map_err(store_error("freeing a checkout session"))
}

pub async fn set_session_status(conn: &mut Conn<'_>, id: &str, status: &str, now: NaiveDateTime) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(checkout_sessions::table.find(id))
        .set((checkout_sessions::status.eq(status), checkout_sessions::updated_at.eq(now)))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("updating a checkout session"))
}

/// The one serialization point of stock: takes `quantity` from available into reserved only if
/// that many are available. False when they are not.
pub async fn reserve_stock(conn: &mut Conn<'_>, product_id: &str, quantity: i32) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(
        inventory::table.find(product_id).filter(inventory::available.ge(quantity)),
    )
    .set((
        inventory::available.eq(inventory::available - quantity),
        inventory::reserved.eq(inventory::reserved + quantity),
        inventory::version.eq(inventory::version + 1),
    ))
    .prepared()
    .execute(c)
    .await)
    .map(|n| n > 0)
    .map_err(store_error("reserving stock"))
}

/// Reserved units become sold (an order was made).
pub async fn sell_reserved(conn: &mut Conn<'_>, product_id: &str, quantity: i32) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(inventory::table.find(product_id))
        .set((inventory::reserved.eq(inventory::reserved - quantity), inventory::version.eq(inventory::version + 1)))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("confirming stock"))
}

/// Units come back to available: from a reservation (`from_reserved`) or from a cancelled order.
pub async fn return_stock(
    conn: &mut Conn<'_>,
    product_id: &str,
    quantity: i32,
    from_reserved: bool,
) -> StoreResult<()> {
    let taken_from_reserved = if from_reserved { quantity } else { 0 };
    on_conn!(conn, c => diesel::update(inventory::table.find(product_id))
        .set((
            inventory::available.eq(inventory::available + quantity),
            inventory::reserved.eq(inventory::reserved - taken_from_reserved),
            inventory::version.eq(inventory::version + 1),
        ))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("returning stock"))
}

pub async fn available_of(conn: &mut Conn<'_>, product_id: &str) -> StoreResult<i32> {
    on_conn!(conn, c => inventory::table
        .find(product_id)
        .select(inventory::available)
        .first(c)
        .await
        .optional())
    .map(Option::unwrap_or_default)
    .map_err(store_error("reading stock"))
}

pub async fn insert_reservations(conn: &mut Conn<'_>, rows: &[ReservationRow]) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(reservations::table).values(rows.to_vec()))
        .map(drop)
        .map_err(store_error("writing reservations"))
}

/// The session's reservations in `status`, in product order (the lock order of stock rows).
pub async fn reservations_of(conn: &mut Conn<'_>, session_id: &str, status: &str) -> StoreResult<Vec<ReservationRow>> {
    on_conn!(conn, c => reservations::table
        .filter(reservations::session_id.eq(session_id))
        .filter(reservations::status.eq(status))
        .order(reservations::product_id)
        .select(ReservationRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading reservations"))
}

pub async fn set_reservations_status(conn: &mut Conn<'_>, session_id: &str, from: &str, to: &str) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(
        reservations::table.filter(reservations::session_id.eq(session_id)).filter(reservations::status.eq(from)),
    )
    .set(reservations::status.eq(to))
    .prepared()
    .execute(c)
    .await)
    .map(drop)
    .map_err(store_error("updating reservations"))
}

/// Inserts the saga unless its (owner, key) exists; false when it did.
pub async fn insert_saga_if_new(conn: &mut Conn<'_>, row: &SagaRow) -> StoreResult<bool> {
    execute_batch!(
        conn,
        diesel::insert_into(checkout_sagas::table)
            .values(row.clone())
            .on_conflict((checkout_sagas::owner, checkout_sagas::idempotency_key))
            .do_nothing()
    )
    .map(|n| n > 0)
    .map_err(store_error("recording a checkout saga"))
}

pub async fn saga_by_key(conn: &mut Conn<'_>, owner: &str, key: &str) -> StoreResult<Option<SagaRow>> {
    on_conn!(conn, c => checkout_sagas::table
        .filter(checkout_sagas::owner.eq(owner))
        .filter(checkout_sagas::idempotency_key.eq(key))
        .select(SagaRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout saga"))
}

pub async fn saga_by_id(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<SagaRow>> {
    on_conn!(conn, c => checkout_sagas::table
        .find(id)
        .select(SagaRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout saga"))
}

pub async fn sagas_in_step(conn: &mut Conn<'_>, step: &str, before: NaiveDateTime) -> StoreResult<Vec<SagaRow>> {
    on_conn!(conn, c => checkout_sagas::table
        .filter(checkout_sagas::step.eq(step))
        .filter(checkout_sagas::updated_at.lt(before))
        .order(checkout_sagas::updated_at)
        .select(SagaRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading checkout sagas"))
}

/// Moves the saga from `from` to `to`; false when it was not at `from`.
pub async fn advance_saga(
    conn: &mut Conn<'_>,
    id: &str,
    from: &str,
    to: &str,
    order_id: Option<&str>,
    failure: Option<&str>,
    now: NaiveDateTime,
) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(checkout_sagas::table.find(id).filter(checkout_sagas::step.eq(from)))
        .set((
            checkout_sagas::step.eq(to),
            checkout_sagas::order_id.eq(order_id),
            checkout_sagas::failure.eq(failure),
            checkout_sagas::updated_at.eq(now),
        ))
        .prepared()
        .execute(c)
        .await)
    .map(|n| n > 0)
    .map_err(store_error("advancing a checkout saga"))
}

pub async fn attempts_of(conn: &mut Conn<'_>, saga_id: &str) -> StoreResult<i32> {
    on_conn!(conn, c => payments::table
        .filter(payments::saga_id.eq(saga_id))
        .select(diesel::dsl::max(payments::attempt))
        .first::<Option<i32>>(c)
        .await)
    .map(Option::unwrap_or_default)
    .map_err(store_error("counting payment attempts"))
}

pub async fn insert_payment(conn: &mut Conn<'_>, row: &PaymentRow) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(payments::table).values(row.clone()))
        .map(drop)
        .map_err(store_error("recording a payment"))
}

pub async fn latest_payment(conn: &mut Conn<'_>, saga_id: &str) -> StoreResult<Option<PaymentRow>> {
    on_conn!(conn, c => payments::table
        .filter(payments::saga_id.eq(saga_id))
        .order(payments::attempt.desc())
        .select(PaymentRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a payment"))
}

pub async fn payments_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<PaymentRow>> {
    on_conn!(conn, c => payments::table
        .filter(payments::id.eq_any(ids))
        .select(PaymentRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading payments"))
}

pub async fn set_payment_status(
    conn: &mut Conn<'_>,
    id: &str,
    status: &str,
    failure: Option<&str>,
    now: NaiveDateTime,
) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(payments::table.find(id))
        .set((payments::status.eq(status), payments::failure.eq(failure), payments::updated_at.eq(now)))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("updating a payment"))
}

pub async fn complete_payment(conn: &mut Conn<'_>, id: &str, reference: &str, now: NaiveDateTime) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(payments::table.find(id))
        .set((
            payments::status.eq("COMPLETED"),
            payments::gateway_reference.eq(reference),
            payments::updated_at.eq(now),
        ))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("completing a payment"))
}

pub async fn failed_payments_since(conn: &mut Conn<'_>, owner: &str, since: NaiveDateTime) -> StoreResult<i64> {
    on_conn!(conn, c => payments::table
        .filter(payments::owner.eq(owner))
        .filter(payments::status.eq("FAILED"))
        .filter(payments::created_at.ge(since))
        .count()
        .get_result(c)
        .await)
    .map_err(store_error("counting failed payments"))
}
