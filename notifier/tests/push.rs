//! WebSocket pushes: fans' open sockets receive their bookings' events, from any notifier
//! instance; nobody else's; no token, no socket.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use shared::{
    domain::Role,
    ids::UserId,
    messaging::Names,
    tokens::{AccessClaims, KeyPurpose, TokenKeys},
};
use sqlx::PgPool;
use support::{CONFIRMED, REJECTED, smtp::FakeSmtp};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A notifier instance on `amqp`'s names; returns its base address.
async fn instance(config: &notifier::Config, access: &TokenKeys) -> (String, notifier::Stopper) {
    let server = notifier::build_with(config, access.verifying_only())
        .await
        .expect("builds");
    let addr = server.local_addr();
    let stopper = server.stopper();
    tokio::spawn(server.run_until(std::future::pending()));
    // Ready once its push queue is bound: events published after that reach its sockets.
    let url = format!("http://{addr}/readyz");
    assert!(
        support::eventually(Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::OK)
            }
        })
        .await,
        "the notifier became ready"
    );
    (addr.to_string(), stopper)
}

/// Stops the instances' consumers, then deletes the test's broker names.
async fn finish(config: &notifier::Config, stoppers: &[&notifier::Stopper]) {
    for stopper in stoppers {
        stopper.stop();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    shared::messaging::testing::delete_topology(
        &config.amqp,
        &Names::new(config.amqp.prefix.clone()),
    )
    .await;
}

fn token(access: &TokenKeys, user: UserId) -> String {
    access
        .sign(
            AccessClaims {
                sub: user,
                role: Role::Fan,
            },
            Duration::from_secs(600),
        )
        .expect("signs")
}

async fn open(addr: &str, token: &str) -> Socket {
    let (socket, _) = connect_async(format!("ws://{addr}/ws?access_token={token}"))
        .await
        .expect("upgrades");
    socket
}

/// The next JSON text message within `wait` (answering pings), or `None`.
async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return Some(serde_json::from_str(&text).expect("json"));
            }
            Ok(Some(Ok(Message::Ping(data)))) => {
                let _ = socket.send(Message::Pong(data)).await;
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn every_open_tab_of_the_owner_gets_the_event_from_any_instance(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    // Two instances sharing one broker: a fan's tabs may land on either.
    let (first, stop_first) = instance(&config, &access).await;
    let (second, stop_second) = instance(&config, &access).await;

    let keys = shared::tokens::KeySet::generate();
    let booking = support::confirmed_booking(&db, &keys, 2).await;
    let fan = token(&access, booking.user_id);
    let mut tab_a = open(&first, &fan).await;
    let mut tab_b = open(&second, &fan).await;
    let mut stranger = open(&first, &token(&access, UserId::new())).await;
    // Let the upgrades register before the event goes out.
    tokio::time::sleep(Duration::from_millis(200)).await;

    support::publish(&config.amqp, CONFIRMED, &booking).await;
    for tab in [&mut tab_a, &mut tab_b] {
        let message = next_json(tab, Duration::from_secs(10))
            .await
            .expect("pushed");
        assert_eq!(message["type"], "booking.confirmed");
        assert_eq!(message["booking_id"], booking.booking_id.to_string());
        let tickets = message["tickets"].as_array().expect("tickets");
        assert_eq!(tickets.len(), 2);
        assert_eq!(tickets[0]["seat_label"], "A-1-1");
    }
    assert!(
        next_json(&mut stranger, Duration::from_millis(500))
            .await
            .is_none(),
        "nobody else's socket hears of it"
    );

    let rejected = support::rejected_for(&booking);
    support::publish(&config.amqp, REJECTED, &rejected).await;
    let message = next_json(&mut tab_a, Duration::from_secs(10))
        .await
        .expect("pushed");
    assert_eq!(message["type"], "booking.rejected");
    assert_eq!(message["booking_id"], rejected.booking_id.to_string());
    assert_eq!(message["reason"], "seats_already_sold");

    finish(&config, &[&stop_first, &stop_second]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn no_valid_access_token_no_socket(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = instance(&config, &access).await;

    for url in [
        format!("ws://{addr}/ws"),
        format!("ws://{addr}/ws?access_token=garbage"),
        format!(
            "ws://{addr}/ws?access_token={}",
            token(&TokenKeys::generate(KeyPurpose::Access), UserId::new())
        ),
    ] {
        match connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{url}");
            }
            other => panic!("{url}: expected a 401, got {other:?}"),
        }
    }
    finish(&config, &[&stopper]).await;
}
