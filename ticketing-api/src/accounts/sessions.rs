//! Sessions: a short-lived access token plus a rotating refresh token.
//!
//! Every refresh spends the presented token and issues a new one in the same family. A token
//! presented a second time means someone else holds a copy: the whole family is revoked, and
//! both the thief and the owner must log in again. Only SHA-256 digests are stored.

use std::time::Duration;

use shared::{
    config::AuthConfig,
    domain::Role,
    ids::UserId,
    tokens::{AccessClaims, TokenKeys, random_token, token_digest},
};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AccountError, User, users};

/// What a login or a refresh hands back.
#[derive(Debug)]
pub struct Session {
    pub access_token: String,
    pub expires_in: Duration,
    pub refresh_token: String,
    pub refresh_expires_in: Duration,
}

pub fn access_token(
    keys: &TokenKeys,
    auth: &AuthConfig,
    user: UserId,
    role: Role,
) -> Result<String, AccountError> {
    keys.sign(AccessClaims { sub: user, role }, auth.access_token_ttl)
        .map_err(|err| AccountError::Internal(anyhow::anyhow!("signing an access token: {err}")))
}

async fn issue_refresh_token(
    conn: &mut PgConnection,
    auth: &AuthConfig,
    user: UserId,
    family: Uuid,
) -> Result<String, sqlx::Error> {
    let token = random_token();
    let expires_at = OffsetDateTime::now_utc() + auth.refresh_token_ttl;
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(family)
    .bind(user)
    .bind(token_digest(&token))
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Starts a new session (a new refresh family) for a user who just proved who they are.
pub async fn start(
    db: &PgPool,
    keys: &TokenKeys,
    auth: &AuthConfig,
    user: &User,
) -> Result<Session, AccountError> {
    let mut conn = db.acquire().await?;
    let refresh_token = issue_refresh_token(&mut conn, auth, user.id, Uuid::now_v7()).await?;
    Ok(Session {
        access_token: access_token(keys, auth, user.id, user.role)?,
        expires_in: auth.access_token_ttl,
        refresh_token,
        refresh_expires_in: auth.refresh_token_ttl,
    })
}

#[derive(sqlx::FromRow)]
struct StoredToken {
    user_id: UserId,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

/// Spends `presented` and issues the next token of its family, with a fresh access token
/// carrying the user's current role.
pub async fn refresh(
    db: &PgPool,
    keys: &TokenKeys,
    auth: &AuthConfig,
    presented: &str,
) -> Result<Session, AccountError> {
    let mut tx = db.begin().await?;
    // FOR UPDATE: two concurrent refreshes with one token must not both succeed.
    let row: Option<StoredToken> = sqlx::query_as(
        "SELECT user_id, family_id, expires_at, used_at, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_digest(presented))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(StoredToken {
        user_id,
        family_id: family,
        expires_at,
        used_at,
        revoked_at,
    }) = row
    else {
        return Err(AccountError::InvalidRefreshToken);
    };
    if revoked_at.is_some() {
        return Err(AccountError::InvalidRefreshToken);
    }
    if used_at.is_some() {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(user.id = %user_id, "refresh token reused; family revoked");
        return Err(AccountError::RefreshTokenReused);
    }
    if expires_at <= OffsetDateTime::now_utc() {
        return Err(AccountError::InvalidRefreshToken);
    }
    // Same connection as the lock: a second one could deadlock a saturated pool.
    let user = users::get(&mut *tx, user_id).await?;
    if user.banned_at.is_some() {
        return Err(AccountError::Banned);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(token_digest(presented))
        .execute(&mut *tx)
        .await?;
    let refresh_token = issue_refresh_token(&mut tx, auth, user.id, family).await?;
    tx.commit().await?;
    Ok(Session {
        access_token: access_token(keys, auth, user.id, user.role)?,
        expires_in: auth.access_token_ttl,
        refresh_token,
        refresh_expires_in: auth.refresh_token_ttl,
    })
}

/// Ends the session `presented` belongs to (its whole family). Unknown tokens are ignored:
/// logging out is always allowed to succeed.
pub async fn end(db: &PgPool, presented: &str) -> Result<(), AccountError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(token_digest(presented))
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every refresh token of a user (ban).
pub async fn revoke_all(conn: &mut PgConnection, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .execute(conn)
    .await?;
    Ok(())
}
