//! WebSocket pushes: fans' open sockets receive their bookings' events, from any notifier
//! instance; nobody else's; no token, no socket. A socket ends with its token and with its
//! user's ban, and one user (or everyone together) holds at most the configured number.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use shared::{
    domain::Role,
    ids::UserId,
    tokens::{AccessClaims, KeyPurpose, TokenKeys},
};
use sqlx::PgPool;
use support::{CONFIRMED, REJECTED, smtp::FakeSmtp};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

fn token(access: &TokenKeys, user: UserId) -> String {
    token_for(access, user, Duration::from_secs(600))
}

fn token_for(access: &TokenKeys, user: UserId, ttl: Duration) -> String {
    access
        .sign(
            AccessClaims {
                sub: user,
                role: Role::Fan,
            },
            ttl,
        )
        .expect("signs")
}

/// Tries to open a socket; the refusal's status and JSON body, or `None` when it opened.
async fn refused(addr: &str, token: &str) -> Option<(u16, Value)> {
    match connect_async(format!("ws://{addr}/ws?access_token={token}")).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Some((
                response.status().as_u16(),
                serde_json::from_slice(body).unwrap_or(Value::Null),
            ))
        }
        Err(other) => panic!("expected an answer, got {other:?}"),
    }
}

/// The close frame's code and reason the server ends `socket` with within `wait` (answering
/// pings, skipping pushes), or `None` when it stays open that long.
async fn closed_with(socket: &mut Socket, wait: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(frame.map_or((0, String::new()), |frame| {
                    (u16::from(frame.code), frame.reason.to_string())
                }));
            }
            Ok(Some(Ok(Message::Ping(data)))) => {
                let _ = socket.send(Message::Pong(data)).await;
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the socket ended without a close frame: {other:?}"),
        }
    }
}

/// Does the server still answer a ping on `socket`?
async fn answers(socket: &mut Socket) -> bool {
    if socket.send(Message::Ping(b"hi"[..].into())).await.is_err() {
        return false;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => return true,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return false;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Closes `socket` as a browser tab does and waits for the server's side of the handshake.
async fn close(mut socket: Socket) {
    let _ = socket.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// Opens a socket for `token` as soon as the server frees a slot (within a few seconds).
async fn open_when_free(addr: &str, token: &str) -> Option<Socket> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((socket, _)) = connect_async(format!("ws://{addr}/ws?access_token={token}")).await
        {
            return Some(socket);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fan account in Postgres (the ban list reads `users.banned_at`).
async fn fan(db: &PgPool) -> UserId {
    let keys = shared::tokens::KeySet::generate();
    testkit::users::mint_named(db, &keys, Role::Fan, "Frida Fan")
        .await
        .0
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
    let (first, stop_first) = support::instance(&config, &access).await;
    let (second, stop_second) = support::instance(&config, &access).await;

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

    support::finish(&config, &[&stop_first, &stop_second]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn no_valid_access_token_no_socket(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;

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
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn one_user_holds_at_most_the_cap_of_sockets_and_closing_one_frees_its_slot(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let mut config = support::config(&db, smtp.port);
    config.push.max_per_user = 3;
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;

    let fan = token(&access, UserId::new());
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(open(&addr, &fan).await);
    }
    let (status, body) = refused(&addr, &fan).await.expect("the fourth is refused");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_connections", "{body}");
    assert!(body["message"].is_string(), "{body}");
    // Someone else is not held up by this fan's tabs.
    let mut other = open(&addr, &token(&access, UserId::new())).await;
    assert!(answers(&mut other).await);
    for tab in &mut tabs {
        assert!(answers(tab).await, "the fan's first three still work");
    }

    // One tab closed properly, one gone without a goodbye (a laptop lid): both slots free up.
    close(tabs.pop().expect("three")).await;
    drop(tabs.pop().expect("two"));
    let mut reopened = vec![
        open_when_free(&addr, &fan).await.expect("a slot freed"),
        open_when_free(&addr, &fan)
            .await
            .expect("the second slot freed"),
    ];
    // And counted once each: the cap holds again.
    let (status, body) = refused(&addr, &fan).await.expect("the cap holds again");
    assert_eq!(status, 429, "{body}");
    for tab in &mut reopened {
        assert!(answers(tab).await);
    }
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn an_instance_holds_at_most_its_cap_of_sockets_in_all(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let mut config = support::config(&db, smtp.port);
    config.push.max_sockets = 3;
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;

    let first = token(&access, UserId::new());
    let mut held = vec![
        open(&addr, &first).await,
        open(&addr, &first).await,
        open(&addr, &token(&access, UserId::new())).await,
    ];
    let late = token(&access, UserId::new());
    let (status, body) = refused(&addr, &late).await.expect("the instance is full");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "too_many_connections", "{body}");

    close(held.pop().expect("three")).await;
    let mut socket = open_when_free(&addr, &late).await.expect("a slot freed");
    assert!(answers(&mut socket).await);
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_socket_is_closed_when_its_access_token_expires(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;

    let user = UserId::new();
    // Expires at the next second but one: 1 to 2 seconds from now.
    let mut short = open(&addr, &token_for(&access, user, Duration::from_secs(2))).await;
    let opened = tokio::time::Instant::now();
    let mut long = open(&addr, &token(&access, user)).await;

    let closed = closed_with(&mut short, Duration::from_secs(5)).await;
    assert_eq!(closed, Some((4001, "token_expired".to_string())));
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(500),
        "closed at its expiry, not at once ({after:?})"
    );
    assert!(answers(&mut long).await, "a live token's socket stays open");
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn banning_a_user_closes_their_open_sockets_and_refuses_new_ones(db: PgPool) {
    let smtp = FakeSmtp::start().await;
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;

    let user = fan(&db).await;
    let fan_token = token(&access, user);
    let mut tabs = vec![open(&addr, &fan_token).await, open(&addr, &fan_token).await];
    let mut bystander = open(&addr, &token(&access, fan(&db).await)).await;
    assert!(answers(&mut tabs[0]).await);

    sqlx::query("UPDATE users SET banned_at = now() WHERE id = $1")
        .bind(user)
        .execute(&db)
        .await
        .expect("banned");
    // The ban list reloads every 2 s.
    for tab in &mut tabs {
        assert_eq!(
            closed_with(tab, Duration::from_secs(5)).await,
            Some((4003, "banned".to_string()))
        );
    }
    let (status, body) = refused(&addr, &fan_token).await.expect("refused");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "banned", "{body}");
    assert!(answers(&mut bystander).await, "nobody else is touched");
    support::finish(&config, &[&stopper]).await;
}

#[sqlx::test(migrator = "shared::db::MIGRATOR")]
async fn a_push_does_not_wait_for_mail_even_when_the_mail_queue_is_stuck(db: PgPool) {
    // SMTP down: every confirmation's mail is rendered, refused and retried, its delivery held
    // unacked; more of them than the mail consumer's prefetch, so the mail queue stands still.
    let smtp = FakeSmtp::start().await;
    smtp.set_up(false);
    let config = support::config(&db, smtp.port);
    let access = TokenKeys::generate(KeyPurpose::Access);
    let (addr, stopper) = support::instance(&config, &access).await;
    let keys = shared::tokens::KeySet::generate();
    for _ in 0..10 {
        let stuck = support::confirmed_booking(&db, &keys, 4).await;
        support::publish(&config.amqp, CONFIRMED, &stuck).await;
    }
    assert!(
        support::eventually(Duration::from_secs(20), || async { smtp.refused() >= 2 }).await,
        "the mails are being retried"
    );

    let booking = support::confirmed_booking(&db, &keys, 2).await;
    let mut tab = open(&addr, &token(&access, booking.user_id)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    support::publish(&config.amqp, CONFIRMED, &booking).await;
    let message = next_json(&mut tab, Duration::from_secs(10))
        .await
        .expect("pushed while no mail can go out");
    assert_eq!(message["type"], "booking.confirmed");
    assert_eq!(message["booking_id"], booking.booking_id.to_string());
    assert!(smtp.mails().is_empty(), "no mail went out");
    support::finish(&config, &[&stopper]).await;
}
