//! GraphQL types. Catalog, account and cart types wrap domain entities; the rest of the contract's
//! types are declared in `pending` until their capabilities land.

mod auth;
mod cart;
mod catalog;
mod pending;
mod search;

pub use auth::{AuthPayload, User};
pub use cart::{Cart, CartItem};
pub use catalog::{Attribute, Category, Money, Product};
pub use pending::*;
pub use search::*;
