//! Order confirmations waiting to be sent, leased to one worker at a time.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, Queue, on_conn};
use super::prepared::PrepareOnce;
use super::schema::notifications;
use super::writes::Writes;
use super::{converted, store_error};
use crate::domain::notify::{MAX_ATTEMPTS, Notification};
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = notifications)]
struct NotificationRow {
    id: String,
    order_id: String,
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    sent_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;

    fn try_from(row: NotificationRow) -> StoreResult<Self> {
        Ok(Notification {
            id: row.id,
            order_id: row.order_id,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            attempts: row.attempts,
        })
    }
}

/// Adds the notification to `writes`, due now; the notification worker wakes after commit.
pub fn queue(writes: Writes, notification: &Notification, now: DateTime<Utc>) -> Writes {
    let now = now.naive_utc();
    let row = NotificationRow {
        id: notification.id.clone(),
        order_id: notification.order_id.clone(),
        recipient: notification.recipient.clone(),
        subject: notification.subject.clone(),
        body: notification.body.clone(),
        attempts: notification.attempts,
        next_attempt_at: now,
        sent_at: None,
        last_error: None,
        created_at: now,
    };
    writes.and(diesel::insert_into(notifications::table).values(row)).wakes(Queue::Notifications)
}

/// Notifications due now, each leased until `lease_until` so that no other worker sends it, in
/// one statement.
pub async fn claim_due(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<Notification>> {
    let now = now.naive_utc();
    let due = diesel::alias!(notifications as due);
    let oldest = due
        .select(due.field(notifications::id))
        .filter(due.field(notifications::sent_at).is_null())
        .filter(due.field(notifications::attempts).lt(MAX_ATTEMPTS))
        .filter(due.field(notifications::next_attempt_at).le(now))
        .order(due.field(notifications::next_attempt_at))
        .limit(limit);
    let rows: Vec<NotificationRow> = on_conn!(conn, c => diesel::update(notifications::table)
        .filter(notifications::id.eq_any(oldest))
        .filter(notifications::sent_at.is_null())
        .filter(notifications::next_attempt_at.le(now))
        .set(notifications::next_attempt_at.eq(lease_until.naive_utc()))
        .returning(NotificationRow::as_returning())
        .prepared()
        .get_results(c)
        .await)
    .map_err(store_error("leasing due notifications"))?;
    converted(rows)
}

/// The notifications went out; one statement for all of them.
pub async fn mark_sent(conn: &mut Conn<'_>, ids: &[String], now: DateTime<Utc>) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(notifications::table.filter(notifications::id.eq_any(ids)))
        .set((notifications::sent_at.eq(now.naive_utc()), notifications::attempts.eq(notifications::attempts + 1)))
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
    retry_at: DateTime<Utc>,
    error: &str,
) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(notifications::table.find(id))
        .set((
            notifications::attempts.eq(attempts),
            notifications::next_attempt_at.eq(retry_at.naive_utc()),
            notifications::last_error.eq(error),
        ))
        .prepared()
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("recording a failed notification"))
}
