use crate::db::prepared::PrepareOnce;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::models::{RefreshTokenRow, UserRow};
use crate::db::pool::{Conn, on_conn};
use crate::db::schema::{refresh_tokens, users};
use crate::db::store_error;
use crate::domain::ports::StoreResult;

pub async fn insert_user(conn: &mut Conn<'_>, row: &UserRow) -> StoreResult<UserRow> {
    on_conn!(conn, c => diesel::insert_into(users::table)
        .values(row)
        .returning(UserRow::as_returning())
        .get_result(c)
        .await)
    .map_err(store_error("inserting a user"))
}

pub async fn user_by_email(conn: &mut Conn<'_>, email: &str) -> StoreResult<Option<UserRow>> {
    on_conn!(conn, c => users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a user by email"))
}

pub async fn users_by_ids(conn: &mut Conn<'_>, ids: &[String]) -> StoreResult<Vec<UserRow>> {
    on_conn!(conn, c => users::table
        .filter(users::id.eq_any(ids))
        .select(UserRow::as_select())
        .load(c)
        .await)
    .map_err(store_error("loading users"))
}

pub async fn upsert_admin(conn: &mut Conn<'_>, row: &UserRow) -> StoreResult<UserRow> {
    on_conn!(conn, c => diesel::insert_into(users::table)
        .values(row)
        .on_conflict(users::email)
        .do_update()
        .set((users::is_admin.eq(true), users::password_hash.eq(excluded(users::password_hash))))
        .returning(UserRow::as_returning())
        .get_result(c)
        .await)
    .map_err(store_error("upserting an admin"))
}

pub async fn insert_refresh_token(conn: &mut Conn<'_>, row: &RefreshTokenRow) -> StoreResult<()> {
    on_conn!(conn, c => diesel::insert_into(refresh_tokens::table).values(row).execute(c).await)
        .map(drop)
        .map_err(store_error("inserting a refresh token"))
}

/// Marks the token used if it is unused and unexpired; returns its (user id, family id) then.
pub async fn mark_refresh_token_used(
    conn: &mut Conn<'_>,
    token_hash: &str,
    now: NaiveDateTime,
) -> StoreResult<Option<(String, String)>> {
    on_conn!(conn, c => diesel::update(refresh_tokens::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .filter(refresh_tokens::used_at.is_null())
        .filter(refresh_tokens::expires_at.gt(now))
        .set(refresh_tokens::used_at.eq(now))
        .returning((refresh_tokens::user_id, refresh_tokens::family_id))
        .prepared()
        .get_result(c)
        .await
        .optional())
    .map_err(store_error("using a refresh token"))
}

/// The family and use time of a token, whatever its state.
pub async fn refresh_token_state(
    conn: &mut Conn<'_>,
    token_hash: &str,
) -> StoreResult<Option<(String, Option<NaiveDateTime>)>> {
    on_conn!(conn, c => refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((refresh_tokens::family_id, refresh_tokens::used_at))
        .first(c)
        .await
        .optional())
    .map_err(store_error("loading a refresh token"))
}

pub async fn delete_refresh_family(conn: &mut Conn<'_>, family_id: &str) -> StoreResult<()> {
    on_conn!(conn, c => diesel::delete(refresh_tokens::table.filter(refresh_tokens::family_id.eq(family_id)))
        .execute(c)
        .await)
    .map(drop)
    .map_err(store_error("revoking refresh tokens"))
}
