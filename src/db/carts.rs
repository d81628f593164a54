//! Carts: one row per shopper, its lines as JSON in the row, so that a change is one write.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Serialize;

use super::outbox::OutboxRow;
use super::pool::{Conn, on_conn};
use super::prepared::PrepareOnce;
use super::schema::carts;
use super::writes::Write;
use super::{from_json, shopper, store_error, to_json};
use crate::domain::cart::{Cart, CartLine};
use crate::domain::events::cart_topic;
use crate::domain::primitives::{Shopper, rfc3339};
use crate::ports::{StoreError, StoreResult};

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
/// growing (and copying) a dozen times on the way to 13 KB.
const LINE_JSON_BYTES: usize = 160;

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

/// The write that stores `cart` (one version past the stored cart; version 1 creates it) if the
/// store still holds the version before it, and the event that announces it. The write
/// changes no row when another change came first.
pub fn save(cart: &Cart) -> StoreResult<(Box<dyn Write>, OutboxRow)> {
    let lines = serialized_lines(&cart.lines)?;
    let event = OutboxRow::serialized(cart_topic(&cart.owner), cart_document(cart, &lines)?, cart.updated_at);
    let (id, version, updated_at, expires_at) =
        (cart.id.clone(), cart.version, cart.updated_at.naive_utc(), cart.expires_at.map(|at| at.naive_utc()));
    let write: Box<dyn Write> = if version <= 1 {
        let row = CartRow { id, owner: cart.owner.key(), version, updated_at, expires_at, lines };
        Box::new(diesel::insert_into(carts::table).values(row).on_conflict_do_nothing())
    } else {
        Box::new(diesel::update(carts::table.find(id).filter(carts::version.eq(version - 1))).set((
            carts::version.eq(version),
            carts::lines.eq(lines),
            carts::updated_at.eq(updated_at),
            carts::expires_at.eq(expires_at),
        )))
    };
    Ok((write, event))
}

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
