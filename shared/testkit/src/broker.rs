//! RabbitMQ for tests: checking and removing a test's private topology on the shared broker,
//! watching the events exchange, and a private broker node to restart mid-test.
//!
//! The shared broker on 5672 is never stopped or changed beyond the names of one test's
//! prefix; a test that needs to take a broker down starts its own [`PrivateBroker`].

use std::{path::PathBuf, process::Child, time::Duration};

use lapin::{
    BasicProperties, Consumer,
    options::{
        BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
        ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};
use shared::{
    config::{AmqpConfig, Secret},
    ids::{BookingId, EventId, HoldId, UserId},
    messaging::{self, Names, ProcessBookingCommand, routing},
};

/// The command for `fan`'s `hold` on `event` as the API would publish it, under a fresh
/// booking id (no idempotency key; seats and prices left to the worker).
pub fn booking_command(event: EventId, fan: UserId, hold: HoldId) -> ProcessBookingCommand {
    ProcessBookingCommand {
        booking_id: BookingId::new(),
        event_id: event,
        user_id: fan,
        hold_id: hold,
        idempotency_key: None,
        requested_at: time::OffsetDateTime::now_utc(),
        prices: Vec::new(),
    }
}

/// Asserts every queue exists and a command published to the command exchange lands in the
/// command queue; then deletes the queues and exchanges of `names`.
pub async fn assert_and_delete_topology(config: &AmqpConfig, names: &Names) {
    let connection = messaging::connect(config, "topology-check")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    for queue in &queues(names) {
        channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|err| panic!("queue {queue} is missing: {err}"));
    }

    publish_confirmed(
        &channel,
        &names.commands_exchange(),
        routing::PROCESS_BOOKING,
        b"{}",
    )
    .await;
    let mut delivered = None;
    for _ in 0..50 {
        delivered = channel
            .basic_get(
                names.commands_queue().as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get");
        if delivered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        delivered.is_some(),
        "the command was not routed to its queue"
    );

    delete_topology(config, names).await;
}

/// Publishes `payload` persistently to `exchange` on a channel in confirm mode, and waits
/// for the broker's confirm.
pub async fn publish_confirmed(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    payload: &[u8],
) {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            payload,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
}

/// Publishes a booking event to the events exchange of `config`'s names (declaring the
/// topology first), as the outbox relay does.
pub async fn publish_event(
    config: &AmqpConfig,
    routing_key: &str,
    payload: &impl serde::Serialize,
) {
    let connection = messaging::connect(config, "test-publisher")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    let names = Names::new(config.prefix.clone());
    messaging::declare_topology(&channel, &names)
        .await
        .expect("topology");
    publish_confirmed(
        &channel,
        &names.events_exchange(),
        routing_key,
        &serde_json::to_vec(payload).expect("json"),
    )
    .await;
    let _ = connection.close(200, "done".into()).await;
}

/// The queues of a topology, every one a test may have to look at or delete.
fn queues(names: &Names) -> [String; 3] {
    [
        names.commands_queue(),
        names.dead_letter_queue(),
        names.mail_queue(),
    ]
}

/// Deletes the queues and exchanges of `names` (the end of every test that made them).
pub async fn delete_topology(config: &AmqpConfig, names: &Names) {
    let connection = messaging::connect(config, "topology-delete")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    for queue in queues(names) {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue deleted");
    }
    for exchange in [
        names.commands_exchange(),
        names.dead_letter_exchange(),
        names.events_exchange(),
    ] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .expect("exchange deleted");
    }
}

/// [`delete_topology`] of the names under `config`'s prefix.
pub async fn delete_topology_of(config: &AmqpConfig) {
    delete_topology(config, &Names::new(config.prefix.clone())).await;
}

/// Is the dead-letter queue of `names` empty? (Takes what it finds off the queue.)
pub async fn dead_letter_queue_is_empty(config: &AmqpConfig, names: &Names) -> bool {
    let connection = messaging::connect(config, "dlq-check")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_get(
            names.dead_letter_queue().as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get")
        .is_none()
}

/// The next command waiting in the command queue of `config`'s names (taken off it), as a
/// worker would read it: what a queued registration published, its quote among it.
pub async fn take_command(config: &AmqpConfig) -> Option<ProcessBookingCommand> {
    let connection = messaging::connect(config, "command-check")
        .await
        .expect("connects");
    let channel = connection.create_channel().await.expect("channel");
    let queue = Names::new(config.prefix.clone()).commands_queue();
    let delivery = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")?;
    Some(serde_json::from_slice(&delivery.data).expect("a booking command"))
}

/// What a subscriber of the events exchange sees: a temporary queue bound with `binding`
/// (`booking.*`, or one routing key), consumed without acks. Keep the connection as long as
/// the consumer is read.
pub async fn observe_events(
    config: &AmqpConfig,
    binding: &str,
) -> anyhow::Result<(lapin::Connection, Consumer)> {
    let connection = messaging::connect(config, "observer").await?;
    let channel = connection.create_channel().await?;
    let observed = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            observed.name().clone(),
            Names::new(config.prefix.clone())
                .events_exchange()
                .as_str()
                .into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumer = channel
        .basic_consume(
            observed.name().clone(),
            "observer".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, consumer))
}

/// A RabbitMQ node of this test's own (never the shared one on 5672): its own node name,
/// AMQP and distribution ports, data, logs and Erlang cookie under a temp dir, no plugins.
/// Stopped (and its dir removed) when dropped.
pub struct PrivateBroker {
    node: String,
    dir: PathBuf,
    sbin: PathBuf,
    port: u16,
    server: Child,
}

impl PrivateBroker {
    /// Where `rabbitmq-server` and `rabbitmqctl` are, run directly (Debian's wrappers in
    /// /usr/sbin switch to the `rabbitmq` user, whose cookie is not this node's).
    fn sbin() -> PathBuf {
        std::env::var_os("RABBITMQ_SBIN").map_or_else(|| "/usr/lib/rabbitmq/bin".into(), Into::into)
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port()
    }

    /// Starts the node and waits (up to a minute) until it accepts AMQP.
    pub async fn start() -> Self {
        let sbin = Self::sbin();
        assert!(
            sbin.join("rabbitmq-server").exists(),
            "no rabbitmq-server in {} (install rabbitmq-server, or set RABBITMQ_SBIN)",
            sbin.display()
        );
        let id = uuid::Uuid::new_v4().simple().to_string();
        let node = format!("rt-{}@localhost", &id[..12]);
        let dir = std::env::temp_dir().join(format!("rt-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        let (port, dist) = (Self::free_port(), Self::free_port());
        let log = std::fs::File::create(dir.join("server.log")).expect("log");
        let server = std::process::Command::new(sbin.join("rabbitmq-server"))
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server starts");
        let broker = Self {
            node,
            dir,
            sbin,
            port,
            server,
        };
        broker.wait_until_up(Duration::from_secs(60)).await;
        broker
    }

    /// This node under a fresh test prefix.
    pub fn amqp(&self) -> AmqpConfig {
        AmqpConfig {
            url: Secret::new(format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)),
            prefix: crate::config::amqp().prefix,
        }
    }

    /// Until an AMQP connection opens.
    async fn wait_until_up(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let amqp = self.amqp();
        loop {
            if let Ok(connection) = messaging::connect(&amqp, "probe").await {
                let _ = connection.close(200, "probed".into()).await;
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the private broker did not accept AMQP within {limit:?} (log in {})",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `rabbitmqctl -n <node> <command>` (`stop_app`, `start_app`), off the async threads.
    pub async fn ctl(&self, command: &'static str) {
        let (ctl, node, home) = (
            self.sbin.join("rabbitmqctl"),
            self.node.clone(),
            self.dir.clone(),
        );
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new(ctl)
                .args(["-n", &node, command])
                .env("HOME", &home)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await
        .expect("joined")
        .expect("rabbitmqctl runs");
        assert!(status.success(), "rabbitmqctl {command} failed");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let stopped = std::process::Command::new(self.sbin.join("rabbitmqctl"))
            .args(["-n", &self.node, "stop"])
            .env("HOME", &self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.server.kill();
        }
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
