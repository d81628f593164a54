use crate::ports::StoreError;

/// A line asked for more than there is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockShortage {
    pub product_id: String,
    pub requested: i32,
    pub available: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("product {0} not found")]
    ProductNotFound(String),
    #[error("not enough stock")]
    OutOfStock(Vec<StockShortage>),
    #[error("this operation needs a session token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CartError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CartError::InvalidInput { field, message: message.into() }
    }
}
