//! Cache and event-bus adapters: in-process (the embedded default) and Redis (shared by every
//! instance).

mod local;
mod redis;

pub use local::{LocalBus, LocalCache};
pub use redis::{RedisBackend, connect_redis};
