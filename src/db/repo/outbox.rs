use crate::db::prepared::PrepareOnce;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::NewOutboxRow;
use crate::db::pool::{Conn, execute_batch, on_conn};
use crate::db::schema::outbox;
use crate::db::store_error;
use crate::domain::ports::StoreResult;

pub async fn insert(conn: &mut Conn<'_>, rows: &[NewOutboxRow]) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(outbox::table).values(rows.to_vec()))
        .map(drop)
        .map_err(store_error("writing to the outbox"))
}

/// Marks up to `limit` of the oldest unpublished events as published and returns them as
/// (id, topic, payload). Two dispatchers never claim the same event: the second one's UPDATE
/// waits for the first one's row locks and then finds them published.
pub async fn claim(conn: &mut Conn<'_>, limit: i64, now: NaiveDateTime) -> StoreResult<Vec<(i64, String, String)>> {
    let pending = diesel::alias!(outbox as pending);
    let oldest = pending
        .select(pending.field(outbox::id))
        .filter(pending.field(outbox::published_at).is_null())
        .order(pending.field(outbox::id))
        .limit(limit);
    on_conn!(conn, c => diesel::update(outbox::table)
        .filter(outbox::id.eq_any(oldest))
        .filter(outbox::published_at.is_null())
        .set(outbox::published_at.eq(now))
        .returning((outbox::id, outbox::topic, outbox::payload))
        .prepared()
        .get_results(c)
        .await)
    .map_err(store_error("claiming outbox events"))
}

pub async fn delete_published(conn: &mut Conn<'_>, before: NaiveDateTime) -> StoreResult<usize> {
    on_conn!(conn, c => diesel::delete(outbox::table.filter(outbox::published_at.lt(before))).execute(c).await)
        .map_err(store_error("deleting published events"))
}

/// Payloads of one topic's events written since `since`.
pub async fn payloads_since(conn: &mut Conn<'_>, topic: &str, since: NaiveDateTime) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => outbox::table
        .filter(outbox::topic.eq(topic))
        .filter(outbox::created_at.ge(since))
        .select(outbox::payload)
        .load(c)
        .await)
    .map_err(store_error("reading recent events"))
}
