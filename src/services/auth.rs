//! Accounts and sessions: sign-up, sign-in (the guest's cart follows into the account),
//! refresh-token rotation with replay detection, and the configured admin.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::db::outbox::{self, OutboxRow};
use crate::db::{Pool, recommendations, users};
use crate::domain::auth::model::{AuthPayload, NewRefreshToken, RefreshTokenUse, User, Viewer};
use crate::domain::auth::tokens::{TokenIssuer, hash_refresh_token, new_refresh_token, unexpired};
use crate::domain::auth::{AuthError, password};
use crate::domain::limits::LimitedAction;
use crate::expiring::ExpiringCache;
use crate::ports::{Clock, StoreError};
use crate::services::cart::CartService;
use crate::services::limits::RateLimitService;

pub type AuthResult<T> = Result<T, AuthError>;

const MIN_PASSWORD_LEN: usize = 8;
const MAX_PASSWORD_LEN: usize = 256;
const MAX_EMAIL_LEN: usize = 254;
const MAX_NAME_LEN: usize = 100;

/// Access tokens whose signature was checked, and for how long one is trusted from that check
/// (its own expiry still applies): checking a signature was a twentieth of a signed-in
/// request's CPU, and a client sends the same token with each request. Access tokens cannot be
/// revoked before they expire, so a token once verified stays as good as its expiry says.
const VERIFIED_TOKENS: usize = 100_000;
const VERIFIED_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Clone)]
pub struct AuthService {
    db: Pool,
    clock: Arc<dyn Clock>,
    tokens: Arc<TokenIssuer>,
    verified: Arc<ExpiringCache<String, (Viewer, DateTime<Utc>)>>,
    refresh_ttl: Duration,
    carts: CartService,
    limits: RateLimitService,
    /// Verified against when the email is unknown, so that a wrong email costs as long as a
    /// wrong password and sign-in timing does not reveal which accounts exist.
    decoy_hash: Arc<tokio::sync::OnceCell<String>>,
}

impl AuthService {
    pub fn new(
        db: Pool,
        clock: Arc<dyn Clock>,
        tokens: TokenIssuer,
        refresh_ttl: Duration,
        carts: CartService,
        limits: RateLimitService,
    ) -> Self {
        Self {
            db,
            clock,
            tokens: Arc::new(tokens),
            verified: Arc::new(ExpiringCache::new(VERIFIED_TOKENS, VERIFIED_TOKEN_TTL)),
            refresh_ttl,
            carts,
            limits,
            decoy_hash: Arc::default(),
        }
    }

    pub async fn start_guest_session(&self) -> AuthResult<AuthPayload> {
        let viewer = Viewer::Guest { session_id: format!("g-{}", uuid::Uuid::new_v4().simple()) };
        let (token, expires_at) = self.tokens.issue(&viewer, self.clock.now())?;
        Ok(AuthPayload { token, expires_at, refresh_token: None, user: None, capped_cart_lines: Vec::new() })
    }

    /// Creates an account and signs it in; called during a guest session, the guest's cart
    /// becomes the new user's cart.
    pub async fn sign_up(
        &self,
        current: Option<&Viewer>,
        email: &str,
        password: &str,
        name: &str,
    ) -> AuthResult<AuthPayload> {
        let email = normalize_email(email)?;
        validate_password(password)?;
        let name = validate_name(name)?;
        let user = User {
            id: format!("u-{}", uuid::Uuid::new_v4().simple()),
            email,
            name,
            password_hash: password::hash(password.to_owned()).await?,
            is_admin: false,
            created_at: self.clock.now(),
        };
        let user = self.db.atomically(async |c| users::insert_user(c, &user).await).await.map_err(|err| match err {
            StoreError::Conflict(_) => AuthError::EmailTaken,
            other => AuthError::Store(other),
        })?;
        self.session_for(user, current).await
    }

    /// Signs in; the calling guest session's cart (if any) merges into the user's cart. An
    /// account with too many recent failures is refused before any hashing, whether it exists
    /// or not.
    pub async fn sign_in(&self, current: Option<&Viewer>, email: &str, password: &str) -> AuthResult<AuthPayload> {
        let email = email.trim().to_lowercase();
        self.limits.peek(LimitedAction::FailedSignIn, &email).await?;
        let verified = match self.db.with_conn(async |c| users::user_by_email(c, &email).await).await? {
            Some(user) if password::verify(password.to_owned(), user.password_hash.clone()).await? => Some(user),
            Some(_) => None,
            None => {
                let decoy = self.decoy_hash.get_or_try_init(|| password::hash("decoy-password".to_owned())).await?;
                password::verify(password.to_owned(), decoy.clone()).await?;
                None
            }
        };
        match verified {
            Some(user) => self.session_for(user, current).await,
            None => {
                // The failure that fills the allowance is still reported as what it is.
                let _ = self.limits.take(LimitedAction::FailedSignIn, &email).await;
                Err(AuthError::InvalidCredentials)
            }
        }
    }

    /// Exchanges a refresh token for a new access token and a new refresh token. Each refresh
    /// token works once; presenting a used one again revokes every token of that sign-in.
    pub async fn refresh(&self, refresh_token: &str) -> AuthResult<AuthPayload> {
        let now = self.clock.now();
        let hash = hash_refresh_token(refresh_token);
        match self.db.atomically(async |c| users::use_refresh_token(c, &hash, now).await).await? {
            RefreshTokenUse::Fresh { user_id, family_id } => {
                let user = self.user(&user_id).await?.ok_or(AuthError::InvalidToken)?;
                self.issue_session(user, family_id).await
            }
            RefreshTokenUse::Replayed { family_id } => {
                tracing::warn!(family_id, "refresh token replayed; revoking its family");
                self.db.atomically(async |c| users::delete_refresh_family(c, &family_id).await).await?;
                Err(AuthError::InvalidToken)
            }
            RefreshTokenUse::Unknown => Err(AuthError::InvalidToken),
        }
    }

    /// The viewer named by an `Authorization` header value: `None` without a header, an error
    /// for a malformed, forged or expired token.
    pub fn viewer_from_authorization(&self, header: Option<&str>) -> AuthResult<Option<Viewer>> {
        Ok(self.session_from_authorization(header)?.map(|(viewer, _)| viewer))
    }

    /// The viewer and when the token expires (a websocket closes then).
    pub fn session_from_authorization(&self, header: Option<&str>) -> AuthResult<Option<(Viewer, DateTime<Utc>)>> {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(AuthError::InvalidToken)?;
        let (token, now) = (token.trim(), self.clock.now());
        if let Some((viewer, expires_at)) = self.verified.get(token) {
            unexpired(expires_at, now)?;
            return Ok(Some((viewer, expires_at)));
        }
        let session = self.tokens.verify(token, now)?;
        self.verified.insert(token.to_owned(), session.clone());
        Ok(Some(session))
    }

    /// How long from now until `moment`, by the injected clock (zero once it has passed).
    pub fn time_until(&self, moment: DateTime<Utc>) -> std::time::Duration {
        (moment - self.clock.now()).to_std().unwrap_or_default()
    }

    pub async fn user(&self, user_id: &str) -> AuthResult<Option<User>> {
        Ok(self.db.with_conn(async |c| users::user_by_id(c, user_id).await).await?)
    }

    /// The signed-in user behind a viewer; `None` for guests.
    pub async fn viewer_user(&self, viewer: Option<&Viewer>) -> AuthResult<Option<User>> {
        match viewer.and_then(Viewer::user_id) {
            Some(user_id) => self.user(user_id).await,
            None => Ok(None),
        }
    }

    pub fn require_admin(&self, viewer: Option<&Viewer>) -> AuthResult<()> {
        match viewer {
            None => Err(AuthError::Unauthenticated),
            Some(viewer) if viewer.is_admin() => Ok(()),
            Some(_) => Err(AuthError::Forbidden),
        }
    }

    /// Creates the admin, or promotes (and re-keys) an existing account, ending the sign-ins it
    /// had as a shopper.
    pub async fn ensure_admin(&self, email: &str, password: &str) -> AuthResult<User> {
        let email = normalize_email(email)?;
        validate_password(password)?;
        let name = email.split('@').next().unwrap_or("admin").to_owned();
        let admin = User {
            id: format!("u-{}", uuid::Uuid::new_v4().simple()),
            email,
            name,
            password_hash: password::hash(password.to_owned()).await?,
            is_admin: true,
            created_at: self.clock.now(),
        };
        let promoted = self
            .db
            .transaction(async |c| {
                let before = users::user_by_email(c, &admin.email).await?;
                let promoted = users::upsert_admin(c, &admin).await?;
                // Sessions begun before the promotion must not turn into admin sessions.
                if before.is_some_and(|user| !user.is_admin) {
                    users::delete_refresh_tokens_of(c, &promoted.id).await?;
                }
                Ok::<_, StoreError>(promoted)
            })
            .await?;
        Ok(promoted)
    }

    async fn session_for(&self, user: User, current: Option<&Viewer>) -> AuthResult<AuthPayload> {
        let family_id = format!("f-{}", uuid::Uuid::new_v4().simple());
        let mut payload = self.issue_session(user.clone(), family_id).await?;
        if let Some(guest @ Viewer::Guest { .. }) = current {
            let signed_in = Viewer::User { user_id: user.id, is_admin: user.is_admin };
            payload.capped_cart_lines = self.carts.merge_guest_cart(guest, &signed_in).await?;
            let now = self.clock.now();
            self.db
                .atomically(async |c| {
                    recommendations::reassign(c, &guest.shopper(), &signed_in.shopper()).await?;
                    outbox::insert(c, vec![OutboxRow::shopper_activity(&signed_in.shopper(), now)?]).await
                })
                .await?;
        }
        Ok(payload)
    }

    async fn issue_session(&self, user: User, family_id: String) -> AuthResult<AuthPayload> {
        let now = self.clock.now();
        let viewer = Viewer::User { user_id: user.id.clone(), is_admin: user.is_admin };
        let (token, expires_at) = self.tokens.issue(&viewer, now)?;
        let (refresh_token, token_hash) = new_refresh_token();
        let refresh = NewRefreshToken {
            token_hash,
            user_id: user.id.clone(),
            family_id,
            expires_at: now + self.refresh_ttl,
            created_at: now,
        };
        self.db.atomically(async |c| users::insert_refresh_token(c, &refresh).await).await?;
        Ok(AuthPayload {
            token,
            expires_at,
            refresh_token: Some(refresh_token),
            user: Some(user),
            capped_cart_lines: Vec::new(),
        })
    }
}

fn normalize_email(email: &str) -> AuthResult<String> {
    let email = email.trim().to_lowercase();
    let well_formed = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if well_formed { Ok(email) } else { Err(AuthError::invalid("email", "is not a valid email address")) }
}

fn validate_password(password: &str) -> AuthResult<()> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(AuthError::invalid("password", format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")))
    }
}

fn validate_name(name: &str) -> AuthResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(AuthError::invalid("name", format!("must be 1 to {MAX_NAME_LEN} characters")));
    }
    Ok(name.to_owned())
}
