use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CheckoutError;
use crate::domain::cart::CartLine;
use crate::domain::primitives::Shopper;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckoutStatus {
    Reserved,
    Completed,
    Expired,
    Cancelled,
    Failed,
}

/// Text forms of the enums as stored; one macro so each enum's two directions cannot disagree.
macro_rules! stored_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
pub(crate) use stored_enum;

stored_enum!(CheckoutStatus {
    Reserved => "RESERVED",
    Completed => "COMPLETED",
    Expired => "EXPIRED",
    Cancelled => "CANCELLED",
    Failed => "FAILED",
});

/// What an order costs, in minor units of one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal: i64,
    pub shipping: i64,
    pub tax: i64,
    pub total: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutSession {
    pub id: String,
    pub owner: Shopper,
    pub status: CheckoutStatus,
    /// The cart's lines at today's prices when the stock was reserved.
    pub lines: Vec<CartLine>,
    pub totals: Totals,
    /// The saga paying for it, while one is.
    pub saga_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The flash sale whose units it holds: they go back to the sale, not to regular stock.
    pub flash_sale_id: Option<String>,
}

impl CheckoutSession {
    /// The status a client sees: a reservation past its expiry is EXPIRED even before the
    /// sweeper has returned its stock (unless a payment holds it).
    pub fn status_at(&self, now: DateTime<Utc>) -> CheckoutStatus {
        match self.status {
            CheckoutStatus::Reserved if self.saga_id.is_none() && self.expires_at <= now => CheckoutStatus::Expired,
            status => status,
        }
    }
}

const MAX_ADDRESS_FIELD: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
}

impl Address {
    /// Trims every field and checks it; `field` names the address in errors.
    pub fn validated(self, field: &'static str) -> Result<Self, CheckoutError> {
        let required = |name: &str, value: String| {
            let value = value.trim().to_owned();
            if value.is_empty() || value.chars().count() > MAX_ADDRESS_FIELD {
                return Err(CheckoutError::invalid(
                    field,
                    format!("{name} is required (1 to {MAX_ADDRESS_FIELD} characters)"),
                ));
            }
            Ok(value)
        };
        let country = required("country", self.country)?.to_ascii_uppercase();
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(CheckoutError::invalid(field, "country must be a two-letter ISO code such as US"));
        }
        let line2 = self.line2.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
        if line2.as_ref().is_some_and(|l| l.chars().count() > MAX_ADDRESS_FIELD) {
            return Err(CheckoutError::invalid(field, format!("line2 is longer than {MAX_ADDRESS_FIELD} characters")));
        }
        Ok(Address {
            name: required("name", self.name)?,
            line1: required("line1", self.line1)?,
            line2,
            city: required("city", self.city)?,
            postal_code: required("postalCode", self.postal_code)?,
            country,
        })
    }

    /// Same place, ignoring case and spacing (the name may differ: a gift).
    pub fn same_place(&self, other: &Address) -> bool {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        norm(&self.line1) == norm(&other.line1)
            && self.line2.as_deref().map(norm) == other.line2.as_deref().map(norm)
            && norm(&self.city) == norm(&other.city)
            && norm(&self.postal_code) == norm(&other.postal_code)
            && self.country == other.country
    }
}

/// What `placeOrder` asks for; a saga keeps it, and its hash tells a replay from a reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRequest {
    pub session_id: String,
    pub payment_method: String,
    pub shipping_address: Address,
    pub billing_address: Option<Address>,
}

impl OrderRequest {
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    /// A payment attempt is (or may be) under way; the session is claimed.
    Charging,
    /// The last attempt failed; the key may be retried.
    Failed,
    /// The order waits for an admin's review before any charge.
    Review,
    Completed,
    /// Charged, but the order cannot be created: a refund is intended, recorded before the
    /// processor is asked, so that recovery finishes the refund and never completes the order.
    Refunding,
    /// Charged, but the order could not be created: refunded and released.
    Compensated,
}

stored_enum!(SagaStep {
    Charging => "CHARGING",
    Failed => "FAILED",
    Review => "REVIEW",
    Completed => "COMPLETED",
    Refunding => "REFUNDING",
    Compensated => "COMPENSATED",
});

/// The persisted state of one `placeOrder` idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Saga {
    pub id: String,
    pub owner: Shopper,
    pub idempotency_key: String,
    pub request_hash: String,
    pub request: OrderRequest,
    pub step: SagaStep,
    pub order_id: Option<String>,
    pub failure: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// While CHARGING or REFUNDING, the saga is its claimant's until then; recovery waits.
    pub lease_until: DateTime<Utc>,
}

impl Saga {
    /// Left mid-charge or mid-refund by a claimant whose lease ran out before `now`.
    pub fn lease_lapsed(&self, now: DateTime<Utc>) -> bool {
        matches!(self.step, SagaStep::Charging | SagaStep::Refunding) && self.lease_until < now
    }
}
