//! Cache, event-bus and rate-limiter adapters: in-process (the embedded default) and Redis
//! (shared by every instance).

mod local;
mod redis;

pub use local::{LocalBus, LocalCache, LocalRateLimiter};
pub use redis::{RedisBackend, connect_redis};
