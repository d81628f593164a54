//! Accounts and refresh tokens.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use super::pool::{Conn, on_conn};
use super::prepared::PrepareOnce;
use super::schema::{refresh_tokens, users};
use super::{converted, store_error};
use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::ports::{StoreError, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: NaiveDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<Self> {
        Ok(User {
            id: row.id,
            email: row.email,
            name: row.name,
            password_hash: row.password_hash,
            is_admin: row.is_admin,
            created_at: row.created_at.and_utc(),
        })
    }
}

impl TryFrom<&User> for UserRow {
    type Error = StoreError;

    fn try_from(u: &User) -> StoreResult<Self> {
        Ok(UserRow {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            is_admin: u.is_admin,
            created_at: u.created_at.naive_utc(),
        })
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub user_id: String,
    pub family_id: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

impl TryFrom<&NewRefreshToken> for RefreshTokenRow {
    type Error = StoreError;

    fn try_from(t: &NewRefreshToken) -> StoreResult<Self> {
        Ok(RefreshTokenRow {
            token_hash: t.token_hash.clone(),
            user_id: t.user_id.clone(),
            family_id: t.family_id.clone(),
            expires_at: t.expires_at.naive_utc(),
            created_at: t.created_at.naive_utc(),
        })
    }
}

/// Fails with `StoreError::Conflict` when the email is taken.
pub async fn insert_user(conn: &mut Conn<'_>, user: &User) -> StoreResult<User> {
    let row = UserRow::try_from(user)?;
    let row: UserRow = on_conn!(conn, c => diesel::insert_into(users::table)
        .values(&row)
        .returning(UserRow::as_returning())
        .get_result(c)
        .await)
    .map_err(store_error("inserting a user"))?;
    row.try_into()
}

pub async fn user_by_email(conn: &mut Conn<'_>, email: &str) -> StoreResult<Option<User>> {
    let row: Option<UserRow> = on_conn!(conn, c => users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a user by email"))?;
    row.map(User::try_from).transpose()
}

pub async fn users_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<User>> {
    let rows: Vec<UserRow> = on_conn!(conn, c => users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading users"))?;
    converted(rows)
}

pub async fn user_by_id(conn: &mut Conn<'_>, id: &str) -> StoreResult<Option<User>> {
    Ok(users_by_ids(conn, &[id.to_owned()]).await?.pop())
}

/// Creates the admin or promotes and re-keys an existing account of that email.
pub async fn upsert_admin(conn: &mut Conn<'_>, user: &User) -> StoreResult<User> {
    let row = UserRow::try_from(user)?;
    let row: UserRow = on_conn!(conn, c => diesel::insert_into(users::table)
        .values(&row)
        .on_conflict(users::email)
        .do_update()
        .set((users::is_admin.eq(true), users::password_hash.eq(excluded(users::password_hash))))
        .returning(UserRow::as_returning())
        .get_result(c)
        .await)
    .map_err(store_error("upserting an admin"))?;
    row.try_into()
}

pub async fn insert_refresh_token(conn: &mut Conn<'_>, token: &NewRefreshToken) -> StoreResult<()> {
    let row = RefreshTokenRow::try_from(token)?;
    on_conn!(conn, c => diesel::insert_into(refresh_tokens::table).values(&row).execute(c).await)
        .map(drop)
        .map_err(store_error("inserting a refresh token"))
}

/// Marks an unused, unexpired token as used (atomically) and says what happened to it.
pub async fn use_refresh_token(
    conn: &mut Conn<'_>,
    token_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<RefreshTokenUse> {
    let now = now.naive_utc();
    let fresh: Option<(String, String)> = on_conn!(conn, c => diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .filter(refresh_tokens::used_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now))
        .set(refresh_tokens::used_at.eq(now))
        .returning((refresh_tokens::user_id, refresh_tokens::family_id))
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("using a refresh token"))?;
    if let Some((user_id, family_id)) = fresh {
        return Ok(RefreshTokenUse::Fresh { user_id, family_id });
    }
    let state: Option<(String, Option<NaiveDateTime>)> = on_conn!(conn, c => refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((refresh_tokens::family_id, refresh_tokens::used_at))
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a refresh token"))?;
    Ok(match state {
        Some((family_id, Some(_used_at))) => RefreshTokenUse::Replayed { family_id },
        _ => RefreshTokenUse::Unknown,
    })
}

pub async fn delete_refresh_family(conn: &mut Conn<'_>, family_id: &str) -> StoreResult<()> {
    on_conn!(conn, c => diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("revoking refresh tokens"))
}

/// Revokes every refresh token of the user (all their sign-ins).
pub async fn delete_refresh_tokens_of(conn: &mut Conn<'_>, user_id: &str) -> StoreResult<()> {
    on_conn!(conn, c => diesel::delete(refresh_tokens::table.filter(refresh_tokens::user_id.eq(user_id)))
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("revoking a user's refresh tokens"))
}
