//! Checkout: reserving a cart's stock, pricing it, and the saga that charges once and turns
//! the reservation into an order (or compensates).

pub mod error;
pub mod fraud;
pub mod model;
pub mod pricing;
pub mod rules;

pub use error::CheckoutError;
pub use model::{Address, CheckoutSession, CheckoutStatus, OrderRequest, Saga, SagaStep, Totals};
pub use pricing::PricingRules;
