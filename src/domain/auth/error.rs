use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("the token is invalid or expired")]
    InvalidToken,
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("this operation needs the admin role")]
    Forbidden,
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Cart(#[from] crate::domain::cart::CartError),
    #[error(transparent)]
    RateLimited(#[from] crate::domain::limits::RateLimited),
}

impl AuthError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AuthError::InvalidInput { field, message: message.into() }
    }
}
