//! The audit log: who did what to whom, written by every service through [`record`]. Written
//! in the same transaction as the change it records, so the log and the data cannot disagree.
//! (Reading it is the ticketing API's: the admins' list.)

use sqlx::PgConnection;

use crate::ids::UserId;

/// Who did it: a user, or a service on its own (the waiting room's shuffle at the opening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    /// Stored with no actor id.
    System,
}

impl From<UserId> for Actor {
    fn from(user: UserId) -> Self {
        Self::User(user)
    }
}

/// Adds one entry. `target_type`/`target_id` name what was changed (`"event"`, its id).
pub async fn record(
    conn: &mut PgConnection,
    actor: impl Into<Actor>,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    let actor_id = match actor.into() {
        Actor::User(user) => Some(user),
        Actor::System => None,
    };
    sqlx::query(
        "INSERT INTO audit_log (actor_id, action, target_type, target_id, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor_id)
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_users_entry_names_them_and_a_services_names_nobody(db: PgPool) {
        let user = UserId::new();
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'a@example.test', 'A', 'x')",
        )
        .bind(user)
        .execute(&db)
        .await
        .expect("a user");
        let mut conn = db.acquire().await.expect("a connection");
        let details = serde_json::json!({"seed": "7"});
        record(
            &mut conn,
            user,
            "event.update",
            "event",
            "e1",
            details.clone(),
        )
        .await
        .expect("recorded");
        record(
            &mut conn,
            Actor::System,
            "queue.shuffle",
            "event",
            "e1",
            details.clone(),
        )
        .await
        .expect("recorded");
        let rows: Vec<(Option<UserId>, String, String, String, serde_json::Value)> = sqlx::query_as(
            "SELECT actor_id, action, target_type, target_id, details FROM audit_log ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await
        .expect("read");
        let entry = |actor, action: &str| {
            (
                actor,
                action.into(),
                "event".into(),
                "e1".into(),
                details.clone(),
            )
        };
        assert_eq!(
            rows,
            [
                entry(Some(user), "event.update"),
                entry(None, "queue.shuffle")
            ]
        );
    }
}
