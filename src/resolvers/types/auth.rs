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
}

impl From<domain::AuthPayload> for AuthPayload {
    fn from(p: domain::AuthPayload) -> Self {
        AuthPayload {
            token: p.token,
            refresh_token: p.refresh_token,
            expires_at: p.expires_at,
            user: p.user.map(User::from),
        }
    }
}
