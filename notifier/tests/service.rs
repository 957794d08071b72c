//! The notifier process against the real Postgres and RabbitMQ, on port 0.

use serde_json::Value;
use shared::{
    config::{LogFormat, SmtpConfig},
    messaging::Names,
};
use sqlx::PgPool;
use testkit::config::{amqp, http, no_keys_dir, postgres_for};

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn it_declares_its_queues_and_reports_ready(db: PgPool) {
    let config = notifier::Config {
        http: http(),
        postgres: postgres_for(&db),
        amqp: amqp(),
        smtp: SmtpConfig::from_env().expect("smtp config"),
        keys: no_keys_dir(),
        push: shared::config::PushConfig::from_env().expect("push config"),
        log_format: LogFormat::Pretty,
    };
    let access = shared::tokens::TokenKeys::generate(shared::tokens::KeyPurpose::Access);
    let server = notifier::build_with(&config, access).await.expect("builds");
    let base = format!("http://{}", server.local_addr());
    let stopper = server.stopper();
    tokio::spawn(server.run_until(std::future::pending()));

    // Ready once the push queue is bound too (a moment after start-up).
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = testkit::get_json(&format!("{base}/readyz")).await;
        if ready["status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["rabbitmq"], true);
    assert_eq!(ready["checks"]["push_queue"], true);

    // Stop the consumers first, or they would declare the topology again.
    stopper.stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let names = Names::new(config.amqp.prefix.clone());
    testkit::broker::assert_and_delete_topology(&config.amqp, &names).await;
}
