//! The audit log: who did what to whom. Written in the same transaction as the change it
//! records, so the log and the data cannot disagree; written through `shared::audit` (the
//! waiting room writes there too), read here for the admins' list.

use serde::Serialize;
pub use shared::audit::record;
use shared::ids::UserId;
use time::OffsetDateTime;

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Newest first.
pub async fn list(
    db: &sqlx::PgPool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditEntry>, i64), sqlx::Error> {
    let entries = sqlx::query_as::<_, AuditEntry>(
        "SELECT id, actor_id, action, target_type, target_id, details, created_at
         FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let (total,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
        .fetch_one(db)
        .await?;
    Ok((entries, total))
}
