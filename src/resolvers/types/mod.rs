//! GraphQL types, most wrapping domain entities.

mod auth;
mod cart;
mod catalog;
mod checkout;
mod flash;
mod search;

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

pub use auth::{AuthPayload, User};
pub use cart::{Cart, CartItem};
pub use catalog::{Attribute, Category, Money, Product, RecommendationIntent};
pub use checkout::*;
pub use flash::*;
pub use search::*;

/// A list whose items resolve one after another, where async-graphql joins a list's items as
/// concurrent futures: an allocation and a wake-up per item, a tenth of a 90-line cart read.
/// For items whose fields wait on nothing but loads already batched (see `Cart`).
pub struct SerialList<T>(pub Vec<T>);

impl<T: OutputType> OutputType for SerialList<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let mut values = Vec::with_capacity(self.0.len());
        for (index, item) in self.0.iter().enumerate() {
            let ctx = ctx.with_index(index);
            values.push(item.resolve(&ctx, field).await.map_err(|err| ctx.set_error_path(err))?);
        }
        Ok(Value::List(values))
    }
}
