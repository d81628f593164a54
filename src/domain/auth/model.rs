use crate::domain::primitives::Shopper;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// Stored lower-case, so sign-in is case-insensitive.
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

/// Who is calling: taken only from the bearer token, never from arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Guest { session_id: String },
    User { user_id: String, is_admin: bool },
}

impl Viewer {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Viewer::User { user_id, .. } => Some(user_id),
            Viewer::Guest { .. } => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Viewer::User { is_admin: true, .. })
    }

    /// The shopper behind a request, or `unauthenticated` when the request carries no token.
    pub fn shopper_or<E>(viewer: Option<&Viewer>, unauthenticated: E) -> Result<Shopper, E> {
        viewer.map(Viewer::shopper).ok_or(unauthenticated)
    }

    /// Whose cart, checkouts and orders this viewer sees.
    pub fn shopper(&self) -> Shopper {
        match self {
            Viewer::User { user_id, .. } => Shopper::User(user_id.clone()),
            Viewer::Guest { session_id } => Shopper::Guest(session_id.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthPayload {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_token: Option<String>,
    pub user: Option<User>,
    /// Guest-cart lines the sign-in merge could not keep whole.
    pub capped_cart_lines: Vec<crate::domain::cart::CappedLine>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshTokenUse {
    /// Unused and unexpired: it is now used, and a new token of the family may be issued.
    Fresh { user_id: String, family_id: String },
    /// Already used once: someone replays it, so the whole family must be revoked.
    Replayed { family_id: String },
    /// Unknown or expired.
    Unknown,
}
