//! Checkout sessions. A session's lines are its reservations: RESERVED holds their units,
//! COMPLETED sold them, any other status gave them back.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, on_conn};
use super::prepared::PrepareOnce;
use super::schema::checkout_sessions;
use super::writes::Write;
use super::{converted, from_json, parsed, shopper, store_error, to_json};
use crate::domain::checkout::{CheckoutSession, CheckoutStatus, Totals};
use crate::domain::primitives::Shopper;
use crate::ports::{StoreError, StoreResult};

const RESERVED: &str = "RESERVED";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = checkout_sessions)]
struct SessionRow {
    id: String,
    owner: String,
    status: String,
    items: String,
    subtotal_cents: i64,
    shipping_cents: i64,
    tax_cents: i64,
    total_cents: i64,
    currency_code: String,
    saga_id: Option<String>,
    expires_at: NaiveDateTime,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    flash_sale_id: Option<String>,
}

impl TryFrom<&CheckoutSession> for SessionRow {
    type Error = StoreError;

    fn try_from(session: &CheckoutSession) -> StoreResult<Self> {
        let t = &session.totals;
        Ok(Self {
            id: session.id.clone(),
            owner: session.owner.key(),
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
            flash_sale_id: session.flash_sale_id.clone(),
        })
    }
}

impl TryFrom<SessionRow> for CheckoutSession {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> StoreResult<Self> {
        Ok(CheckoutSession {
            status: parsed(CheckoutStatus::parse(&row.status), &row.status, "reading a checkout status")?,
            lines: from_json(&row.items, "reading checkout lines")?,
            totals: Totals {
                subtotal: row.subtotal_cents,
                shipping: row.shipping_cents,
                tax: row.tax_cents,
                total: row.total_cents,
                currency: row.currency_code,
            },
            owner: shopper(&row.owner)?,
            id: row.id,
            saga_id: row.saga_id,
            expires_at: row.expires_at.and_utc(),
            created_at: row.created_at.and_utc(),
            flash_sale_id: row.flash_sale_id,
        })
    }
}

pub fn insert(session: &CheckoutSession) -> StoreResult<impl Write> {
    Ok(diesel::insert_into(checkout_sessions::table).values(SessionRow::try_from(session)?))
}

/// Several sessions in one statement.
pub fn insert_all<'a>(sessions: impl IntoIterator<Item = &'a CheckoutSession>) -> StoreResult<impl Write> {
    let rows = sessions.into_iter().map(SessionRow::try_from).collect::<StoreResult<Vec<_>>>()?;
    Ok(diesel::insert_into(checkout_sessions::table).values(rows))
}

pub async fn by_id(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<CheckoutSession>> {
    let row: Option<SessionRow> = on_conn!(conn, c => checkout_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a checkout session"))?;
    row.map(CheckoutSession::try_from).transpose()
}

/// Moves the shopper's RESERVED sessions that no payment holds to `status`; returns them, so
/// that their units can be given back. A flash sale's hold is left alone: it lapses or is left
/// through the sale.
pub async fn close_open_of(
    conn: &mut Conn<'_>,
    owner: &Shopper,
    status: CheckoutStatus,
    now: DateTime<Utc>,
) -> StoreResult<Vec<CheckoutSession>> {
    let rows: Vec<SessionRow> = on_conn!(conn, c => diesel::update(
        checkout_sessions::table
            .filter(checkout_sessions::owner.eq(owner.key()))
            .filter(checkout_sessions::status.eq(RESERVED))
            .filter(checkout_sessions::saga_id.is_null())
            .filter(checkout_sessions::flash_sale_id.is_null()),
    )
    .set((checkout_sessions::status.eq(status.as_str()), checkout_sessions::updated_at.eq(now.naive_utc())))
    .returning(SessionRow::as_returning())
    .prepared()
    .get_results(c)
    .await)
    .map_err(store_error("closing open checkout sessions"))?;
    converted(rows)
}

/// Moves a RESERVED session to `status` if no payment holds it, or `saga` does; returns it then.
pub async fn close(
    conn: &mut Conn<'_>,
    id: &str,
    status: CheckoutStatus,
    saga: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<Option<CheckoutSession>> {
    let held_by = checkout_sessions::saga_id.is_null().or(checkout_sessions::saga_id.eq(saga.unwrap_or_default()));
    let row: Option<SessionRow> = on_conn!(conn, c => diesel::update(
        checkout_sessions::table.find(id).filter(checkout_sessions::status.eq(RESERVED)).filter(held_by),
    )
    .set((checkout_sessions::status.eq(status.as_str()), checkout_sessions::updated_at.eq(now.naive_utc())))
    .returning(SessionRow::as_returning())
    .prepared()
    .get_result(c)
    .await
    .optional())
    .map_err(store_error("closing a checkout session"))?;
    row.map(CheckoutSession::try_from).transpose()
}

/// Open sessions past their expiry that no payment holds.
pub async fn expired(conn: &mut Conn<'_>, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => checkout_sessions::table
        .filter(checkout_sessions::status.eq(RESERVED))
        .filter(checkout_sessions::saga_id.is_null())
        .filter(checkout_sessions::expires_at.le(now.naive_utc()))
        .order(checkout_sessions::expires_at)
        .limit(limit)
        .select(checkout_sessions::id)
        .load(c)
        .await)
    .map_err(store_error("loading expired checkout sessions"))
}

/// Gives the session to a saga if it is the owner's, RESERVED, unexpired and free (or already
/// the saga's); changes no row otherwise.
pub fn claim(id: &str, owner: &Shopper, saga_id: &str, now: DateTime<Utc>) -> impl Write {
    let now = now.naive_utc();
    diesel::update(
        checkout_sessions::table
            .find(id.to_owned())
            .filter(checkout_sessions::owner.eq(owner.key()))
            .filter(checkout_sessions::status.eq(RESERVED))
            .filter(checkout_sessions::expires_at.gt(now))
            .filter(checkout_sessions::saga_id.is_null().or(checkout_sessions::saga_id.eq(saga_id.to_owned()))),
    )
    .set((checkout_sessions::saga_id.eq(saga_id.to_owned()), checkout_sessions::updated_at.eq(now)))
}

/// Lets go of the session if the saga holds it.
pub fn free(id: &str, saga_id: &str, now: DateTime<Utc>) -> impl Write {
    diesel::update(
        checkout_sessions::table.find(id.to_owned()).filter(checkout_sessions::saga_id.eq(saga_id.to_owned())),
    )
    .set((checkout_sessions::saga_id.eq(None::<String>), checkout_sessions::updated_at.eq(now.naive_utc())))
}

pub fn set_status(id: &str, status: CheckoutStatus, now: DateTime<Utc>) -> impl Write {
    diesel::update(checkout_sessions::table.find(id.to_owned()))
        .set((checkout_sessions::status.eq(status.as_str()), checkout_sessions::updated_at.eq(now.naive_utc())))
}
