use crate::db::prepared::PrepareOnce;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::INSERT_CHUNK;
use crate::db::models::{CategoryRow, InventoryRow, ProductRow};
use crate::db::pool::{Conn, execute_batch, on_conn};
use crate::db::schema::{categories, inventory, products};
use crate::db::store_error;
use crate::domain::ports::StoreResult;

pub async fn products_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<ProductRow>> {
    on_conn!(conn, c => products::table
        .filter(products::id.eq_any(ids))
        .select(ProductRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading products"))
}

pub async fn product_count(conn: &mut Conn<'_>) -> StoreResult<i64> {
    on_conn!(conn, c => products::table.count().get_result(c).await).map_err(store_error("counting products"))
}

pub async fn categories_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<CategoryRow>> {
    on_conn!(conn, c => categories::table
        .filter(categories::id.eq_any(ids))
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading categories"))
}

pub async fn categories_by_paths(conn: &mut Conn<'_>, paths: &[String]) -> StoreResult<Vec<CategoryRow>> {
    on_conn!(conn, c => categories::table
        .filter(categories::path.eq_any(paths))
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading categories by path"))
}

pub async fn category_children(conn: &mut Conn<'_>, parent_ids: &[String]) -> StoreResult<Vec<CategoryRow>> {
    on_conn!(conn, c => categories::table
        .filter(categories::parent_id.eq_any(parent_ids))
        .order(categories::name)
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading child categories"))
}

pub async fn root_categories(conn: &mut Conn<'_>) -> StoreResult<Vec<CategoryRow>> {
    on_conn!(conn, c => categories::table
        .filter(categories::parent_id.is_null())
        .order(categories::name)
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading root categories"))
}

pub async fn stock_levels(conn: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<Vec<InventoryRow>> {
    on_conn!(conn, c => inventory::table
        .filter(inventory::product_id.eq_any(product_ids))
        .select(InventoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading stock levels"))
}

/// Inserts categories that are new by path; rows must come parents first. The id derives from
/// the path, so a category another writer is inserting meanwhile may collide on either unique
/// index; both are left to it (see `carts::insert_missing_carts`).
pub async fn insert_missing_categories(conn: &mut Conn<'_>, rows: &[CategoryRow]) -> StoreResult<()> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        execute_batch!(conn, diesel::insert_into(categories::table).values(chunk.to_vec()).on_conflict_do_nothing())
            .map_err(store_error("inserting categories"))?;
    }
    Ok(())
}

/// Inserts products or replaces every field of existing ones except their creation time.
pub async fn upsert_products(conn: &mut Conn<'_>, rows: &[ProductRow]) -> StoreResult<()> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        execute_batch!(
            conn,
            diesel::insert_into(products::table).values(chunk.to_vec()).on_conflict(products::id).do_update().set((
                products::title.eq(excluded(products::title)),
                products::description.eq(excluded(products::description)),
                products::brand.eq(excluded(products::brand)),
                products::category_id.eq(excluded(products::category_id)),
                products::price_cents.eq(excluded(products::price_cents)),
                products::currency_code.eq(excluded(products::currency_code)),
                products::rating.eq(excluded(products::rating)),
                products::review_count.eq(excluded(products::review_count)),
                products::popularity.eq(excluded(products::popularity)),
                products::attributes.eq(excluded(products::attributes)),
                products::updated_at.eq(excluded(products::updated_at)),
            ))
        )
        .map_err(store_error("upserting products"))?;
    }
    Ok(())
}

/// Creates inventory rows for new products; for `replace_available` rows an existing row takes
/// the new available count and a new version, otherwise it is left alone.
pub async fn upsert_inventory(conn: &mut Conn<'_>, rows: &[InventoryRow], replace_available: bool) -> StoreResult<()> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        if replace_available {
            execute_batch!(
                conn,
                diesel::insert_into(inventory::table)
                    .values(chunk.to_vec())
                    .on_conflict(inventory::product_id)
                    .do_update()
                    .set((
                        inventory::available.eq(excluded(inventory::available)),
                        inventory::version.eq(inventory::version + 1)
                    ))
            )
        } else {
            execute_batch!(
                conn,
                diesel::insert_into(inventory::table)
                    .values(chunk.to_vec())
                    .on_conflict(inventory::product_id)
                    .do_nothing()
            )
        }
        .map_err(store_error("upserting inventory"))?;
    }
    Ok(())
}

pub async fn set_available(conn: &mut Conn<'_>, product_id: &str, available: i32) -> StoreResult<Option<InventoryRow>> {
    on_conn!(conn, c => diesel::update(inventory::table.find(product_id))
        .set((inventory::available.eq(available), inventory::version.eq(inventory::version + 1)))
        .returning(InventoryRow::as_returning())
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("setting stock"))
}

/// A product with its available stock and category path, as search indexes it.
pub type SearchRow = (ProductRow, Option<i32>, Option<String>);

pub async fn search_rows_page(conn: &mut Conn<'_>, after_id: &str, limit: i64) -> StoreResult<Vec<SearchRow>> {
    on_conn!(conn, c => products::table
        .left_join(inventory::table)
        .left_join(categories::table)
        .filter(products::id.gt(after_id))
        .order(products::id)
        .limit(limit)
        .select((ProductRow::as_select(), inventory::available.nullable(), categories::path.nullable()))
        .load(c)
        .await)
    .map_err(store_error("loading products to index"))
}

pub async fn search_rows_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<SearchRow>> {
    on_conn!(conn, c => products::table
        .left_join(inventory::table)
        .left_join(categories::table)
        .filter(products::id.eq_any(ids))
        .select((ProductRow::as_select(), inventory::available.nullable(), categories::path.nullable()))
        .load(c)
        .await)
    .map_err(store_error("loading products to index"))
}
