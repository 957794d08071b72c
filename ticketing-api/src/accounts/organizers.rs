//! Becoming an organizer: a fan applies, an admin approves or rejects. Approval makes the
//! role `organizer`; the new role is in the next access token (the next refresh or login).

use serde::Serialize;
use shared::{
    domain::{OrganizerStatus, Role},
    ids::UserId,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AccountError, audit, users};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Application {
    pub id: Uuid,
    pub user_id: UserId,
    pub company: String,
    pub details: String,
    pub status: String,
    pub decided_by: Option<UserId>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who applied: their email and name, in the admin's list.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applicant_email: Option<String>,
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applicant_name: Option<String>,
}

macro_rules! application_columns {
    () => {
        "id, user_id, company, details, status, decided_by, decided_at, created_at"
    };
}

/// A fan asks to become an organizer.
pub async fn apply(
    db: &PgPool,
    user: UserId,
    company: &str,
    details: &str,
) -> Result<Application, AccountError> {
    let company = company.trim();
    if company.is_empty() || company.chars().count() > 200 {
        return Err(AccountError::InvalidField(
            "The company name has 1 to 200 characters.".into(),
        ));
    }
    if details.chars().count() > 5000 {
        return Err(AccountError::InvalidField(
            "The details have at most 5000 characters.".into(),
        ));
    }
    let mut tx = db.begin().await?;
    let (role, status): (String, String) =
        sqlx::query_as("SELECT role, organizer_status FROM users WHERE id = $1 FOR UPDATE")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(AccountError::UserNotFound)?;
    if role != Role::Fan.as_str() {
        return Err(AccountError::AlreadyOrganizer);
    }
    if status == OrganizerStatus::Pending.as_str() {
        return Err(AccountError::ApplicationPending);
    }
    let application = sqlx::query_as::<_, Application>(concat!(
        "INSERT INTO organizer_applications (id, user_id, company, details)
         VALUES ($1, $2, $3, $4) RETURNING ",
        application_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(company)
    .bind(details.trim())
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| match shared::db::unique_violation(&err) {
        Some("organizer_applications_one_pending") => AccountError::ApplicationPending,
        _ => AccountError::Database(err),
    })?;
    sqlx::query("UPDATE users SET organizer_status = 'pending' WHERE id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(application)
}

/// Applications in one status (`pending` by default), oldest first: the admin's work queue.
pub async fn list(
    db: &PgPool,
    status: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<Application>, AccountError> {
    Ok(sqlx::query_as::<_, Application>(
        "SELECT a.id, a.user_id, a.company, a.details, a.status, a.decided_by, a.decided_at,
                a.created_at, u.email AS applicant_email, u.name AS applicant_name
         FROM organizer_applications a JOIN users u ON u.id = a.user_id
         WHERE a.status = $1
         ORDER BY a.created_at, a.id LIMIT $2 OFFSET $3",
    )
    .bind(status)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// An admin decides on a user's pending application. Audited.
pub async fn decide(
    db: &PgPool,
    admin: UserId,
    user: UserId,
    decision: Decision,
    note: &str,
) -> Result<users::User, AccountError> {
    let mut tx = db.begin().await?;
    let (status, action, update_user) = match decision {
        Decision::Approve => (
            "approved",
            "organizer.approve",
            concat!(
                "UPDATE users SET role = 'organizer', organizer_status = 'approved'
                 WHERE id = $1 RETURNING ",
                users::user_columns!()
            ),
        ),
        Decision::Reject => (
            "rejected",
            "organizer.reject",
            concat!(
                "UPDATE users SET organizer_status = 'rejected' WHERE id = $1 RETURNING ",
                users::user_columns!()
            ),
        ),
    };
    let application: Option<(Uuid,)> = sqlx::query_as(
        "UPDATE organizer_applications
         SET status = $3, decided_by = $2, decided_at = now()
         WHERE user_id = $1 AND status = 'pending' RETURNING id",
    )
    .bind(user)
    .bind(admin)
    .bind(status)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((application_id,)) = application else {
        return Err(AccountError::NoPendingApplication);
    };
    let updated = sqlx::query_as::<_, users::User>(update_user)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        admin,
        action,
        "user",
        &user.to_string(),
        serde_json::json!({ "application_id": application_id, "note": note }),
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}
