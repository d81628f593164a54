//! Redis through fred: a shared cache and cross-instance pub/sub. Every instance publishes to
//! one channel and forwards what it receives to its in-process bus, so a subscription on one
//! instance sees changes made on another. Commands time out quickly, and fail at once while the
//! connection is down: the cache answers with errors (callers fall back to the store) and
//! events wait in the outbox.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, KeysInterface, LuaInterface, PubsubInterface, ReconnectPolicy,
};
use futures::stream::BoxStream;

use super::LocalBus;
use crate::domain::limits::{Acquire, Admission, Quota};
use crate::ports::{BusError, Delivery, Event, EventBus};
use crate::ports::{Cache, CacheError, LimiterError, RateLimiter};

/// Sets the value unless the stored one carries a higher version (`<version>|<value>`).
const PUT_VERSIONED: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(-?%d+)|'))
  if version and version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
";

/// One GCRA step (`domain::limits::gcra`, the same arithmetic) on Redis's clock, so every
/// instance shares one count per key. ARGV: interval ms, period ms, 1 to take or 0 to peek.
/// Returns 0 when allowed, else the milliseconds to wait.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_from = next_tat - period
if allowed_from > now then return allowed_from - now end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now) end
return 0
";

const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct RedisBackend {
    client: fred::clients::Client,
    namespace: String,
    local: Arc<LocalBus>,
}

/// Connects (without failing start-up while Redis is unreachable: the clients keep
/// reconnecting) and starts forwarding the shared event channel to this instance.
pub async fn connect_redis(url: &str, namespace: &str) -> anyhow::Result<RedisBackend> {
    let mut config = Config::from_url(url)?;
    config.fail_fast = false;
    let builder = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .to_owned();
    let client = builder.build()?;
    let subscriber = builder.build_subscriber_client()?;
    client.connect();
    subscriber.connect();
    if tokio::time::timeout(Duration::from_secs(2), client.wait_for_connect()).await.is_err() {
        tracing::warn!("Redis is not reachable yet; carrying on with the store and retrying");
    }
    let backend = RedisBackend { client, namespace: namespace.to_owned(), local: Arc::new(LocalBus::default()) };
    backend.forward_events(subscriber).await;
    Ok(backend)
}

impl RedisBackend {
    fn channel(&self) -> String {
        format!("{}:events", self.namespace)
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }

    /// Subscribes (waiting until Redis acknowledges it, when reachable) and forwards every
    /// message to the local bus; resubscribes after reconnects.
    async fn forward_events(&self, subscriber: SubscriberClient) {
        let local = self.local.clone();
        let mut messages = subscriber.message_rx();
        tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(message) => match message.value.as_string().map(|s| serde_json::from_str::<Vec<Event>>(&s)) {
                        Some(Ok(events)) => local.deliver(&events),
                        _ => tracing::warn!(channel = %message.channel, "ignoring a malformed event message"),
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "Redis event forwarding fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let channel = self.channel();
        let subscribed = async {
            while let Err(err) = subscriber.subscribe(channel.clone()).await {
                tracing::warn!(error = %err, "subscribing to Redis events failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), subscribed).await.is_err() {
            let subscriber = subscriber.clone();
            let channel = channel.clone();
            tokio::spawn(async move {
                while subscriber.subscribe(channel.clone()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        let _resubscribe_on_reconnect = subscriber.manage_subscriptions();
    }

    pub fn bus(&self) -> Arc<dyn EventBus> {
        Arc::new(self.clone())
    }

    pub fn cache(&self) -> Arc<dyn Cache> {
        Arc::new(self.clone())
    }

    pub fn rate_limiter(&self) -> Arc<dyn RateLimiter> {
        Arc::new(self.clone())
    }

    /// Fails at once while the connection is down, instead of each command waiting out its
    /// timeout: with Redis gone, a request that would touch it several times stays fast.
    fn reachable(&self) -> Result<(), String> {
        if self.client.is_connected() { Ok(()) } else { Err("Redis is not connected".to_owned()) }
    }

    pub async fn ping(&self) -> bool {
        self.client.ping::<String>(None).await.is_ok()
    }
}

#[async_trait]
impl EventBus for RedisBackend {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        self.reachable().map_err(BusError)?;
        let message = serde_json::to_string(events).map_err(|e| BusError(e.to_string()))?;
        self.client.publish::<i64, _, _>(self.channel(), message).await.map(drop).map_err(|e| BusError(e.to_string()))
    }

    fn subscribe(&self, topic: &str) -> BoxStream<'static, Delivery> {
        self.local.subscribe(topic)
    }
}

#[async_trait]
impl Cache for RedisBackend {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        self.reachable().map_err(CacheError)?;
        let stored: Option<String> = self.client.get(self.key(key)).await.map_err(|e| CacheError(e.to_string()))?;
        Ok(stored.and_then(|s| s.split_once('|').map(|(_, value)| value.to_owned())))
    }

    async fn put_versioned(&self, key: &str, version: i64, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.reachable().map_err(CacheError)?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.client
            .eval::<i64, _, _, _>(
                PUT_VERSIONED,
                vec![self.key(key)],
                vec![version.to_string(), value.to_owned(), ttl_ms.to_string()],
            )
            .await
            .map(drop)
            .map_err(|e| CacheError(e.to_string()))
    }
}

#[async_trait]
impl RateLimiter for RedisBackend {
    async fn acquire(&self, key: &str, quota: Quota, acquire: Acquire) -> Result<Admission, LimiterError> {
        self.reachable().map_err(LimiterError)?;
        let take = match acquire {
            Acquire::Take => "1",
            Acquire::Peek => "0",
        };
        let wait_ms: i64 = self
            .client
            .eval(
                GCRA,
                vec![self.key(&format!("rate:{key}"))],
                vec![quota.interval_ms().to_string(), quota.period_ms().to_string(), take.to_owned()],
            )
            .await
            .map_err(|e| LimiterError(e.to_string()))?;
        Ok(match u64::try_from(wait_ms) {
            Ok(wait) if wait > 0 => Admission::RetryAfter(Duration::from_millis(wait)),
            _ => Admission::Allowed,
        })
    }
}
