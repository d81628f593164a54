//! GraphQL types, most wrapping domain entities.

mod auth;
mod cart;
mod catalog;
mod checkout;
mod flash;
mod search;

pub use auth::{AuthPayload, User};
pub use cart::{Cart, CartItem};
pub use catalog::{Attribute, Category, Money, Product, RecommendationIntent};
pub use checkout::*;
pub use flash::*;
pub use search::*;
