use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl CatalogError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        CatalogError::InvalidInput { field, message: message.into() }
    }
}

impl From<StoreError> for CatalogError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(message) => CatalogError::Conflict(message),
            other => CatalogError::Store(other),
        }
    }
}
