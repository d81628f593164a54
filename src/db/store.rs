use async_trait::async_trait;
use chrono::{DateTime, Utc};

use std::collections::HashMap;

use super::models::{
    CartItemRow, CartRow, CategoryRow, InventoryRow, NewOutboxRow, ProductRow, RefreshTokenRow, UserRow,
};
use super::pool::Conn;
use super::pool::Pool;
use super::repo::{carts, catalog, outbox, users};
use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::domain::cart::{Cart, CartError, CartLine, CartOwner};
use crate::domain::catalog::Money;
use crate::domain::catalog::model::{Category, Product, ProductRecord, StockLevel};
use crate::domain::events::{CATALOG_TOPIC, Event, EventBus, cart_topic};
use crate::domain::ports::{
    CartDecision, CartKey, CartStore, CartView, CatalogStore, OutboxStore, ProductOffer, Store, StoreError,
    StoreResult, UserStore,
};
use crate::domain::search::SearchDocument;

/// Ids bound into one statement when loading by id.
const IDS_PER_STATEMENT: usize = 1_000;

/// The Store port over diesel-async; the pool decides the backend.
#[derive(Clone)]
pub struct DbStore {
    pub(super) pool: Pool,
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
        let event =
            catalog_event(records.iter().map(|r| r.product.id.clone()).collect(), chrono::Utc::now().naive_utc())?;
        self.pool
            .transaction(async |c| {
                catalog::insert_missing_categories(c, &category_rows).await?;
                catalog::upsert_products(c, &product_rows).await?;
                catalog::upsert_inventory(c, &stocked, true).await?;
                catalog::upsert_inventory(c, &unstocked, false).await?;
                outbox::insert(c, &[event]).await
            })
            .await
    }

    async fn set_stock(&self, product_id: &str, available: i32) -> StoreResult<Option<StockLevel>> {
        let event = catalog_event(vec![product_id.to_owned()], chrono::Utc::now().naive_utc())?;
        let row = self
            .pool
            .transaction(async |c| -> StoreResult<_> {
                let row = catalog::set_available(c, product_id, available).await?;
                if row.is_some() {
                    outbox::insert(c, &[event]).await?;
                }
                Ok(row)
            })
            .await?;
        Ok(row.map(StockLevel::from))
    }

    async fn search_documents(&self, after_id: Option<&str>, limit: usize) -> StoreResult<Vec<SearchDocument>> {
        let (after, limit) = (after_id.unwrap_or_default(), i64::try_from(limit).unwrap_or(i64::MAX));
        let rows = self.pool.with_conn(async |c| catalog::search_rows_page(c, after, limit).await).await?;
        Ok(rows.into_iter().map(search_document).collect())
    }

    async fn search_documents_by_ids(&self, ids: &[String]) -> StoreResult<Vec<SearchDocument>> {
        let mut documents = Vec::with_capacity(ids.len());
        // A statement binds at most 32,766 values on SQLite (65,535 on PostgreSQL).
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let rows = self.pool.with_conn(async |c| catalog::search_rows_by_ids(c, chunk).await).await?;
            documents.extend(rows.into_iter().map(search_document));
        }
        Ok(documents)
    }

    async fn catalog_changes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let since = since.naive_utc();
        let payloads = self.pool.with_conn(async |c| outbox::payloads_since(c, CATALOG_TOPIC, since).await).await?;
        let ids: std::collections::BTreeSet<String> =
            payloads.iter().filter_map(|p| serde_json::from_str::<Vec<String>>(p).ok()).flatten().collect();
        Ok(ids.into_iter().collect())
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

/// The event that tells search (on every instance) which products changed.
pub(super) fn catalog_event(product_ids: Vec<String>, now: chrono::NaiveDateTime) -> StoreResult<NewOutboxRow> {
    let payload =
        serde_json::to_string(&product_ids).map_err(|err| StoreError::internal("serializing a catalog event", err))?;
    Ok(NewOutboxRow { topic: CATALOG_TOPIC.to_owned(), payload, created_at: now })
}

fn search_document((row, available, category_path): catalog::SearchRow) -> SearchDocument {
    let product = Product::from(row);
    SearchDocument {
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
    }
}

/// The carts with these ids (in the given order) and their lines.
pub(super) async fn load_carts(c: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<Cart>> {
    let rows = carts::carts_by_ids(c, ids).await?;
    let mut lines: HashMap<String, Vec<CartLine>> = HashMap::new();
    for item in carts::items_of(c, ids).await? {
        lines.entry(item.cart_id.clone()).or_default().push(item.into());
    }
    let mut by_id: HashMap<String, CartRow> = rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|row| {
            let cart_lines = lines.remove(&row.id).unwrap_or_default();
            row.into_cart(cart_lines)
        })
        .collect())
}

async fn load_offers(c: &mut Conn<'_>, product_ids: &[String]) -> StoreResult<HashMap<String, ProductOffer>> {
    Ok(carts::offers(c, product_ids)
        .await?
        .into_iter()
        .map(|(id, cents, currency, available)| (id, ProductOffer { price: Money { cents, currency }, available }))
        .collect())
}

/// Writes the difference between a cart's lines and its new lines, bumps its version and
/// queues its event.
pub(super) async fn write_cart(
    c: &mut Conn<'_>,
    before: &Cart,
    lines: Vec<CartLine>,
    key: &CartKey,
    now: chrono::NaiveDateTime,
) -> Result<Cart, CartError> {
    let removed: Vec<String> = before
        .lines
        .iter()
        .filter(|old| !lines.iter().any(|l| l.product_id == old.product_id))
        .map(|l| l.product_id.clone())
        .collect();
    if !removed.is_empty() {
        carts::delete_items(c, &before.id, &removed).await?;
    }
    let changed: Vec<CartItemRow> = lines
        .iter()
        .filter(|line| before.line(&line.product_id) != Some(line))
        .map(|line| CartItemRow::new(&before.id, line))
        .collect();
    if !changed.is_empty() {
        carts::upsert_items(c, &changed).await?;
    }
    let row = carts::bump_version(c, &before.id, now, key.expires_at.map(|at| at.naive_utc())).await?;
    let cart = row.into_cart(lines);
    let payload = serde_json::to_string(&cart).map_err(|err| StoreError::internal("serializing a cart event", err))?;
    outbox::insert(c, &[NewOutboxRow { topic: cart_topic(&cart.owner.0), payload, created_at: now }]).await?;
    Ok(cart)
}

#[async_trait]
impl CartStore for DbStore {
    async fn cart(&self, owner: &CartOwner) -> StoreResult<Option<Cart>> {
        self.pool
            .with_conn(async |c| match carts::cart_by_owner(c, &owner.0).await? {
                Some(row) => Ok(load_carts(c, &[row.id]).await?.pop()),
                None => Ok(None),
            })
            .await
    }

    async fn change_carts(
        &self,
        keys: &[CartKey],
        offer_ids: &[String],
        now: DateTime<Utc>,
        decide: CartDecision,
    ) -> Result<Vec<Cart>, CartError> {
        let now = now.naive_utc();
        let ids: Vec<String> = keys.iter().map(|k| k.owner.cart_id()).collect();
        let mut lock_order: Vec<&CartKey> = keys.iter().collect();
        // A fixed lock order keeps two merges of the same carts from deadlocking.
        lock_order.sort_by_key(|k| k.owner.cart_id());
        self.pool
            .transaction(async |c| {
                for key in lock_order {
                    let id = key.owner.cart_id();
                    if !carts::lock_cart(c, &id).await? {
                        // New carts are created on their first change; a racing first change
                        // inserts nothing here and then waits on the other one's lock.
                        let row = CartRow {
                            id: id.clone(),
                            owner: key.owner.0.clone(),
                            version: 0,
                            updated_at: now,
                            expires_at: key.expires_at.map(|at| at.naive_utc()),
                        };
                        carts::insert_missing_carts(c, &[row]).await?;
                        carts::lock_cart(c, &id).await?;
                    }
                }
                let current = load_carts(c, &ids).await?;
                let view = CartView { carts: current, offers: load_offers(c, offer_ids).await? };
                let edits = decide(&view)?;
                let mut result = Vec::with_capacity(view.carts.len());
                for ((before, edit), key) in
                    view.carts.into_iter().zip(edits.into_iter().chain(std::iter::repeat(None))).zip(keys)
                {
                    result.push(match edit {
                        Some(lines) => write_cart(c, &before, lines, key, now).await?,
                        None => before,
                    });
                }
                Ok(result)
            })
            .await
    }

    async fn delete_expired_carts(&self, now: DateTime<Utc>, untouched_since: DateTime<Utc>) -> StoreResult<u64> {
        let (now, cutoff) = (now.naive_utc(), untouched_since.naive_utc());
        let deleted = self.pool.with_conn(async |c| carts::delete_expired(c, now, cutoff).await).await?;
        Ok(deleted as u64)
    }
}

#[async_trait]
impl OutboxStore for DbStore {
    async fn dispatch_outbox(&self, limit: usize, now: DateTime<Utc>, bus: &dyn EventBus) -> StoreResult<usize> {
        let now = now.naive_utc();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pool
            .transaction(async |c| {
                let mut claimed = outbox::claim(c, limit, now).await?;
                if claimed.is_empty() {
                    return Ok(0);
                }
                claimed.sort_by_key(|(id, _, _)| *id);
                let events: Vec<Event> =
                    claimed.into_iter().map(|(_, topic, payload)| Event { topic, payload }).collect();
                bus.publish(&events).await.map_err(|err| StoreError::internal("publishing events", err))?;
                Ok(events.len())
            })
            .await
    }

    async fn delete_published_events(&self, published_before: DateTime<Utc>) -> StoreResult<u64> {
        let before = published_before.naive_utc();
        let deleted = self.pool.with_conn(async |c| outbox::delete_published(c, before).await).await?;
        Ok(deleted as u64)
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
