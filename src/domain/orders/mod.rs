//! Orders: event-sourced (the events are the truth, the order row their projection), with a
//! status state machine for admins and a live feed for their owners.

pub mod error;
pub mod model;

pub use error::OrderError;
pub use model::{Order, OrderEvent, OrderEventData, OrderStatus, PlacedOrder, TransitionEffects};
