//! Prometheus metrics served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlashLabels {
    /// `join`, `admission` (a hold), `expiry`, `sold_out`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SaleLabels {
    pub sale: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    /// A GraphQL root field (`addCartItem`), a worker (`worker:outbox`), or `other`.
    pub scope: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    /// Statements sent to the store, by what sent them; the N+1 and statement-budget tests read
    /// it through `/metrics`.
    pub store_statements: Family<ScopeLabels, Counter>,
    pub search_cache_hits: Counter,
    pub search_index_swaps: Counter,
    pub flash_events: Family<FlashLabels, Counter>,
    /// Time to take a hold's units from a sale's gate (the conditional UPDATE's transaction).
    pub flash_gate: Histogram,
    /// Shoppers waiting, per open sale (a sale's series goes when it ends).
    pub flash_waiting: Family<SaleLabels, Gauge>,
    pub connections_open: Gauge,
    /// Connections answered 503 because the server held its cap.
    pub connections_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("shop");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register("http_requests", "HTTP requests by method, route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", http_duration.clone());
        let store_statements = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "store_statements",
            "Statements sent to the store, by GraphQL root field or background worker",
            store_statements.clone(),
        );
        let search_cache_hits = Counter::default();
        registry.register("search_cache_hits", "Searches answered from the result cache", search_cache_hits.clone());
        let search_index_swaps = Counter::default();
        registry.register("search_index_swaps", "Switches to a rebuilt search index", search_index_swaps.clone());
        let flash_events = Family::<FlashLabels, Counter>::default();
        registry.register(
            "flash_sale_events",
            "Flash sale joins, admissions (holds), expiries and sold-outs",
            flash_events.clone(),
        );
        let flash_gate = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register("flash_sale_gate_seconds", "Time to take a hold's units from the gate", flash_gate.clone());
        let flash_waiting = Family::<SaleLabels, Gauge>::default();
        registry.register("flash_sale_waiting", "Shoppers in an open sale's waiting room", flash_waiting.clone());
        let connections_open = Gauge::default();
        registry.register("connections_open", "TCP connections being served", connections_open.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections turned away with 503 because the connection cap was reached",
            connections_refused.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            store_statements,
            search_cache_hits,
            search_index_swaps,
            flash_events,
            flash_gate,
            flash_waiting,
            connections_open,
            connections_refused,
        }
    }
}

impl Metrics {
    /// Counts one statement sent in `scope`.
    pub fn statement(&self, scope: &'static str) {
        self.store_statements.get_or_create(&ScopeLabels { scope }).inc();
    }

    /// Counts flash sale events of one kind.
    pub fn flash(&self, kind: &'static str, count: u64) {
        if count > 0 {
            self.flash_events.get_or_create(&FlashLabels { kind }).inc_by(count);
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
