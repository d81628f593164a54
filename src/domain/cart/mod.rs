//! Carts: one per guest session or per user (shared by all the user's devices), with stock
//! and size rules, merge on sign-in, and a live feed of changes.

pub mod error;
pub mod model;
pub mod rules;

pub use error::{CartError, StockShortage};
pub use model::{CappedLine, Cart, CartLine};
pub use rules::CartLimits;
