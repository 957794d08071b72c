//! The test kit: what the tests of every crate build on, written once. A dev-dependency only:
//! no production crate depends on it, and nothing here is in a service's build.
//!
//! | module           | what it is for |
//! |------------------|----------------|
//! | [`config`]       | config sections on the real services, isolated per test: port 0, a fresh Redis key prefix and broker prefix, the dev defaults when the environment says nothing |
//! | [`users`]        | users written straight to Postgres and the tokens a test signs (access, admission) |
//! | [`sale`]         | an organizer, venue and event (with a class, in high-demand mode) straight in Postgres |
//! | [`broker`]       | a test's broker names checked and deleted, events observed and published, a private RabbitMQ node to restart |
//! | [`outage`]       | one test's database cut off and back, or only the connections a test names |
//! | [`process`]      | real binaries as children: a `KEYS_DIR` of PEM files, a SIGKILL-on-drop guard |
//! | [`pdf`]          | a ticket PDF read back: its text, a page as PNG, its QR codes |
//! | `api`            | (feature `api`) the ticketing API in process: `TestApp` (and another instance of the same platform), its config, users, venues, events and sales over HTTP |
//! | `waiting_room`   | (feature `waiting-room`) the waiting room in process: `TestApp`, join and status |
//!
//! The heavy parts are features, so a crate compiles only the services it talks to.
//!
//! The registration worker and the notifier book through the real API in a few tests (the 202
//! path the worker consumes, the check-in of a mailed ticket): they reach it through the `api`
//! feature, the one place that names `ticketing-api`, rather than driving holds and commands
//! through `shared` and losing the API's part of what those tests check.

pub mod broker;
pub mod config;
pub mod outage;
pub mod pdf;
pub mod process;
pub mod sale;
pub mod users;

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "waiting-room")]
pub mod waiting_room;

use std::time::Duration;

/// An anonymous GET of `url` (a service's `/readyz`, say), answered with JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .expect("sent")
        .json()
        .await
        .expect("a JSON body")
}

/// Polls `check` every 50 ms until it is true (`true`) or `timeout` passes (`false`).
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
