//! Parse, validation and limit errors come from async-graphql without a code; they are the
//! client's to fix, so they get BAD_USER_INPUT. Errors that already carry a code keep it.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe};
use async_graphql::{Response, ServerError};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::error::ErrorCode;

pub struct DefaultErrorCode;

impl ExtensionFactory for DefaultErrorCode {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DefaultErrorCode)
    }
}

fn with_codes(mut response: Response) -> Response {
    response.errors.iter_mut().for_each(ensure_code);
    response
}

fn ensure_code(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", ErrorCode::BadUserInput.as_str());
    }
}

#[async_trait::async_trait]
impl Extension for DefaultErrorCode {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}
