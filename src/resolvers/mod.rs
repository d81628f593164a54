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

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
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

/// The executable schema, with the limits from the config and the application as data, and
/// the checks around it.
pub fn build_executor(app: AppContext) -> ShopExecutor {
    let config = app.config.clone();
    let schema =
        builder().limit_depth(config.max_query_depth).limit_recursive_depth(32).limit_directives(16).data(app).finish();
    let documents = moka::sync::Cache::builder()
        .weigher(|query: &String, _: &Arc<ExecutableDocument>| u32::try_from(query.len()).unwrap_or(u32::MAX))
        .max_capacity(PARSED_QUERY_BYTES)
        .build();
    let documents = Arc::new(documents);
    ShopExecutor { schema, max_query_cost: config.max_query_cost, documents }
}

/// The text of the documents kept parsed (their parsed form takes several times as much).
const PARSED_QUERY_BYTES: u64 = 2 << 20;

/// The schema with what every request gets around it: its document refused whole when it costs
/// too much (`query_cost`), its statements counted under its root field (`statement_scope`),
/// and a code on every error (`error_codes`). These are not async-graphql extensions: with any
/// extension, async-graphql looks up and wraps every field of every response for it.
#[derive(Clone)]
pub struct ShopExecutor {
    schema: ShopSchema,
    max_query_cost: u64,
    /// Documents parsed before, by their text: clients send the same few again and again, and
    /// parsing one took a tenth of a product page's CPU. Only their parse is kept: the cost
    /// depends on the variables too, and is checked every time. Behind an `Arc`: axum clones
    /// this for every request, and a moka cache's own clone copies several handles.
    documents: Arc<moka::sync::Cache<String, Arc<ExecutableDocument>>>,
}

impl ShopExecutor {
    /// `query` parsed, or as parsed before.
    pub(crate) fn document(&self, query: &str) -> Result<Arc<ExecutableDocument>, async_graphql::ServerError> {
        if let Some(document) = self.documents.get(query) {
            return Ok(document);
        }
        let document = Arc::new(async_graphql::parser::parse_query(query)?);
        self.documents.insert(query.to_owned(), document.clone());
        Ok(document)
    }

    /// The request's document, parsed (or as parsed before) and handed to the schema, if its
    /// cost is within the limit; the root field it selects.
    fn admit(&self, request: &mut async_graphql::Request) -> Result<&'static str, async_graphql::ServerError> {
        let document = self.document(&request.query)?;
        query_cost::check(&document, &request.variables, self.max_query_cost).map_err(query_cost::too_complex)?;
        let scope = statement_scope::root_field(&document);
        request.set_parsed_query(ExecutableDocument::clone(&document));
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
        session_data: Option<Arc<async_graphql::Data>>,
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
