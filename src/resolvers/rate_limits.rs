//! The rate limits of contract note 17 that key on who calls: each limited root mutation takes
//! one from its caller's allowance before it runs. A refused field fails alone with
//! RATE_LIMITED and `retryAfterSeconds`; the document's other fields still run. Failed sign-ins
//! per account are counted by the auth service, which alone knows the outcome.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo};
use async_graphql::{PathSegment, ServerResult, Value};

use super::ClientAddress;
use crate::app::AppContext;
use crate::domain::auth::Viewer;
use crate::domain::limits::{LimitedAction, address_subject};
use crate::error::ApiError;

pub struct RateLimitedMutations;

impl ExtensionFactory for RateLimitedMutations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RateLimitedMutations)
    }
}

/// Which limit a root mutation counts against, and what the limit keys on.
enum Subject {
    Address,
    Caller,
}

fn limit_of(field: &str) -> Option<(LimitedAction, Subject)> {
    match field {
        "signIn" | "signUp" => Some((LimitedAction::SignInAttempt, Subject::Address)),
        "startGuestSession" => Some((LimitedAction::GuestSession, Subject::Address)),
        "addCartItem" | "updateCartItem" | "removeCartItem" | "initiateCheckout" | "placeOrder" | "cancelCheckout" => {
            Some((LimitedAction::ShopperWrite, Subject::Caller))
        }
        _ => None,
    }
}

#[async_trait::async_trait]
impl Extension for RateLimitedMutations {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let root_mutation = info.path_node.parent.is_none() && info.parent_type == "Mutation";
        if let Some((action, subject)) = limit_of(info.name).filter(|_| root_mutation) {
            let subject = match subject {
                Subject::Address => ctx.data_opt::<ClientAddress>().map(|client| address_subject(client.0)),
                // Without a caller the resolver answers UNAUTHENTICATED; there is nothing to count.
                Subject::Caller => ctx.data_opt::<Viewer>().map(|viewer| viewer.shopper().key()),
            };
            if let Some(subject) = subject
                && let Err(limited) = ctx.data_unchecked::<AppContext>().limits.take(action, &subject).await
            {
                let mut error =
                    async_graphql::Error::from(ApiError::from(limited)).into_server_error(Default::default());
                error.locations.clear();
                error.path = vec![PathSegment::Field(info.alias.unwrap_or(info.name).to_owned())];
                return Err(error);
            }
        }
        next.run(ctx, info).await
    }
}
