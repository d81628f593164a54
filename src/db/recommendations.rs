//! Interactions (views, and the demo history) and the trained recommendation model: its one
//! row holds the training lease, the version every instance compares with, and the model.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, execute_batch, on_conn};
use super::schema::{carts, interactions, inventory, orders, products, recommender_models};
use super::{INSERT_CHUNK, from_json, parsed, store_error};
use crate::domain::cart::CartLine;
use crate::domain::orders::OrderStatus;
use crate::domain::primitives::Shopper;
use crate::domain::recommend::{Interaction, InteractionKind};
use crate::ports::{StoreError, StoreResult};

const MODEL_ROW: &str = "current";

/// Orders whose goods the shopper keeps: they count as bought.
const BOUGHT: [OrderStatus; 4] =
    [OrderStatus::Paid, OrderStatus::Fulfilled, OrderStatus::Shipped, OrderStatus::Delivered];

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = interactions)]
struct InteractionRow {
    shopper: String,
    product_id: String,
    kind: String,
    at: NaiveDateTime,
}

impl From<&Interaction> for InteractionRow {
    fn from(interaction: &Interaction) -> Self {
        InteractionRow {
            shopper: interaction.shopper.clone(),
            product_id: interaction.product_id.clone(),
            kind: interaction.kind.as_str().to_owned(),
            at: interaction.at.naive_utc(),
        }
    }
}

impl TryFrom<InteractionRow> for Interaction {
    type Error = StoreError;

    fn try_from(row: InteractionRow) -> StoreResult<Self> {
        Ok(Interaction {
            kind: parsed(InteractionKind::parse(&row.kind), &row.kind, "reading an interaction")?,
            shopper: row.shopper,
            product_id: row.product_id,
            at: row.at.and_utc(),
        })
    }
}

pub async fn record(conn: &mut Conn<'_>, interactions: &[Interaction]) -> StoreResult<()> {
    let rows: Vec<InteractionRow> = interactions.iter().map(InteractionRow::from).collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        execute_batch!(conn, diesel::insert_into(interactions::table).values(chunk.to_vec()))
            .map_err(store_error("recording interactions"))?;
    }
    Ok(())
}

pub async fn any_recorded(conn: &mut Conn<'_>) -> StoreResult<bool> {
    let first: Option<i64> =
        on_conn!(conn, c => interactions::table.select(interactions::id).first(c).await.optional())
            .map_err(store_error("looking for interactions"))?;
    Ok(first.is_some())
}

/// A guest who signs in or up takes their history into the account.
pub async fn reassign(conn: &mut Conn<'_>, from: &Shopper, to: &Shopper) -> StoreResult<()> {
    on_conn!(conn, c => diesel::update(interactions::table.filter(interactions::shopper.eq(from.key())))
        .set(interactions::shopper.eq(to.key()))
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("moving a guest's history into an account"))
}

/// The shopper's latest interactions, newest first.
pub async fn latest_of(conn: &mut Conn<'_>, shopper: &Shopper, limit: i64) -> StoreResult<Vec<Interaction>> {
    let rows: Vec<InteractionRow> = on_conn!(conn, c => interactions::table
        .filter(interactions::shopper.eq(shopper.key()))
        .order((interactions::at.desc(), interactions::id.desc()))
        .limit(limit)
        .select(InteractionRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading a shopper's interactions"))?;
    rows.into_iter().map(Interaction::try_from).collect()
}

/// Products in the shopper's paid orders.
pub async fn bought_by(conn: &mut Conn<'_>, shopper: &Shopper) -> StoreResult<HashSet<String>> {
    let statuses: Vec<&str> = BOUGHT.iter().map(|s| s.as_str()).collect();
    let items: Vec<String> = on_conn!(conn, c => orders::table
        .filter(orders::owner.eq(shopper.key()))
        .filter(orders::status.eq_any(&statuses))
        .select(orders::items)
        .load(c)
        .await)
    .map_err(store_error("loading what a shopper bought"))?;
    let mut bought = HashSet::new();
    for items in items {
        let lines: Vec<CartLine> = from_json(&items, "reading order lines")?;
        bought.extend(lines.into_iter().map(|line| line.product_id));
    }
    Ok(bought)
}

/// Products of one category that are in stock, most popular first.
pub async fn in_stock_of_category(conn: &mut Conn<'_>, category_id: &str, limit: i64) -> StoreResult<Vec<String>> {
    on_conn!(conn, c => products::table
        .inner_join(inventory::table)
        .filter(products::category_id.eq(category_id))
        .filter(inventory::available.gt(0))
        .order((products::popularity.desc(), products::id))
        .limit(limit)
        .select(products::id)
        .load(c)
        .await)
    .map_err(store_error("loading products of a category"))
}

/// Everything training reads, apart from interactions: every cart's lines (as cart
/// interactions) and every paid order (as purchases, and as a basket).
pub async fn carts_and_orders(conn: &mut Conn<'_>) -> StoreResult<(Vec<Interaction>, Vec<Vec<String>>)> {
    let carts: Vec<(String, String, NaiveDateTime)> = on_conn!(conn, c => carts::table
        .select((carts::owner, carts::lines, carts::updated_at))
        .load(c)
        .await)
    .map_err(store_error("loading carts for training"))?;
    let statuses: Vec<&str> = BOUGHT.iter().map(|s| s.as_str()).collect();
    let orders: Vec<(String, String, NaiveDateTime)> = on_conn!(conn, c => orders::table
        .filter(orders::status.eq_any(&statuses))
        .select((orders::owner, orders::items, orders::created_at))
        .load(c)
        .await)
    .map_err(store_error("loading orders for training"))?;
    let mut interactions = Vec::new();
    let mut baskets = Vec::new();
    for (kind, rows) in [(InteractionKind::Cart, carts), (InteractionKind::Purchase, orders)] {
        for (shopper, lines, at) in rows {
            let lines: Vec<CartLine> = from_json(&lines, "reading lines for training")?;
            if kind == InteractionKind::Purchase {
                baskets.push(lines.iter().map(|line| line.product_id.clone()).collect());
            }
            interactions.extend(lines.into_iter().map(|line| Interaction {
                shopper: shopper.clone(),
                product_id: line.product_id,
                kind,
                at: at.and_utc(),
            }));
        }
    }
    Ok((interactions, baskets))
}

pub async fn interactions_since(conn: &mut Conn<'_>, since: DateTime<Utc>) -> StoreResult<Vec<Interaction>> {
    let rows: Vec<InteractionRow> = on_conn!(conn, c => interactions::table
        .filter(interactions::at.ge(since.naive_utc()))
        .select(InteractionRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading interactions for training"))?;
    rows.into_iter().map(Interaction::try_from).collect()
}

/// The catalog's ratings, for the best-rated list.
pub async fn ratings(conn: &mut Conn<'_>) -> StoreResult<Vec<(String, Option<f64>, i32)>> {
    on_conn!(conn, c => products::table
        .select((products::id, products::rating, products::review_count))
        .load(c)
        .await)
    .map_err(store_error("loading ratings for training"))
}

/// Takes the training lease until `until` if nobody holds it; whether it was taken.
pub async fn claim_training(conn: &mut Conn<'_>, now: DateTime<Utc>, until: DateTime<Utc>) -> StoreResult<bool> {
    on_conn!(conn, c => diesel::update(recommender_models::table
        .find(MODEL_ROW)
        .filter(recommender_models::lease_until.le(now.naive_utc())))
    .set(recommender_models::lease_until.eq(until.naive_utc()))
    .execute(c)
    .await)
    .map(|changed| changed == 1)
    .map_err(store_error("claiming the training lease"))
}

/// Stores a trained model as the next version and frees the lease.
pub async fn save_model(conn: &mut Conn<'_>, model: &str, trained_at: DateTime<Utc>) -> StoreResult<i64> {
    on_conn!(conn, c => diesel::update(recommender_models::table.find(MODEL_ROW))
        .set((
            recommender_models::version.eq(recommender_models::version + 1),
            recommender_models::model.eq(model),
            recommender_models::trained_at.eq(trained_at.naive_utc()),
            recommender_models::lease_until.eq(trained_at.naive_utc()),
        ))
        .returning(recommender_models::version)
        .get_result(c)
        .await)
    .map_err(store_error("saving the recommendation model"))
}

/// The stored model's version (0 before the first training).
pub async fn model_version(conn: &mut Conn<'_>) -> StoreResult<i64> {
    on_conn!(conn, c => recommender_models::table.find(MODEL_ROW).select(recommender_models::version).first(c).await)
        .map_err(store_error("reading the model version"))
}

pub async fn load_model(conn: &mut Conn<'_>) -> StoreResult<(i64, Option<String>)> {
    on_conn!(conn, c => recommender_models::table
        .find(MODEL_ROW)
        .select((recommender_models::version, recommender_models::model))
        .first(c)
        .await)
    .map_err(store_error("loading the recommendation model"))
}
