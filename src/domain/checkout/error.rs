use crate::domain::cart::{CartError, StockShortage};
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("{0} not found")]
    NotFound(String),
    #[error("not enough stock")]
    OutOfStock(Vec<StockShortage>),
    #[error("the checkout session's reservation expired; start a new checkout")]
    ReservationExpired,
    #[error("{0}")]
    Conflict(String),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("a payment for this checkout is still being processed; ask again shortly")]
    PaymentInProgress,
    #[error("payment gateway failure: {0}")]
    Gateway(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CheckoutError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CheckoutError::InvalidInput { field, message: message.into() }
    }
}

impl From<CartError> for CheckoutError {
    fn from(err: CartError) -> Self {
        match err {
            CartError::InvalidInput { field, message } => CheckoutError::InvalidInput { field, message },
            CartError::ProductNotFound(id) => CheckoutError::NotFound(format!("product {id}")),
            CartError::OutOfStock(lines) => CheckoutError::OutOfStock(lines),
            CartError::Unauthenticated => CheckoutError::Unauthenticated,
            CartError::Store(err) => CheckoutError::Store(err),
        }
    }
}
