//! The transactional outbox: events written with the change they describe, published after
//! commit by the outbox worker.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, Queue, execute_batch, on_conn};
use super::prepared::PrepareOnce;
use super::schema::outbox;
use super::writes::Write;
use super::{store_error, to_json};
use crate::domain::events::{CATALOG_TOPIC, CATALOG_TOPICS, SHOPPER_ACTIVITY_TOPIC, STOCK_TOPIC};
use crate::domain::primitives::Shopper;
use crate::ports::{Event, StoreResult};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub topic: String,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

impl OutboxRow {
    pub fn new<T: serde::Serialize>(topic: String, payload: &T, at: DateTime<Utc>) -> StoreResult<Self> {
        Ok(Self::serialized(topic, to_json(payload, "serializing an event")?, at))
    }

    /// An event whose payload is already JSON.
    pub fn serialized(topic: String, payload: String, at: DateTime<Utc>) -> Self {
        Self { topic, payload, created_at: at.naive_utc() }
    }

    /// The event that tells search and the catalog read cache (on every instance) which
    /// products changed.
    pub fn catalog(product_ids: &[String], at: DateTime<Utc>) -> StoreResult<Self> {
        Self::new(CATALOG_TOPIC.to_owned(), &product_ids, at)
    }

    /// The same for products whose stock alone changed.
    pub fn stock(product_ids: &[String], at: DateTime<Utc>) -> StoreResult<Self> {
        Self::new(STOCK_TOPIC.to_owned(), &product_ids, at)
    }

    /// The event that tells every instance's recommender that `shopper`'s history changed.
    pub fn shopper_activity(shopper: &Shopper, at: DateTime<Utc>) -> StoreResult<Self> {
        Self::new(SHOPPER_ACTIVITY_TOPIC.to_owned(), &shopper.key(), at)
    }

    /// The event as the bus carries it.
    pub fn event(&self) -> Event {
        Event { topic: self.topic.clone(), payload: self.payload.clone() }
    }

    pub fn into_event(self) -> Event {
        Event { topic: self.topic, payload: self.payload }
    }

    /// The event as the bus carries it, if it is a catalog or stock event.
    pub fn catalog_event(&self) -> Option<Event> {
        CATALOG_TOPICS.contains(&self.topic.as_str()).then(|| self.event())
    }
}

pub async fn insert(conn: &mut Conn<'_>, rows: Vec<OutboxRow>) -> StoreResult<()> {
    conn.queued(Queue::Outbox);
    for event in rows.iter().filter_map(OutboxRow::catalog_event) {
        conn.catalog_changed(event);
    }
    execute_batch!(conn, diesel::insert_into(outbox::table).values(rows))
        .map(drop)
        .map_err(store_error("writing to the outbox"))
}

/// Whether any event waits to be published (one indexed look).
pub async fn any_pending(conn: &mut Conn<'_>) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::select(diesel::dsl::exists(outbox::table.filter(outbox::published_at.is_null())))
        .get_result(c)
        .await)
    .map_err(store_error("looking at the outbox"))
}

/// Claims up to `limit` of the oldest unpublished events no live claim holds, until `until`,
/// and returns them with their ids, oldest first. Two dispatchers never claim the same event:
/// the second one's UPDATE waits for the first one's row locks and then finds them claimed.
pub async fn claim(
    conn: &mut Conn<'_>,
    limit: i64,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> StoreResult<Vec<(i64, Event)>> {
    let pending = diesel::alias!(outbox as pending);
    let unclaimed = outbox::claimed_until.is_null().or(outbox::claimed_until.lt(now.naive_utc()));
    let oldest = pending
        .select(pending.field(outbox::id))
        .filter(pending.field(outbox::published_at).is_null())
        .filter(
            pending.field(outbox::claimed_until).is_null().or(pending.field(outbox::claimed_until).lt(now.naive_utc())),
        )
        .order(pending.field(outbox::id))
        .limit(limit);
    let mut claimed: Vec<(i64, String, String)> = on_conn!(conn, c => diesel::update(outbox::table)
        .filter(outbox::id.eq_any(oldest))
        .filter(outbox::published_at.is_null())
        .filter(unclaimed)
        .set(outbox::claimed_until.eq(until.naive_utc()))
        .returning((outbox::id, outbox::topic, outbox::payload))
        .prepared()
        .get_results(c)
        .await)
    .map_err(store_error("claiming outbox events"))?;
    claimed.sort_by_key(|(id, _, _)| *id);
    Ok(claimed.into_iter().map(|(id, topic, payload)| (id, Event { topic, payload })).collect())
}

/// Deletes the claimed events that nothing reads once published (every topic but catalog and
/// stock): a cart's event is the whole cart, and keeping it an hour would grow the table by
/// gigabytes under load, and on SQLite rewrite it once more.
pub fn delivered(ids: &[i64]) -> impl Write {
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids.to_vec())).filter(outbox::topic.ne_all(CATALOG_TOPICS)))
}

/// Marks the claimed catalog and stock events published: search catches up from them
/// (`products_changed_since`) until the sweeper deletes them.
pub fn published(ids: &[i64], now: DateTime<Utc>) -> impl Write {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids.to_vec())).filter(outbox::topic.eq_any(CATALOG_TOPICS)))
        .set(outbox::published_at.eq(now.naive_utc()))
}

/// Gives claimed events back at once (their publishing failed), for the next round.
pub fn unclaimed(ids: &[i64]) -> impl Write {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids.to_vec())))
        .set(outbox::claimed_until.eq(None::<NaiveDateTime>))
}

pub async fn delete_published(conn: &mut Conn<'_>, before: DateTime<Utc>) -> StoreResult<u64> {
    on_conn!(conn, c => diesel::delete(outbox::table.filter(outbox::published_at.lt(before.naive_utc())))
        .execute(c)
        .await)
    .map(|n| n as u64)
    .map_err(store_error("deleting published events"))
}

/// Products named by catalog events written since `since` (kept an hour after publishing).
pub async fn products_changed_since(conn: &mut Conn<'_>, since: DateTime<Utc>) -> StoreResult<Vec<String>> {
    let payloads: Vec<String> = on_conn!(conn, c => outbox::table
        .filter(outbox::topic.eq_any(CATALOG_TOPICS))
        .filter(outbox::created_at.ge(since.naive_utc()))
        .select(outbox::payload)
        .load(c)
        .await)
    .map_err(store_error("reading recent events"))?;
    let ids: std::collections::BTreeSet<String> =
        payloads.iter().filter_map(|p| serde_json::from_str::<Vec<String>>(p).ok()).flatten().collect();
    Ok(ids.into_iter().collect())
}
