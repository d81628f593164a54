use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("this operation is for admins")]
    Forbidden,
    #[error("order {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("payment gateway failure: {0}")]
    Gateway(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
