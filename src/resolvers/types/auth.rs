use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::auth as domain;

#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    pub email: String,
    pub name: String,
    pub is_admin: bool,
}

impl From<domain::User> for User {
    fn from(u: domain::User) -> Self {
        User { id: ID(u.id), email: u.email, name: u.name, is_admin: u.is_admin }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Exchange with `refreshSession` for a new token; absent for guest sessions.
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// The signed-in user; null for a guest session.
    pub user: Option<User>,
    /// Lines of the guest cart that merging into the user's cart could not keep whole
    /// (stock or cart limits); empty when everything fitted or nothing was merged.
    pub capped_cart_lines: Vec<CappedCartLine>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct CappedCartLine {
    pub product_id: ID,
    /// Units the merged line would have held.
    pub requested: i32,
    /// Units it holds.
    pub kept: i32,
}

impl From<domain::AuthPayload> for AuthPayload {
    fn from(p: domain::AuthPayload) -> Self {
        AuthPayload {
            token: p.token,
            refresh_token: p.refresh_token,
            expires_at: p.expires_at,
            user: p.user.map(User::from),
            capped_cart_lines: p
                .capped_cart_lines
                .into_iter()
                .map(|c| CappedCartLine { product_id: ID(c.product_id), requested: c.requested, kept: c.kept })
                .collect(),
        }
    }
}
