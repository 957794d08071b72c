//! WebSocket pushes: `GET /ws?access_token=...` upgrades; each booking event is sent as JSON to
//! every open socket of the booking's owner.
//!
//! Every notifier instance binds its own exclusive, auto-delete queue
//! (`Names::push_queue(instance)`) to the events exchange, so each instance sees every event
//! and serves the sockets it holds. Per socket a bounded channel: a client too slow to take its
//! messages is disconnected (it can reconnect and read `GET /api/bookings/ID`) rather than
//! holding up the others. Pings every [`HEARTBEAT`]; a socket silent for two of them is dropped.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{Message, Utf8Bytes, WebSocket},
    },
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use lapin::{
    options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde::Deserialize;
use serde_json::json;
use shared::{
    config::AmqpConfig,
    http::Query,
    ids::UserId,
    messaging::{self, BookingConfirmed, BookingRejected, Names, routing},
    tokens::TokenKeys,
};
use uuid::Uuid;

/// How often the server pings each socket.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Messages queued for one socket before it counts as too slow.
const SOCKET_BUFFER: usize = 64;
/// How long one write to a socket may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The open sockets of this instance, by user.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    /// Is this instance's push queue bound and consumed (readiness)?
    consuming: std::sync::atomic::AtomicBool,
    sockets: Mutex<HashMap<UserId, HashMap<u64, tokio::sync::mpsc::Sender<Utf8Bytes>>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn register(&self, user: UserId) -> (u64, tokio::sync::mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = tokio::sync::mpsc::channel(SOCKET_BUFFER);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(user).or_default().insert(id, tx);
        (id, rx)
    }

    fn unregister(&self, user: UserId, id: u64) {
        let mut sockets = self.lock();
        if let Some(mine) = sockets.get_mut(&user) {
            mine.remove(&id);
            if mine.is_empty() {
                sockets.remove(&user);
            }
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        HashMap<UserId, HashMap<u64, tokio::sync::mpsc::Sender<Utf8Bytes>>>,
    > {
        self.inner
            .sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `text` to every socket of `user` without waiting: a socket whose buffer is full
    /// (or that closed) is dropped. Returns how many sockets took it.
    pub fn send(&self, user: UserId, text: &str) -> usize {
        let text = Utf8Bytes::from(text);
        let mut sockets = self.lock();
        let Some(mine) = sockets.get_mut(&user) else {
            return 0;
        };
        let before = mine.len();
        mine.retain(|_, tx| tx.try_send(text.clone()).is_ok());
        let sent = mine.len();
        if sent < before {
            tracing::info!(user.id = %user, dropped = before - sent, "slow or closed sockets dropped");
        }
        if mine.is_empty() {
            sockets.remove(&user);
        }
        sent
    }

    /// Is the push queue bound and consumed right now?
    pub fn is_consuming(&self) -> bool {
        self.inner.consuming.load(Ordering::SeqCst)
    }

    /// Open sockets of `user` on this instance.
    pub fn sockets_of(&self, user: UserId) -> usize {
        self.lock().get(&user).map_or(0, HashMap::len)
    }
}

/// What the WebSocket route needs.
#[derive(Clone)]
pub struct PushState {
    pub hub: Hub,
    pub access: Arc<TokenKeys>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The access token from login (a browser's WebSocket cannot send an `Authorization`
    /// header).
    access_token: Option<String>,
}

/// Open the push channel (a WebSocket) for the caller's booking outcomes.
///
/// The server sends JSON text messages, `{"type": "booking.confirmed", "booking_id", "event_id", "total", "currency",
/// "tickets": [{"id", "seat_label", "class"}]}` and `{"type": "booking.rejected",
/// "booking_id", "event_id", "reason"}`. The server pings every 20 s and drops a socket that
/// stays silent for two pings, or that cannot keep up with its messages.
///
/// The handshake is checked before the token: a request that is not a WebSocket upgrade
/// answers 400 (or 426 when the connection cannot be upgraded) whatever its token.
#[utoipa::path(
    get, path = "/ws", tag = "push",
    params(
        WsQuery,
        ("Upgrade" = String, Header, description = "`websocket`"),
        ("Connection" = String, Header, description = "`Upgrade`"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes, base64 (RFC 6455)"),
    ),
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket is open"),
        (status = 400, description = "`bad_request`: not a WebSocket handshake (missing or wrong `Connection`, `Upgrade`, `Sec-WebSocket-Version` or `Sec-WebSocket-Key`)", body = shared::error::ErrorBody),
        (status = 401, description = "`unauthorized` (no `access_token`), `invalid_token`, `token_expired`", body = shared::error::ErrorBody),
        (status = 426, description = "`bad_request`: the connection cannot be upgraded (not HTTP/1.1)", body = shared::error::ErrorBody),
    ),
)]
pub async fn upgrade(
    State(state): State<PushState>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    // No ban list here: a banned fan's token dies within its lifetime (at most 15 minutes),
    // and pushes only ever carry their own bookings.
    let user = match shared::http::authenticate_token(
        query.access_token.as_deref(),
        &state.access,
        None,
    ) {
        Ok(claims) => claims.sub,
        Err(failure) => return failure.into_response(),
    };
    ws.on_upgrade(move |socket| serve(socket, state.hub, user))
        .into_response()
}

async fn serve(socket: WebSocket, hub: Hub, user: UserId) {
    let (id, mut outbox) = hub.register(user);
    metrics::gauge!("notifier_sockets").increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut missed = 0u32;
    loop {
        tokio::select! {
            message = outbox.recv() => {
                let Some(text) = message else {
                    // Dropped by the hub as too slow.
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(None))).await;
                    break;
                };
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text))).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            incoming = stream.next() => {
                match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    // Pongs, and anything else the client says, prove it is alive.
                    Some(Ok(_)) => missed = 0,
                }
            }
            _ = heartbeat.tick() => {
                missed += 1;
                if missed > 2 {
                    tracing::debug!(user.id = %user, "socket silent; dropped");
                    break;
                }
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
        }
    }
    hub.unregister(user, id);
    metrics::gauge!("notifier_sockets").decrement(1.0);
}

/// The JSON a socket receives for a booking event, and whose it is.
pub fn render(routing_key: &str, payload: &[u8]) -> anyhow::Result<(UserId, String)> {
    Ok(match routing_key {
        routing::BOOKING_CONFIRMED => {
            let event: BookingConfirmed = serde_json::from_slice(payload)?;
            let body = json!({
                "type": routing::BOOKING_CONFIRMED,
                "booking_id": event.booking_id,
                "event_id": event.event_id,
                "total": event.total.amount,
                "currency": event.total.currency,
                "tickets": event.tickets,
            });
            (event.user_id, body.to_string())
        }
        routing::BOOKING_REJECTED => {
            let event: BookingRejected = serde_json::from_slice(payload)?;
            let body = json!({
                "type": routing::BOOKING_REJECTED,
                "booking_id": event.booking_id,
                "event_id": event.event_id,
                "reason": event.reason,
            });
            (event.user_id, body.to_string())
        }
        other => anyhow::bail!("unexpected routing key {other}"),
    })
}

/// Consumes this instance's push queue forever, reconnecting after a broker outage (a new
/// exclusive queue each time: events published while disconnected are not pushed; the
/// booking's state is always readable over HTTP).
/// Stops when `stop` turns true.
pub async fn run(
    hub: Hub,
    amqp: AmqpConfig,
    instance: Uuid,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = tokio::select! {
            result = consume(&hub, &amqp, instance) => result,
            _ = stop.wait_for(|stop| *stop) => {
                hub.inner.consuming.store(false, Ordering::SeqCst);
                return;
            }
        };
        hub.inner.consuming.store(false, Ordering::SeqCst);
        if let Err(err) = result {
            tracing::warn!(
                error = format!("{err:#}"),
                "the push consumer failed; reconnecting"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn consume(hub: &Hub, amqp: &AmqpConfig, instance: Uuid) -> anyhow::Result<()> {
    let connection = messaging::connect(amqp, "notifier-push").await?;
    let channel = connection
        .create_channel()
        .await
        .context("opening a channel")?;
    let names = Names::new(amqp.prefix.clone());
    messaging::declare_topology(&channel, &names).await?;
    let queue = names.push_queue(instance);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("declaring {queue}"))?;
    for key in [routing::BOOKING_CONFIRMED, routing::BOOKING_REJECTED] {
        channel
            .queue_bind(
                queue.as_str().into(),
                names.events_exchange().as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("binding {queue}"))?;
    }
    // Pushes are best-effort and instant: no acks to wait for.
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("consuming {queue}"))?;
    tracing::info!(%queue, "push consumer started");
    hub.inner.consuming.store(true, Ordering::SeqCst);
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.context("receiving a delivery")?;
        match render(delivery.routing_key.as_str(), &delivery.data) {
            Ok((user, text)) => {
                let sockets = hub.send(user, &text);
                tracing::debug!(user.id = %user, sockets, "booking event pushed");
            }
            Err(err) => tracing::warn!(error = format!("{err:#}"), "unreadable booking event"),
        }
    }
    anyhow::bail!("the push consumer's stream ended")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_does_not_keep_up_is_dropped_and_the_others_still_get_messages() {
        let hub = Hub::default();
        let user = UserId::new();
        let (_, mut fast) = hub.register(user);
        let (_, _slow) = hub.register(user);
        for _ in 0..SOCKET_BUFFER {
            assert_eq!(hub.send(user, "{}"), 2);
            fast.try_recv().expect("the fast one reads");
        }
        // The slow one's buffer is full: it is dropped, the fast one still gets the message.
        assert_eq!(hub.send(user, "{}"), 1);
        assert_eq!(hub.sockets_of(user), 1);
        assert_eq!(fast.try_recv().expect("delivered").as_str(), "{}");
        assert_eq!(hub.send(UserId::new(), "{}"), 0);
    }
}
