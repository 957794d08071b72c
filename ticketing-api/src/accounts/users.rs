//! Users: sign-up, lookup, search, ban.

use serde::Serialize;
use shared::{
    domain::{Email, OrganizerStatus, Role},
    ids::UserId,
};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{
    AccountError, audit,
    password::{self, Password},
};
use crate::sql;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(try_from = "String")]
    pub organizer_status: OrganizerStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub banned_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The columns of [`User`], as a literal so queries stay `&'static str` (sqlx 0.9 wants that).
macro_rules! user_columns {
    () => {
        "id, email, name, role, organizer_status, banned_at, created_at"
    };
}
pub(crate) use user_columns;

/// A validated sign-up.
#[derive(Debug)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub name: String,
}

impl NewUser {
    pub fn parse(email: &str, password: &str, name: &str) -> Result<Self, AccountError> {
        let email =
            Email::parse(email).map_err(|err| AccountError::InvalidEmail(format!("{err}.")))?;
        let password = Password::parse(password)?;
        let name = parse_name(name)?;
        Ok(Self {
            email,
            password,
            name,
        })
    }
}

/// A display name: 1 to 200 characters after trimming, no control characters.
pub fn parse_name(raw: &str) -> Result<String, AccountError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 200 || name.chars().any(char::is_control) {
        return Err(AccountError::InvalidField(
            "A name has 1 to 200 printable characters.".into(),
        ));
    }
    Ok(name.to_string())
}

pub async fn register(db: &PgPool, new: NewUser) -> Result<User, AccountError> {
    let hash = password::hash(&new.password).await?;
    sqlx::query_as::<_, User>(concat!(
        "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING ",
        user_columns!()
    ))
    .bind(UserId::new())
    .bind(new.email.as_str())
    .bind(&new.name)
    .bind(hash)
    .fetch_one(db)
    .await
    .map_err(|err| match shared::db::unique_violation(&err) {
        Some("users_email_key") => AccountError::EmailTaken,
        _ => AccountError::Database(err),
    })
}

/// A user with the stored hash, for login only.
#[derive(sqlx::FromRow)]
struct Credentials {
    password_hash: String,
    #[sqlx(flatten)]
    user: User,
}

/// Checks an email and password; a banned account is refused even with the right password.
pub async fn authenticate(db: &PgPool, email: &str, password: &str) -> Result<User, AccountError> {
    // A malformed or unknown email still costs one hash, so timing does not reveal accounts.
    let found = match Email::parse(email) {
        Ok(email) => {
            sqlx::query_as::<_, Credentials>(concat!(
                "SELECT password_hash, ",
                user_columns!(),
                " FROM users WHERE email = $1"
            ))
            .bind(email.as_str())
            .fetch_optional(db)
            .await?
        }
        Err(_) => None,
    };
    let (stored, user) = match found {
        Some(found) => (Some(found.password_hash), Some(found.user)),
        None => (None, None),
    };
    if !password::verify(password, stored).await? {
        return Err(AccountError::InvalidCredentials);
    }
    let user = user.ok_or(AccountError::InvalidCredentials)?;
    if user.banned_at.is_some() {
        return Err(AccountError::Banned);
    }
    Ok(user)
}

/// One user, on a pool or inside a caller's transaction.
pub async fn get<'e>(db: impl sqlx::PgExecutor<'e>, id: UserId) -> Result<User, AccountError> {
    sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(AccountError::UserNotFound)
}

/// Users whose email or name contains `q` (case-insensitive), newest first.
pub async fn search(
    db: &PgPool,
    q: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<User>, i64), AccountError> {
    Ok(sql::page(
        db,
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email ILIKE $1 OR name ILIKE $1
             ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
        ),
        "SELECT count(*) FROM users WHERE email ILIKE $1 OR name ILIKE $1",
        sql::contains(q),
        limit,
        offset,
    )
    .await?)
}

/// Bans a user: no more logins, every refresh token revoked, live access tokens refused by
/// every service within seconds (see `shared::bans`). Recorded in the audit log.
pub async fn ban(
    db: &PgPool,
    admin: UserId,
    target: UserId,
    reason: &str,
) -> Result<User, AccountError> {
    let mut tx = db.begin().await?;
    let user = sqlx::query_as::<_, User>(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = $1 FOR UPDATE"
    ))
    .bind(target)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AccountError::UserNotFound)?;
    if user.role == Role::Admin {
        return Err(AccountError::CannotBanAdmin);
    }
    let user = sqlx::query_as::<_, User>(concat!(
        "UPDATE users SET banned_at = coalesce(banned_at, now()) WHERE id = $1
         RETURNING ",
        user_columns!()
    ))
    .bind(target)
    .fetch_one(&mut *tx)
    .await?;
    super::sessions::revoke_all(&mut tx, target).await?;
    audit::record(
        &mut tx,
        admin,
        "user.ban",
        "user",
        &target.to_string(),
        serde_json::json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn unban(db: &PgPool, admin: UserId, target: UserId) -> Result<User, AccountError> {
    let mut tx = db.begin().await?;
    let user = sqlx::query_as::<_, User>(concat!(
        "UPDATE users SET banned_at = NULL WHERE id = $1 RETURNING ",
        user_columns!()
    ))
    .bind(target)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AccountError::UserNotFound)?;
    audit::record(
        &mut tx,
        admin,
        "user.unban",
        "user",
        &target.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}
