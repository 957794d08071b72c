//! Integration tests of the ticketing API: the real app on port 0, a fresh Postgres database
//! per test (`#[sqlx::test]`), a private Redis key prefix, spoken to over HTTP. The app, its
//! config and the helpers that make users, venues and events are the test kit's
//! (`testkit::api`), shared with the registration worker's and the notifier's tests.

mod accounts;
mod admin;
mod bootstrap;
mod browser;
mod dead_letters;
mod events;
mod gate;
mod hostile;
mod login_limits;
mod ops;
mod reports;
mod rules;
mod sale;
mod tickets;
mod venues;
