//! PaymentGateway adapters: the built-in test gateway (default).

mod test_gateway;

pub use test_gateway::{LedgerEntry, TestGateway};
