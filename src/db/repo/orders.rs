//! Queries of orders, their events, and confirmation notifications.

use crate::db::prepared::PrepareOnce;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::checkout_models::{NotificationRow, OrderEventRow, OrderRow};
use crate::db::pool::{Conn, execute_batch, on_conn};
use crate::db::schema::{notifications, order_events, orders};
use crate::db::store_error;
use crate::domain::notify::MAX_ATTEMPTS;
use crate::domain::ports::StoreResult;

pub async fn insert_order(conn: &mut Conn<'_>, row: &OrderRow) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(orders::table).values(row.clone()))
        .map(drop)
        .map_err(store_error("creating an order"))
}

pub async fn insert_event(conn: &mut Conn<'_>, row: &OrderEventRow) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(order_events::table).values(row.clone()))
        .map(drop)
        .map_err(store_error("appending an order event"))
}

pub async fn orders_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<OrderRow>> {
    on_conn!(conn, c => orders::table
        .filter(orders::id.eq_any(ids))
        .select(OrderRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading orders"))
}

/// Newest first, strictly after the (created_at, id) cursor.
pub async fn orders_of(
    conn: &mut Conn<'_>,
    owner: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> StoreResult<Vec<OrderRow>> {
    // Text timestamps (SQLite) compare as text, so the open end is a date both backends order.
    let end_of_time = chrono::NaiveDate::from_ymd_opt(9999, 12, 31).and_then(|d| d.and_hms_opt(0, 0, 0));
    let (at, id) = after.unwrap_or((end_of_time.unwrap_or(NaiveDateTime::MAX), String::new()));
    on_conn!(conn, c => orders::table
        .filter(orders::owner.eq(owner))
        .filter(orders::created_at.lt(at).or(orders::created_at.eq(at).and(orders::id.lt(&id))))
        .order((orders::created_at.desc(), orders::id.desc()))
        .limit(limit)
        .select(OrderRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("listing orders"))
}

pub async fn order_count(conn: &mut Conn<'_>, owner: &str) -> StoreResult<i64> {
    on_conn!(conn, c => orders::table.filter(orders::owner.eq(owner)).count().get_result(c).await)
        .map_err(store_error("counting orders"))
}

pub async fn events_of(conn: &mut Conn<'_>, order_ids: &[String]) -> StoreResult<Vec<OrderEventRow>> {
    on_conn!(conn, c => order_events::table
        .filter(order_events::order_id.eq_any(order_ids))
        .order((order_events::order_id, order_events::seq))
        .select(OrderEventRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading order events"))
}

/// Applies the next event to the projection if it is still at `event.seq - 1`.
pub async fn advance_order(conn: &mut Conn<'_>, event: &OrderEventRow, payment_id: Option<&str>) -> StoreResult<bool> {
    let target = orders::table.find(&event.order_id).filter(orders::version.eq(event.seq - 1));
    let changed = match payment_id {
        Some(payment_id) => on_conn!(conn, c => diesel::update(target)
            .set((
                orders::status.eq(&event.status),
                orders::version.eq(event.seq),
                orders::updated_at.eq(event.at),
                orders::payment_id.eq(payment_id),
            ))
            .prepared()
            .execute(c)
            .await),
        None => on_conn!(conn, c => diesel::update(target)
            .set((orders::status.eq(&event.status), orders::version.eq(event.seq), orders::updated_at.eq(event.at)))
            .prepared()
            .execute(c)
            .await),
    };
    changed.map(|n| n > 0).map_err(store_error("updating an order"))
}

pub async fn insert_notification(conn: &mut Conn<'_>, row: &NotificationRow) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(notifications::table).values(row.clone()))
        .map(drop)
        .map_err(store_error("queueing a notification"))
}

pub async fn due_notifications(
    conn: &mut Conn<'_>,
    now: NaiveDateTime,
    limit: i64,
) -> StoreResult<Vec<NotificationRow>> {
    on_conn!(conn, c => notifications::table
        .filter(notifications::sent_at.is_null())
        .filter(notifications::attempts.lt(MAX_ATTEMPTS))
        .filter(notifications::next_attempt_at.le(now))
        .order(notifications::next_attempt_at)
        .limit(limit)
        .select(NotificationRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading due notifications"))
}

/// Takes a due notification until `until`; false when another worker took it first.
pub async fn lease_notification(
    conn: &mut Conn<'_>,
    id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(
        notifications::table.find(id).filter(notifications::sent_at.is_null()).filter(notifications::next_attempt_at.le(now)),
    )
    .set(notifications::next_attempt_at.eq(until))
    .prepared()
    .execute(c)
    .await)
    .map(|n| n > 0)
    .map_err(store_error("leasing a notification"))
}

pub async fn mark_sent(conn: &mut Conn<'_>, id: &str, now: NaiveDateTime) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(notifications::table.find(id))
        .set((notifications::sent_at.eq(now), notifications::attempts.eq(notifications::attempts + 1)))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("recording a sent notification"))
}

pub async fn mark_failed(
    conn: &mut Conn<'_>,
    id: &str,
    attempts: i32,
    retry_at: NaiveDateTime,
    error: &str,
) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(notifications::table.find(id))
        .set((
            notifications::attempts.eq(attempts),
            notifications::next_attempt_at.eq(retry_at),
            notifications::last_error.eq(error),
        ))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("recording a failed notification"))
}
