//! The goose side of a run: one goose user per fan, each walking the fan's journey once.
//!
//! `flash-sale` (queued): join the waiting room (before opening: the pre-queue), poll the status
//! at the server's `poll_after_ms`, hold best-available seats with the admission token, open the
//! notifier's WebSocket, register (202) and wait for the booking's push (polling
//! `GET /api/bookings/{id}` only without it, see [`crate::socket`]). `simple`: the same journey on
//! a low-demand event, without the waiting room, registered through the direct path (201).
//!
//! Every HTTP request goes through goose (so its HTML/JSON/Markdown reports time each kind); what
//! the report needs beyond that (each fan's timeline, the 202s, how each outcome was learnt,
//! errors by kind) is recorded here.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use goose::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    setup::{Event, Fan},
    socket::Socket,
};

/// How long a fan with a socket waits for the push after its 202 before it polls instead.
pub const PUSH_WAIT: Duration = Duration::from_secs(30);

/// What one fan went through; times are seconds since the run's clock started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FanRecord {
    pub user: String,
    pub join_sent: Option<f64>,
    pub joined_state: Option<String>,
    pub admitted: Option<f64>,
    pub held: Option<f64>,
    pub hold_id: Option<String>,
    #[serde(skip)]
    pub hold_expires: Option<OffsetDateTime>,
    pub seats: u64,
    pub registered: Option<f64>,
    #[serde(skip)]
    pub registered_wall: Option<OffsetDateTime>,
    pub booking_id: Option<String>,
    /// `confirmed`, `rejected`, `pending` (still, when the fan stopped waiting).
    pub booking_status: Option<String>,
    pub settled: Option<f64>,
    /// How the fan learnt its queued booking's outcome: `push` (its socket) or `poll`.
    pub learnt_by: Option<&'static str>,
    /// Why a fan of a queued sale went without the push, when it did.
    pub push_fallback: Option<String>,
    /// How the journey ended: `confirmed`, `rejected`, `sold_out_in_queue`, `no_seats_left`,
    /// `gave_up_waiting`, `pending_at_end`, `error`.
    pub outcome: String,
}

/// Everything the goose users share during one run.
pub struct Run {
    pub event: Event,
    pub fans: Vec<Fan>,
    pub queued: bool,
    pub tickets_per_fan: u64,
    pub max_wait: Duration,
    pub booking_poll: Duration,
    /// The notifier's WebSocket through the gateway (`ws://.../ws`).
    pub socket_url: String,
    pub clock: Instant,
    next: AtomicUsize,
    /// One connection pool for every fan, and a cap on requests in flight (one connection
    /// each): 100,000 fans with a connection of their own would exhaust the gateway's
    /// connections and the generator's file descriptors on one machine.
    client: reqwest::Client,
    /// Slots for the waiting room's calls (join, status) and, apart, for the purchase (hold,
    /// registration, booking): a fan who was admitted does not wait behind other fans' polls.
    queue_slots: tokio::sync::Semaphore,
    purchase_slots: tokio::sync::Semaphore,
    /// Push streams open at once: fans near the front follow the waiting room's stream, as the
    /// browser does, when one is free (each holds a connection for as long as it follows).
    push_slots: tokio::sync::Semaphore,
    /// Notifier sockets open at once (see [`crate::socket`]).
    socket_slots: tokio::sync::Semaphore,
    pub records: Mutex<Vec<FanRecord>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// How long each request waited for a slot before it was sent, in ms, by request kind:
    /// goose's latencies start after that wait, so this is the generator's own lateness.
    pub slot_waits: Mutex<BTreeMap<&'static str, Vec<f32>>>,
}

/// How many requests of each kind the generator keeps in flight at most.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    /// Waiting-room requests (join, status).
    pub queue: usize,
    /// Purchase requests (hold, registration, booking).
    pub purchase: usize,
    /// Push streams open at once.
    pub push: usize,
    /// Notifier sockets open at once.
    pub sockets: usize,
}

impl Run {
    pub fn new(
        base: &str,
        event: Event,
        fans: Vec<Fan>,
        queued: bool,
        tickets_per_fan: u64,
        max_wait: Duration,
        slots: Slots,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(slots.queue + slots.purchase + slots.push)
            .build()?;
        Ok(Self {
            event,
            fans,
            queued,
            tickets_per_fan,
            max_wait,
            booking_poll: Duration::from_millis(500),
            socket_url: format!("{}/ws", base.replacen("http", "ws", 1)),
            clock: Instant::now(),
            next: AtomicUsize::new(0),
            client,
            queue_slots: tokio::sync::Semaphore::new(slots.queue),
            purchase_slots: tokio::sync::Semaphore::new(slots.purchase),
            push_slots: tokio::sync::Semaphore::new(slots.push),
            socket_slots: tokio::sync::Semaphore::new(slots.sockets),
            records: Mutex::new(Vec::new()),
            errors: Mutex::new(BTreeMap::new()),
            slot_waits: Mutex::new(BTreeMap::new()),
        })
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn error(&self, kind: String) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_default() += 1;
    }
}

static RUN: OnceLock<Arc<Run>> = OnceLock::new();

/// Installs the run the goose users work for (one per process).
pub fn install(run: Arc<Run>) -> anyhow::Result<()> {
    RUN.set(run)
        .map_err(|_| anyhow::anyhow!("a run is already installed in this process"))
}

fn run() -> Result<Arc<Run>, Box<TransactionError>> {
    RUN.get().cloned().ok_or_else(|| {
        Box::new(TransactionError::InvalidMethod {
            method: reqwest::Method::GET,
        })
    })
}

/// Runs the goose attack: `users` fans arriving evenly over `arrival`, each once.
pub async fn attack(
    base: &str,
    name: &str,
    users: usize,
    arrival: Duration,
    report_dir: &std::path::Path,
    scenario: Scenario,
) -> anyhow::Result<goose::metrics::GooseMetrics> {
    std::fs::create_dir_all(report_dir)?;
    let report = |ext: &str| {
        report_dir
            .join(format!("goose-{name}.{ext}"))
            .display()
            .to_string()
    };
    let arrival_secs = arrival.as_secs().max(1).to_string();
    let users_s = users.to_string();
    let (html, json_file, md) = (report("html"), report("json"), report("md"));
    let mut args: Vec<&str> = vec![
        "--host",
        base,
        "--users",
        &users_s,
        "--iterations",
        "1",
        "--no-telnet",
        "--no-print-metrics",
        "--quiet",
        "--report-file",
        &html,
        "--report-file",
        &json_file,
        "--report-file",
        &md,
    ];
    let arrival_time = format!("{arrival_secs}s");
    if users > 1 {
        args.extend(["--increase-time", &arrival_time]);
    } else {
        args.extend(["--increase-rate", "1"]);
    }
    let config = goose::config::GooseConfiguration::parse_args_default(&args)
        .map_err(|err| anyhow::anyhow!("goose configuration: {err}"))?;
    let client = goose::client::GooseClientBuilder::new()
        .without_cookies()
        .timeout(Duration::from_secs(30));
    let metrics = GooseAttack::initialize_with_config(config)
        .map_err(|err| anyhow::anyhow!("goose: {err:?}"))?
        .set_client_builder_without_cookies(client)
        .map_err(|err| anyhow::anyhow!("goose client: {err}"))?
        .register_scenario(scenario)
        .execute()
        .await
        .map_err(|err| anyhow::anyhow!("goose attack: {err:?}"))?;
    Ok(metrics)
}

/// The fan's journey, as a goose transaction.
pub async fn fan_journey(user: &mut GooseUser) -> TransactionResult {
    let run = run()?;
    let index = run.next.fetch_add(1, Ordering::Relaxed);
    let Some(fan) = run.fans.get(index).cloned() else {
        return Ok(());
    };
    user.client = run.client.clone();
    let mut record = FanRecord {
        user: fan.id.to_string(),
        ..FanRecord::default()
    };
    let outcome = journey(user, &run, &fan, &mut record).await;
    record.outcome = match outcome {
        Ok(outcome) => outcome.to_string(),
        Err(kind) => {
            run.error(kind);
            "error".to_string()
        }
    };
    run.records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
    Ok(())
}

/// One answered request: status and JSON body (Null when not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("-")
    }
}

/// One request of a fan: what to send, the name goose times it under, the status expected.
struct Call<'a> {
    method: GooseMethod,
    path: &'a str,
    name: &'static str,
    expect: u16,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str, name: &'static str) -> Self {
        Self {
            method: GooseMethod::Get,
            path,
            name,
            expect: 200,
            headers: &[],
            body: None,
        }
    }

    fn post(path: &'a str, name: &'static str) -> Self {
        Self {
            method: GooseMethod::Post,
            ..Self::get(path, name)
        }
    }

    fn expect(self, expect: u16) -> Self {
        Self { expect, ..self }
    }

    fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self { headers, ..self }
    }

    fn json(self, body: &'a Value) -> Self {
        Self {
            body: Some(body),
            ..self
        }
    }
}

/// Sends one request through goose (timed under its name); a transport failure is an error kind.
async fn send(
    user: &mut GooseUser,
    run: &Run,
    fan: &Fan,
    call: Call<'_>,
) -> Result<Answer, String> {
    let name = call.name;
    let response = request(user, run, fan, call).await?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|_| format!("{name}: body cut"))?;
    Ok(Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    })
}

/// [`send`] up to the response's head, for a caller that reads the body itself (a stream).
async fn request(
    user: &mut GooseUser,
    run: &Run,
    fan: &Fan,
    call: Call<'_>,
) -> Result<reqwest::Response, String> {
    let Call {
        method,
        path,
        name,
        expect,
        headers,
        body,
    } = call;
    let mut builder = user
        .get_request_builder(&method, path)
        .map_err(|err| format!("{name}: cannot build request: {err}"))?
        .bearer_auth(&fan.token);
    for (header, value) in headers {
        builder = builder.header(*header, *value);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(expect)
        .set_request_builder(builder)
        .build();
    // A push stream already holds one of the push slots.
    let slots = match name {
        "join" | "status" => Some(&run.queue_slots),
        "events" => None,
        _ => Some(&run.purchase_slots),
    };
    let _permit = match slots {
        Some(slots) => {
            let waiting = Instant::now();
            let permit = slots
                .acquire()
                .await
                .map_err(|_| format!("{name}: closed"))?;
            run.slot_waits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(name)
                .or_default()
                .push(waiting.elapsed().as_secs_f32() * 1000.0);
            Some(permit)
        }
        None => None,
    };
    let answered = user
        .request(request)
        .await
        .map_err(|err| format!("{name}: goose: {err}"))?;
    answered.response.map_err(|err| {
        let what = if err.is_timeout() {
            "timeout"
        } else if err.is_connect() {
            "connect"
        } else {
            "transport"
        };
        format!("{name}: {what}")
    })
}

fn unexpected(name: &str, answer: &Answer) -> String {
    format!("{name}: {} {}", answer.status, answer.code())
}

async fn journey(
    user: &mut GooseUser,
    run: &Run,
    fan: &Fan,
    record: &mut FanRecord,
) -> Result<&'static str, String> {
    let event = run.event.id.clone();
    let admission = if run.queued {
        match queue(user, run, fan, record, &event).await? {
            Ok(token) => Some(token),
            Err(outcome) => return Ok(outcome),
        }
    } else {
        None
    };
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(token) = admission.as_deref() {
        headers.push(("X-Admission-Token", token));
    }

    // Best available: the fan's preferred class first (a fifth want VIP), then the others.
    let mut classes = run.event.classes.clone();
    if classes.len() > 1 && !fan.id.to_string().ends_with(['0', '1', '2']) {
        classes.rotate_left(1);
    }
    let hold_path = format!("/api/events/{event}/holds");
    let mut hold = None;
    for class in &classes {
        let body = json!({"class": class, "quantity": run.tickets_per_fan});
        let call = Call::post(&hold_path, "hold")
            .expect(201)
            .headers(&headers)
            .json(&body);
        let answer = send(user, run, fan, call).await?;
        match answer.status {
            201 => {
                hold = Some(answer.body);
                break;
            }
            409 if answer.code() == "seats_unavailable" => continue,
            _ => return Err(unexpected("hold", &answer)),
        }
    }
    let Some(hold) = hold else {
        return Ok("no_seats_left");
    };
    record.held = Some(run.now());
    let hold_id = hold["hold_id"].as_str().unwrap_or_default().to_string();
    record.hold_id = Some(hold_id.clone());
    record.seats = hold["seat_ids"].as_array().map_or(0, |s| s.len() as u64);
    record.hold_expires = hold["expires_at"].as_str().and_then(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    });

    // With seats held, the socket opens before registering, so the confirmation cannot outrun
    // it (a fan of a low-demand sale is confirmed in the registration's answer and needs none).
    let socket = if run.queued {
        Some(Socket::open(&run.socket_url, &fan.token, &run.socket_slots).await)
    } else {
        None
    };
    let key = uuid::Uuid::new_v4().to_string();
    headers.push(("Idempotency-Key", &key));
    let expect = if run.queued { 202 } else { 201 };
    let path = format!("/api/events/{event}/registrations");
    let body = json!({"hold_id": hold_id});
    let call = Call::post(&path, "register")
        .expect(expect)
        .headers(&headers)
        .json(&body);
    let answer = send(user, run, fan, call).await?;
    if answer.status != expect {
        return Err(unexpected("register", &answer));
    }
    record.registered = Some(run.now());
    record.registered_wall = Some(OffsetDateTime::now_utc());
    let booking = answer.body["booking_id"]
        .as_str()
        .ok_or("register: no booking_id")?
        .to_string();
    record.booking_id = Some(booking.clone());
    let mut status = answer.body["status"].as_str().unwrap_or("").to_string();

    // The confirmation: the push, or polling the booking's status without one.
    let started = Instant::now();
    if status == "pending" {
        match socket {
            Some(Ok(mut socket)) => {
                match socket.outcome(&booking, PUSH_WAIT.min(run.max_wait)).await {
                    Ok(told) => {
                        status = told.to_string();
                        record.learnt_by = Some("push");
                    }
                    Err(why) => record.push_fallback = Some(why),
                }
                socket.close().await;
            }
            Some(Err(why)) => record.push_fallback = Some(why),
            None => {}
        }
    }
    while status == "pending" {
        record.learnt_by = Some("poll");
        if started.elapsed() > run.max_wait {
            record.booking_status = Some(status);
            return Ok("pending_at_end");
        }
        tokio::time::sleep(run.booking_poll).await;
        let path = format!("/api/bookings/{booking}");
        let answer = send(user, run, fan, Call::get(&path, "booking")).await?;
        if answer.status != 200 {
            return Err(unexpected("booking", &answer));
        }
        status = answer.body["status"].as_str().unwrap_or("").to_string();
    }
    record.settled = Some(run.now());
    record.booking_status = Some(status.clone());
    match status.as_str() {
        "confirmed" => Ok("confirmed"),
        "rejected" => Ok("rejected"),
        other => Err(format!("booking: unexpected status {other}")),
    }
}

/// Join and wait in the waiting room. `Ok(Ok(token))` when admitted, `Ok(Err(outcome))` when the
/// journey ends there without an error.
async fn queue(
    user: &mut GooseUser,
    run: &Run,
    fan: &Fan,
    record: &mut FanRecord,
    event: &str,
) -> Result<Result<String, &'static str>, String> {
    record.join_sent = Some(run.now());
    let path = format!("/api/queue/{event}/join");
    // The gateway logs this id with its receive time: the report's join order (fairness.rs).
    let request_id = format!("{}{}", crate::fairness::JOIN_REQUEST_ID_PREFIX, fan.id);
    let headers = [("X-Request-Id", request_id.as_str())];
    let call = Call::post(&path, "join").headers(&headers);
    let answer = send(user, run, fan, call).await?;
    if answer.status != 200 {
        return Err(unexpected("join", &answer));
    }
    let queue_token = answer.body["queue_token"]
        .as_str()
        .ok_or("join: no queue_token")?
        .to_string();
    record.joined_state = answer.body["state"].as_str().map(str::to_string);
    let mut body = answer.body;
    let status_path = format!("/api/queue/{event}/status");
    let started = Instant::now();
    loop {
        match body["state"].as_str() {
            Some("admitted") => {
                record.admitted = Some(run.now());
                return body["admission_token"]
                    .as_str()
                    .map(|t| Ok(t.to_string()))
                    .ok_or_else(|| "status: admitted without a token".to_string());
            }
            Some("pre_queue" | "waiting") => {}
            Some("sold_out") => return Ok(Err("sold_out_in_queue")),
            Some(other) => return Err(format!("status: state {other}")),
            None => return Err("status: no state".to_string()),
        }
        if started.elapsed() > run.max_wait {
            return Ok(Err("gave_up_waiting"));
        }
        let wait = poll_after_ms(&body);
        // Asked to poll every second or two (near the front, or the opening is close): follow
        // the push stream instead while a stream slot is free; back to polling when it ends.
        if wait <= PUSH_BELOW_MS
            && let Ok(_stream) = run.push_slots.try_acquire()
            && let Some(pushed) = follow(user, run, fan, event, &queue_token, started).await?
        {
            body = pushed;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let token = [("X-Queue-Token", queue_token.as_str())];
        let call = Call::get(&status_path, "status").headers(&token);
        let answer = send(user, run, fan, call).await?;
        if answer.status != 200 {
            return Err(unexpected("status", &answer));
        }
        body = answer.body;
    }
}

/// Fans told to poll at least this often switch to the push stream (when one is free).
const PUSH_BELOW_MS: u64 = 2_500;

fn poll_after_ms(body: &Value) -> u64 {
    body["poll_after_ms"]
        .as_u64()
        .unwrap_or(1000)
        .clamp(50, 30_000)
}

/// Follows `GET /api/queue/{event}/events` (server-sent `status` events) until the fan's state
/// is something to act on (admitted, sold out, expired) or the server's hint says they are far
/// enough back to poll again: that status body. `None` when the stream ends first (the reqwest
/// timeout cuts it after 30 s) or the fan's time is up; the caller polls then.
async fn follow(
    user: &mut GooseUser,
    run: &Run,
    fan: &Fan,
    event: &str,
    queue_token: &str,
    started: Instant,
) -> Result<Option<Value>, String> {
    let path = format!("/api/queue/{event}/events?queue_token={queue_token}");
    let mut response = request(user, run, fan, Call::get(&path, "events")).await?;
    if response.status() != 200 {
        return Ok(None);
    }
    let mut buffer = String::new();
    while started.elapsed() <= run.max_wait {
        let Ok(Some(chunk)) = response.chunk().await else {
            return Ok(None);
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(body) = sse_data(&block) else {
                continue; // a keep-alive comment
            };
            let waiting = matches!(body["state"].as_str(), Some("waiting" | "pre_queue"));
            if !waiting || poll_after_ms(&body) > 2 * PUSH_BELOW_MS {
                return Ok(Some(body));
            }
        }
    }
    Ok(None)
}

/// The JSON of one server-sent event's `data:` line(s).
fn sse_data(block: &str) -> Option<Value> {
    let data: String = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    serde_json::from_str(&data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_block_gives_its_json_and_a_keep_alive_gives_nothing() {
        let block = "event: status\ndata: {\"state\":\"admitted\",\"position\":0}\n\n";
        assert_eq!(
            sse_data(block),
            Some(json!({"state": "admitted", "position": 0}))
        );
        assert_eq!(sse_data(":\n\n"), None);
    }
}
