//! Carts: one row per shopper, its lines as JSON in the row, so that a change is one write;
//! changes of many carts are written in rounds (`rounds`).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;
use futures::FutureExt;
use serde::Serialize;

use super::outbox::OutboxRow;
use super::pool::{Backend, Conn, Queue, on_conn};
use super::prepared::PrepareOnce;
use super::rounds::{Rounds, layers};
use super::schema::carts;
use super::writes::Write;
use super::{Pool, Writes, from_json, shopper, store_error, to_json};
use crate::domain::cart::{Cart, CartLine};
use crate::domain::events::cart_topic;
use crate::domain::primitives::{Shopper, rfc3339};
use crate::ports::{Event, EventBus, StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = carts)]
struct CartRow {
    id: String,
    owner: String,
    version: i64,
    updated_at: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
    lines: String,
}

impl TryFrom<CartRow> for Cart {
    type Error = StoreError;

    fn try_from(row: CartRow) -> StoreResult<Self> {
        Ok(Cart {
            id: row.id,
            owner: shopper(&row.owner)?,
            version: row.version,
            updated_at: row.updated_at.and_utc(),
            expires_at: row.expires_at.map(|at| at.and_utc()),
            lines: from_json(&row.lines, "reading cart lines")?,
        })
    }
}

/// The header of the cart as its event and the cart cache carry it: the `Cart` document is this
/// with the lines, as already serialized for the row, appended (serializing 90 lines twice was
/// a tenth of a change's CPU).
#[derive(Serialize)]
struct CartHeader<'a> {
    id: &'a str,
    owner: &'a Shopper,
    version: i64,
    #[serde(with = "rfc3339")]
    updated_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

/// About the length of one serialized line: the lines' buffer is sized once instead of
/// growing (and copying) a dozen times on the way to 5 KB.
const LINE_JSON_BYTES: usize = 56;

fn serialized_lines(lines: &[CartLine]) -> StoreResult<String> {
    let mut json = Vec::with_capacity(2 + LINE_JSON_BYTES * lines.len());
    serde_json::to_writer(&mut json, lines).map_err(|err| StoreError::internal("serializing cart lines", err))?;
    String::from_utf8(json).map_err(|err| StoreError::internal("serializing cart lines", err))
}

/// What joins the header to the lines: `{header}` becomes `{header,"lines":lines}`.
const LINES_KEY: &str = ",\"lines\":";

fn cart_document(cart: &Cart, lines: &str) -> StoreResult<String> {
    let header = CartHeader {
        id: &cart.id,
        owner: &cart.owner,
        version: cart.version,
        updated_at: cart.updated_at,
        expires_at: cart.expires_at,
    };
    let mut document = to_json(&header, "serializing a cart")?;
    document.pop();
    document.reserve(LINES_KEY.len() + lines.len() + 1);
    document.push_str(LINES_KEY);
    document.push_str(lines);
    document.push('}');
    Ok(document)
}

pub async fn of(conn: &mut Conn<'_>, shopper: &Shopper) -> StoreResult<Option<Cart>> {
    let row: Option<CartRow> = on_conn!(conn, c => carts::table
        .find(shopper.cart_id())
        .select(CartRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a cart"))?;
    row.map(Cart::try_from).transpose()
}

/// The shopper's cart, its row locked until the transaction ends (on PostgreSQL; SQLite has one
/// writer at a time anyway), so that checkout and cart changes of one shopper take turns.
pub async fn lock(conn: &mut Conn<'_>, shopper: &Shopper) -> StoreResult<Option<Cart>> {
    let row: Option<CartRow> = on_conn!(conn, c => diesel::update(carts::table.find(shopper.cart_id()))
        .set(carts::version.eq(carts::version))
        .returning(CartRow::as_returning())
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("locking a cart"))?;
    row.map(Cart::try_from).transpose()
}

/// How a cart change's event reaches subscriptions; chosen once, from the bus.
#[derive(Clone)]
pub enum Announce {
    /// Written with the change, published by the outbox worker: subscribers on other instances
    /// hear of it even if this instance dies right after the commit.
    Outbox,
    /// Published on the bus at commit (by whoever commits it, even if the caller has gone). The
    /// bus reaches only this process's subscriptions, which die with it, and a new subscription
    /// starts from the stored cart: the outbox's promise buys nothing there, and its row (the
    /// whole cart) would be inserted, claimed and deleted for every change.
    AtCommit(Arc<dyn EventBus>),
}

impl Announce {
    pub fn of(bus: Arc<dyn EventBus>) -> Self {
        if bus.reaches_other_instances() { Announce::Outbox } else { Announce::AtCommit(bus) }
    }

    /// `writes` (the first of which stores a cart change) with the change's event.
    pub fn with_event(&self, writes: Writes, event: OutboxRow) -> Writes {
        match self {
            Announce::Outbox => writes.event(event),
            Announce::AtCommit(bus) => writes.publish_at_commit(bus.clone(), event.into_event()),
        }
    }
}

/// A cart's next version as it is written: its row, and the event that announces it, whose
/// payload is the cart serialized (the lines serialized once for both).
pub struct CartChange {
    row: CartRow,
    event: OutboxRow,
}

impl CartChange {
    pub fn of(cart: &Cart) -> StoreResult<Self> {
        let lines = serialized_lines(&cart.lines)?;
        let event = OutboxRow::serialized(cart_topic(&cart.owner), cart_document(cart, &lines)?, cart.updated_at);
        let row = CartRow {
            id: cart.id.clone(),
            owner: cart.owner.key(),
            version: cart.version,
            updated_at: cart.updated_at.naive_utc(),
            expires_at: cart.expires_at.map(|at| at.naive_utc()),
            lines,
        };
        Ok(Self { row, event })
    }

    /// The cart serialized, as its event carries it.
    pub fn document(&self) -> &str {
        &self.event.payload
    }

    /// The write that stores the change (version 1 creates the cart) if the store still holds
    /// the version before it, and the event: the write changes no row when another change came
    /// first.
    pub fn into_write(self) -> (Box<dyn Write>, OutboxRow) {
        let Self { row, event } = self;
        let write: Box<dyn Write> = if row.version <= 1 {
            Box::new(diesel::insert_into(carts::table).values(row).on_conflict_do_nothing())
        } else {
            Box::new(diesel::update(carts::table.find(row.id).filter(carts::version.eq(row.version - 1))).set((
                carts::version.eq(row.version),
                carts::lines.eq(row.lines),
                carts::updated_at.eq(row.updated_at),
                carts::expires_at.eq(row.expires_at),
            )))
        };
        (write, event)
    }
}

/// `CartChange::of(cart)?.into_write()`: for a change written with others of its transaction.
pub fn save(cart: &Cart) -> StoreResult<(Box<dyn Write>, OutboxRow)> {
    Ok(CartChange::of(cart)?.into_write())
}

/// Rounds of cart changes (see `rounds`), each answering whether the change was written.
pub type CartRounds = Rounds<CartChange, Result<bool, String>>;

/// Changes per round: enough to cover every connection of a busy server.
const CHANGES_PER_ROUND: usize = 256;
const WRITERS_AT_ONCE: usize = 2;

pub fn rounds(db: Pool, announce: Announce) -> Arc<CartRounds> {
    Rounds::new(CHANGES_PER_ROUND, WRITERS_AT_ONCE, move |round: Vec<CartChange>| {
        let (db, announce) = (db.clone(), announce.clone());
        async move {
            let changes = round.len();
            let written = db
                .atomically(async |c| {
                    let mut saved = vec![false; changes];
                    let keyed = round.into_iter().map(|change| (change.row.id.clone(), change)).collect();
                    // A cart's second change in the round goes after its first (see `layers`).
                    for layer in layers(keyed) {
                        let (places, layer): (Vec<usize>, Vec<CartChange>) = layer.into_iter().unzip();
                        for (place, written) in places.into_iter().zip(write_layer(c, layer, &announce).await?) {
                            saved[place] = written;
                        }
                    }
                    Ok::<_, StoreError>(saved)
                })
                .await;
            match written {
                Ok(saved) => saved.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err.to_string()); changes],
            }
        }
        .boxed()
    })
}

/// Changes of distinct carts, written together; whether each was. On PostgreSQL that is one
/// statement whose text is the same for any number of changes, so that its plan is made once
/// per connection: a statement with a member per change was planned afresh every round, a
/// quarter of PostgreSQL's time in the cart bench. On SQLite, one after another.
async fn write_layer(conn: &mut Conn<'_>, layer: Vec<CartChange>, announce: &Announce) -> StoreResult<Vec<bool>> {
    let Backend::Postgres(pg) = &mut conn.backend else {
        let writes = layer
            .into_iter()
            .map(|change| {
                let (write, event) = change.into_write();
                announce.with_event(Writes::of(write), event)
            })
            .collect();
        let counts = Writes::run_together(writes, conn, "changing carts").await?;
        return Ok(counts.iter().map(|counts| counts.as_slice().first().is_some_and(|&n| n > 0)).collect());
    };
    let (columns, announcements) = PgCartColumns::of(layer, announce);
    // Payloads are gathered only for events that go in the outbox (see `PgCartColumns::of`).
    let statement = if columns.payloads.is_empty() { SAVE_CARTS } else { SAVE_CARTS_AND_EVENTS };
    let statement = diesel::sql_query(statement)
        .bind::<Array<Text>, _>(&columns.ids)
        .bind::<Array<Text>, _>(&columns.owners)
        .bind::<Array<BigInt>, _>(&columns.versions)
        .bind::<Array<Timestamp>, _>(&columns.updated_at)
        .bind::<Array<Nullable<Timestamp>>, _>(&columns.expires_at)
        .bind::<Array<Text>, _>(&columns.lines);
    let written: Vec<SavedCart> = if columns.payloads.is_empty() {
        statement.prepared().load(&mut **pg).await
    } else {
        statement
            .bind::<Array<Text>, _>(&columns.topics)
            .bind::<Array<Text>, _>(&columns.payloads)
            .prepared()
            .load(&mut **pg)
            .await
    }
    .map_err(store_error("changing carts"))?;
    let written: HashSet<String> = written.into_iter().map(|saved| saved.id).collect();
    let mut saved = Vec::with_capacity(announcements.len());
    for (id, at_commit) in announcements {
        let was_written = written.contains(&id);
        if was_written {
            match at_commit {
                Some((bus, event)) => conn.publish_at_commit(bus, event),
                None => conn.queued(Queue::Outbox),
            }
        }
        saved.push(was_written);
    }
    Ok(saved)
}

/// An event to publish at commit, if the change it announces is written.
type AtCommit = Option<(Arc<dyn EventBus>, Event)>;

/// The changes of a layer as the arrays its statement unnests (events only if they go in the
/// outbox), and per change, its cart's id and the event to publish at commit.
#[derive(Default)]
struct PgCartColumns {
    ids: Vec<String>,
    owners: Vec<String>,
    versions: Vec<i64>,
    updated_at: Vec<NaiveDateTime>,
    expires_at: Vec<Option<NaiveDateTime>>,
    lines: Vec<String>,
    topics: Vec<String>,
    payloads: Vec<String>,
}

impl PgCartColumns {
    fn of(layer: Vec<CartChange>, announce: &Announce) -> (Self, Vec<(String, AtCommit)>) {
        let mut columns = Self::default();
        let mut announcements = Vec::with_capacity(layer.len());
        for CartChange { row, event } in layer {
            columns.ids.push(row.id.clone());
            columns.owners.push(row.owner);
            columns.versions.push(row.version);
            columns.updated_at.push(row.updated_at);
            columns.expires_at.push(row.expires_at);
            columns.lines.push(row.lines);
            let at_commit = match announce {
                Announce::Outbox => {
                    columns.topics.push(event.topic);
                    columns.payloads.push(event.payload);
                    None
                }
                Announce::AtCommit(bus) => Some((bus.clone(), event.into_event())),
            };
            announcements.push((row.id, at_commit));
        }
        (columns, announcements)
    }
}

#[derive(QueryableByName)]
struct SavedCart {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Each change creates its cart (version 1) or moves it on from the version before; the ids
/// of the carts written come back.
macro_rules! save_carts_sql {
    ($events:literal) => {
        concat!(
            "WITH changes AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamp[], ",
            "$5::timestamp[], $6::text[]) AS c(id, owner, version, updated_at, expires_at, lines)), ",
            "created AS (INSERT INTO carts (id, owner, version, updated_at, expires_at, lines) ",
            "SELECT id, owner, version, updated_at, expires_at, lines FROM changes WHERE version <= 1 ",
            "ON CONFLICT DO NOTHING RETURNING id), ",
            "moved AS (UPDATE carts SET version = c.version, lines = c.lines, updated_at = c.updated_at, ",
            "expires_at = c.expires_at FROM changes c ",
            "WHERE c.version > 1 AND carts.id = c.id AND carts.version = c.version - 1 RETURNING carts.id), ",
            "written AS (SELECT id FROM created UNION ALL SELECT id FROM moved)",
            $events,
            " SELECT id FROM written"
        )
    };
}

const SAVE_CARTS: &str = save_carts_sql!("");

/// The same, with each written change's event in the outbox, dated (like `CartChange::of`'s
/// event) when the cart changed.
const SAVE_CARTS_AND_EVENTS: &str = save_carts_sql!(
    ", announced AS (INSERT INTO outbox (topic, payload, created_at) \
     SELECT e.topic, e.payload, e.updated_at FROM unnest($1::text[], $7::text[], $8::text[], $4::timestamp[]) \
     AS e(id, topic, payload, updated_at) JOIN written USING (id))"
);

/// Deletes guest carts past their expiry and carts untouched since `untouched_since`.
pub async fn delete_expired(
    conn: &mut Conn<'_>,
    now: DateTime<Utc>,
    untouched_since: DateTime<Utc>,
) -> StoreResult<u64> {
    on_conn!(conn, c => diesel::delete(
        carts::table.filter(carts::expires_at.le(now.naive_utc()).or(carts::updated_at.lt(untouched_since.naive_utc()))),
    )
    .execute(c)
    .await)
    .map(|n| n as u64)
    .map_err(store_error("deleting expired carts"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::primitives::Money;

    fn written(cart: &Cart) -> String {
        cart_document(cart, &serialized_lines(&cart.lines).expect("lines")).expect("document")
    }

    #[test]
    fn the_document_written_around_the_lines_is_the_cart_serialized() {
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 3, 30, 0).single().expect("a time");
        let mut cart = Cart::empty(&Shopper::Guest("s-1".to_owned()), now);
        assert_eq!(written(&cart), serde_json::to_string(&cart).expect("serialized"));

        cart.expires_at = Some(now + chrono::Duration::hours(1));
        cart.lines = ["p-1", "p-\"2\""]
            .map(|id| CartLine {
                product_id: id.to_owned(),
                quantity: 3,
                unit_price: Money { cents: 1999, currency: "EUR".to_owned() },
                added_at: now,
            })
            .to_vec();
        let document = written(&cart);
        assert_eq!(document, serde_json::to_string(&cart).expect("serialized"));
        assert_eq!(serde_json::from_str::<Cart>(&document).expect("a cart"), cart);
    }
}
