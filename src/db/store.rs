use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::models::{CategoryRow, InventoryRow, ProductRow, RefreshTokenRow, UserRow};
use super::pool::Pool;
use super::repo::{catalog, users};
use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::domain::catalog::model::{Category, Product, ProductRecord, StockLevel};
use crate::domain::ports::{CatalogStore, Store, StoreResult, UserStore};

/// The Store port over diesel-async; the pool decides the backend.
#[derive(Clone)]
pub struct DbStore {
    pool: Pool,
}

impl DbStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn converted<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}

#[async_trait]
impl CatalogStore for DbStore {
    async fn products_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Product>> {
        let rows = self.pool.with_conn(async |c| catalog::products_by_ids(c, ids).await).await?;
        Ok(converted(rows))
    }

    async fn categories_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Category>> {
        let rows = self.pool.with_conn(async |c| catalog::categories_by_ids(c, ids).await).await?;
        Ok(converted(rows))
    }

    async fn categories_by_paths(&self, paths: &[String]) -> StoreResult<Vec<Category>> {
        let rows = self.pool.with_conn(async |c| catalog::categories_by_paths(c, paths).await).await?;
        Ok(converted(rows))
    }

    async fn category_children(&self, parent_ids: &[String]) -> StoreResult<Vec<Category>> {
        let rows = self.pool.with_conn(async |c| catalog::category_children(c, parent_ids).await).await?;
        Ok(converted(rows))
    }

    async fn root_categories(&self) -> StoreResult<Vec<Category>> {
        let rows = self.pool.with_conn(async |c| catalog::root_categories(c).await).await?;
        Ok(converted(rows))
    }

    async fn stock_levels(&self, product_ids: &[String]) -> StoreResult<Vec<StockLevel>> {
        let rows = self.pool.with_conn(async |c| catalog::stock_levels(c, product_ids).await).await?;
        Ok(converted(rows))
    }

    async fn product_count(&self) -> StoreResult<u64> {
        let count = self.pool.with_conn(async |c| catalog::product_count(c).await).await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn upsert_catalog(&self, categories: &[Category], records: &[ProductRecord]) -> StoreResult<()> {
        let category_rows: Vec<CategoryRow> = categories.iter().map(CategoryRow::from).collect();
        let product_rows: Vec<ProductRow> = records.iter().map(|r| ProductRow::from(&r.product)).collect();
        let inventory_row = |r: &ProductRecord| InventoryRow {
            product_id: r.product.id.clone(),
            available: r.stock.unwrap_or(0),
            reserved: 0,
            version: 0,
        };
        let (with_stock, without_stock): (Vec<&ProductRecord>, Vec<&ProductRecord>) =
            records.iter().partition(|r| r.stock.is_some());
        let stocked: Vec<InventoryRow> = with_stock.into_iter().map(inventory_row).collect();
        let unstocked: Vec<InventoryRow> = without_stock.into_iter().map(inventory_row).collect();
        self.pool
            .transaction(async |c| {
                catalog::insert_missing_categories(c, &category_rows).await?;
                catalog::upsert_products(c, &product_rows).await?;
                catalog::upsert_inventory(c, &stocked, true).await?;
                catalog::upsert_inventory(c, &unstocked, false).await
            })
            .await
    }

    async fn set_stock(&self, product_id: &str, available: i32) -> StoreResult<Option<StockLevel>> {
        let row = self.pool.with_conn(async |c| catalog::set_available(c, product_id, available).await).await?;
        Ok(row.map(StockLevel::from))
    }
}

#[async_trait]
impl UserStore for DbStore {
    async fn insert_user(&self, user: &User) -> StoreResult<User> {
        let row = UserRow::from(user);
        let row = self.pool.with_conn(async |c| users::insert_user(c, &row).await).await?;
        Ok(row.into())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = self.pool.with_conn(async |c| users::user_by_email(c, email).await).await?;
        Ok(row.map(User::from))
    }

    async fn users_by_ids(&self, ids: &[String]) -> StoreResult<Vec<User>> {
        let rows = self.pool.with_conn(async |c| users::users_by_ids(c, ids).await).await?;
        Ok(converted(rows))
    }

    async fn upsert_admin(&self, user: &User) -> StoreResult<User> {
        let row = UserRow::from(user);
        let row = self.pool.with_conn(async |c| users::upsert_admin(c, &row).await).await?;
        Ok(row.into())
    }

    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()> {
        let row = RefreshTokenRow::from(token);
        self.pool.with_conn(async |c| users::insert_refresh_token(c, &row).await).await
    }

    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshTokenUse> {
        let now = now.naive_utc();
        self.pool
            .with_conn(async |c| {
                if let Some((user_id, family_id)) = users::mark_refresh_token_used(c, token_hash, now).await? {
                    return Ok(RefreshTokenUse::Fresh { user_id, family_id });
                }
                Ok(match users::refresh_token_state(c, token_hash).await? {
                    Some((family_id, Some(_used_at))) => RefreshTokenUse::Replayed { family_id },
                    _ => RefreshTokenUse::Unknown,
                })
            })
            .await
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()> {
        self.pool.with_conn(async |c| users::delete_refresh_family(c, family_id).await).await
    }
}

#[async_trait]
impl Store for DbStore {
    fn backend_name(&self) -> &'static str {
        self.pool.backend_name()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.product_count().await.map(drop)
    }
}
