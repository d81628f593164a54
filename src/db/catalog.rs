//! Products and categories: rows, queries and the documents search indexes.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, execute_batch, on_conn};
use super::schema::{categories, inventory, products};
use super::{IDS_PER_STATEMENT, INSERT_CHUNK, converted, from_json, store_error, to_json};
use crate::domain::catalog::model::{Attribute, Category, Product};
use crate::domain::primitives::Money;
use crate::domain::search::SearchDocument;
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// NULL rather than DEFAULT for None, which SQLite needs for multi-row upserts.
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = categories)]
pub struct CategoryRow {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub path: String,
    pub depth: i32,
}

impl TryFrom<CategoryRow> for Category {
    type Error = StoreError;

    fn try_from(row: CategoryRow) -> StoreResult<Self> {
        Ok(Category { id: row.id, name: row.name, parent_id: row.parent_id, path: row.path, depth: row.depth })
    }
}

impl TryFrom<&Category> for CategoryRow {
    type Error = StoreError;

    fn try_from(c: &Category) -> StoreResult<Self> {
        Ok(CategoryRow {
            id: c.id.clone(),
            name: c.name.clone(),
            parent_id: c.parent_id.clone(),
            path: c.path.clone(),
            depth: c.depth,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = products)]
pub struct ProductRow {
    pub id: String,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_id: Option<String>,
    pub price_cents: i64,
    pub currency_code: String,
    pub rating: Option<f64>,
    pub review_count: i32,
    pub popularity: i64,
    pub attributes: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl TryFrom<ProductRow> for Product {
    type Error = StoreError;

    fn try_from(row: ProductRow) -> StoreResult<Self> {
        let attributes: Vec<Attribute> = from_json(&row.attributes, "reading product attributes")?;
        Ok(Product {
            id: row.id,
            title: row.title,
            description: row.description,
            brand: row.brand,
            category_id: row.category_id,
            price: Money { cents: row.price_cents, currency: row.currency_code },
            rating: row.rating,
            review_count: row.review_count,
            popularity: row.popularity,
            attributes,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.and_utc(),
        })
    }
}

impl TryFrom<&Product> for ProductRow {
    type Error = StoreError;

    fn try_from(p: &Product) -> StoreResult<Self> {
        Ok(ProductRow {
            id: p.id.clone(),
            title: p.title.clone(),
            description: p.description.clone(),
            brand: p.brand.clone(),
            category_id: p.category_id.clone(),
            price_cents: p.price.cents,
            currency_code: p.price.currency.clone(),
            rating: p.rating,
            review_count: p.review_count,
            popularity: p.popularity,
            attributes: to_json(&p.attributes, "serializing product attributes")?,
            created_at: p.created_at.naive_utc(),
            updated_at: p.updated_at.naive_utc(),
        })
    }
}

pub async fn products_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<Product>> {
    let rows: Vec<ProductRow> = on_conn!(conn, c => products::table
        .filter(products::id.eq_any(ids))
        .select(ProductRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading products"))?;
    converted(rows)
}

pub async fn product_count(conn: &mut Conn<'_>) -> StoreResult<u64> {
    on_conn!(conn, c => products::table.count().get_result::<i64>(c).await)
        .map(|n| u64::try_from(n).unwrap_or_default())
        .map_err(store_error("counting products"))
}

pub async fn categories_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<Category>> {
    let rows: Vec<CategoryRow> = on_conn!(conn, c => categories::table
        .filter(categories::id.eq_any(ids))
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading categories"))?;
    converted(rows)
}

pub async fn categories_by_paths(conn: &mut Conn<'_>, paths: &[String]) -> StoreResult<Vec<Category>> {
    let rows: Vec<CategoryRow> = on_conn!(conn, c => categories::table
        .filter(categories::path.eq_any(paths))
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading categories by path"))?;
    converted(rows)
}

/// Children of every given parent, in name order.
pub async fn category_children(conn: &mut Conn<'_>, parent_ids: &[String]) -> StoreResult<Vec<Category>> {
    let rows: Vec<CategoryRow> = on_conn!(conn, c => categories::table
        .filter(categories::parent_id.eq_any(parent_ids))
        .order(categories::name)
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading child categories"))?;
    converted(rows)
}

pub async fn root_categories(conn: &mut Conn<'_>) -> StoreResult<Vec<Category>> {
    let rows: Vec<CategoryRow> = on_conn!(conn, c => categories::table
        .filter(categories::parent_id.is_null())
        .order(categories::name)
        .select(CategoryRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading root categories"))?;
    converted(rows)
}

/// Inserts categories that are new by path; they must come parents first. The id derives from
/// the path, so a category another writer is inserting meanwhile may collide on either unique
/// index; both are left to it.
pub async fn insert_missing_categories(conn: &mut Conn<'_>, categories: &[Category]) -> StoreResult<()> {
    let rows = categories.iter().map(CategoryRow::try_from).collect::<StoreResult<Vec<_>>>()?;
    for chunk in rows.chunks(INSERT_CHUNK) {
        execute_batch!(conn, diesel::insert_into(categories::table).values(chunk.to_vec()).on_conflict_do_nothing())
            .map_err(store_error("inserting categories"))?;
    }
    Ok(())
}

/// Inserts products or replaces every field of existing ones except their creation time.
pub async fn upsert_products(conn: &mut Conn<'_>, products: &[&Product]) -> StoreResult<()> {
    let rows = products.iter().map(|p| ProductRow::try_from(*p)).collect::<StoreResult<Vec<_>>>()?;
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

/// A product with its available stock and category path, as search indexes it.
type SearchRow = (ProductRow, Option<i32>, Option<String>);

fn search_document((row, available, category_path): SearchRow) -> StoreResult<SearchDocument> {
    let product = Product::try_from(row)?;
    Ok(SearchDocument {
        id: product.id,
        title: product.title,
        description: product.description,
        brand: product.brand,
        category_path,
        price_cents: product.price.cents,
        rating: product.rating,
        popularity: product.popularity,
        created_at: product.created_at.timestamp(),
        available: available.unwrap_or(0),
        attributes: product.attributes,
    })
}

/// Search documents in id order, after `after_id`.
pub async fn search_documents(conn: &mut Conn<'_>, after_id: &str, limit: i64) -> StoreResult<Vec<SearchDocument>> {
    let rows: Vec<SearchRow> = on_conn!(conn, c => products::table
        .left_join(inventory::table)
        .left_join(categories::table)
        .filter(products::id.gt(after_id))
        .order(products::id)
        .limit(limit)
        .select((ProductRow::as_select(), inventory::available.nullable(), categories::path.nullable()))
        .load(c)
        .await)
    .map_err(store_error("loading products to index"))?;
    rows.into_iter().map(search_document).collect()
}

pub async fn search_documents_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<SearchDocument>> {
    let mut documents = Vec::with_capacity(ids.len());
    // A statement binds at most 32,766 values on SQLite (65,535 on PostgreSQL).
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let rows: Vec<SearchRow> = on_conn!(conn, c => products::table
            .left_join(inventory::table)
            .left_join(categories::table)
            .filter(products::id.eq_any(chunk))
            .select((ProductRow::as_select(), inventory::available.nullable(), categories::path.nullable()))
            .load(c)
            .await)
        .map_err(store_error("loading products to index"))?;
        documents.extend(rows.into_iter().map(search_document).collect::<StoreResult<Vec<_>>>()?);
    }
    Ok(documents)
}
