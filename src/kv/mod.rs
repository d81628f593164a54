//! Cache, event-bus, rate-limiter and flash-sale gate adapters: in-process (the embedded default) and Redis
//! (shared by every instance).

mod local;
mod redis;

pub use local::{LocalBus, LocalCache, LocalFlashGate, LocalRateLimiter};
pub use redis::{RedisBackend, connect_redis};
