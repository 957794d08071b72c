//! Users banned recently, known to every process that checks access tokens.
//!
//! Access tokens live at most 15 minutes and a banned user gets no new one, so a ban takes
//! effect within one token lifetime by construction. This list makes it take effect at once:
//! each process reloads, every few seconds, the users banned within the last token lifetime (a
//! small set — older bans are covered by expiry) and refuses their tokens. A `RwLock` over a
//! `HashSet` suits it: reads on every request, one write per reload.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
    time::Duration,
};

use sqlx::PgPool;
use uuid::Uuid;

use crate::ids::UserId;

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
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM users WHERE banned_at > now() - make_interval(secs => $1)",
        )
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
