use chrono::{DateTime, Utc};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::primitives::{Money, Shopper, rfc3339};

/// Stored, cached and published as `[product id, quantity, unit price in minor units, currency,
/// added at in nanoseconds since the epoch]`: a cart is rewritten whole on every change, and
/// with field names and RFC 3339 times 90 lines took 11.6 KB, which PostgreSQL compressed and
/// moved out of the row on every write. Lines written in that form still read.
#[derive(Debug, Clone, PartialEq)]
pub struct CartLine {
    pub product_id: String,
    pub quantity: i32,
    /// The price when the line was added; the cart shows when the current price differs.
    pub unit_price: Money,
    pub added_at: DateTime<Utc>,
}

/// How lines were written before the compact form.
#[derive(Deserialize)]
struct NamedLine {
    product_id: String,
    quantity: i32,
    unit_price: Money,
    #[serde(with = "rfc3339")]
    added_at: DateTime<Utc>,
}

type CompactLine = (String, i32, i64, String, i64);

impl Serialize for CartLine {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let added_at = self
            .added_at
            .timestamp_nanos_opt()
            .ok_or_else(|| serde::ser::Error::custom("a cart line added after 2262"))?;
        let Money { cents, currency } = &self.unit_price;
        (&self.product_id, self.quantity, cents, currency, added_at).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CartLine {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CartLineVisitor)
    }
}

struct CartLineVisitor;

impl<'de> Visitor<'de> for CartLineVisitor {
    type Value = CartLine;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a cart line")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<CartLine, A::Error> {
        let (product_id, quantity, cents, currency, added_at) =
            CompactLine::deserialize(SeqAccessDeserializer::new(seq))?;
        let added_at = DateTime::from_timestamp_nanos(added_at);
        Ok(CartLine { product_id, quantity, unit_price: Money { cents, currency }, added_at })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CartLine, A::Error> {
        let NamedLine { product_id, quantity, unit_price, added_at } =
            NamedLine::deserialize(MapAccessDeserializer::new(map))?;
        Ok(CartLine { product_id, quantity, unit_price, added_at })
    }
}

impl CartLine {
    pub fn total(&self) -> Money {
        Money { cents: self.total_cents(), currency: self.unit_price.currency.clone() }
    }

    /// The total's minor units, for sums (without copying the currency per line).
    pub fn total_cents(&self) -> i64 {
        self.unit_price.cents * i64::from(self.quantity)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    pub id: String,
    pub owner: Shopper,
    /// Increments on every change; subscribers use it to order and de-duplicate updates.
    pub version: i64,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// In the order they were first added.
    pub lines: Vec<CartLine>,
}

impl Cart {
    pub fn empty(owner: &Shopper, now: DateTime<Utc>) -> Self {
        Cart {
            id: owner.cart_id(),
            owner: owner.clone(),
            version: 0,
            updated_at: now,
            expires_at: None,
            lines: Vec::new(),
        }
    }

    /// The cart after a change to `lines`: the next version, changed `now`.
    pub fn changed(&self, lines: Vec<CartLine>, now: DateTime<Utc>, expires_at: Option<DateTime<Utc>>) -> Cart {
        // Field by field: `..self.clone()` would copy the old lines only to drop them.
        Cart {
            id: self.id.clone(),
            owner: self.owner.clone(),
            version: self.version + 1,
            updated_at: now,
            expires_at,
            lines,
        }
    }

    pub fn line(&self, product_id: &str) -> Option<&CartLine> {
        self.lines.iter().find(|l| l.product_id == product_id)
    }

    pub fn total_quantity(&self) -> i32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }

    /// Lines share one currency (adding enforces it); an empty cart is in `default_currency`.
    pub fn subtotal(&self, default_currency: &str) -> Money {
        let currency = self.lines.first().map_or(default_currency, |l| l.unit_price.currency.as_str()).to_owned();
        Money { cents: self.lines.iter().map(CartLine::total_cents).sum(), currency }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A line a merge could not keep whole (stock or size limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CappedLine {
    pub product_id: String,
    pub requested: i32,
    pub kept: i32,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn line() -> CartLine {
        let added_at = Utc.with_ymd_and_hms(2026, 12, 7, 9, 30, 0).single().expect("a time")
            + chrono::Duration::nanoseconds(123_456_789);
        let unit_price = Money { cents: 4999, currency: "USD".to_owned() };
        CartLine { product_id: "prod-0006927".to_owned(), quantity: 2, unit_price, added_at }
    }

    #[test]
    fn a_line_is_written_compactly_and_reads_back_to_the_nanosecond() {
        let json = serde_json::to_string(&line()).expect("serialized");
        assert_eq!(json, r#"["prod-0006927",2,4999,"USD",1796635800123456789]"#);
        assert_eq!(serde_json::from_str::<CartLine>(&json).expect("a line"), line());
    }

    #[test]
    fn a_line_written_with_field_names_still_reads() {
        let named = r#"{"product_id":"prod-0006927","quantity":2,"unit_price":{"cents":4999,"currency":"USD"},
            "added_at":"2026-12-07T09:30:00.123456789Z"}"#;
        assert_eq!(serde_json::from_str::<CartLine>(named).expect("a line"), line());
    }

    #[test]
    fn a_malformed_line_is_refused() {
        for malformed in [r#"["prod-0006927",2,4999,"USD"]"#, r#"{"product_id":"prod-0006927"}"#, r#""prod-0006927""#] {
            assert!(serde_json::from_str::<CartLine>(malformed).is_err(), "{malformed}");
        }
    }
}
