//! Recommendations: the signals shoppers leave, the model trained from them in the background,
//! and the pure rules that turn candidates into a list (who sees what, in which order).

pub mod blend;
pub mod demo_history;
pub mod model;
pub mod training;

use chrono::{DateTime, Utc};

pub use blend::{Candidates, VariedPicks};
pub use model::Model;
pub use training::{History, baskets_of, train};

/// How long a view counts as "just viewed": the caller's picks lean to what they looked at
/// within this window, without waiting for training.
pub const RECENT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionKind {
    View,
    Cart,
    Purchase,
}

impl InteractionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionKind::View => "VIEW",
            InteractionKind::Cart => "CART",
            InteractionKind::Purchase => "PURCHASE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "VIEW" => Some(InteractionKind::View),
            "CART" => Some(InteractionKind::Cart),
            "PURCHASE" => Some(InteractionKind::Purchase),
            _ => None,
        }
    }

    /// How much one interaction says about a taste: buying says more than looking.
    pub fn weight(self) -> f32 {
        match self {
            InteractionKind::View => 1.0,
            InteractionKind::Cart => 3.0,
            InteractionKind::Purchase => 5.0,
        }
    }
}

/// One thing a shopper (`user:<id>` or `guest:<session>`) did with a product.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub shopper: String,
    pub product_id: String,
    pub kind: InteractionKind,
    pub at: DateTime<Utc>,
}

/// Which list `productRecommendations` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Similar products, or liked by the same shoppers.
    Related,
    /// Bought together with it.
    Complementary,
}

/// The most products one list returns, whatever `first` asks.
pub const MAX_PICKS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("recording a view needs a token: start a guest session or sign in")]
    Unauthenticated,
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("product {0} not found")]
    ProductNotFound(String),
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
}
