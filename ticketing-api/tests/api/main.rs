//! Integration tests of the ticketing API: the real app on port 0, a fresh Postgres database
//! per test (`#[sqlx::test]`), a private Redis key prefix, spoken to over HTTP.

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
mod sale;
mod tickets;
mod venues;
