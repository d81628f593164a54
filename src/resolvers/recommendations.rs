use async_graphql::{Context, ID, Object};

use super::types::{Product, RecommendationIntent};
use super::{app, loaders, viewer};
use crate::error::ApiResult;

#[derive(Default)]
pub struct RecommendationQuery;

#[Object]
impl RecommendationQuery {
    /// Products related to one product. RELATED: similar, or liked by the same shoppers; COMPLEMENTARY: bought together with it.
    async fn product_recommendations(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        #[graphql(default_with = "Some(RecommendationIntent::Related)")] intent: Option<RecommendationIntent>,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> ApiResult<Vec<Product>> {
        let intent = intent.unwrap_or(RecommendationIntent::Related).into();
        let ids = app(ctx).recommendations.for_product(&product_id, intent, first.unwrap_or(10)).await?;
        existing_products(ctx, ids).await
    }

    /// Personal picks for the caller (user or guest session); popular and trending products for a newcomer or anonymous caller.
    async fn recommended_products(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> ApiResult<Vec<Product>> {
        let ids = app(ctx).recommendations.for_shopper(viewer(ctx), first.unwrap_or(10)).await?;
        existing_products(ctx, ids).await
    }
}

/// The products of `ids` in their order, leaving out any deleted since they were picked.
async fn existing_products(ctx: &Context<'_>, ids: Vec<String>) -> ApiResult<Vec<Product>> {
    Ok(loaders(ctx).products_in_order(&ids).await?.into_iter().flatten().collect())
}

#[derive(Default)]
pub struct RecommendationMutation;

#[Object]
impl RecommendationMutation {
    /// Records that the caller viewed a product (feeds recently viewed and recommendations). Needs a token.
    async fn record_product_view(&self, ctx: &Context<'_>, product_id: ID) -> ApiResult<bool> {
        app(ctx).recommendations.record_view(viewer(ctx), &product_id).await?;
        Ok(true)
    }
}
