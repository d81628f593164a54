use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::primitives::{Money, Shopper, rfc3339};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: String,
    pub quantity: i32,
    /// The price when the line was added; the cart shows when the current price differs.
    pub unit_price: Money,
    #[serde(with = "rfc3339")]
    pub added_at: DateTime<Utc>,
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
