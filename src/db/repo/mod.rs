//! Query functions. Each takes `&mut Conn` and is written once for both backends.

pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod orders;
pub mod outbox;
pub mod users;

/// Rows per multi-row INSERT: 13 columns x 1,000 stays under SQLite's 32,766 bound parameters.
pub const INSERT_CHUNK: usize = 1_000;
