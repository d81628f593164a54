//! The GraphQL adapter: each resolver reads its input and the viewer, calls one domain service
//! and maps the result. One root object per domain, merged here.

mod admin;
mod auth;
mod cart;
mod catalog;
mod checkout;
mod error_codes;
mod flash_sales;
mod meta;
mod orders;
mod query_cost;
mod rate_limits;
mod recommendations;
mod search;
mod statement_scope;
pub mod types;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::app::AppContext;
use crate::domain::auth::Viewer;
use crate::loaders::Loaders;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    catalog::CatalogQuery,
    search::SearchQuery,
    auth::AuthQuery,
    cart::CartQuery,
    checkout::CheckoutQuery,
    orders::OrderQuery,
    meta::MetaQuery,
    recommendations::RecommendationQuery,
    flash_sales::FlashSaleQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    auth::AuthMutation,
    cart::CartMutation,
    checkout::CheckoutMutation,
    orders::OrderMutation,
    admin::AdminMutation,
    recommendations::RecommendationMutation,
    flash_sales::FlashSaleMutation,
);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(cart::CartSubscription, orders::OrderSubscription, flash_sales::FlashSaleSubscription);

pub type ShopSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
}

/// The executable schema, with the limits from the config and the application as data.
pub fn build_schema(app: AppContext) -> ShopSchema {
    let config = app.config.clone();
    builder()
        .limit_depth(config.max_query_depth)
        .limit_recursive_depth(32)
        .limit_directives(16)
        .extension(error_codes::DefaultErrorCode)
        .extension(query_cost::QueryCost { limit: config.max_query_cost })
        .extension(statement_scope::StatementScope)
        .data(app)
        .finish()
}

/// The schema in SDL, as committed in schema.graphql (sorted, so diffs are stable).
pub fn sdl() -> String {
    let options = async_graphql::SDLExportOptions::new().sorted_fields().sorted_arguments().sorted_enum_items();
    builder().finish().sdl_with_options(options)
}

/// The address a request came from (behind a trusted proxy, the one it names); per-address
/// limits key on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub std::net::IpAddr);

pub(crate) fn app<'a>(ctx: &Context<'a>) -> &'a AppContext {
    ctx.data_unchecked::<AppContext>()
}

/// Every entry point (HTTP handler, websocket connection) puts request-scoped loaders in.
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

pub(crate) fn viewer<'a>(ctx: &Context<'a>) -> Option<&'a Viewer> {
    ctx.data_opt::<Viewer>()
}
