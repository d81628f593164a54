use async_graphql::{EnumType, Object};

use crate::error::ErrorCode;

#[derive(Default)]
pub struct MetaQuery;

#[Object]
impl MetaQuery {
    /// Every machine code an error may carry in `extensions.code`.
    async fn error_codes(&self) -> Vec<ErrorCode> {
        ErrorCode::items().iter().map(|item| item.value).collect()
    }
}
