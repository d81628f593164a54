//! GraphQL types. Catalog and account types wrap domain entities; the rest of the contract's
//! types are declared in `pending` until their capabilities land.

mod auth;
mod catalog;
mod pending;

pub use auth::{AuthPayload, User};
pub use catalog::{Attribute, Category, Money, Product};
pub use pending::*;
