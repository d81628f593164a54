//! Builds the one `AppContext` from the config: the only place that picks adapters.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use rand::RngCore;

use crate::config::{Config, GatewayChoice};
use crate::db::Pool;
use crate::domain::auth::tokens::TokenIssuer;
use crate::domain::cart::CartLimits;
use crate::domain::search::Synonyms;
use crate::domain::search::synonyms::DEFAULT_SYNONYMS;
use crate::kv::{
    LocalBus, LocalCache, LocalCartCache, LocalFlashGate, LocalRateLimiter, RedisBackend, SharedCartCache,
    connect_redis,
};
use crate::metrics::Metrics;
use crate::notifier::FileNotifier;
use crate::payments::{StripeGateway, TestGateway};
use crate::ports::{Cache, CartCache, Clock, EventBus, FlashGate, Notifier, PaymentGateway, RateLimiter, SearchIndex};
use crate::search::{OpenSearchIndex, TantivyIndex};
use crate::services::auth::AuthService;
use crate::services::cart::CartService;
use crate::services::catalog::CatalogService;
use crate::services::checkout::{CheckoutRules, CheckoutService};
use crate::services::flash_sales::FlashSaleService;
use crate::services::limits::RateLimitService;
use crate::services::orders::OrderService;
use crate::services::recommendations::RecommendationService;
use crate::services::search::SearchService;

/// Entries of the in-process caches (embedded mode): carts, and search results, apart so that a
/// burst of distinct searches cannot push the carts out.
const CART_CACHE_ENTRIES: u64 = 100_000;
const SEARCH_CACHE_ENTRIES: u64 = 20_000;
/// Keys (addresses, accounts, callers) the in-process rate limiter remembers at most.
const RATE_LIMIT_KEYS: u64 = 200_000;

#[derive(Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub db: Pool,
    pub catalog: CatalogService,
    pub auth: AuthService,
    pub carts: CartService,
    pub search: SearchService,
    pub checkout: CheckoutService,
    pub orders: OrderService,
    pub flash_sales: FlashSaleService,
    pub recommendations: RecommendationService,
    pub limits: RateLimitService,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<dyn Notifier>,
    pub metrics: Arc<Metrics>,
    /// The shared Redis, when configured (readiness reports it).
    pub redis: Option<RedisBackend>,
    /// Set once the store is migrated and the first-start catalog is in place.
    pub catalog_ready: Arc<AtomicBool>,
}

impl AppContext {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
        let metrics = Arc::new(Metrics::default());
        let statements = metrics.clone();
        let db =
            Pool::open(&config.store_url(), config.db_pool_size, Arc::new(move |scope| statements.statement(scope)))
                .await
                .context("opening the store")?;
        let SharedState { bus, cart_cache, search_cache, limiter, flash_gate, redis } =
            SharedState::open(&config, &clock).await?;
        let limits = RateLimitService::new(limiter, config.rate_limits.clone());
        let cart_limits = CartLimits {
            max_lines: config.cart_max_lines,
            max_line_quantity: config.cart_max_line_quantity,
            guest_ttl: config.guest_cart_ttl,
            retention: config.cart_retention,
        };
        let catalog = CatalogService::new(db.clone(), clock.clone(), config.currency.clone());
        let carts = CartService::new(db.clone(), cart_cache, bus.clone(), clock.clone(), catalog.clone(), cart_limits);
        let secret = jwt_secret(&config)?;
        let tokens = TokenIssuer::new(&secret, config.access_token_ttl, config.guest_token_ttl);
        let auth = AuthService::new(
            db.clone(),
            clock.clone(),
            tokens,
            config.refresh_token_ttl,
            carts.clone(),
            limits.clone(),
        );
        let synonyms = match &config.synonyms_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading SHOP_SYNONYMS_FILE {}", path.display()))?,
            None => DEFAULT_SYNONYMS.to_owned(),
        };
        let synonyms = Synonyms::parse(&synonyms);
        let index: Arc<dyn SearchIndex> = match &config.opensearch_url {
            Some(url) => Arc::new(
                OpenSearchIndex::connect(url.expose(), &config.opensearch_index, synonyms)
                    .await
                    .context("connecting to OpenSearch")?,
            ),
            None => Arc::new(
                TantivyIndex::open(&config.data_dir.join("search"), synonyms).context("opening the search index")?,
            ),
        };
        let (cache_hits, swaps) = (metrics.search_cache_hits.clone(), metrics.search_index_swaps.clone());
        let search = SearchService::new(
            index,
            db.clone(),
            catalog.clone(),
            config.search_cache.then_some(search_cache),
            Arc::new(move || {
                cache_hits.inc();
            }),
            Arc::new(move || {
                swaps.inc();
            }),
        );
        let gateway: Arc<dyn PaymentGateway> = match &config.payment_gateway {
            GatewayChoice::Test => {
                let ledger = config.data_dir.join("test-gateway.jsonl");
                Arc::new(
                    TestGateway::open(&ledger)
                        .with_context(|| format!("opening the test gateway's ledger {}", ledger.display()))?,
                )
            }
            GatewayChoice::Stripe { api_base, secret_key } => {
                Arc::new(StripeGateway::new(api_base, secret_key).context("setting up the Stripe gateway")?)
            }
        };
        let rules = CheckoutRules {
            reservation_ttl: config.reservation_ttl,
            pricing: config.pricing.clone(),
            retry: config.payment_retry.clone(),
            abort_after_charge: config.fault_abort_after_charge,
        };
        let checkout = CheckoutService::new(db.clone(), carts.clone(), gateway.clone(), clock.clone(), rules);
        let orders = OrderService::new(
            db.clone(),
            bus.clone(),
            gateway,
            config.payment_retry.clone(),
            clock.clone(),
            config.reservation_ttl,
        );
        let flash_sales = FlashSaleService::new(
            db.clone(),
            flash_gate,
            bus.clone(),
            clock.clone(),
            config.pricing.clone(),
            metrics.clone(),
        );
        let recommendations = RecommendationService::new(db.clone(), catalog.clone(), clock.clone(), bus.clone());
        let notifier: Arc<dyn Notifier> = Arc::new(FileNotifier { path: config.data_dir.join("notifications.log") });
        tracing::info!(backend = db.backend_name(), redis = config.redis_url.is_some(), "store ready");
        Ok(Self {
            config: Arc::new(config),
            db,
            catalog,
            auth,
            carts,
            search,
            checkout,
            orders,
            flash_sales,
            recommendations,
            limits,
            bus,
            clock,
            notifier,
            metrics,
            redis,
            catalog_ready: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// What instances share in Redis, or this instance alone holds in process.
struct SharedState {
    bus: Arc<dyn EventBus>,
    cart_cache: Arc<dyn CartCache>,
    search_cache: Arc<dyn Cache>,
    limiter: Arc<dyn RateLimiter>,
    flash_gate: Arc<dyn FlashGate>,
    redis: Option<RedisBackend>,
}

impl SharedState {
    async fn open(config: &Config, clock: &Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(match &config.redis_url {
            Some(url) => {
                let redis =
                    connect_redis(url.expose(), &config.redis_namespace).await.context("connecting to Redis")?;
                Self {
                    bus: redis.bus(),
                    cart_cache: Arc::new(SharedCartCache(redis.cache())),
                    search_cache: redis.cache(),
                    limiter: redis.rate_limiter(),
                    flash_gate: redis.flash_gate(),
                    redis: Some(redis),
                }
            }
            None => Self {
                bus: Arc::new(LocalBus::default()),
                cart_cache: Arc::new(LocalCartCache::new(CART_CACHE_ENTRIES)),
                search_cache: Arc::new(LocalCache::new(SEARCH_CACHE_ENTRIES)),
                limiter: Arc::new(LocalRateLimiter::new(
                    RATE_LIMIT_KEYS,
                    config.rate_limits.longest_period(),
                    clock.clone(),
                )),
                flash_gate: Arc::new(LocalFlashGate::default()),
                redis: None,
            },
        })
    }
}

/// The configured secret, or one generated on first start and kept in the data dir so that
/// tokens survive restarts.
fn jwt_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt-secret");
    if path.exists() {
        let secret = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(secret.len() >= 32, "{} holds fewer than 32 bytes", path.display());
        return Ok(secret);
    }
    let mut secret = vec![0u8; 64];
    rand::rng().fill_bytes(&mut secret);
    write_private(&path, &secret)?;
    Ok(secret)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))
}
