//! The rate limits of contract note 17 that key on who calls, as a guard on each limited
//! mutation: the field takes one from its caller's allowance before it runs. A refused field
//! fails alone with RATE_LIMITED and `retryAfterSeconds`; the document's other fields still run.
//! Failed sign-ins per account are counted by the auth service, which alone knows the outcome.

use async_graphql::{Context, Guard};

use super::{ClientAddress, app, viewer};
use crate::domain::limits::{LimitedAction, address_subject};
use crate::error::ApiError;

/// Counts the field against `action`'s limit, keyed as the action says.
pub struct RateLimited(pub LimitedAction);

impl Guard for RateLimited {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let subject = match self.0 {
            LimitedAction::SignInAttempt | LimitedAction::GuestSession => {
                ctx.data_opt::<ClientAddress>().map(|client| address_subject(client.0))
            }
            // Without a caller the resolver answers UNAUTHENTICATED; there is nothing to count.
            LimitedAction::ShopperWrite => viewer(ctx).map(|viewer| viewer.shopper().key()),
            LimitedAction::FailedSignIn => None,
        };
        match subject {
            Some(subject) => {
                app(ctx).limits.take(self.0, &subject).await.map_err(|limited| ApiError::from(limited).into())
            }
            None => Ok(()),
        }
    }
}
