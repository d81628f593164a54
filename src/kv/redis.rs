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
use crate::domain::flash::gate::{Attempt, GateAnswer};
use crate::domain::flash::{ATTEMPT_WINDOW, ATTEMPTS_PER_WINDOW};
use crate::domain::limits::{Acquire, Admission, Quota};
use crate::ports::{BusError, Delivery, Event, EventBus};
use crate::ports::{Cache, CacheError, FlashGate, GateError, LimiterError, RateLimiter};

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

/// `SaleGate::enter` (`domain::flash::gate`) on a sale's keys, the same steps in the same order.
/// KEYS: units, tickets, entrants, the shopper's attempts, rate-limited count. ARGV: shopper,
/// quantity, per-user limit, tickets let through (-1: waiting room not open), attempts per
/// window, window ms, TTL ms. Returns {answer} or {answer, value}: 0 unloaded, 1 rate limited
/// (ms to wait), 2 returning, 3 bad quantity, 4 early, 5 sold out, 6 waiting (ticket), 7
/// admitted (ticket).
const GATE_ENTER: &str = r"
local units = redis.call('GET', KEYS[1])
if not units then return {0} end
local admitted = tonumber(ARGV[4])
local tickets = redis.call('GET', KEYS[2])
if admitted >= 0 and not tickets then return {0} end
local attempts = redis.call('INCR', KEYS[4])
if attempts == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[6]) end
if attempts > tonumber(ARGV[5]) then
  redis.call('INCR', KEYS[5])
  redis.call('PEXPIRE', KEYS[5], ARGV[7])
  return {1, redis.call('PTTL', KEYS[4])}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {2} end
local quantity = tonumber(ARGV[2])
if quantity < 1 or quantity > tonumber(ARGV[3]) then return {3} end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
if admitted < 0 then return {4} end
local ticket = tonumber(tickets) + 1
if ticket > admitted then
  redis.call('INCR', KEYS[2])
  return {6, ticket}
end
if tonumber(units) < quantity then return {5} end
redis.call('DECRBY', KEYS[1], quantity)
redis.call('INCR', KEYS[2])
return {7, ticket}
";

/// Loads a sale's units, and its tickets when ARGV[2] >= 0, unless there. KEYS: units,
/// tickets. ARGV: units, tickets, TTL ms.
const GATE_LOAD: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3])
if tonumber(ARGV[2]) >= 0 then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) end
return 1
";

/// Gives units back to a loaded sale and, when ARGV[2] is not empty, lets that shopper enter
/// again. KEYS: units, entrants.
const GATE_PUT_BACK: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
if ARGV[2] ~= '' then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
";

/// Sets a loaded sale's units. KEYS: units.
const GATE_SET_UNITS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') end
return 1
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

    pub fn flash_gate(&self) -> Arc<dyn FlashGate> {
        Arc::new(self.clone())
    }

    /// A sale's key; the hash tag keeps one sale's keys on one cluster slot, so a script may
    /// touch them all.
    fn sale_key(&self, sale_id: &str, part: &str) -> String {
        self.key(&format!("flash:{{{sale_id}}}:{part}"))
    }

    async fn gate_script<R: fred::types::FromValue>(
        &self,
        script: &str,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<R, GateError> {
        self.reachable().map_err(GateError)?;
        self.client.eval(script, keys, args).await.map_err(|e| GateError(e.to_string()))
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

    fn reaches_other_instances(&self) -> bool {
        true
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

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[async_trait]
impl FlashGate for RedisBackend {
    async fn load(&self, sale_id: &str, units: i32, tickets: Option<i64>, ttl: Duration) -> Result<(), GateError> {
        let keys = vec![self.sale_key(sale_id, "units"), self.sale_key(sale_id, "tickets")];
        let args = vec![units.to_string(), tickets.unwrap_or(-1).to_string(), millis(ttl)];
        self.gate_script::<i64>(GATE_LOAD, keys, args).await.map(drop)
    }

    async fn enter(&self, sale_id: &str, attempt: &Attempt<'_>, ttl: Duration) -> Result<GateAnswer, GateError> {
        let keys = ["units", "tickets", "entrants", &format!("attempts:{}", attempt.shopper), "rate_limited"]
            .map(|part| self.sale_key(sale_id, part))
            .to_vec();
        let window = ATTEMPT_WINDOW.to_std().unwrap_or_default();
        let args = vec![
            attempt.shopper.to_owned(),
            attempt.quantity.to_string(),
            attempt.per_user_limit.to_string(),
            attempt.admitted.unwrap_or(-1).to_string(),
            ATTEMPTS_PER_WINDOW.to_string(),
            millis(window),
            millis(ttl),
        ];
        let answer: Vec<i64> = self.gate_script(GATE_ENTER, keys, args).await?;
        let value = answer.get(1).copied().unwrap_or_default();
        Ok(match answer.first() {
            Some(1) => GateAnswer::RateLimited(Duration::from_millis(u64::try_from(value).unwrap_or_default())),
            Some(2) => GateAnswer::Returning,
            Some(3) => GateAnswer::BadQuantity,
            Some(4) => GateAnswer::Early,
            Some(5) => GateAnswer::SoldOut,
            Some(6) => GateAnswer::Waiting(value),
            Some(7) => GateAnswer::Admitted(value),
            _ => GateAnswer::Unloaded,
        })
    }

    async fn put_back(&self, sale_id: &str, shopper: Option<&str>, units: i32) -> Result<(), GateError> {
        let keys = vec![self.sale_key(sale_id, "units"), self.sale_key(sale_id, "entrants")];
        let args = vec![units.to_string(), shopper.unwrap_or_default().to_owned()];
        self.gate_script::<i64>(GATE_PUT_BACK, keys, args).await.map(drop)
    }

    async fn set_units(&self, sale_id: &str, units: i32) -> Result<(), GateError> {
        let keys = vec![self.sale_key(sale_id, "units")];
        self.gate_script::<i64>(GATE_SET_UNITS, keys, vec![units.to_string()]).await.map(drop)
    }

    async fn rate_limited(&self, sale_id: &str) -> Result<i64, GateError> {
        self.reachable().map_err(GateError)?;
        let count: Option<i64> =
            self.client.get(self.sale_key(sale_id, "rate_limited")).await.map_err(|e| GateError(e.to_string()))?;
        Ok(count.unwrap_or_default())
    }

    async fn close(&self, sale_id: &str) -> Result<(), GateError> {
        self.reachable().map_err(GateError)?;
        let keys: Vec<String> =
            ["units", "tickets", "entrants", "rate_limited"].map(|part| self.sale_key(sale_id, part)).to_vec();
        self.client.del::<i64, _>(keys).await.map(drop).map_err(|e| GateError(e.to_string()))
    }
}
