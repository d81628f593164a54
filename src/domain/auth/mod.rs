//! Accounts, guest sessions, access and refresh tokens, and who may do what.

pub mod error;
pub mod model;
pub mod password;
pub mod tokens;

pub use error::AuthError;
pub use model::{AuthPayload, User, Viewer};
