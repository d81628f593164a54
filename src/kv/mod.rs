//! Cache, event-bus, rate-limiter and flash-sale gate adapters: in-process (the embedded default) and Redis
//! (shared by every instance).

mod local;
mod redis;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use local::{LocalBus, LocalCache, LocalCartCache, LocalFlashGate, LocalRateLimiter};
pub use redis::{RedisBackend, connect_redis};

use crate::domain::cart::Cart;
use crate::domain::primitives::Shopper;
use crate::ports::{Cache, CacheError, CartCache};

fn cart_key(owner: &Shopper) -> String {
    format!("cart:{owner}")
}

/// Carts kept as JSON in a cache that other instances share.
pub struct SharedCartCache(pub Arc<dyn Cache>);

#[async_trait]
impl CartCache for SharedCartCache {
    async fn get(&self, owner: &Shopper) -> Result<Option<Arc<Cart>>, CacheError> {
        let json = self.0.get(&cart_key(owner)).await?;
        // An entry that does not parse (written by another version of the server) is a miss.
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()).map(Arc::new))
    }

    async fn put(&self, cart: &Arc<Cart>, json: Option<&str>, ttl: Duration) -> Result<(), CacheError> {
        let json = match json {
            Some(json) => Cow::Borrowed(json),
            None => Cow::Owned(serde_json::to_string(cart.as_ref()).map_err(|err| CacheError(err.to_string()))?),
        };
        self.0.put_versioned(&cart_key(&cart.owner), cart.version, &json, ttl).await
    }
}
