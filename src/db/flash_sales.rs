//! Flash sales and their entries. A sale's `remaining` is the exact end of its stock gate:
//! units are taken by a conditional UPDATE, so concurrent admissions on any number of
//! instances never take more than there are, whatever the gate's counters said.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::inventory;
use super::pool::{Backend, Conn, on_conn};
use super::prepared::PrepareOnce;
use super::schema::{checkout_sessions, flash_sale_entries, flash_sales};
use super::writes::{Write, Writes};
use super::{converted, parsed, store_error};
use crate::domain::checkout::CheckoutSession;
use crate::domain::flash::{Entry, EntryStatus, FlashSale};
use crate::domain::primitives::Money;
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = flash_sales)]
struct SaleRow {
    id: String,
    product_id: String,
    sale_price_cents: i64,
    currency_code: String,
    quantity: i32,
    remaining: i32,
    starts_at: NaiveDateTime,
    ends_at: NaiveDateTime,
    per_user_limit: i32,
    admission_per_minute: i32,
    hold_seconds: i32,
    shuffled: bool,
    rate_limited: i32,
    returned_to_stock: i32,
    ended_at: Option<NaiveDateTime>,
}

impl From<&FlashSale> for SaleRow {
    fn from(sale: &FlashSale) -> Self {
        SaleRow {
            id: sale.id.clone(),
            product_id: sale.product_id.clone(),
            sale_price_cents: sale.sale_price.cents,
            currency_code: sale.sale_price.currency.clone(),
            quantity: sale.quantity,
            remaining: sale.remaining,
            starts_at: sale.starts_at.naive_utc(),
            ends_at: sale.ends_at.naive_utc(),
            per_user_limit: sale.per_user_limit,
            admission_per_minute: sale.admission_per_minute,
            hold_seconds: sale.hold_seconds,
            shuffled: sale.shuffled,
            rate_limited: sale.rate_limited,
            returned_to_stock: sale.returned_to_stock,
            ended_at: sale.ended_at.map(|at| at.naive_utc()),
        }
    }
}

impl TryFrom<SaleRow> for FlashSale {
    type Error = StoreError;

    fn try_from(row: SaleRow) -> StoreResult<Self> {
        Ok(FlashSale {
            id: row.id,
            product_id: row.product_id,
            sale_price: Money { cents: row.sale_price_cents, currency: row.currency_code },
            quantity: row.quantity,
            remaining: row.remaining,
            starts_at: row.starts_at.and_utc(),
            ends_at: row.ends_at.and_utc(),
            per_user_limit: row.per_user_limit,
            admission_per_minute: row.admission_per_minute,
            hold_seconds: row.hold_seconds,
            shuffled: row.shuffled,
            rate_limited: row.rate_limited,
            returned_to_stock: row.returned_to_stock,
            ended_at: row.ended_at.map(|at| at.and_utc()),
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = flash_sale_entries)]
struct EntryRow {
    sale_id: String,
    shopper: String,
    status: String,
    quantity: i32,
    ticket: Option<i64>,
    checkout_session_id: Option<String>,
    expires_at: Option<NaiveDateTime>,
    admitted_at: Option<NaiveDateTime>,
    joined_at: NaiveDateTime,
}

impl TryFrom<EntryRow> for Entry {
    type Error = StoreError;

    fn try_from(row: EntryRow) -> StoreResult<Self> {
        Ok(Entry {
            status: parsed(EntryStatus::parse(&row.status), &row.status, "reading a flash sale entry")?,
            sale_id: row.sale_id,
            shopper: row.shopper,
            quantity: row.quantity,
            ticket: row.ticket,
            checkout_session_id: row.checkout_session_id,
            expires_at: row.expires_at.map(|at| at.and_utc()),
            admitted_at: row.admitted_at.map(|at| at.and_utc()),
            joined_at: row.joined_at.and_utc(),
        })
    }
}

/// What the entries of a sale add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryCounts {
    pub joined: i64,
    pub admitted: i64,
    pub waiting: i64,
    pub held_units: i64,
    pub purchased_units: i64,
    pub expired: i64,
    pub sold_out: i64,
    /// The highest ticket of any entry.
    pub last_ticket: i64,
}

pub async fn insert_sale(conn: &mut Conn<'_>, sale: &FlashSale) -> StoreResult<()> {
    let row = SaleRow::from(sale);
    on_conn!(conn, c => diesel::insert_into(flash_sales::table).values(row).prepared().execute(c).await)
        .map(drop)
        .map_err(store_error("creating a flash sale"))
}

pub async fn sale(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<FlashSale>> {
    let row: Option<SaleRow> = on_conn!(conn, c => flash_sales::table
        .find(id)
        .select(SaleRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a flash sale"))?;
    row.map(FlashSale::try_from).transpose()
}

/// Sales not ended by `now` (nor by an admin), soonest start first.
pub async fn upcoming(conn: &mut Conn<'_>, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<FlashSale>> {
    let rows: Vec<SaleRow> = on_conn!(conn, c => flash_sales::table
        .filter(flash_sales::ended_at.is_null())
        .filter(flash_sales::ends_at.gt(now.naive_utc()))
        .order((flash_sales::starts_at, flash_sales::id))
        .limit(limit)
        .select(SaleRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("listing flash sales"))?;
    converted(rows)
}

/// Sales whose end has not been settled yet: the order worker's round.
pub async fn unsettled(conn: &mut Conn<'_>) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => flash_sales::table.filter(flash_sales::ended_at.is_null()).select(flash_sales::id).load(c).await)
        .map_err(store_error("listing open flash sales"))
}

pub async fn entry(conn: &mut Conn<'_>, sale_id: &str, shopper: &str) -> StoreResult<Option<Entry>> {
    let row: Option<EntryRow> = on_conn!(conn, c => flash_sale_entries::table
        .find((sale_id, shopper))
        .select(EntryRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a flash sale entry"))?;
    row.map(Entry::try_from).transpose()
}

impl From<&Entry> for EntryRow {
    fn from(entry: &Entry) -> Self {
        EntryRow {
            sale_id: entry.sale_id.clone(),
            shopper: entry.shopper.clone(),
            status: entry.status.as_str().to_owned(),
            quantity: entry.quantity,
            ticket: entry.ticket,
            checkout_session_id: entry.checkout_session_id.clone(),
            expires_at: entry.expires_at.map(|at| at.naive_utc()),
            admitted_at: entry.admitted_at.map(|at| at.naive_utc()),
            joined_at: entry.joined_at.naive_utc(),
        }
    }
}

/// Adds the entry unless the shopper has one; whether it did.
pub async fn insert_entry(conn: &mut Conn<'_>, entry: &Entry) -> StoreResult<bool> {
    let row = EntryRow::from(entry);
    on_conn!(conn, c => diesel::insert_into(flash_sale_entries::table).values(row).on_conflict_do_nothing().prepared().execute(c).await)
        .map(|inserted| inserted == 1)
        .map_err(store_error("joining a flash sale"))
}

/// Adds, in one statement, each entry whose shopper has none in its sale; (sale, shopper) of
/// those added.
pub async fn insert_entries(conn: &mut Conn<'_>, entries: &[&Entry]) -> StoreResult<Vec<(String, String)>> {
    let rows: Vec<EntryRow> = entries.iter().map(|entry| EntryRow::from(*entry)).collect();
    let insert = diesel::insert_into(flash_sale_entries::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning((flash_sale_entries::sale_id, flash_sale_entries::shopper));
    // A multi-row INSERT compiles for SQLite only through diesel's synchronous connection.
    match &mut conn.backend {
        Backend::Postgres(c) => diesel_async::RunQueryDsl::get_results(insert, &mut **c).await,
        Backend::Sqlite(c) => c.spawn_blocking(move |sync| diesel::RunQueryDsl::get_results(insert, sync)).await,
    }
    .map_err(store_error("joining a flash sale"))
}

/// Shoppers who joined before the start and have no ticket yet, in joining order.
pub async fn unticketed(conn: &mut Conn<'_>, sale_id: &str) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Waiting.as_str()))
        .filter(flash_sale_entries::ticket.is_null())
        .order((flash_sale_entries::joined_at, flash_sale_entries::shopper))
        .select(flash_sale_entries::shopper)
        .load(c)
        .await)
    .map_err(store_error("loading the early arrivals"))
}

/// Gives the early arrivals the first tickets, in the order given, once: no ticket is handed
/// out before (the gate opens the waiting room only once this is done).
pub async fn shuffle_in(conn: &mut Conn<'_>, sale_id: &str, shoppers: &[String]) -> StoreResult<bool> {
    let claimed =
        on_conn!(conn, c => diesel::update(flash_sales::table.find(sale_id).filter(flash_sales::shuffled.eq(false)))
        .set(flash_sales::shuffled.eq(true))
        .prepared()
        .execute(c)
        .await)
        .map_err(store_error("shuffling the early arrivals"))?;
    if claimed == 0 {
        return Ok(false);
    }
    for (ticket, shopper) in (1_i64..).zip(shoppers) {
        on_conn!(conn, c => diesel::update(flash_sale_entries::table.find((sale_id, shopper)))
            .set(flash_sale_entries::ticket.eq(ticket))
            .prepared()
            .execute(c)
            .await)
        .map_err(store_error("ticketing an early arrival"))?;
    }
    Ok(true)
}

/// Waiting entries whose ticket is let through, in ticket order.
pub async fn due(conn: &mut Conn<'_>, sale_id: &str, up_to_ticket: i64, limit: i64) -> StoreResult<Vec<Entry>> {
    let rows: Vec<EntryRow> = on_conn!(conn, c => flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Waiting.as_str()))
        .filter(flash_sale_entries::ticket.le(up_to_ticket))
        .order(flash_sale_entries::ticket)
        .limit(limit)
        .select(EntryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading admitted shoppers"))?;
    converted(rows)
}

/// Takes `quantity` of the sale's units if that many remain (one row changed), else nothing.
pub fn take_units(sale_id: &str, quantity: i32) -> impl Write {
    diesel::update(flash_sales::table.find(sale_id.to_owned()).filter(flash_sales::remaining.ge(quantity)))
        .set(flash_sales::remaining.eq(flash_sales::remaining - quantity))
}

/// A WAITING entry becomes RESERVED with its session; whether it was still waiting.
pub async fn admit(
    conn: &mut Conn<'_>,
    entry: &Entry,
    session_id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(flash_sale_entries::table
        .find((&entry.sale_id, &entry.shopper))
        .filter(flash_sale_entries::status.eq(EntryStatus::Waiting.as_str())))
    .set((
        flash_sale_entries::status.eq(EntryStatus::Reserved.as_str()),
        flash_sale_entries::checkout_session_id.eq(session_id),
        flash_sale_entries::expires_at.eq(expires_at.naive_utc()),
        flash_sale_entries::admitted_at.eq(now.naive_utc()),
    ))
    .prepared()
    .execute(c)
    .await)
    .map(|changed| changed == 1)
    .map_err(store_error("admitting a shopper"))
}

/// Moves the sale's entries in `from` (all, or one shopper's) to `to`; how many moved.
pub async fn move_entries(
    conn: &mut Conn<'_>,
    sale_id: &str,
    shopper: Option<&str>,
    from: EntryStatus,
    to: EntryStatus,
) -> StoreResult<usize> {
    on_conn!(conn, c => {
        let mut update = diesel::update(flash_sale_entries::table)
            .filter(flash_sale_entries::sale_id.eq(sale_id))
            .filter(flash_sale_entries::status.eq(from.as_str()))
            .into_boxed();
        if let Some(shopper) = shopper {
            update = update.filter(flash_sale_entries::shopper.eq(shopper));
        }
        update.set(flash_sale_entries::status.eq(to.as_str())).prepared().execute(c).await
    })
    .map_err(store_error("moving flash sale entries"))
}

/// RESERVED entries whose session was paid become PURCHASED; returns their shoppers.
pub async fn mark_purchased(conn: &mut Conn<'_>, sale_id: &str) -> StoreResult<Vec<String>> {
    let paid = checkout_sessions::table
        .filter(checkout_sessions::flash_sale_id.eq(sale_id))
        .filter(checkout_sessions::status.eq("COMPLETED"))
        .select(checkout_sessions::id);
    on_conn!(conn, c => diesel::update(flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Reserved.as_str()))
        .filter(flash_sale_entries::checkout_session_id.eq_any(paid.nullable())))
    .set(flash_sale_entries::status.eq(EntryStatus::Purchased.as_str()))
    .returning(flash_sale_entries::shopper)
    .prepared()
    .get_results(c)
    .await)
    .map_err(store_error("marking paid holds"))
}

/// RESERVED entries of the sale (held at `now` or lapsed, as `lapsed_by` says).
pub async fn holds(conn: &mut Conn<'_>, sale_id: &str, lapsed_by: Option<DateTime<Utc>>) -> StoreResult<Vec<Entry>> {
    let rows: Vec<EntryRow> = on_conn!(conn, c => {
        let mut query = flash_sale_entries::table
            .filter(flash_sale_entries::sale_id.eq(sale_id))
            .filter(flash_sale_entries::status.eq(EntryStatus::Reserved.as_str()))
            .select(EntryRow::as_select())
            .into_boxed();
        if let Some(now) = lapsed_by {
            query = query.filter(flash_sale_entries::expires_at.le(now.naive_utc()));
        }
        query.load(c).await
    })
    .map_err(store_error("loading holds"))?;
    converted(rows)
}

/// A hold's units go back to the sale (out of reserved stock) and its entry is EXPIRED.
pub async fn release_hold(conn: &mut Conn<'_>, sale_id: &str, session: &CheckoutSession) -> StoreResult<()> {
    for line in &session.lines {
        Writes::new(inventory::take_from_reserved(&line.product_id, line.quantity))
            .run(conn, "releasing a hold")
            .await?;
        on_conn!(conn, c => diesel::update(flash_sales::table.find(sale_id))
            .set(flash_sales::remaining.eq(flash_sales::remaining + line.quantity))
            .prepared()
            .execute(c)
            .await)
        .map_err(store_error("giving units back to a sale"))?;
    }
    on_conn!(conn, c => diesel::update(flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::checkout_session_id.eq(&session.id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Reserved.as_str())))
    .set(flash_sale_entries::status.eq(EntryStatus::Expired.as_str()))
    .prepared()
    .execute(c)
    .await)
    .map(drop)
    .map_err(store_error("expiring a hold"))
}

/// Ends the sale once, setting aside what remains as returned to regular stock and keeping
/// the count of refused attempts its gate held. The units returned, or `None` when it had
/// ended already.
pub async fn end(
    conn: &mut Conn<'_>,
    sale: &FlashSale,
    rate_limited: i32,
    now: DateTime<Utc>,
) -> StoreResult<Option<i32>> {
    on_conn!(conn, c => diesel::update(flash_sales::table.find(&sale.id).filter(flash_sales::ended_at.is_null()))
        .set((
            flash_sales::ended_at.eq(now.naive_utc()),
            flash_sales::rate_limited.eq(rate_limited),
            flash_sales::returned_to_stock.eq(flash_sales::remaining),
            flash_sales::remaining.eq(0),
        ))
        .returning(flash_sales::returned_to_stock)
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("ending a flash sale"))
}

/// Waiting entries with a ticket at or before `ticket`: the place of that ticket's holder.
pub async fn waiting_up_to(conn: &mut Conn<'_>, sale_id: &str, ticket: i64) -> StoreResult<i64> {
    on_conn!(conn, c => flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Waiting.as_str()))
        .filter(flash_sale_entries::ticket.le(ticket))
        .count()
        .get_result(c)
        .await)
    .map_err(store_error("finding a place in the waiting room"))
}

/// Whether any entry of the sale holds units.
pub async fn any_held(conn: &mut Conn<'_>, sale_id: &str) -> StoreResult<bool> {
    let held: Option<String> = on_conn!(conn, c => flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq(sale_id))
        .filter(flash_sale_entries::status.eq(EntryStatus::Reserved.as_str()))
        .select(flash_sale_entries::shopper)
        .first(c)
        .await
        .optional())
    .map_err(store_error("looking for holds"))?;
    Ok(held.is_some())
}

/// Per sale and status: entries, their units, those admitted, the highest ticket.
type StatusCounts = (String, String, i64, Option<i64>, i64, Option<i64>);

/// What the entries of each sale add up to, in one query for all of them.
pub async fn counts_of(conn: &mut Conn<'_>, sale_ids: &[String]) -> StoreResult<HashMap<String, EntryCounts>> {
    let rows: Vec<StatusCounts> = on_conn!(conn, c => flash_sale_entries::table
        .filter(flash_sale_entries::sale_id.eq_any(sale_ids))
        .group_by((flash_sale_entries::sale_id, flash_sale_entries::status))
        .select((
            flash_sale_entries::sale_id,
            flash_sale_entries::status,
            diesel::dsl::count_star(),
            diesel::dsl::sum(flash_sale_entries::quantity),
            diesel::dsl::count(flash_sale_entries::admitted_at),
            diesel::dsl::max(flash_sale_entries::ticket),
        ))
        .load(c)
        .await)
    .map_err(store_error("counting flash sale entries"))?;
    let mut all: HashMap<String, EntryCounts> =
        sale_ids.iter().map(|id| (id.clone(), EntryCounts::default())).collect();
    for (sale_id, status, entries, units, admitted, last_ticket) in rows {
        let counts = all.entry(sale_id).or_default();
        counts.last_ticket = counts.last_ticket.max(last_ticket.unwrap_or_default());
        let units = units.unwrap_or_default();
        counts.joined += entries;
        counts.admitted += admitted;
        match EntryStatus::parse(&status) {
            Some(EntryStatus::Waiting) => counts.waiting += entries,
            Some(EntryStatus::Reserved) => counts.held_units += units,
            Some(EntryStatus::Purchased) => counts.purchased_units += units,
            Some(EntryStatus::Expired) => counts.expired += entries,
            Some(EntryStatus::SoldOut) => counts.sold_out += entries,
            None => {}
        }
    }
    Ok(all)
}
