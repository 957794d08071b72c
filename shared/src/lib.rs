//! What every service shares, and nothing that belongs to only one of them.
//!
//! | module | what |
//! |---|---|
//! | [`admission`] | the high-demand gate's admission: the token check, spending and giving it back |
//! | [`bans`] | users banned recently, refused at once by every process that checks tokens |
//! | [`config`] | typed configuration from environment variables; every variable is documented there |
//! | [`telemetry`] | tracing (pretty or JSON) and the Prometheus recorder |
//! | [`shutdown`] | the graceful-shutdown signal, and the [`shutdown::Shutdown`] every loop watches |
//! | [`backoff`] | the pauses between retries: doubling, capped, cut short by shutdown |
//! | [`error`] | the JSON error body of the HTTP contract |
//! | [`ids`] | typed ids (`UserId`, `EventId`, ...) |
//! | [`domain`] | value types parsed once at the edge: `Email`, `Role`, `Money` |
//! | [`audit`] | the audit log's one writer, for every service |
//! | [`tokens`] | signing and verification of access, queue, admission and ticket tokens (EdDSA) |
//! | [`db`] | the Postgres pool and the embedded migrations |
//! | [`cache`] | the Redis pool and every Redis key family |
//! | [`gate`] | the gate hash: an event's demand mode, rate, cap and opening, from the API to the waiting room |
//! | [`inventory`] | seats and holds in Redis (one Lua script), and each event's seat catalog |
//! | [`lock`] | an owner-checked Redis lock: one process does a job, the others wait or skip it |
//! | [`messaging`] | the RabbitMQ connection, exchange and queue names, message payloads |
//! | [`reply`] | Lua replies read with one cursor, and one error for an answer that does not fit |
//! | [`booking`] | a booking's whole life: claim or replay, both registration paths, persist, settle, reject, dead-letter end |
//! | [`http`] | (feature `http`) the axum plumbing the web services share |
//! | [`openapi`] | (feature `http`) the answers every operation documents, and the committed per-service documents |
//! | [`ticket_pdf`] | (feature `ticket-pdf`) a booking's tickets as a PDF with QR codes |
//!
//! `shared` never imports a service, and its core has no web stack: the axum parts live behind
//! the `http` feature.

pub mod admission;
pub mod audit;
pub mod backoff;
pub mod bans;
pub mod booking;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod gate;
#[cfg(feature = "http")]
pub mod http;
pub mod ids;
pub mod inventory;
pub mod lock;
pub mod messaging;
#[cfg(feature = "http")]
pub mod openapi;
pub mod reply;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "ticket-pdf")]
pub mod ticket_pdf;
pub mod tokens;
