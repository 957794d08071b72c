//! The waiting-room process against the real Postgres and Redis, on port 0.

use serde_json::Value;
use shared::config::{LogFormat, testing};
use sqlx::PgPool;

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn it_is_healthy_ready_and_answers_unknown_paths_with_json(db: PgPool) {
    let config = waiting_room::Config {
        http: testing::http(),
        postgres: testing::postgres_for(&db),
        redis: testing::redis(),
        log_format: LogFormat::Pretty,
    };
    let server = waiting_room::build(&config).await.expect("builds");
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run_until(std::future::pending()));

    for path in ["/healthz", "/api/queue/healthz", "/metrics"] {
        let response = reqwest::get(format!("{base}{path}")).await.expect("sent");
        assert_eq!(response.status(), 200, "{path}");
    }
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["checks"]["postgres"], true);
    assert_eq!(ready["checks"]["redis"], true);
    let missing = reqwest::get(format!("{base}/api/queue/nope"))
        .await
        .expect("sent");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("a JSON error body");
    assert_eq!(body["error"], "not_found");
}
