use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::catalog as domain;
use crate::error::ApiResult;
use crate::loaders::Related;
use crate::resolvers::loaders;

// `serial` (here and on `Product`): see `Cart`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct Money {
    pub cent_amount: i32,
    pub currency_code: String,
}

impl From<&crate::domain::primitives::Money> for Money {
    fn from(money: &crate::domain::primitives::Money) -> Self {
        // Prices are validated to fit a GraphQL Int when they are written.
        Money { cent_amount: i32::try_from(money.cents).unwrap_or(i32::MAX), currency_code: money.currency.clone() }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct Category {
    pub id: ID,
    pub name: String,
    pub path: String,
    #[graphql(skip)]
    parent_id: Option<String>,
    #[graphql(skip)]
    siblings: Arc<CategorySiblings>,
}

/// The parents and children of categories resolved together.
struct CategorySiblings {
    parents: Related<Category>,
    children: Related<Vec<Category>>,
}

impl Category {
    /// Categories resolved together: the first to need its parent or children loads those of all.
    pub fn batch(categories: Vec<domain::Category>) -> Vec<Category> {
        let parent_ids: Vec<String> = categories.iter().filter_map(|c| c.parent_id.clone()).collect();
        let ids: Vec<String> = categories.iter().map(|c| c.id.clone()).collect();
        let siblings = Arc::new(CategorySiblings {
            parents: Related::new(move || parent_ids.clone()),
            children: Related::new(move || ids.clone()),
        });
        categories
            .into_iter()
            .map(|c| Category {
                id: ID(c.id),
                name: c.name,
                path: c.path,
                parent_id: c.parent_id,
                siblings: siblings.clone(),
            })
            .collect()
    }

    async fn load(ctx: &Context<'_>, ids: Vec<String>) -> ApiResult<HashMap<String, Category>> {
        let found = loaders(ctx).categories_by_ids(&ids).await?;
        Ok(Category::batch(found.into_values().collect()).into_iter().map(|c| (c.id.to_string(), c)).collect())
    }

    async fn load_children(ctx: &Context<'_>, parent_ids: Vec<String>) -> ApiResult<HashMap<String, Vec<Category>>> {
        let found = loaders(ctx).category_children().load_many(parent_ids).await?;
        let mut by_parent: HashMap<String, Vec<Category>> = HashMap::new();
        for child in Category::batch(found.values().flat_map(|children| children.iter().cloned()).collect()) {
            by_parent.entry(child.parent_id.clone().unwrap_or_default()).or_default().push(child);
        }
        Ok(by_parent)
    }
}

#[ComplexObject]
impl Category {
    async fn parent(&self, ctx: &Context<'_>) -> ApiResult<Option<Category>> {
        let Some(parent_id) = &self.parent_id else { return Ok(None) };
        self.siblings.parents.get(parent_id, |ids| Category::load(ctx, ids)).await
    }

    async fn children(&self, ctx: &Context<'_>) -> ApiResult<Vec<Category>> {
        let children = self.siblings.children.get(&self.id, |ids| Category::load_children(ctx, ids)).await?;
        Ok(children.unwrap_or_default())
    }
}

#[derive(Clone)]
pub struct Product {
    pub record: Arc<domain::Product>,
    siblings: Arc<ProductSiblings>,
}

/// The stock and categories of products resolved together.
struct ProductSiblings {
    stock: Related<domain::StockLevel>,
    categories: Related<Category>,
}

impl Product {
    /// Products resolved together: the first to need its stock or category loads those of all.
    pub fn batch(records: Vec<Arc<domain::Product>>) -> Vec<Product> {
        let siblings = ProductSiblings::of(&records);
        records.into_iter().map(|record| Product { record, siblings: siblings.clone() }).collect()
    }
}

impl From<domain::Product> for Product {
    fn from(record: domain::Product) -> Self {
        let record = Arc::new(record);
        Product { siblings: ProductSiblings::of(std::slice::from_ref(&record)), record }
    }
}

impl ProductSiblings {
    fn of(records: &[Arc<domain::Product>]) -> Arc<Self> {
        let records: Arc<[Arc<domain::Product>]> = records.into();
        let of_stock = records.clone();
        Arc::new(ProductSiblings {
            stock: Related::new(move || of_stock.iter().map(|p| p.id.clone()).collect()),
            categories: Related::new(move || records.iter().filter_map(|p| p.category_id.clone()).collect()),
        })
    }
}

#[Object(serial)]
impl Product {
    async fn id(&self) -> ID {
        ID(self.record.id.clone())
    }

    async fn title(&self) -> &str {
        &self.record.title
    }

    async fn description(&self) -> &str {
        &self.record.description
    }

    async fn brand(&self) -> Option<&str> {
        self.record.brand.as_deref()
    }

    async fn category(&self, ctx: &Context<'_>) -> ApiResult<Option<Category>> {
        let Some(category_id) = &self.record.category_id else { return Ok(None) };
        self.siblings.categories.get(category_id, |ids| Category::load(ctx, ids)).await
    }

    async fn price(&self) -> Money {
        Money::from(&self.record.price)
    }

    async fn rating(&self) -> Option<f64> {
        self.record.rating
    }

    async fn review_count(&self) -> i32 {
        self.record.review_count
    }

    async fn attributes(&self) -> Vec<Attribute> {
        self.record.attributes.iter().map(|a| Attribute { name: a.name.clone(), value: a.value.clone() }).collect()
    }

    async fn in_stock(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self.available(ctx).await? > 0)
    }

    /// Units that can be bought now (not counting units held by checkouts).
    async fn available_quantity(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        self.available(ctx).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.record.created_at
    }
}

impl Product {
    async fn available(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let stock_levels = async |ids: Vec<String>| loaders(ctx).stock_levels(&ids).await;
        let level = self.siblings.stock.get(&self.record.id, stock_levels).await?;
        Ok(level.map_or(0, |l| l.available))
    }
}

#[derive(async_graphql::Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum RecommendationIntent {
    Related,
    Complementary,
}

impl From<RecommendationIntent> for crate::domain::recommend::Intent {
    fn from(intent: RecommendationIntent) -> Self {
        match intent {
            RecommendationIntent::Related => crate::domain::recommend::Intent::Related,
            RecommendationIntent::Complementary => crate::domain::recommend::Intent::Complementary,
        }
    }
}
