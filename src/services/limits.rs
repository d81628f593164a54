//! The rate limits of contract note 17, applied through the one `RateLimiter` the app picked
//! (in process, or Redis shared by every instance).

use std::sync::Arc;

use crate::domain::limits::{Acquire, Admission, LimitedAction, RateLimited, RateLimits};
use crate::ports::RateLimiter;

#[derive(Clone)]
pub struct RateLimitService {
    limiter: Arc<dyn RateLimiter>,
    limits: Arc<RateLimits>,
}

impl RateLimitService {
    pub fn new(limiter: Arc<dyn RateLimiter>, limits: RateLimits) -> Self {
        Self { limiter, limits: Arc::new(limits) }
    }

    /// Takes one `action` for `subject` (an address, an account, a caller), or refuses it.
    pub async fn take(&self, action: LimitedAction, subject: &str) -> Result<(), RateLimited> {
        self.ask(action, subject, Acquire::Take).await
    }

    /// Whether one more `action` would be allowed, without counting it.
    pub async fn peek(&self, action: LimitedAction, subject: &str) -> Result<(), RateLimited> {
        self.ask(action, subject, Acquire::Peek).await
    }

    async fn ask(&self, action: LimitedAction, subject: &str, acquire: Acquire) -> Result<(), RateLimited> {
        let Some(quota) = self.limits.quota(action) else { return Ok(()) };
        match self.limiter.acquire(&action.key(subject), quota, acquire).await {
            Ok(Admission::Allowed) => Ok(()),
            Ok(Admission::RetryAfter(retry_after)) => Err(RateLimited { retry_after }),
            // A limiter that cannot answer (Redis down) lets the action through: limits guard
            // against abuse, and shutting every shopper out would be worse.
            Err(err) => {
                tracing::warn!(error = %err, ?action, "rate limiter unavailable; allowing");
                Ok(())
            }
        }
    }
}
