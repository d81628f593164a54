//! Values every capability shares: money and the shopper.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Integer minor units plus an ISO-4217 code; never floats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

impl Money {
    /// The largest amount the shop takes: clients read amounts as 32-bit integers, so a larger
    /// cart or order could not be shown (or charged) as it is.
    pub const MAX_CENTS: i64 = i32::MAX as i64;
}

/// Who is shopping: a signed-in user (whose every session shares one cart and one order
/// history) or a guest session. Stored and sent as `user:<id>` or `guest:<session id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Shopper {
    User(String),
    Guest(String),
}

impl Shopper {
    /// The stored form, `user:<id>` or `guest:<session id>`.
    pub fn key(&self) -> String {
        match self {
            Shopper::User(id) => format!("user:{id}"),
            Shopper::Guest(session) => format!("guest:{session}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        match key.split_once(':')? {
            ("user", id) if !id.is_empty() => Some(Shopper::User(id.to_owned())),
            ("guest", session) if !session.is_empty() => Some(Shopper::Guest(session.to_owned())),
            _ => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Shopper::User(id) => Some(id),
            Shopper::Guest(_) => None,
        }
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, Shopper::Guest(_))
    }

    /// Carts are created on first change; deriving the id from the shopper lets an empty cart
    /// show the id it will keep, and two racing first changes agree on it.
    pub fn cart_id(&self) -> String {
        let digest = Sha256::digest(self.key().as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("cart-{hex}")
    }
}

impl std::fmt::Display for Shopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

impl From<Shopper> for String {
    fn from(shopper: Shopper) -> Self {
        shopper.key()
    }
}

impl TryFrom<String> for Shopper {
    type Error = String;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        Shopper::parse(&key).ok_or_else(|| format!("`{key}` is not a shopper"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shopper_round_trips_through_its_key() {
        for shopper in [Shopper::User("u-1".into()), Shopper::Guest("s:2".into())] {
            assert_eq!(Shopper::parse(&shopper.key()), Some(shopper.clone()));
        }
        assert_eq!(Shopper::parse("guest:"), None);
        assert_eq!(Shopper::parse("admin:x"), None);
        assert_eq!(Shopper::User("a".into()).cart_id(), Shopper::User("a".into()).cart_id());
        assert_ne!(Shopper::User("a".into()).cart_id(), Shopper::Guest("a".into()).cart_id());
    }
}
