//! Stock levels and their moves. The conditional `reserve` is the one serialization point of
//! stock on both backends; CHECK constraints keep every count non-negative. Sold units leave
//! reserved through pending sales (`sell`, `settle_sales`), so that an order never locks a
//! stock row.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, Queue, execute_batch, on_conn};
use super::prepared::PrepareOnce;
use super::schema::{inventory, products, stock_sales};
use super::writes::{Write, Writes};
use super::{INSERT_CHUNK, converted, store_error};
use crate::domain::cart::model::CartLine;
use crate::domain::catalog::model::{Offer, StockLevel};
use crate::domain::primitives::Money;
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = inventory)]
pub struct InventoryRow {
    pub product_id: String,
    pub available: i32,
    pub reserved: i32,
    pub version: i64,
}

impl TryFrom<InventoryRow> for StockLevel {
    type Error = StoreError;

    fn try_from(row: InventoryRow) -> StoreResult<Self> {
        Ok(StockLevel {
            product_id: row.product_id,
            available: row.available,
            reserved: row.reserved,
            version: row.version,
        })
    }
}

/// Units sold and not yet settled out of reserved (`sell`).
#[derive(Insertable)]
#[diesel(table_name = stock_sales)]
struct StockSaleRow {
    product_id: String,
    quantity: i32,
}

/// A stock row and the units of its sales not yet settled (`sell`), which its reserved count
/// still holds: they are taken off here, so that no read sees the lag.
impl TryFrom<(InventoryRow, Option<i64>)> for StockLevel {
    type Error = StoreError;

    fn try_from((row, unsettled): (InventoryRow, Option<i64>)) -> StoreResult<Self> {
        let unsettled = i32::try_from(unsettled.unwrap_or_default())
            .map_err(|err| StoreError::internal("counting unsettled sales", err))?;
        Ok(StockLevel { reserved: row.reserved - unsettled, ..StockLevel::try_from(row)? })
    }
}

pub async fn stock_levels(conn: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<Vec<StockLevel>> {
    let unsettled = stock_sales::table
        .filter(stock_sales::product_id.eq(inventory::product_id))
        .select(diesel::dsl::sum(stock_sales::quantity))
        .single_value();
    let rows: Vec<(InventoryRow, Option<i64>)> = on_conn!(conn, c => inventory::table
        .filter(inventory::product_id.eq_any(product_ids))
        .select((InventoryRow::as_select(), unsettled))
        .load(c)
        .await)
    .map_err(store_error("loading stock levels"))?;
    converted(rows)
}

/// Creates stock rows for new products at `available`; with `replace_available` an existing
/// row takes the new count and a new version, otherwise it is left alone.
pub async fn upsert(conn: &mut Conn<'_>, levels: &[(String, i32)], replace_available: bool) -> StoreResult<()> {
    let rows: Vec<InventoryRow> = levels
        .iter()
        .map(|(product_id, available)| InventoryRow {
            product_id: product_id.clone(),
            available: *available,
            reserved: 0,
            version: 0,
        })
        .collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let insert = diesel::insert_into(inventory::table).values(chunk.to_vec()).on_conflict(inventory::product_id);
        if replace_available {
            execute_batch!(
                conn,
                insert.do_update().set((
                    inventory::available.eq(excluded(inventory::available)),
                    inventory::version.eq(inventory::version + 1)
                ))
            )
        } else {
            execute_batch!(conn, insert.do_nothing())
        }
        .map_err(store_error("upserting inventory"))?;
    }
    Ok(())
}

/// Sets the available count and bumps the version; `None` when the product is unknown.
pub async fn set_available(conn: &mut Conn<'_>, product_id: &str, available: i32) -> StoreResult<Option<StockLevel>> {
    let row: Option<InventoryRow> = on_conn!(conn, c => diesel::update(inventory::table.find(product_id))
        .set((inventory::available.eq(available), inventory::version.eq(inventory::version + 1)))
        .returning(InventoryRow::as_returning())
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("setting stock"))?;
    row.map(StockLevel::try_from).transpose()
}

/// Today's price and available units of the products that exist.
pub async fn offers(conn: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<HashMap<String, Offer>> {
    let rows: Vec<(String, i64, String, i32)> = on_conn!(conn, c => products::table
        .inner_join(inventory::table)
        .filter(products::id.eq_any(product_ids))
        .select((products::id, products::price_cents, products::currency_code, inventory::available))
        .load(c)
        .await)
    .map_err(store_error("loading product offers"))?;
    Ok(rows
        .into_iter()
        .map(|(id, cents, currency, available)| (id, Offer { price: Money { cents, currency }, available }))
        .collect())
}

/// Available units of the products (0 for unknown ones).
pub async fn available(conn: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<HashMap<String, i32>> {
    let rows: Vec<(String, i32)> = on_conn!(conn, c => inventory::table
        .filter(inventory::product_id.eq_any(product_ids))
        .select((inventory::product_id, inventory::available))
        .load(c)
        .await)
    .map_err(store_error("reading stock"))?;
    Ok(rows.into_iter().collect())
}

/// Takes `quantity` from available into reserved only if that many are available: the write
/// changes no row when they are not.
pub fn reserve(product_id: &str, quantity: i32) -> impl Write {
    diesel::update(inventory::table.find(product_id.to_owned()).filter(inventory::available.ge(quantity))).set((
        inventory::available.eq(inventory::available - quantity),
        inventory::reserved.eq(inventory::reserved + quantity),
        inventory::version.eq(inventory::version + 1),
    ))
}

/// Takes `quantity` out of available stock altogether (into a flash sale) only if that many
/// are available: the write changes no row when they are not.
pub fn withdraw(product_id: &str, quantity: i32) -> impl Write {
    diesel::update(inventory::table.find(product_id.to_owned()).filter(inventory::available.ge(quantity)))
        .set((inventory::available.eq(inventory::available - quantity), inventory::version.eq(inventory::version + 1)))
}

/// Units from outside available stock (a flash sale's) become reserved for a checkout session.
pub fn hold(product_id: &str, quantity: i32) -> impl Write {
    diesel::update(inventory::table.find(product_id.to_owned()))
        .set((inventory::reserved.eq(inventory::reserved + quantity), inventory::version.eq(inventory::version + 1)))
}

/// Reserved units leave stock: sold units being settled, or held units going back to the
/// flash sale they came from.
pub fn take_from_reserved(product_id: &str, quantity: i32) -> impl Write {
    diesel::update(inventory::table.find(product_id.to_owned()))
        .set((inventory::reserved.eq(inventory::reserved - quantity), inventory::version.eq(inventory::version + 1)))
}

/// The lines' units are sold: added to `writes` as pending sales, which the stock-sales worker
/// (woken by them) takes out of reserved in batches. An insert locks no stock row, so orders
/// for one hot product do not queue behind each other's durable commit.
pub fn sell(mut writes: Writes, lines: &[CartLine]) -> Writes {
    for line in lines {
        let sale = StockSaleRow { product_id: line.product_id.clone(), quantity: line.quantity };
        writes = writes.and(diesel::insert_into(stock_sales::table).values(sale));
    }
    writes.wakes(Queue::StockSales)
}

/// Settles every pending sale: deletes them and takes their units out of their products'
/// reserved counts, one write per product in product order. Run it in a transaction, so that
/// both happen or neither; two settling at once take different sales. There is no LIMIT: an
/// ordered, limited delete walked the index over every sale deleted since the last vacuum (1 ms
/// a round at 8,000), while orders wake the worker so often that few sales ever wait.
/// Returns how many it settled.
pub async fn settle_sales(conn: &mut Conn<'_>) -> StoreResult<usize> {
    let taken: Vec<(String, i32)> = on_conn!(conn, c => diesel::delete(stock_sales::table)
        .returning((stock_sales::product_id, stock_sales::quantity))
        .prepared()
        .get_results(c)
        .await)
    .map_err(store_error("taking pending sales"))?;
    let mut sold: BTreeMap<&str, i32> = BTreeMap::new();
    for (product_id, quantity) in &taken {
        *sold.entry(product_id).or_default() += quantity;
    }
    if let Some(settled) =
        Writes::each(sold.into_iter().map(|(product_id, units)| take_from_reserved(product_id, units)))
    {
        settled.run(conn, "settling sales").await?;
    }
    Ok(taken.len())
}

/// Whether any sale waits to be settled: the timer's cheap look.
pub async fn any_unsettled(conn: &mut Conn<'_>) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::select(diesel::dsl::exists(stock_sales::table.select(stock_sales::id)))
        .get_result(c)
        .await)
    .map_err(store_error("looking for pending sales"))
}

/// Units come back to available: from a reservation (`from_reserved`) or from a cancelled order.
pub fn give_back(product_id: &str, quantity: i32, from_reserved: bool) -> impl Write {
    let taken_from_reserved = if from_reserved { quantity } else { 0 };
    diesel::update(inventory::table.find(product_id.to_owned())).set((
        inventory::available.eq(inventory::available + quantity),
        inventory::reserved.eq(inventory::reserved - taken_from_reserved),
        inventory::version.eq(inventory::version + 1),
    ))
}
