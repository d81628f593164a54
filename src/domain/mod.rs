//! Models and pure business rules. Nothing here knows GraphQL, HTTP, diesel or any other
//! adapter; the services (`crate::services`) run these rules inside their transactions.

pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod clock;
pub mod events;
pub mod flash;
pub mod limits;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod primitives;
pub mod recommend;
pub mod search;
