//! PaymentGateway adapters: the built-in test gateway (default) and Stripe.

mod stripe;
mod test_gateway;

pub use stripe::StripeGateway;
pub use test_gateway::{LedgerEntry, TestGateway};
