//! GraphQL types. Most wrap domain entities; flash-sale types are declared in `pending` until
//! their capability lands.

mod auth;
mod cart;
mod catalog;
mod checkout;
mod pending;
mod search;

pub use auth::{AuthPayload, User};
pub use cart::{Cart, CartItem};
pub use catalog::{Attribute, Category, Money, Product, RecommendationIntent};
pub use checkout::*;
pub use pending::*;
pub use search::*;
