//! Configuration: defaults < optional TOML file (`SHOP_CONFIG`) < `SHOP_*` environment variables.
//! Every key is listed once in `KEYS`; README.md documents the same table and a test keeps them
//! in step.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use chrono::Duration;

use crate::domain::checkout::PricingRules;
use crate::domain::limits::{Quota, RateLimits};
use crate::domain::payments::RetryPolicy;

/// A configuration key: its TOML name (the variable is `SHOP_` + upper case), default, meaning.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

pub const KEYS: &[Key] = &[
    Key {
        name: "env",
        default: "development",
        meaning: "production refuses to start with the test payment gateway, the demo seed, or fault switches",
    },
    Key { name: "listen", default: "127.0.0.1:8080", meaning: "address and port of the HTTP server" },
    Key { name: "data_dir", default: "./data", meaning: "embedded store, search index and generated secrets" },
    Key {
        name: "database_url",
        default: "",
        meaning: "empty: SQLite file in the data dir; postgres://… selects PostgreSQL",
    },
    Key {
        name: "redis_url",
        default: "",
        meaning: "redis://… selects Redis for cache, pub/sub, counters, locks, rate limits",
    },
    Key { name: "opensearch_url", default: "", meaning: "selects the OpenSearch search backend" },
    Key {
        name: "opensearch_index",
        default: "shop-products",
        meaning: "the alias searches and writes use on OpenSearch (a rebuild moves it to a new index)",
    },
    Key {
        name: "seed_products",
        default: "10000",
        meaning: "products generated on first start with an empty store; 0 disables",
    },
    Key {
        name: "jwt_secret",
        default: "",
        meaning: "signing key of access tokens (at least 32 bytes); empty: generated once into the data dir",
    },
    Key { name: "admin_email", default: "", meaning: "with admin_password: this admin exists after start" },
    Key { name: "admin_password", default: "", meaning: "with admin_email: the admin's password" },
    Key { name: "log", default: "info", meaning: "log filter (tracing EnvFilter syntax)" },
    Key { name: "log_format", default: "text", meaning: "text or json (one JSON object per line)" },
    Key { name: "db_pool_size", default: "16", meaning: "connections in the store's pool" },
    Key { name: "currency", default: "USD", meaning: "currency of products that do not name one" },
    Key { name: "access_token_ttl_secs", default: "900", meaning: "lifetime of a signed-in user's access token" },
    Key { name: "refresh_token_ttl_secs", default: "2592000", meaning: "lifetime of a refresh token (30 days)" },
    Key { name: "guest_token_ttl_secs", default: "604800", meaning: "lifetime of a guest session token (7 days)" },
    Key {
        name: "max_query_depth",
        default: "20",
        meaning: "deepest GraphQL selection accepted (introspection, as GraphiQL sends it, needs 14)",
    },
    Key {
        name: "max_query_cost",
        default: "25000",
        meaning: "highest query cost accepted: a field costs 1, a list field its size times its selection (note 18)",
    },
    Key { name: "max_body_bytes", default: "262144", meaning: "largest HTTP request body accepted" },
    Key {
        name: "http_header_timeout_secs",
        default: "10",
        meaning: "a connection that sends no complete request head this long (idle keep-alive too) is closed",
    },
    Key {
        name: "http_idle_timeout_secs",
        default: "60",
        meaning: "a connection with no traffic either way this long is closed (must exceed ws_keepalive_secs)",
    },
    Key {
        name: "http_body_timeout_secs",
        default: "30",
        meaning: "a request whose body has not fully arrived this long is answered 408",
    },
    Key {
        name: "http_max_connections",
        default: "10000",
        meaning: "connections held open at once (websockets included); beyond it a newcomer gets 503",
    },
    Key {
        name: "redis_namespace",
        default: "shop",
        meaning: "prefix of Redis keys and channels; instances that share one set it alike",
    },
    Key { name: "cart_max_lines", default: "100", meaning: "lines a cart may hold" },
    Key { name: "cart_max_line_quantity", default: "99", meaning: "units one cart line may hold" },
    Key {
        name: "guest_cart_ttl_secs",
        default: "86400",
        meaning: "a guest cart is deleted this long after its last change",
    },
    Key { name: "cart_retention_days", default: "90", meaning: "any cart untouched this long is deleted" },
    Key {
        name: "synonyms_file",
        default: "",
        meaning: "synonym groups (`a, b, c` per line) replacing the built-in ones",
    },
    Key {
        name: "search_cache",
        default: "true",
        meaning: "serve identical searches from the result cache (5 minutes, dropped on any index change)",
    },
    Key {
        name: "rate_limits",
        default: "on",
        meaning: "off disables the per-address, per-account and per-caller limits (load tests from one address)",
    },
    Key {
        name: "trusted_proxies",
        default: "",
        meaning: "comma-separated addresses of reverse proxies whose X-Forwarded-For names the client",
    },
    Key { name: "sign_in_attempts_per_minute", default: "20", meaning: "signIn and signUp calls per client address" },
    Key { name: "failed_sign_ins_per_minute", default: "10", meaning: "failed signIn calls per account" },
    Key { name: "guest_sessions_per_minute", default: "30", meaning: "startGuestSession calls per client address" },
    Key { name: "shopper_writes_per_minute", default: "120", meaning: "cart and checkout mutations per caller" },
    Key {
        name: "ws_init_timeout_secs",
        default: "10",
        meaning: "a websocket that sends no connection_init this long is closed (4408)",
    },
    Key { name: "ws_max_subscriptions", default: "100", meaning: "active subscriptions one websocket may hold" },
    Key {
        name: "ws_keepalive_secs",
        default: "30",
        meaning: "the server pings each websocket this often and drops one silent for two rounds",
    },
    Key {
        name: "ws_max_connections_per_address",
        default: "200",
        meaning: "websockets one client address may hold open on one instance",
    },
    Key { name: "reservation_ttl_secs", default: "600", meaning: "how long initiateCheckout holds the cart's stock" },
    Key { name: "shipping_cents", default: "499", meaning: "flat shipping rate in minor units" },
    Key { name: "free_shipping_from_cents", default: "5000", meaning: "orders whose subtotal reaches this ship free" },
    Key {
        name: "tax_rates",
        default: "US=0,CA=500,GB=2000,DE=1900,FR=2000",
        meaning: "tax per destination country in basis points (1900 = 19%); unlisted countries pay none",
    },
    Key {
        name: "default_country",
        default: "US",
        meaning: "destination a checkout is priced for until placeOrder gives the shipping address",
    },
    Key {
        name: "payment_retry_delays_ms",
        default: "1000,2000,4000",
        meaning: "waits before retrying a transient payment failure; empty: no retries",
    },
    Key {
        name: "payment_gateway",
        default: "test",
        meaning: "test (built-in, Stripe's test payment methods) or stripe",
    },
    Key {
        name: "stripe_secret_key", default: "", meaning: "with payment_gateway = stripe: the secret API key (sk_…)"
    },
    Key {
        name: "stripe_api_base",
        default: "https://api.stripe.com",
        meaning: "Stripe's API address (a stub's in tests)",
    },
    Key {
        name: "fault_abort_after_charge",
        default: "false",
        meaning: "testing only: abort the process right after a successful charge (proves crash recovery)",
    },
    Key {
        name: "recommender_interval_secs",
        default: "600",
        meaning: "how often a running server retrains the recommendation models (one instance at a time)",
    },
    Key {
        name: "sweep_interval_secs",
        default: "60",
        meaning: "how often expired reservations, expired carts and published events are cleaned up",
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `SHOP_ENV=production`: test-only parts refuse to start.
    pub production: bool,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<Secret>,
    pub redis_url: Option<Secret>,
    pub opensearch_url: Option<Secret>,
    pub opensearch_index: String,
    pub seed_products: u64,
    pub jwt_secret: Option<Secret>,
    pub admin: Option<(String, Secret)>,
    pub log: String,
    pub log_format: LogFormat,
    pub db_pool_size: usize,
    pub currency: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub guest_token_ttl: Duration,
    pub max_query_depth: usize,
    pub max_query_cost: u64,
    pub rate_limits: RateLimits,
    pub trusted_proxies: Vec<IpAddr>,
    pub max_body_bytes: usize,
    pub http_header_timeout: Duration,
    pub http_idle_timeout: Duration,
    pub http_body_timeout: Duration,
    pub http_max_connections: usize,
    pub redis_namespace: String,
    pub cart_max_lines: usize,
    pub cart_max_line_quantity: i32,
    pub guest_cart_ttl: Duration,
    pub cart_retention: Duration,
    pub sweep_interval: Duration,
    pub recommender_interval: Duration,
    pub ws_init_timeout: Duration,
    pub ws_max_subscriptions: usize,
    pub ws_keepalive: Duration,
    pub ws_max_connections_per_address: usize,
    pub search_cache: bool,
    pub synonyms_file: Option<PathBuf>,
    pub reservation_ttl: Duration,
    pub pricing: PricingRules,
    pub payment_retry: RetryPolicy,
    pub fault_abort_after_charge: bool,
    pub payment_gateway: GatewayChoice,
}

/// A value that must not reach logs: keys, passwords, and service URLs (which may carry
/// credentials). `Config`'s Debug output shows it as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which PaymentGateway adapter charges.
#[derive(Clone, PartialEq, Eq)]
pub enum GatewayChoice {
    Test,
    Stripe { api_base: String, secret_key: String },
}

/// Never prints the key.
impl std::fmt::Debug for GatewayChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayChoice::Test => f.write_str("Test"),
            GatewayChoice::Stripe { api_base, .. } => write!(f, "Stripe({api_base})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: String, message: String },
    #[error("unknown config key `{0}` (known keys: see README, section Configuration)")]
    UnknownKey(String),
    #[error("invalid value for {key}: {message}")]
    Invalid { key: String, message: String },
}

impl Config {
    /// Reads the TOML file named by `SHOP_CONFIG` (if any) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_sources(std::env::vars().collect())
    }

    /// Builds a config from environment-style variables (and the TOML file they may name).
    pub fn from_sources(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut values: HashMap<&'static str, (String, String)> =
            KEYS.iter().map(|k| (k.name, (k.default.to_owned(), format!("{} (default)", env_name(k.name))))).collect();
        if let Some(path) = env.get("SHOP_CONFIG").filter(|p| !p.is_empty()) {
            for (name, value) in read_toml(path)? {
                let key = KEYS.iter().find(|k| k.name == name).ok_or_else(|| ConfigError::UnknownKey(name.clone()))?;
                values.insert(key.name, (value, format!("`{name}` in {path}")));
            }
        }
        for key in KEYS {
            let variable = env_name(key.name);
            if let Some(value) = env.get(&variable) {
                values.insert(key.name, (value.clone(), variable));
            }
        }
        let reader = Values(values);
        let admin = match (reader.optional("admin_email"), reader.optional("admin_password")) {
            (Some(email), Some(password)) => Some((email, Secret(password))),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "SHOP_ADMIN_EMAIL / SHOP_ADMIN_PASSWORD".to_owned(),
                    message: "set both or neither".to_owned(),
                });
            }
        };
        let jwt_secret = reader.optional("jwt_secret");
        if let Some(secret) = &jwt_secret
            && secret.len() < 32
        {
            return Err(reader.invalid("jwt_secret", "must be at least 32 bytes"));
        }
        let log_format = match reader.text("log_format").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(reader.invalid("log_format", "must be text or json")),
        };
        let currency = reader.text("currency");
        if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(reader.invalid("currency", "must be an ISO-4217 code such as USD"));
        }
        let default_country = reader.text("default_country").to_ascii_uppercase();
        if !(default_country.len() == 2 && default_country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(reader.invalid("default_country", "must be a two-letter country code such as US"));
        }
        let payment_gateway = match reader.text("payment_gateway").as_str() {
            "test" => GatewayChoice::Test,
            "stripe" => GatewayChoice::Stripe {
                api_base: reader.text("stripe_api_base"),
                secret_key: reader
                    .optional("stripe_secret_key")
                    .ok_or_else(|| reader.invalid("stripe_secret_key", "is required with payment_gateway = stripe"))?,
            },
            other => return Err(reader.invalid("payment_gateway", format!("`{other}` is not test or stripe"))),
        };
        let database_url = reader.optional("database_url");
        if let Some(url) = &database_url
            && !crate::db::is_postgres_url(url)
        {
            return Err(reader.invalid("database_url", "must start with postgres:// (leave it unset for SQLite)"));
        }
        let config = Config {
            production: match reader.text("env").as_str() {
                "development" => false,
                "production" => true,
                other => return Err(reader.invalid("env", format!("`{other}` is not development or production"))),
            },
            listen: reader.parsed("listen")?,
            data_dir: PathBuf::from(reader.text("data_dir")),
            database_url: database_url.map(Secret),
            redis_url: reader.optional("redis_url").map(Secret),
            opensearch_url: reader.optional("opensearch_url").map(Secret),
            opensearch_index: reader.text("opensearch_index"),
            seed_products: reader.parsed("seed_products")?,
            jwt_secret: jwt_secret.map(Secret),
            admin,
            log: reader.text("log"),
            log_format,
            db_pool_size: reader.positive("db_pool_size")?,
            currency,
            access_token_ttl: reader.seconds("access_token_ttl_secs")?,
            refresh_token_ttl: reader.seconds("refresh_token_ttl_secs")?,
            guest_token_ttl: reader.seconds("guest_token_ttl_secs")?,
            max_query_depth: reader.positive("max_query_depth")?,
            max_query_cost: reader.positive("max_query_cost")? as u64,
            rate_limits: RateLimits {
                enabled: reader.flag("rate_limits")?,
                sign_in_attempts: reader.per_minute("sign_in_attempts_per_minute")?,
                failed_sign_ins: reader.per_minute("failed_sign_ins_per_minute")?,
                guest_sessions: reader.per_minute("guest_sessions_per_minute")?,
                shopper_writes: reader.per_minute("shopper_writes_per_minute")?,
            },
            trusted_proxies: reader.addresses("trusted_proxies")?,
            max_body_bytes: reader.positive("max_body_bytes")?,
            http_header_timeout: reader.seconds("http_header_timeout_secs")?,
            http_idle_timeout: reader.seconds("http_idle_timeout_secs")?,
            http_body_timeout: reader.seconds("http_body_timeout_secs")?,
            http_max_connections: reader.positive("http_max_connections")?,
            redis_namespace: reader.text("redis_namespace"),
            cart_max_lines: reader.positive("cart_max_lines")?,
            cart_max_line_quantity: i32::try_from(reader.positive("cart_max_line_quantity")?)
                .map_err(|_| reader.invalid("cart_max_line_quantity", "too large"))?,
            guest_cart_ttl: reader.seconds("guest_cart_ttl_secs")?,
            cart_retention: Duration::days(i64::try_from(reader.positive("cart_retention_days")?).unwrap_or(90)),
            sweep_interval: reader.seconds("sweep_interval_secs")?,
            recommender_interval: reader.seconds("recommender_interval_secs")?,
            ws_init_timeout: reader.seconds("ws_init_timeout_secs")?,
            ws_max_subscriptions: reader.positive("ws_max_subscriptions")?,
            ws_keepalive: reader.seconds("ws_keepalive_secs")?,
            ws_max_connections_per_address: reader.positive("ws_max_connections_per_address")?,
            search_cache: reader.flag("search_cache")?,
            synonyms_file: reader.optional("synonyms_file").map(PathBuf::from),
            reservation_ttl: reader.seconds("reservation_ttl_secs")?,
            pricing: PricingRules {
                shipping_cents: i64::from(reader.parsed::<u32>("shipping_cents")?),
                free_shipping_from_cents: i64::from(reader.parsed::<u32>("free_shipping_from_cents")?),
                tax_basis_points: PricingRules::parse_tax_rates(&reader.text("tax_rates"))
                    .map_err(|message| reader.invalid("tax_rates", message))?,
                default_country,
            },
            payment_retry: RetryPolicy::parse(&reader.text("payment_retry_delays_ms"))
                .map_err(|message| reader.invalid("payment_retry_delays_ms", message))?,
            fault_abort_after_charge: reader.flag("fault_abort_after_charge")?,
            payment_gateway,
        };
        // The idle deadline would otherwise close quiet websockets between the server's pings.
        if config.http_idle_timeout <= config.ws_keepalive {
            return Err(reader.invalid("http_idle_timeout_secs", "must be longer than ws_keepalive_secs"));
        }
        if config.production {
            let refuse =
                |key: &str, what: &str| reader.invalid(key, format!("{what} is refused with SHOP_ENV=production"));
            if config.payment_gateway == GatewayChoice::Test {
                return Err(refuse("payment_gateway", "the test payment gateway"));
            }
            if config.seed_products > 0 {
                return Err(refuse("seed_products", "the demo catalog"));
            }
            if config.fault_abort_after_charge {
                return Err(refuse("fault_abort_after_charge", "a fault switch"));
            }
        }
        Ok(config)
    }

    /// The store's URL: PostgreSQL when configured, else the SQLite file in the data dir.
    pub fn store_url(&self) -> String {
        self.database_url
            .as_ref()
            .map_or_else(|| self.data_dir.join("shop.db").to_string_lossy().into_owned(), |url| url.expose().to_owned())
    }
}

pub fn env_name(key: &str) -> String {
    format!("SHOP_{}", key.to_uppercase())
}

fn read_toml(path: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let file_error = |message: String| ConfigError::File { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    table
        .into_iter()
        .map(|(name, value)| match value {
            toml::Value::String(s) => Ok((name, s)),
            toml::Value::Integer(i) => Ok((name, i.to_string())),
            toml::Value::Boolean(b) => Ok((name, b.to_string())),
            other => Err(file_error(format!("`{name}` must be a string or a number, not {}", other.type_str()))),
        })
        .collect()
}

/// Each value with the place it came from, so that an error names the exact variable or key.
struct Values(HashMap<&'static str, (String, String)>);

impl Values {
    fn text(&self, key: &str) -> String {
        self.0.get(key).map(|(value, _)| value.trim().to_owned()).unwrap_or_default()
    }

    fn optional(&self, key: &str) -> Option<String> {
        Some(self.text(key)).filter(|v| !v.is_empty())
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let source = self.0.get(key).map(|(_, source)| source.clone()).unwrap_or_else(|| env_name(key));
        ConfigError::Invalid { key: source, message: message.into() }
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.text(key);
        text.parse().map_err(|err| self.invalid(key, format!("`{text}`: {err}")))
    }

    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.text(key).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(self.invalid(key, format!("`{other}` is not true or false"))),
        }
    }

    fn positive(&self, key: &str) -> Result<usize, ConfigError> {
        let value: usize = self.parsed(key)?;
        if value == 0 {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        Ok(value)
    }

    fn per_minute(&self, key: &str) -> Result<Quota, ConfigError> {
        let count = u32::try_from(self.positive(key)?).map_err(|_| self.invalid(key, "too large"))?;
        Ok(Quota::per_minute(count))
    }

    fn addresses(&self, key: &str) -> Result<Vec<IpAddr>, ConfigError> {
        self.text(key)
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|err| self.invalid(key, format!("`{a}`: {err}"))))
            .collect()
    }

    fn seconds(&self, key: &str) -> Result<Duration, ConfigError> {
        let secs = i64::try_from(self.positive(key)?).map_err(|_| self.invalid(key, "too large"))?;
        Ok(Duration::seconds(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn production_refuses_the_test_only_parts() {
        let err = config(&[("SHOP_ENV", "production")]).expect_err("test gateway");
        assert!(err.to_string().contains("SHOP_PAYMENT_GATEWAY"), "{err}");
        let stripe =
            [("SHOP_ENV", "production"), ("SHOP_PAYMENT_GATEWAY", "stripe"), ("SHOP_STRIPE_SECRET_KEY", "sk_x")];
        let err = config(&stripe).expect_err("demo seed");
        assert!(err.to_string().contains("SHOP_SEED_PRODUCTS"), "{err}");
        let unseeded = [stripe.as_slice(), &[("SHOP_SEED_PRODUCTS", "0")]].concat();
        assert!(config(&unseeded).expect("a production config").production);
        let faulty = [unseeded.as_slice(), &[("SHOP_FAULT_ABORT_AFTER_CHARGE", "true")]].concat();
        assert!(config(&faulty).expect_err("fault switch").to_string().contains("SHOP_FAULT_ABORT_AFTER_CHARGE"));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secrets = [
            ("SHOP_JWT_SECRET", "a-signing-key-that-is-32-bytes-long!"),
            ("SHOP_ADMIN_EMAIL", "boss@example.com"),
            ("SHOP_ADMIN_PASSWORD", "hunter2hunter2"),
            ("SHOP_DATABASE_URL", "postgres://shop:dbpass@db/shop"),
            ("SHOP_REDIS_URL", "redis://:redispass@cache:6379"),
            ("SHOP_PAYMENT_GATEWAY", "stripe"),
            ("SHOP_STRIPE_SECRET_KEY", "sk_live_stripekey"),
        ];
        let shown = format!("{:?}", config(&secrets).expect("valid"));
        for hidden in ["32-bytes", "hunter2", "dbpass", "redispass", "sk_live"] {
            assert!(!shown.contains(hidden), "{hidden} shown in {shown}");
        }
        assert!(shown.contains("boss@example.com"), "{shown}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.seed_products, 10_000);
        assert!(config.database_url.is_none());
        assert!(config.store_url().ends_with("shop.db"));
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shop.toml");
        std::fs::write(&path, "seed_products = 5\nlisten = \"127.0.0.1:9000\"\n").expect("write");
        let path = path.to_string_lossy().into_owned();
        let config = config(&[("SHOP_CONFIG", &path), ("SHOP_LISTEN", "127.0.0.1:9100")]).expect("valid");
        assert_eq!(config.seed_products, 5);
        assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
    }

    #[test]
    fn errors_name_the_bad_key() {
        let err = config(&[("SHOP_LISTEN", "nowhere")]).expect_err("invalid");
        assert!(err.to_string().contains("SHOP_LISTEN"), "{err}");
        let err = config(&[("SHOP_DB_POOL_SIZE", "0")]).expect_err("invalid");
        assert!(err.to_string().contains("SHOP_DB_POOL_SIZE"), "{err}");
        let err = config(&[("SHOP_HTTP_IDLE_TIMEOUT_SECS", "30")]).expect_err("not above the 30 s keepalive");
        assert!(err.to_string().contains("SHOP_HTTP_IDLE_TIMEOUT_SECS"), "{err}");
        let err = config(&[("SHOP_ADMIN_EMAIL", "a@b.c")]).expect_err("invalid");
        assert!(err.to_string().contains("SHOP_ADMIN_PASSWORD"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "seed_prodcts = 5\n").expect("write");
        let err = config(&[("SHOP_CONFIG", &path.to_string_lossy())]).expect_err("unknown key");
        assert!(err.to_string().contains("seed_prodcts"), "{err}");
    }
}
