use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::catalog as domain;
use crate::error::ApiResult;
use crate::resolvers::loaders;

#[derive(SimpleObject, Clone, Debug)]
pub struct Money {
    pub cent_amount: i32,
    pub currency_code: String,
}

impl From<&domain::Money> for Money {
    fn from(money: &domain::Money) -> Self {
        // Prices are validated to fit a GraphQL Int when they are written.
        Money { cent_amount: i32::try_from(money.cents).unwrap_or(i32::MAX), currency_code: money.currency.clone() }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Category {
    pub id: ID,
    pub name: String,
    pub path: String,
    #[graphql(skip)]
    parent_id: Option<String>,
}

impl From<domain::Category> for Category {
    fn from(c: domain::Category) -> Self {
        Category { id: ID(c.id), name: c.name, path: c.path, parent_id: c.parent_id }
    }
}

#[ComplexObject]
impl Category {
    async fn parent(&self, ctx: &Context<'_>) -> ApiResult<Option<Category>> {
        let Some(parent_id) = self.parent_id.clone() else { return Ok(None) };
        Ok(loaders(ctx).categories.load_one(parent_id).await?.map(Category::from))
    }

    async fn children(&self, ctx: &Context<'_>) -> ApiResult<Vec<Category>> {
        let children = loaders(ctx).category_children.load_one(self.id.to_string()).await?;
        Ok(children.unwrap_or_default().into_iter().map(Category::from).collect())
    }
}

pub struct Product(pub domain::Product);

#[Object]
impl Product {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    async fn brand(&self) -> Option<&str> {
        self.0.brand.as_deref()
    }

    async fn category(&self, ctx: &Context<'_>) -> ApiResult<Option<Category>> {
        let Some(category_id) = self.0.category_id.clone() else { return Ok(None) };
        Ok(loaders(ctx).categories.load_one(category_id).await?.map(Category::from))
    }

    async fn price(&self) -> Money {
        Money::from(&self.0.price)
    }

    async fn rating(&self) -> Option<f64> {
        self.0.rating
    }

    async fn review_count(&self) -> i32 {
        self.0.review_count
    }

    async fn attributes(&self) -> Vec<Attribute> {
        self.0.attributes.iter().map(|a| Attribute { name: a.name.clone(), value: a.value.clone() }).collect()
    }

    async fn in_stock(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self.available(ctx).await? > 0)
    }

    /// Units that can be bought now (not counting units held by checkouts).
    async fn available_quantity(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        self.available(ctx).await
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

impl Product {
    async fn available(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        let level = loaders(ctx).stock.load_one(self.0.id.clone()).await?;
        Ok(level.map_or(0, |l| l.available))
    }
}
