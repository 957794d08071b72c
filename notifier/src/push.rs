//! WebSocket pushes: `GET /ws?access_token=...` upgrades; each booking event is sent as JSON to
//! every open socket of the booking's owner.
//!
//! Every notifier instance binds its own exclusive, auto-delete queue
//! (`Names::push_queue(instance)`) to the events exchange, so each instance sees every event
//! and serves the sockets it holds. Per socket a bounded channel: a client too slow to take its
//! messages is disconnected (it can reconnect and read `GET /api/bookings/ID`) rather than
//! holding up the others. Pings every [`HEARTBEAT`]; a socket silent for two of them is dropped.
//!
//! # What a socket may cost, and how long it lives
//!
//! - **Caps.** One user holds at most `WS_MAX_PER_USER` sockets on an instance (a phone, a
//!   laptop, a few tabs), and the instance at most `WS_MAX_SOCKETS` in all, so neither one fan's
//!   script nor a crowd can exhaust its memory or file descriptors. A slot is taken before the
//!   upgrade and given back when the socket's task ends, by a drop guard ([`Slot`]), so no path
//!   (a failed handshake, a client gone without a close, a write timeout) leaks one. A socket the
//!   hub has stopped feeding keeps its slot until its task has really ended: the slot counts
//!   memory, not subscriptions.
//! - **At the cap the newest is refused** (429 `too_many_connections` before the upgrade; 503
//!   with `Retry-After` when the whole instance is full), rather than the oldest closed.
//!   Refusing is simpler to reason about: a socket, once open, stays open until its own token,
//!   ban, heartbeat or client ends it, and a script holding a stolen token cannot knock the fan's
//!   own tabs off by opening new ones. What closing the oldest would buy, a fan who reopened a
//!   tab after a dead connection, is served anyway: a dead socket is dropped within three
//!   heartbeats, the browser retries with backoff, and a booking's state is always readable over
//!   HTTP (the booking page reads it when its socket reconnects, and polls while it has none).
//! - **A socket does not outlive its access token.** At the token's `exp` the server closes it
//!   with code [`CLOSE_TOKEN_EXPIRED`] (4001, `token_expired`); the browser refreshes the token
//!   and reconnects.
//! - **Nor its user's ban.** The ban list ([`shared::bans`]) is reloaded every [`BAN_RELOAD`];
//!   after each reload a banned user's sockets are closed with [`CLOSE_BANNED`] (4003, `banned`),
//!   and their upgrades are refused with 403 `banned`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket},
    },
    http::{HeaderValue, StatusCode, header},
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
    backoff::Backoff,
    bans::BanList,
    config::{AmqpConfig, PushConfig},
    http::{Query, error_response},
    ids::UserId,
    messaging::{self, BookingConfirmed, BookingRejected, Names, routing},
    shutdown::Shutdown,
    tokens::TokenKeys,
};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// How often the server pings each socket.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// How often the ban list is reloaded and the banned users' sockets closed: a ban reaches an
/// open socket within this.
pub const BAN_RELOAD: Duration = Duration::from_secs(2);
/// Bans older than this are not loaded: their users' access tokens have expired (they live at
/// most 15 minutes), and with them every socket they opened.
const BAN_WINDOW: Duration = Duration::from_secs(960);
/// The close code at the access token's expiry: refresh the token, then reconnect.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// The close code when the user is banned: do not reconnect.
pub const CLOSE_BANNED: u16 = 4003;
/// Messages queued for one socket before it counts as too slow.
const SOCKET_BUFFER: usize = 64;
/// How long one write to a socket may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for the client's answer to its close frame before it drops the
/// connection (dropping it with the client's bytes unread would reset it, and the client could
/// lose the close frame and its code).
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The largest message a client may send. Clients send only pongs and close frames; the
/// default (64 MiB) would let a few sockets hold gigabytes.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;

/// Why the server ends a socket with an application close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    TokenExpired,
    Banned,
}

impl Ending {
    pub fn code(self) -> u16 {
        match self {
            Self::TokenExpired => CLOSE_TOKEN_EXPIRED,
            Self::Banned => CLOSE_BANNED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::TokenExpired => "token_expired",
            Self::Banned => "banned",
        }
    }

    fn frame(self) -> Message {
        Message::Close(Some(CloseFrame {
            code: self.code(),
            reason: Utf8Bytes::from_static(self.reason()),
        }))
    }
}

/// The open sockets of this instance, by user, within the configured caps.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// Is this instance's push queue bound and consumed (readiness)?
    consuming: AtomicBool,
    limits: PushConfig,
    /// One lock over the counts and the outboxes, so a cap check and the slot it grants are one
    /// step. Held for a hash lookup or a sweep, never across an await.
    sockets: Mutex<Sockets>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Sockets {
    users: HashMap<UserId, UserSockets>,
    /// Slots held on this instance.
    open: usize,
}

#[derive(Default)]
struct UserSockets {
    /// Slots held by this user: from the admission to the end of the socket's task.
    open: usize,
    /// Where pushes go, by socket. A socket dropped as too slow, or told to close, leaves this
    /// map at once, but keeps its slot until its task has ended.
    outboxes: HashMap<u64, Outbox>,
}

struct Outbox {
    messages: mpsc::Sender<Utf8Bytes>,
    close: oneshot::Sender<Ending>,
}

/// Why an upgrade is refused before it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The user holds `WS_MAX_PER_USER` sockets here.
    User,
    /// This instance holds `WS_MAX_SOCKETS`.
    Instance,
}

impl IntoResponse for Full {
    fn into_response(self) -> Response {
        match self {
            Self::User => error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "This account has too many live-update connections open; close another tab or device and try again.",
            ),
            Self::Instance => {
                let mut response = error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    "This server holds as many live-update connections as it can; try again shortly.",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5));
                response
            }
        }
    }
}

/// One admitted socket's place in the hub: its outbox, the hub's order to close, and the count
/// it holds, given back when this is dropped (whichever way the socket ends).
pub struct Slot {
    hub: Hub,
    user: UserId,
    id: u64,
    messages: mpsc::Receiver<Utf8Bytes>,
    close: oneshot::Receiver<Ending>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sockets = self.hub.lock();
        sockets.open -= 1;
        if let Some(mine) = sockets.users.get_mut(&self.user) {
            mine.outboxes.remove(&self.id);
            mine.open -= 1;
            if mine.open == 0 {
                sockets.users.remove(&self.user);
            }
        }
        drop(sockets);
        metrics::gauge!("notifier_sockets").decrement(1.0);
    }
}

impl Hub {
    pub fn new(limits: PushConfig) -> Self {
        Self {
            inner: Arc::new(HubInner {
                consuming: AtomicBool::new(false),
                limits,
                sockets: Mutex::default(),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a slot for one more socket of `user`, unless a cap is reached.
    pub fn admit(&self, user: UserId) -> Result<Slot, Full> {
        let limits = self.inner.limits;
        let mut sockets = self.lock();
        if sockets.open >= limits.max_sockets {
            return Err(Full::Instance);
        }
        let mine = sockets.users.entry(user).or_default();
        if mine.open >= limits.max_per_user {
            return Err(Full::User);
        }
        let (messages, inbox) = mpsc::channel(SOCKET_BUFFER);
        let (close, told) = oneshot::channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        mine.open += 1;
        mine.outboxes.insert(id, Outbox { messages, close });
        sockets.open += 1;
        drop(sockets);
        metrics::gauge!("notifier_sockets").increment(1.0);
        Ok(Slot {
            hub: self.clone(),
            user,
            id,
            messages: inbox,
            close: told,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sockets> {
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
        let Some(mine) = sockets.users.get_mut(&user) else {
            return 0;
        };
        let before = mine.outboxes.len();
        mine.outboxes
            .retain(|_, outbox| outbox.messages.try_send(text.clone()).is_ok());
        let sent = mine.outboxes.len();
        if sent < before {
            tracing::info!(user.id = %user, dropped = before - sent, "slow or closed sockets dropped");
        }
        sent
    }

    /// Tells every socket of a user on `bans` to close with [`CLOSE_BANNED`]; returns how many.
    pub fn close_banned(&self, bans: &BanList) -> usize {
        let mut sockets = self.lock();
        let mut closed = 0;
        for (user, mine) in &mut sockets.users {
            if mine.outboxes.is_empty() || !bans.is_banned(*user) {
                continue;
            }
            for (_, outbox) in mine.outboxes.drain() {
                // A socket whose task is already ending has dropped its receiver: nothing to tell.
                let _ = outbox.close.send(Ending::Banned);
                closed += 1;
            }
            tracing::info!(user.id = %user, "a banned user's sockets closed");
        }
        closed
    }

    /// Is the push queue bound and consumed right now?
    pub fn is_consuming(&self) -> bool {
        self.inner.consuming.load(Ordering::SeqCst)
    }

    /// Sockets of `user` on this instance that receive pushes.
    pub fn sockets_of(&self, user: UserId) -> usize {
        self.lock()
            .users
            .get(&user)
            .map_or(0, |mine| mine.outboxes.len())
    }

    /// Slots held on this instance (sockets open or still ending).
    pub fn open(&self) -> usize {
        self.lock().open
    }
}

/// What the WebSocket route needs.
#[derive(Clone)]
pub struct PushState {
    pub hub: Hub,
    pub access: Arc<TokenKeys>,
    pub bans: BanList,
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
/// stays silent for two pings, or that cannot keep up with its messages. At the access
/// token's expiry the server closes the socket with code 4001 `token_expired` (refresh, then
/// reconnect), and at the user's ban with 4003 `banned`.
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
        (status = 403, description = "`banned`", body = shared::error::ErrorBody),
        (status = 429, description = "`too_many_connections`: this user already holds `WS_MAX_PER_USER` sockets on this instance", body = shared::error::ErrorBody),
        (status = 503, description = "`too_many_connections`: this instance holds `WS_MAX_SOCKETS` sockets (with `Retry-After`)", body = shared::error::ErrorBody),
        (status = 426, description = "`bad_request`: the connection cannot be upgraded (not HTTP/1.1)", body = shared::error::ErrorBody),
    ),
)]
pub async fn upgrade(
    State(state): State<PushState>,
    Query(query): Query<WsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let verified = match shared::http::authenticate_token_verified(
        query.access_token.as_deref(),
        &state.access,
        Some(&state.bans),
    ) {
        Ok(verified) => verified,
        Err(failure) => return failure.into_response(),
    };
    let slot = match state.hub.admit(verified.claims.sub) {
        Ok(slot) => slot,
        Err(full) => {
            let cap = match full {
                Full::User => "user",
                Full::Instance => "instance",
            };
            metrics::counter!("notifier_sockets_refused_total", "cap" => cap).increment(1);
            tracing::debug!(user.id = %verified.claims.sub, cap, "socket refused at a cap");
            return full.into_response();
        }
    };
    let expires = deadline(verified.expires_at);
    // If the handshake fails, axum drops the callback, and with it the slot.
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, slot, expires))
        .into_response()
}

/// The instant of this process's clock at which a token expiring at `expires_at` has expired.
fn deadline(expires_at: OffsetDateTime) -> tokio::time::Instant {
    // Negative (a token within the verifier's clock-skew leeway) closes at once; the cap only
    // keeps the arithmetic safe (access tokens live at most 15 minutes).
    let left = Duration::try_from(expires_at - OffsetDateTime::now_utc())
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(24 * 3600));
    tokio::time::Instant::now() + left
}

async fn serve(socket: WebSocket, mut slot: Slot, expires: tokio::time::Instant) {
    let user = slot.user;
    let (mut sink, mut stream) = socket.split();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let expiry = tokio::time::sleep_until(expires);
    tokio::pin!(expiry);
    let mut missed = 0u32;
    // The last frame to send, if any: a close with a code the browser acts on.
    let last = loop {
        tokio::select! {
            // The hub's order and the token's end come before anything still queued.
            biased;
            Ok(ending) = &mut slot.close => break Some(ending.frame()),
            () = &mut expiry => break Some(Ending::TokenExpired.frame()),
            message = slot.messages.recv() => {
                let Some(text) = message else {
                    // Dropped by the hub as too slow.
                    break Some(Message::Close(None));
                };
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text))).await {
                    Ok(Ok(())) => {}
                    _ => break None,
                }
            }
            incoming = stream.next() => {
                match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                    // Pongs, and anything else the client says, prove it is alive.
                    Some(Ok(_)) => missed = 0,
                }
            }
            _ = heartbeat.tick() => {
                missed += 1;
                if missed > 2 {
                    tracing::debug!(user.id = %user, "socket silent; dropped");
                    break None;
                }
                match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    _ => break None,
                }
            }
        }
    };
    if let Some(last) = last {
        if let Message::Close(Some(frame)) = &last {
            metrics::counter!("notifier_sockets_closed_total", "reason" => frame.reason.to_string())
                .increment(1);
            tracing::debug!(user.id = %user, code = frame.code, reason = %frame.reason, "socket closed");
        }
        if let Ok(Ok(())) = tokio::time::timeout(WRITE_TIMEOUT, sink.send(last)).await {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    // `slot` drops here: the counts go down and the outbox (if still listed) goes.
}

/// Reloads the ban list every [`BAN_RELOAD`] and closes the sockets of the users on it, until
/// `stop`. A failed reload keeps the previous list (and says so).
pub async fn enforce_bans(hub: Hub, bans: BanList, db: PgPool, mut stop: Shutdown) {
    let mut tick = tokio::time::interval(BAN_RELOAD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.recv() => return,
        }
        if let Err(err) = bans.reload(&db, BAN_WINDOW).await {
            tracing::warn!(error = %err, "could not reload the ban list");
        }
        let closed = hub.close_banned(&bans);
        if closed > 0 {
            tracing::info!(sockets = closed, "banned users' sockets closed");
        }
    }
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
/// Stops at `stop`.
pub async fn run(hub: Hub, amqp: AmqpConfig, instance: Uuid, mut stop: Shutdown) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let result = tokio::select! {
            result = consume(&hub, &amqp, instance) => result,
            () = stop.recv() => {
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
        backoff.wait_or(&mut stop).await;
        if stop.is_shutdown() {
            return;
        }
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

    fn hub(max_per_user: usize, max_sockets: usize) -> Hub {
        Hub::new(PushConfig {
            max_per_user,
            max_sockets,
        })
    }

    #[test]
    fn a_socket_that_does_not_keep_up_is_dropped_and_the_others_still_get_messages() {
        let hub = hub(8, 100);
        let user = UserId::new();
        let mut fast = hub.admit(user).expect("room");
        let _slow = hub.admit(user).expect("room");
        for _ in 0..SOCKET_BUFFER {
            assert_eq!(hub.send(user, "{}"), 2);
            fast.messages.try_recv().expect("the fast one reads");
        }
        // The slow one's buffer is full: it is dropped, the fast one still gets the message.
        assert_eq!(hub.send(user, "{}"), 1);
        assert_eq!(hub.sockets_of(user), 1);
        assert_eq!(fast.messages.try_recv().expect("delivered").as_str(), "{}");
        assert_eq!(hub.send(UserId::new(), "{}"), 0);
        // The slow one keeps its slot until its task ends (it still holds its memory).
        assert_eq!(hub.open(), 2);
    }

    #[test]
    fn slots_are_capped_per_user_and_per_instance_and_given_back_once_on_drop() {
        let hub = hub(2, 3);
        let (fan, other) = (UserId::new(), UserId::new());
        let first = hub.admit(fan).expect("room");
        let second = hub.admit(fan).expect("room");
        assert_eq!(hub.admit(fan).err(), Some(Full::User));
        let third = hub.admit(other).expect("another user has room");
        assert_eq!(hub.admit(UserId::new()).err(), Some(Full::Instance));

        // Dropped from the outboxes first (too slow), then ended: counted back once.
        for _ in 0..=SOCKET_BUFFER {
            hub.send(fan, "{}");
        }
        assert_eq!(hub.sockets_of(fan), 0);
        drop(first);
        drop(second);
        assert_eq!(hub.open(), 1);
        let again = [hub.admit(fan).expect("room"), hub.admit(fan).expect("room")];
        assert_eq!(hub.admit(fan).err(), Some(Full::Instance));
        drop(again);
        drop(third);
        assert_eq!(hub.open(), 0);
        assert!(hub.lock().users.is_empty(), "no entry left behind");
    }

    #[test]
    fn a_banned_users_sockets_are_told_to_close_and_nobody_elses() {
        let hub = hub(8, 100);
        let bans = BanList::new();
        let (banned, other) = (UserId::new(), UserId::new());
        let mut tabs = [
            hub.admit(banned).expect("room"),
            hub.admit(banned).expect("room"),
        ];
        let mut bystander = hub.admit(other).expect("room");
        assert_eq!(hub.close_banned(&bans), 0);
        bans.insert(banned);
        assert_eq!(hub.close_banned(&bans), 2);
        for tab in &mut tabs {
            assert_eq!(tab.close.try_recv(), Ok(Ending::Banned));
        }
        assert!(bystander.close.try_recv().is_err());
        assert_eq!(hub.send(banned, "{}"), 0, "no pushes after the ban");
        assert_eq!(hub.send(other, "{}"), 1);
        // Told to close, but their slots are held until their tasks end.
        assert_eq!(hub.open(), 3);
        assert_eq!(hub.close_banned(&bans), 0, "told once");
    }

    #[test]
    fn the_deadline_is_the_tokens_expiry_on_this_clock() {
        let now = tokio::time::Instant::now();
        let later = deadline(OffsetDateTime::now_utc() + time::Duration::seconds(60));
        assert!(later >= now + Duration::from_secs(59) && later <= now + Duration::from_secs(61));
        let past = deadline(OffsetDateTime::now_utc() - time::Duration::seconds(3));
        assert!(past <= tokio::time::Instant::now());
    }
}
