//! The store adapter: diesel-async over PostgreSQL or SQLite, one query code for both. One file
//! per aggregate holds its rows, its queries and their conversion to domain values; services
//! compose them inside the transactions they own (`Pool::transaction`), and send a change's
//! writes together (`Writes`).

pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod flash_sales;
pub mod inventory;
mod log_sync;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod pool;
pub mod prepared;
pub mod recommendations;
pub mod rounds;
pub mod schema;
pub mod users;
pub mod writes;

pub use pool::{Conn, Pool, Queue, StatementObserver, is_postgres_url, scoped};
pub use writes::Writes;

use crate::ports::{StoreError, StoreResult};

/// Rows per multi-row INSERT: 13 columns x 1,000 stays under SQLite's 32,766 bound parameters.
pub const INSERT_CHUNK: usize = 1_000;
/// Ids bound into one statement when loading by id.
pub const IDS_PER_STATEMENT: usize = 1_000;

/// Maps a diesel error to the store error, naming the operation for the logs. Constraint
/// violations are conflicts the domain can explain; the rest is internal.
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

/// Every domain error that a transaction can end with takes begin and commit failures.
macro_rules! transaction_errors {
    ($($error:ty),*) => {$(
        impl From<diesel::result::Error> for $error {
            fn from(err: diesel::result::Error) -> Self {
                StoreError::from(err).into()
            }
        }
    )*};
}
transaction_errors!(
    crate::domain::cart::CartError,
    crate::domain::checkout::CheckoutError,
    crate::domain::flash::FlashSaleError,
    crate::domain::orders::OrderError
);

/// Rows into domain values: the one conversion style of every aggregate (`TryFrom<Row>`), since
/// a stored value the domain does not know is an error, not a default.
pub(crate) fn converted<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T, what: &'static str) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|err| StoreError::internal(what, err))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|err| StoreError::internal(what, err))
}

/// A stored enum value read back: an unknown one is an internal error.
pub(crate) fn parsed<T>(value: Option<T>, text: &str, what: &'static str) -> StoreResult<T> {
    value.ok_or_else(|| StoreError::internal(what, std::io::Error::other(format!("unknown value `{text}`"))))
}

/// The stored shopper of a row.
pub(crate) fn shopper(key: &str) -> StoreResult<crate::domain::primitives::Shopper> {
    parsed(crate::domain::primitives::Shopper::parse(key), key, "reading a shopper")
}
