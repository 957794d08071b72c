//! Users banned recently, known to every process that checks access tokens.
//!
//! Access tokens live at most 15 minutes and a banned user gets no new one, so a ban takes
//! effect within one token lifetime by construction. This list makes it take effect at once:
//! each process reloads, every few seconds, the users banned within the last token lifetime (a
//! small set — older bans are covered by expiry) and refuses their tokens. A `RwLock` over a
//! `HashSet` suits it: reads on every request, one write per reload.
//!
//! The reload reads the banned users only, through a partial index of them
//! (`users_banned_at_idx`, migration 0006): its cost follows the number of recent bans, not the
//! platform's users (a test reloads it from a million users).

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use sqlx::PgPool;
use uuid::Uuid;

use crate::ids::UserId;

/// The users banned within the last `$1` seconds.
const RECENT_BANS: &str =
    "SELECT id FROM users WHERE banned_at > now() - make_interval(secs => $1)";

#[derive(Debug, Clone, Default)]
pub struct BanList {
    banned: Arc<RwLock<HashSet<UserId>>>,
}

impl BanList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_banned(&self, user: UserId) -> bool {
        self.banned
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&user)
    }

    /// Marks a user banned in this process at once (the instance that made the ban).
    pub fn insert(&self, user: UserId) {
        self.banned
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user);
    }

    /// Reloads the users banned within `window` from Postgres.
    pub async fn reload(&self, db: &PgPool, window: Duration) -> Result<(), sqlx::Error> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(RECENT_BANS)
            .bind(window.as_secs_f64())
            .fetch_all(db)
            .await?;
        let fresh: HashSet<UserId> = rows.into_iter().map(|(id,)| UserId::from(id)).collect();
        *self
            .banned
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Keeps the list fresh until the process ends.
    pub fn spawn_refresh(&self, db: PgPool, window: Duration, every: Duration) {
        let list = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = list.reload(&db, window).await {
                    tracing::warn!(error = %err, "could not reload the ban list");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    /// A platform of a million users, twenty of them banned (ten within the window): the reload
    /// finds the ten through the partial index, reading a handful of pages, in well under a
    /// millisecond of the server's time (the best of five `EXPLAIN ANALYZE` runs, which leaves
    /// the network and this machine's scheduling out of the figure).
    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_million_users_reload_the_ban_list_through_the_index_in_under_a_millisecond(
        db: PgPool,
    ) {
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, banned_at)
             SELECT gen_random_uuid(), 'fan' || i || '@example.test', 'Fan', 'x',
                    CASE WHEN i % 100000 = 0 THEN now() - interval '1 minute'
                         WHEN i % 100000 = 50000 THEN now() - interval '30 days' END
             FROM generate_series(1, 1000000) AS i",
        )
        .execute(&db)
        .await
        .expect("a million users");
        sqlx::query("ANALYZE users")
            .execute(&db)
            .await
            .expect("analyze");
        let recent: HashSet<UserId> = sqlx::query_as::<_, (Uuid,)>(
            "SELECT id FROM users WHERE banned_at > now() - interval '1 hour'",
        )
        .fetch_all(&db)
        .await
        .expect("the recent bans")
        .into_iter()
        .map(|(id,)| UserId::from(id))
        .collect();
        assert_eq!(recent.len(), 10);

        let list = BanList::new();
        list.reload(&db, WINDOW).await.expect("reloaded");
        for user in &recent {
            assert!(list.is_banned(*user));
        }
        let old: (Uuid,) = sqlx::query_as(
            "SELECT id FROM users WHERE banned_at < now() - interval '1 day' LIMIT 1",
        )
        .fetch_one(&db)
        .await
        .expect("an old ban");
        assert!(
            !list.is_banned(UserId::from(old.0)),
            "older bans are left to expiry"
        );

        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let explain = format!(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}",
                RECENT_BANS.replace("$1", &WINDOW.as_secs().to_string())
            );
            let (plan,): (Value,) = sqlx::query_as(sqlx::AssertSqlSafe(explain))
                .fetch_one(&db)
                .await
                .expect("the plan");
            let top = &plan[0];
            let nodes = plan_nodes(&top["Plan"]);
            assert!(
                nodes
                    .iter()
                    .any(|node| node["Index Name"] == "users_banned_at_idx")
                    && !nodes.iter().any(|node| node["Node Type"] == "Seq Scan"),
                "the reload must read the partial index, not the users: {top}"
            );
            let pages = top["Plan"]["Shared Hit Blocks"].as_u64().unwrap_or(0)
                + top["Plan"]["Shared Read Blocks"].as_u64().unwrap_or(0);
            assert!(pages < 20, "read {pages} pages for ten bans: {top}");
            best = best.min(top["Execution Time"].as_f64().expect("an execution time"));
        }
        assert!(best < 1.0, "the reload took {best} ms on the server");
    }

    /// A plan's node and every node under it.
    fn plan_nodes(node: &Value) -> Vec<&Value> {
        let mut nodes = vec![node];
        for child in node["Plans"].as_array().into_iter().flatten() {
            nodes.extend(plan_nodes(child));
        }
        nodes
    }
}
