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

use async_graphql::{Context, Executor, MergedObject, MergedSubscription, Schema, SchemaBuilder};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, future};

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
pub fn build_schema(app: AppContext) -> ShopExecutor {
    let config = app.config.clone();
    let schema =
        builder().limit_depth(config.max_query_depth).limit_recursive_depth(32).limit_directives(16).data(app).finish();
    ShopExecutor { schema, max_query_cost: config.max_query_cost }
}

/// The schema with what every request gets around it: its document refused whole when it costs
/// too much (`query_cost`), its statements counted under its root field (`statement_scope`),
/// and a code on every error (`error_codes`). These are not async-graphql extensions: with any
/// extension, async-graphql looks up and wraps every field of every response for it.
#[derive(Clone)]
pub struct ShopExecutor {
    schema: ShopSchema,
    max_query_cost: u64,
}

impl ShopExecutor {
    /// Parses the document (once: the schema runs the parsed one) and checks its cost; the
    /// root field it selects.
    fn admit(&self, request: &mut async_graphql::Request) -> Result<&'static str, async_graphql::ServerError> {
        let document = async_graphql::parser::parse_query(&request.query)?;
        query_cost::check(&document, &request.variables, self.max_query_cost).map_err(query_cost::too_complex)?;
        let scope = statement_scope::root_field(&document);
        request.set_parsed_query(document);
        Ok(scope)
    }
}

impl Executor for ShopExecutor {
    async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let response = match self.admit(&mut request) {
            Ok(scope) => crate::db::scoped(scope, self.schema.execute(request)).await,
            Err(refused) => async_graphql::Response::from_errors(vec![refused]),
        };
        error_codes::with_codes(response)
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<std::sync::Arc<async_graphql::Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let responses = match self.admit(&mut request) {
            Ok(_) => self.schema.execute_stream_with_session_data(request, session_data.unwrap_or_default()),
            Err(refused) => stream::once(future::ready(async_graphql::Response::from_errors(vec![refused]))).boxed(),
        };
        responses.map(error_codes::with_codes).boxed()
    }
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
