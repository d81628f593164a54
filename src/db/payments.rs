//! Payment sagas (one per shopper and idempotency key) and their charge attempts.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, on_conn};
use super::schema::{checkout_sagas, orders, payments};
use super::writes::Write;
use super::{converted, from_json, parsed, shopper, store_error, to_json};
use crate::domain::checkout::{Saga, SagaStep};
use crate::domain::payments::{Payment, PaymentStatus};
use crate::domain::primitives::{Money, Shopper};
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = checkout_sagas)]
struct SagaRow {
    id: String,
    owner: String,
    idempotency_key: String,
    request_hash: String,
    session_id: String,
    step: String,
    request: String,
    order_id: Option<String>,
    failure: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    lease_until: NaiveDateTime,
}

impl TryFrom<&Saga> for SagaRow {
    type Error = StoreError;

    fn try_from(saga: &Saga) -> StoreResult<Self> {
        Ok(Self {
            id: saga.id.clone(),
            owner: saga.owner.key(),
            idempotency_key: saga.idempotency_key.clone(),
            request_hash: saga.request_hash.clone(),
            session_id: saga.request.session_id.clone(),
            step: saga.step.as_str().to_owned(),
            request: to_json(&saga.request, "serializing an order request")?,
            order_id: saga.order_id.clone(),
            failure: saga.failure.clone(),
            created_at: saga.updated_at.naive_utc(),
            updated_at: saga.updated_at.naive_utc(),
            lease_until: saga.lease_until.naive_utc(),
        })
    }
}

impl TryFrom<SagaRow> for Saga {
    type Error = StoreError;

    fn try_from(row: SagaRow) -> StoreResult<Self> {
        Ok(Saga {
            step: parsed(SagaStep::parse(&row.step), &row.step, "reading a saga step")?,
            request: from_json(&row.request, "reading an order request")?,
            owner: shopper(&row.owner)?,
            id: row.id,
            idempotency_key: row.idempotency_key,
            request_hash: row.request_hash,
            order_id: row.order_id,
            failure: row.failure,
            updated_at: row.updated_at.and_utc(),
            lease_until: row.lease_until.and_utc(),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = payments)]
struct PaymentRow {
    id: String,
    saga_id: String,
    owner: String,
    attempt: i32,
    idempotency_key: String,
    status: String,
    amount_cents: i64,
    currency_code: String,
    payment_method: String,
    gateway_reference: Option<String>,
    failure: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(row: PaymentRow) -> StoreResult<Self> {
        Ok(Payment {
            status: parsed(PaymentStatus::parse(&row.status), &row.status, "reading a payment status")?,
            id: row.id,
            saga_id: row.saga_id,
            attempt: row.attempt,
            idempotency_key: row.idempotency_key,
            amount: Money { cents: row.amount_cents, currency: row.currency_code },
            payment_method: row.payment_method,
            gateway_reference: row.gateway_reference,
            failure: row.failure,
            created_at: row.created_at.and_utc(),
        })
    }
}

/// Inserts the saga unless its (owner, key) exists: then it changes no row.
pub fn insert_saga(saga: &Saga) -> StoreResult<impl Write> {
    Ok(diesel::insert_into(checkout_sagas::table)
        .values(SagaRow::try_from(saga)?)
        .on_conflict((checkout_sagas::owner, checkout_sagas::idempotency_key))
        .do_nothing())
}

pub async fn saga_by_key(conn: &mut Conn<'_>, owner: &Shopper, key: &str) -> StoreResult<Option<Saga>> {
    let row: Option<SagaRow> = on_conn!(conn, c => checkout_sagas::table
        .filter(checkout_sagas::owner.eq(owner.key()))
        .filter(checkout_sagas::idempotency_key.eq(key))
        .select(SagaRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout saga"))?;
    row.map(Saga::try_from).transpose()
}

pub async fn saga(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<Saga>> {
    let row: Option<SagaRow> = on_conn!(conn, c => checkout_sagas::table
        .find(id)
        .select(SagaRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout saga"))?;
    row.map(Saga::try_from).transpose()
}

/// Steps in which a saga is being worked on, and is leased to whoever works on it.
const LEASED_STEPS: [&str; 2] = [SagaStep::Charging.as_str(), SagaStep::Refunding.as_str()];

/// Sagas left CHARGING or REFUNDING whose lease ran out before `now`: their claimant is gone.
pub async fn sagas_due(conn: &mut Conn<'_>, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Saga>> {
    let rows: Vec<SagaRow> = on_conn!(conn, c => checkout_sagas::table
        .filter(checkout_sagas::step.eq_any(LEASED_STEPS))
        .filter(checkout_sagas::lease_until.lt(now.naive_utc()))
        .order(checkout_sagas::lease_until)
        .limit(limit)
        .select(SagaRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading checkout sagas"))?;
    converted(rows)
}

/// When the next lease of a CHARGING or REFUNDING saga runs out, if any is held.
pub async fn next_lease_end(conn: &mut Conn<'_>) -> StoreResult<Option<DateTime<Utc>>> {
    let end: Option<NaiveDateTime> = on_conn!(conn, c => checkout_sagas::table
        .filter(checkout_sagas::step.eq_any(LEASED_STEPS))
        .select(diesel::dsl::min(checkout_sagas::lease_until))
        .first(c)
        .await)
    .map_err(store_error("reading saga leases"))?;
    Ok(end.map(|end| end.and_utc()))
}

/// Takes the lease of a saga still at `step` whose lease ran out before `now`; changes no row
/// when another instance took it first.
pub fn take_lease(id: &str, step: SagaStep, now: DateTime<Utc>, until: DateTime<Utc>) -> impl Write {
    diesel::update(
        checkout_sagas::table
            .find(id.to_owned())
            .filter(checkout_sagas::step.eq(step.as_str()))
            .filter(checkout_sagas::lease_until.lt(now.naive_utc())),
    )
    .set(checkout_sagas::lease_until.eq(until.naive_utc()))
}

/// Moves the saga from `from` to `to`, leased until `lease_until` (`now` ends the lease);
/// changes no row when it was not at `from`.
pub fn advance_saga(
    id: &str,
    (from, to): (SagaStep, SagaStep),
    order_id: Option<&str>,
    failure: Option<&str>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> impl Write {
    diesel::update(checkout_sagas::table.find(id.to_owned()).filter(checkout_sagas::step.eq(from.as_str()))).set((
        checkout_sagas::step.eq(to.as_str()),
        checkout_sagas::order_id.eq(order_id.map(str::to_owned)),
        checkout_sagas::failure.eq(failure.map(str::to_owned)),
        checkout_sagas::updated_at.eq(now.naive_utc()),
        checkout_sagas::lease_until.eq(lease_until.naive_utc()),
    ))
}

/// Attempts made so far for the saga.
pub async fn attempts_of(conn: &mut Conn<'_>, saga_id: &str) -> StoreResult<i32> {
    on_conn!(conn, c => payments::table
        .filter(payments::saga_id.eq(saga_id))
        .select(diesel::dsl::max(payments::attempt))
        .first::<Option<i32>>(c)
        .await)
    .map(Option::unwrap_or_default)
    .map_err(store_error("counting payment attempts"))
}

pub fn insert_payment(payment: &Payment, owner: &Shopper) -> impl Write {
    let at = payment.created_at.naive_utc();
    diesel::insert_into(payments::table).values(PaymentRow {
        id: payment.id.clone(),
        saga_id: payment.saga_id.clone(),
        owner: owner.key(),
        attempt: payment.attempt,
        idempotency_key: payment.idempotency_key.clone(),
        status: payment.status.as_str().to_owned(),
        amount_cents: payment.amount.cents,
        currency_code: payment.amount.currency.clone(),
        payment_method: payment.payment_method.clone(),
        gateway_reference: payment.gateway_reference.clone(),
        failure: payment.failure.clone(),
        created_at: at,
        updated_at: at,
    })
}

pub async fn latest_payment(conn: &mut Conn<'_>, saga_id: &str) -> StoreResult<Option<Payment>> {
    let row: Option<PaymentRow> = on_conn!(conn, c => payments::table
        .filter(payments::saga_id.eq(saga_id))
        .order(payments::attempt.desc())
        .select(PaymentRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a payment"))?;
    row.map(Payment::try_from).transpose()
}

pub async fn payments_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<Payment>> {
    let rows: Vec<PaymentRow> = on_conn!(conn, c => payments::table
        .filter(payments::id.eq_any(ids))
        .select(PaymentRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading payments"))?;
    converted(rows)
}

/// The payment's new status (the gateway reference stays as it is).
pub fn set_payment_status(id: &str, status: PaymentStatus, failure: Option<&str>, now: DateTime<Utc>) -> impl Write {
    diesel::update(payments::table.find(id.to_owned())).set((
        payments::status.eq(status.as_str()),
        payments::failure.eq(failure.map(str::to_owned)),
        payments::updated_at.eq(now.naive_utc()),
    ))
}

/// The gateway charged the payment under `reference`.
pub fn complete_payment(id: &str, reference: &str, now: DateTime<Utc>) -> impl Write {
    diesel::update(payments::table.find(id.to_owned())).set((
        payments::status.eq(PaymentStatus::Completed.as_str()),
        payments::gateway_reference.eq(reference.to_owned()),
        payments::updated_at.eq(now.naive_utc()),
    ))
}

/// What fraud rules read of a shopper's history, in one statement: orders made, and payments
/// that failed since `since`.
pub async fn risk_history(conn: &mut Conn<'_>, owner: &Shopper, since: DateTime<Utc>) -> StoreResult<(u64, u64)> {
    let key = owner.key();
    let orders_made = orders::table.filter(orders::owner.eq(key.clone())).count().single_value();
    let failed = payments::table
        .filter(payments::owner.eq(key))
        .filter(payments::status.eq(PaymentStatus::Failed.as_str()))
        .filter(payments::created_at.ge(since.naive_utc()))
        .count()
        .single_value();
    let (orders_made, failed): (Option<i64>, Option<i64>) =
        on_conn!(conn, c => diesel::select((orders_made.clone(), failed.clone())).get_result(c).await)
            .map_err(store_error("reading a shopper's order history"))?;
    let count = |n: Option<i64>| u64::try_from(n.unwrap_or_default()).unwrap_or_default();
    Ok((count(orders_made), count(failed)))
}
