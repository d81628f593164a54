use super::rate_limits::RateLimited;
use crate::domain::limits::LimitedAction;
use async_graphql::{Context, Object};

use super::types::{AuthPayload, User};
use super::{app, viewer};
use crate::error::ApiResult;

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The signed-in user; null for guests and anonymous callers.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        Ok(app(ctx).auth.viewer_user(viewer(ctx)).await?.map(User::from))
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Starts an anonymous shopping session; its token identifies a guest cart.
    #[graphql(guard = "RateLimited(LimitedAction::GuestSession)")]
    async fn start_guest_session(&self, ctx: &Context<'_>) -> ApiResult<AuthPayload> {
        Ok(app(ctx).auth.start_guest_session().await?.into())
    }

    #[graphql(guard = "RateLimited(LimitedAction::SignInAttempt)")]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        name: String,
    ) -> ApiResult<AuthPayload> {
        Ok(app(ctx).auth.sign_up(viewer(ctx), &email, &password, &name).await?.into())
    }

    /// Signs in; the calling guest session's cart (if any) is merged into the user's cart.
    #[graphql(guard = "RateLimited(LimitedAction::SignInAttempt)")]
    async fn sign_in(&self, ctx: &Context<'_>, email: String, password: String) -> ApiResult<AuthPayload> {
        Ok(app(ctx).auth.sign_in(viewer(ctx), &email, &password).await?.into())
    }

    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> ApiResult<AuthPayload> {
        Ok(app(ctx).auth.refresh(&refresh_token).await?.into())
    }
}
