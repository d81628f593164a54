//! Signed access tokens (JWT, HS256) and opaque refresh tokens.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthError, Viewer};

const ISSUER: &str = "shop";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    /// `guest` or `user`.
    kind: String,
    #[serde(default)]
    admin: bool,
    iat: i64,
    exp: i64,
    iss: String,
}

pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
    pub guest_ttl: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], access_ttl: Duration, guest_ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl,
            guest_ttl,
        }
    }

    pub fn issue(&self, viewer: &Viewer, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), AuthError> {
        let (sub, kind, admin, ttl) = match viewer {
            Viewer::Guest { session_id } => (session_id.clone(), "guest", false, self.guest_ttl),
            Viewer::User { user_id, is_admin } => (user_id.clone(), "user", *is_admin, self.access_ttl),
        };
        let expires_at = now + ttl;
        let claims = Claims {
            sub,
            kind: kind.to_owned(),
            admin,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::InvalidToken)?;
        Ok((token, expires_at))
    }

    /// Checks signature, issuer and expiry (against the injected clock, not the system time);
    /// returns whom the token names and until when.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(Viewer, DateTime<Utc>), AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).ok_or(AuthError::InvalidToken)?;
        unexpired(expires_at, now)?;
        let viewer = match claims.kind.as_str() {
            "guest" => Viewer::Guest { session_id: claims.sub },
            "user" => Viewer::User { user_id: claims.sub, is_admin: claims.admin },
            _ => return Err(AuthError::InvalidToken),
        };
        Ok((viewer, expires_at))
    }
}

/// A token that expires at `expires_at` is refused from that instant on.
pub fn unexpired(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), AuthError> {
    if expires_at <= now { Err(AuthError::InvalidToken) } else { Ok(()) }
}

/// A new opaque refresh token (256 random bits) and the hash under which it is stored.
pub fn new_refresh_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("rt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
