//! One service per capability. A service method reads its input, then runs a straight script
//! that owns its transaction: lock, load, the domain's pure rule, write (`db::Writes`), events.
//! Services know the store (`db`) and the ports, never GraphQL or HTTP.

pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod flash_sales;
pub mod limits;
pub mod orders;
pub mod recommendations;
pub mod search;
