//! The Store adapter: diesel-async over PostgreSQL or SQLite, one query code for both.

pub mod checkout_models;
mod checkout_store;
pub mod models;
pub mod pool;
pub mod prepared;
pub mod repo;
pub mod schema;
mod store;

pub use pool::{Pool, QueryObserver, is_postgres_url};
pub use store::DbStore;

use crate::domain::ports::StoreError;

/// Maps a diesel error to the domain's store error, naming the operation for the logs.
/// Constraint violations are conflicts the domain can explain; the rest is internal.
pub(crate) fn store_error(operation: &'static str) -> impl FnOnce(diesel::result::Error) -> StoreError {
    use diesel::result::{DatabaseErrorKind, Error};
    move |err| match err {
        Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::CheckViolation,
            info,
        ) => StoreError::Conflict(format!("{operation}: {}", info.message())),
        other => StoreError::internal(operation, other),
    }
}

/// Begin and commit failures of a transaction.
impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        store_error("running a transaction")(err)
    }
}

impl From<diesel::result::Error> for crate::domain::cart::CartError {
    fn from(err: diesel::result::Error) -> Self {
        crate::domain::cart::CartError::Store(err.into())
    }
}

impl From<diesel::result::Error> for crate::domain::checkout::CheckoutError {
    fn from(err: diesel::result::Error) -> Self {
        crate::domain::checkout::CheckoutError::Store(err.into())
    }
}
