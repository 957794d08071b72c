//! How fast is the seat map of a stadium? Creates a 100,000-seat event through the API (as the
//! demo organizer), then times `GET /api/events/{id}/seats` in each format, directly from the
//! ticketing API and through the gateway (which gzips), and prints sizes and latencies.
//!
//!     infra/dev up && cargo run --release -p loadtest -- seat-map

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Client;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub async fn run(gateway: &str, api: &str, sections: u32, rounds: usize) -> anyhow::Result<()> {
    let organizer = Client::builder().cookie_store(true).build()?;
    let login = crate::call(
        organizer
            .post(format!("{gateway}/api/auth/login"))
            .json(&json!({"email": "organizer@example.test", "password": "organizer-pass-123"})),
        200,
        "organizer login (run `infra/dev up` first: it makes the demo organizer)",
    )
    .await?;
    let token = login["access_token"].as_str().context("no token")?;
    let layout: Vec<Value> = (0..sections)
        .map(|i| json!({"name": format!("S{i}"), "rows": 100, "seats_per_row": 100}))
        .collect();
    let started = Instant::now();
    let venue = crate::call(
        organizer
            .post(format!("{gateway}/api/venues"))
            .bearer_auth(token)
            .json(&json!({"name": "Stadium", "city": "Oslo", "layout": {"kind": "grid", "sections": layout}})),
        201,
        "venue",
    )
    .await?;
    let now = OffsetDateTime::now_utc();
    let created = Instant::now();
    let event = crate::call(
        organizer
            .post(format!("{gateway}/api/events"))
            .bearer_auth(token)
            .json(&json!({
                "title": format!("Stadium seat-map benchmark {}", now.unix_timestamp()),
                "venue_id": venue["id"],
                "starts_at": (now + time::Duration::days(30)).format(&Rfc3339)?,
                "sale_opens_at": (now - time::Duration::minutes(1)).format(&Rfc3339)?,
                "classes": [{"name": "Main", "price": 5000, "currency": "EUR"}],
            })),
        201,
        "event",
    )
    .await?;
    let event_ms = created.elapsed().as_millis();
    let id = event["id"].as_str().context("no event id")?;
    println!(
        "event with {} seats created in {event_ms} ms (venue + event {} ms)",
        event["capacity"],
        started.elapsed().as_millis()
    );

    let plain = Client::new();
    let gzip = Client::builder().gzip(true).build()?;
    // The first read builds the Redis inventory and the catalog; time it on its own.
    let first = Instant::now();
    plain
        .get(format!("{api}/api/events/{id}/seats?format=state"))
        .send()
        .await?
        .bytes()
        .await?;
    println!(
        "first read (loads catalog + builds inventory): {} ms",
        first.elapsed().as_millis()
    );
    for (client, base, how) in [(&plain, api, "direct"), (&gzip, gateway, "gateway+gzip")] {
        for format in ["json", "compact", "state"] {
            let mut times = Vec::with_capacity(rounds);
            let mut size = 0;
            let mut wire = String::new();
            for _ in 0..rounds {
                let started = Instant::now();
                let response = client
                    .get(format!("{base}/api/events/{id}/seats?format={format}"))
                    .send()
                    .await?;
                wire = response
                    .headers()
                    .get("content-encoding")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("identity")
                    .to_string();
                size = response.bytes().await?.len();
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "{how:>13} {format:>8}: {:>9} bytes ({wire}), p50 {:>6.1} ms, max {:>6.1} ms",
                size,
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1])
            );
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
