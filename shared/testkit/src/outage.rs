//! A Postgres outage of one test's database: the shared server stays up for every other test.

use sqlx::PgPool;

/// This test's own database cut off: new connections refused and the open ones terminated
/// (or only those a test names), until [`DbOutage::end`].
pub struct DbOutage {
    /// A pool on the server's `postgres` database, which stays reachable.
    admin: PgPool,
    name: String,
}

impl DbOutage {
    /// Cuts `db`'s database off now.
    pub async fn begin(db: &PgPool) -> Self {
        let outage = Self::refuse_new_connections(db).await;
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&outage.name)
        .execute(&outage.admin)
        .await
        .expect("backends terminated");
        outage
    }

    /// Refuses new connections to `db`'s database and leaves the open ones alone: a test ends
    /// those it chooses with [`DbOutage::terminate`] (a listener's, say) while pools that
    /// keep theirs open go on working.
    pub async fn refuse_new_connections(db: &PgPool) -> Self {
        let name = db
            .connect_options()
            .get_database()
            .expect("a test database")
            .to_string();
        let url = crate::config::postgres_for(db).url.expose().clone();
        let (server, _) = url.rsplit_once('/').expect("a database URL");
        let admin = PgPool::connect(&format!("{server}/postgres"))
            .await
            .expect("the postgres database");
        let outage = Self { admin, name };
        outage.allow_connections(false).await;
        outage
    }

    /// Ends the database's open connections named `application_name`; how many there were.
    pub async fn terminate(&self, application_name: &str) -> u64 {
        let ended: Vec<(bool,)> = sqlx::query_as(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = $2",
        )
        .bind(&self.name)
        .bind(application_name)
        .fetch_all(&self.admin)
        .await
        .expect("backends terminated");
        ended.len() as u64
    }

    async fn allow_connections(&self, allow: bool) {
        let sql = format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {allow}",
            self.name.replace('"', "\"\"")
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
            .expect("ALTER DATABASE");
    }

    /// Lets connections in again.
    pub async fn end(self) {
        self.allow_connections(true).await;
        self.admin.close().await;
    }
}
