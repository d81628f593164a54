use async_graphql::{Context, Object};

use super::types::{Facet, FacetValue, PageInfo, ProductFilter, ProductSearchResult, ProductSort};
use super::{app, loaders};
use crate::error::ApiResult;

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Full-text product search with filters, facets, sort and cursor pagination.
    async fn search_products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        filter: Option<ProductFilter>,
        #[graphql(default_with = "Some(ProductSort::Relevance)")] sort: Option<ProductSort>,
        #[graphql(default_with = "Some(20)")] first: Option<i32>,
        after: Option<String>,
    ) -> ApiResult<ProductSearchResult> {
        let (filter, category) = filter.map(ProductFilter::into_domain).unwrap_or_default();
        let sort = sort.unwrap_or_default().into();
        let page = app(ctx)
            .search
            .search(query.as_deref(), category.as_deref(), filter, sort, first, after.as_deref())
            .await?;
        // In the index's order; a product deleted since it was indexed is left out.
        let nodes = loaders(ctx).products_in_order(&page.hits.product_ids).await?.into_iter().flatten().collect();
        Ok(ProductSearchResult {
            total_count: i32::try_from(page.hits.total).unwrap_or(i32::MAX),
            nodes,
            page_info: PageInfo { has_next_page: page.has_next_page, end_cursor: page.end_cursor },
            facets: page
                .hits
                .facets
                .into_iter()
                .map(|(name, values)| Facet {
                    name,
                    values: values
                        .into_iter()
                        .map(|v| FacetValue { value: v.value, count: i32::try_from(v.count).unwrap_or(i32::MAX) })
                        .collect(),
                })
                .collect(),
            corrected_query: page.hits.corrected_query,
        })
    }
}
