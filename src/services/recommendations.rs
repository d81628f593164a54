//! Recommendations: records views, answers the two lists from the trained model blended with
//! what the store says now (the caller's latest views, what they bought, stock), and trains
//! the model under a lease so that one instance trains and every instance loads the result.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use chrono::TimeDelta;
use tokio::sync::Notify;

use crate::db::outbox::OutboxRow;
use crate::db::{Pool, recommendations};
use crate::domain::auth::Viewer;
use crate::domain::catalog::Product;
use crate::domain::catalog::generator::CatalogGenerator;
use crate::domain::catalog::model::validate_id;
use crate::domain::primitives::Shopper;
use crate::domain::recommend::demo_history::planted_history;
use crate::domain::recommend::{
    Candidates, History, Intent, Interaction, InteractionKind, MAX_PICKS, Model, RECENT_WINDOW, RecommendError,
    VariedPicks, baskets_of, train,
};
use crate::expiring::ExpiringCache;
use crate::low_priority;
use crate::ports::{Clock, EventBus, StoreError, StoreResult};
use crate::services::catalog::CatalogService;

pub type RecommendResult<T> = Result<T, RecommendError>;

/// How long one training may hold the lease before another instance may take over.
const TRAINING_LEASE: TimeDelta = TimeDelta::minutes(10);
/// Interactions older than this are not trained on.
const HISTORY_WINDOW: TimeDelta = TimeDelta::days(180);
/// Latest interactions of the caller read per request: the recent views and demo purchases.
const LATEST_INTERACTIONS: i64 = 200;
/// Recent views whose kind shapes the picks.
const RECENT_VIEWS_USED: usize = 3;
/// Candidates whose stock is looked up at once, at least.
const STOCK_PAGE: usize = 16;
/// Demo shoppers per generated product, and at most.
const DEMO_PRODUCTS_PER_SHOPPER: u64 = 5;
const MAX_DEMO_SHOPPERS: u64 = 5_000;

/// Category lists held, and how stale one may be before it is read again: a product that runs
/// out is still left out at once (stock is checked per request), a new one joins once a request
/// after this time has had the `category-lists` worker read its list again.
const CATEGORY_LISTS: usize = 10_000;
const CATEGORY_LIST_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// A list not read again for this long (its category unvisited since) is dropped.
const CATEGORY_LIST_IDLE: std::time::Duration = std::time::Duration::from_secs(600);
/// Products of a category a list is drawn from.
const CATEGORY_LIST_LENGTH: usize = 4 * MAX_PICKS;
/// Browsing may be a second stale (a product just sold out may still be picked).
const ANONYMOUS_PICKS_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// One list per length a client may ask for, and a few model versions.
const ANONYMOUS_PICK_LISTS: usize = 4 * MAX_PICKS;

/// Shoppers whose latest activity is held, and how long at most: an activity event lost on
/// the bus leaves picks stale no longer than this.
const ACTIVITIES: usize = 100_000;
const ACTIVITY_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a shopper's drop is remembered: longer than any read of their activity takes.
const DROP_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

/// Weights of the sources blended into a list.
const SAME_KIND_AS_VIEWED: f32 = 2.0;
const LIKED_WITH_VIEWED: f32 = 1.5;
const PERSONAL: f32 = 1.0;
const TRENDING: f32 = 0.3;
const BEST_RATED: f32 = 0.2;

/// A list of products, shared by the requests that read it.
type ProductIds = Arc<Vec<String>>;

#[derive(Clone)]
pub struct RecommendationService {
    db: Pool,
    catalog: CatalogService,
    clock: Arc<dyn Clock>,
    bus: Arc<dyn EventBus>,
    /// The model in use and its stored version (0: none yet).
    model: Arc<RwLock<(i64, Arc<Model>)>>,
    /// In-stock products of a category by popularity, with when they were read: the same few
    /// hundred lists serve every product page. A request that finds a list older than
    /// `CATEGORY_LIST_TTL` uses it and leaves it in `stale_lists` for the `category-lists`
    /// worker, so no request waits on the store for a list it holds (a read inline was a
    /// third of a shopper's picks' p99).
    category_lists: Arc<ExpiringCache<String, (Instant, ProductIds)>>,
    stale_lists: Arc<StaleLists>,
    /// The picks of a caller without a session, by model version and length: they are the same
    /// for everyone (trending and best rated, in stock), so one list serves them all for
    /// `ANONYMOUS_PICKS_TTL`; a new model is a new key.
    anonymous_picks: Arc<ExpiringCache<(i64, usize), ProductIds>>,
    /// What the store said of each shopper lately, so that their picks cost no store visit;
    /// dropped on every instance when the shopper views, orders or signs in (`forget`).
    activities: Arc<HeldActivities>,
}

/// A shopper's latest interactions (newest first) and the products of their paid orders.
#[derive(Debug, Default)]
struct Activity {
    latest: Vec<Interaction>,
    bought: HashSet<String>,
    /// The candidates last blended from this activity, in rank order, and what else they were
    /// blended from: while that is unchanged the blend is too, so the requests in between
    /// skip it (for a user, it scores every product against their taste).
    blended: Mutex<Option<(Blend, ProductIds)>>,
}

/// What a shopper's candidates are blended from besides their activity.
#[derive(Debug)]
struct Blend {
    model_version: i64,
    count: usize,
    /// The products viewed in the recent window, newest first (all are left out, the latest
    /// `RECENT_VIEWS_USED` lead), and the latest ones' categories' lists as read.
    viewed: Vec<String>,
    same_kinds: Vec<ProductIds>,
}

impl Blend {
    fn same_as(&self, other: &Blend) -> bool {
        self.model_version == other.model_version
            && self.count == other.count
            && self.viewed == other.viewed
            && self.same_kinds.len() == other.same_kinds.len()
            && self.same_kinds.iter().zip(&other.same_kinds).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Activity {
    /// The products viewed since `since`, newest first, each once.
    fn recent_views(&self, since: chrono::DateTime<chrono::Utc>) -> Vec<String> {
        let mut recent: Vec<String> = Vec::new();
        for interaction in self.latest.iter().filter(|i| i.kind == InteractionKind::View && i.at >= since) {
            if !recent.contains(&interaction.product_id) {
                recent.push(interaction.product_id.clone());
            }
        }
        recent
    }

    fn blended(&self, blend: &Blend) -> Option<ProductIds> {
        let held = self.blended.lock().unwrap_or_else(PoisonError::into_inner);
        held.as_ref().filter(|(held, _)| held.same_as(blend)).map(|(_, ranked)| ranked.clone())
    }

    fn keep_blended(&self, blend: Blend, ranked: ProductIds) {
        *self.blended.lock().unwrap_or_else(PoisonError::into_inner) = Some((blend, ranked));
    }
}

/// The caller's candidates in rank order (`RecommendationService::for_shopper`), before stock
/// and variety are looked at: the same kind as their latest views and what others liked with
/// them, their personal picks, then trending and best rated; not what they bought or viewed.
fn blended(
    model: &Model,
    shopper_key: Option<&str>,
    activity: &Activity,
    blend: &Blend,
    viewed: &[Arc<Product>],
) -> Vec<String> {
    let count = blend.count;
    let mut excluded: HashSet<&str> = blend.viewed.iter().map(String::as_str).collect();
    excluded.extend(activity.bought.iter().map(String::as_str));
    excluded
        .extend(activity.latest.iter().filter(|i| i.kind == InteractionKind::Purchase).map(|i| i.product_id.as_str()));
    let personal = match shopper_key {
        Some(key) => model.personal(key, count * 3 + excluded.len()),
        None => Vec::new(),
    };
    let mut candidates = Candidates::default();
    for (position, (product, same_kind)) in viewed.iter().zip(&blend.same_kinds).enumerate() {
        let recency = 1.0 / (1.0 + position as f32);
        candidates.add_ranked(same_kind.iter().take(count * 2), SAME_KIND_AS_VIEWED * recency);
        candidates.add_ranked(model.also_liked(&product.id), LIKED_WITH_VIEWED * recency);
    }
    candidates.add_ranked(&personal, PERSONAL);
    // Enough of each list to fill the picks after what the caller bought or viewed is gone.
    let enough = count * 4 + excluded.len();
    candidates.add_ranked(model.trending().iter().take(enough), TRENDING);
    candidates.add_ranked(model.best_rated().iter().take(enough), BEST_RATED);
    candidates.ranked(|id| !excluded.contains(id)).into_iter().map(str::to_owned).collect()
}

impl RecommendationService {
    pub fn new(db: Pool, catalog: CatalogService, clock: Arc<dyn Clock>, bus: Arc<dyn EventBus>) -> Self {
        Self {
            db,
            catalog,
            clock,
            bus,
            model: Arc::new(RwLock::new((0, Arc::new(Model::default())))),
            category_lists: Arc::new(ExpiringCache::new(CATEGORY_LISTS, CATEGORY_LIST_IDLE)),
            anonymous_picks: Arc::new(ExpiringCache::new(ANONYMOUS_PICK_LISTS, ANONYMOUS_PICKS_TTL)),
            stale_lists: Arc::default(),
            activities: Arc::default(),
        }
    }

    fn model(&self) -> Arc<Model> {
        self.versioned_model().1
    }

    fn versioned_model(&self) -> (i64, Arc<Model>) {
        self.model.read().map(|held| (held.0, held.1.clone())).unwrap_or_default()
    }

    fn version(&self) -> i64 {
        self.model.read().map(|held| held.0).unwrap_or_default()
    }

    pub async fn record_view(&self, viewer: Option<&Viewer>, product_id: &str) -> RecommendResult<()> {
        let viewer = viewer.ok_or(RecommendError::Unauthenticated)?;
        valid_product_id(product_id)?;
        if self.catalog.products_by_ids(&[product_id.to_owned()]).await?.is_empty() {
            return Err(RecommendError::ProductNotFound(product_id.to_owned()));
        }
        let shopper = viewer.shopper();
        let now = self.clock.now();
        let view = Interaction {
            shopper: shopper.key(),
            product_id: product_id.to_owned(),
            kind: InteractionKind::View,
            at: now,
        };
        // Published at once rather than through the outbox: views are many, and a lost one
        // only leaves other instances' picks stale until `ACTIVITY_TTL`.
        let event = OutboxRow::shopper_activity(&shopper, now)?.event();
        self.db.atomically(async |c| recommendations::record(c, std::slice::from_ref(&view)).await).await?;
        // This instance's next picks see the view at once; the others' as the event arrives.
        self.forget(&view.shopper);
        if let Err(err) = self.bus.publish(&[event]).await {
            tracing::warn!(error = %err, "announcing a product view failed; other instances see it within a minute");
        }
        Ok(())
    }

    /// Drops what is held of one shopper's activity (their key), so the next picks read it.
    pub fn forget(&self, shopper: &str) {
        self.activities.forget(shopper);
    }

    /// Drops every shopper's activity (activity events were missed).
    pub fn forget_everyone(&self) {
        self.activities.forget_everyone();
    }

    /// The activity of the shopper whose key is `key`, held or read from the store.
    async fn activity_of(&self, shopper: &Shopper, key: &str) -> StoreResult<Arc<Activity>> {
        if let Some(held) = self.activities.get(key) {
            return Ok(held);
        }
        let began = self.activities.began();
        let (latest, bought) = self
            .db
            .with_conn(async |c| {
                let latest = recommendations::latest_of(c, shopper, LATEST_INTERACTIONS).await?;
                let bought = recommendations::bought_by(c, shopper).await?;
                Ok::<_, StoreError>((latest, bought))
            })
            .await?;
        let activity = Arc::new(Activity { latest, bought, blended: Mutex::default() });
        self.activities.keep(key, activity.clone(), began);
        Ok(activity)
    }

    /// RELATED: products of the same leaf category first (those the same shoppers liked
    /// leading), then what the same shoppers liked elsewhere. COMPLEMENTARY: products bought
    /// with it, then RELATED. Never the product itself, never out of stock; unknown: empty.
    pub async fn for_product(&self, product_id: &str, intent: Intent, first: i32) -> RecommendResult<Vec<String>> {
        let count = list_length(first)?;
        if count == 0 || validate_id("productId", product_id).is_err() {
            return Ok(Vec::new());
        }
        let Some(product) = self.catalog.products_by_ids(&[product_id.to_owned()]).await?.into_iter().next() else {
            return Ok(Vec::new());
        };
        let model = self.model();
        let same_kind = match &product.category_id {
            Some(category) => self.in_stock_of_category(category).await?.iter().take(count * 4).cloned().collect(),
            None => Vec::new(),
        };
        let liked = model.also_liked(product_id);
        let mut related = Candidates::default();
        related.add_ranked(liked.iter().filter(|id| same_kind.contains(id)), 2.0);
        related.add_ranked(&same_kind, 1.0);
        related.add_ranked(liked.iter().filter(|id| !same_kind.contains(id)), 0.5);
        let mut ranked: Vec<&str> = Vec::new();
        if intent == Intent::Complementary {
            ranked.extend(model.bought_together(product_id).iter().map(String::as_str));
        }
        ranked.extend(related.ranked(|_| true));
        let mut seen = HashSet::from([product_id]);
        ranked.retain(|id| seen.insert(id));
        Ok(self.first_in_stock(&ranked, count).await?)
    }

    /// The caller's picks: products like the ones they viewed in the last half hour, their
    /// personal picks from the model, then trending and best rated; never what they bought or
    /// just viewed, never out of stock, and varied across leaf categories.
    pub async fn for_shopper(&self, viewer: Option<&Viewer>, first: i32) -> RecommendResult<Vec<String>> {
        let count = list_length(first)?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let (version, model) = self.versioned_model();
        let shopper = viewer.map(|viewer| {
            let shopper = viewer.shopper();
            let key = shopper.key();
            (shopper, key)
        });
        if shopper.is_none()
            && let Some(picks) = self.anonymous_picks.get(&(version, count))
        {
            return Ok(picks.to_vec());
        }
        let activity = match &shopper {
            Some((shopper, key)) => self.activity_of(shopper, key).await?,
            None => Arc::default(),
        };
        let recent = activity.recent_views(self.clock.now() - RECENT_WINDOW);
        let latest_viewed = &recent[..recent.len().min(RECENT_VIEWS_USED)];
        let mut viewed = self.catalog.products_by_ids(latest_viewed).await?;
        // The catalog answers in no particular order; the latest view weighs most.
        viewed.sort_by_key(|product| latest_viewed.iter().position(|id| *id == product.id));
        let mut same_kinds = Vec::with_capacity(viewed.len());
        for product in &viewed {
            same_kinds.push(match &product.category_id {
                Some(category) => self.in_stock_of_category(category).await?,
                None => Arc::default(),
            });
        }
        let blend = Blend { model_version: version, count, viewed: recent, same_kinds };
        let ranked = match activity.blended(&blend) {
            Some(ranked) => ranked,
            None => {
                let key = shopper.as_ref().map(|(_, key)| key.as_str());
                let ranked = Arc::new(blended(&model, key, &activity, &blend, &viewed));
                activity.keep_blended(blend, ranked.clone());
                ranked
            }
        };
        let ranked: Vec<&str> = ranked.iter().map(String::as_str).collect();
        let picks = self.varied_in_stock(&ranked, count).await?;
        if shopper.is_none() {
            self.anonymous_picks.insert((version, count), Arc::new(picks.clone()));
        }
        Ok(picks)
    }

    async fn in_stock_of_category(&self, category_id: &str) -> StoreResult<ProductIds> {
        match self.category_lists.get(category_id) {
            Some((read_at, list)) => {
                if read_at.elapsed() >= list_ttl(category_id) {
                    self.stale_lists.mark(category_id);
                }
                Ok(list)
            }
            None => self.read_category_list(category_id).await,
        }
    }

    async fn read_category_list(&self, category_id: &str) -> StoreResult<ProductIds> {
        let limit = CATEGORY_LIST_LENGTH as i64;
        let read_at = Instant::now();
        let list = Arc::new(
            self.db.with_conn(async |c| recommendations::in_stock_of_category(c, category_id, limit).await).await?,
        );
        self.category_lists.insert(category_id.to_owned(), (read_at, list.clone()));
        Ok(list)
    }

    /// Reads again every list requests found stale. A list stays marked while it is read, so
    /// requests meanwhile do not mark it twice.
    pub async fn refresh_stale_category_lists(&self) {
        for category_id in &self.stale_lists.marked() {
            if let Err(err) = self.read_category_list(category_id).await {
                tracing::warn!(error = %err, category_id, "reading a category's list failed; keeping the stale one");
            }
            self.stale_lists.unmark(category_id);
        }
    }

    /// Notified when a request marks a list stale.
    pub fn stale_category_lists(&self) -> &Notify {
        &self.stale_lists.marked
    }

    /// The first `wanted` of `ranked` that are in stock, in order.
    async fn first_in_stock(&self, ranked: &[&str], wanted: usize) -> StoreResult<Vec<String>> {
        let mut picked = Vec::with_capacity(wanted);
        if wanted > 0 {
            let take = |id| {
                picked.push(id);
                picked.len() == wanted
            };
            take_found(ranked, wanted.max(STOCK_PAGE), |ids| self.in_stock(ids), take).await?;
        }
        Ok(picked)
    }

    /// `count` picks from `ranked`, in stock and varied across leaf categories (`VariedPicks`),
    /// drawn from the first `count * 4` in stock; the catalog is asked only until they are full.
    async fn varied_in_stock(&self, ranked: &[&str], count: usize) -> StoreResult<Vec<String>> {
        let mut picks = VariedPicks::new(count);
        let mut offered = 0;
        let with_categories = |ids: Vec<String>| async move {
            let in_stock = self.in_stock(ids).await?;
            let mut categories: HashMap<String, Option<String>> = self
                .catalog
                .products_by_ids(&in_stock)
                .await?
                .into_iter()
                .map(|product| (product.id.clone(), product.category_id.clone()))
                .collect();
            Ok::<_, StoreError>(
                in_stock
                    .into_iter()
                    .map(|id| {
                        let category = categories.remove(&id).flatten();
                        (id, category)
                    })
                    .collect(),
            )
        };
        let take = |(id, category)| {
            offered += 1;
            picks.offer(id, category) || offered == count * 4
        };
        take_found(ranked, count.max(STOCK_PAGE), with_categories, take).await?;
        Ok(picks.finish())
    }

    /// Those of `ids` in stock, in their order.
    async fn in_stock(&self, mut ids: Vec<String>) -> StoreResult<Vec<String>> {
        let available: HashSet<String> = self
            .catalog
            .stock_levels(&ids)
            .await?
            .into_iter()
            .filter(|level| level.available > 0)
            .map(|level| level.product_id)
            .collect();
        ids.retain(|id| available.contains(id));
        Ok(ids)
    }

    /// Trains a new model if no other instance is training; the version it stored, if it
    /// trained. This instance loads it at once.
    pub async fn train(&self) -> StoreResult<Option<i64>> {
        let now = self.clock.now();
        if !self.db.atomically(async |c| recommendations::claim_training(c, now, now + TRAINING_LEASE).await).await? {
            return Ok(None);
        }
        let history = self
            .db
            .with_conn(async |c| {
                let mut interactions = recommendations::interactions_since(c, now - HISTORY_WINDOW).await?;
                let mut baskets = baskets_of(&interactions);
                let (lines, orders) = recommendations::carts_and_orders(c).await?;
                interactions.extend(lines);
                baskets.extend(orders);
                let ratings = recommendations::ratings(c).await?;
                Ok::<_, StoreError>(History { interactions, baskets, ratings })
            })
            .await?;
        let (model, serialized) = low_priority::run("recommender-training", move || {
            let model = train(&history, now);
            let serialized = serde_json::to_string(&model);
            (model, serialized)
        })
        .await
        .map_err(|err| StoreError::internal("training recommendations", err))?;
        let serialized = serialized.map_err(|err| StoreError::internal("serializing the model", err))?;
        let version = self.db.atomically(async |c| recommendations::save_model(c, &serialized, now).await).await?;
        self.install(version, model);
        Ok(Some(version))
    }

    /// Loads the stored model if it is newer than the one held; whether it was.
    pub async fn refresh(&self) -> StoreResult<bool> {
        let stored = self.db.with_conn(async |c| recommendations::model_version(c).await).await?;
        if stored <= self.version() {
            return Ok(false);
        }
        let (version, serialized) = self.db.with_conn(async |c| recommendations::load_model(c).await).await?;
        let Some(serialized) = serialized else { return Ok(false) };
        let model = tokio::task::spawn_blocking(move || serde_json::from_str::<Model>(&serialized))
            .await
            .map_err(|err| StoreError::internal("loading the model", err))?
            .map_err(|err| StoreError::internal("reading the stored model", err))?;
        self.install(version, model);
        Ok(true)
    }

    /// Whether a trained model is held.
    pub fn has_model(&self) -> bool {
        self.version() > 0
    }

    fn install(&self, version: i64, model: Model) {
        // Two loads may race; the newer version wins whichever finishes last.
        if let Ok(mut held) = self.model.write()
            && held.0 < version
        {
            *held = (version, Arc::new(model));
        }
    }

    /// Writes the demo history of `shoppers` demo shoppers (by default one per five products,
    /// at most 5,000) over the first `products` generated products, unless the store holds
    /// interactions already; how many it wrote.
    pub async fn seed_demo_history(
        &self,
        catalog_seed: u64,
        products: u64,
        shoppers: Option<usize>,
    ) -> StoreResult<usize> {
        if self.db.with_conn(async |c| recommendations::any_recorded(c).await).await? {
            return Ok(0);
        }
        let shoppers =
            shoppers.unwrap_or_else(|| (products / DEMO_PRODUCTS_PER_SHOPPER).clamp(1, MAX_DEMO_SHOPPERS) as usize);
        let now = self.clock.now();
        let history = tokio::task::spawn_blocking(move || {
            planted_history(&CatalogGenerator::new(catalog_seed), products, shoppers, catalog_seed, now)
        })
        .await
        .map_err(|err| StoreError::internal("generating the demo history", err))?;
        self.db.transaction(async |c| recommendations::record(c, &history).await).await?;
        Ok(history.len())
    }
}

/// Shoppers' activities, held until their shopper's next drop (or `ACTIVITY_TTL`). A read from
/// the store that a drop of its shopper overtook is used by its request but not kept: drops
/// are numbered, a reader notes the number before it reads (`began`), and `keep` keeps the
/// entry first and looks for a later drop after, while a drop is marked before the entry goes,
/// so one of the two always sees the other.
struct HeldActivities {
    held: ExpiringCache<String, Arc<Activity>>,
    drops: AtomicU64,
    /// Each shopper's last drop, remembered longer than any read takes.
    dropped: ExpiringCache<String, u64>,
    everyone_dropped: AtomicU64,
}

impl Default for HeldActivities {
    fn default() -> Self {
        Self {
            held: ExpiringCache::new(ACTIVITIES, ACTIVITY_TTL),
            drops: AtomicU64::new(0),
            dropped: ExpiringCache::new(ACTIVITIES, DROP_MEMORY),
            everyone_dropped: AtomicU64::new(0),
        }
    }
}

impl HeldActivities {
    fn get(&self, key: &str) -> Option<Arc<Activity>> {
        self.held.get(key)
    }

    /// The drop a read about to begin must not be overtaken by.
    fn began(&self) -> u64 {
        self.drops.load(Ordering::SeqCst)
    }

    fn keep(&self, key: &str, activity: Arc<Activity>, began: u64) {
        self.held.insert(key.to_owned(), activity);
        let overtaken = self.dropped.get(key).is_some_and(|drop| drop > began)
            || self.everyone_dropped.load(Ordering::SeqCst) > began;
        if overtaken {
            self.held.remove(key);
        }
    }

    fn forget(&self, key: &str) {
        let drop = self.drops.fetch_add(1, Ordering::SeqCst) + 1;
        self.dropped.insert(key.to_owned(), drop);
        self.held.remove(key);
    }

    fn forget_everyone(&self) {
        let drop = self.drops.fetch_add(1, Ordering::SeqCst) + 1;
        self.everyone_dropped.store(drop, Ordering::SeqCst);
        self.held.clear();
    }
}

/// Looks `ranked` up `page` at a time: `look_up` answers what it found of a page, in order, and
/// `take` gets each find in rank order until it says it has enough. Most products are in
/// stock, so a list of 200 candidates for 10 picks costs one page of lookups, not 200.
async fn take_found<T, E, Found>(
    ranked: &[&str],
    page: usize,
    look_up: impl Fn(Vec<String>) -> Found,
    mut take: impl FnMut(T) -> bool,
) -> Result<(), E>
where
    Found: Future<Output = Result<Vec<T>, E>>,
{
    for ids in ranked.chunks(page.max(1)) {
        for found in look_up(ids.iter().map(|id| (*id).to_owned()).collect()).await? {
            if take(found) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Categories whose held list a request found stale, until the worker has read them again.
#[derive(Default)]
struct StaleLists {
    categories: Mutex<HashSet<String>>,
    marked: Notify,
}

impl StaleLists {
    fn mark(&self, category_id: &str) {
        let mut categories = self.categories.lock().unwrap_or_else(PoisonError::into_inner);
        if !categories.contains(category_id) {
            categories.insert(category_id.to_owned());
            self.marked.notify_one();
        }
    }

    fn marked(&self) -> Vec<String> {
        self.categories.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    fn unmark(&self, category_id: &str) {
        self.categories.lock().unwrap_or_else(PoisonError::into_inner).remove(category_id);
    }
}

/// How long one category's list is used before it is read again: `CATEGORY_LIST_TTL` less up to
/// half of it, by the category's id, so that lists first read together (a burst of shoppers
/// browsing) are read again at different moments, not in one burst every `CATEGORY_LIST_TTL`.
fn list_ttl(category_id: &str) -> std::time::Duration {
    let spread = std::hash::BuildHasher::hash_one(&foldhash::fast::FixedState::with_seed(0), category_id) % 1000;
    CATEGORY_LIST_TTL.mul_f64(1.0 - spread as f64 / 2000.0)
}

fn valid_product_id(id: &str) -> RecommendResult<()> {
    validate_id("productId", id)
        .map_err(|err| RecommendError::InvalidInput { field: "productId", message: err.to_string() })
}

/// How many to return: `first`, at most `MAX_PICKS`.
fn list_length(first: i32) -> RecommendResult<usize> {
    let first = usize::try_from(first)
        .map_err(|_| RecommendError::InvalidInput { field: "first", message: "must not be negative".to_owned() })?;
    Ok(first.min(MAX_PICKS))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_read_overtaken_by_its_shoppers_drop_is_not_kept_and_others_are() {
        let held = HeldActivities::default();
        let began = held.began();
        held.forget("guest:a");
        held.keep("guest:a", Arc::default(), began);
        assert!(held.get("guest:a").is_none(), "read before the drop, kept after it");
        held.keep("guest:b", Arc::default(), began);
        assert!(held.get("guest:b").is_some(), "another shopper's drop does not spoil this read");
        let began = held.began();
        held.keep("guest:a", Arc::default(), began);
        assert!(held.get("guest:a").is_some(), "read after the drop");
        held.forget_everyone();
        assert!(held.get("guest:a").is_none() && held.get("guest:b").is_none());
        held.keep("guest:b", Arc::default(), began);
        assert!(held.get("guest:b").is_none(), "read before everyone's drop");
    }

    #[test]
    fn a_blend_is_reused_only_while_model_length_views_and_lists_are_unchanged() {
        let list: ProductIds = Arc::new(vec!["p1".to_owned()]);
        let blend = |version, count, viewed: &str, list: &ProductIds| Blend {
            model_version: version,
            count,
            viewed: vec![viewed.to_owned()],
            same_kinds: vec![list.clone()],
        };
        let activity = Activity::default();
        activity.keep_blended(blend(1, 10, "v1", &list), Arc::new(vec!["p2".to_owned()]));
        assert_eq!(activity.blended(&blend(1, 10, "v1", &list)).as_deref(), Some(&vec!["p2".to_owned()]));
        assert!(activity.blended(&blend(2, 10, "v1", &list)).is_none(), "a new model");
        assert!(activity.blended(&blend(1, 20, "v1", &list)).is_none(), "another length");
        assert!(activity.blended(&blend(1, 10, "v2", &list)).is_none(), "another view");
        let read_again: ProductIds = Arc::new(vec!["p1".to_owned()]);
        assert!(activity.blended(&blend(1, 10, "v1", &read_again)).is_none(), "the list read again");
    }

    #[test]
    fn category_lists_are_read_again_at_moments_spread_over_half_their_ttl() {
        let ttls: HashSet<std::time::Duration> = (0..50).map(|n| list_ttl(&format!("category-{n}"))).collect();
        assert!(ttls.iter().all(|ttl| (CATEGORY_LIST_TTL / 2..=CATEGORY_LIST_TTL).contains(ttl)), "{ttls:?}");
        assert!(ttls.len() > 40, "spread, not one moment: {ttls:?}");
        assert_eq!(list_ttl("category-1"), list_ttl("category-1"), "the same for a category every time");
    }

    #[tokio::test]
    async fn stock_is_asked_a_page_at_a_time_until_the_list_is_full() {
        let numbers: Vec<String> = (0..100).map(|n| n.to_string()).collect();
        let ranked: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let asked = Mutex::new(Vec::new());
        // Every other candidate is in stock: the first page of 16 gives 8, the second 8 more.
        let even = |ids: Vec<String>| {
            asked.lock().expect("asked").push(ids.len());
            let found = ids.into_iter().filter(|id| id.parse::<u32>().is_ok_and(|n| n % 2 == 0)).collect();
            std::future::ready(Ok::<_, Infallible>(found))
        };
        let mut picked = Vec::new();
        let take = |id| {
            picked.push(id);
            picked.len() == 10
        };
        take_found(&ranked, 16, even, take).await.expect("picked");
        assert_eq!(picked, ["0", "2", "4", "6", "8", "10", "12", "14", "16", "18"]);
        assert_eq!(*asked.lock().expect("asked"), [16, 16], "two pages, not all 100");
    }
}
