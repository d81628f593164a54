use crate::db::prepared::PrepareOnce;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::models::{CartItemRow, CartRow};
use crate::db::pool::{Conn, execute_batch, on_conn};
use crate::db::schema::{cart_items, carts, inventory, products};
use crate::db::store_error;
use crate::domain::ports::StoreResult;

pub async fn cart_by_owner(conn: &mut Conn<'_>, owner: &str) -> StoreResult<Option<CartRow>> {
    on_conn!(conn, c => carts::table
        .filter(carts::owner.eq(owner))
        .select(CartRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a cart"))
}

pub async fn carts_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<CartRow>> {
    on_conn!(conn, c => carts::table
        .filter(carts::id.eq_any(ids))
        .select(CartRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading carts"))
}

/// Lines of the carts, in the order they were added.
pub async fn items_of(conn: &mut Conn<'_>, cart_ids: &[String]) -> StoreResult<Vec<CartItemRow>> {
    on_conn!(conn, c => cart_items::table
        .filter(cart_items::cart_id.eq_any(cart_ids))
        .order((cart_items::added_at, cart_items::product_id))
        .select(CartItemRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading cart lines"))
}

/// A cart another transaction is inserting at the same moment is left to it. The id derives from
/// the owner, so either unique index may be the one that sees the race; naming one (`owner`)
/// made PostgreSQL report the other (`carts_pkey`) as an error.
pub async fn insert_missing_carts(conn: &mut Conn<'_>, rows: &[CartRow]) -> StoreResult<()> {
    execute_batch!(conn, diesel::insert_into(carts::table).values(rows.to_vec()).on_conflict_do_nothing())
        .map(drop)
        .map_err(store_error("creating carts"))
}

/// Takes the cart's row lock (PostgreSQL; SQLite already has the single writer), so that
/// concurrent changes to one cart run one after another. False when the cart does not exist.
pub async fn lock_cart(conn: &mut Conn<'_>, cart_id: &str) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(carts::table.find(cart_id))
        .set(carts::version.eq(carts::version))
        .prepared()
        .execute(c)
        .await)
    .map(|rows| rows > 0)
    .map_err(store_error("locking a cart"))
}

pub async fn bump_version(
    conn: &mut Conn<'_>,
    cart_id: &str,
    now: NaiveDateTime,
    expires_at: Option<NaiveDateTime>,
) -> StoreResult<CartRow> {
    on_conn!(conn, c => diesel::update(carts::table.find(cart_id))
        .set((carts::version.eq(carts::version + 1), carts::updated_at.eq(now), carts::expires_at.eq(expires_at)))
        .returning(CartRow::as_returning())
        .prepared()
        .get_result(c)
        .await)
    .map_err(store_error("updating a cart"))
}

pub async fn delete_items(conn: &mut Conn<'_>, cart_id: &str, product_ids: &[String]) -> StoreResult<()> {
    on_conn!(conn, c => diesel::delete(
        cart_items::table.filter(cart_items::cart_id.eq(cart_id)).filter(cart_items::product_id.eq_any(product_ids)),
    )
    .execute(c)
    .await)
    .map(drop)
    .map_err(store_error("removing cart lines"))
}

/// Writes lines; an existing line keeps the time it was first added.
pub async fn upsert_items(conn: &mut Conn<'_>, rows: &[CartItemRow]) -> StoreResult<()> {
    execute_batch!(
        conn,
        diesel::insert_into(cart_items::table)
            .values(rows.to_vec())
            .on_conflict((cart_items::cart_id, cart_items::product_id))
            .do_update()
            .set((
                cart_items::quantity.eq(excluded(cart_items::quantity)),
                cart_items::unit_price_cents.eq(excluded(cart_items::unit_price_cents)),
                cart_items::currency_code.eq(excluded(cart_items::currency_code)),
            ))
    )
    .map(drop)
    .map_err(store_error("writing cart lines"))
}

/// (product id, price, currency, available) of the products that exist.
pub async fn offers(conn: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<Vec<(String, i64, String, i32)>> {
    on_conn!(conn, c => products::table
        .inner_join(inventory::table)
        .filter(products::id.eq_any(product_ids))
        .select((products::id, products::price_cents, products::currency_code, inventory::available))
        .load(c)
        .await)
    .map_err(store_error("loading product offers"))
}

pub async fn delete_expired(
    conn: &mut Conn<'_>,
    now: NaiveDateTime,
    untouched_since: NaiveDateTime,
) -> StoreResult<usize> {
    on_conn!(conn, c => diesel::delete(
        carts::table.filter(carts::expires_at.le(now).or(carts::updated_at.lt(untouched_since))),
    )
    .execute(c)
    .await)
    .map_err(store_error("deleting expired carts"))
}
