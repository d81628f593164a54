//! Business rules. Nothing here knows GraphQL, HTTP, diesel or any other adapter: the adapters
//! implement the traits in `ports` and the services are built on them in `app.rs`.

pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod clock;
pub mod events;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod ports;
pub mod search;
