//! Rows as stored, and their conversion to and from domain types. Timestamps are stored as UTC
//! without zone (portable between the backends); attributes as a JSON array in a text column.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{cart_items, carts, categories, inventory, outbox, products, refresh_tokens, users};
use crate::domain::auth::model::{NewRefreshToken, User};
use crate::domain::cart::{Cart, CartLine, CartOwner};
use crate::domain::catalog::model::{Attribute, Category, Money, Product, StockLevel};

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

impl From<CategoryRow> for Category {
    fn from(row: CategoryRow) -> Self {
        Category { id: row.id, name: row.name, parent_id: row.parent_id, path: row.path, depth: row.depth }
    }
}

impl From<&Category> for CategoryRow {
    fn from(c: &Category) -> Self {
        CategoryRow {
            id: c.id.clone(),
            name: c.name.clone(),
            parent_id: c.parent_id.clone(),
            path: c.path.clone(),
            depth: c.depth,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// NULL rather than DEFAULT for None, which SQLite needs for multi-row upserts.
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

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        // The column is only ever written from a serialized Vec<Attribute>.
        let attributes: Vec<Attribute> = serde_json::from_str(&row.attributes).unwrap_or_default();
        Product {
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
        }
    }
}

impl From<&Product> for ProductRow {
    fn from(p: &Product) -> Self {
        ProductRow {
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
            attributes: serde_json::to_string(&p.attributes).unwrap_or_else(|_| "[]".to_owned()),
            created_at: p.created_at.naive_utc(),
            updated_at: p.updated_at.naive_utc(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// NULL rather than DEFAULT for None, which SQLite needs for multi-row upserts.
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = inventory)]
pub struct InventoryRow {
    pub product_id: String,
    pub available: i32,
    pub reserved: i32,
    pub version: i64,
}

impl From<InventoryRow> for StockLevel {
    fn from(row: InventoryRow) -> Self {
        StockLevel {
            product_id: row.product_id,
            available: row.available,
            reserved: row.reserved,
            version: row.version,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// NULL rather than DEFAULT for None, which SQLite needs for multi-row upserts.
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            email: row.email,
            name: row.name,
            password_hash: row.password_hash,
            is_admin: row.is_admin,
            created_at: row.created_at.and_utc(),
        }
    }
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        UserRow {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            is_admin: u.is_admin,
            created_at: u.created_at.naive_utc(),
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl From<&NewRefreshToken> for RefreshTokenRow {
    fn from(t: &NewRefreshToken) -> Self {
        RefreshTokenRow {
            token_hash: t.token_hash.clone(),
            user_id: t.user_id.clone(),
            family_id: t.family_id.clone(),
            expires_at: t.expires_at.naive_utc(),
            created_at: t.created_at.naive_utc(),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// NULL rather than DEFAULT for None, which SQLite needs for multi-row upserts.
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = carts)]
pub struct CartRow {
    pub id: String,
    pub owner: String,
    pub version: i64,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = cart_items)]
pub struct CartItemRow {
    pub cart_id: String,
    pub product_id: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub currency_code: String,
    pub added_at: NaiveDateTime,
}

impl CartItemRow {
    pub fn new(cart_id: &str, line: &CartLine) -> Self {
        CartItemRow {
            cart_id: cart_id.to_owned(),
            product_id: line.product_id.clone(),
            quantity: line.quantity,
            unit_price_cents: line.unit_price.cents,
            currency_code: line.unit_price.currency.clone(),
            added_at: line.added_at.naive_utc(),
        }
    }
}

impl From<CartItemRow> for CartLine {
    fn from(row: CartItemRow) -> Self {
        CartLine {
            product_id: row.product_id,
            quantity: row.quantity,
            unit_price: Money { cents: row.unit_price_cents, currency: row.currency_code },
            added_at: row.added_at.and_utc(),
        }
    }
}

impl CartRow {
    pub fn into_cart(self, lines: Vec<CartLine>) -> Cart {
        Cart {
            id: self.id,
            owner: CartOwner(self.owner),
            version: self.version,
            updated_at: self.updated_at.and_utc(),
            expires_at: self.expires_at.map(|at| at.and_utc()),
            lines,
        }
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = outbox)]
pub struct NewOutboxRow {
    pub topic: String,
    pub payload: String,
    pub created_at: NaiveDateTime,
}
